"""``jitbpf compile`` and ``jitbpf run`` of a compiled object."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BpfError
from . import ABIS, ARCHS, BACKENDS, compile_programs

COMPILE_EXAMPLES = """\
examples:
  jitbpf compile prog.bpf.o --arch x86_64 -o prog.o --header prog.h     # link with: gcc -no-pie host.c prog.o
  jitbpf compile prog.bpf.o --program xdp_stats --arch arm64 --backend direct -o prog-arm64.o
  jitbpf compile prog.bpf.o --all --format raw -o prog.bin               # prog.bin + prog.bin.json
  jitbpf compile prog.bpf.o --abi bpftime -o prog.o                      # int bpf_main(void *, uint64_t)
  jitbpf run prog.o --pcap trace.pcap --check --source prog.bpf.o        # run it, cross-checked
"""


def is_compiled(path: str) -> bool:
    """Whether ``path`` is an object or blob written by ``jitbpf compile``."""
    p = Path(path)
    if Path(str(p) + ".json").exists():
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(4)
            if head != b"\x7fELF":
                return False
            return b".jitbpf\0" in p.read_bytes()
    except OSError:
        return False


def cmd_compile(args: argparse.Namespace) -> int:
    from .. import pipeline
    from ..program import load
    obj = load(args.file)
    names = None if args.all else [args.program] if args.program else None
    if names is None and not args.all and len(obj.programs) > 1:
        raise BpfError(f"{args.file} has {len(obj.programs)} programs: choose one with --program or take --all")
    options = dict(pipeline.parse_option_text(t) for t in args.X or ())
    compiled = compile_programs(obj, names, args.arch, args.backend, args.opt, args.abi, **options)
    out = Path(args.output)
    if args.format == "elf":
        data = compiled.elf()
        out.write_bytes(data)
        written = [str(out)]
    else:
        blob, manifest = compiled.raw()
        out.write_bytes(blob)
        Path(str(out) + ".json").write_bytes(manifest)
        data = blob
        written = [str(out), str(out) + ".json"]
    if args.header:
        Path(args.header).write_text(compiled.header())
        written.append(args.header)
    summary = {"output": written, "arch": args.arch, "backend": args.backend, "format": args.format,
               "abi": args.abi, "bytes": len(data), "source_bytes": Path(args.file).stat().st_size,
               "seconds": round(compiled.seconds, 4),
               "programs": [p["symbol"] for p in compiled.manifest["programs"]],
               "maps": [m["name"] for m in compiled.manifest["maps"]], "undefined": compiled.manifest["helpers"]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{', '.join(written)}: {args.arch} {args.format}, {len(data)} bytes "
              f"({summary['source_bytes']} bytes of BPF object), {compiled.seconds * 1000:.0f} ms")
        print(f"  exports {', '.join(summary['programs'])}"
              + (f"; maps {', '.join(summary['maps'])}" if summary["maps"] else "")
              + (f"; the host defines {', '.join(summary['undefined'])}" if summary["undefined"] else ""))
    return 0


def run_compiled(args: argparse.Namespace) -> int:
    """``jitbpf run OBJECT`` for a compiled object or blob: the same inputs and output as for
    a BPF object; ``--check --source PROG.bpf.o`` compares with interp on the bytecode."""
    from collections import Counter

    from .. import report
    from ..program import load
    from . import load_compiled
    compiled = load_compiled(args.file)
    prog = compiled.program(args.section)
    reference = None
    if args.check:
        if not args.source:
            raise BpfError("--check on a compiled object needs --source PROG.bpf.o (the original bytecode)")
        source = load(args.source)
        reference = (source, source.program(prog["name"]).compile("interp"))
    from ..cli import _hex
    mem = Path(args.mem).read_bytes() if args.mem else _hex(args.mem_hex, "--mem-hex")
    packet = _hex(args.packet, "--packet")
    ctx = _hex(args.ctx, "--ctx")
    inputs = [None]
    if args.pcap:
        from ..pcap import read_pcap
        inputs = list(read_pcap(args.pcap))
    mismatches, verdicts, last = [], Counter(), None
    for i, pkt in enumerate(inputs):
        result = compiled.run(prog["name"], mem=mem, packet=pkt if pkt is not None else packet, ctx=ctx)
        last = result
        verdicts[report.verdict(prog["prog_type"], result.r0)] += 1
        if not args.json:
            for line in result.trace:
                print(f"trace: {line}")
        if reference:
            expected = reference[1].run(mem, packet=pkt if pkt is not None else packet, ctx=ctx)
            if (expected.r0, expected.memory, expected.trace) != (result.r0, result.memory, result.trace):
                mismatches.append(f"input {i}: r0 0x{result.r0:x}, interp 0x{expected.r0:x}")
    if reference:
        from .loader import map_picture
        for name, view in compiled.maps.items():
            if map_picture(reference[0].maps[name]) != map_picture(view):
                mismatches.append(f"map {name} differs from interp's")
    maps = {name: [[k.hex(), v.hex()] for k, v in view.items()] for name, view in compiled.maps.items()}
    if args.json:
        print(json.dumps({"r0": last.r0, "verdicts": dict(verdicts), "runs": len(inputs),
                          "checked": bool(reference), "mismatches": mismatches,
                          **({"maps": maps} if args.dump_maps else {})}))
    else:
        checked = " [checked against interp]" if reference and not mismatches else ""
        if args.pcap:
            for name, n in sorted(verdicts.items(), key=lambda kv: -kv[1]):
                print(f"{n:8d}  {name}")
            print(f"{len(inputs)} packets{checked}")
        else:
            print(f"r0 = {report.verdict(prog['prog_type'], last.r0)} (0x{last.r0:x}){checked}")
        if args.dump_maps:
            for name, items in maps.items():
                print(f"map {name}: {len(items)} entries")
                for k, v in items:
                    print(f"  {k}: {v}")
        for m in mismatches:
            print(f"mismatch: {m}", file=sys.stderr)
    return 1 if mismatches else 0


def register(sub) -> None:
    s = sub.add_parser("compile", help="compile programs ahead of time to an ELF object or a raw blob",
                       description="Compile BPF programs to a self-contained x86_64/arm64 object (program, "
                                   "maps, global data and the native runtime; linking needs only libc).",
                       epilog=COMPILE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("file", help="BPF object (.o), assembler text or raw bytecode")
    s.add_argument("--program", "--section", dest="program", help="program (name or section)")
    s.add_argument("--all", action="store_true", help="every program of the object")
    s.add_argument("--arch", choices=ARCHS, default="x86_64", help="target (default x86_64)")
    s.add_argument("--backend", choices=BACKENDS, default="llvm", help="code generator (default llvm)")
    s.add_argument("-O", dest="opt", type=int, choices=(0, 1, 2, 3), default=2, help="LLVM level (default 2)")
    s.add_argument("-o", "--output", required=True, help="the object (raw: the blob, and OUTPUT.json)")
    s.add_argument("--header", help="write the C header here")
    s.add_argument("--format", choices=("elf", "raw"), default="elf")
    s.add_argument("--abi", choices=ABIS, default="jitbpf",
                   help="jitbpf: uint64_t NAME(void *ctx, uint64_t ctx_size); bpftime: int bpf_main(void *, uint64_t)")
    s.add_argument("-X", action="append", metavar="NAME=VALUE", help="engine option (budget, bounds_check, blind ...)")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    s.set_defaults(func=cmd_compile)
