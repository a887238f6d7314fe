// packet: random 256
/* Hash-map counting: 64 keys from the packet (48 distinct at most) counted in a hash
 * map (lookup, then increment or insert), the counts read back and deleted, so every
 * run starts from an empty map. */
#include "bench.h"

MAP(counts, HASH, u32, u64, 64);

BENCH(hash_count)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 128 > end)
        return SHORT_PACKET;
    for (u32 i = 0; i < 64; i++) {
        u32 key = load16(in + 2 * i) % 48;
        u64 *n = bpf_map_lookup_elem(&counts, &key);
        if (n) {
            *n += 1;
        } else {
            u64 one = 1;
            bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST);
        }
    }
    u64 acc = 0;
    for (u32 key = 0; key < 48; key++) {
        u64 *n = bpf_map_lookup_elem(&counts, &key);
        if (n) {
            acc = acc * 31 + key * *n;
            bpf_map_delete_elem(&counts, &key);
        }
    }
    return acc;
}
