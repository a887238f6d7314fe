"""The rejection corpus (``tests/verifier/``): small programs, each with the message
fragment the verifier must reject it with.

An assembler case is a ``.asm`` file whose leading ``#`` lines are directives::

    # expect: invalid access to map value      the fragment of the verifier's message
    # type: xdp                                program type (default raw)
    # map: hash key=4 value=8 entries=16       a map, lddw map_idx(N) refers to the Nth
    # unprivileged                             verify with the unprivileged rules
    # kernel: reject | accept | none           what the host kernel says (default reject;
    #                                          none: no kernel equivalent, e.g. raw programs)
    # why: ...                                 why our verdict differs from the kernel's

C cases live in ``tests/verifier/c/*.bpf.c`` (with their committed ``.o``): each program
(function) is a case, its directives in ``// NAME: expect: ...`` comment lines.
The conformance suite's ``negative/unused-*`` files are cases too (encoding errors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jitbpf
from jitbpf.errors import BpfError, BpfValidationError
from jitbpf.runtime import Runtime
from jitbpf.runtime.maps import create as create_map


@dataclass
class Case:
    name: str
    path: Path
    expect: str
    prog_type: str = "raw"
    unprivileged: bool = False
    kernel: str = "reject"                 # reject, accept, none
    why: str = ""
    maps: list[dict] = field(default_factory=list)
    program_name: str | None = None        # C cases: the function

    def load(self):
        """The Program to verify, or a BpfValidationError when the bytecode is invalid."""
        if self.path.suffix == ".o":
            obj = jitbpf.load(str(self.path))
            return obj.program(self.program_name)
        if self.path.suffix == ".data":
            from jitbpf.conformance import parse_test
            test = parse_test(self.path.read_text(), self.name)
            return jitbpf.from_insns(test.program(), self.name).program()
        rt = Runtime()
        obj = jitbpf.assemble(self.path.read_text(), self.name, runtime=rt)
        for i, m in enumerate(self.maps):
            obj.add_map(create_map(rt, m.get("name", f"m{i}"), m["type"], int(m.get("key", 4)),
                                   int(m.get("value", 8)), int(m.get("entries", 1)), int(str(m.get("flags", "0")), 0)))
        prog = obj.program()
        prog.prog_type = self.prog_type
        return prog


_DIRECTIVE = re.compile(r"^#\s*(\w+)\s*(?::\s*(.*))?$")


def parse_asm(path: Path) -> Case:
    case = Case(path.stem, path, "")
    for line in path.read_text().splitlines():
        m = _DIRECTIVE.match(line.strip())
        if not m:
            if line.strip() and not line.strip().startswith("#"):
                break
            continue
        key, val = m.group(1), (m.group(2) or "").strip()
        if key == "expect":
            case.expect = val
        elif key == "type":
            case.prog_type = val
        elif key == "unprivileged":
            case.unprivileged = True
        elif key == "kernel":
            case.kernel = val
        elif key == "why":
            case.why = val
        elif key == "map":
            words = val.split()
            spec = {"type": words[0]}
            for w in words[1:]:
                k, _, v = w.partition("=")
                spec[k] = v
            case.maps.append(spec)
    if not case.expect:
        raise BpfError(f"{path}: no '# expect:' line")
    return case


_C_DIRECTIVE = re.compile(r"^//\s*(\w+):\s*(\w+)\s*(?::\s*(.*))?$")


def parse_c(path: Path) -> list[Case]:
    obj_path = path.with_name(path.name[:-2] + ".o")       # x.bpf.c -> x.bpf.o
    cases: dict[str, Case] = {}
    types: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = _C_DIRECTIVE.match(line.strip())
        if not m:
            continue
        prog, key, val = m.group(1), m.group(2), (m.group(3) or "").strip()
        case = cases.setdefault(prog, Case(f"{path.name.split('.')[0]}.{prog}", obj_path, "", program_name=prog))
        if key == "expect":
            case.expect = val
        elif key == "kernel":
            case.kernel = val
        elif key == "why":
            case.why = val
        elif key == "unprivileged":
            case.unprivileged = True
        elif key == "type":
            types[prog] = val
    for prog, case in cases.items():
        case.prog_type = types.get(prog, "")
    return list(cases.values())


def negative_cases(directory: Path) -> list[Case]:
    """The conformance suite's unused-* files: instruction encoding errors."""
    out = []
    for path in sorted(directory.glob("unused-*.data")):
        out.append(Case(path.stem, path, "has a non-zero unused | has an invalid off field", kernel="reject"))
    return out


def load_corpus(root: Path, negative: Path | None = None) -> list[Case]:
    cases = [parse_asm(p) for p in sorted(root.glob("*.asm"))]
    for c in sorted((root / "c").glob("*.bpf.c")) if (root / "c").is_dir() else ():
        cases.extend(parse_c(c))
    if negative is not None and negative.is_dir():
        cases.extend(negative_cases(negative))
    return cases


def outcome(case: Case) -> tuple[bool, str, int | None]:
    """(rejected, message, pc) from our verifier; encoding errors are rejections."""
    from . import verify
    try:
        prog = case.load()
    except BpfValidationError as e:
        return True, e.message, e.pc
    try:
        verify(prog, prog_type=case.prog_type or None, unprivileged=case.unprivileged)
    except jitbpf.BpfVerifierError as e:
        return True, e.message, e.pc
    return False, "", None
