"""Cost of one helper call from generated code: bpf_map_lookup_elem on an array map,
timed in a BPF loop of N calls, minus the same loop without the call, per engine.
Also the load time of the largest clang fixture. Run: .venv/bin/python benchmarks/helper_call.py"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import jitbpf
from jitbpf.runtime import maps

ROOT = Path(__file__).resolve().parent.parent
N = 100_000
LOOP = """
    mov %r6, 0
    stw [%r10-4], 1
loop:
    lddw %r1, map_fd(0)
    mov %r2, %r10
    add %r2, -4
    {body}
    add %r6, 1
    jlt %r6, {n}, loop
    mov %r0, %r6
    exit
"""


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn.run()
        times.append(time.perf_counter() - start)
    return min(times)


def helper_cost(engine: str) -> tuple[float, float]:
    timings = []
    for body in ("call 1", "mov %r0, 0"):
        obj = jitbpf.assemble(LOOP.format(body=body, n=N))
        obj.add_map(maps.create(obj.runtime, "a", "array", 4, 8, 4))
        fn = obj.program().compile(engine)
        fn.run()
        timings.append(best_of(fn))
    return (timings[0] - timings[1]) / N * 1e9, timings[0]


def main() -> None:
    largest = max((ROOT / "tests" / "fixtures").glob("*.bpf.o"), key=lambda p: p.stat().st_size)
    jitbpf.load(str(largest))
    loads = []
    for _ in range(20):
        start = time.perf_counter()
        jitbpf.load(str(largest))
        loads.append(time.perf_counter() - start)
    print(f"load {largest.name} ({largest.stat().st_size} bytes): median {statistics.median(loads) * 1e3:.2f} ms")
    engines = sys.argv[1:] or [e for e in jitbpf.available_engines() if e in ("llvm", "direct")]
    for engine in engines:
        ns, total = helper_cost(engine)
        print(f"{engine}: bpf_map_lookup_elem on an array map: {ns:.0f} ns per call "
              f"({N} calls in {total * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
