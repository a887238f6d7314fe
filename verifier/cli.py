"""``jitbpf verify``: the static verifier from the command line.

    jitbpf verify FILE [--program NAME | --all] [--type PROG_TYPE] [--log-level 0|1|2]
                       [--unprivileged] [--json]

FILE is a clang object (``.o``), assembler text (``.asm``/``.s``), a bpf_conformance
test (``.data``) or raw bytecode. Exit status: 0 when every program is accepted, 1
when any is rejected (an instruction encoding error is a rejection), 2 when the input
cannot be used (missing file, not a program, unknown program or type).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jitbpf.errors import BpfAsmError, BpfError, BpfLoadError, BpfValidationError, BpfVerifierError

from . import verify
from .progtypes import PROG_TYPES, resolve

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2


class Unusable(Exception):
    pass


def register(sub) -> None:
    """Add the ``verify`` subcommand to the ``jitbpf`` parser's subparsers."""
    s = sub.add_parser("verify", help="statically verify programs (kernel-like verifier)",
                       description="Verify BPF programs; exit 0 if all are accepted, 1 if any is rejected, "
                                   "2 if the input is unusable.")
    s.add_argument("file", help="clang object, assembler text (.asm/.s), conformance test (.data) or bytecode")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--program", help="program (function or section name) of an object")
    which.add_argument("--all", action="store_true", help="every program of the object")
    s.add_argument("--type", dest="prog_type",
                   help=f"program type (default: from the section; raw for bytecode): {', '.join(PROG_TYPES)}")
    s.add_argument("--log-level", type=int, choices=(0, 1, 2), default=0,
                   help="1: the failing path, 2: every instruction with its registers")
    s.add_argument("--unprivileged", action="store_true", help="the stricter rules for unprivileged users")
    s.add_argument("--json", action="store_true", help="one JSON object per program per line")
    s.set_defaults(func=main)


def _programs(args) -> list:
    """The programs to verify, or a pseudo-program (name, error) for invalid bytecode."""
    path = Path(args.file)
    if not path.is_file():
        raise Unusable(f"{args.file}: no such file")
    import jitbpf
    data = path.read_bytes()
    try:
        if path.suffix == ".data" and data[:4] != b"\x7fELF":
            from jitbpf.conformance import parse_test
            test = parse_test(data.decode(errors="replace"), path.stem)
            try:
                insns = test.program()
            except BpfValidationError as e:
                return [(path.stem, "", e)]
            obj = jitbpf.from_insns(insns, path.stem)
        else:
            obj = jitbpf.load(str(path))
    except BpfValidationError as e:
        return [(path.stem, "", e)]
    except (BpfAsmError, BpfLoadError, UnicodeDecodeError) as e:
        raise Unusable(f"{args.file}: {e}") from None
    except BpfError as e:
        raise Unusable(f"{args.file}: {e}") from None
    progs = list(obj.programs.values())
    if args.program:
        try:
            return [obj.program(args.program)]
        except BpfError as e:
            raise Unusable(str(e)) from None
    if args.all or len(progs) == 1:
        return progs
    raise Unusable(f"{args.file} holds {len(progs)} programs ({', '.join(p.name for p in progs)}): "
                   "choose one with --program NAME or verify all with --all")


def main(args) -> int:
    try:
        if args.prog_type and resolve(args.prog_type) is None:
            raise Unusable(f"unknown program type '{args.prog_type}' (known: {', '.join(PROG_TYPES)})")
        programs = _programs(args)
    except Unusable as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNUSABLE
    status = EXIT_OK
    for prog in programs:
        if isinstance(prog, tuple):                     # bytecode that does not even decode
            name, section, err = prog
            _report(args, name, section, err, None, None, "")
            status = EXIT_REJECTED
            continue
        try:
            verdict = verify(prog, prog_type=args.prog_type, unprivileged=args.unprivileged,
                             log_level=args.log_level)
        except BpfVerifierError as e:
            _report(args, prog.name, prog.section, e, None, getattr(e, "processed", 0), getattr(e, "log", ""))
            status = EXIT_REJECTED
            continue
        _report(args, prog.name, prog.section, None, verdict, verdict.processed, verdict.log)
    return status


def _report(args, name: str, section: str, err: BpfError | None, verdict, processed, log: str) -> None:
    if args.json:
        print(json.dumps({"program": name, "section": section, "verdict": "reject" if err else "accept",
                          "error": err.message if err else None, "insn": err.pc if err else None,
                          "processed": processed or 0}))
        return
    if args.log_level and log:
        sys.stdout.write(log)
    label = f"{name} ({section})" if section else name
    if err is None:
        note = "" if verdict.facts.terminates else " (loops not proven to end: run with a budget)"
        print(f"{label}: accepted, {processed} instructions processed{note}")
    else:
        where = []
        if err.pc is not None:
            where.append(f"insn {err.pc}")
        if err.line:
            where.append(err.line)
        print(f"{label}: rejected{' at ' + ', '.join(where) if where else ''}: {err.message}")
