"""The benchmark harness (jitbpf/bench) and its programs (benchmarks/programs).

No timing is asserted anywhere: these tests check that every benchmark program computes
what its own C build computes on every engine (the C build, by gcc or clang, is the
independent oracle), that the harness produces its tables and JSON, and that it refuses
sides whose results are wrong.
"""

from __future__ import annotations

import ctypes
import json
import shutil

import pytest
from rich.console import Console

import jitbpf
from jitbpf.bench import harness, report, suite
from jitbpf.bench.native import Driver, Timing, build_shared
from jitbpf.bench.run import C_COMPILERS, Settings, run_file, run_suite
from jitbpf.kernel import syscall as sc
from jitbpf.runtime import context

from conftest import cli

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not found (the C baseline)")
needs_kernel = pytest.mark.skipif(not sc.kernel_available(), reason=str(sc.availability()))
PROGRAMS = suite.programs()
ENGINES = [e for e in jitbpf.available_engines() if e != "kernel"]
_expected: dict[str, int] = {}


def expected_r0(bp: suite.BenchProgram) -> int:
    """r0 of the program's C source built by gcc -O2 for the host (cached per program)."""
    if bp.name not in _expected:
        lib = build_shared(C_COMPILERS["gcc"], bp.source, bp.source.parent)
        inv = context.xdp(bp.packet())
        fn = getattr(lib, bp.function)
        fn.restype, fn.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
        _expected[bp.name] = fn(inv.args[0])
    return _expected[bp.name]


def run_on(bp: suite.BenchProgram, engine: str, runs: int = 2) -> list[int]:
    """The code generators on a benchmark program, bounds-checked and unverified (the
    verifier's verdict on each program is test_verifier's subject, once per program)."""
    obj = jitbpf.load(str(bp.object))
    options = {} if engine == "kernel" else {"verify": False}
    compiled = obj.program(bp.function).compile(engine, **options)
    out = []
    for _ in range(runs):                 # a second run sees the maps the first one left
        harness.reset_rings(obj)
        out.append(compiled.run(packet=bp.packet()).r0)
    return out


def test_the_suite_has_every_shape():
    names = {p.name for p in PROGRAMS}
    assert len(PROGRAMS) >= 16
    assert {"loop", "sieve", "memcpy", "strcmp", "switch", "popcount", "checksum", "bsearch", "hashcount",
            "lru", "ringbuf", "calls", "endian", "straight", "log2", "parse", "bpf_loop", "nested",
            "bits"} <= names
    straight = jitbpf.load(str(suite.programs(["straight"])[0].object)).program()
    assert len(straight.insns) >= 1000
    jumps = [i for i in straight.insns if i.opcode & 7 in (5, 6) and i.opcode not in (0x95, 0x85)]
    assert len(jumps) == 1                # the bounds check, then one straight block


def test_packets_are_valid_frames():
    frame = suite.build_packet("random", 64, "x")
    assert frame[12:14] == b"\x08\x00" and frame[14] == 0x45 and len(frame) == suite.HEADERS + 64
    assert suite._checksum(frame[14:34]) == 0                        # the IPv4 header checksum holds
    assert suite.build_packet("random", 64, "x") == frame             # deterministic
    words = suite.build_packet("words", 512, "y")[suite.HEADERS:]
    assert all(words[16 * k:16 * k + 16].rstrip(b"\0").decode() in suite.VOCABULARY for k in range(32))


@needs_gcc
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bp", PROGRAMS, ids=lambda p: p.name)
def test_every_program_computes_its_c_result(bp, engine):
    assert run_on(bp, engine) == [expected_r0(bp)] * 2


@needs_gcc
@pytest.mark.skipif(shutil.which("clang-19") is None, reason="clang-19 not found")
@pytest.mark.parametrize("bp", PROGRAMS, ids=lambda p: p.name)
def test_gcc_and_clang_builds_agree(bp):
    lib = build_shared(C_COMPILERS["clang"], bp.source, bp.source.parent)
    fn = getattr(lib, bp.function)
    fn.restype, fn.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
    inv = context.xdp(bp.packet())        # kept alive: it owns the packet the C code reads
    assert fn(inv.args[0]) == expected_r0(bp)


@pytest.mark.kernel
@needs_kernel
@needs_gcc
@pytest.mark.parametrize("bp", PROGRAMS, ids=lambda p: p.name)
def test_every_program_runs_on_the_kernel(bp):
    assert run_on(bp, "kernel") == [expected_r0(bp)] * 2


def _console() -> Console:
    return Console(record=True, width=250, file=open("/dev/null", "w"))


@needs_gcc
def test_harness_measures_and_reports(tmp_path):
    settings = Settings(engines=["interp", "llvm", "direct"], natives=["gcc"], rounds=2, target_ms=0.05,
                        compile_repeats=1)
    results = run_suite(["loop"], settings, lambda _: None)
    (r,) = results
    assert r.expected == expected_r0(suite.programs(["loop"])[0]) and r.expected_from == "gcc"
    assert not r.refused
    assert set(r.sides) == {"gcc", "interp", "llvm", "direct"}
    for side in r.sides.values():
        assert len(side["cpu_ns"]) == 2 and len(side["wall_ns"]) == 2 and side["n"] >= 1
    assert r.sides["llvm"]["kind"] == "native" and r.sides["interp"]["kind"] == "emulated"
    assert "cpu=generic" in r.sides["llvm"]["describe"]
    assert set(r.compile_ms) == {"llvm", "direct"}
    info = {"rounds": 2, "processes": 1, "target_ms": 0.05}
    doc = report.to_json(results, info, {"cpu": "x", "cores": 2, "kernel": "k"})
    doc = json.loads(json.dumps(doc))                          # JSON as written
    ratios = doc["summary"]["programs"]["loop"]["ratios"]
    assert {"llvm/gcc", "direct/gcc", "interp/gcc"} <= set(ratios)
    median, lo, hi = ratios["llvm/gcc"]
    assert lo <= median <= hi
    assert doc["summary"]["geomeans"]["llvm/gcc"]["programs"] == 1
    merged, _ = report.merge([doc, doc])                       # two processes: rounds add up
    assert len(merged[0].sides["llvm"]["cpu_ns"]) == 4
    console = _console()
    report.print_report(results, info, {"cpu": "x", "cores": 2, "kernel": "k"}, console)
    text = console.export_text()
    assert "Method:" in text and "loop" in text and "geomean" in text and "llvm/gcc" in text
    table = report.markdown(results, {})
    assert table.startswith("| program | gcc ns |") and "| loop |" in table and "**geomean**" in table
    pytest.importorskip("matplotlib")
    report.plot(results, str(tmp_path / "chart.png"))
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_gcc
def test_a_wrong_result_is_refused_with_the_mismatch():
    bp = suite.programs(["loop"])[0]
    wrong = expected_r0(bp) ^ 1
    settings = Settings(engines=["interp", "llvm"], natives=[], rounds=1, target_ms=0.05, compile_repeats=0)
    said = []
    (r,) = run_file(str(bp.object), bp.function, bp.packet(), wrong, settings, said.append)
    assert set(r.refused) == {"interp", "llvm"} and not r.sides
    assert f"!= expected 0x{wrong:x} (from --expect)" in r.refused["llvm"]
    assert any("refusing llvm" in line for line in said)


def test_a_side_going_wrong_inside_a_batch_is_refused():
    """The batch counts wrong results inside its loop: such a side is dropped, with why."""
    good = harness.Side("good", harness.NATIVE, "", lambda: 7, lambda n, e: Timing(n, 10 * n, 10 * n, 7, 0))
    flaky = harness.Side("flaky", harness.NATIVE, "", lambda: 7,
                         lambda n, e: Timing(n, 10 * n, 10 * n, 8, 1 if n > 1 else 0))
    result = harness.ProgramResult("p", "", 1)
    harness.measure([good, flaky], 7, result, 2, 0.001, None, 1, lambda _: None)
    assert set(result.sides) == {"good"}
    assert "returned another r0" in result.refused["flaky"]


@needs_gcc
def test_the_driver_counts_wrong_results():
    lib = build_shared(C_COMPILERS["gcc"], "unsigned long f(unsigned long a) { return a + 1; }")
    address = ctypes.cast(lib.f, ctypes.c_void_p).value
    driver = Driver(C_COMPILERS["gcc"])
    assert driver.run(address, (41,), 5, 42).mismatches == 0
    t = driver.run(address, (41,), 5, 0)
    assert (t.mismatches, t.last, t.n) == (5, 42, 5)


def test_bench_command_errors_are_one_line():
    out = cli("bench", "no_such_program", "--engines", "interp", "--native", "none")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no benchmark program no_such_program" in out.stderr
    out = cli("bench", "loop", "--engines", "bogus")
    assert out.returncode == 2 and "unknown engine" in out.stderr


def test_ring_buffers_bound_a_batch():
    """A batch may not overflow the program's ring buffer (4 records of 16 bytes per run,
    each with Linux's 8-byte header): the harness caps the batch size and empties the ring."""
    bp = suite.programs(["ringbuf"])[0]
    obj = jitbpf.load(str(bp.object))
    reference = obj.program(bp.function).compile("interp")
    cap = harness.ring_cap(obj, lambda: reference.invoke(context.xdp(bp.packet())))
    assert cap == ((1 << 24) - harness.RING_SLACK) // (4 * (16 + 8))
    assert obj.maps["events"].producer == obj.maps["events"].consumer      # left empty
