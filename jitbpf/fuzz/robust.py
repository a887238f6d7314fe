"""Robustness sweep: damaged input of every kind fed to every loader and CLI command.

Inputs (each reproducible from ``(seed, index)``): random bytes, random and mutated
bytecode, mutated assembler text, the committed ELF fixtures with bytes flipped,
header and section-header fields set to edge values or the file cut short, and
their ``.BTF`` sections damaged the same way. Each goes to ``jitbpf.load``,
``from_bytes``, ``assemble``, the ELF and BTF parsers, ``compile`` (interp, and the
direct JIT with bounds checks) and the ``info``, ``disasm``, ``run`` and ``asm``
commands. Anything but a :class:`~jitbpf.errors.BpfError` (or a one-line CLI error)
is a finding. The sweep runs in a subprocess, so a crash is seen as one too.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ..errors import BpfError

FIXTURES = Path(__file__).resolve().parent.parent.parent / "tests" / "fixtures"
EDGE = (0, 1, 0x19, 0x1A, 0x40, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF,
        0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF)
#: ELF64 header fields (offset, size) and section header fields (offset in a header, size).
ELF_FIELDS = ((4, 1), (5, 1), (6, 1), (7, 1), (16, 2), (18, 2), (20, 4), (0x28, 8), (0x34, 2), (0x3A, 2),
              (0x3C, 2), (0x3E, 2))
SHDR_FIELDS = ((0, 4), (4, 4), (8, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8), (56, 8))


def fixtures() -> list[bytes]:
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*.bpf.o"))]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if not out:
            break
        if r < 0.5:
            out[rng.randrange(len(out))] = rng.getrandbits(8)
        elif r < 0.7:
            width = rng.choice((1, 2, 4, 8))
            at = rng.randrange(max(1, len(out) - width))
            out[at:at + width] = (rng.choice(EDGE) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        elif r < 0.85:
            del out[rng.randrange(len(out)):]
        else:
            at = rng.randrange(len(out))
            out[at:at] = rng.randbytes(rng.randint(1, 16))
    return bytes(out)


def mutate_elf(data: bytes, rng: random.Random) -> bytes:
    """Header and section-header fields set to edge values, or bytes mutated."""
    out = bytearray(data)
    shoff = int.from_bytes(out[0x28:0x30], "little")
    shnum = int.from_bytes(out[0x3C:0x3E], "little")
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.3:
            off, size = rng.choice(ELF_FIELDS)
        elif r < 0.8 and shnum and shoff + shnum * 64 <= len(out):
            field, size = rng.choice(SHDR_FIELDS)
            off = shoff + 64 * rng.randrange(shnum) + field
        else:
            return mutate_bytes(bytes(out), rng)
        value = rng.choice(EDGE) if rng.random() < 0.7 else rng.getrandbits(8 * size)
        out[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(out)


def btf_section(data: bytes) -> bytes | None:
    from elftools.elf.elffile import ELFFile
    sec = ELFFile(io.BytesIO(data)).get_section_by_name(".BTF")
    return sec.data() if sec is not None else None


def inputs(seed: int, index: int, elves: list[bytes], btfs: list[bytes]) -> tuple[str, bytes]:
    """(kind, bytes) of input ``index``: elf, btf, code, asm or noise."""
    from .generate import ProgramBuilder, raw_case, rng_for
    rng = rng_for(seed, index, "robust")
    kind = rng.choice(("elf", "elf", "elf", "btf", "code", "asm", "noise"))
    if kind == "elf":
        return kind, mutate_elf(rng.choice(elves), rng)
    if kind == "btf":
        return kind, mutate_bytes(rng.choice(btfs), rng)
    if kind == "code":
        return kind, mutate_bytes(raw_case(rng).code, rng) if rng.random() < 0.5 else raw_case(rng).code
    if kind == "asm":
        from ..disasm import disassemble_text
        text = disassemble_text(ProgramBuilder(rng).build().insns, "asm", labels=rng.random() < 0.5)
        return kind, mutate_bytes(text.encode(), rng) if rng.random() < 0.7 else text.encode()
    return kind, rng.randbytes(rng.randint(0, 200)) if rng.random() < 0.5 else b"\x7fELF" + rng.randbytes(60)


def check_one(kind: str, data: bytes) -> list[str]:
    """Feed one input to every consumer; the findings (non-BpfError exceptions)."""
    import jitbpf
    from .. import btf, elf
    from ..cli import main as cli_main
    findings: list[str] = []

    def attempt(what: str, fn) -> object:
        try:
            return fn()
        except BpfError:
            return None
        except RecursionError:
            findings.append(f"{what}: RecursionError")
        except Exception as e:            # noqa: BLE001 - the finding itself
            findings.append(f"{what}: {type(e).__name__}: {e}"[:300] + "\n" + traceback.format_exc(limit=-3))
        return None

    objects = []
    if kind == "btf":
        attempt("parse_btf", lambda: btf.parse_btf(data))
        return findings
    if kind in ("elf", "noise"):
        objects.append(attempt("load_elf", lambda: elf.load_elf(data)))
    if kind in ("code", "noise"):
        objects.append(attempt("from_bytes", lambda: jitbpf.from_bytes(data)))
    if kind == "asm":
        objects.append(attempt("assemble", lambda: jitbpf.assemble(data.decode("latin-1"))))
    for obj in filter(None, objects):
        for prog in list(obj.programs.values())[:3]:
            attempt("compile interp", lambda: prog.compile("interp", budget=5000).run(bytes(64)))
            attempt("compile direct", lambda: prog.compile("direct", bounds_check=True, budget=5000))
    suffix = {"elf": ".o", "code": ".bin", "asm": ".asm", "noise": ".bin"}[kind]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        attempt("jitbpf.load", lambda: jitbpf.load(str(path)))
        commands = [["info", str(path)], ["disasm", str(path)], ["run", str(path), "--mem-hex", "00" * 16]]
        if kind == "asm":
            commands.append(["asm", str(path)])
        for argv in commands:
            attempt("jitbpf " + argv[0], lambda: _cli(cli_main, argv))
    return findings


def _cli(cli_main, argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return cli_main(argv)
        except SystemExit as e:          # argparse: a usage error is a clean exit
            return int(e.code or 0)


def sweep(seed: int, count: int | None, seconds: float | None, start: int = 0) -> dict:
    """Run the sweep in this process: counts per kind and the findings."""
    elves = fixtures()
    btfs = [b for b in (btf_section(d) for d in elves) if b]
    deadline = time.monotonic() + seconds if seconds is not None else None
    counts: dict[str, int] = {}
    findings: list[dict] = []
    index = start
    while (count is None or index < start + count) and (deadline is None or time.monotonic() < deadline):
        kind, data = inputs(seed, index, elves, btfs)
        counts[kind] = counts.get(kind, 0) + 1
        for f in check_one(kind, data):
            findings.append({"index": index, "kind": kind, "finding": f, "input": data.hex()})
        index += 1
    return {"seed": seed, "inputs": index - start, "counts": counts, "findings": findings}


def run_subprocess(seed: int, count: int | None = None, seconds: float | None = None,
                   timeout: float = 600) -> tuple[int, dict | None, str]:
    """The sweep in a child process: (exit code, its report or None, stderr)."""
    argv = [sys.executable, "-m", "jitbpf.fuzz.robust", "--seed", str(seed)]
    argv += ["--iterations", str(count)] if count is not None else ["--time", str(seconds)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        report = None
    return proc.returncode, report, proc.stderr


def main(args) -> int:
    """``jitbpf fuzz --robustness``: the sweep in a subprocess, a crash counted too."""
    seconds = args.time
    count = None if seconds is not None else (args.iterations or 2000)
    code, report, err = run_subprocess(args.seed, count, seconds, timeout=(seconds or 3600) + 600)
    if report is None:
        print(f"the sweep's process died (exit code {code}): {err[-2000:]}")
        print("inputs ?, findings 0, crashes 1")
        return 1
    for f in report["findings"][:30]:
        print(f"input {f['index']} ({f['kind']}): {f['finding'].splitlines()[0]}")
    print(f"seed {report['seed']}: {report['counts']}")
    print(f"inputs {report['inputs']}, findings {len(report['findings'])}, crashes 0")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int)
    p.add_argument("--time", type=float)
    a = p.parse_args()
    result = sweep(a.seed, a.iterations, a.time)
    print(json.dumps(result))
    sys.exit(0)
