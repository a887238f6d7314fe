"""Classic BPF -> eBPF (the idea of Linux's ``bpf_convert_filter``, written for raw memory).

The result is a raw-memory jitbpf Program that every eBPF engine runs. Its input
memory is one *filter record*: the 16-byte pcap record header, in host byte
order, then the captured bytes::

    u32 ts_sec; u32 ts_frac; u32 caplen; u32 wirelen; u8 packet[caplen];

so r1 = the record and r2 = its length; the captured length is ``r2 - 16`` (the
caplen field is not read) and LEN loads ``wirelen``. A little-endian pcap file
is a run of such records already, so a capture needs no copying to be filtered.
r0 is the classic return value: the number of bytes to keep, 0 to drop.

Registers: A = r0 and X = r7 (32-bit values kept zero-extended: ALU32 and
JMP32 operations), M[k] = the stack word at r10 - 64 + 4k, r3 and r4 scratch.
Packet loads are not eBPF LD_ABS/LD_IND (a runtime call per load in the JITs)
but an explicit bounds check against r2, a direct load and a byte swap, so the
program is pure compute and every failed check jumps to one ``r0 = 0; exit``.
Semantics are the interpreter's (libpcap's): see :mod:`jitbpf.cbpf.interp`.

Translation is one function over the table :data:`RECIPES` (classic opcode ->
eBPF steps written with :mod:`jitbpf.isa` mnemonics); three generic rules keep
it small: an immediate too wide for its eBPF field is loaded with ``lddw`` into
r4 first, an offset beyond 16 bits addresses through r4, and a jump past the
16-bit reach becomes a ``gotol`` (branch relaxation), so programs of any length
translate.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Callable, Union

from .. import isa
from ..program import Program, from_insns
from .check import validate
from .isa import BPF_MAXINSNS, BPF_MEMWORDS, OPCODES, Insn, Mode

RECORD_HEADER = struct.Struct("=IIII")     # ts_sec, ts_frac, caplen, wirelen
HEADER = RECORD_HEADER.size
WIRELEN_OFFSET = 12

A, X, T, U, MEM, LEN, FP = 0, 7, 3, 4, 1, 2, isa.FP
M_BASE = -4 * BPF_MEMWORDS                 # M[k] lives at r10 + M_BASE + 4k

Value = Union[int, Callable[[int], int]]  # a constant, or a function of the classic k


def K(k: int) -> int:
    return k


@dataclass(frozen=True)
class Step:
    """One eBPF instruction of a recipe: ``op`` is a jitbpf.isa mnemonic; ``src``
    a register (register form) or None (immediate form); ``to`` a jump target:
    ``jt``/``jf``/``ja`` (the classic targets), ``next`` (the next classic
    instruction), ``fail`` (return 0) or a label of the recipe. Once resolved for
    one classic instruction, imm and off are numbers and ``to`` a label key; op
    ``label`` then marks the place a label names."""

    op: str
    dst: int = 0
    src: int | None = None
    imm: Value = 0
    off: Value = 0
    to: str | tuple | None = None
    ensures: Value | None = None     # a bounds check: passing it proves r2 >= this


@dataclass(frozen=True)
class Label:
    name: str


def _load(dst: int, size: int, indexed: bool) -> tuple:
    """A big-endian packet load into dst: bounds check, direct load, byte swap."""
    ldx = "ldx" + {1: "b", 2: "h", 4: "w"}[size]
    swap = () if size == 1 else (Step(f"be{8 * size}", dst),)

    def end(k: int) -> int:                       # the record length the load needs
        return k + size + HEADER

    if indexed:        # T = X + k + size + HEADER, exact in 64 bits; T > r2 is out of bounds
        return (Step("mov", T, imm=end), Step("add", T, X), Step("jgt", T, LEN, to="fail"), Step("add", T, MEM),
                Step(ldx, dst, T, off=-size)) + swap
    return (Step("jlt", LEN, imm=end, to="fail", ensures=end), Step(ldx, dst, MEM, off=lambda k: k + HEADER)) + swap


def _recipe(code: int) -> tuple:
    spec = OPCODES[code]
    kind, op = spec.kind, spec.op
    if kind in ("ld", "ldx"):
        dst = A if kind == "ld" else X
        return {
            Mode.IMM: lambda: (Step("mov32", dst, imm=K),),
            Mode.MEM: lambda: (Step("ldxw", dst, FP, off=lambda k: M_BASE + 4 * k),),
            Mode.LEN: lambda: (Step("jlt", LEN, imm=HEADER, to="fail", ensures=HEADER),
                               Step("ldxw", dst, MEM, off=WIRELEN_OFFSET)),
            Mode.ABS: lambda: _load(dst, spec.size, False),
            Mode.IND: lambda: _load(dst, spec.size, True),
            Mode.MSH: lambda: _load(X, 1, False) + (Step("and32", X, imm=0xF), Step("lsh32", X, imm=2)),
        }[spec.mode]()
    if kind in ("st", "stx"):
        return (Step("stxw", FP, A if kind == "st" else X, off=lambda k: M_BASE + 4 * k),)
    if kind == "alu":
        if op == "neg":
            return (Step("neg32", A),)
        if spec.src == "k":
            return (Step(op + "32", A, imm=K),)
        if op in ("div", "mod"):                   # X = 0 ends the filter with 0
            return (Step("jeq", X, imm=0, to="fail"), Step(op + "32", A, X))
        if op in ("lsh", "rsh"):                   # X >= 32 gives 0 (libpcap)
            return (Step("jlt", X, imm=32, to="shift"), Step("mov32", A, imm=0), Step("ja", to="next"),
                    Label("shift"), Step(op + "32", A, X))
        return (Step(op + "32", A, X),)
    if kind == "jcond":
        compare = Step(op + "32", A, X, to="jt") if spec.src == "x" else Step(op + "32", A, imm=K, to="jt")
        return (compare, Step("ja", to="jf"))
    if kind == "ja":
        return (Step("ja", to="ja"),)
    if kind == "ret":
        return (Step("exit"),) if spec.src == "a" else (Step("mov32", A, imm=K), Step("exit"))
    return (Step("mov32", X, A),) if kind == "tax" else (Step("mov32", A, X),)


#: classic opcode -> the eBPF steps it becomes.
RECIPES: dict[int, tuple] = {code: _recipe(code) for code in OPCODES}
PROLOGUE = (Step("mov32", A, imm=0), Step("mov32", X, imm=0))       # A = X = 0
FAIL_BLOCK = (Step("mov32", A, imm=0), Step("exit"))

# --------------------------------------------------------------------------- eBPF encoding


def _forms() -> dict[tuple[str, bool], tuple[int, str | None, int | None]]:
    """(mnemonic, register form?) -> (opcode, discriminating field, its value), from jitbpf.isa."""
    forms: dict[tuple[str, bool], tuple[int, str | None, int | None]] = {}
    for (opcode, disc), spec in isa.OPCODES.items():
        if spec.kind == "alu" and spec.signed:
            continue                               # sdiv/smod/movsx share opcodes with div/mod/mov
        forms[(spec.name, "src" in spec.fields and spec.kind != "end")] = (opcode, isa.DISCRIMINATOR[opcode], disc)
    return forms


_FORMS = _forms()
#: ALU and jump mnemonics whose immediate is read as 32 bits (any u32 fits).
_IMM32 = frozenset(spec.name for spec in isa.OPCODES.values() if spec.kind in ("alu", "jcond") and spec.width == 32)
_INVERSE = {a + w: b + w for x, y in (("jeq", "jne"), ("jgt", "jle"), ("jge", "jlt"))
            for a, b in ((x, y), (y, x)) for w in ("", "32")}


def _fits(value: int, bits: int) -> bool:
    return -(1 << (bits - 1)) <= value < (1 << (bits - 1))


def _encode(item: Step, off: int = 0) -> isa.Insn:
    if item.op == "lddw":
        return isa.Insn(isa.OP_LDDW, item.dst, 0, 0, isa.to_s32(item.imm), isa.to_s32(item.imm >> 32))
    opcode, field, disc = _FORMS[(item.op, item.src is not None)]
    fields = {"dst": item.dst, "src": item.src or 0, "off": off if item.to else item.off, "imm": item.imm}
    if field is not None:
        fields[field] = disc
    return isa.Insn(opcode, **fields)


def _resolve(step: Step, k: int, target: Callable[[str], tuple]) -> list[Step]:
    """One step with k filled in, the wide-immediate and wide-offset rules applied."""
    imm = step.imm(k) if callable(step.imm) else step.imm
    off = step.off(k) if callable(step.off) else step.off
    item = replace(step, imm=imm, off=off, to=target(step.to) if step.to else None, ensures=None)
    out = []
    if step.src is None and step.op in _IMM32:
        item = replace(item, imm=isa.to_s32(imm))
    elif step.src is None and not _fits(imm, 32):     # a 64-bit operation's constant beyond s32
        out.append(Step("lddw", U, imm=imm & isa.MASK64))
        item = replace(item, src=U, imm=0)
    if not _fits(off, 16):                            # a load from base + off, through r4
        assert step.op.startswith("ldx"), step
        out += [Step("lddw", U, imm=off & isa.MASK64), Step("add", U, item.src)]
        item = replace(item, src=U, off=0)
    return out + [item]


def _simplify(items: list[Step], next_label: tuple) -> list[Step]:
    """A conditional jump to the next instruction followed by ``ja L`` becomes the
    inverted jump to L; a final ``ja`` to the next instruction disappears."""
    out: list[Step] = []
    for item in items:
        prev = out[-1] if out else None
        if item.op == "ja" and prev is not None and prev.to == next_label and prev.op in _INVERSE:
            out[-1] = replace(prev, op=_INVERSE[prev.op], to=item.to)
            continue
        out.append(item)
    if out and out[-1].op == "ja" and out[-1].to == next_label:
        out.pop()
    return out


def _layout(items: list[Step]) -> list[isa.Insn]:
    """Slots for the items, with branch relaxation: a jump whose target lies beyond
    16 bits becomes ``gotol``, a conditional one the inverted jump over a gotol.
    Only jumps to the fail block and classic ``ja`` can be that far: jt/jf reach
    at most 255 classic instructions (a few thousand slots), so a jset, which has
    no inverse, never needs the long form."""
    long: set[int] = set()

    def size(i: int, item: Step) -> int:
        if item.op == "label":
            return 0
        if item.op == "lddw":
            return 2
        return 2 if i in long and item.op != "ja" else 1

    while True:
        pos = [0] * (len(items) + 1)
        for i, item in enumerate(items):
            pos[i + 1] = pos[i] + size(i, item)
        where = {item.to: pos[i] for i, item in enumerate(items) if item.op == "label"}
        grown = {i for i, item in enumerate(items) if item.to is not None and item.op != "label"
                 and i not in long and not _fits(where[item.to] - pos[i] - 1, 16)}
        if not grown:
            break
        long |= grown
    slots: list[isa.Insn] = []
    for i, item in enumerate(items):
        if item.op == "label":
            continue
        if item.to is None:
            slots.append(_encode(item))
            continue
        target = where[item.to]
        if i not in long:
            slots.append(_encode(item, off=target - pos[i] - 1))
        elif item.op == "ja":
            slots.append(isa.Insn(isa.OP_JA32, imm=target - pos[i] - 1))
        else:
            slots += [_encode(replace(item, op=_INVERSE[item.op]), off=1),
                      isa.Insn(isa.OP_JA32, imm=target - pos[i] - 2)]
    return isa.to_slots(slots)


def to_ebpf_insns(insns: list[Insn], max_insns: int | None = BPF_MAXINSNS) -> list[isa.Insn]:
    """The eBPF slots of a classic program (validated first).

    One forward pass (classic jumps only go forward) carries, per instruction,
    the record length every path to it has already checked, or None where no
    path arrives: unreachable instructions are not translated (less to compile,
    and the kernel's verifier refuses unreachable code), and a bounds check that
    an earlier one implies is left out (``ldb [23]`` after ``ldh [30]``).
    """
    validate(insns, max_insns)
    checked: list[int | None] = [None] * len(insns)
    checked[0] = 0
    items: list[Step] = []

    def emit(steps: tuple, pc: int, k: int = 0, targets: dict[str, tuple] | None = None, have: int = 0) -> int:
        targets = targets or {}
        expanded: list[Step] = []
        for step in steps:
            if isinstance(step, Label):
                expanded.append(Step("label", to=("local", pc, step.name)))
                continue
            if step.ensures is not None:
                need = step.ensures(k) if callable(step.ensures) else step.ensures
                if need <= have:
                    continue
                have = need
            expanded += _resolve(step, k, lambda to: targets.get(to, ("local", pc, to)))
        items.extend(_simplify(expanded, targets["next"]) if "next" in targets else expanded)
        return have

    emit(PROLOGUE, -1)
    for pc, insn in enumerate(insns):
        have = checked[pc]
        if have is None:
            continue
        items.append(Step("label", to=("pc", pc)))
        have = emit(RECIPES[insn.code], pc, insn.k,
                    {"jt": ("pc", pc + 1 + insn.jt), "jf": ("pc", pc + 1 + insn.jf), "ja": ("pc", pc + 1 + insn.k),
                     "next": ("pc", pc + 1), "fail": ("fail",)}, have)
        for succ in _successors(insn, pc):
            checked[succ] = have if checked[succ] is None else min(checked[succ], have)
    if any(item.to == ("fail",) for item in items if item.op != "label"):
        items.append(Step("label", to=("fail",)))
        emit(FAIL_BLOCK, -1)
    return _layout(items)


def _successors(insn: Insn, pc: int) -> tuple[int, ...]:
    spec = OPCODES[insn.code]
    if spec.kind == "jcond":
        return pc + 1 + insn.jt, pc + 1 + insn.jf
    if spec.kind == "ja":
        return (pc + 1 + insn.k,)
    return () if spec.kind == "ret" else (pc + 1,)


def to_ebpf(insns: list[Insn], name: str = "cbpf", max_insns: int | None = BPF_MAXINSNS) -> Program:
    """A raw-memory jitbpf Program computing the classic program over a filter record."""
    return from_insns(to_ebpf_insns(insns, max_insns), name).program()


def record(packet: bytes, wirelen: int | None = None, ts: tuple[int, int] = (0, 0)) -> bytes:
    """The input memory of a translated filter for one packet."""
    wirelen = len(packet) if wirelen is None else wirelen
    return RECORD_HEADER.pack(ts[0], ts[1], len(packet), wirelen) + packet
