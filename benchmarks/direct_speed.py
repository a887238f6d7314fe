"""The direct JITs side by side with the LLVM backend and native C, in one run.

Compile speed: BPF instructions per second turning a 1,000-instruction program (the
synthetic clang-style program of ``compute.py``) into code, for every direct engine and
for LLVM at O0 and O2: "image" is code generation and linking, "compile" also loads the
code (mmap + relocation natively, a unicorn instance otherwise), wall and CPU time (the
CPU figure is steadier on a busy machine). Medians of the runs, and each compile's CPU
time as a ratio to LLVM O2's (native) in the same run. The synthetic program reads
registers and stack it never wrote, so it compiles with ``verify=False,
bounds_check=False`` (the code generator's speed on the unchecked program; the
``bounds_check=True`` row adds the checks). Then, for the direct JITs, where the time
goes: the passes, code generation on the fast path and on the whole-text keystone path
(``lower(..., fast=False)``), code generation of a program never seen before (other
immediates and offsets: patched, not assembled; some new shapes: learned), linking/
loading, keystone calls per program, and the first program of a fresh process (cold
caches) on both paths. The rows above are steady state: WARM compiles come first.

``--root DIR`` measures another checkout's code with this script (before/after side by
side: run it on both, alternately, on the same machine).

Execution: the kernels of ``compute.py`` (``kernels.bpf.o``; checksum, FNV-1a, CRC-32, a
VM, a sort) on ``direct`` and ``llvm`` (O2, native) and as the same C built by gcc -O2;
the sides take turns, best of the runs, every side must agree on r0; ratios
direct/llvm and direct/gcc.

    python benchmarks/direct_speed.py [--runs 5] [--scale 0.5] [--no-exec] [--root DIR]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv[:-1] else HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import jitbpf  # noqa: E402
from jitbpf import pipeline  # noqa: E402
from jitbpf.engines import available_engines  # noqa: E402

import compute  # noqa: E402


def compile_speed(runs: int) -> list[tuple[str, int, float, float, float]]:
    """(engine label, instructions, image ms, compile ms, compile CPU ms) medians."""
    program = jitbpf.assemble(compute.synthetic_program(1000)).program()
    n = sum(1 for spec in program.specs if spec is not None)
    setups = [(e, e, UNCHECKED) for e in ("direct", "direct-arm64", "direct-x86_64@unicorn")
              if e in available_engines()]
    setups += [("direct blind=True", "direct", {**UNCHECKED, "blind": True}),
               ("direct bounds_check=True", "direct", {**UNCHECKED, "bounds_check": True})]
    if "llvm" in available_engines():
        setups += [(f"{e} O{opt}", e, {**UNCHECKED, "opt": opt, "cache": False})    # a cold compile each time
                   for e in ("llvm", "llvm-arm64") for opt in (0, 2)]
    rows = []
    for label, engine, options in setups:
        image, wall, cpu = [], [], []
        for _ in range(WARM):           # warm caches (keystone, LLVM targets, the direct JITs' learned shapes)
            pipeline.image(program, engine, **options)
        for _ in range(runs):
            t = time.perf_counter()
            pipeline.image(program, engine, **options)
            image.append(time.perf_counter() - t)
            t, c = time.perf_counter(), time.process_time()
            program.compile(engine, **options)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        rows.append((label, n, *(statistics.median(x) * 1e3 for x in (image, wall, cpu))))
    return rows


UNCHECKED = {"verify": False, "bounds_check": False}
WARM = 6                # compiles before timing: the direct JITs learn <= 96 new shapes per program


COLD = """
import sys, time
sys.path[:0] = [{root!r}, {here!r}]
import jitbpf, compute
from jitbpf import pipeline
from jitbpf.backends.direct import emitter
p = pipeline.prepare(jitbpf.assemble(compute.synthetic_program(1000)).program(), {engine!r}, verify=False,
                     bounds_check=False)
import importlib
cls = importlib.import_module("jitbpf.backends.direct.{arch}").EMITTER
emitter._keystone(cls.ks_arch, cls.ks_mode)                    # keystone's own start-up apart
c = time.process_time(); emitter.lower(p, {arch!r}, fast={fast!r}); print((time.process_time() - c) * 1e3)
"""


def cold(engine: str, arch: str, runs: int) -> tuple[float, float]:
    """(fast path, text path) CPU ms of the first program lowered in a fresh process (medians)."""
    import subprocess
    times = {True: [], False: []}
    for _ in range(runs):
        for fast in times:
            code = COLD.format(root=str(ROOT), here=str(HERE), engine=engine, arch=arch, fast=fast)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            times[fast].append(float(out.stdout))
    return statistics.median(times[True]), statistics.median(times[False])


def split(runs: int) -> list[tuple[str, list[float], float]]:
    """Per direct engine: (label, [passes, lower, lower text path, lower of an unseen program,
    link + load] CPU ms medians, keystone calls per program on the fast path)."""
    import importlib
    import inspect
    from jitbpf.backends.direct import emitter
    if "fast" not in inspect.signature(emitter.lower).parameters:
        return []                                   # a checkout without the fast path
    programs = [jitbpf.assemble(compute.synthetic_program(1000, seed=7 + i)).program() for i in range(runs + 2)]
    rows = []
    for engine, arch in (("direct", "x86_64"), ("direct-arm64", "arm64")):
        if engine not in available_engines():
            continue
        prepared = [pipeline.prepare(p, engine, **UNCHECKED) for p in programs]
        emitter.lower(prepared[0], arch)                         # the process's caches, warm
        fast = emitter.assembler(importlib.import_module(f"jitbpf.backends.direct.{arch}").EMITTER)
        times: list[list[float]] = [[] for _ in range(5)]
        calls = []
        for i in range(runs):
            p = programs[0]
            c = time.process_time()
            pipeline.prepare(p, engine, **UNCHECKED)
            times[0].append(time.process_time() - c)
            c = time.process_time()
            emitter.lower(prepared[0], arch)
            times[1].append(time.process_time() - c)
            c = time.process_time()
            emitter.lower(prepared[0], arch, fast=False)
            times[2].append(time.process_time() - c)
            before = fast.calls
            c = time.process_time()
            emitter.lower(prepared[i + 1], arch)                  # other immediates, offsets, registers
            times[3].append(time.process_time() - c)
            calls.append(fast.calls - before)
            c = time.process_time()
            p.compile(engine, **UNCHECKED)
            times[4].append(time.process_time() - c)
        times[4] = [max(0.0, a - b - c) for a, b, c in zip(times[4], times[0], times[1])]
        rows.append((engine, [statistics.median(t) * 1e3 for t in times] + list(cold(engine, arch, 3)),
                     statistics.mean(calls)))
    return rows


def execution(runs: int, scale: float) -> int:
    engines = [e for e in ("direct", "llvm") if e in available_engines()]
    obj = jitbpf.load(str(compute.OBJECT))
    with tempfile.TemporaryDirectory() as tmp:
        gcc = compute.build_native("gcc", ["-O2"], Path(tmp))
        columns = engines + (["gcc -O2"] if gcc else [])
        ratios = {c: [] for c in columns if c != "direct"}
        print(f"{'kernel':<10}" + "".join(f"{c:>12}" for c in columns)
              + "".join(f"{'direct / ' + c:>20}" for c in ratios))
        for name, memory in compute.kernel_inputs(scale).items():
            runners = {e: compute.engine_runner(obj.program(name), e, memory) for e in engines}
            if gcc:
                runners["gcc -O2"] = compute.native_runner(gcc, name, memory)
            times, results = compute.best_of(runners, runs)       # the sides take turns
            if len(set(results.values())) != 1:
                print(f"{name}: results differ: {results}")
                return 1
            row = f"{name:<10}" + "".join(f"{times[c] * 1e3:>9.1f} ms" for c in columns)
            for c in ratios:
                ratios[c].append(times["direct"] / times[c])
                row += f"{ratios[c][-1]:>20.2f}"
            print(row)
        print(f"{'geomean':<10}" + " " * 12 * len(columns)
              + "".join(f"{math.exp(statistics.mean(map(math.log, r))):>20.2f}" for r in ratios.values()))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every kernel's repetitions")
    p.add_argument("--no-exec", action="store_true", help="compile speed only")
    p.add_argument("--root", help="measure this checkout's code (default: the one holding this script)")
    args = p.parse_args(argv)
    print(f"code of {Path(pipeline.__file__).parents[1]}; CPU times on this machine as loaded now")
    rows = compile_speed(args.runs)
    ref = next((row for row in rows if row[0] == "llvm O2"), rows[0])      # the ratios' denominator
    print(f"{'compile speed':<28}{'insns':>6}{'image':>10}{'compile':>10}{'(CPU)':>10}{'insns/s image':>16}"
          f"{'compile':>10}{'(CPU)':>10}{'CPU / ' + ref[0]:>20}")
    for label, n, image_ms, wall_ms, cpu_ms in rows:
        print(f"{label:<28}{n:>6}{image_ms:>7.1f} ms{wall_ms:>7.1f} ms{cpu_ms:>7.1f} ms{n / image_ms * 1e3:>16,.0f}"
              f"{n / wall_ms * 1e3:>10,.0f}{n / cpu_ms * 1e3:>10,.0f}{cpu_ms / ref[4]:>20.3f}")
    print()
    parts = split(args.runs)
    if parts:
        print(f"{'CPU ms per 1,000 insns':<24}{'passes':>8}{'lower':>8}{'(text)':>8}{'unseen':>8}"
              f"{'load':>8}{'cold':>8}{'(text)':>8}{'ks calls':>10}")
        for engine, ms, calls in parts:
            print(f"{engine:<24}" + "".join(f"{m:>8.2f}" for m in ms) + f"{calls:>10.1f}")
        print("  lower: code generation + link (fast path); (text): the same in one keystone call; unseen:")
        print("  lower of a program not compiled before (ks calls: its keystone calls); load: the rest of compile;")
        print("  cold: lower of the first program in a fresh process, fast path and (text) path")
        print()
    return 0 if args.no_exec else execution(args.runs, args.scale)


if __name__ == "__main__":
    sys.exit(main())
