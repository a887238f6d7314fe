"""Constant blinding (the kernel's ``bpf_jit_blind_constants``), for every engine.

Every immediate the program chose reaches its use through the scratch register AX as
``(imm ^ key) ^ key`` with a fresh random key, so no program-chosen constant appears in
the generated code (JIT spraying). Offsets, helper ids, byte-swap widths and map
references are not blinded (the kernel does not blind them either; map references are
relocations here).
"""

from __future__ import annotations

import random

from .. import isa
from ..isa import AX, Insn, OpInfo, alu, to_s32
from .rewrite import rewrite


def blind(program, rng: random.Random | None = None):
    rng = rng or random.SystemRandom()            # keys from os.urandom

    def materialise(value: int, width: int) -> list[Insn]:
        """AX = ``value`` as a width-bit operation would see the immediate (sign-extended
        to 64 bits, or zero-extended from 32)."""
        key = to_s32(rng.getrandbits(32))
        return [alu("mov", AX, imm=value ^ key, width=width), alu("xor", AX, imm=key, width=width)]

    def load_ind(size: int) -> Insn:
        return Insn(isa.Cls.LD | isa.Mode.IND | size, 0, AX)

    def expand(pc: int, insn: Insn, spec: OpInfo) -> list[Insn] | None:
        kind = spec.kind
        if kind in ("alu", "jcond") and insn.source == isa.SRC_K and spec.op != "neg":
            if kind == "alu" and spec.op == "mov" and insn.imm == 0:
                return [alu("xor", insn.dst, insn.dst)]
            return [*materialise(insn.imm, spec.width), Insn(insn.opcode | isa.SRC_X, insn.dst, AX, insn.off)]
        if kind == "st":
            return [*materialise(insn.imm, 64), Insn(isa.Cls.STX | isa.Mode.MEM | insn.size, insn.dst, AX, insn.off)]
        if kind == "lddw" and insn.src == isa.Pseudo.IMM64:
            return [*materialise(insn.next_imm, 64), alu("lsh", AX, imm=32), alu("mov", insn.dst, AX),
                    *materialise(insn.imm, 32), alu("or", insn.dst, AX)]
        if kind == "ldabs":
            return [*materialise(insn.imm, 64), load_ind(insn.size)]
        if kind == "ldind" and insn.imm:
            return [*materialise(insn.imm, 64), alu("add", AX, insn.src), load_ind(insn.size)]
        return None

    return rewrite(program, expand)
