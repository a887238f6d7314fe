// packet: random 64
/* Tight integer loop: 1024 steps of a multiply/xor-shift recurrence seeded from the
 * packet (a serial dependency chain: what a compiler cannot shorten). */
#include "bench.h"

BENCH(loop)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 8 > end)
        return SHORT_PACKET;
    u64 x = load64(in);
    for (u32 i = 0; i < 1024; i++) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        x += i;
    }
    return x;
}
