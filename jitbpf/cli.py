"""The ``jitbpf`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import conformance, pipeline
from .cbpf import cli as cbpf_cli
from .engines import available_engines
from .fuzz import cli as fuzz_cli
from .errors import BpfError, BpfMismatchError, BpfRuntimeError
from .program import from_bytes, load
from .targets import ENGINE_NAMES, HOST_ARCH, parse_engine


MAIN_EXAMPLES = """\
examples:
  jitbpf run prog.bpf.o --pcap trace.pcap --engine llvm --check
  jitbpf compile prog.bpf.o --arch arm64 -o prog.o --header prog.h
  jitbpf disasm prog.bpf.o --native --arch arm64 --backend direct
  jitbpf conformance ../shared/conformance/tests --engine all --json
exit status: 0 ok, 1 a run or check failed, 2 bad usage or input; --debug shows tracebacks
"""


COMMAND_EXAMPLES = {
    "run": "  jitbpf run prog.asm --mem-hex 0011223344 --engine llvm --check\n"
           "  jitbpf run prog.bpf.o --program xdp_stats --pcap trace.pcap --check --dump-maps --json\n"
           "  jitbpf run prog.o --pcap trace.pcap --check --source prog.bpf.o   # an object from jitbpf compile\n",
    "plugin": "  echo 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00' | jitbpf plugin --engine llvm\n"
              "  bpf_conformance_runner --test_file_directory tests --plugin_path jitbpf-conformance-plugin "
              "--plugin_options '--engine llvm'\n",
    "conformance": "  jitbpf conformance ../shared/conformance/tests --engine all\n"
                   "  jitbpf conformance tests --engine direct-arm64 -X blind=1 --json\n",
    "asm": "  jitbpf asm prog.asm -o prog.bin\n  jitbpf asm prog.asm        # hex on stdout\n",
    "verify": "  jitbpf verify prog.bpf.o --all\n  jitbpf verify prog.bpf.o --program xdp_stats --log-level 2 --json\n",
    "filter": "  jitbpf filter tcp port 80 trace.pcapng\n  jitbpf filter 'host 10.0.0.1' trace.pcap --count --engine direct\n",
    "fuzz": "  jitbpf fuzz --time 60 --jobs 2 --seed 7\n  jitbpf fuzz --robustness --iterations 300\n",
    "bench": "  jitbpf bench loop sieve --engines llvm,direct --rounds 9\n  jitbpf bench prog.bpf.o --section xdp --mem packet.bin\n",
    "cbpf": "  jitbpf cbpf disasm 'ip6 and udp' --format ddd\n",
}


def _engines(name: str) -> list[str]:
    return available_engines() if name == "all" else [name]


def _options(args: argparse.Namespace) -> dict:
    """Engine options from -X name=value (and --opt), checked by the pipeline per engine."""
    options = dict(pipeline.parse_option_text(text) for text in args.X or ())
    if getattr(args, "no_verify", False):
        options["verify"] = False
    if getattr(args, "opt", None) is not None:
        options["opt"] = args.opt
    return options


def _hex(text: str | None, what: str) -> bytes | None:
    """Bytes given as hex on the command line (a clear error, not a ValueError)."""
    if text is None:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise BpfError(f"{what}: {text[:40]!r} is not hex bytes") from None


def _hex_words(text: str, what: str) -> bytes:
    try:
        return conformance.parse_hex_bytes(text)
    except ValueError:
        raise BpfError(f"{what}: not space-separated two-digit hex bytes") from None


def cmd_plugin(args: argparse.Namespace) -> int:
    """bpf_conformance plugin protocol: program as hex bytes on stdin, memory as argument."""
    words = [w for w in args.memory if not w.startswith("-")]
    try:
        mem = _hex_words(" ".join(words), "memory") if words else None
        code = _hex_words(sys.stdin.read(), "program")
        result = from_bytes(code).program().compile(args.engine, **_options(args)).run(mem, check=args.check)
    except BpfError as e:
        print(e.message, file=sys.stderr)
        return 1
    print(f"{result.r0:x}")
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    engines = _engines(args.engine)
    options = _options(args)
    for engine in engines:                # an unknown engine or option is one clear error, not 313 failures
        pipeline.resolve_options(parse_engine(engine), options)
    if not conformance.test_files(args.directory):
        print(f"error: no .data tests in {args.directory}", file=sys.stderr)
        return 2
    failed_any = False
    summary = {}
    for engine in engines:
        outcomes = _with_progress(args, f"conformance {engine}",
                                  lambda: conformance.run_directory(args.directory, engine, check=args.check, **options))
        skipped = [o for o in outcomes if not o.passed and _known_rejection(engine, o)]
        failed = [o for o in outcomes if not o.passed and o not in skipped]
        failed_any |= bool(failed)
        if args.json:
            summary[engine] = {"passed": len(outcomes) - len(failed) - len(skipped), "failed": len(failed),
                               "skipped": len(skipped),
                               "failures": [{"test": str(o.test), "detail": str(o.detail)} for o in failed]}
            continue
        for o in outcomes if args.verbose else failed:
            verdict = "PASS" if o.passed else "SKIP" if o in skipped else "FAIL"
            print(f"{verdict} {engine} {o.test}: {o.detail}")
        prefix = f"{engine}: " if args.engine == "all" else ""
        print(f"{prefix}{len(outcomes) - len(failed) - len(skipped)} passed, {len(failed)} failed, "
              f"{len(skipped)} skipped")
    if args.json:
        print(json.dumps(summary))
    return 1 if failed_any else 0


def _with_progress(args: argparse.Namespace, what: str, work):
    """``work()`` under a rich spinner on a terminal (long runs: conformance, compiles)."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return work()
    from rich.console import Console
    with Console(stderr=True).status(f"{what} ..."):
        return work()


def _known_rejection(engine: str, outcome) -> bool:
    """The kernel verifier's listed refusals (jitbpf/kernel/known.py) count as skipped."""
    if engine != "kernel":
        return False
    from .kernel.known import is_known_rejection
    return is_known_rejection(outcome.test, outcome.detail)


def cmd_asm(args: argparse.Namespace) -> int:
    from .asm import assemble_bytes
    try:
        text = Path(args.file).read_text()
    except UnicodeDecodeError:
        raise BpfError(f"{args.file}: not assembler text (not UTF-8)") from None
    code = assemble_bytes(text)
    if args.output:
        Path(args.output).write_bytes(code)
    else:
        sys.stdout.write(" ".join(f"{b:02x}" for b in code) + "\n")
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    obj = load(args.file)
    progs = [obj.program(args.section)] if args.section else list(obj.programs.values())
    for prog in progs:
        if len(progs) > 1:
            print(f"{prog.name}:" if not prog.section else f"{prog.name} ({prog.section}):")
        if args.engine == "kernel":
            from .kernel.listing import listing
            info = prog.compile("kernel").executable.info(args.mem_size)
            sys.stdout.write(listing(info, args.style))
        elif args.emit_llvm:
            sys.stdout.write(pipeline.llvm_ir(prog, args.engine or "llvm", optimized=args.opt is None or args.opt > 0,
                                              **_options(args)))
        elif args.passes:
            prepared = pipeline.prepare(prog, args.engine or "llvm", **_options(args))
            sys.stdout.write(prepared.disassemble(args.style, labels=not args.offsets))
        elif args.engine or args.native or args.arch or args.backend:
            engine = args.engine or f"{args.backend or 'llvm'}-{args.arch or HOST_ARCH}"
            sys.stdout.write(pipeline.listing(prog, engine, args.style, **_options(args)))
        else:
            sys.stdout.write(prog.disassemble(args.style, labels=not args.offsets))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import time
    from collections import Counter

    from . import report
    from .aot.cli import is_compiled, run_compiled
    from .runtime import context
    if is_compiled(args.file):
        return run_compiled(args)
    obj = load(args.file)
    prog = obj.program(args.section)
    fn = prog.compile(args.engine, **_options(args))
    mem = Path(args.mem).read_bytes() if args.mem else _hex(args.mem_hex, "--mem-hex")
    packet = _hex(args.packet, "--packet")
    ctx = _hex(args.ctx, "--ctx")
    checked = " [checked against interp]" if args.check else ""
    if args.json:
        return _run_json(args, obj, prog, fn, mem, packet, ctx)
    rt = obj.runtime
    if args.pcap:
        from .pcap import read_pcap
        verdicts: Counter[str] = Counter()
        packets = read_pcap(args.pcap)
        if args.check:
            results = [fn.run(packet=pkt, ctx=ctx, check=True) for pkt in packets]
            r0s, traces = [r.r0 for r in results], [line for r in results for line in r.trace]
        else:
            first = len(rt.trace_lines)
            start = time.perf_counter()
            r0s = fn.run_many(packets, ctx=ctx)
            elapsed = time.perf_counter() - start
            traces = rt.trace_lines[first:]
        for r0 in r0s:
            verdicts[report.verdict(prog.prog_type, r0)] += 1
        for line in traces:
            print(f"trace: {line}")
        for name, n in sorted(verdicts.items(), key=lambda kv: -kv[1]):
            print(f"{n:8d}  {name}")
        rate = "" if args.check or not packets else f", {len(packets) / max(elapsed, 1e-9):,.0f} packets/s"
        print(f"{sum(verdicts.values())} packets{checked}{rate}")
    else:
        start = time.perf_counter()
        if args.repeat > 1 and not args.check:     # all runs but the last in one batch
            kind = context.context_kind(prog.prog_type)
            data = (packet if packet is not None else mem) if kind in ("xdp", "skb") else \
                (mem if kind == "raw" else (ctx if ctx is not None else mem))
            fn.run_many([data], repeat=args.repeat - 1, ctx=ctx if kind in ("xdp", "skb") else None)
            result = fn.run(mem, packet=packet, ctx=ctx)
        else:
            for _ in range(max(1, args.repeat)):
                result = fn.run(mem, packet=packet, ctx=ctx, check=args.check)
        elapsed = time.perf_counter() - start
        for line in result.trace:
            print(f"trace: {line}")
        print(f"r0 = {report.verdict(prog.prog_type, result.r0)} (0x{result.r0:x}){checked}")
        if args.repeat > 1:
            print(f"{args.repeat} runs, {elapsed / args.repeat * 1e6:.2f} us per run")
    if args.dump_maps:
        report.print_maps(obj, report.console())
    return 0


def _run_json(args, obj, prog, fn, mem, packet, ctx) -> int:
    from collections import Counter

    from . import report
    packets = [packet]
    if args.pcap:
        from .pcap import read_pcap
        packets = list(read_pcap(args.pcap))
    verdicts: Counter[str] = Counter()
    trace = []
    for pkt in packets:
        result = fn.run(mem, packet=pkt, ctx=ctx, check=args.check)
        verdicts[report.verdict(prog.prog_type, result.r0)] += 1
        trace += result.trace
    out = {"r0": result.r0, "verdicts": dict(verdicts), "runs": len(packets), "checked": args.check, "trace": trace,
           "memory": result.memory.hex() if result.memory is not None else None}
    if args.dump_maps:
        out["maps"] = {m.name: [[k.hex(), v.hex()] for k, v in m.items()] for m in obj.map_list}
    print(json.dumps(out))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from . import report
    from .aot.cli import is_compiled
    if is_compiled(args.file):
        from .aot import load_compiled
        manifest = load_compiled(args.file).manifest
        print(json.dumps(manifest) if args.json else
              f"{args.file}: compiled by jitbpf ({manifest['arch']}, {manifest['backend']}, ABI {manifest['abi']}); "
              f"programs {', '.join(p['symbol'] for p in manifest['programs'])}; "
              f"maps {', '.join(m['name'] for m in manifest['maps']) or 'none'}; "
              f"host helpers {', '.join(manifest['helpers']) or 'none'}")
        return 0
    obj = load(args.file)
    if args.json:
        print(json.dumps({"path": str(obj.path), "license": obj.license,
                          "programs": [{"name": p.name, "section": p.section, "type": p.prog_type, "slots": len(p.insns),
                                        "functions": [p.function_names.get(s, f"@{s}") for s in p.functions]}
                                       for p in obj.programs.values()],
                          "maps": [{"name": m.name, "type": m.type_name, "key_size": m.key_size,
                                    "value_size": m.value_size, "max_entries": m.max_entries, "flags": m.map_flags}
                                   for m in obj.map_list]}))
        return 0
    report.print_info(obj, report.console())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jitbpf", description="userspace eBPF toolchain and JIT compiler",
                                epilog=MAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    # ENGINE_NAMES, not available_engines(): that probes bpf(2), which only the kernel engine needs.
    engines = ", ".join(ENGINE_NAMES)
    engine_help = f"engine: {engines} (kernel only where bpf(2) works)"
    option_help = "engine option name=value, repeatable: " + ", ".join(pipeline.OPTIONS)

    def engine_options(s: argparse.ArgumentParser) -> None:
        s.add_argument("-X", action="append", metavar="NAME=VALUE", help=option_help)
        s.add_argument("--no-verify", action="store_true",
                       help="skip the static verifier (-X verify=0): the program runs bounds-checked")

    s = sub.add_parser("plugin", help="bpf_conformance plugin (program as hex on stdin)")
    s.add_argument("--engine", default="interp", help=engine_help)
    s.add_argument("--check", action="store_true", help="cross-check against interp")
    s.add_argument("memory", nargs="*", help="input memory as hex bytes")
    engine_options(s)
    s.set_defaults(func=cmd_plugin)

    s = sub.add_parser("conformance", help="run a directory of bpf_conformance .data tests")
    s.add_argument("directory")
    s.add_argument("--engine", default="interp", help=f"engine: {engines} (kernel only where bpf(2) works), or all")
    s.add_argument("--check", action="store_true", help="cross-check every run against interp")
    s.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    s.add_argument("--json", action="store_true", help="print a JSON summary per engine")
    engine_options(s)
    s.set_defaults(func=cmd_conformance)

    s = sub.add_parser("asm", help="assemble a program to bytecode")
    s.add_argument("file")
    s.add_argument("-o", "--output", help="write raw bytecode here (default: hex to stdout)")
    s.set_defaults(func=cmd_asm)

    s = sub.add_parser("disasm", help="disassemble bytecode, assembler text or an object",
                       epilog="examples:\n  jitbpf disasm prog.bin --style kernel\n"
                              "  jitbpf disasm prog.bpf.o --native --arch arm64 --backend direct   "
                              "# BPF, C source lines and native code\n"
                              "  jitbpf disasm prog.bpf.o --passes -X blind=1",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("file")
    s.add_argument("--section", "--program", dest="section", help="program (name or section)")
    s.add_argument("--style", choices=("asm", "kernel"), default="asm")
    s.add_argument("--offsets", action="store_true", help="print +N offsets instead of labels")
    s.add_argument("--engine", help="show what an engine made of it: native code interleaved with the BPF "
                                    "(kernel: xlated and JITed code)")
    s.add_argument("--native", action="store_true", help="show native code (engine default: llvm)")
    s.add_argument("--arch", choices=("x86_64", "arm64"), help="native code for this target (with --native)")
    s.add_argument("--backend", choices=("llvm", "direct"), help="native code of this backend (with --native)")
    s.add_argument("--emit-llvm", action="store_true", help="print the LLVM IR (optimised unless --opt 0)")
    s.add_argument("--passes", action="store_true",
                   help="print the program after the engine's passes (checks, ticks, blinding)")
    s.add_argument("--opt", type=int, choices=(0, 1, 2, 3), help="LLVM optimisation level (default 2)")
    s.add_argument("--mem-size", type=int, default=4096,
                   help="memory length a raw-memory program is loaded for (default 4096)")
    engine_options(s)
    s.set_defaults(func=cmd_disasm)

    s = sub.add_parser("run", help="run a program (or a compiled object) and print r0")
    s.add_argument("file", help="BPF object, assembler text, bytecode, or an object/blob from jitbpf compile")
    s.add_argument("--section", "--program", dest="section", help="program (name or section)")
    s.add_argument("--source", help="compiled objects: the BPF object it came from (for --check)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--engine", default="interp", help=engine_help)
    s.add_argument("--mem", help="file whose bytes are the input memory (r1, r2 = address, length)")
    s.add_argument("--mem-hex", help="input memory as hex")
    s.add_argument("--packet", help="packet as hex (XDP, tc, socket programs)")
    s.add_argument("--pcap", help="run every packet of a pcap file and count the verdicts")
    s.add_argument("--ctx", help="context bytes as hex (syscall/tracing programs; xdp_md/__sk_buff fields)")
    s.add_argument("--repeat", type=int, default=1, help="run N times and report the time per run")
    s.add_argument("--check", action="store_true", help="cross-check r0, memory and maps against interp")
    s.add_argument("--dump-maps", action="store_true", help="print every map after the run")
    s.add_argument("--opt", type=int, choices=(0, 1, 2, 3), help="LLVM optimisation level (default 2)")
    engine_options(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("info", help="programs, maps, sections and BTF of an object",
                       epilog="examples:\n  jitbpf info prog.bpf.o\n  jitbpf info prog.bpf.o --json\n"
                              "  jitbpf info prog.o     # an object from jitbpf compile",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    from jitbpf.verifier.cli import register as register_verify
    register_verify(sub)
    from .bench import register as register_bench
    register_bench(sub)
    cbpf_cli.register(sub)
    fuzz_cli.add_parser(sub)
    for name, text in COMMAND_EXAMPLES.items():
        parser = sub.choices[name]
        if parser.epilog:
            continue
        parser.epilog, parser.formatter_class = "examples:\n" + text, argparse.RawDescriptionHelpFormatter
    from .aot.cli import register as register_compile
    register_compile(sub)
    return p


def plugin_main(argv: list[str] | None = None) -> int:
    """``jitbpf-conformance-plugin``: upstream bpf_conformance's plugin, ``PLUGIN [MEMHEX] [--engine E]``
    with the program on stdin (``bpf_conformance_runner --plugin_path jitbpf-conformance-plugin
    --plugin_options "--engine llvm"``)."""
    return main(["plugin", *(sys.argv[1:] if argv is None else argv)])


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0, 1 when a run or a check failed, 2 for bad usage or input (argparse's
    own code); errors are one line, with the traceback only under --debug."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:                  # output piped to a reader that stopped (| head)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (BpfError, OSError) as e:
        if debug:
            raise
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 1 if isinstance(e, (BpfRuntimeError, BpfMismatchError)) else 2

