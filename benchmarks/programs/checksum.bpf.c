// packet: random 1434
/* Internet checksum (RFC 1071) of the TCP segment: 16-bit big-endian words summed,
 * the carries folded, the sum complemented. */
#include "bench.h"

BENCH(inet_checksum)
{
    PACKET(ctx, data, end);
    const u8 *seg = data + 34;
    if (seg + 1466 > end)
        return SHORT_PACKET;
    u64 sum = 0;
    for (u32 i = 0; i < 1466; i += 2)
        sum += (u32)seg[i] << 8 | seg[i + 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return ~sum & 0xffff;
}
