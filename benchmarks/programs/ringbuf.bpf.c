// packet: random 256
/* Ring buffer output: 4 records of 16 bytes per run (sums of packet words), written with
 * bpf_ringbuf_output; the result mixes the records and every return value, so a full
 * ring shows. The harness empties the ring between timed batches. */
#include "bench.h"

RINGBUF(events, 1 << 24);

struct record {
    u64 index, sum;
};

BENCH(ringbuf_output)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 256 > end)
        return SHORT_PACKET;
    u64 acc = 0;
    for (u32 r = 0; r < 4; r++) {
        struct record rec = {r, 0};
        for (u32 w = 0; w < 8; w++)
            rec.sum = rotl64(rec.sum, 9) + load64(in + 64 * r + 8 * w);
        long err = bpf_ringbuf_output(&events, &rec, sizeof(rec), BPF_RB_NO_WAKEUP);
        acc = acc * 3 + rec.sum + (u64)err;
    }
    return acc;
}
