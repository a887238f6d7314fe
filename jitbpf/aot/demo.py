"""``make run``: compile the bundled example for x86_64 and arm64 with both backends, run
each object over the bundled capture (natively on the host arch, in unicorn on the other),
cross-check every packet and the maps against interp on the bytecode, print a table.

``python -m jitbpf.aot.demo [BUILD_DIR]``; exit status 1 on any mismatch.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from rich.table import Table

from .. import report
from ..pcap import read_pcap
from ..program import load
from . import ARCHS, BACKENDS, compile_programs, load_compiled

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    build = Path(argv[0] if argv else "build")
    build.mkdir(parents=True, exist_ok=True)
    source = EXAMPLES / "xdp_stats.bpf.o"
    packets = list(read_pcap(EXAMPLES / "traffic.pcap"))
    console = report.console()
    table = Table(title=f"{source.name} ({source.stat().st_size} bytes) compiled ahead of time, "
                        f"{len(packets)} packets of traffic.pcap")
    for column in ("arch", "backend", "object", "bytes", "compile ms", "ran", "verdicts", "vs interp"):
        table.add_column(column)
    failures = 0
    for arch in ARCHS:
        for backend in BACKENDS:
            compiled = compile_programs(load(source), None, arch, backend)
            out = build / f"xdp_stats-{arch}-{backend}.o"
            out.write_bytes(compiled.elf())
            loaded = load_compiled(out)
            reference = load(source)
            interp = reference.program().compile("interp")
            verdicts: Counter[str] = Counter()
            bad = 0
            for pkt in packets:
                got, expected = loaded.run(packet=pkt), interp.run(packet=pkt)
                verdicts[report.verdict("xdp", got.r0)] += 1
                bad += (got.r0, got.memory, got.trace) != (expected.r0, expected.memory, expected.trace)
            bad += loaded.maps["stats"].items() != sorted(reference.maps["stats"].items())
            failures += bad
            table.add_row(arch, backend, str(out), str(out.stat().st_size), f"{compiled.seconds * 1000:.0f}",
                          loaded.executor, ", ".join(f"{n} {v.split()[-1]}" for v, n in sorted(verdicts.items())),
                          "[green]same[/green]" if not bad else f"[red]{bad} differ[/red]")
    console.print(table)
    stats = Table(title="map stats")
    stats.add_column("key")
    stats.add_column("packets")
    stats.add_column("bytes")
    for key, value in loaded.maps["stats"].items():
        stats.add_row(f"0x{int.from_bytes(key, 'little'):x}", str(int.from_bytes(value[:8], "little")),
                      str(int.from_bytes(value[8:16], "little")))
    console.print(stats)
    console.print("C host: make -C examples/c_host  (links the object with gcc and runs it over the capture)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
