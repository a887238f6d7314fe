"""Cost of one helper call from generated code, side by side in one run.

Per engine, a BPF loop of N iterations is timed three ways: calling
bpf_map_lookup_elem on an array map, calling a no-op helper written in Python (the
bare cost of the call mechanism), and with neither (the loop alone). Printed: ns per
call (loop time subtracted) and the ratio map lookup / no-op helper, then the same
lookup on every engine relative to the first. Also the load time of the largest clang
fixture against pyelftools (an independent ELF reader) reading the same file's
sections and symbols.

    .venv/bin/python benchmarks/helper_call.py [ENGINE ...]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jitbpf  # noqa: E402
from jitbpf.runtime import maps  # noqa: E402

N = 100_000
NOOP_HELPER = 9000
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
BODIES = {"lookup": "call 1", "noop": f"call {NOOP_HELPER}", "loop": "mov %r0, 0"}


def compiled(engine: str, body: str):
    obj = jitbpf.assemble(LOOP.format(body=body, n=N))
    obj.add_map(maps.create(obj.runtime, "a", "array", 4, 8, 4))
    obj.runtime.helpers.register(NOOP_HELPER, "noop", lambda rt, *_: 0)
    fn = obj.program().compile(engine)
    assert fn.run().r0 == N
    return fn


def helper_costs(engine: str, repeat: int = 5) -> dict[str, float]:
    """ns per call of the map lookup and of the no-op helper (loop time subtracted);
    the three loops take turns, best of ``repeat``."""
    fns = {name: compiled(engine, body) for name, body in BODIES.items()}
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn.run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name] - best["loop"]) / N * 1e9 for name in ("lookup", "noop")}


def load_times(path: Path, runs: int = 20) -> tuple[float, float]:
    """Median seconds: jitbpf.load, and pyelftools reading every section and symbol."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    def with_pyelftools():
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for section in elf.iter_sections():
                section.data()
                if isinstance(section, SymbolTableSection):
                    list(section.iter_symbols())

    sides = {"jitbpf": lambda: jitbpf.load(str(path)), "pyelftools": with_pyelftools}
    times: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(runs + 1):                          # the first round warms up
        for side, fn in sides.items():
            start = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - start)
    return statistics.median(times["jitbpf"][1:]), statistics.median(times["pyelftools"][1:])


def main() -> None:
    largest = max((ROOT / "tests" / "fixtures").glob("*.bpf.o"), key=lambda p: p.stat().st_size)
    ours, theirs = load_times(largest)
    print(f"load {largest.name} ({largest.stat().st_size} bytes): {ours * 1e3:.2f} ms, "
          f"{ours / theirs:.2f}x pyelftools reading its sections and symbols ({theirs * 1e3:.2f} ms)")
    engines = sys.argv[1:] or [e for e in jitbpf.available_engines() if e in ("llvm", "direct")]
    first = None
    for engine in engines:
        cost = helper_costs(engine)
        first = first or (engine, cost["lookup"])
        print(f"{engine}: bpf_map_lookup_elem on an array map {cost['lookup']:.0f} ns per call, "
              f"{cost['lookup'] / cost['noop']:.2f}x a no-op Python helper ({cost['noop']:.0f} ns)"
              + (f", {cost['lookup'] / first[1]:.2f}x {first[0]}" if first[0] != engine else ""))


if __name__ == "__main__":
    main()
