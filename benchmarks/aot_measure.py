"""Ahead-of-time figures for the bundled example (xdp_stats.bpf.o over traffic.pcap):
object size vs the BPF object, time from .o to object per backend and arch (median of 5),
and the time per run of the object called from C (examples/c_host, gcc -O2, 20,000 passes
over the capture) vs the same program through the in-process JIT's Python API
(CompiledProgram.run) and the loaded object's (CompiledObject.run).

    .venv/bin/python benchmarks/aot_measure.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import jitbpf
from jitbpf import aot
from jitbpf.pcap import read_pcap

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "jitbpf" / "examples" / "xdp_stats.bpf.o"
PCAP = ROOT / "jitbpf" / "examples" / "traffic.pcap"


def main() -> None:
    print(f"{SOURCE.name}: {SOURCE.stat().st_size} bytes")
    print("| arch | backend | object bytes | x BPF object | compile ms (median of 5) |")
    print("|---|---|---|---|---|")
    for arch in aot.ARCHS:
        for backend in aot.BACKENDS:
            times, size = [], 0
            for _ in range(5):
                obj = jitbpf.load(SOURCE)
                start = time.perf_counter()
                compiled = aot.compile_programs(obj, None, arch, backend, cache=False) if backend == "llvm" \
                    else aot.compile_programs(obj, None, arch, backend)
                size = len(compiled.elf())
                times.append(time.perf_counter() - start)
            print(f"| {arch} | {backend} | {size} | {size / SOURCE.stat().st_size:.2f} | "
                  f"{statistics.median(times) * 1000:.0f} |")
    packets = list(read_pcap(PCAP))
    rounds = 200
    for engine in ("llvm", "direct"):
        fn = jitbpf.load(SOURCE).program().compile(engine)
        start = time.perf_counter()
        for _ in range(rounds):
            for p in packets:
                fn.run(packet=p)
        print(f"in-process JIT ({engine}) via CompiledProgram.run: "
              f"{(time.perf_counter() - start) / (rounds * len(packets)) * 1e9:,.0f} ns per run")
    for backend in aot.BACKENDS:
        loaded = aot.load_compiled(aot.compile_programs(jitbpf.load(SOURCE), None, "x86_64", backend).elf())
        start = time.perf_counter()
        for _ in range(rounds):
            for p in packets:
                loaded.run(packet=p)
        print(f"compiled object ({backend}) via CompiledObject.run: "
              f"{(time.perf_counter() - start) / (rounds * len(packets)) * 1e9:,.0f} ns per run")
    if shutil.which("gcc") is None:
        print("no gcc: the C host figure is skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for backend in aot.BACKENDS:
            compiled = aot.compile_programs(jitbpf.load(SOURCE), None, "x86_64", backend)
            (Path(tmp) / "xdp_stats.o").write_bytes(compiled.elf())
            (Path(tmp) / "xdp_stats.h").write_text(compiled.header())
            host = Path(tmp) / "host"
            subprocess.run(["gcc", "-O2", "-no-pie", f"-I{tmp}", "-o", str(host),
                            str(ROOT / "examples" / "c_host" / "host.c"), str(Path(tmp) / "xdp_stats.o")], check=True)
            out = subprocess.run([str(host), str(PCAP), "20000"], capture_output=True, text=True, check=True).stdout
            print(f"compiled object ({backend}) called from C: {out.strip()} (20,000 x {len(packets)} runs, "
                  "trace_printk silenced)")


if __name__ == "__main__":
    main()
