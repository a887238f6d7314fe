// packet: words 512
/* String compare: the payload is 32 NUL-padded 16-byte words; the first 8 are a
 * dictionary, each of the other 24 is looked up in it with a strcmp loop (words share
 * prefixes, so comparisons run several bytes). Matches counted and their positions mixed. */
#include "bench.h"

#define WORD 16

static inline int compare(const u8 *a, const u8 *b)
{
    for (u32 c = 0; c < WORD; c++) {
        if (a[c] != b[c])
            return (int)a[c] - (int)b[c];
        if (!a[c])
            return 0;
    }
    return 0;
}

BENCH(string_compare)
{
    PACKET(ctx, data, end);
    const u8 *in = data + PAYLOAD;
    if (in + 32 * WORD > end)
        return SHORT_PACKET;
    u64 matches = 0, acc = 0;
    for (u32 w = 8; w < 32; w++) {
        for (u32 k = 0; k < 8; k++) {
            int d = compare(in + w * WORD, in + k * WORD);
            if (d == 0) {
                matches++;
                acc = acc * 33 + w * 8 + k;
                break;
            }
            acc += d < 0;
        }
    }
    return matches << 48 | (acc & 0xffffffffffffULL);
}
