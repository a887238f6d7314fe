// packet: random 512
/* Popcount loop: the set bits of 64 packet words counted one bit at a time (64 steps per
 * word), the counts mixed by position. (Kernighan's x &= x - 1 loop, whose length is the
 * number of set bits, is more than the kernel's verifier can walk for 64 words.) */
#include "bench.h"

BENCH(popcount)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 512 > end)
        return SHORT_PACKET;
    u64 acc = 0;
    for (u32 w = 0; w < 64; w++) {
        u64 x = load64(in + 8 * w), bits = 0;
        for (u32 k = 0; k < 64; k++)
            bits += x >> k & 1;
        acc = acc * 65 + bits;
    }
    return acc;
}
