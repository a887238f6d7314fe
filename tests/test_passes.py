"""Each BPF-to-BPF pass alone (jitbpf.passes): where it inserts what, that jumps stay on
target, and that the rewritten program computes what the original does."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings

import jitbpf
from jitbpf import BpfEngineError, isa
from jitbpf.isa import AX, Insn
from jitbpf.passes import blind, bounds_check, budget_ticks, resolve_calls, rewrite

from strategies import ALU_JMP, valid_program

TICK = Insn(isa.OP_TICK)


def program(text: str):
    return jitbpf.assemble(text).program()


def kinds(prog) -> list[str]:
    return [spec.kind for spec in prog.specs if spec is not None]


# ----------------------------------------------------------------------------- rewrite

def test_rewrite_keeps_jumps_calls_and_function_pointers_on_target():
    """A tick before every slot: slot k moves to 2k + 1, and every jump, local call and
    function pointer must land on the tick in front of its target (2 * target)."""
    text = """
        lddw %r2, func(cb)
        mov %r0, 0
    loop:
        add %r0, 1
        jlt %r0, 3, loop
        call local cb
        ja done
        mov %r0, 99
    done:
        exit
    cb:
        mov %r0, 7
        exit
    """
    prog = program(text)
    out = rewrite(prog, lambda pc, insn, spec: [TICK, insn])
    old_slots = [pc for pc, spec in enumerate(prog.specs) if spec is not None]
    position = {}
    new_pc = 0
    for pc in old_slots:
        position[pc] = new_pc
        new_pc += 1 + (2 if prog.insns[pc].is_lddw else 1)
    for pc in old_slots:
        target = isa.jump_target(prog.insns[pc], pc)
        if target is not None:
            moved = position[pc] + 1
            assert isa.jump_target(out.insns[moved], moved) == position[target], pc
    assert out.origin == [pc for pc in old_slots for _ in range(1 + (2 if prog.insns[pc].is_lddw else 1))]
    assert out.functions == [position[s] for s in prog.functions]
    assert out.compile("interp", budget=None).run().r0 == prog.compile("interp", budget=None).run().r0 == 7


def test_rewrite_widens_far_jumps():
    """Jumps that no longer fit 16 bits: ja becomes gotol; conditional jumps keep a wide
    offset (internal programs only), and the program still runs the same."""
    body = [isa.alu("add", 0, imm=1)] * 20_000
    insns = [isa.alu("mov", 0, imm=0), Insn(0x15, 1, 0, len(body) + 1, 0),       # jeq r1, 0, +far
             Insn(isa.OP_JA, off=len(body)), *body, isa.alu("add", 0, imm=5), Insn(isa.OP_EXIT)]
    prog = jitbpf.from_insns(insns).program()
    out = rewrite(prog, lambda pc, insn, spec: [TICK, insn] if spec.kind == "alu" else None)
    ja = next(i for i in out.insns if isa.info(i).kind == "ja")
    assert ja.opcode == isa.OP_JA32 and ja.imm > 1 << 15
    jeq = next(i for i in out.insns if i.opcode == 0x15)
    assert jeq.off > 1 << 15
    for r1, want in ((0, 5), (1, 5)):
        assert out.compile("interp", budget=None)(r1) == want


def test_an_unchanged_program_is_returned_as_is():
    prog = program("mov %r0, 1\nexit")
    assert rewrite(prog, lambda pc, insn, spec: None) is prog


# ----------------------------------------------------------------------------- budget

def test_ticks_at_every_loop_head_and_function_entry():
    prog = program("""
        mov %r0, 0
    outer:
        mov %r1, 0
    inner:
        add %r1, 1
        jlt %r1, 2, inner
        add %r0, 1
        jlt %r0, 3, outer
        call local f
        exit
    f:
        exit
    """)
    out = budget_ticks(prog)
    ticked = sorted({out.origin[pc + 1] for pc, spec in enumerate(out.specs) if spec is not None and spec.kind == "tick"})
    assert ticked == [0, 1, 2, 8]                     # main entry, outer, inner, f


# ----------------------------------------------------------------------------- bounds checks

def test_checks_only_where_an_access_is_not_inside_its_frame():
    prog = program("""
        ldxdw %r0, [%r10-8]
        mov %r2, %r10
        add %r2, -16
        stdw [%r2+0], 1
        ldxdw %r3, [%r1+0]
        stdw [%r10+8], 1
        lock add [%r1+8], %r3
        ldxw %r4, [%r10-516]
        exit
    """)
    out = bounds_check(prog)
    checks = {out.origin[pc]: insn for pc, insn in enumerate(out.insns) if isa.info(insn).kind == "check"}
    assert sorted(checks) == [4, 5, 6, 7]
    assert [(c.dst, c.off, isa.SIZE_BYTES[c.size], c.imm) for _, c in sorted(checks.items())] == [
        (1, 0, 8, 0), (10, 8, 8, 1), (1, 8, 8, 1), (10, -516, 4, 0)]
    assert bounds_check(prog, proven=frozenset({4, 6})).insns.count(checks[5]) == 1
    assert len([i for i in bounds_check(prog, proven=frozenset({4, 6})).insns if isa.info(i).kind == "check"]) == 2


def test_a_check_uses_what_every_function_knows():
    """A slot two functions share (one jumps into the other's code) is safe only if it is
    safe in both."""
    prog = program("""
        mov %r1, %r10
        add %r1, -8
        call local g
        exit
    g:
        ldxdw %r0, [%r1+0]
        exit
    """)
    out = bounds_check(prog)
    assert "check" in kinds(out)             # in g, r1 is an argument: not known to be the frame


# ----------------------------------------------------------------------------- blinding

def test_blinding_leaves_no_program_constant():
    text = ("mov %r0, 0x12345678\nadd %r0, 0x2badcafe\njeq %r0, 0x3cafe123, +1\nstw [%r10-8], 0x4ddba11\n"
            "lddw %r1, 0x5566778899aabbcc\nldabsw 0x1eadbeef\nldindh %r1, 0x0badf00d\nexit")
    constants = {0x12345678, 0x2BADCAFE, 0x3CAFE123, 0x4DDBA11, 0x55667788, 0x99AABBCC - (1 << 32), 0x1EADBEEF,
                 0x0BADF00D}
    out = blind(program(text), random.Random(7))
    for insn, spec in zip(out.insns, out.specs):
        if spec is not None and "imm" in spec.fields:
            assert insn.imm not in constants, (spec.name, insn)
    for pc, (insn, spec) in enumerate(zip(out.insns, out.specs)):
        if spec is not None and spec.kind == "alu" and spec.op == "mov" and insn.source == isa.SRC_K:
            assert insn.dst == AX                 # every constant goes through AX ...
            follower = out.insns[pc + 1]
            assert isa.info(follower).op == "xor" and follower.dst == AX    # ... and is unblinded there
    assert blind(program(text), random.Random(8)).insns != out.insns        # a fresh key per compile


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(insns=valid_program(max_len=14, kinds=ALU_JMP, forward_only=True))
def test_blinded_programs_compute_the_same(insns):
    prog = jitbpf.from_insns(insns).program()
    out = blind(prog, random.Random(1))
    for args in ((0, 0), (0x8000_0000_0000_0001, 17)):
        assert out.compile("interp", budget=None)(*args) == prog.compile("interp", budget=None)(*args)


# ----------------------------------------------------------------------------- resolution

def test_resolution_errors_name_the_loaded_slot():
    prog = program("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 3, loop\ncall 9999\nexit")
    rewritten = blind(budget_ticks(prog), random.Random(0))
    with pytest.raises(BpfEngineError, match="unknown helper 9999") as err:
        resolve_calls(rewritten)
    assert err.value.pc == 3
    resolved = resolve_calls(budget_ticks(program("call 5\nexit")))
    assert [h.name for h in resolved.helpers.values()] == ["ktime_get_ns"]
