"""The direct JITs' fast path (backends/direct/patch.py: learned keystone encodings,
patched) against the whole-text keystone path (``lower(..., fast=False)``): the same
image, byte for byte, with the same symbols, relocations and pc map. keystone on the
whole text is the reference: it encodes and lays out every program independently of
the caches under test."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbpf
from jitbpf import isa, pipeline
from jitbpf.fuzz.generate import generate
from jitbpf.fuzz.oracle import instantiate
from jitbpf.isa import Insn

import strategies
from jitbpf.backends.direct import emitter

ARCHES = {"x86_64": "direct", "arm64": "direct-arm64"}
OPTIONS = [{}, {"blind": True}, {"bounds_check": True}]


def assert_same(program, arch: str, **options) -> None:
    prepared = pipeline.prepare(program, ARCHES[arch], verify=False, **options)
    fast, text = emitter.lower(prepared, arch), emitter.lower(prepared, arch, fast=False)
    assert fast.blob == text.blob
    assert (fast.symbols, fast.relocs, fast.pc_map, fast.code_ranges, fast.externals) == \
        (text.symbols, text.relocs, text.pc_map, text.code_ranges, text.externals)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("level", ["valid", "mutant"])
def test_generated_programs_give_the_text_paths_image(arch, level):
    """Generated programs (maps, calls, atomics, loops, every ALU/JMP form), each with
    blinding and bounds checks too; a later program reuses shapes an earlier one taught."""
    for index in range(12):
        program = instantiate(generate(3, index, level))[1]
        for options in OPTIONS:
            assert_same(program, arch, **options)


@pytest.mark.parametrize("arch", ARCHES)
@settings(max_examples=40, deadline=None)
@given(insns=strategies.valid_program(max_len=40, kinds=strategies.ALU_JMP, forward_only=True))
def test_random_alu_and_jumps_give_the_text_paths_image(arch, insns):
    insns = [dataclasses.replace(i, src=min(i.src, 10), dst=min(i.dst, 10)) for i in insns]
    assert_same(jitbpf.from_insns(insns).program(), arch)


MEMORY = [(isa.Cls.LDX, isa.Mode.MEM), (isa.Cls.LDX, isa.Mode.MEMSX), (isa.Cls.STX, isa.Mode.MEM),
          (isa.Cls.ST, isa.Mode.MEM)]


@pytest.mark.parametrize("arch", ARCHES)
@settings(max_examples=30, deadline=None)
@given(accesses=st.lists(st.tuples(st.sampled_from(MEMORY), st.sampled_from(list(isa.Size)),
                                   st.integers(0, 10), st.integers(0, 10),
                                   st.one_of(st.integers(-(1 << 15), (1 << 15) - 1),
                                             st.sampled_from([0, 1, -1, 127, -128, 128, 255, -256, 256, 4095])),
                                   st.integers(-(1 << 31), (1 << 31) - 1)), min_size=1, max_size=30))
def test_random_memory_accesses_give_the_text_paths_image(arch, accesses):
    """Every access size and base with offsets across the disp8/disp32 and arm64
    scaled/unscaled/register forms; stored immediates of every size."""
    insns = []
    for (cls, mode), size, dst, src, off, imm in accesses:
        if mode == isa.Mode.MEMSX and size == isa.Size.DW:
            mode = isa.Mode.MEM
        if cls == isa.Cls.ST:
            insns.append(Insn(cls | mode | size, dst, 0, off, imm))
        else:
            insns.append(Insn(cls | mode | size, min(dst, 9) if cls == isa.Cls.LDX else dst, src, off))
    assert_same(jitbpf.from_insns(insns + [Insn(isa.OP_EXIT)]).program(), arch)


@pytest.mark.parametrize("arch", ARCHES)
def test_branches_at_the_short_form_limit(arch):
    """Forward and backward jumps over bodies around x86's rel8 limit (and arm64's
    fixed forms): the layout chooses the forms keystone's relaxation chooses."""
    for n, short in ((n, short) for n in range(10, 24) for short in range(0, 5, 2)):
        body = [Insn(0x07, 2, 0, 0, 1000 + k) for k in range(n)]                    # add r2, imm32
        body += [Insn(0x0F, 2, 3)] * short                                          # add r2, r3
        n += short
        insns = [Insn(0xB7, 2), Insn(0x15, 1, 0, n + 1, 5), *body, Insn(0x05, 0, 0, 1, 0),
                 Insn(0xA5, 2, 0, -(n + 3), 7), Insn(0xBF, 0, 2), Insn(isa.OP_EXIT)]  # jlt r2, 7, back
        assert_same(jitbpf.from_insns(insns).program(), arch)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_program_seen_before_needs_no_keystone(arch):
    """The structural claim of the emitter docstring: once a program's shapes and lines
    were learned (shapes from the second program that brings them), compiling it again,
    or one that differs only in immediates and offsets of learned shapes, makes no
    keystone call."""
    fast = emitter.assembler(importlib.import_module(f"jitbpf.backends.direct.{arch}").EMITTER)

    def calls(insns) -> int:
        prepared = pipeline.prepare(jitbpf.from_insns(insns).program(), ARCHES[arch], verify=False)
        before = fast.calls
        emitter.lower(prepared, arch)
        return fast.calls - before
    program = list(generate(5, 1, "valid").insns)
    calls(program), calls(program)
    assert calls(program) == 0
    add = [Insn(0x07, 3, 0, 0, 1000), Insn(0x07, 3, 0, 0, 2000), Insn(isa.OP_EXIT)]      # add r3, imm32
    calls(add[:1] + add[2:]), calls(add[:1] + add[2:])
    assert calls(add[1:]) == 0


@pytest.mark.parametrize("arch", ARCHES)
def test_patched_code_runs(arch):
    """Instructions of one learned shape with other values compute what the interpreter does."""
    engine = {"x86_64": "direct-x86_64@unicorn", "arm64": "direct-arm64"}[arch]
    for values in ((5, 1000, -3), (-77, 123456, 9), (0x7FFFFFFF, -0x80000000, 1)):
        insns = [Insn(0xB7, 0, 0, 0, values[0]), Insn(0x07, 0, 0, 0, values[1]), Insn(0x27, 0, 0, 0, values[2]),
                 Insn(0x7B, 10, 0, -16, 0), Insn(0x79, 1, 10, -16), Insn(0x0F, 0, 1), Insn(isa.OP_EXIT)]
        prog = jitbpf.from_insns(insns).program()
        assert prog.compile(engine, verify=False)() == prog.compile("interp")()


@pytest.mark.parametrize("arch", ARCHES)
def test_the_text_path_is_the_fallback(arch, monkeypatch):
    """Whatever the fast path cannot assemble goes through the whole-text path."""
    from jitbpf.backends.direct import patch
    program = instantiate(generate(3, 2, "valid"))[1]
    prepared = pipeline.prepare(program, ARCHES[arch], verify=False)
    expected = emitter.lower(prepared, arch, fast=False).blob

    def refuse(self, emitter):
        raise patch.Unsupported("no")
    monkeypatch.setattr(patch.Assembler, "assemble", refuse)
    assert emitter.lower(prepared, arch).blob == expected


TEACH = [1, -1, 2, 255, -256, 4095, 0x7FFF, -0x8000, 0x12345, -0x7FFFFFFF]


PAIRS = [(2, 3), (10, 1), (1, 10), (6, 0), (9, 7)]


def _forms_program(value: int, kinds=("alu", "jcond", "ldx", "st", "stx")) -> list[Insn]:
    """One instruction of every K-form ALU/JMP and memory opcode with ``value`` as its
    immediate or offset (clipped to the field), for a few register pairs."""
    from jitbpf.fuzz.generate import FORMS, make_insn
    off = max(-0x8000, min(0x7FFF, value))
    insns = []
    for dst, src in PAIRS:
        for kind in kinds:
            for form in FORMS[kind]:
                spec = isa.OPCODES[form]
                if kind in ("alu", "jcond") and (form[0] & isa.SRC_X or spec.op in ("neg", "end")):
                    continue
                if dst == 10 and kind in ("alu", "ldx"):
                    continue
                insns.append(make_insn(form, dst, src, 0 if kind == "jcond" else off, value))
        insns += isa.lddw(dst % 10, value * 0x1_0001)
    return insns + [Insn(isa.OP_EXIT)]


@pytest.mark.parametrize("arch", ARCHES)
def test_shapes_learned_from_any_value_patch_every_other(arch, monkeypatch):
    """Fresh caches taught by one value (edge values: odd, negative, the largest of a
    form); every other value of the same shapes must then give keystone's bytes."""
    import random
    rng = random.Random(14)
    others = [rng.choice([rng.randrange(-300, 300), rng.randrange(-(1 << 31), 1 << 31), rng.randrange(-9000, 9000)])
              for _ in range(12)] + TEACH
    for teach in TEACH:
        monkeypatch.setattr(emitter, "_fast", {})
        for _ in range(5):                 # learned from the second sighting, <= 96 shapes per program
            emitter.lower(pipeline.prepare(jitbpf.from_insns(_forms_program(teach)).program(), ARCHES[arch],
                                           verify=False), arch)
        for value in others:
            assert_same(jitbpf.from_insns(_forms_program(value)).program(), arch)
