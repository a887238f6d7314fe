// packet: random 1024
/* Endian swaps: every 8 packet bytes read as a big-endian u64, two u32 and four u16,
 * converted to host order (BPF_END / bswap) and mixed. */
#include "bench.h"

BENCH(endian_swap)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 1024 > end)
        return SHORT_PACKET;
    u64 acc = 0;
    for (u32 i = 0; i < 1024; i += 8) {
        const u8 *p = in + i;
        u64 x = bpf_be64_to_cpu(load64(p));
        u32 hi = bpf_ntohl(load32(p)), lo = bpf_ntohl(load32(p + 4));
        u16 a = bpf_ntohs(load16(p)), b = bpf_ntohs(load16(p + 2));
        u16 c = bpf_ntohs(load16(p + 4)), d = bpf_ntohs(load16(p + 6));
        acc = rotl64(acc, 3) + (x ^ ((u64)lo << 32 | hi)) + (u64)(a ^ b) * (c ^ d);
    }
    return acc;
}
