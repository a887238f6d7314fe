/* Compute kernels for benchmarks/compute.py, compiled twice from this one source:
 * by clang-19 -target bpf (-> kernels.bpf.o, run by jitbpf's engines) and by gcc -O2
 * (-> a shared library called natively), so both sides do the same work.
 *
 * Each kernel is u64 f(struct args *a, u64 size): it runs a->reps repetitions over
 * a->data, each one seeded by the previous result so no compiler can hoist the work
 * out of the repetition loop. No helpers, no maps: pure code quality. */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

struct args {
    u64 reps;
    u64 len;          /* bytes of data used by the kernel */
    u8 data[];        /* input, then scratch space (sort) */
};

/* RFC 1071 Internet checksum of the data as big-endian 16-bit words. */
u64 checksum(struct args *a, u64 size)
{
    u64 result = 0;
    for (u64 rep = 0; rep < a->reps; rep++) {
        u64 sum = result & 0xffff;
        for (u64 i = 0; i + 1 < a->len; i += 2)
            sum += (u64)a->data[i] << 8 | a->data[i + 1];
        while (sum >> 16)
            sum = (sum & 0xffff) + (sum >> 16);
        result = ~sum & 0xffff;
    }
    return result;
}

/* 64-bit FNV-1a: one multiply per byte, a serial dependency chain. */
u64 fnv1a(struct args *a, u64 size)
{
    u64 h = 0xcbf29ce484222325ULL;
    for (u64 rep = 0; rep < a->reps; rep++)
        for (u64 i = 0; i < a->len; i++) {
            h ^= a->data[i];
            h *= 0x100000001b3ULL;
        }
    return h;
}

/* Bitwise CRC-32 (reflected, polynomial 0xEDB88320): shifts, masks and branches. */
u64 crc32(struct args *a, u64 size)
{
    u32 crc = 0;
    for (u64 rep = 0; rep < a->reps; rep++) {
        crc = ~crc;
        for (u64 i = 0; i < a->len; i++) {
            crc ^= a->data[i];
            for (int k = 0; k < 8; k++)
                crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
        }
        crc = ~crc;
    }
    return crc;
}

/* A register VM: 4-byte instructions (op, dst, src, imm) in a->data, dispatched by a
 * switch; the program in the data loops a->reps times. */
enum { HALT, LOADI, ADD, XOR, MUL, SHR, ROTL, DECJNZ, LOADR };

u64 vm(struct args *a, u64 size)
{
    u64 r[4] = {0, 0, 0, 0};
    u64 pc = 0;
    r[3] = a->reps;
    for (;;) {
        const u8 *insn = &a->data[pc * 4];
        u64 *d = &r[insn[1] & 3], s = r[insn[2] & 3];
        u8 imm = insn[3];
        pc++;
        switch (insn[0]) {
        case LOADI: *d = imm; break;
        case ADD: *d += s; break;
        case XOR: *d ^= s; break;
        case MUL: *d *= s | 1; break;
        case SHR: *d >>= imm & 63; break;
        case ROTL: *d = *d << (imm & 63) | *d >> (-imm & 63); break;
        case DECJNZ: if (--*d) pc = imm; break;
        case LOADR: *d = s; break;
        default: return r[0];
        }
    }
}

/* Insertion sort of 256 words (the input mixed with the repetition number) into the
 * scratch space after the input; the result folds in one element per repetition. */
u64 sort(struct args *a, u64 size)
{
    u32 *src = (u32 *)a->data;
    u32 *buf = (u32 *)(a->data + 1024);
    u64 acc = 0;
    for (u64 rep = 0; rep < a->reps; rep++) {
        for (u32 i = 0; i < 256; i++) {
            u32 v = src[i] ^ (u32)(acc * 2654435761u), j = i;
            while (j > 0 && buf[j - 1] > v) {
                buf[j] = buf[j - 1];
                j--;
            }
            buf[j] = v;
        }
        acc = acc * 31 + buf[rep & 255];
    }
    return acc;
}
