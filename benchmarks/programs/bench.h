/* The shim that builds every benchmark program twice from one source:
 *
 *  - clang-19 -target bpf (`make fixtures`): an XDP program in section "xdp", maps in
 *    ".maps", libbpf's helpers; the committed .o that jitbpf's engines and the kernel run;
 *  - gcc -O2 / clang-19 -O2 for the host (`jitbpf bench` builds it into a shared object):
 *    the same function as plain C taking the same struct xdp_md (its u32 data fields are
 *    the packet's address, which jitbpf keeps below 4 GiB), maps as static C arrays and
 *    hash tables with Linux's semantics (update flags, errno results, exact LRU), helpers
 *    as inline functions.
 *
 * A program is written once: BENCH(name) { ... } returning a u64, MAP(...) / RINGBUF(...)
 * for its maps, the packet through PACKET(ctx, start, end). Only bounded loops and
 * checked packet accesses, so the kernel's verifier accepts every program. */
#ifndef JITBPF_BENCH_H
#define JITBPF_BENCH_H

#include <linux/bpf.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s64 s64;

#define PACKET(ctx, start, end) \
    const u8 *start = (const u8 *)(long)(ctx)->data, *end = (const u8 *)(long)(ctx)->data_end

/* Where the payload starts in every benchmark packet: Ethernet (14), IPv4 (20), TCP with
 * 12 bytes of options (32); jitbpf/bench builds the packet (see its `packet` module). */
#define PAYLOAD 66
/* What a run returns when its packet is shorter than it needs (never, with its input). */
#define SHORT_PACKET 0xdeadULL

/* Packet words at any alignment: plain loads in BPF (where they are allowed), memcpy on
 * the host (a misaligned pointer dereference is undefined behaviour in C). */
#ifdef __bpf__
#define load64(p) (*(const u64 *)(p))
#define load32(p) (*(const u32 *)(p))
#define load16(p) (*(const u16 *)(p))
#else
#define LOAD(bits)                                                                 \
    static inline u##bits load##bits(const void *p)                                \
    {                                                                              \
        u##bits v;                                                                 \
        __builtin_memcpy(&v, p, sizeof(v));                                        \
        return v;                                                                  \
    }
LOAD(64) LOAD(32) LOAD(16)
#undef LOAD
#endif

/* An empty asm that hides a value from the optimiser (libbpf's barrier_var), on both sides. */
#define barrier_var(x) asm volatile("" : "+r"(x))

static inline u64 rotl64(u64 x, unsigned k) { return x << (k & 63) | x >> (-k & 63); }

#ifdef __bpf__
/* ------------------------------------------------------------------ BPF side */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define BENCH(name) SEC("xdp") u64 name(struct xdp_md *ctx)
#define MAP(name, kind, K, V, n)                                                   \
    struct {                                                                       \
        __uint(type, BPF_MAP_TYPE_##kind);                                         \
        __uint(max_entries, n);                                                    \
        __type(key, K);                                                            \
        __type(value, V);                                                          \
    } name SEC(".maps")
#define RINGBUF(name, bytes)                                                       \
    struct {                                                                       \
        __uint(type, BPF_MAP_TYPE_RINGBUF);                                        \
        __uint(max_entries, bytes);                                                \
    } name SEC(".maps")
#define NOINLINE __noinline
/* Where clang would unroll a loop past the 512-byte BPF stack (a host build may unroll). */
#define NO_UNROLL _Pragma("clang loop unroll(disable)")

char LICENSE[] SEC("license") = "GPL";

#else
/* ------------------------------------------------------------------ host side */
#include <errno.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define NO_UNROLL
#define BENCH(name) __attribute__((visibility("default"))) u64 name(struct xdp_md *ctx)
#define bpf_htons(x) __builtin_bswap16(x)
#define bpf_ntohs(x) __builtin_bswap16(x)
#define bpf_htonl(x) __builtin_bswap32(x)
#define bpf_ntohl(x) __builtin_bswap32(x)
#define bpf_cpu_to_be64(x) __builtin_bswap64(x)
#define bpf_be64_to_cpu(x) __builtin_bswap64(x)

#define ROUND8(n) (((n) + 7u) & ~7u)
/* Buckets of a hash table: a power of two >= 2 * max_entries (up to 2^16 entries). */
#define POW2(n) ((n) <= 1 ? 1u : 1u << (32 - __builtin_clz((unsigned)(n) - 1)))

/* A map: its Linux shape and its storage. Hash tables: a header, then the bucket heads,
 * then max_entries elements {chain next, LRU prev, LRU next, key, value} by index
 * (1-based; 0 = none). The elements' values never move while they exist, as in Linux. */
struct native_map {
    int type;
    u32 key_size, value_size, max_entries, buckets;
    u8 *store;
};

struct hash_header {
    u32 count, fresh, free_head, lru_head, lru_tail;
};

struct hash_elem {
    u32 next, lru_prev, lru_next, pad;
};

#define ELEM_SIZE(K, V) (sizeof(struct hash_elem) + ROUND8(sizeof(K)) + ROUND8(sizeof(V)))
#define MAP_BYTES(kind, K, V, n)                                                   \
    ((kind) == BPF_MAP_TYPE_ARRAY ? (n) * ROUND8(sizeof(V))                        \
     : sizeof(struct hash_header) + 4 * 2 * POW2(n) + (n) * ELEM_SIZE(K, V))
#define MAP(name, kind, K, V, n)                                                   \
    static u8 name##_store[MAP_BYTES(BPF_MAP_TYPE_##kind, K, V, n)]                \
        __attribute__((aligned(16)));                                              \
    static const struct native_map name = {BPF_MAP_TYPE_##kind, sizeof(K), sizeof(V), \
                                           n, 2 * POW2(n), name##_store}

static inline u32 *hash_buckets(const struct native_map *m)
{
    return (u32 *)(m->store + sizeof(struct hash_header));
}

static inline struct hash_elem *hash_elem(const struct native_map *m, u32 index)
{
    u64 size = sizeof(struct hash_elem) + ROUND8(m->key_size) + ROUND8(m->value_size);
    return (struct hash_elem *)(m->store + sizeof(struct hash_header) + 4 * m->buckets
                                + (index - 1) * size);
}

static inline u8 *elem_key(struct hash_elem *e) { return (u8 *)(e + 1); }
static inline u8 *elem_value(const struct native_map *m, struct hash_elem *e)
{
    return elem_key(e) + ROUND8(m->key_size);
}

/* FNV-1a over the key bytes, then a multiplicative mix for the bucket index. */
static inline u32 hash_key(const struct native_map *m, const void *key)
{
    const u8 *k = key;
    u32 h = 2166136261u;
    for (u32 i = 0; i < m->key_size; i++)
        h = (h ^ k[i]) * 16777619u;
    return (h * 2654435761u) & (m->buckets - 1);
}

static inline int is_lru(const struct native_map *m) { return m->type == BPF_MAP_TYPE_LRU_HASH; }

static inline void lru_unlink(const struct native_map *m, u32 index)
{
    struct hash_header *h = (struct hash_header *)m->store;
    struct hash_elem *e = hash_elem(m, index);
    if (e->lru_prev) hash_elem(m, e->lru_prev)->lru_next = e->lru_next; else h->lru_head = e->lru_next;
    if (e->lru_next) hash_elem(m, e->lru_next)->lru_prev = e->lru_prev; else h->lru_tail = e->lru_prev;
}

static inline void lru_push_front(const struct native_map *m, u32 index)
{
    struct hash_header *h = (struct hash_header *)m->store;
    struct hash_elem *e = hash_elem(m, index);
    e->lru_prev = 0;
    e->lru_next = h->lru_head;
    if (h->lru_head) hash_elem(m, h->lru_head)->lru_prev = index; else h->lru_tail = index;
    h->lru_head = index;
}

/* Index of the element holding key, 0 if none; *link is the chain link pointing to it. */
static inline u32 hash_find(const struct native_map *m, const void *key, u32 **link)
{
    u32 *at = &hash_buckets(m)[hash_key(m, key)];
    while (*at && memcmp(elem_key(hash_elem(m, *at)), key, m->key_size))
        at = &hash_elem(m, *at)->next;
    *link = at;
    return *at;
}

static inline void hash_remove(const struct native_map *m, u32 index, u32 *link)
{
    struct hash_header *h = (struct hash_header *)m->store;
    *link = hash_elem(m, index)->next;
    if (is_lru(m))
        lru_unlink(m, index);
    hash_elem(m, index)->next = h->free_head;
    h->free_head = index;
    h->count--;
}

static inline void *bpf_map_lookup_elem(const void *map, const void *key)
{
    const struct native_map *m = map;
    if (m->type == BPF_MAP_TYPE_ARRAY) {
        u32 i = *(const u32 *)key;
        return i < m->max_entries ? m->store + (u64)i * ROUND8(m->value_size) : 0;
    }
    u32 *link, index = hash_find(m, key, &link);
    if (!index)
        return 0;
    if (is_lru(m)) {                /* exact LRU: a lookup makes the element the newest */
        lru_unlink(m, index);
        lru_push_front(m, index);
    }
    return elem_value(m, hash_elem(m, index));
}

static inline long bpf_map_update_elem(const void *map, const void *key, const void *value, u64 flags)
{
    const struct native_map *m = map;
    if (flags > BPF_EXIST)
        return -EINVAL;
    if (m->type == BPF_MAP_TYPE_ARRAY) {
        u32 i = *(const u32 *)key;
        if (i >= m->max_entries)
            return -E2BIG;
        if (flags == BPF_NOEXIST)
            return -EEXIST;
        memcpy(m->store + (u64)i * ROUND8(m->value_size), value, m->value_size);
        return 0;
    }
    struct hash_header *h = (struct hash_header *)m->store;
    u32 *link, index = hash_find(m, key, &link);
    if (index) {
        if (flags == BPF_NOEXIST)
            return -EEXIST;
        memcpy(elem_value(m, hash_elem(m, index)), value, m->value_size);
        if (is_lru(m)) {
            lru_unlink(m, index);
            lru_push_front(m, index);
        }
        return 0;
    }
    if (flags == BPF_EXIST)
        return -ENOENT;
    if (h->count == m->max_entries) {
        if (!is_lru(m))
            return -E2BIG;
        u32 victim = h->lru_tail, *vlink;
        hash_find(m, elem_key(hash_elem(m, victim)), &vlink);
        hash_remove(m, victim, vlink);
        hash_find(m, key, &link);       /* the chain may have changed */
    }
    if (h->free_head) {
        index = h->free_head;
        h->free_head = hash_elem(m, index)->next;
    } else {
        index = ++h->fresh;
    }
    struct hash_elem *e = hash_elem(m, index);
    memcpy(elem_key(e), key, m->key_size);
    memcpy(elem_value(m, e), value, m->value_size);
    e->next = 0;
    *link = index;
    h->count++;
    if (is_lru(m))
        lru_push_front(m, index);
    return 0;
}

static inline long bpf_map_delete_elem(const void *map, const void *key)
{
    const struct native_map *m = map;
    if (m->type == BPF_MAP_TYPE_ARRAY)
        return -EINVAL;
    u32 *link, index = hash_find(m, key, &link);
    if (!index)
        return -ENOENT;
    hash_remove(m, index, link);
    return 0;
}

/* A ring buffer: Linux's record layout (8-byte header, records rounded to 8 bytes) and
 * its capacity rule; bench_reset() (called by the harness between timed batches) plays
 * the consumer that empties it. */
struct native_ring {
    u64 producer, consumer, size;
    u8 *data;
    struct native_ring *next_ring;
};
static struct native_ring *native_rings;

#define RINGBUF(name, bytes)                                                       \
    static u8 name##_data[bytes];                                                  \
    static struct native_ring name = {0, 0, bytes, name##_data, 0};               \
    __attribute__((constructor)) static void name##_register(void)                \
    {                                                                              \
        name.next_ring = native_rings;                                             \
        native_rings = &name;                                                      \
    }

__attribute__((visibility("default"))) void bench_reset(void)
{
    for (struct native_ring *r = native_rings; r; r = r->next_ring)
        r->consumer = r->producer;
}

static inline long bpf_ringbuf_output(void *ring, const void *data, u64 size, u64 flags)
{
    struct native_ring *r = ring;
    u64 total = ROUND8(size + 8);
    if (flags & ~3ull)
        return -EINVAL;
    if (r->producer + total - r->consumer > r->size - 1)
        return -EAGAIN;
    u64 at = r->producer % r->size;
    u32 header[2] = {(u32)size, (u32)(at / 4096)};
    if (at + 8 + size <= r->size) {           /* Linux maps the data twice: never a wrap */
        memcpy(r->data + at, header, 8);
        memcpy(r->data + at + 8, data, size);
    } else {
        for (u64 i = 0; i < 8 + size; i++)
            r->data[(at + i) % r->size] = i < 8 ? ((const u8 *)header)[i] : ((const u8 *)data)[i - 8];
    }
    r->producer += total;
    return 0;
}

static inline long bpf_loop(u32 nr_loops, long (*callback)(u32, void *), void *ctx, u64 flags)
{
    if (flags)
        return -EINVAL;
    if (nr_loops > 1u << 23)
        return -E2BIG;
    for (u32 i = 0; i < nr_loops; i++)
        if (callback(i, ctx))
            return i + 1;
    return nr_loops;
}
#endif

#endif
