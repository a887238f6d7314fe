// packet: random 128
/* Binary search over an array map: 256 sorted u32 (filled by the first run), 32 keys
 * from the packet, one map lookup per probe (the kernel inlines array lookups). A small
 * array: the verifier walks every path of each search (its keys are known constants). */
#include "bench.h"

#define SIZE 256

MAP(sorted, ARRAY, u32, u32, SIZE);

static inline u32 value_at(u32 i)
{
    u32 *v = bpf_map_lookup_elem(&sorted, &i);
    return v ? *v : 0;
}

BENCH(binary_search)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 128 > end)
        return SHORT_PACKET;
    if (value_at(0) == 0)                      /* first run: v[i] = 37 i + 5 */
        for (u32 i = 0; i < SIZE; i++) {
            u32 key = i;                       /* the counter stays in a register, where the */
            barrier_var(key);                  /* verifier follows it */
            u32 *v = bpf_map_lookup_elem(&sorted, &key);
            if (v)
                *v = 37 * i + 5;
        }
    u64 found = 0, acc = 0;
    for (u32 k = 0; k < 32; k++) {
        u32 key = load32(in + 4 * k) % (37 * SIZE + 64);
        u32 base = 0;                          /* the last index whose value is <= key */
        for (u32 half = SIZE / 2; half > 0; half /= 2)
            if (value_at(base + half) <= key)
                base += half;
        if (value_at(base) == key)
            found++;
        acc = acc * 257 + base;
    }
    return found << 56 | (acc & 0xffffffffffffffULL);
}
