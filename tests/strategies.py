"""Hypothesis strategies for random valid instructions and programs (shared by the
round-trip tests and the engine cross-checks)."""

from __future__ import annotations

from hypothesis import strategies as st

from jitbpf import isa
from jitbpf.isa import Insn

regs = st.integers(0, 9)               # writable registers
any_reg = st.integers(0, 10)
s16 = st.integers(-(1 << 15), (1 << 15) - 1)
interesting32 = st.sampled_from([0, 1, -1, 2, 31, 32, 63, 64, 0x7FFFFFFF, -0x80000000, 0x80, 0xFF, 0xFFFF])
s32 = st.one_of(interesting32, st.integers(-(1 << 31), (1 << 31) - 1))


@st.composite
def valid_insn(draw, kinds: frozenset[str] | None = None) -> list[Insn]:
    """One valid instruction (as slots), fields drawn to respect the opcode table;
    ``kinds`` limits the OpInfo kinds drawn (default: all but exit and calls)."""
    forms = [k for k, spec in isa.OPCODES.items() if not spec.internal
             and (spec.kind in kinds if kinds else spec.kind not in ("exit", "call", "callx"))]
    opcode, disc = draw(st.sampled_from(sorted(forms, key=lambda k: (k[0], k[1] or 0))))
    spec = isa.OPCODES[(opcode, disc)]
    fields = {"opcode": opcode, "dst": 0, "src": 0, "off": 0, "imm": 0}
    if "dst" in spec.fields:
        fields["dst"] = draw(regs if spec.kind in ("alu", "end", "ldx", "lddw") else any_reg)
    if "src" in spec.fields:
        fields["src"] = draw(st.just(0) if spec.kind == "lddw" else regs if spec.kind == "atomic" else any_reg)
    if "off" in spec.fields:
        fields["off"] = draw(s16)
    if "imm" in spec.fields:
        fields["imm"] = draw(s32)
    if disc is not None:
        fields[isa.DISCRIMINATOR[opcode]] = disc
    if spec.kind == "ja" and spec.width == 32:
        fields["imm"] = draw(s16)
    if spec.kind == "lddw":
        return isa.lddw(fields["dst"], draw(st.integers(0, isa.MASK64)))
    return [Insn(**fields)]


@st.composite
def valid_program(draw, max_len: int = 12, kinds: frozenset[str] | None = None,
                  forward_only: bool = False) -> list[Insn]:
    """A validating program: random instructions with jumps retargeted into range, then
    exit. ``forward_only`` makes every jump go forward, so the program terminates."""
    body: list[Insn] = []
    for _ in range(draw(st.integers(0, max_len))):
        body += draw(valid_insn(kinds))
    body.append(Insn(isa.OP_EXIT))
    starts = [i for i in range(len(body)) if i == 0 or not body[i - 1].is_lddw]
    out = []
    for pc, insn in enumerate(body):
        spec = isa.info(insn) if pc in starts else None
        if spec is not None and spec.kind in ("ja", "jcond"):
            choices = [s for s in starts if s > pc or (not forward_only and s != pc)]
            target = draw(st.sampled_from(choices or [len(body) - 1]))
            rel = target - pc - 1
            if spec.kind == "ja" and spec.width == 32:
                insn = Insn(insn.opcode, 0, 0, 0, rel)
            else:
                insn = Insn(insn.opcode, insn.dst, insn.src, rel, insn.imm)
        out.append(insn)
    return out


#: Straight-line arithmetic with forward jumps: programs that always terminate.
ALU_JMP = frozenset({"alu", "end", "jcond", "ja", "lddw"})
