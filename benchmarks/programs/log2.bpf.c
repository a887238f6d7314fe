// packet: random 1024
/* Integer log2: for 128 packet words of varied magnitude (shifted right by their own low
 * bits), floor(log2) by a branchy binary search over the bit positions. */
#include "bench.h"

static inline u32 ilog2(u64 x)
{
    u32 r = 0;
    if (x >> 32) { r += 32; x >>= 32; }
    if (x >> 16) { r += 16; x >>= 16; }
    if (x >> 8) { r += 8; x >>= 8; }
    if (x >> 4) { r += 4; x >>= 4; }
    if (x >> 2) { r += 2; x >>= 2; }
    if (x >> 1) r += 1;
    return r;
}

BENCH(integer_log2)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 1024 > end)
        return SHORT_PACKET;
    u64 acc = 0;
    for (u32 i = 0; i < 128; i++) {
        u64 w = load64(in + 8 * i);
        acc = acc * 67 + ilog2((w >> (w & 63)) | 1);
    }
    return acc;
}
