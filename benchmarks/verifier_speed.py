"""Verifier speed: processed instructions per second, ours and the host kernel's
verifier side by side on the same programs in one run (where bpf(2) works).

Programs: a 10,000-iteration bounded loop, the largest fixture (``loops.bpf.o``, which
the kernel gives up on), the XDP parser fixture, the switch benchmark (the most
instructions any shipped program makes the verifier process) and a classic host-list
filter (``host A or host B or ...``, compiled by libpcap unoptimised and translated to
eBPF: long straight-line code with thousands of jumps to two labels; a raw program,
which the kernel has no type for). Our figure is the best CPU time of the runs; the
kernel's comes from its own statistics (``verification time``, ``processed N insns``,
log level 4).

    python benchmarks/verifier_speed.py [--runs 3] [--hosts 1000] [--quick]
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
        # strict=False: as the compile pipeline verifies (classic filters need it)
        v = verifier.verify(prog, strict=False)
        best = min(best, time.process_time() - start)
    return v.processed, best


def kernel(prog) -> tuple[int, float] | None:
    from jitbpf.kernel import syscall as sc
    from jitbpf.verifier.progtypes import resolve
    kernel_type = resolve(prog.prog_type).kernel_name
    if not kernel_type or not sc.kernel_available():
        return None
    from jitbpf.kernel.engine import map_references
    from jitbpf.kernel.objects import KernelMaps
    maps = KernelMaps.of(prog.obj)
    options = sc.LoadOptions(name="speed", fd_array=maps.fds, license="GPL")
    try:
        fd, log = sc.load_with_log(jitbpf.isa.encode(map_references(prog.insns)), kernel_type, options, 4)
    except sc.KernelVerifierError as e:
        log = e.log
    else:
        import os
        os.close(fd)
    n = re.search(r"processed (\d+) insns", log)
    t = re.search(r"verification time (\d+) usec", log)
    return (int(n.group(1)), int(t.group(1)) / 1e6) if n and t else None


def host_filter(hosts: int):
    """The translated unoptimised libpcap program of a ``hosts``-host list (None without libpcap)."""
    from jitbpf import cbpf
    from jitbpf.cbpf import libpcap
    if not libpcap.available():
        return None
    expr = " or ".join(f"host 10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}" for i in range(hosts))
    return cbpf.compile(expr, optimize=False).program()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=1000, help="hosts in the classic filter (0: leave it out)")
    ap.add_argument("--quick", action="store_true", help="only the three small programs")
    args = ap.parse_args()
    loop = jitbpf.assemble(LOOP).program()
    loop.prog_type = "xdp"
    root = HERE.parent
    cases = [("10,000-iteration loop", loop),
             ("loops.bpf.o (largest fixture)", jitbpf.load(str(root / "tests/fixtures/loops.bpf.o")).program()),
             ("xdp_parse.bpf.o", jitbpf.load(str(root / "tests/fixtures/xdp_parse.bpf.o")).program())]
    if not args.quick:
        cases.append(("switch.bpf.o (benchmark)", jitbpf.load(str(root / "benchmarks/programs/switch.bpf.o")).program()))
        flt = host_filter(args.hosts) if args.hosts else None
        if flt is not None:
            cases.append((f"{args.hosts}-host filter ({len(flt.insns)} insns)", flt))
    print(f"{'program':34s} {'ours insns':>10s} {'ours s':>8s} {'ours /s':>10s} {'kernel insns':>12s} "
          f"{'kernel /s':>12s} {'ratio':>7s}")
    for name, prog in cases:
        n, t = ours(prog, args.runs)
        k = kernel(prog)
        kn, kt = k if k else (0, 0.0)
        rate, krate = n / t, (kn / kt if kt else 0.0)
        ratio = f"{krate / rate:6.1f}x" if krate else "   n/a"
        print(f"{name:34s} {n:10d} {t:8.3f} {rate:10,.0f} {kn or '-':>12} {krate:12,.0f} {ratio}", flush=True)
    print("ratio: the kernel's instructions per second over ours, measured in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
