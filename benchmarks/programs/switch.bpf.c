// packet: random 512
/* Switch dispatch: a 16-opcode register VM runs 1024 steps of the packet's 256 two-byte
 * instructions (opcode in the low nibble, registers in the high one, then an operand);
 * jumps wrap around the code. gcc makes a jump table of the switch. */
#include "bench.h"

BENCH(switch_vm)
{
    PACKET(ctx, data, end);
    const u8 *code = data + PAYLOAD;
    if (code + 512 > end)
        return SHORT_PACKET;
    u64 r[4] = {1, 2, 3, 4};
    u32 pc = 0;
    for (u32 step = 0; step < 1024; step++) {
        const u8 *insn = code + 2 * pc;
        if (insn + 2 > end)                /* the verifier checks every access */
            break;
        u8 op = insn[0], arg = insn[1];
        u32 d = op >> 4 & 3, s = op >> 6;
        pc = (pc + 1) & 255;
        switch (op & 15) {
        case 0: r[d] += r[s]; break;
        case 1: r[d] -= r[s]; break;
        case 2: r[d] ^= r[s]; break;
        case 3: r[d] |= arg; break;
        case 4: r[d] &= r[s] | arg; break;
        case 5: r[d] *= arg | 1; break;
        case 6: r[d] <<= arg & 7; break;
        case 7: r[d] >>= arg & 7; break;
        case 8: r[d] = rotl64(r[d], arg); break;
        case 9: r[d] = arg; break;
        case 10: r[d] += arg; break;
        case 11: if (r[d] & 1) pc = (pc + arg) & 255; break;
        case 12: if (r[d] > r[s]) pc = (pc - (arg & 15)) & 255; break;
        case 13: r[d] = ~r[d]; break;
        case 14: r[d] = r[d] >> 32 | r[d] << 32; break;
        default: r[d] ^= r[d] >> 7; break;
        }
    }
    return r[0] ^ r[1] * 3 ^ r[2] * 5 ^ r[3] * 7;
}
