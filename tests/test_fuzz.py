"""The differential fuzzer: generators, oracle, minimiser, the command, the robustness
sweep, and the runtime and loader bugs it found (each with an independent expected value)."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbpf
from jitbpf import isa
from jitbpf.elf import load_elf
from jitbpf.engines import available_engines
from jitbpf.fuzz import generate as gen
from jitbpf.fuzz.minimize import minimize, units, without
from jitbpf.fuzz.oracle import Config, instantiate, parse_config, parse_configs, run_case, run_config
from jitbpf.fuzz.robust import run_subprocess
from conftest import FIXTURES, ROOT, cli

KERNEL = "kernel" in available_engines()
needs_kernel = pytest.mark.skipif(not KERNEL, reason="bpf(2) is not available here")


# --------------------------------------------------------------------------- generators

def test_cases_are_reproducible_from_seed_and_index():
    for level in gen.LEVELS:
        a, b = gen.generate(5, 17, level), gen.generate(5, 17, level)
        assert a.code == b.code and a.mem == b.mem and a.maps == b.maps
    assert gen.generate(5, 17, "valid").code != gen.generate(5, 18, "valid").code


def test_valid_and_mutated_programs_validate_and_run_cleanly_on_interp():
    for i in range(40):
        for level in ("valid", "mutant"):
            case = gen.generate(3, i, level)
            isa.validate(case.insns)
            out = run_config(case, parse_config("interp"))
            assert out.error is None, (i, level, out.message)


def test_generator_covers_the_opcode_table():
    seen = set()
    for i in range(300):
        for insn in gen.generate(11, i, "valid").insns:
            spec = isa.info(insn)
            if spec is not None:
                seen.add((spec.kind, spec.op, spec.width))
    table = {(s.kind, s.op, s.width) for s in isa.OPCODES.values() if s.kind not in ("ldabs", "ldind", "callx")}
    assert len(seen & table) / len(table) > 0.9, sorted(table - seen)


def test_epilogue_exposes_registers_and_stack():
    """A valid program's output area holds the scalar registers: a wrong register shows in memory."""
    case = gen.generate(4, 2, "valid")
    out = run_config(case, parse_config("interp"))
    assert any(out.memory[len(case.mem) - gen.STACK - 80:])


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 10**6))
def test_property_engines_agree_with_interp(seed, index):
    """Bounded and deterministic (the suite's hypothesis profile): interp, llvm and direct
    agree on generated programs, each on its own runtime."""
    verdict = run_case(gen.generate(seed, index), parse_configs("interp,llvm,direct"))
    assert not verdict.mismatches, [m.detail for m in verdict.mismatches]
    assert not verdict.internal_errors


# --------------------------------------------------------------------------- the oracle

def test_each_engine_gets_its_own_runtime():
    case = gen.generate(1, 3, "valid")
    (a, _), (b, _) = instantiate(case), instantiate(case)
    assert a.runtime is not b.runtime


def test_oracle_sees_a_runtime_bug_that_check_true_cannot():
    """A helper broken in one engine's runtime only (what a shared runtime hides)."""
    text = "mov %r1, 5\ncall 8\nexit"
    case = gen.Case(jitbpf.assemble(text).program().insns, None, level="valid")
    good = run_config(case, parse_config("interp"))
    bad = run_config(case, parse_config("interp"), variant=lambda rt: setattr(rt, "cpu", 1))
    assert good.r0 == 0 and bad.r0 == 1


def test_raw_programs_run_natively_unless_unchecked_code_is_asked_for():
    case = gen.Case(jitbpf.assemble("mov %r1, 4096\nldxdw %r0, [%r1]\nexit").program().insns, bytes(8), level="raw",
                    kernel_safe=False)
    verdict = run_case(case, parse_configs("interp,llvm,direct,direct:bounds_check=0"))
    assert [o.config for o in verdict.outcomes] == ["interp", "llvm", "direct"]
    assert all(o.error == ("BpfRuntimeError", "out-of-bounds") for o in verdict.outcomes)
    assert not verdict.mismatches


def test_a_verified_program_that_faults_is_a_verifier_bug(monkeypatch):
    """Our verifier refuses the load from 4096 (a scalar), so nothing is reported; an
    unsound verifier that accepted it would be a mismatch of the config "verifier"."""
    from jitbpf.fuzz import oracle
    case = gen.Case(jitbpf.assemble("mov %r1, 4096\nldxdw %r0, [%r1]\nexit").program().insns, bytes(8),
                    level="mutant", kernel_safe=False)
    assert not oracle.verifier_accepts(case)
    assert not run_case(case, parse_configs("interp,direct")).mismatches
    monkeypatch.setattr(oracle, "verifier_accepts", lambda case: True)
    [bug] = run_case(case, parse_configs("interp,direct")).mismatches
    assert bug.config == "verifier" and bug.what == ["soundness"]
    ok = gen.Case(jitbpf.assemble("ldxdw %r0, [%r1+0]\nexit").program().insns, bytes(8), level="mutant")
    assert oracle.verifier_accepts(ok)


def test_address_dependent_raw_programs_are_not_compared():
    case = gen.Case(jitbpf.assemble("mov %r0, %r10\nexit").program().insns, None, level="raw",
                    kernel_safe=False)
    assert run_case(case, parse_configs("interp,direct")).address_dependent


def test_a_loop_on_how_the_stack_and_input_lie_is_address_dependent():
    # seed 2030 case 16516: w10 >= w1 holds on interp's layout (stack above input), not
    # on the native engines'; both reference runs used to share one layout and agree.
    loop = gen.Case(jitbpf.assemble("jge32 %r10, %r1, -1\nexit").program().insns, bytes([1] + [0] * 7),
                    level="raw", kernel_safe=False)
    verdict = run_case(loop, parse_configs("interp,llvm,direct"))
    assert verdict.address_dependent and verdict.mismatches == []
    same = gen.Case(jitbpf.assemble("jge32 %r1, %r1, -1\nexit").program().insns, bytes(8), level="raw",
                    kernel_safe=False)         # loops on every layout: compared as usual
    assert not run_case(same, parse_configs("interp,direct")).address_dependent


def test_placed_low_buffers_lie_below_4_gib_with_gaps():
    from jitbpf.runtime.memory import PAGE_SIZE, HostBuffer, placed_low
    with placed_low():
        a, b = HostBuffer(PAGE_SIZE), HostBuffer(8)
    assert b.address > a.address + PAGE_SIZE and b.address + 8 < 1 << 32


# --------------------------------------------------------------------------- minimiser

def test_without_reaims_jumps():
    insns = jitbpf.assemble("mov %r0, 1\njeq %r0, 1, +2\nmov %r0, 2\nmov %r0, 3\nexit").program().insns
    out = without(insns, {2})
    assert out is not None and len(out) == 4
    assert isa.jump_target(out[1], 1) == 3


def test_minimizer_shrinks_a_divergence_to_its_cause():
    """A runtime variant where get_smp_processor_id is wrong: the minimised case keeps the call."""
    filler = "\n".join(f"mov %r{2 + i % 4}, {i}\nadd %r6, %r{2 + i % 4}\njgt %r6, 100, +1\nxor %r7, {i}"
                        for i in range(30))
    text = f"mov %r6, 1\nmov %r7, 2\n{filler}\ncall 8\nadd %r0, %r6\nxor %r0, %r7\nexit"
    case = gen.Case(jitbpf.assemble(text).program().insns, bytes(8), level="valid")
    odd = Config("interp with a wrong cpu", "interp")

    def runner(c, config):
        return run_config(c, config, variant=(lambda rt: setattr(rt, "cpu", 1)) if config == odd else None)
    small = minimize(case, odd, parse_config("interp"), ["r0"], runner)
    assert len(units(small.insns)) <= 3 < len(units(case.insns))
    assert any(i.opcode == isa.OP_CALL and i.imm == 8 for i in small.insns)
    assert runner(small, odd).r0 != runner(small, parse_config("interp")).r0


# --------------------------------------------------------------------------- the command

def test_fuzz_command_summary(tmp_path):
    r = cli("fuzz", "--iterations", "12", "--seed", "3", "--jobs", "2", "--restart", "4", "--quiet",
            "--extra", "direct:blind", "--every", "3", "--corpus", str(tmp_path), "--report", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("programs 12, executions ")
    assert r.stdout.strip().endswith("mismatches 0, crashes 0")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["programs"] == 12 and report["per_config"]["direct:blind"] == 4


def test_fuzz_command_counts_a_crashing_worker(tmp_path, monkeypatch):
    """A worker that dies is a crash, its case saved, and the campaign goes on."""
    monkeypatch.setenv("JITBPF_FUZZ_CRASH_AT", "2")
    r = cli("fuzz", "--iterations", "4", "--seed", "1", "--quiet", "--corpus", str(tmp_path), "--extra", "")
    assert r.returncode == 1
    assert r.stdout.strip().endswith("crashes 1")
    assert (tmp_path / "crash-1-2.json").exists()


# --------------------------------------------------------------------------- robustness

def test_robustness_sweep_in_a_subprocess():
    code, report, err = run_subprocess(seed=1, count=40, timeout=300)      # a count, not a time: deterministic
    assert code == 0 and report is not None, err[-2000:]
    assert report["inputs"] == 40
    assert report["findings"] == [], report["findings"][:3]


def _fixture() -> bytes:
    return (FIXTURES / "subprogs.bpf.o").read_bytes()


@pytest.mark.parametrize("offset,size,value,message", [
    (0x28, 8, 0x19, "run past the end"),                 # e_shoff
    (0x28, 8, 1, "run past the end"),
    (16, 2, 0, "e_type 0 is not 1"),
    (7, 1, 3, "EI_OSABI 3"),
    (6, 1, 2, "EI_VERSION 2"),
])
def test_damaged_elf_header_is_a_load_error(offset, size, value, message):
    data = bytearray(_fixture())
    data[offset:offset + size] = value.to_bytes(size, "little")
    with pytest.raises(jitbpf.BpfLoadError, match=message):
        load_elf(bytes(data))


def _section_header(data: bytes, name: str) -> int:
    from elftools.elf.elffile import ELFFile
    import io
    elf = ELFFile(io.BytesIO(data))
    index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == name)
    return elf["e_shoff"] + 64 * index


@pytest.mark.parametrize("field,message", [(40, "sh_link 200 is not the symbol table"),
                                           (44, "sh_info 200 is not a section")])
def test_relocation_section_links_are_checked(field, message):
    data = bytearray(_fixture())
    struct.pack_into("<I", data, _section_header(bytes(data), ".rel.text") + field, 200)
    with pytest.raises(jitbpf.BpfLoadError, match=message):
        load_elf(bytes(data))


def test_huge_bss_is_a_load_error():
    data = bytearray((FIXTURES / "globals.bpf.o").read_bytes())
    struct.pack_into("<Q", data, _section_header(bytes(data), ".bss") + 32, 0xFFFFFFFF)
    with pytest.raises(jitbpf.BpfLoadError, match="value_size 4294967295 is too large"):
        load_elf(bytes(data))


@pytest.mark.parametrize("option", ["--mem-hex", "--packet", "--ctx"])
def test_cli_bad_hex_is_one_line(option):
    r = cli("run", str(ROOT / "jitbpf/examples/fib.asm"), option, "zz")
    assert r.returncode == 2 and r.stderr == f"error: {option}: 'zz' is not hex bytes\n"


def test_plugin_bad_hex_is_one_line():
    r = cli("plugin", "0g", stdin="95 00 00 00 00 00 00 00")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "not space-separated" in r.stderr


def test_asm_of_a_binary_file(tmp_path):
    path = tmp_path / "x.asm"
    path.write_bytes(b"\x95\xff\xfe")
    r = cli("asm", str(path))
    assert r.returncode == 2 and r.stderr.strip() == f"error: {path}: not assembler text (not UTF-8)"
    with pytest.raises(jitbpf.BpfAsmError):
        jitbpf.load(str(path))


def test_disasm_into_a_closed_pipe():
    proc = subprocess.run(f"{sys.executable} -m jitbpf disasm {FIXTURES / 'xdp_parse.bpf.o'} | head -1",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert proc.stderr == "" and proc.stdout.count("\n") == 1


# --------------------------------------------------------------------------- runtime fixes (independent models)

def _rfc1071(data: bytes) -> int:
    """One's complement sum of little-endian 16-bit words (odd byte low), no folding limit."""
    total = sum(int.from_bytes(data[i:i + 2].ljust(2, b"\0"), "little") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@pytest.mark.parametrize("fs,ts", [(3, 6), (1, 0), (0, 7), (300, 300), (5, 513)])
def test_csum_diff_any_size(fs, ts):
    rng = random.Random(fs * 1000 + ts)
    mem = rng.randbytes(1100)
    text = f"""mov %r6, %r1
    mov %r2, {fs}
    mov %r3, %r6
    add %r3, 550
    mov %r4, {ts}
    mov %r5, 0
    call 28
    exit"""
    r0 = jitbpf.assemble(text).program().compile("interp").run(mem).r0
    new, old = _rfc1071(mem[550:550 + ts]), _rfc1071(mem[:fs])
    want = (new + (~old & 0xFFFF))
    while want >> 16:
        want = (want & 0xFFFF) + (want >> 16)
    assert r0 % 0xFFFF == want % 0xFFFF and r0 <= 0xFFFF


def test_probe_read_kernel_copies_forward_in_chunks():
    stack = bytes(range(1, 65))
    text = "\n".join(f"lddw %r0, {int.from_bytes(stack[o:o + 8], 'little'):#x}\nstxdw [%r10-{64 - o}], %r0"
                     for o in range(0, 64, 8))
    text += "\nmov %r6, %r1\nmov %r1, %r10\nadd %r1, -61\nmov %r2, 21\nmov %r3, %r10\nadd %r3, -64\ncall 113\n"
    text += "\n".join(f"ldxdw %r1, [%r10-{64 - o}]\nstxdw [%r6+{o}], %r1" for o in range(0, 64, 8)) + "\nexit"
    mem = jitbpf.assemble(text).program().compile("interp").run(bytes(64)).memory
    model = bytearray(stack)                      # dst = src + 3: chunks of 8, 8, 4, 1 read after each store
    done = 0
    for chunk in (8, 4, 2, 1):
        while 21 - done >= chunk:
            model[3 + done:3 + done + chunk] = model[done:done + chunk]
            done += chunk
    assert mem == bytes(model) and mem != stack[:3] + stack[:21] + stack[24:]


def test_pop_of_an_empty_queue_zeroes_the_value():
    from jitbpf.runtime import Runtime, maps
    rt = Runtime()
    maps.create(rt, "q", "queue", 0, 8, 2)
    obj = jitbpf.assemble("stdw [%r10-8], -1\nlddw %r1, map_idx(0)\nmov %r2, %r10\nadd %r2, -8\ncall 88\n"
                          "ldxdw %r1, [%r10-8]\nlsh %r0, 32\nor %r0, %r1\nexit", runtime=rt)
    obj.add_map(rt.maps["q"])
    assert obj.program().compile("interp").run().r0 == (-2 << 32) & isa.MASK64


# --------------------------------------------------------------------------- the kernel as an oracle

@needs_kernel
def test_kernel_accepts_raw_programs_with_callbacks_and_subprograms():
    """Raw programs get a synthetic BTF (func_info), which bpf_loop callbacks need."""
    from jitbpf.isa import Insn, Pseudo
    mov = isa.Cls.ALU64 | 0xB0
    insns = [Insn(mov | isa.SRC_X, 6, 1), Insn(mov, 1, 0, 0, 3),
             *isa.to_slots([Insn(isa.OP_LDDW, 2, Pseudo.FUNC, 0, 6)]),       # callback at 9
             Insn(mov, 3), Insn(mov, 4), Insn(isa.OP_CALL, 0, 0, 0, 181),      # bpf_loop(3, cb, 0, 0)
             Insn(isa.OP_CALL, 0, isa.CALL_LOCAL, 0, 3), Insn(isa.OP_EXIT),    # r0 = f(), at 11
             Insn(mov, 0, 0, 0, 0), Insn(isa.OP_EXIT),
             Insn(mov, 0, 0, 0, 7), Insn(isa.OP_EXIT)]
    obj = jitbpf.from_insns(insns)
    assert obj.program().compile("kernel").run(bytes(8)).r0 == obj.program().compile("interp").run(bytes(8)).r0 == 7


@needs_kernel
def test_kernel_campaign_slice_has_no_unexplained_difference():
    verdicts = [run_case(gen.generate(2026, i, "valid"), parse_configs("interp,kernel")) for i in range(40)]
    assert sum(1 for v in verdicts if any(o.config == "kernel" and not o.rejected for o in v.outcomes)) > 20
    assert [m.detail for v in verdicts for m in v.unexplained] == []
