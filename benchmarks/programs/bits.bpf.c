// packet: random 1024
/* Bit tricks over 128 packet words: bit reversal (SWAR), next power of two, parity,
 * count of trailing zeros through a de Bruijn table, Gray code. */
#include "bench.h"

static const u8 debruijn[64] = {
    0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4,
    62, 55, 59, 36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12, 5,
    63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23, 11,
    46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6,
};

static inline u64 reverse(u64 x)
{
    x = (x >> 1 & 0x5555555555555555ULL) | (x & 0x5555555555555555ULL) << 1;
    x = (x >> 2 & 0x3333333333333333ULL) | (x & 0x3333333333333333ULL) << 2;
    x = (x >> 4 & 0x0f0f0f0f0f0f0f0fULL) | (x & 0x0f0f0f0f0f0f0f0fULL) << 4;
    x = (x >> 8 & 0x00ff00ff00ff00ffULL) | (x & 0x00ff00ff00ff00ffULL) << 8;
    x = (x >> 16 & 0x0000ffff0000ffffULL) | (x & 0x0000ffff0000ffffULL) << 16;
    return x >> 32 | x << 32;
}

static inline u64 next_pow2(u64 x)
{
    x--;
    x |= x >> 1; x |= x >> 2; x |= x >> 4; x |= x >> 8; x |= x >> 16; x |= x >> 32;
    return x + 1;
}

static inline u64 parity(u64 x)
{
    x ^= x >> 32; x ^= x >> 16; x ^= x >> 8; x ^= x >> 4;
    return (0x6996 >> (x & 15)) & 1;
}

static inline u64 ctz(u64 x)
{
    return x ? debruijn[((x & -x) * 0x03f79d71b4cb0a89ULL) >> 58] : 64;
}

BENCH(bit_tricks)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 1024 > end)
        return SHORT_PACKET;
    u64 acc = 0;
    for (u32 i = 0; i < 128; i++) {
        u64 x = load64(in + 8 * i) >> (i & 31);
        acc += reverse(x) ^ next_pow2(x >> 8);
        acc = rotl64(acc, 11) ^ (parity(x) << 7 | ctz(x)) ^ (x ^ x >> 1);
    }
    return acc;
}
