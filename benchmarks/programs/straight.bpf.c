// packet: random 256
/* Straight-line block: 96 unrolled mixing rounds over four 64-bit lanes and the packet's
 * 32 words, over 1,000 BPF instructions without a branch after the bounds check. */
#include "bench.h"

#define W(k) (load64(in + 8 * ((k) & 31)))
#define ROUND(k)                                  \
    a += b ^ W(k);                                \
    b = rotl64(b, 13) ^ a;                        \
    c += d + (k);                                 \
    d = rotl64(d, 16) ^ c;                        \
    a = rotl64(a, 32) + d;                        \
    c += b;
#define R4(k) ROUND(k) ROUND(k + 1) ROUND(k + 2) ROUND(k + 3)
#define R16(k) R4(k) R4(k + 4) R4(k + 8) R4(k + 12)

BENCH(straight_line)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 256 > end)
        return SHORT_PACKET;
    u64 a = W(0), b = W(1), c = W(2), d = W(3);
    R16(0) R16(16) R16(32) R16(48) R16(64) R16(80)
    return a ^ b ^ c ^ d;
}
