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

import bisect
from typing import Callable

from .. import isa
from ..isa import Insn, OpInfo

#: expand(pc, insn, spec) -> the instructions (as a writer thinks of them: an lddw is one
#: Insn) that replace slot pc, or None to keep it.
Expansion = Callable[[int, Insn, OpInfo], "list[Insn] | None"]
INT16 = range(-(1 << 15), 1 << 15)


def _jumps(insn: Insn, spec: OpInfo) -> bool:
    """Whether an instruction names a slot (jump, local call, function pointer)."""
    kind = spec.kind
    return (kind in ("jcond", "ja") or kind == "call" and insn.src == isa.CALL_LOCAL
            or kind == "lddw" and insn.src == isa.Pseudo.FUNC)


def rewrite(program, expand: Expansion):
    """A new Program (``program.derive``) with every slot replaced as ``expand`` says."""
    replacements = {}
    for pc, (insn, spec) in enumerate(zip(program.insns, program.specs)):
        if spec is not None:
            new = expand(pc, insn, spec)
            if new is not None:
                replacements[pc] = new
    return replace_slots(program, replacements)


def replace_slots(program, replacements: dict[int, list[Insn]]):
    """A new Program with the slots in ``replacements`` replaced (the rest copied as they
    are, in runs, so a pass that touches a few slots costs little)."""
    if not replacements:
        return program
    insns, specs = program.insns, program.specs
    out: list[Insn] = []
    out_specs: list[OpInfo | None] = []
    origin: list[int] = []
    starts: list[int] = []                 # replaced old slots, in order ...
    spans: list[tuple[int, int, int]] = [] # ... with (old end, new start, new end)
    jumps: list[tuple[int, int]] = []      # (new slot, the old slot its jump goes to)
    done = 0
    for pc in sorted(replacements):
        out.extend(insns[done:pc])
        out_specs.extend(specs[done:pc])
        origin.extend(range(done, pc))
        insn, spec = insns[pc], specs[pc]
        target = isa.jump_target(insn, pc) if _jumps(insn, spec) else None
        start = len(out)
        for new in replacements[pc]:
            new_spec = isa.info(new)
            if target is not None and _jumps(new, new_spec):
                jumps.append((len(out), target))
            out.append(new)
            out_specs.append(new_spec)
            origin.append(pc)
            if new.is_lddw:
                out.append(Insn(0, imm=new.next_imm))
                out_specs.append(None)
                origin.append(pc)
        done = pc + (2 if insn.is_lddw else 1)
        starts.append(pc)
        spans.append((done, start, len(out)))
    out.extend(insns[done:])
    out_specs.extend(specs[done:])
    origin.extend(range(done, len(insns)))

    def position(slot: int) -> int:
        """Where old slot ``slot`` (or its replacement) starts now."""
        i = bisect.bisect_right(starts, slot) - 1
        if i < 0:
            return slot
        old_end, new_start, new_end = spans[i]
        return new_start if starts[i] == slot else new_end + (slot - old_end)

    for pc, target in program.jump_slots:
        if pc not in replacements:
            jumps.append((position(pc), target))
    for i, target in jumps:
        out[i] = _retarget(out[i], position(target) - (i + 1))
    entries = {slot: position(slot) for slot in program.functions}
    return program.derive(out, origin, entries, out_specs)


def _retarget(insn: Insn, delta: int) -> Insn:
    """The jump-like instruction with its offset set to ``delta`` (internal programs may
    hold jump offsets beyond 16 bits; an unconditional jump becomes ``gotol``)."""
    if insn.opcode in (isa.OP_JA, isa.OP_JA32):
        if delta in INT16:
            return Insn(isa.OP_JA, off=delta)
        return Insn(isa.OP_JA32, imm=delta)
    if insn.opcode == isa.OP_CALL or insn.is_lddw:
        return Insn(insn.opcode, insn.dst, insn.src, insn.off, delta, insn.next_imm)
    return Insn(insn.opcode, insn.dst, insn.src, delta, insn.imm)
