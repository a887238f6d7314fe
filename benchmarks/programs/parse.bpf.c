// packet: random 64
/* Ethernet/IPv4/TCP parse: header checks, the IPv4 header checksum verified, the TCP
 * options walked (MSS, window scale, SACK permitted), a flow hash of the 5-tuple. */
#include "bench.h"

BENCH(eth_ip_tcp_parse)
{
    PACKET(ctx, data, end);
    const u8 *eth = data;
    if (eth + 14 > end)
        return 1;
    if ((eth[12] << 8 | eth[13]) != 0x0800)
        return 2;
    const u8 *ip = eth + 14;
    if (ip + 20 > end)
        return 3;
    u32 ihl = (ip[0] & 15) * 4;
    if (ip[0] >> 4 != 4 || ihl < 20 || ihl > 60)
        return 4;
    if (ip + ihl > end)
        return 5;
    u32 sum = 0;
    for (u32 i = 0; i < 60 && i < ihl; i += 2) {
        const u8 *word = ip + i;
        barrier_var(word);              /* keep the check (implied by ihl) for the verifier */
        if (word + 2 > end)
            return 5;
        sum += (u32)word[0] << 8 | word[1];
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    if (sum != 0xffff)
        return 6;
    if (ip[9] != 6)
        return 7;
    const u8 *tcp = ip + ihl;
    if (tcp + 20 > end)
        return 8;
    u32 doff = (tcp[12] >> 4) * 4;
    if (doff < 20 || tcp + doff > end)
        return 9;
    u32 mss = 0, wscale = 0, sack = 0;
    u32 off = 20;
    for (u32 n = 0; n < 8 && off < doff; n++) {
        const u8 *opt = tcp + off;
        barrier_var(opt);               /* keep the checks below (implied by doff) for the verifier */
        if (opt + 1 > end)
            break;
        u8 kind = opt[0];
        if (kind == 0)
            break;
        if (kind == 1) {
            off++;
            continue;
        }
        if (opt + 2 > end)
            break;
        u8 len = opt[1];
        if (len < 2 || len > 40)
            break;
        if (kind == 2 && len == 4 && opt + 4 <= end)
            mss = opt[2] << 8 | opt[3];
        else if (kind == 3 && len == 3 && opt + 3 <= end)
            wscale = opt[2];
        else if (kind == 4)
            sack = 1;
        off += len;
    }
    u64 h = 0xcbf29ce484222325ULL;
    const u8 *fields[3] = {ip + 12, ip + 16, tcp};
    for (u32 f = 0; f < 3; f++)
        for (u32 b = 0; b < 4; b++)
            h = (h ^ fields[f][b]) * 0x100000001b3ULL;
    h = (h ^ ip[9]) * 0x100000001b3ULL;
    return (h & 0xffffffff00000000ULL) | mss << 16 | wscale << 8 | sack << 4 | (tcp[13] & 15);
}
