// packet: random 512
/* Nested loops: the product of two 16x16 byte matrices from the packet (three nested
 * loops, 4096 multiply-adds), folded into a hash of the result matrix. */
#include "bench.h"

#define N 16

BENCH(nested_loops)
{
    PACKET(ctx, data, end);
    const u8 *a = data + PAYLOAD, *b = a + N * N;
    if (b + N * N > end)
        return SHORT_PACKET;
    u64 acc = 0;
    for (u32 i = 0; i < N; i++)
        for (u32 j = 0; j < N; j++) {
            u32 dot = 0;
            for (u32 k = 0; k < N; k++)
                dot += (u32)a[i * N + k] * b[k * N + j];
            acc = acc * 0x100000001b3ULL ^ dot;
        }
    return acc;
}
