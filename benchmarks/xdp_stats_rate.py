"""Packets per second of jitbpf/examples/xdp_stats.bpf.o over the bundled capture, by
engine, side by side in one run: what ``jitbpf run --pcap`` does (``run_many`` over the
packets), with the capture repeated to COPIES x its packets so the rate is not the cost
of the first call. Packets shorter than an Ethernet header are left out (the kernel's
BPF_PROG_TEST_RUN refuses them). Default options on every engine. Median of ROUNDS.

    .venv/bin/python benchmarks/xdp_stats_rate.py [ENGINE ...]    (default: llvm direct kernel)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jitbpf  # noqa: E402
from jitbpf.pcap import read_pcap  # noqa: E402

COPIES, ROUNDS = 2000, 5
EXAMPLES = ROOT / "jitbpf" / "examples"


def main(engines: list[str]) -> None:
    engines = [e for e in engines if e in jitbpf.available_engines()]
    packets = [p for p in read_pcap(str(EXAMPLES / "traffic.pcap")) if len(p) >= 14] * COPIES
    runs = {}
    for e in engines:
        obj = jitbpf.load(str(EXAMPLES / "xdp_stats.bpf.o"))
        fn = obj.program().compile(e)
        runs[e] = (fn, obj)
    rates: dict[str, list[float]] = {e: [] for e in runs}
    for _ in range(ROUNDS):
        for e, (fn, obj) in runs.items():
            start = time.perf_counter()
            fn.run_many(packets)
            rates[e].append(len(packets) / (time.perf_counter() - start))
            obj.runtime.trace_lines.clear()
    print(f"xdp_stats over {len(packets)} packets (traffic.pcap x {COPIES}), packets/s, median of {ROUNDS}")
    kernel = statistics.median(rates["kernel"]) if "kernel" in rates else None
    for e, r in rates.items():
        rate = statistics.median(r)
        vs = f"   {rate / kernel:6.2f}x kernel" if kernel else ""
        print(f"{e:10s} {rate:14,.0f}{vs}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["llvm", "direct", "kernel"])
