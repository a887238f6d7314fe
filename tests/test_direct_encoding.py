"""Encodings of the direct JITs, checked with capstone: for every BPF register pair and every
memory-access size, the native instruction decodes to the intended registers, base,
displacement, access size and immediate. This is where the R12/R13 base (SIB byte,
disp8), REX byte-register (sil/dil) and immediate-size bugs of other eBPF JITs show.

The expected register names come from the tables below (the documented mapping),
not from the backends."""

from __future__ import annotations


import capstone
import pytest
from capstone import arm64 as A
from capstone import x86 as X

import jitbpf
from jitbpf import isa
from jitbpf import pipeline
from jitbpf.isa import Insn

X86 = ["rax", "rdi", "rsi", "rdx", "rcx", "r8", "rbx", "r13", "r14", "r15", "rbp"]
X86_SIZED = {
    8: ["al", "dil", "sil", "dl", "cl", "r8b", "bl", "r13b", "r14b", "r15b", "bpl"],
    16: ["ax", "di", "si", "dx", "cx", "r8w", "bx", "r13w", "r14w", "r15w", "bp"],
    32: ["eax", "edi", "esi", "edx", "ecx", "r8d", "ebx", "r13d", "r14d", "r15d", "ebp"],
    64: X86,
}
ARM64 = ["x7", "x0", "x1", "x2", "x3", "x4", "x19", "x20", "x21", "x22", "x25"]
SIZES = {1: isa.Size.B, 2: isa.Size.H, 4: isa.Size.W, 8: isa.Size.DW}
X86_OFFSETS = [0, 1, -1, 127, -128, 128, -129, 32767, -32768]
ARM64_OFFSETS = [0, 8, -8, 255, -256, 4088]      # scaled, unscaled (ldur) forms
ARCHES = {"x86_64": ("direct-x86_64@unicorn", capstone.CS_ARCH_X86, capstone.CS_MODE_64),
          "arm64": ("direct-arm64", capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)}


def native(arch: str, insns: list[Insn]) -> dict[int, list]:
    """BPF slot -> the capstone instructions generated for it."""
    engine, cs_arch, cs_mode = ARCHES[arch]
    prog = jitbpf.from_insns(insns + [Insn(isa.OP_EXIT)]).program()
    image, prepared = pipeline.image(prog, engine, verify=False)     # probes, not verifiable programs
    cs = capstone.Cs(cs_arch, cs_mode)
    cs.detail = True
    starts = [off for off, _ in image.pc_map]
    out = {}
    for i, (off, slot) in enumerate(image.pc_map):
        if prepared.specs[slot].internal:          # the passes' budget ticks
            continue
        end = starts[i + 1] if i + 1 < len(starts) else image.code_ranges[0][1]
        out[prepared.source_pc(slot)] = list(cs.disasm(image.blob[off:end], off))
    return out


def x86_mem(insn, op) -> tuple:
    return (insn.reg_name(op.mem.base), op.mem.index, op.mem.disp, op.size)


def x86_reg(insn, op) -> str:
    assert op.type == X.X86_OP_REG, insn
    return insn.reg_name(op.reg)


def arm_mem(insn, op) -> tuple:
    assert op.type == A.ARM64_OP_MEM, insn
    return (insn.reg_name(op.mem.base), op.mem.index, op.mem.disp)


def arm_reg(insn, op) -> str:
    assert op.type == A.ARM64_OP_REG, insn
    return insn.reg_name(op.reg)


def w(name: str) -> str:
    return "w" + name[1:]


# ----------------------------------------------------------------------------- loads

LOAD_FORMS = [(size, signed) for size in (1, 2, 4, 8) for signed in (False, True) if not (signed and size == 8)]


def load_program(offsets: list[int]) -> tuple[list[Insn], list[tuple]]:
    insns, cases = [], []
    for size, signed in LOAD_FORMS:
        mode = isa.Mode.MEMSX if signed else isa.Mode.MEM
        for dst in range(10):
            for src in range(11):
                off = offsets[len(insns) % len(offsets)]
                cases.append((len(insns), size, signed, dst, src, off))
                insns.append(Insn(isa.Cls.LDX | mode | SIZES[size], dst, src, off))
    return insns, cases


def test_x86_loads():
    insns, cases = load_program(X86_OFFSETS)
    code = native("x86_64", insns)
    for pc, size, signed, dst, src, off in cases:
        (insn,) = code[pc]
        expected = {(1, False): "movzx", (2, False): "movzx", (4, False): "mov", (8, False): "mov",
                    (1, True): "movsx", (2, True): "movsx", (4, True): "movsxd"}[(size, signed)]
        target = X86_SIZED[64 if signed or size == 8 else 32][dst]
        assert insn.mnemonic == expected, insn
        assert x86_reg(insn, insn.operands[0]) == target, (insn, target)
        assert x86_mem(insn, insn.operands[1]) == (X86[src], 0, off, size), (insn, src, off)


def test_arm64_loads():
    insns, cases = load_program(ARM64_OFFSETS)
    code = native("arm64", insns)
    for pc, size, signed, dst, src, off in cases:
        (insn,) = code[pc]
        base = {(1, False): "ldrb", (2, False): "ldrh", (4, False): "ldr", (8, False): "ldr",
                (1, True): "ldrsb", (2, True): "ldrsh", (4, True): "ldrsw"}[(size, signed)]
        scaled = off >= 0 and off % size == 0
        assert insn.mnemonic == (base if scaled else base[:2] + "u" + base[2:]), (insn, off)
        target = ARM64[dst] if signed or size == 8 else w(ARM64[dst])
        assert arm_reg(insn, insn.operands[0]) == target, insn
        assert arm_mem(insn, insn.operands[1]) == (ARM64[src], 0, off), insn


# ----------------------------------------------------------------------------- stores

def store_program(offsets: list[int], imms: list[int] | None = None) -> tuple[list[Insn], list[tuple]]:
    insns, cases = [], []
    for size in (1, 2, 4, 8):
        for dst in range(11):
            for src in range(11) if imms is None else range(len(imms)):
                off = offsets[len(insns) % len(offsets)]
                cases.append((len(insns), size, dst, src, off))
                if imms is None:
                    insns.append(Insn(isa.Cls.STX | isa.Mode.MEM | SIZES[size], dst, src, off))
                else:
                    insns.append(Insn(isa.Cls.ST | isa.Mode.MEM | SIZES[size], dst, 0, off, imms[src]))
    return insns, cases


def test_x86_register_stores():
    insns, cases = store_program(X86_OFFSETS)
    code = native("x86_64", insns)
    for pc, size, dst, src, off in cases:
        (insn,) = code[pc]
        assert insn.mnemonic == "mov", insn
        assert x86_mem(insn, insn.operands[0]) == (X86[dst], 0, off, size), insn
        assert x86_reg(insn, insn.operands[1]) == X86_SIZED[8 * size][src], insn     # sil/dil need REX


IMMS = [-1, 0x7F, -0x80, 0x1234, 0x12345678, -0x80000000]


def test_x86_immediate_stores():
    insns, cases = store_program(X86_OFFSETS, IMMS)
    code = native("x86_64", insns)
    for pc, size, dst, which, off in cases:
        (insn,) = code[pc]
        mask = (1 << (8 * size)) - 1
        assert insn.mnemonic == "mov" and x86_mem(insn, insn.operands[0]) == (X86[dst], 0, off, size), insn
        assert insn.operands[1].type == X.X86_OP_IMM
        assert insn.operands[1].imm & mask == IMMS[which] & mask, insn     # imm32 sign-extended for dw


def test_arm64_stores():
    insns, cases = store_program(ARM64_OFFSETS)
    code = native("arm64", insns)
    for pc, size, dst, src, off in cases:
        (insn,) = code[pc]
        base = {1: "strb", 2: "strh", 4: "str", 8: "str"}[size]
        scaled = off >= 0 and off % size == 0
        assert insn.mnemonic == (base if scaled else base[:2] + "u" + base[2:]), insn
        assert arm_reg(insn, insn.operands[0]) == (ARM64[src] if size == 8 else w(ARM64[src])), insn
        assert arm_mem(insn, insn.operands[1]) == (ARM64[dst], 0, off), insn


# ----------------------------------------------------------------------------- ALU and compares

REG_OPS = {"add": 0x00, "sub": 0x10, "or": 0x40, "and": 0x50, "xor": 0xA0, "mov": 0xB0}
X86_NAMES = {"add": "add", "sub": "sub", "or": "or", "and": "and", "xor": "xor", "mov": "mov"}
ARM_NAMES = {"add": "add", "sub": "sub", "or": "orr", "and": "and", "xor": "eor", "mov": "mov"}


def alu_program() -> tuple[list[Insn], list[tuple]]:
    insns, cases = [], []
    for cls, bits in ((isa.Cls.ALU64, 64), (isa.Cls.ALU, 32)):
        for op, code in REG_OPS.items():
            for dst in range(10):
                for src in range(11):
                    cases.append((len(insns), op, bits, dst, src))
                    insns.append(Insn(cls | code | isa.SRC_X, dst, src))
    return insns, cases


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_register_alu(arch):
    insns, cases = alu_program()
    code = native(arch, insns)
    for pc, op, bits, dst, src in cases:
        if op == "mov" and bits == 64 and dst == src:
            assert code[pc] == []                       # a no-op
            continue
        (insn,) = code[pc]
        if arch == "x86_64":
            names = X86_SIZED[bits]
            assert insn.mnemonic == X86_NAMES[op], insn
            assert [x86_reg(insn, o) for o in insn.operands] == [names[dst], names[src]], insn
        else:
            name = (lambda r: ARM64[r]) if bits == 64 else (lambda r: w(ARM64[r]))
            expected = [name(dst), name(src)] if op == "mov" else [name(dst), name(dst), name(src)]
            assert insn.mnemonic == ARM_NAMES[op], insn
            assert [arm_reg(insn, o) for o in insn.operands] == expected, insn


X86_IMMS = [1, -1, 127, 128, -128, -129, 0x7FFFFFFF, -0x80000000]


def test_x86_alu_immediates_are_sign_extended():
    insns, cases = [], []
    for cls, bits in ((isa.Cls.ALU64, 64), (isa.Cls.ALU, 32)):
        for op in ("add", "sub", "or", "and", "xor"):
            for dst in range(10):
                imm = X86_IMMS[len(insns) % len(X86_IMMS)]
                cases.append((len(insns), op, bits, dst, imm))
                insns.append(Insn(cls | REG_OPS[op] | isa.SRC_K, dst, 0, 0, imm))
    code = native("x86_64", insns)
    for pc, op, bits, dst, imm in cases:
        (insn,) = code[pc]
        mask = (1 << bits) - 1
        assert insn.mnemonic == op and x86_reg(insn, insn.operands[0]) == X86_SIZED[bits][dst], insn
        assert insn.operands[1].imm & mask == imm & mask, insn


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_register_compares(arch):
    insns, cases = [], []
    for cls, bits in ((isa.Cls.JMP, 64), (isa.Cls.JMP32, 32)):
        for dst in range(11):
            for src in range(11):
                cases.append((len(insns), bits, dst, src))
                insns.append(Insn(cls | 0x10 | isa.SRC_X, dst, src, 0))        # jeq dst, src, +0
    code = native(arch, insns)
    for pc, bits, dst, src in cases:
        compare, branch = code[pc]
        if arch == "x86_64":
            names = X86_SIZED[bits]
            assert (compare.mnemonic, branch.mnemonic) == ("cmp", "je"), (compare, branch)
            assert [x86_reg(compare, o) for o in compare.operands] == [names[dst], names[src]]
        else:
            name = ARM64 if bits == 64 else [w(r) for r in ARM64]
            assert (compare.mnemonic, branch.mnemonic) == ("cmp", "b.eq"), (compare, branch)
            assert [arm_reg(compare, o) for o in compare.operands] == [name[dst], name[src]]
