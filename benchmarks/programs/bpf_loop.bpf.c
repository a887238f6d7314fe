// packet: random 64
/* The tight integer loop of loop.bpf.c as bpf_loop(1024, callback): the kernel inlines
 * bpf_loop into a plain loop; other runtimes call the callback 1024 times. */
#include "bench.h"

struct state {
    u64 x;
};

static long step(u32 i, void *data)
{
    struct state *s = data;
    u64 x = s->x;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    s->x = x + i;
    return 0;
}

BENCH(bpf_loop_steps)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 8 > end)
        return SHORT_PACKET;
    struct state s = {load64(in)};
    long n = bpf_loop(1024, step, &s, 0);
    return s.x ^ (u64)n;
}
