"""The classic BPF instruction set (``struct sock_filter``) as data.

One source of truth for classic opcodes, the way :mod:`jitbpf.isa` is for eBPF:
the validator, the interpreter, the disassembler and the translation to eBPF
all read :data:`OPCODES`. An instruction is ``{u16 code; u8 jt; u8 jf; u32 k}``
in host byte order; the machine has a 32-bit accumulator A, an index register X
and sixteen 32-bit scratch words M[0..15].

The operand formats in the table are libpcap's ``bpf_image`` spellings (what
``tcpdump -d`` prints); ``{k}`` is k as unsigned, ``{sk}`` as signed, ``{x}``
the hex of k.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MASK32 = 0xFFFF_FFFF
INSN_SIZE = 8
INSN_FORMAT = "=HBBI"         # struct sock_filter, host byte order
BPF_MEMWORDS = 16             # scratch words M[0..15]
BPF_MAXINSNS = 4096           # the kernel's limit on a socket filter's length

#: Linux's negative-offset load areas (k as an unsigned 32-bit number).
SKF_AD_OFF = 0xFFFF_F000      # ancillary data of the socket buffer
SKF_NET_OFF = 0xFFF0_0000     # relative to the network header
SKF_LL_OFF = 0xFFE0_0000      # relative to the link-layer header
#: Linux ancillary loads (SKF_AD_OFF + offset) and libpcap's names for them.
ANCILLARY = {0: "proto", 4: "type", 8: "ifidx", 12: "nla", 16: "nlan", 20: "mark", 24: "queue",
             28: "hatype", 32: "rxhash", 36: "cpu", 40: "xor_x", 44: "vlan_tci", 48: "vlanp",
             52: "poff", 56: "random", 60: "vlan_tpid"}


class Cls(IntEnum):
    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    RET = 0x06
    MISC = 0x07


class Size(IntEnum):
    W = 0x00
    H = 0x08
    B = 0x10


class Mode(IntEnum):
    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    LEN = 0x80
    MSH = 0xA0


SIZE_BYTES = {Size.W: 4, Size.H: 2, Size.B: 1}
SIZE_SUFFIX = {Size.W: "", Size.H: "h", Size.B: "b"}
SRC_K = 0x00
SRC_X = 0x08
RET_K = 0x00
RET_A = 0x10
MISC_TAX = 0x00
MISC_TXA = 0x80

#: ALU operation codes (code & 0xf0) -> name.
ALU_OPS = {0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or", 0x50: "and",
           0x60: "lsh", 0x70: "rsh", 0x80: "neg", 0x90: "mod", 0xA0: "xor"}
#: Jump operation codes -> name (ja is unconditional, the others compare A with k or X).
JMP_OPS = {0x00: "ja", 0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset"}
#: ALU immediates libpcap prints in hex (the others in signed decimal).
_HEX_ALU = frozenset({"and", "or", "xor"})


@dataclass(frozen=True, slots=True)
class Insn:
    """One classic instruction, ``struct sock_filter``."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def encode(self) -> bytes:
        return struct.pack(INSN_FORMAT, self.code, self.jt, self.jf, self.k)


@dataclass(frozen=True, slots=True)
class OpInfo:
    """What one classic opcode means.

    ``kind`` selects the semantics family: ``ld`` (into A), ``ldx`` (into X),
    ``st``/``stx`` (A/X into M[k]), ``alu`` (A op= k/X), ``ja``, ``jcond``
    (compare A with k/X, then jt/jf), ``ret`` (k or A), ``tax``, ``txa``.
    ``mode`` is the load addressing mode, ``size`` the packet access width in
    bytes, ``src`` "k" or "x" for ALU and jumps (``ret``: "k" or "a").
    ``operand`` is libpcap's operand spelling for the disassembler.
    """

    name: str
    kind: str
    op: str = ""
    mode: Mode | None = None
    size: int = 4
    src: str = "k"
    operand: str = ""


def _build() -> dict[int, OpInfo]:
    t: dict[int, OpInfo] = {}

    def add(code: int, spec: OpInfo) -> None:
        assert code not in t, hex(code)
        t[code] = spec

    for size, nbytes in SIZE_BYTES.items():
        name = "ld" + SIZE_SUFFIX[size]
        add(Cls.LD | size | Mode.ABS, OpInfo(name, "ld", mode=Mode.ABS, size=nbytes, operand="[{sk}]"))
        add(Cls.LD | size | Mode.IND, OpInfo(name, "ld", mode=Mode.IND, size=nbytes, operand="[x + {sk}]"))
    add(Cls.LD | Mode.IMM, OpInfo("ld", "ld", mode=Mode.IMM, operand="#{x}"))
    add(Cls.LD | Mode.MEM, OpInfo("ld", "ld", mode=Mode.MEM, operand="M[{sk}]"))
    add(Cls.LD | Mode.LEN, OpInfo("ld", "ld", mode=Mode.LEN, operand="#pktlen"))
    add(Cls.LDX | Mode.IMM, OpInfo("ldx", "ldx", mode=Mode.IMM, operand="#{x}"))
    add(Cls.LDX | Mode.MEM, OpInfo("ldx", "ldx", mode=Mode.MEM, operand="M[{sk}]"))
    # libpcap 1.10's bpf_image prints "unimp 0x81" here; this spelling matches "ld #pktlen".
    add(Cls.LDX | Mode.LEN, OpInfo("ldx", "ldx", mode=Mode.LEN, operand="#pktlen"))
    add(Cls.LDX | Size.B | Mode.MSH, OpInfo("ldxb", "ldx", mode=Mode.MSH, size=1, operand="4*([{sk}]&0xf)"))
    add(Cls.ST, OpInfo("st", "st", operand="M[{sk}]"))
    add(Cls.STX, OpInfo("stx", "stx", operand="M[{sk}]"))

    for code, op in ALU_OPS.items():
        if op == "neg":
            add(Cls.ALU | code, OpInfo(op, "alu", op))
            continue
        add(Cls.ALU | code | SRC_K, OpInfo(op, "alu", op, operand="#{x}" if op in _HEX_ALU else "#{sk}"))
        add(Cls.ALU | code | SRC_X, OpInfo(op, "alu", op, src="x", operand="x"))
    for code, op in JMP_OPS.items():
        if op == "ja":
            add(Cls.JMP | code, OpInfo(op, "ja", op, operand="{target}"))
            continue
        add(Cls.JMP | code | SRC_K, OpInfo(op, "jcond", op, operand="#{x}"))
        add(Cls.JMP | code | SRC_X, OpInfo(op, "jcond", op, src="x", operand="x"))
    add(Cls.RET | RET_K, OpInfo("ret", "ret", src="k", operand="#{sk}"))
    add(Cls.RET | RET_A, OpInfo("ret", "ret", src="a"))
    add(Cls.MISC | MISC_TAX, OpInfo("tax", "tax"))
    add(Cls.MISC | MISC_TXA, OpInfo("txa", "txa"))
    return t


#: code -> OpInfo: every instruction the kernel's bpf_check_classic accepts.
OPCODES: dict[int, OpInfo] = _build()


def to_s32(x: int) -> int:
    x &= MASK32
    return x - (1 << 32) if x & 0x8000_0000 else x


def decode(data: bytes) -> list[Insn]:
    """``struct sock_filter`` array (host byte order) -> instructions; the caller checks the length."""
    return [Insn(*fields) for fields in struct.iter_unpack(INSN_FORMAT, data)]


def encode(insns: list[Insn]) -> bytes:
    return b"".join(insn.encode() for insn in insns)
