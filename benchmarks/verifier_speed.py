"""Verifier speed: processed instructions per second, ours and the host kernel's
verifier side by side on the same programs in one run (where bpf(2) works).

Programs: a 10,000-iteration bounded loop, the largest fixture (``loops.bpf.o``, which
the kernel gives up on) and the XDP parser fixture. Our figure is the best CPU time of
the runs; the kernel's comes from its own statistics (``verification time``,
``processed N insns``, log level 4).

    python benchmarks/verifier_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jitbpf  # noqa: E402
from jitbpf import verifier  # noqa: E402

LOOP = """
    mov %r0, 0
    mov %r1, 0
loop:
    add %r0, %r1
    add %r1, 1
    jlt %r1, 10000, loop
    exit
"""


def ours(prog, runs: int) -> tuple[int, float]:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        v = verifier.verify(prog)
        best = min(best, time.process_time() - start)
    return v.processed, best


def kernel(prog) -> tuple[int, float] | None:
    from jitbpf.kernel import syscall as sc
    if not sc.kernel_available():
        return None
    from jitbpf.kernel.engine import map_references
    from jitbpf.kernel.objects import KernelMaps
    from jitbpf.verifier.progtypes import resolve
    maps = KernelMaps.of(prog.obj)
    options = sc.LoadOptions(name="speed", fd_array=maps.fds, license="GPL")
    try:
        fd, log = sc.load_with_log(jitbpf.isa.encode(map_references(prog.insns)),
                                   resolve(prog.prog_type).kernel_name, options, 4)
    except sc.KernelVerifierError as e:
        log = e.log
    else:
        import os
        os.close(fd)
    n = re.search(r"processed (\d+) insns", log)
    t = re.search(r"verification time (\d+) usec", log)
    return (int(n.group(1)), int(t.group(1)) / 1e6) if n and t else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    loop = jitbpf.assemble(LOOP).program()
    loop.prog_type = "xdp"
    root = HERE.parent
    cases = [("10,000-iteration loop", loop),
             ("loops.bpf.o (largest fixture)", jitbpf.load(str(root / "tests/fixtures/loops.bpf.o")).program()),
             ("xdp_parse.bpf.o", jitbpf.load(str(root / "tests/fixtures/xdp_parse.bpf.o")).program())]
    print(f"{'program':32s} {'ours insns':>10s} {'ours /s':>10s} {'kernel insns':>12s} {'kernel /s':>12s} "
          f"{'ratio':>7s}")
    for name, prog in cases:
        n, t = ours(prog, args.runs)
        k = kernel(prog)
        kn, kt = k if k else (0, 0.0)
        rate, krate = n / t, (kn / kt if kt else 0.0)
        ratio = f"{krate / rate:6.1f}x" if krate else "   n/a"
        print(f"{name:32s} {n:10d} {rate:10,.0f} {kn or '-':>12} {krate:12,.0f} {ratio}")
    print("ratio: the kernel's instructions per second over ours, measured in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
