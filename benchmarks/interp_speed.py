"""Interpreter speed, side by side in one run: the reference interpreter against the same
loop written in plain Python (what a hand port of the program would cost) and against
the ``direct`` JIT on the same bytecode.

For each loop-heavy program: executed BPF instructions, then the ratios interp / plain
Python and interp / direct (best of the runs, the sides taking turns; every side must
compute the same r0). The interpreter's rate in M insns/s is printed next to them for
reference. Not a test: run it with ``make bench`` (or ``python benchmarks/interp_speed.py``).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jitbpf  # noqa: E402

# Sum of i*i mod 7 over a counted loop: ALU, compare and branch.
ALU_LOOP = """
    mov %r0, 0
    mov %r1, 0
loop:
    mov %r2, %r1
    mul %r2, %r1
    mod %r2, 7
    add %r0, %r2
    add %r1, 1
    jlt %r1, 20000, loop
    exit
"""


def alu_loop_python(mem: bytes | None) -> int:
    return sum(i * i % 7 for i in range(20000))


# A byte checksum over the input memory: loads, shifts, xor.
MEMORY_LOOP = """
    mov %r0, 0
    mov %r3, 0
loop:
    mov %r4, %r1
    add %r4, %r3
    ldxb %r5, [%r4]
    lsh %r0, 1
    xor %r0, %r5
    and %r0, 0xffff
    add %r3, 1
    jlt %r3, %r2, loop
    exit
"""


def memory_loop_python(mem: bytes) -> int:
    r0 = 0
    for b in mem:
        r0 = ((r0 << 1) ^ b) & 0xFFFF
    return r0


PROGRAMS = [("alu-loop", ALU_LOOP, alu_loop_python, None),
            ("memory-loop", MEMORY_LOOP, memory_loop_python, bytes(range(256)) * 64)]


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(text: str, python, mem: bytes | None, runs: int) -> tuple[int, dict[str, float]]:
    """Executed instructions and the best time per side (interp, python, direct)."""
    prog = jitbpf.assemble(text).program()
    interp = prog.compile("interp", budget=10_000_000)
    sides = {"interp": lambda: interp.run(mem).r0, "python": lambda: python(mem)}
    if "direct" in jitbpf.available_engines():
        direct = prog.compile("direct")
        sides["direct"] = lambda: direct.run(mem).r0
    best = {side: math.inf for side in sides}
    results = {}
    for _ in range(runs):
        for side, fn in sides.items():
            seconds, results[side] = timed(fn)
            best[side] = min(best[side], seconds)
    if len(set(results.values())) != 1:
        raise SystemExit(f"results differ: {results}")
    return executed(prog, mem), best


def executed(prog, mem: bytes | None) -> int:
    """The instructions one run executes (each handler call counted, in a separate run)."""
    counting = prog.compile("interp", budget=10_000_000)
    count = 0

    def counted(handler):
        def h(regs):
            nonlocal count
            count += 1
            return handler(regs)
        return h
    counting.executable.handlers = [counted(h) for h in counting.executable.handlers]
    counting.run(mem)
    return count


def main(runs: int = 3) -> None:
    print(f"{'program':12} {'insns':>9} {'interp M insns/s':>17} {'interp / python':>16} {'interp / direct':>16}")
    ratios: dict[str, list[float]] = {"python": [], "direct": []}
    for name, text, python, mem in PROGRAMS:
        steps, best = measure(text, python, mem, runs)
        row = f"{name:12} {steps:>9} {steps / best['interp'] / 1e6:>17.2f}"
        for side in ratios:
            if side in best:
                ratios[side].append(best["interp"] / best[side])
                row += f" {ratios[side][-1]:>15.1f}x"
            else:
                row += f" {'-':>16}"
        print(row)
    print(f"{'geomean':12} {'':>9} {'':>17}" + "".join(
        f" {math.exp(statistics.mean(map(math.log, r))):>15.1f}x" if r else f" {'-':>16}" for r in ratios.values()))


if __name__ == "__main__":
    main()
