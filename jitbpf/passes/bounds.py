"""Bounds checks (``bounds_check=True``): a ``check`` before every memory access that is
not safe by construction, for every engine.

An access is safe by construction when its base is known to be r10 + k
(:meth:`~jitbpf.analysis.flow.ProgramFlow.bases`) and it lies inside the current
512-byte frame: every engine gives each frame its own valid memory. Accesses the
verifier proved in bounds (``proven``: slots of this program) need no check either.
Each engine lowers ``check`` as it likes (the interpreter checks every access anyway);
a failed check is the interpreter's out-of-bounds error at the access's slot.
"""

from __future__ import annotations

from .. import isa
from ..analysis.flow import ProgramFlow
from ..isa import FP, STACK_SIZE, Insn, OpInfo
from .rewrite import rewrite

#: kind -> (the base register field, writes)
ACCESSES = {"ldx": ("src", False), "st": ("dst", True), "stx": ("dst", True), "atomic": ("dst", True)}


def in_frame(known, off: int, size: int) -> bool:
    return known is not None and known[0] == FP and -STACK_SIZE <= known[1] + off and known[1] + off + size <= 0


def bounds_check(program, proven: frozenset[int] = frozenset()):
    flow = ProgramFlow(program)
    states: dict[int, list[tuple]] = {}          # slot -> the known bases in each function it is part of
    for f in flow.functions:
        for pc, regs in flow.bases(f).items():
            states.setdefault(pc, []).append(regs)

    def expand(pc: int, insn: Insn, spec: OpInfo) -> list[Insn] | None:
        access = ACCESSES.get(spec.kind)
        if access is None or pc in proven:
            return None
        field, write = access
        base = getattr(insn, field)
        if all(in_frame((FP, 0) if base == FP else regs[base], insn.off, spec.width)   # unreachable: no check
               for regs in states.get(pc, ())):
            return None
        return [Insn(isa.OP_CHECK | insn.size, base, 0, insn.off, int(write)), insn]

    return rewrite(program, expand)


def needs_checks(program, proven: frozenset[int] = frozenset()) -> bool:
    """Whether ``bounds_check`` would leave any check in ``program``: False when the
    verifier's proofs and the frame analysis cover every access."""
    return any(spec is not None and spec.kind == "check" for spec in bounds_check(program, proven).specs)
