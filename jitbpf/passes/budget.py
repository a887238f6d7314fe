"""The run budget: one ``tick`` at every loop head and every function entry.

That is the one definition every engine counts by: each time control reaches the
target of a backward jump (from anywhere) or enters a BPF function, one unit of the
budget is spent, and a run that has spent it all stops with BpfRuntimeError naming
the slot. Every endless run reaches loop heads or function entries endlessly, so the
budget bounds every run; native engines also cut it short for Ctrl-C and timeouts.
"""

from __future__ import annotations

from .. import isa
from ..isa import Insn, OpInfo
from .rewrite import rewrite

TICK = Insn(isa.OP_TICK)


def loop_heads(program) -> set[int]:
    heads = set()
    for pc, (insn, spec) in enumerate(zip(program.insns, program.specs)):
        if spec is not None and spec.kind in ("jcond", "ja"):
            target = isa.jump_target(insn, pc)
            if target <= pc:
                heads.add(target)
    return heads


def budget_ticks(program):
    where = loop_heads(program) | set(program.functions)

    def expand(pc: int, insn: Insn, spec: OpInfo) -> list[Insn] | None:
        return [TICK, insn] if pc in where else None

    return rewrite(program, expand)
