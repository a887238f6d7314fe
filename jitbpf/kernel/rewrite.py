"""Instruction surgery for the kernel engine: insert code and keep every jump,
local call and function pointer aimed at the same instruction."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import isa
from ..errors import BpfEngineError
from ..isa import Insn


@dataclass
class Spliced:
    insns: list[Insn]
    where: list[int]          # new slot of each old slot
    prologue: int             # slots inserted before the old slot 0

    def old_pc(self, new_pc: int | None) -> int | None:
        """The old slot a new slot came from (None for the prologue)."""
        if new_pc is None or new_pc < self.prologue:
            return None
        lo, hi = 0, len(self.where) - 1
        while lo < hi:                       # the last old slot placed at or before new_pc
            mid = (lo + hi + 1) // 2
            if self.where[mid] <= new_pc:
                lo = mid
            else:
                hi = mid - 1
        return lo


def splice(insns: list[Insn], prologue: list[Insn], replacements: dict[int, list[Insn]]) -> Spliced:
    """``prologue`` + ``insns`` with slot pc replaced by ``replacements[pc]``
    (replacements must not jump; a jump to pc lands on the first replacing slot)."""
    out = list(prologue)
    where = []
    for pc, insn in enumerate(insns):
        where.append(len(out))
        out.extend(replacements.get(pc, [insn]))
    for pc, insn in enumerate(insns):
        target = isa.jump_target(insn, pc)
        if target is None or pc in replacements:
            continue
        new = where[pc]
        rel = where[target] - new - 1
        if insn.opcode == isa.OP_JA32 or insn.opcode == isa.OP_CALL or insn.is_lddw:
            out[new] = replace(insn, imm=rel)
        elif -(1 << 15) <= rel < (1 << 15):
            out[new] = replace(insn, off=rel)
        else:
            raise BpfEngineError("kernel engine: a jump no longer fits 16 bits after wrapping", pc=pc)
    return Spliced(out, where, len(prologue))
