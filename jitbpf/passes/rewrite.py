"""Instruction rewriting with jumps kept on target: what every pass is built on.

A pass gives, for some slots, the instructions that replace them (the kernel's
``bpf_patch_insn_data`` idea). A jump, local call or function pointer inside a
replacement keeps the *original* instruction's target; every target lands on the
first instruction of its slot's replacement, so code a pass puts in front of an
instruction (a bounds check, a budget tick) runs whichever way control arrives. New
slots remember the slot they came from (``Program.origin``), which is how errors and
line info name the instruction the user wrote.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .. import isa
from ..isa import Insn, OpInfo

#: expand(pc, insn, spec) -> the instructions (as a writer thinks of them: an lddw is one
#: Insn) that replace slot pc, or None to keep it.
Expansion = Callable[[int, Insn, OpInfo], "list[Insn] | None"]
INT16 = range(-(1 << 15), 1 << 15)


def rewrite(program, expand: Expansion):
    """A new Program (``program.derive``) with every slot replaced as ``expand`` says."""
    insns, specs = program.insns, program.specs
    out: list[Insn] = []
    origin: list[int] = []
    targets: list[int | None] = []         # per new slot: the old slot its jump goes to
    position = [0] * (len(insns) + 1)      # old slot -> new slot of its first instruction
    changed = False
    for pc, (insn, spec) in enumerate(zip(insns, specs)):
        position[pc] = len(out)
        if spec is None:                   # the second slot of an lddw travels with the first
            continue
        replacement = expand(pc, insn, spec)
        if replacement is None:
            replacement = [insn]
        else:
            changed = True
        target = isa.jump_target(insn, pc)
        for new in isa.to_slots(replacement):
            origin.append(pc)
            targets.append(target if isa.jump_target(new, 0) is not None and isa.info(new) is not None else None)
            out.append(new)
    position[len(insns)] = len(out)
    if not changed:
        return program
    for i, target in enumerate(targets):
        if target is not None:
            out[i] = _retarget(out[i], position[target] - (i + 1))
    entries = {slot: position[slot] for slot in program.functions}
    return program.derive(out, origin, entries)


def _retarget(insn: Insn, delta: int) -> Insn:
    """The jump-like instruction with its offset set to ``delta`` (internal programs may
    hold jump offsets beyond 16 bits; an unconditional jump becomes ``gotol``)."""
    if insn.opcode in (isa.OP_JA, isa.OP_JA32):
        if delta in INT16:
            return replace(insn, opcode=isa.OP_JA, off=delta, imm=0)
        return replace(insn, opcode=isa.OP_JA32, off=0, imm=delta)
    if insn.opcode == isa.OP_CALL or insn.is_lddw:
        return replace(insn, imm=delta)
    return replace(insn, off=delta)
