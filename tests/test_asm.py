"""Assembler and disassembler: conformance programs, round trips, errors, kernel syntax."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from jitbpf import BpfAsmError, BpfError, isa
from jitbpf.asm import assemble, assemble_bytes
from jitbpf.conformance import load_test
from jitbpf.disasm import disassemble, disassemble_text

from conftest import CONFORMANCE_NEGATIVE, CONFORMANCE_TESTS, conformance_files
from strategies import valid_insn, valid_program

TESTS = conformance_files(CONFORMANCE_TESTS)
WITH_RAW = [p for p in TESTS if "-- raw" in p.read_text() and "-- asm" in p.read_text()]
INVALID = [p for p in conformance_files(CONFORMANCE_NEGATIVE) if p.name.startswith("invalid_")]


@pytest.mark.parametrize("path", WITH_RAW, ids=lambda p: p.stem)
def test_asm_matches_raw_section(path):
    test = load_test(path)
    assert assemble_bytes(test.asm) == test.raw


@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.stem)
def test_disasm_asm_roundtrip_on_conformance(path):
    test = load_test(path)
    slots = test.program()
    for labels in (False, True):
        text = disassemble_text(slots, "asm", labels=labels)
        assert assemble(text) == slots


@settings(max_examples=300, deadline=None)
@given(valid_insn())
def test_roundtrip_random_instruction(slots):
    text = disassemble_text(slots + [isa.Insn(isa.OP_EXIT)])
    assert isa.encode(assemble(text)) == isa.encode(slots + [isa.Insn(isa.OP_EXIT)])


@settings(max_examples=150, deadline=None)
@given(valid_program())
def test_roundtrip_random_program_with_labels(slots):
    isa.validate(slots)
    assert assemble(disassemble_text(slots, labels=True)) == slots


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_assembler_inputs_are_rejected(path):
    """Each file is rejected by the assembler, or (an unknown ``-- directive``) by the test parser."""
    with pytest.raises(BpfError) as err:
        load_test(path).program()
    assert isinstance(err.value, BpfAsmError) or "unknown section" in str(err.value)


@pytest.mark.parametrize("text,message", [
    ("mov32 %r0, 2147483648\nexit", "does not fit in 32 bits"),
    ("mov32 %r0, 0x100000000\nexit", "does not fit in 32 bits"),
    ("ja NOT_A_LABEL\nexit", "undefined label 'NOT_A_LABEL'"),
    ("lock or [%r10-8]\nexit", "Invalid number of operands for lock"),
    ("lock\nexit", "Invalid number of operands for lock"),
    ("ldxq %r0, %r1\nexit", "unknown mnemonic 'ldxq'"),
    ("ldxb %r0, %r1\nexit", "invalid memory operand"),
    ("ldxb %r0, [%r1+0x10000]\nexit", "does not fit in 16 bits"),
    ("lddw %r0\nexit", "lddw takes 2 operands"),
    ("or %r0, %r50\nexit", "Invalid register"),
    ("neg %r1, 2\nexit", "neg takes 1 operand"),
    ("movsx864 %r1, 5\nexit", "takes a register source"),
    ("a:\na:\nexit", "duplicate label"),
])
def test_assembler_error_messages(text, message):
    with pytest.raises(BpfAsmError, match=message.replace("(", r"\(").replace("+", r"\+")):
        assemble(text)


def test_error_names_the_line():
    with pytest.raises(BpfAsmError) as err:
        assemble("mov %r0, 1\n\nfoo %r1\nexit")
    assert str(err.value).startswith("line 3:")


def test_number_ranges():
    assert assemble("mov %r0, 0xffffffff\nexit")[0].imm == -1
    assert assemble("mov %r0, -2147483648\nexit")[0].imm == -(1 << 31)
    assert assemble("lddw %r0, 2147483648\nexit")[0].imm64 == 0x80000000
    assert assemble("lddw %r0, -1\nexit")[0].imm64 == isa.MASK64
    assert assemble("ldxb %r0, [%r1-32768]\nexit")[0].off == -32768


def test_exit_label_means_final_exit():
    slots = assemble("jeq %r1, 0, exit\nmov %r0, 1\nexit")
    assert slots[0].off == 1


def test_pseudo_lddw_forms_roundtrip():
    text = "lddw %r1, map_fd(3)\nlddw %r2, map_value(1, 16)\nlddw %r3, map_idx_value(0, -8)\n" \
           "lddw %r4, func(f)\ncall local f\nexit\nf:\nexit\n"
    slots = assemble(text)
    assert slots[0].src == isa.Pseudo.MAP_FD and slots[0].imm == 3
    assert slots[2].src == isa.Pseudo.MAP_VALUE and slots[2].next_imm == 16
    assert slots[6].src == isa.Pseudo.FUNC and slots[6].imm == 3
    assert assemble(disassemble_text(slots)) == slots


KERNEL_STYLE = [
    ("ldxw %r0, [%r1+4]", "r0 = *(u32 *)(r1 + 4)"),
    ("ldxsh %r0, [%r10-2]", "r0 = *(s16 *)(r10 - 2)"),
    ("stdw [%r10-8], 7", "*(u64 *)(r10 - 8) = 7"),
    ("stxb [%r1], %r2", "*(u8 *)(r1 + 0) = r2"),
    ("add32 %r1, %r2", "w1 += w2"),
    ("arsh %r1, 3", "r1 s>>= 3"),
    ("sdiv %r1, %r2", "r1 s/= r2"),
    ("movsx1664 %r1, %r2", "r1 = (s16)r2"),
    ("neg32 %r3", "w3 = -w3"),
    ("be16 %r4", "r4 = be16 r4"),
    ("jsgt32 %r1, %r2, +2", "if w1 s> w2 goto +2"),
    ("jset %r1, 8, -1", "if r1 & 8 goto -1"),
    ("lock add [%r10-8], %r1", "lock *(u64 *)(r10 - 8) += r1"),
    ("lock fetch add32 [%r10-4], %r1", "w1 = atomic_fetch_add((u32 *)(r10 - 4), w1)"),
    ("lock cmpxchg [%r10-8], %r1", "r0 = cmpxchg_64(r10 - 8, r0, r1)"),
    ("lddw %r1, 0x100000000", "r1 = 0x100000000 ll"),
    ("call 5", "call 5"),
    ("call %r2", "callx r2"),
    ("ja32 +0", "gotol +0"),
]


@pytest.mark.parametrize("asm,kernel", KERNEL_STYLE)
def test_kernel_style(asm, kernel):
    slots = assemble(asm + "\nexit")
    assert disassemble(slots, "kernel")[0][1] == kernel
