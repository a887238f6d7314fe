"""The LLVM backend on every llvm engine: conformance at O0 (O2 runs in test_conformance),
no undefined behaviour, address analysis, the object cache and ELF reader, listings, and
property tests against the interpreter. The run-time semantics shared by every engine
(calls, helpers, callx, unwinding, LD_ABS) are in test_engines.py. Expected values are
worked out by hand in each test."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

import jitbpf
from jitbpf.conformance import load_test, run_test

from conftest import CONFORMANCE_TESTS, ROOT, build, conformance_files
from strategies import ALU_JMP, valid_program

LLVM_ENGINES = ["llvm", "llvm-arm64", "llvm-x86_64@unicorn"]
INT64_MIN = 1 << 63
INT32_MIN = 1 << 31
MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------- conformance

@pytest.mark.parametrize("engine", LLVM_ENGINES)
@pytest.mark.parametrize("path", conformance_files(CONFORMANCE_TESTS), ids=lambda p: p.stem)
def test_conformance_at_O0(path, engine):
    outcome = run_test(load_test(path), engine, opt=0)
    assert outcome.passed, outcome.detail


# --------------------------------------------------------------------------- no UB

# (op, divisor, expected for a 64-bit INT_MIN dividend, expected for a 32-bit one)
DIVISIONS = [
    ("div", 0, 0, 0), ("mod", 0, INT64_MIN, INT32_MIN),
    ("sdiv", 0, 0, 0), ("smod", 0, INT64_MIN, INT32_MIN),
    ("div", -1, 0, 0), ("mod", -1, INT64_MIN, INT32_MIN),        # unsigned: divisor is all ones
    ("sdiv", -1, INT64_MIN, INT32_MIN), ("smod", -1, 0, 0),      # INT_MIN / -1 overflows to INT_MIN
]


@pytest.mark.parametrize("opt", [2, 3])
@pytest.mark.parametrize("op,divisor,want64,want32", DIVISIONS)
def test_division_edge_cases_are_not_folded_away(op, divisor, want64, want32, opt):
    """A constant INT_MIN dividend and a divisor LLVM sees as constant (mov) or not
    (loaded from memory): both must give the ISA's result."""
    memory = (divisor & MASK64).to_bytes(8, "little")
    for width, dividend, want in ((64, "lddw %r0, 0x8000000000000000", want64),
                                  (32, "mov32 %r0, 0x80000000", want32)):
        suffix = "" if width == 64 else "32"
        for load in (f"mov %r1, {divisor}", "ldxdw %r1, [%r1]"):
            text = f"{load}\n{dividend}\n{op}{suffix} %r0, %r1\nexit"
            assert build(text, "llvm", opt=opt).run(memory).r0 == want, (text, opt)


def test_division_edge_cases_on_arm64():
    for op, divisor, want64, _ in DIVISIONS:
        text = f"ldxdw %r1, [%r1]\nlddw %r0, 0x8000000000000000\n{op} %r0, %r1\nexit"
        assert build(text, "llvm-arm64", opt=3).run((divisor & MASK64).to_bytes(8, "little")).r0 == want64


@pytest.mark.parametrize("engine", ["llvm", "llvm-arm64"])
def test_shift_counts_are_masked(engine):
    # 1 << (65 & 63) = 2 ; 32-bit: 1 << (33 & 31) = 2 ; arsh of -8 by (66 & 63) = -2
    text = """ldxdw %r1, [%r1]
mov %r0, 1
lsh %r0, %r1
mov %r2, 1
add %r1, -32
lsh32 %r2, %r1
add %r0, %r2
mov %r3, -8
add %r1, 33
arsh %r3, %r1
add %r0, %r3
exit"""
    assert build(text, engine).run((65).to_bytes(8, "little")).r0 == 2


# --------------------------------------------------------------------------- options


def test_bad_options_are_engine_errors():
    with pytest.raises(jitbpf.BpfEngineError, match=r"engine 'llvm': option opt=5: expected 0..3"):
        build("exit", "llvm", opt=5)
    with pytest.raises(jitbpf.BpfEngineError, match="engine 'llvm': option 'colour' is unknown"):
        build("exit", "llvm", colour="red")
    with pytest.raises(jitbpf.BpfEngineError, match="engine 'llvm': option 'repeat' does not apply to it"):
        build("exit", "llvm", repeat=3)


# --------------------------------------------------------------------------- memory, objects, cache


@pytest.mark.parametrize("opt", [0, 2])
@pytest.mark.parametrize("engine", LLVM_ENGINES)
def test_addresses_known_on_some_paths_only(engine, opt):
    """Accesses through copies of r10 and r1 whose offset depends on the path taken (the
    join must forget what only one path knew) and a pointer advanced in a loop.
    mem = bytes 0..31: the loop sums mem[0..3] = 6, r2 = r1 + 8 on the taken path gives
    the word at 8 (0x0f0e0d0c0b0a0908; with sum 4 the fall-through path loads the word at
    24), the frame copy r3 = r10 + -16 stored 5 at r10-16
    and 7 at r10-8 (through r3 + 8), read back through r10: 12."""
    text = """mov %r0, 0
mov %r4, %r1
mov %r5, 4
loop:
ldxb %r6, [%r4+0]
add %r0, %r6
add %r4, 1
sub %r5, 1
jne %r5, 0, loop
mov %r2, %r1
jeq %r0, 6, skip
add %r2, 16
skip:
add %r2, 8
ldxdw %r7, [%r2+0]
mov %r3, %r10
add %r3, -16
stdw [%r3+0], 5
stdw [%r3+8], 7
ldxdw %r8, [%r10-16]
ldxdw %r9, [%r10-8]
add %r8, %r9
stxdw [%r1+24], %r8
xor %r0, %r7
add %r0, %r8
exit"""
    fn = build(text, engine, opt=opt)
    mem = bytes(range(32))
    res = fn.run(mem, check=True)
    assert res.r0 == (6 ^ 0x0F0E0D0C0B0A0908) + 12
    assert res.memory[24:32] == (12).to_bytes(8, "little")
    mem = bytes([1, 1, 1, 1]) + bytes(range(4, 32))     # sum 4: falls through, r2 = r1 + 24
    assert fn.run(mem, check=True).r0 == (4 ^ 0x1F1E1D1C1B1A1918) + 12


@pytest.mark.parametrize("engine", ["llvm", "llvm-arm64"])
def test_line_table_reads_like_pyelftools(engine):
    """backends.listing decodes the DWARF line program itself; pyelftools (independent)
    must find the same (address, BPF slot) rows."""
    import io

    from elftools.elf.elffile import ELFFile

    from jitbpf import pipeline
    from jitbpf.backends.listing import line_table
    from jitbpf.backends.llvm import LLVMOptions
    from jitbpf.backends.llvm.compile import compile_object
    text = "mov %r0, 0\nmov %r2, 10\nloop:\nadd %r0, %r2\nsub %r2, 1\njne %r2, 0, loop\nexit"
    prepared = pipeline.prepare(jitbpf.assemble(text).program(), engine)
    obj, _ = compile_object(prepared, "arm64" if "arm64" in engine else "x86_64", False,
                            LLVMOptions(debug=True, cache=False))
    dwarf = ELFFile(io.BytesIO(obj)).get_dwarf_info(relocate_dwarf_sections=True)
    want: dict[int, int] = {}
    for cu in dwarf.iter_CUs():
        for entry in dwarf.line_program_for_CU(cu).get_entries():
            if entry.state is not None and not entry.state.end_sequence and entry.state.line:
                want[entry.state.address] = entry.state.line - 1
    assert want and line_table(obj) == [(".text", address, slot) for address, slot in sorted(want.items())]


def test_elf_reader_refuses_what_it_cannot_link():
    from jitbpf.backends.link.elfobj import ElfObject
    from jitbpf.backends.link import link_elf
    with pytest.raises(jitbpf.BpfEngineError, match="ELF64"):
        ElfObject(b"\x7fELF\x01\x01" + bytes(58))
    header = bytearray(64)                      # ELF64 LE, EM_PPC64 (21), no sections
    header[:6] = b"\x7fELF\x02\x01"
    header[18] = 21
    with pytest.raises(jitbpf.BpfEngineError, match="unsupported ELF machine 21"):
        link_elf(bytes(header))


def _array_program(value: int):
    """An object whose program returns word 0 of a one-entry array map holding value."""
    from jitbpf.runtime import maps
    obj = jitbpf.assemble("lddw %r1, map_value(0, 0)\nldxdw %r0, [%r1+0]\nexit")
    m = maps.create(obj.runtime, "a", "array", 4, 8, 1)
    m.update((0).to_bytes(4, "little"), value.to_bytes(8, "little"))
    obj.add_map(m)
    return obj.program()


def test_object_cache_hits_and_invalidation():
    """Same bytecode and options: the second compile is a hit. Maps are relocations, so
    the same bytecode over another runtime's map of the same name is a hit too (and reads
    its own map); other options miss; cache=False neither reads nor fills the cache."""
    from jitbpf.backends.llvm import CACHE
    CACHE.clear()
    first = _array_program(11)
    assert first.compile("llvm").run().r0 == 11
    assert (CACHE.hits, CACHE.misses) == (0, 1)
    assert first.compile("llvm").run().r0 == 11
    assert (CACHE.hits, CACHE.misses) == (1, 1)
    other = _array_program(22)                     # same instructions, another runtime's map
    assert other.compile("llvm").run().r0 == 22
    assert (CACHE.hits, CACHE.misses) == (2, 1)
    assert first.compile("llvm", opt=0).run().r0 == 11
    assert first.compile("llvm-arm64").run().r0 == 11
    assert (CACHE.hits, CACHE.misses) == (2, 3)
    assert first.compile("llvm", cache=False).run().r0 == 11
    assert (CACHE.hits, CACHE.misses, len(CACHE)) == (2, 3, 3)


def test_compiles_from_several_threads():
    """Pass managers are per thread: concurrent compiles give the same code as one
    thread (each program returns 100 + 3 * k, worked out by hand)."""
    from concurrent.futures import ThreadPoolExecutor
    texts = [f"mov %r0, {k}\nmul %r0, 3\nadd %r0, 100\nexit" for k in range(8)]

    def compile_one(text):
        return jitbpf.assemble(text).program().compile("llvm", cache=False)
    with ThreadPoolExecutor(4) as pool:
        compiled = list(pool.map(compile_one, texts))
    assert [fn.run().r0 for fn in compiled] == [100 + 3 * k for k in range(8)]


def test_object_cache_forgets_the_least_recently_used():
    from jitbpf.backends.llvm.compile import ObjectCache
    cache = ObjectCache(size=2)
    cache.put(("a",), (b"A", None))
    cache.put(("b",), (b"B", None))
    assert cache.get(("a",)) == (b"A", None)       # a is now the most recent
    cache.put(("c",), (b"C", None))
    assert cache.get(("b",)) is None and cache.get(("a",)) and cache.get(("c",))
    assert len(cache) == 2


# --------------------------------------------------------------------------- property

def _portable(insns) -> bool:
    """r10 is a stack address, different in every engine: programs reading it are skipped."""
    return not any(i.dst == 10 or i.src == 10 for i in insns)


# Run without memory: r1 = r2 = 0 in every engine (a buffer's address would differ).
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(valid_program(max_len=16, kinds=ALU_JMP, forward_only=True).filter(_portable))
def test_random_alu_programs_agree_with_interp(insns):
    prog = jitbpf.from_insns(insns).program()
    want = prog.compile("interp").run().r0
    assert prog.compile("llvm", verify=False).run().r0 == want          # (unset registers are read)
    assert prog.compile("llvm", opt=0, verify=False).run().r0 == want


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(valid_program(max_len=12, kinds=ALU_JMP, forward_only=True).filter(_portable))
def test_random_alu_programs_agree_with_interp_on_arm64(insns):
    prog = jitbpf.from_insns(insns).program()
    assert prog.compile("llvm-arm64", opt=3, verify=False).run().r0 == prog.compile("interp").run().r0


def random_call_program(rng) -> str:
    """main, f1 and f2 (main calls both, f1 calls f2): ALU, stack spills through r9 = r10,
    fetch-adds, branches and calls on registers that are often read before being written,
    so the shared register file (inherited r0/r6-r9, r1-r5 handed back) is exercised.
    Every stack slot read is written first in the same frame; the verifier would refuse
    the reads of unset registers, so these run with verify=False."""
    def body(name: str, callees: list[str]) -> list[str]:
        lines = [f"{name}:"] if name else []
        lines += ["mov %r9, %r10"] + [f"stdw [%r10-{8 * k}], 0" for k in range(1, 5)]
        for i in range(rng.randint(3, 14)):
            k, d, s = rng.random(), rng.randrange(9), rng.randrange(9)
            if k < 0.4:
                op = rng.choice(["add", "sub", "mul", "xor", "or", "lsh", "rsh", "arsh", "mod", "div", "add32",
                                 "sdiv", "smod32"])
                lines.append(f"{op} %r{d}, %r{s}" if rng.random() < 0.5 else f"{op} %r{d}, {rng.randint(-5, 40)}")
            elif k < 0.5:
                lines.append(f"mov %r{d}, {rng.randint(-3, 100)}")
            elif k < 0.6:
                lines.append(f"stxdw [%r9-{8 * rng.randint(1, 4)}], %r{s}")
            elif k < 0.7:
                lines.append(f"ldxdw %r{d}, [%r10-{8 * rng.randint(1, 4)}]")
            elif k < 0.85 and callees:
                lines.append(f"call local {rng.choice(callees)}")
            elif k < 0.9:
                lines += [f"jgt %r{d}, %r{s}, {name or 'main'}_{i}", f"add %r{d}, 3", f"{name or 'main'}_{i}:"]
            else:
                lines.append(f"lock fetch add [%r9-8], %r{s}")
        if not name:                                   # main: every register shows in r0
            lines += [f"xor %r0, %r{r}" for r in range(1, 9)]
        return lines + ["exit"]
    return "\n".join(body("", ["f1", "f2"]) + body("f1", ["f2"]) + body("f2", []))


@pytest.mark.parametrize("engine,opt", [("llvm", 2), ("llvm", 0), ("llvm-arm64", 2)])
def test_random_bpf_to_bpf_programs_agree_with_interp(engine, opt):
    import random
    for seed in range(25):
        text = random_call_program(random.Random(seed))
        prog = jitbpf.assemble(text).program()
        assert prog.compile(engine, opt=opt, verify=False).run().r0 == prog.compile("interp").run().r0, text


# --------------------------------------------------------------------------- inspection

@pytest.mark.parametrize("engine", LLVM_ENGINES)
def test_native_listing_interleaves_bpf_and_machine_code(engine):
    """Each BPF slot's line comes before the machine code generated for it: a load
    under slot 0, an add of 7 under slot 1, the return under the exit (slot 2)."""
    from jitbpf import pipeline
    prog = jitbpf.assemble("ldxdw %r0, [%r1]\nadd %r0, 7\nexit").program()
    lines = pipeline.listing(prog, engine).splitlines()
    assert lines[0] == "bpf_entry:"
    marks = [lines.index(f"    ; {slot}") for slot in ("0: ldxdw %r0, [%r1]", "1: add %r0, 7")]
    assert marks == sorted(marks)
    load, rest = lines[marks[0] + 1:marks[1]], lines[marks[1] + 1:]
    add = rest[:next(i for i, line in enumerate(rest) if line.startswith("    ;"))]
    assert any(" mov " in line or " ldr " in line for line in load), load
    assert any(" add " in line and line.rstrip().endswith(("7", "#7")) for line in add), add
    tail = lines[marks[1] + 1:][:8]                 # the exit's code, which may share the add's block
    assert any(line.split()[-1] == "ret" for line in tail), tail


def test_emit_llvm_shows_the_ir():
    from jitbpf import pipeline
    prog = jitbpf.assemble("mov %r0, 1\nexit").program()
    ir = pipeline.llvm_ir(prog, "llvm")
    assert 'define dso_local i64 @"bpf_entry"' in ir and "ret i64" in ir


@pytest.mark.parametrize("engine", ["llvm-arm64", "llvm-x86_64@unicorn"])
def test_emulated_faults_name_the_bpf_instruction(engine):
    with pytest.raises(jitbpf.BpfRuntimeError, match=r"unmapped memory at 0x10 ") as err:
        build("mov %r0, 0\nmov %r2, 16\nldxdw %r0, [%r2+0]\nexit", engine, bounds_check=False, verify=False).run()
    assert err.value.pc == 2


FIB = "jitbpf/examples/fib.asm"


def test_cli_native_listing_and_ir(capsys):
    from jitbpf.cli import main
    assert main(["disasm", "--native", "--engine", "llvm-arm64", str(ROOT / FIB)]) == 0
    listing = capsys.readouterr().out
    assert "bpf_entry:" in listing and "    ; " in listing and "ret" in listing
    assert main(["disasm", "--emit-llvm", "--opt", "0", str(ROOT / FIB)]) == 0
    assert 'define dso_local i64 @"bpf_entry"' in capsys.readouterr().out


def test_cli_run_checked_against_interp(capsys):
    from jitbpf.cli import main
    assert main(["run", str(ROOT / FIB), "--mem-hex", "00" * 10, "--engine", "llvm", "--check"]) == 0
    assert "r0 = 55 (0x37) [checked against interp]" in capsys.readouterr().out


# A clang-style switch: a tree of compares of one masked register (signed, unsigned,
# 32-bit, jset nodes). The results per nibble, written out by hand:
DISPATCH = """
    ldxb %r2, [%r1+0]
    and %r2, 15
    jsgt %r2, 7, hi
    jgt %r2, 3, mid
    jeq %r2, 0, zero
    jlt32 %r2, 2, one
    mov %r0, 23
    exit
one:
    mov %r0, 11
    exit
zero:
    mov %r0, 7
    exit
mid:
    jset %r2, 1, odd
    mov %r0, 40
    exit
odd:
    mov %r0, 41
    exit
hi:
    jsge %r2, 12, top
    mov %r0, 80
    exit
top:
    jne %r2, 15, notf
    mov %r0, 150
    exit
notf:
    mov %r0, 120
    exit
"""
DISPATCH_RESULTS = {0: 7, 1: 11, 2: 23, 3: 23, 4: 40, 5: 41, 6: 40, 7: 41, 8: 80, 9: 80, 10: 80, 11: 80,
                    12: 120, 13: 120, 14: 120, 15: 150}


def test_a_compare_tree_becomes_a_switch():
    from jitbpf import pipeline
    ir = pipeline.llvm_ir(jitbpf.assemble(DISPATCH).program(), "llvm")
    assert "switch i64" in ir                 # (which O2 turns into a lookup table here)
    plain = pipeline.llvm_ir(jitbpf.assemble(DISPATCH.replace("and %r2, 15", "and %r2, 255")).program(), "llvm")
    assert "switch i64" not in plain          # no bound below SWITCH_DOMAIN: the tree as it is


@pytest.mark.parametrize("engine", [e for e in jitbpf.available_engines() if e.startswith("llvm")])
@pytest.mark.parametrize("opt", [1, 2, 3])
def test_switch_dispatch_gives_every_value_its_case(engine, opt):
    fn = jitbpf.assemble(DISPATCH).program().compile(engine, opt=opt)
    for byte in range(0, 256, 7 if engine != "llvm" else 1):
        assert fn.run(mem=bytes([byte])).r0 == DISPATCH_RESULTS[byte & 15], byte
