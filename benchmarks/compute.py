"""Execution speed of JIT-compiled BPF against the same C compiled natively, and compile time.

The kernels of ``kernels.bpf.c`` (checksum, FNV-1a, CRC-32, a switch-dispatched VM, an
insertion sort) run once as the committed clang BPF object ``kernels.bpf.o`` through
jitbpf engines and once as that same C file built now by ``gcc -O2`` into a shared
library (and by clang-19 -O2 where it exists, as a reference: the JIT's code generator is
LLVM, so a kernel where gcc and clang differ a lot shows a compiler difference rather than a
JIT effect). Each kernel loops ``reps`` times inside one call, so a measurement is one
native call of ~10-100 ms (no per-iteration ctypes cost); the best of several runs is
kept (the sides take turns), and every side must return the same r0. Ratios are engine time / gcc time, side
by side in this run. Without gcc, the ratios are engine time / the first engine's time.

Compile time: deterministic 1,000-instruction programs (loads from the input, ALU,
stack spills, forward branches; a new one for every run, LLVM's object cache off)
compiled at O2 from bytecode to loaded native code, each engine's CPU time also given as
a ratio to the first engine's in the same run. CPU time (``time.process_time``) is
the figure to compare: wall time on a loaded machine includes other processes. For a
count that load cannot disturb, run one compile under ``valgrind --tool=callgrind``.

    python benchmarks/compute.py [--engines llvm,direct] [--runs 5] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import ctypes
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jitbpf  # noqa: E402
from jitbpf.engines import available_engines  # noqa: E402
from jitbpf.runtime import context  # noqa: E402

SOURCE = HERE / "kernels.bpf.c"
OBJECT = HERE / "kernels.bpf.o"
LOADI, ADD, XOR, MUL, SHR, ROTL, DECJNZ = 1, 2, 3, 4, 5, 6, 7
#: The VM's program: r0 = 1, r1 = 7; loop { r0 *= r1|1; r0 = rotl(r0, 13); r1 += r0;
#: r2 ^= r1; r2 >>= 3; r0 ^= r2 } r3 times (r3 = reps); halt.
VM_PROGRAM = [(LOADI, 0, 0, 1), (LOADI, 1, 0, 7), (MUL, 0, 1, 0), (ROTL, 0, 0, 13), (ADD, 1, 0, 0),
              (XOR, 2, 1, 0), (SHR, 2, 0, 3), (XOR, 0, 2, 0), (DECJNZ, 3, 0, 2), (0, 0, 0, 0)]


def kernel_inputs(scale: float) -> dict[str, bytes]:
    """Memory (struct args) per kernel: reps, len, data."""
    rng = random.Random(1)
    packet = bytes(rng.randrange(256) for _ in range(1500))
    words = bytes(rng.randrange(256) for _ in range(1024)) + bytes(1024)
    vm_code = b"".join(bytes(insn) for insn in VM_PROGRAM)

    def args(reps: int, data: bytes, length: int) -> bytes:
        return max(1, int(reps * scale)).to_bytes(8, "little") + length.to_bytes(8, "little") + data
    return {
        "checksum": args(40_000, packet, len(packet)),
        "fnv1a": args(20_000, packet, len(packet)),
        "crc32": args(2_000, packet, len(packet)),
        "vm": args(3_000_000, vm_code, len(vm_code)),
        "sort": args(2_000, words, 1024),
    }


def build_native(compiler: str, flags: list[str], workdir: Path) -> ctypes.CDLL | None:
    path = shutil.which(compiler)
    if path is None:
        return None
    out = workdir / f"kernels{len(list(workdir.iterdir()))}.so"
    subprocess.run([path, *flags, "-shared", "-fPIC", "-x", "c", str(SOURCE), "-o", str(out)], check=True)
    lib = ctypes.CDLL(str(out))
    return lib


def native_runner(lib: ctypes.CDLL, name: str, memory: bytes):
    """A callable running the gcc-built kernel once: (seconds, result)."""
    fn = getattr(lib, name)
    fn.restype, fn.argtypes = ctypes.c_uint64, [ctypes.c_void_p, ctypes.c_uint64]
    buf = ctypes.create_string_buffer(memory, len(memory))

    def run() -> tuple[float, int]:
        t = time.perf_counter()
        result = fn(ctypes.addressof(buf), len(memory))
        return time.perf_counter() - t, result
    return run


def engine_runner(program, engine: str, memory: bytes, **options):
    """A callable running the compiled kernel once on a fresh copy of the memory: unchecked
    code without a run budget unless ``options`` say otherwise (each kernel loops millions
    of times; what checks and budget cost is benchmarks/pass_cost.py's subject)."""
    compiled = program.compile(engine, **{"budget": None, "bounds_check": False, **options})

    def run() -> tuple[float, int]:
        inv = context.raw_memory(memory)
        t = time.perf_counter()
        result = compiled.invoke(inv)
        return time.perf_counter() - t, result
    return run


def best_of(runners: dict, runs: int) -> tuple[dict[str, float], dict[str, int]]:
    """Best time and last result per side, the sides taking turns so that a busy
    machine slows them alike."""
    times = {side: float("inf") for side in runners}
    results = {}
    for _ in range(runs):
        for side, run in runners.items():
            seconds, results[side] = run()
            times[side] = min(times[side], seconds)
    return times, results


def synthetic_program(n: int = 1000, seed: int = 7) -> str:
    """Exactly n instruction slots in the style clang emits: input loads, ALU, stack
    spills and reloads, forward branches, results folded into r0 and stored to the
    input so that little of it is dead code."""
    rng = random.Random(seed)
    lines = ["mov %r6, %r1", "mov %r0, 0", "mov %r7, 1", "mov %r8, 2", "mov %r9, 3"]
    regs = [2, 3, 4, 5, 7, 8, 9]
    count, label = len(lines), 0
    while count < n - 1:
        d, s = rng.choice(regs), rng.choice(regs)
        k = rng.random()
        if k < 0.15:
            lines.append(f"ldxdw %r{d}, [%r6+{8 * rng.randrange(16)}]")
        elif k < 0.45:
            op = rng.choice(["add", "sub", "mul", "xor", "or", "lsh", "rsh", "arsh", "add32", "xor32"])
            lines.append(f"{op} %r{d}, %r{s}" if rng.random() < 0.5 else f"{op} %r{d}, {rng.randrange(1, 63)}")
        elif k < 0.6:
            lines.append(f"{rng.choice(['add', 'xor', 'sub'])} %r0, %r{s}")
        elif k < 0.7:
            lines.append(f"stxdw [%r10-{8 * rng.randrange(1, 40)}], %r{s}")
        elif k < 0.8:
            lines.append(f"ldxdw %r{d}, [%r10-{8 * rng.randrange(1, 40)}]")
        elif k < 0.85:
            lines.append(f"stxdw [%r6+{8 * rng.randrange(16, 32)}], %r{s}")
        elif count < n - 3:
            label += 1
            cond = rng.choice(["jgt", "jeq", "jsgt", "jne", "jset", "jlt"])
            lines += [f"{cond} %r{d}, %r{s}, L{label}", f"add %r{d}, {rng.randrange(100)}", f"L{label}:"]
            count += 1
        else:
            continue
        count += 1
    lines.append("exit")
    return "\n".join(lines)


def compile_times(engines: list[str], runs: int) -> dict[str, tuple[int, float, float]]:
    """engine -> (instructions, median wall ms, median CPU ms) from bytecode to loaded code.
    Every run compiles a program never seen before (another seed) and LLVM's object cache
    is off: a cold compile each time."""
    programs = [jitbpf.assemble(synthetic_program(seed=7 + i)).program() for i in range(runs + 1)]
    out = {}
    for engine in engines:
        options = {"opt": 2, "cache": False} if engine.startswith("llvm") else {}
        programs[0].compile(engine, **options)                # warm up (target machines, imports)
        wall, cpu = [], []
        for program in programs[1:]:
            t, c = time.perf_counter(), time.process_time()
            program.compile(engine, **options)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[engine] = (len(programs[1].insns), statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [e for e in ("llvm", "direct") if e in available_engines()]
    p.add_argument("--engines", default=",".join(default), help="native engines to time (default: %(default)s)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every kernel's repetitions")
    args = p.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]

    obj = jitbpf.load(str(OBJECT))
    inputs = kernel_inputs(args.scale)
    with tempfile.TemporaryDirectory() as tmp:
        natives = {label: build_native(compiler, flags, Path(tmp)) for label, compiler, flags in
                   (("gcc -O2", "gcc", ["-O2"]), ("gcc -O2 -march=native", "gcc", ["-O2", "-march=native"]),
                    ("clang -O2", "clang-19", ["-O2"]))}
        if natives["gcc -O2"] is None:
            print("gcc not found: the C side is skipped, engines compared with each other only")
            natives = {}
        natives = {label: lib for label, lib in natives.items() if lib is not None}   # clang is optional
        columns = [*natives, *engines]
        ref = "gcc -O2" if natives else next(iter(engines), None)   # the side the ratios divide by
        ratios: dict[str, list[float]] = {e: [] for e in engines if ref not in (None, e)}
        print(f"{'kernel':<10}" + "".join(f"{c:>24}" for c in columns)
              + "".join(f"{e + ' / ' + ref:>22}" for e in ratios))
        for name, memory in inputs.items():
            runners = {label: native_runner(lib, name, memory) for label, lib in natives.items()}
            runners.update((engine, engine_runner(obj.program(name), engine, memory)) for engine in engines)
            times, results = best_of(runners, args.runs)
            if len(set(results.values())) != 1:
                print(f"{name}: results differ: {results}")
                return 1
            row = f"{name:<10}" + "".join(f"{times[c] * 1e3:>21.1f} ms" for c in columns)
            for engine in ratios:
                ratios[engine].append(times[engine] / times[ref])
                row += f"{ratios[engine][-1]:>22.2f}"
            print(row)
        print(f"{'geomean':<10}" + " " * 24 * len(columns)
              + "".join(f"{math.exp(statistics.mean(map(math.log, r))):>22.2f}" for r in ratios.values()))

    code_engines = [e for e in ("llvm", "llvm-arm64", "direct", "direct-arm64") if e in available_engines()]
    times = compile_times(code_engines, max(args.runs, 5))
    base = code_engines[0] if code_engines else None
    for engine, (n, wall, cpu) in times.items():
        ratio = "" if engine == base else f", {cpu / times[base][2]:.2f}x {base}'s CPU time"
        print(f"compile time, {n}-instruction program, {engine}{' at O2' if engine.startswith('llvm') else ''}: "
              f"{wall:.1f} ms wall, {cpu:.1f} ms CPU (median){ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
