"""The validator: Linux's ``bpf_check_classic`` rules (net/core/filter.c).

A program is accepted iff the kernel would accept it as a socket filter, with
two deliberate differences, both refusals or relaxations that can never give a
wrong answer:

- Linux ancillary loads (``SKF_AD_OFF + n``: protocol, ifindex, vlan tag ...)
  read socket-buffer metadata that a captured packet does not have: refused with
  a clear message rather than answered with a made-up value;
- the length limit (``BPF_MAXINSNS``, 4096) is the kernel's by default, but
  callers may lift it (``max_insns=None``): libpcap emits longer programs (a
  1,000-host filter is ~5,800 instructions) and every eBPF engine runs them.

Each rejection is one ``BpfValidationError`` naming the instruction, in the order
the kernel checks: every instruction, then the final ``ret``, then that no path
reads a scratch word M[k] before storing it (``check_load_and_stores``, the same
conservative forward pass, so exactly the kernel's programs pass).
"""

from __future__ import annotations

from ..errors import BpfValidationError
from .disasm import short
from .isa import ANCILLARY, BPF_MAXINSNS, BPF_MEMWORDS, MASK32, OPCODES, SKF_AD_OFF, Insn, Mode, to_s32


def _fail(insn: Insn, pc: int, problem: str) -> BpfValidationError:
    return BpfValidationError(f"{short(insn, pc)}: {problem}", pc=pc)


def check_insn(insn: Insn, pc: int, length: int) -> None:
    """The per-instruction rules (bpf_check_classic's loop)."""
    if not (0 <= insn.code <= 0xFFFF and 0 <= insn.jt <= 0xFF and 0 <= insn.jf <= 0xFF
            and 0 <= insn.k <= MASK32):
        raise BpfValidationError(f"fields out of range (code {insn.code}, jt {insn.jt}, jf {insn.jf}, "
                                 f"k {insn.k})", pc=pc)
    spec = OPCODES.get(insn.code)
    if spec is None:
        raise BpfValidationError(f"opcode 0x{insn.code:02x} is not a classic BPF instruction", pc=pc)
    k = insn.k
    if spec.kind == "alu" and spec.src == "k":
        if spec.op in ("div", "mod") and k == 0:
            raise _fail(insn, pc, "division by the constant 0")
        if spec.op in ("lsh", "rsh") and k >= 32:
            raise _fail(insn, pc, f"shift by {k} (must be below 32)")
    if spec.kind in ("st", "stx") or spec.mode == Mode.MEM:
        if k >= BPF_MEMWORDS:
            raise _fail(insn, pc, f"scratch word M[{k}] does not exist (M[0]..M[{BPF_MEMWORDS - 1}])")
    if spec.kind == "ja" and k >= length - pc - 1:
        if pc + 1 + to_s32(k) >= 0 and to_s32(k) < 0:
            raise _fail(insn, pc, "jumps backwards (classic BPF jumps only forward, so every filter ends)")
        raise _fail(insn, pc, f"jump target {pc + 1 + k} is past the last instruction ({length - 1})")
    if spec.kind == "jcond":
        for name, off in (("jt", insn.jt), ("jf", insn.jf)):
            if pc + 1 + off >= length:
                raise _fail(insn, pc, f"{name} target {pc + 1 + off} is past the last instruction ({length - 1})")
    if spec.mode == Mode.ABS and k >= SKF_AD_OFF:
        what = ANCILLARY.get(k - SKF_AD_OFF)
        if what is None:
            raise _fail(insn, pc, f"unknown Linux ancillary load SKF_AD_OFF+{k - SKF_AD_OFF}")
        raise _fail(insn, pc, f"Linux ancillary load SKF_AD_OFF+{k - SKF_AD_OFF} ({what}) reads socket "
                              "metadata a captured packet does not have: not supported")


def check_memory(insns: list[Insn]) -> None:
    """No scratch word is read before every path to the read has stored it
    (the kernel's check_load_and_stores: one pass, jump targets AND-ed in)."""
    masks = [0xFFFF] * len(insns)
    valid = 0
    for pc, insn in enumerate(insns):
        valid &= masks[pc]
        spec = OPCODES[insn.code]
        if spec.kind in ("st", "stx"):
            valid |= 1 << insn.k
        elif spec.mode == Mode.MEM:
            if not valid & (1 << insn.k):
                raise _fail(insn, pc, f"reads M[{insn.k}] before every path to it stores M[{insn.k}]")
        elif spec.kind == "ja":
            masks[pc + 1 + insn.k] &= valid
            valid = 0xFFFF
        elif spec.kind == "jcond":
            masks[pc + 1 + insn.jt] &= valid
            masks[pc + 1 + insn.jf] &= valid
            valid = 0xFFFF


def validate(insns: list[Insn], max_insns: int | None = BPF_MAXINSNS) -> None:
    """Raise BpfValidationError unless the kernel's rules accept ``insns``."""
    if not insns:
        raise BpfValidationError("empty program (a classic program needs at least a ret)")
    if max_insns is not None and len(insns) > max_insns:
        raise BpfValidationError(f"{len(insns)} instructions, more than the limit of {max_insns} "
                                 "(BPF_MAXINSNS)")
    for pc, insn in enumerate(insns):
        check_insn(insn, pc, len(insns))
    last = len(insns) - 1
    if OPCODES[insns[last].code].kind != "ret":
        raise _fail(insns[last], last, "the last instruction must be a ret")
    check_memory(insns)
