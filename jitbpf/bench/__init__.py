"""``jitbpf bench``: every engine against the kernel's JIT and native C, side by side.

- :mod:`.suite`: the benchmark programs of ``benchmarks/programs`` and their packets;
- :mod:`.native`: the C driver loop and the C baselines, built at bench time;
- :mod:`.entry`: the one place that knows how a compiled program is entered natively
  and how the kernel is asked to repeat it (to change when the run API does);
- :mod:`.harness`: sides, checks, calibration, shuffled rounds, compile times;
- :mod:`.run`: a whole run (the suite, a user's program, several processes);
- :mod:`.report`: the method, tables, JSON and the chart.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    """Add the ``bench`` command to the jitbpf command's subparsers."""
    s = sub.add_parser("bench", help="time programs on every engine against the kernel and native C",
                       description=__doc__.splitlines()[0])
    s.add_argument("programs", nargs="*", metavar="PROG",
                   help="benchmark program names (default: the whole suite), or a program file "
                        "(.o, raw bytecode, .asm) to time your own")
    s.add_argument("--engines", default="all", help="comma-separated engines (default: all available)")
    s.add_argument("--native", default="gcc,clang", help="C baselines: gcc,clang or none (default: %(default)s)")
    s.add_argument("--host", action="store_true",
                   help="also gcc -O2 -march=native and llvm cpu=host (this machine's ISA on both sides)")
    s.add_argument("--variants", default="",
                   help="extra sides: o3 (llvm at O3), blind (direct with blind=True), comma-separated")
    s.add_argument("--rounds", type=int, default=5, help="rounds of shuffled batches (default: %(default)s)")
    s.add_argument("--processes", type=int, default=1, help="repeat in N fresh processes, one after the other")
    s.add_argument("--target-ms", type=float, default=20.0, help="CPU time of one batch (default: %(default)s)")
    s.add_argument("--compile-repeats", type=int, default=3, help="fresh compiles per engine (0: no compile times)")
    s.add_argument("--json", help="write the raw figures and the summary as JSON here")
    s.add_argument("--plot", help="write a PNG chart of the ratios here (needs matplotlib)")
    s.add_argument("--markdown", help="write the native table, geomeans and compile times as Markdown here")
    s.add_argument("--mem", help="your program: file whose bytes are its memory or packet")
    s.add_argument("--section", help="your program: which program of the object (name or section)")
    s.add_argument("--expect", type=lambda v: int(v, 0), help="your program: the r0 every side must return "
                                                               "(default: interp's)")
    s.add_argument("--seed", type=int, default=1, help="seed of the shuffled order")
    s.add_argument("--quiet", action="store_true", help="no progress lines and no tables")
    s.set_defaults(func=command)


def _settings(args: argparse.Namespace):
    from ..errors import BpfError
    from .harness import VARIANTS, available
    from .run import C_COMPILERS, Settings
    from ..engines import available_engines
    engines = available_engines() if args.engines == "all" else available(args.engines.split(","))
    natives = [] if args.native == "none" else [n for n in args.native.split(",") if n]
    unknown = [n for n in natives if n not in C_COMPILERS]
    if unknown:
        raise BpfError(f"unknown C baseline {', '.join(unknown)} (gcc, clang or none)")
    if args.rounds < 1 or args.processes < 1 or args.target_ms <= 0:
        raise BpfError("--rounds and --processes must be at least 1, --target-ms positive")
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise BpfError(f"unknown variant {', '.join(unknown)} ({', '.join(VARIANTS)})")
    return Settings(engines, natives, args.host, args.rounds, args.target_ms, args.compile_repeats, args.seed,
                    variants)


def command(args: argparse.Namespace) -> int:
    import sys

    from ..errors import BpfError
    from ..report import console
    from . import report, run
    settings = _settings(args)
    files = [p for p in args.programs if Path(p).is_file()]
    if files and len(files) != len(args.programs):
        raise BpfError("give either benchmark program names or program files, not both")
    say = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.processes > 1:
        reports = run.run_processes(_argv(args), args.processes, say)
        results, machine = report.merge(reports)
    else:
        mem = Path(args.mem).read_bytes() if args.mem else None
        if files:
            results = [r for f in files for r in run.run_file(f, args.section, mem, args.expect, settings, say)]
        else:
            if args.mem or args.section or args.expect is not None:
                raise BpfError("--mem, --section and --expect are for your own program file")
            results = run.run_suite(args.programs, settings, say)
        machine = run.machine()
    info = {"engines": settings.engines, "natives": settings.natives, "host": settings.host,
            "rounds": settings.rounds, "processes": args.processes, "target_ms": settings.target_ms,
            "command": "jitbpf bench " + " ".join(_argv(args))}
    if args.json:
        report.write_json(report.to_json(results, info, machine), args.json)
    if args.plot:
        report.plot(results, args.plot)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(report.markdown(results, machine))
    if not args.quiet:
        report.print_report(results, info, machine, console())
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The command line of this run (for child processes started from the API)."""
    out = list(args.programs)
    for flag in ("engines", "native", "variants", "rounds", "target_ms", "compile_repeats", "mem", "section"):
        value = getattr(args, flag)
        if value is not None:
            out += [f"--{flag.replace('_', '-')}", str(value)]
    if args.host:
        out.append("--host")
    if args.expect is not None:
        out += ["--expect", str(args.expect)]
    return out
