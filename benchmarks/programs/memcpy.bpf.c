// cflags: -fno-builtin
// packet: random 512
/* Byte copy: 16 byte-by-byte copies of 256 packet bytes (each from the next offset) into
 * a stack buffer, each copy then folded by a non-inlined function (so no compiler can
 * drop the copy). */
#include "bench.h"

static NOINLINE u64 fold(const u64 *buf, u64 acc)
{
    for (u32 i = 0; i < 32; i++)
        acc = rotl64(acc, 5) ^ buf[i];
    return acc;
}

BENCH(byte_copy)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 16 + 256 > end)
        return SHORT_PACKET;
    u64 words[32];
    u8 *buf = (u8 *)words;
    u64 acc = 0;
    NO_UNROLL
    for (u32 r = 0; r < 16; r++) {
        NO_UNROLL
        for (u32 i = 0; i < 256; i++)
            buf[i] = in[r + i];
        acc = fold(words, acc);
    }
    return acc;
}
