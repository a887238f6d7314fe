"""Measuring: sides, checks, calibration, interleaved rounds, compile times.

A *side* is one way to run a program: a C baseline (gcc or clang), a native engine
(llvm, direct), the kernel (BPF_PROG_TEST_RUN) or an emulated/interpreted engine. Every
side first runs once and must return the expected r0 (the C build's, else interp's), or
it is refused with the mismatch; then each side gets a batch size that takes about
``target_ms`` of CPU, and in every round the sides run one batch each in a fresh
shuffled order. Each batch also counts wrong results inside the loop: a side that goes
wrong later is refused too. Ratios are taken per round, so a slow moment of the machine
hits both sides of a ratio alike.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import engines as engines_mod
from ..errors import BpfError
from ..runtime import context
from . import entry
from .native import Compiler, Driver, Timing, build_shared

NATIVE, KERNEL, EMULATED = "native", "kernel", "emulated"
#: Engines that run natively and are timed from the C loop; the others are emulation.
NATIVE_ENGINES = ("llvm", "direct")
COMPILE_ENGINES = ("llvm", "llvm-arm64", "direct", "direct-arm64", "kernel")
RING_SLACK = 2 * 4096        # bytes of a ring buffer a batch leaves free
KERNEL_BATCH = 4             # kernel batches are this many times longer (its per-call set-up)


@dataclass
class Side:
    name: str
    kind: str                                   # NATIVE, KERNEL or EMULATED
    describe: str                               # what exactly runs (compiler flags, engine options)
    run_once: Callable[[], int]
    batch: Callable[[int, int], Timing]         # (n, expected r0) -> Timing
    reset: Callable[[], None] = lambda: None    # before every run or batch (ring buffers)


@dataclass
class ProgramResult:
    """Raw measurements of one program: per side, ns per run of every round."""
    name: str
    description: str
    insns: int
    expected: int | None = None
    expected_from: str = ""
    sides: dict[str, dict] = field(default_factory=dict)     # name -> {kind, describe, n, cpu, wall, kernel}
    refused: dict[str, str] = field(default_factory=dict)    # name -> why
    compile_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description, "insns": self.insns,
                "expected": None if self.expected is None else f"0x{self.expected:x}",
                "expected_from": self.expected_from, "sides": self.sides, "refused": self.refused,
                "compile_ms": self.compile_ms}

    @classmethod
    def from_json(cls, d: dict) -> "ProgramResult":
        expected = None if d["expected"] is None else int(d["expected"], 16)
        return cls(d["name"], d["description"], d["insns"], expected, d["expected_from"], d["sides"],
                   d["refused"], d["compile_ms"])


# ---------------------------------------------------------------- sides

def c_side(name: str, compiler: Compiler, source, function: str, packet: bytes, driver: Driver) -> Side:
    """The program's C source built for the host, called from the driver's loop."""
    import ctypes
    lib = build_shared(compiler, source, source.parent)
    address = ctypes.cast(getattr(lib, function), ctypes.c_void_p).value
    inv = context.xdp(packet)             # the same xdp_md and packet memory layout as the engines'
    return Side(name, NATIVE, compiler.version().split(" (")[0] + " " + " ".join(compiler.flags),
                lambda: driver.run(address, inv.args, 1, 0).last,
                lambda n, expect: driver.run(address, inv.args, n, expect),
                lib.bench_reset if hasattr(lib, "bench_reset") else (lambda: None))


def engine_side(name: str, compiled, make_inv: Callable, driver: Driver, describe: str) -> Side:
    """An llvm or direct program, its native entry called from the driver's loop."""
    inv = make_inv()

    def batch(n: int, expect: int) -> Timing:
        out = []
        entry.native_entry(compiled, inv,
                           lambda address, args, call: out.append(driver.run(address, args, n, expect, call))
                           or out[-1].last)
        return out[0]
    return Side(name, NATIVE, describe, lambda: compiled.invoke(make_inv()), batch)


def kernel_side(compiled, make_inv: Callable) -> Side:
    """The kernel's JIT: BPF_PROG_TEST_RUN with repeat = n, timed with the thread's CPU
    clock around the system call like every other side. That also counts a fixed ~0.4 ms
    of test-run set-up per call (the XDP dispatcher update), so kernel batches are made
    KERNEL_BATCH times longer. The kernel's own figure is kept beside: it is wall time
    around its loop, which a preemption on a busy machine inflates."""
    inv = make_inv()

    def batch(n: int, expect: int) -> Timing:
        r0, cpu, wall, own = entry.kernel_batch(compiled, inv, n)
        return Timing(n, cpu, wall, r0, int(r0 != expect), own)
    return Side("kernel", KERNEL, "Linux JIT via BPF_PROG_TEST_RUN (repeat = n)",
                lambda: compiled.invoke(make_inv()), batch)


def emulated_side(name: str, compiled, make_inv: Callable, describe: str) -> Side:
    """Interpreted or emulated: a Python loop of CompiledProgram.invoke."""
    inv = make_inv()

    def batch(n: int, expect: int) -> Timing:
        bad, r0 = 0, 0
        c, w = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(n):
            r0 = compiled.invoke(inv)
            bad += r0 != expect
        return Timing(n, time.thread_time_ns() - c, time.perf_counter_ns() - w, r0, bad)
    return Side(name, EMULATED, describe, lambda: compiled.invoke(make_inv()), batch)


#: What timed code is compiled as: like the kernel's JIT and the C builds, without run-time
#: bounds checks and without a run budget (a batch of N runs would spend one budget); the
#: cost of those is benchmarks/pass_cost.py's subject. Unchecked code needs no verifier
#: facts, so the verifier (`jitbpf verify`) is not part of what is timed either.
TIMED = {"bounds_check": False, "budget": None, "verify": False}
#: ``--variants``: extra sides, engine and the options added to its timing options.
VARIANTS = {"o3": ("llvm", {"opt": 3}), "blind": ("direct", {"blind": True})}


def engine_options(engine: str, host_cpu: bool = False) -> dict:
    """Options for timing: native llvm code for the baseline x86-64 CPU (as gcc
    -march=x86-64 builds), or for this host's CPU with ``host_cpu``; unchecked code
    without a budget (TIMED) for every code generator."""
    if engine == "llvm":
        return {"cpu": "host" if host_cpu else "generic", **TIMED}
    return dict(TIMED) if engine.split("-")[0].split("@")[0] == "direct" or engine.startswith("llvm") else {}


def describe_engine(engine: str, options: dict) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in sorted(options.items()) if k != "opt")
    level = f" O{options.get('opt', 2)}" if engine.startswith("llvm") else ""
    return f"jitbpf {engine}{level}" + (f" ({opts})" if opts else "")


# ---------------------------------------------------------------- measuring

def reset_rings(obj) -> None:
    """Empty the object's ring buffers (a consumer that read everything): every batch
    starts with the whole ring free, in our runtime and (through it) in the kernel."""
    for m in obj.maps.values():
        if m.type_name == "ringbuf":
            m.consumer = m.producer


def ring_cap(obj, run_once: Callable[[], int]) -> int | None:
    """How many runs fit the object's ring buffers between two resets (None: no rings)."""
    rings = [m for m in obj.maps.values() if m.type_name == "ringbuf"]
    if not rings:
        return None
    reset_rings(obj)
    before = [m.producer for m in rings]
    run_once()
    per_run = max(m.producer - b for m, b in zip(rings, before))
    reset_rings(obj)
    if per_run <= 0:
        return None
    return max(1, min((m.max_entries - RING_SLACK) // per_run for m in rings))


def calibrate(side: Side, expect: int, target_ns: float, cap: int | None) -> int:
    """A batch size taking about ``target_ns`` of thread CPU time."""
    n = 1
    while True:
        side.reset()
        t = side.batch(n, expect)
        if t.mismatches:
            raise BpfError(f"{side.name}: {t.mismatches} of {n} runs returned another r0 "
                           f"(last 0x{t.last:x}, expected 0x{expect:x})")
        if t.cpu_ns >= target_ns / 8 or (cap is not None and n >= cap):
            break
        n = n * 8 if cap is None else min(n * 8, cap)
    n = max(1, round(n * target_ns / max(t.cpu_ns, 1)))
    return min(n, cap) if cap is not None else n


def check(sides: list[Side], expected: int | None, expected_from: str, result: ProgramResult,
          say: Callable[[str], None]) -> list[Side]:
    """Run every side once; a side whose r0 is wrong (or that fails) is refused."""
    kept = []
    for side in sides:
        side.reset()
        try:
            r0 = side.run_once()
        except BpfError as e:
            result.refused[side.name] = f"fails: {e}"
        else:
            if expected is not None and r0 != expected:
                result.refused[side.name] = f"r0 0x{r0:x} != expected 0x{expected:x} (from {expected_from})"
            else:
                kept.append(side)
                continue
        say(f"  {result.name}: refusing {side.name}: {result.refused[side.name]}")
    return kept


def measure(sides: list[Side], expected: int, result: ProgramResult, rounds: int, target_ms: float,
            cap: int | None, seed: int, say: Callable[[str], None]) -> None:
    """Calibrate, then ``rounds`` rounds of one batch per side in shuffled order."""
    sizes = {}
    for side in list(sides):
        try:
            scale = KERNEL_BATCH if side.kind == KERNEL else 1
            sizes[side.name] = calibrate(side, expected, target_ms * 1e6 * scale, cap)
        except BpfError as e:
            result.refused[side.name] = str(e)
            say(f"  {result.name}: refusing {side.name}: {e}")
            sides.remove(side)
    for side in sides:
        result.sides[side.name] = {"kind": side.kind, "describe": side.describe, "n": sizes[side.name],
                                   "cpu_ns": [], "wall_ns": [], "kernel_own_ns": []}
    rng = random.Random(seed)
    live = list(sides)
    for _ in range(rounds):
        rng.shuffle(live)
        for side in list(live):
            side.reset()
            t = side.batch(sizes[side.name], expected)
            if t.mismatches:
                result.refused[side.name] = (f"{t.mismatches} of {t.n} runs in a timed batch returned another "
                                             f"r0 (last 0x{t.last:x}, expected 0x{expected:x})")
                say(f"  {result.name}: refusing {side.name}: {result.refused[side.name]}")
                del result.sides[side.name]
                live.remove(side)
                continue
            record = result.sides[side.name]
            record["cpu_ns"].append(t.cpu_ns / t.n)
            record["wall_ns"].append(t.wall_ns / t.n)
            if t.kernel_own_ns is not None:
                record["kernel_own_ns"].append(t.kernel_own_ns)


def compile_times(program_of: Callable[[], object], engines: list[str], repeats: int) -> dict[str, float]:
    """Median thread CPU ms of a fresh compile per engine (LLVM's cache off; kernel:
    BPF_PROG_LOAD, the verifier and the JIT, the maps already created)."""
    out = {}
    for engine in engines:
        options = {"cache": False, **engine_options(engine)} if engine.startswith("llvm") else {}
        program = program_of()
        samples = []
        for _ in range(repeats):
            c = time.thread_time_ns()
            compiled = program.compile(engine, **options)
            if engine == "kernel":
                entry.kernel_load(compiled)
            samples.append((time.thread_time_ns() - c) / 1e6)
        out[engine] = statistics.median(samples)
    return out


def warm_up(program, engines: list[str]) -> None:
    """One compile per engine outside any measurement (imports, target machines)."""
    for engine in engines:
        options = {"cache": False, **engine_options(engine)} if engine.startswith("llvm") else {}
        try:
            compiled = program.compile(engine, **options)
            if engine == "kernel":
                entry.kernel_load(compiled)
        except BpfError:
            pass


def available(names: list[str]) -> list[str]:
    """The requested engines that exist here, in the registry's order."""
    have = engines_mod.available_engines()
    for n in names:
        engines_mod.parse_engine(n)
    return [e for e in have if e in names]
