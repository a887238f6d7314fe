"""The instruction table, encoding and the validator."""

from __future__ import annotations

import re

import pytest

from jitbpf import BpfValidationError, isa
from jitbpf.conformance import load_test
from jitbpf.isa import Insn

from conftest import CONFORMANCE_NEGATIVE, conformance_files

UNUSED_FILES = [p for p in conformance_files(CONFORMANCE_NEGATIVE) if p.name.startswith("unused-")]


def test_table_covers_rfc9669_opcode_counts():
    alu = [k for k, s in isa.OPCODES.items() if s.kind == "alu"]
    # 13 ops x K/X x 2 classes, minus neg's X forms, plus sdiv/smod (x2x2x2) and movsx (2 + 3).
    assert len(alu) == 13 * 2 * 2 - 2 + 8 + 5
    assert len([k for k, s in isa.OPCODES.items() if s.kind == "jcond"]) == 11 * 2 * 2
    assert len([k for k, s in isa.OPCODES.items() if s.kind == "atomic"]) == 10 * 2
    assert {s.name for s in isa.OPCODES.values() if s.kind == "end"} == {
        "le16", "le32", "le64", "be16", "be32", "be64", "bswap16", "bswap32", "bswap64"}


@pytest.mark.parametrize("opcode,name", [
    (0x07, "add"), (0x04, "add32"), (0x0F, "add"), (0xB7, "mov"), (0xBC, "mov32"),
    (0x61, "ldxw"), (0x79, "ldxdw"), (0x91, "ldxsb"), (0x7A, "stdw"), (0x73, "stxb"),
    (0x05, "ja"), (0x06, "ja32"), (0x85, "call"), (0x8D, "callx"), (0x95, "exit"),
    (0x18, "lddw"), (0x20, "ldabsw"), (0x50, "ldindb"), (0x1D, "jeq"), (0x16, "jeq32"),
])
def test_well_known_opcodes(opcode, name):
    disc = isa.DISCRIMINATOR[opcode]
    value = {"off": 0, "imm": 0, None: None}[disc]
    assert isa.OPCODES[(opcode, value)].name == name


def test_decode_encode_roundtrip_and_lddw_slots():
    code = bytes.fromhex("18010000 44332211 00000000 88776655".replace(" ", "")) + \
        bytes.fromhex("9500000000000000")
    insns = isa.decode(code)
    assert len(insns) == 3
    assert insns[0].imm64 == 0x5566778811223344 and insns[0].dst == 1
    assert isa.encode(insns) == code
    assert insns[0].encode() == code[:16]


def test_decode_rejects_ragged_and_cut_lddw():
    with pytest.raises(BpfValidationError, match="multiple of 8"):
        isa.decode(b"\x95" + b"\0" * 6)
    with pytest.raises(BpfValidationError, match="second slot"):
        isa.decode(bytes.fromhex("1801000000000000"))


def prog(*insns: Insn) -> list[Insn]:
    return isa.to_slots(list(insns))


EXIT = Insn(isa.OP_EXIT)


@pytest.mark.parametrize("insns,pattern,pc", [
    ([], "empty program", None),
    ([Insn(0xB7, 10, 0, 0, 1), EXIT], "read-only frame pointer", 0),
    ([Insn(0xBF, 1, 11), EXIT], "invalid src register r11", 0),
    ([Insn(0x07, 12, 0, 0, 1), EXIT], "invalid dst register r12", 0),
    ([Insn(0x05, 0, 0, 5), EXIT], "outside the program", 0),
    ([Insn(0x05, 0, 0, -2), EXIT], "outside the program", 0),
    ([Insn(0x05, 0, 0, 1), *isa.lddw(0, 7), EXIT], "middle of an lddw", 0),
    ([Insn(0xFF), EXIT], "unknown opcode 0xff", 0),
    ([Insn(0xD4, 0, 0, 0, 8), EXIT], "invalid imm field 8", 0),
    ([Insn(0x3F, 1, 2, 2), EXIT], "invalid off field 2", 0),
    ([Insn(0xBC, 1, 2, 32), EXIT], "invalid off field 32", 0),     # movsx32 exists only for ALU64
    ([Insn(0xDF, 1, 0, 0, 16), EXIT], "unknown opcode 0xdf", 0),    # no BSWAP with the X bit
    ([Insn(0x8F, 1, 2), EXIT], "unknown opcode 0x8f", 0),           # neg has no register form
    ([Insn(0x85, 0, 3, 0, 0), EXIT], "invalid src field 3", 0),
    ([Insn(0x18, 1, 7, 0, 0, 0), Insn(0, 0, 0, 0, 0), EXIT], "pseudo source 7", 0),
    ([Insn(0x18, 1, 1, 0, 0, 5), Insn(0, 0, 0, 0, 5), EXIT], "second slot", 0),
    ([Insn(0x18, 1, 0, 0, 1, 0), Insn(0, 1, 0, 0, 0), EXIT], "second slot of lddw", 1),
    ([Insn(0xB7, 0, 0, 0, 1)], "last instruction", 0),
    ([Insn(0xDB, 1, 2, 0, 0x02), EXIT], "invalid imm field 2", 0),   # atomic op 2 does not exist
    ([Insn(0x78, 1, 2), EXIT], "unknown opcode 0x78", 0),            # no ABS|DW
    ([Insn(0x99, 1, 2), EXIT], "unknown opcode 0x99", 0),            # no MEMSX|DW
    ([Insn(0xDB, 1, 10, 0, 0xA1), EXIT], "writes the old value to its src", 0),   # fetch xor into r10
    ([Insn(0xC3, 1, 10, 0, 0xE1), EXIT], "writes the old value to its src", 0),   # xchg into r10
])
def test_validator_rejects(insns, pattern, pc):
    with pytest.raises(BpfValidationError, match=re.escape(pattern)) as err:
        isa.validate(insns)
    assert err.value.pc == pc
    if pc is not None:
        assert f"instruction {pc}" in str(err.value)


def test_atomics_may_read_r10():
    """add/or/and/xor and cmpxchg (which writes r0) only read their src register."""
    for imm in (0x00, 0x40, 0x50, 0xA0, 0xF1):
        isa.validate([Insn(0xDB, 1, 10, 0, imm), EXIT])


def test_validator_accepts_every_table_entry():
    for (opcode, disc), spec in isa.OPCODES.items():
        fields = dict(opcode=opcode, dst=1 if "dst" in spec.fields else 0)
        if disc is not None:
            fields[isa.DISCRIMINATOR[opcode]] = disc
        if spec.kind == "end":
            fields["imm"] = spec.width
        insn = Insn(**fields)
        slots = isa.to_slots([insn, EXIT]) if spec.kind not in ("ja", "jcond") else [insn, EXIT]
        assert isa.validate(slots, internal=spec.internal)[0] is spec, spec.name
        if spec.internal:                   # what only passes write is never valid user bytecode
            with pytest.raises(BpfValidationError, match="unknown opcode"):
                isa.validate(slots)


def test_the_scratch_register_is_internal():
    mov_ax = Insn(0xBF, isa.AX, 1)          # mov ax, r1
    with pytest.raises(BpfValidationError, match="invalid dst register r11"):
        isa.validate([mov_ax, EXIT])
    assert isa.validate([mov_ax, EXIT], internal=True)[0].name == "mov"


@pytest.mark.parametrize("path", UNUSED_FILES, ids=lambda p: p.stem)
def test_negative_unused_field_programs_are_rejected(path):
    test = load_test(path)
    field = path.stem.rsplit("-", 1)[1]             # unused-add_imm-offset -> offset
    field = {"offset": "off"}.get(field, field)
    with pytest.raises(BpfValidationError) as err:
        isa.validate(test.program())
    message = str(err.value)
    assert "instruction 0" in message
    assert f" {field} field" in message


def test_jump_target_helper():
    assert isa.jump_target(Insn(0x05, 0, 0, 3), 2) == 6
    assert isa.jump_target(Insn(0x06, 0, 0, 0, -3), 10) == 8
    assert isa.jump_target(Insn(0x85, 0, 1, 0, 4), 0) == 5
    assert isa.jump_target(Insn(0x85, 0, 0, 0, 5), 0) is None
    assert isa.jump_target(Insn(0x07, 1, 0, 0, 5), 0) is None
