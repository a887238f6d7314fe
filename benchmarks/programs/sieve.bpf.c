// packet: random 64
/* Prime sieve of Eratosthenes in a 2048-bit stack bitmap, then the count and the sum of
 * the primes below a limit (1024..2047) taken from the packet. (The sieve itself runs to
 * a constant bound: with an unknown one, the kernel's verifier explores too many paths.) */
#include "bench.h"

BENCH(sieve)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 2 > end)
        return SHORT_PACKET;
    u32 n = 1024 + ((in[0] << 8 | in[1]) & 1023);
    u64 composite[32] = {};
    for (u32 i = 2; i < 46; i++) {
        if (composite[i >> 6] >> (i & 63) & 1)
            continue;
        for (u32 j = i * i; j < 2048; j += i)
            composite[j >> 6] |= 1ULL << (j & 63);
    }
    u64 count = 0, sum = 0;
    for (u32 i = 2; i < n; i++)
        if (!(composite[i >> 6] >> (i & 63) & 1)) {
            count++;
            sum += i;
        }
    return count << 32 | sum;
}
