// packet: random 128
/* LRU cache: 64 keys from the packet (40 distinct at most) memoise an expensive function
 * in a 16-entry LRU hash: a hit reads the cached value, a miss computes and inserts it
 * (evicting the least recently used). The result does not depend on hits, so Linux's
 * approximate LRU and an exact one agree. */
#include "bench.h"

MAP(cache, LRU_HASH, u32, u64, 16);

static inline u64 expensive(u32 key)
{
    u64 x = key + 0x9e3779b97f4a7c15ULL;
    for (u32 i = 0; i < 16; i++) {
        x ^= x >> 31;
        x *= 0x94d049bb133111ebULL;
    }
    return x;
}

BENCH(lru_cache)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 64 > end)
        return SHORT_PACKET;
    u64 acc = 0;
    for (u32 i = 0; i < 64; i++) {
        u32 key = in[i] % 40;
        u64 *cached = bpf_map_lookup_elem(&cache, &key);
        u64 value;
        if (cached) {
            value = *cached;
        } else {
            value = expensive(key);
            bpf_map_update_elem(&cache, &key, &value, BPF_ANY);
        }
        acc = rotl64(acc, 7) ^ value;
    }
    return acc;
}
