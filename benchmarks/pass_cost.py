"""What the passes cost at run time: each compute kernel (benchmarks/compute.py) on llvm
and direct plain, with ``blind=True``, with ``bounds_check=True`` and with the default run
budget's ticks, as a ratio to the plain code (no budget) of the same engine, measured side
by side in one run (the sides take turns; best of ``--runs``).

    python benchmarks/pass_cost.py [--engines llvm,direct] [--runs 5] [--scale 0.5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import jitbpf  # noqa: E402
from jitbpf.engines import available_engines  # noqa: E402

import compute  # noqa: E402

VARIANTS = {"plain": {}, "budget": {"budget": 1 << 40}, "blind": {"blind": True},
            "bounds_check": {"bounds_check": True}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [e for e in ("llvm", "direct") if e in available_engines()]
    p.add_argument("--engines", default=",".join(default))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scale", type=float, default=0.5)
    args = p.parse_args(argv)
    obj = jitbpf.load(str(compute.OBJECT))
    inputs = compute.kernel_inputs(args.scale)
    for engine in args.engines.split(","):
        ratios: dict[str, list[float]] = {v: [] for v in VARIANTS if v != "plain"}
        print(f"{engine}: time / plain {engine} (no budget), same run")
        print(f"  {'kernel':<10}" + "".join(f"{v:>14}" for v in ratios))
        for name, memory in inputs.items():
            runners = {v: compute.engine_runner(obj.program(name), engine, memory, **opts)
                       for v, opts in VARIANTS.items()}
            times, results = compute.best_of(runners, args.runs)
            if len(set(results.values())) != 1:
                print(f"{name}: results differ: {results}")
                return 1
            for v in ratios:
                ratios[v].append(times[v] / times["plain"])
            print(f"  {name:<10}" + "".join(f"{ratios[v][-1]:>14.2f}" for v in ratios))
        print(f"  {'geomean':<10}" + "".join(f"{math.exp(statistics.mean(map(math.log, r))):>14.2f}"
                                            for r in ratios.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
