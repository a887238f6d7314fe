"""bpf_conformance test files (``*.data``) and running them on any engine.

A test passes when the program assembles (or its ``-- raw`` bytes decode),
validates and runs to the expected ``-- result`` r0, or when it fails with an
error whose message starts with the expected ``-- error`` text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import isa
from .asm import assemble
from .errors import BpfError
from .program import from_insns

KNOWN_SECTIONS = {"asm", "raw", "mem", "result", "error", "no register offset", "c"}


@dataclass
class ConformanceTest:
    name: str
    asm: str | None = None
    raw: bytes | None = None
    mem: bytes | None = None
    result: int | None = None
    error: str | None = None

    def program(self) -> list[isa.Insn]:
        if self.raw is not None:
            return isa.decode(self.raw)
        if self.asm is None:
            raise BpfError("test has no program")
        return assemble(self.asm)


def parse_test(text: str, name: str = "test") -> ConformanceTest:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for raw in text.splitlines():
        if raw.strip().startswith("--"):
            current = raw.strip()[2:].strip()
            if current not in KNOWN_SECTIONS:
                raise BpfError(f"{name}: unknown section '-- {current}'")
            sections.setdefault(current, [])
            continue
        if current is None:
            continue
        if current in ("asm", "c"):
            sections[current].append(raw)
        else:
            line = raw.split("#", 1)[0].strip()
            if line:
                sections[current].append(line)
    test = ConformanceTest(name)
    if "asm" in sections:
        test.asm = "\n".join(sections["asm"])
    if "raw" in sections:
        words = " ".join(sections["raw"]).split()
        if all(w.lower().startswith("0x") for w in words):
            test.raw = b"".join(int(w, 16).to_bytes(8, "little") for w in words)
        else:                        # bytes as two-digit hex, as in the negative files
            test.raw = bytes(int(w, 16) for w in words)
    if "mem" in sections:
        test.mem = bytes(int(b, 16) for b in " ".join(sections["mem"]).split())
    if "result" in sections:
        value = "".join(sections["result"])
        test.result = int(value, 16) if "0x" in value.lower() else int(value)
        test.result &= isa.MASK64
    if "error" in sections:
        test.error = " ".join(sections["error"]).strip()
    return test


def load_test(path: str | Path) -> ConformanceTest:
    p = Path(path)
    return parse_test(p.read_text(), p.stem)


@dataclass
class Outcome:
    test: str
    engine: str
    passed: bool
    detail: str = ""


def run_test(test: ConformanceTest, engine: str = "interp", check: bool = False, **options) -> Outcome:
    """Run one test on one engine (compiled with ``options``) and judge it."""
    try:
        insns = test.program()
        prog = from_insns(insns, test.name).program()
        result = prog.compile(engine, **options).run(test.mem, check=check)
    except BpfError as e:
        if test.error is not None and e.message.startswith(test.error):
            return Outcome(test.name, engine, True, f"expected error: {e.message}")
        return Outcome(test.name, engine, False, f"error: {e}")
    if test.error is not None:
        return Outcome(test.name, engine, False, f"expected error '{test.error}', got r0=0x{result.r0:x}")
    if test.result is None:
        return Outcome(test.name, engine, False, "test has no expected result")
    if result.r0 != test.result:
        return Outcome(test.name, engine, False, f"r0 0x{result.r0:x}, expected 0x{test.result:x}")
    return Outcome(test.name, engine, True)


def test_files(directory: str | Path) -> list[Path]:
    return sorted(Path(directory).glob("*.data"), key=lambda p: p.name)


def run_directory(directory: str | Path, engine: str = "interp", check: bool = False, **options) -> list[Outcome]:
    outcomes = []
    for path in test_files(directory):
        try:
            test = load_test(path)
        except BpfError as e:
            outcomes.append(Outcome(path.stem, engine, False, f"bad test file: {e}"))
            continue
        outcomes.append(run_test(test, engine, check, **options))
    return outcomes


def parse_hex_bytes(text: str) -> bytes:
    """Space-separated two-digit hex bytes (the plugin protocol's program and memory)."""
    return bytes(int(w, 16) for w in text.split())
