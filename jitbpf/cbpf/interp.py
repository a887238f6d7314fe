"""The classic reference interpreter, with libpcap's ``bpf_filter`` semantics.

- A, X and M[] start at 0 (libpcap leaves M[] undefined; the validator rejects
  every program that could notice);
- packet loads are big-endian and bounded by the captured length: one that
  does not fit ends the filter with 0; an IND offset ``X + k`` does not wrap;
- LEN is the wire length (the packet's length before capture truncated it);
- division or modulo by X = 0 ends the filter with 0;
- shifts by X >= 32 give 0 (libpcap's rule; Linux masks the count to 5 bits);
- the return value is the u32 number of bytes to keep (0: drop the packet).

It does not validate: run it on programs :func:`jitbpf.cbpf.check.validate`
accepts (a :class:`jitbpf.cbpf.Filter` is one). Anything else still ends in a
BpfValidationError rather than a Python exception.
"""

from __future__ import annotations

from ..errors import BpfValidationError
from .isa import BPF_MEMWORDS, MASK32, OPCODES, Insn, Mode

_ALU = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a // b, "mod": lambda a, b: a % b, "and": lambda a, b: a & b,
    "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b, "neg": lambda a, b: -a,
    "lsh": lambda a, b: a << b if b < 32 else 0, "rsh": lambda a, b: a >> b if b < 32 else 0,
}
_COND = {"jeq": lambda a, b: a == b, "jgt": lambda a, b: a > b, "jge": lambda a, b: a >= b,
         "jset": lambda a, b: a & b != 0}


class _Stop(Exception):
    """An out-of-bounds load or a division by zero: the filter returns 0."""


def _load(packet: bytes, offset: int, size: int) -> int:
    if offset + size > len(packet):
        raise _Stop
    return int.from_bytes(packet[offset:offset + size], "big")


def run(insns: list[Insn], packet: bytes, wirelen: int | None = None) -> int:
    """The filter's return value for one packet (``wirelen`` defaults to its length)."""
    wirelen = len(packet) if wirelen is None else wirelen
    a = x = 0
    mem = [0] * BPF_MEMWORDS
    pc = 0
    try:
        while True:
            if pc >= len(insns):
                raise BpfValidationError("ran past the last instruction (no ret)", pc=pc)
            insn = insns[pc]
            spec = OPCODES.get(insn.code)
            if spec is None:
                raise BpfValidationError(f"opcode 0x{insn.code:02x} is not a classic BPF instruction", pc=pc)
            k, kind = insn.k, spec.kind
            pc += 1
            if kind in ("ld", "ldx"):
                mode = spec.mode
                if mode == Mode.ABS:
                    value = _load(packet, k, spec.size)
                elif mode == Mode.IND:
                    value = _load(packet, x + k, spec.size)
                elif mode == Mode.MSH:
                    value = (_load(packet, k, 1) & 0xF) << 2
                elif mode == Mode.LEN:
                    value = wirelen
                elif mode == Mode.MEM:
                    value = mem[k]
                else:
                    value = k
                if kind == "ld":
                    a = value
                else:
                    x = value
            elif kind == "alu":
                operand = x if spec.src == "x" else k
                if spec.op in ("div", "mod") and operand == 0:
                    raise _Stop
                a = _ALU[spec.op](a, operand) & MASK32
            elif kind == "jcond":
                pc += insn.jt if _COND[spec.op](a, x if spec.src == "x" else k) else insn.jf
            elif kind == "ja":
                pc += k
            elif kind == "ret":
                return a if spec.src == "a" else k
            elif kind == "st":
                mem[k] = a
            elif kind == "stx":
                mem[k] = x
            elif kind == "tax":
                x = a
            else:                                   # txa
                a = x
    except _Stop:
        return 0
    except IndexError:
        raise BpfValidationError(f"scratch word M[{insns[pc - 1].k}] does not exist", pc=pc - 1) from None
