// packet: random 512
/* bpf-to-bpf call chain: for each of 64 packet words, four nested non-inlined
 * functions, each a little arithmetic around the next call. */
#include "bench.h"

static NOINLINE u64 f1(u64 x) { return (x ^ x >> 17) * 0xed5ad4bbULL; }
static NOINLINE u64 f2(u64 x) { return f1(x + 0x165667b1ULL) ^ x >> 11; }
static NOINLINE u64 f3(u64 x) { return f2(rotl64(x, 15)) + 0x27d4eb2fULL; }
static NOINLINE u64 f4(u64 x) { return f3(x * 0x9e3779b1ULL) ^ x; }

BENCH(call_chain)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 512 > end)
        return SHORT_PACKET;
    u64 acc = 0;
    for (u32 w = 0; w < 64; w++)
        acc = acc * 7 + f4(load64(in + 8 * w));
    return acc;
}
