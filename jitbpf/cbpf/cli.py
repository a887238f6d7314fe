"""``jitbpf filter`` and ``jitbpf cbpf disasm``, registered into the main parser by
:func:`register` (one call from jitbpf/cli.py)."""

from __future__ import annotations

import argparse
import sys

from ..errors import BpfError
from .libpcap import DEFAULT_SNAPLEN


def register(sub) -> None:
    """Add the classic-BPF subcommands to the ``jitbpf`` subparsers."""
    s = sub.add_parser("filter", help="run a tcpdump filter (expression or classic program) over a capture",
                       description="Run a filter over every packet of a pcap or pcapng file: print how many "
                                   "match, or write them (truncated to the filter's return value) with -w.")
    s.add_argument("words", nargs="+", metavar="EXPR... CAPTURE",
                   help="a filter expression (one or several words, as for tcpdump) then the capture file; "
                        "with --cbpf only the capture")
    s.add_argument("--cbpf", metavar="FILE", help="a classic program instead of an expression "
                                                  "(tcpdump -dd or -ddd text, or raw sock_filter bytes)")
    s.add_argument("--engine", default="llvm", help="engine that runs the translated filter (default llvm)")
    s.add_argument("-w", dest="output", metavar="OUT.pcap", help="write the matching packets here")
    s.add_argument("--count", action="store_true", help="print only the number of matching packets")
    s.add_argument("--check", action="store_true", help="also run the classic reference interpreter on every "
                                                       "packet and fail on any difference")
    _compile_options(s)
    s.set_defaults(func=cmd_filter)

    group = sub.add_parser("cbpf", help="classic BPF tools").add_subparsers(dest="cbpf_command", required=True)
    s = group.add_parser("disasm", help="print a classic program as tcpdump -d (or -dd, -ddd, or its eBPF)")
    s.add_argument("expr", nargs="*", metavar="EXPR", help="a filter expression (one or several words)")
    s.add_argument("--cbpf", metavar="FILE", help="a classic program file instead of an expression")
    s.add_argument("--format", choices=("d", "dd", "ddd", "ebpf"), default="d",
                   help="d: tcpdump -d listing (default); dd: C array; ddd: decimal; ebpf: the translation")
    s.add_argument("-y", "--linktype", default="EN10MB", help="link type to compile for (name or number; "
                                                            "default EN10MB)")
    _compile_options(s)
    s.set_defaults(func=cmd_disasm)


def _compile_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("-s", "--snaplen", type=int, default=DEFAULT_SNAPLEN,
                   help=f"snap length an expression's filter returns on a match (default {DEFAULT_SNAPLEN})")
    s.add_argument("-O", "--no-optimize", action="store_true", help="do not run libpcap's optimiser")


def _filter_for(args: argparse.Namespace, expr: str, linktype: int):
    from . import Filter, load
    from .libpcap import compile_expr
    if args.cbpf:
        return load(args.cbpf)
    return Filter(compile_expr(expr, linktype, args.snaplen, not args.no_optimize))


def _dlt(file_linktype: int) -> int:
    from .libpcap import dlt
    return dlt(file_linktype)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_filter(args: argparse.Namespace) -> int:
    from . import capture
    from .run import run_filter
    from .translate import record
    *expr_words, path = args.words
    if args.cbpf and expr_words:
        return _usage("give either a filter expression or --cbpf FILE, not both")
    if not args.cbpf and not expr_words:
        return _usage("no filter expression (or --cbpf FILE) before the capture file")
    cap = capture.read(path)
    verdicts = [0] * len(cap.packets)
    for linktype in cap.linktypes or [1]:
        flt = _filter_for(args, " ".join(expr_words), _dlt(linktype))
        fn = flt.program().compile(args.engine)
        index = [i for i, p in enumerate(cap.packets) if p.linktype == linktype]
        packets = [cap.packets[i] for i in index]
        results = run_filter(fn, [record(p.data, p.wirelen) for p in packets])
        for i, packet, r0 in zip(index, packets, results):
            if args.check and r0 != flt.run(packet.data, packet.wirelen):
                raise BpfError(f"packet {i}: {args.engine} returned {r0}, the classic interpreter "
                               f"{flt.run(packet.data, packet.wirelen)}")
            verdicts[i] = r0
    matched = [(p, r0) for p, r0 in zip(cap.packets, verdicts) if r0]
    if args.output:
        capture.write_pcap(args.output, [capture.Packet(p.data[:r0], p.wirelen, p.ts_ns, p.linktype)
                                         for p, r0 in matched], cap.snaplen, cap.nanoseconds)
    if args.count:
        print(len(matched))
    else:
        checked = ", checked against the classic interpreter" if args.check else ""
        written = f", written to {args.output}" if args.output else ""
        print(f"{len(matched)} of {len(cap.packets)} packets matched ({fn.engine_name}{checked}){written}")
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    from .libpcap import linktype
    if args.cbpf and args.expr:
        return _usage("give either a filter expression or --cbpf FILE, not both")
    if not args.cbpf and not args.expr:
        return _usage("no filter expression (or --cbpf FILE)")
    flt = _filter_for(args, " ".join(args.expr), linktype(args.linktype) if not args.cbpf else 1)
    text = flt.program().disassemble() if args.format == "ebpf" else flt.disassemble(args.format)
    sys.stdout.write(text)
    return 0
