"""The run budget: one ``tick`` at every loop head and every function entry.

That is the one definition every engine counts by: each time control reaches the
target of a backward jump (from anywhere) or enters a BPF function, one unit of the
budget is spent, and a run that has spent it all stops with BpfRuntimeError naming
the slot. Every endless run reaches loop heads or function entries endlessly, so the
budget bounds every run; native engines also cut it short for Ctrl-C and timeouts.
"""

from __future__ import annotations

from .. import isa
from ..isa import Insn
from .rewrite import replace_slots

TICK = Insn(isa.OP_TICK)


def loop_heads(program) -> set[int]:
    """Targets of backward jumps (a jump to itself included)."""
    specs = program.specs
    return {target for pc, target in program.jump_slots if target <= pc and specs[pc].kind in ("jcond", "ja")}


def budget_ticks(program):
    insns = program.insns
    return replace_slots(program, {pc: [TICK, insns[pc]] for pc in loop_heads(program) | set(program.functions)})
