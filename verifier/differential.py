"""Accept/reject agreement between this verifier and the host kernel's.

    python -m jitbpf.verifier.differential [--count 5000] [--seed 1] [--fixtures] [--corpus] [--show N]

Loads the same program into both (``verifier.kernel.kernel_verdict`` for the kernel)
and counts agreement per category: the ELF fixtures and examples, the rejection corpus,
generated programs (``verifier.gen``: valid by construction, and mutated). Each
disagreement is classified by the message of whichever verifier rejected (numbers
blanked), so the classes can be explained (verifier/README.md).
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jitbpf
from jitbpf.errors import BpfError, BpfValidationError

from . import gen, verify
from .kernel import available, kernel_verdict

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tally:
    agree_accept: int = 0
    agree_reject: int = 0
    ours_only: collections.Counter = field(default_factory=collections.Counter)     # we reject, kernel accepts
    kernel_only: collections.Counter = field(default_factory=collections.Counter)   # kernel rejects, we accept
    examples: dict = field(default_factory=dict)
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.agree_accept + self.agree_reject + sum(self.ours_only.values()) + sum(self.kernel_only.values())

    @property
    def agreement(self) -> float:
        return (self.agree_accept + self.agree_reject) / self.total if self.total else 1.0

    def add(self, ours: str | None, kernel: str | None, example: str = "") -> None:
        """``ours``/``kernel``: None for accepted, else the rejection message."""
        if ours is None and kernel is None:
            self.agree_accept += 1
        elif ours is not None and kernel is not None:
            self.agree_reject += 1
        elif ours is not None:
            key = _shape(ours)
            self.ours_only[key] += 1
            self.examples.setdefault(("ours", key), example)
        else:
            key = _shape(kernel)
            self.kernel_only[key] += 1
            self.examples.setdefault(("kernel", key), example)


#: Why the two verifiers may disagree (verifier/README.md explains each): who rejects,
#: a pattern of the rejecting verifier's message, the class.
EXPLAINED = [
    ("ours", r"invalid (indirect )?read from stack", "uninitialised stack"),
    ("ours", r"invalid mem access 'map_ptr'", "map handles"),
    ("kernel", r"does not point to a readonly map", "unfrozen maps"),
    ("kernel", r"R1 type=map_value expected=ctx", "wrapped contexts"),
    ("kernel", r"^kernel engine: |^load error: ", "kernel engine limits"),
    ("kernel", r"type=ctx expected=fp|Sleepable programs can only use", "syscall contexts"),
    ("kernel", r"The sequence of (\d+|N) jumps is too complex|BPF program is too large", "more precise stack"),
    ("kernel", r"R0 invalid mem access 'map_value_or_null'|max value is outside|unbounded min value",
     "more precise values"),
    ("kernel", r"infinite loop detected", "constant folding"),
]


def explain(who: str, message: str) -> str | None:
    for w, pattern, name in EXPLAINED:
        if w == who and re.search(pattern, message):
            return name
    return None


def _shape(message: str) -> str:
    return re.sub(r"-?\b\d+\b|0x[0-9a-f]+", "N", message)[:110]


def compare(program, prog_type: str | None = None) -> tuple[str | None, str | None]:
    try:
        verify(program, prog_type=prog_type)
        ours = None
    except jitbpf.BpfVerifierError as e:
        ours = e.message
    try:
        kv = kernel_verdict(program, prog_type)
        kernel = None if kv.accepted else (kv.message or "rejected")
    except BpfError as e:
        kernel = f"load error: {e}"
    return ours, kernel


def fixtures(native: bool) -> Tally:
    """The shipped objects. ``native``: loaded as their own kernel type; else as the
    kernel engine runs them (syscall and tracing programs wrapped, their context a map
    value of the size our verifier says they use)."""
    from .kernel import engine_verdict
    t = Tally()
    paths = sorted(glob.glob(str(ROOT / "tests/fixtures/*.bpf.o")) + glob.glob(str(ROOT / "jitbpf/examples/*.bpf.o"))
                   + [str(ROOT / "tests/fixtures/elf/text_only.bpf.o")])
    # (benchmarks/kernels.bpf.o is left out: its data-bounded loops keep the kernel's
    # verifier busy for minutes and gigabytes before it gives up, as it must)
    for path in paths:
        obj = jitbpf.load(path)
        for prog in obj.programs.values():
            try:
                verdict = verify(prog)
                ours, size = None, max(verdict.facts.ctx_size, 8)
            except jitbpf.BpfVerifierError as e:
                ours, size = e.message, 64
            if native and prog.prog_type == "raw":
                t.skipped += 1                # no kernel program type to load it as
                continue
            if native:
                try:
                    kv = kernel_verdict(prog)
                except BpfError as e:
                    kv = None
                    kernel = f"load error: {e}"
            else:
                kv = engine_verdict(prog, size if prog.prog_type != "raw" else 4096)
            if kv is not None:
                kernel = None if kv.accepted else (kv.message or "rejected")
            t.add(ours, kernel, f"{Path(path).name}:{prog.name}")
    return t


def corpus() -> Tally:
    from .corpus import load_corpus
    t = Tally()
    for case in load_corpus(ROOT / "tests/verifier"):
        if case.kernel == "none":
            t.skipped += 1
            continue
        try:
            prog = case.load()
        except BpfError:
            t.skipped += 1
            continue
        ours, kernel = compare(prog, case.prog_type or None)
        t.add(ours, kernel, case.name)
    return t


def generated(seed: int, count: int) -> tuple[Tally, Tally]:
    """(valid by construction, mutated) tallies for ``count`` programs from ``seed``."""
    from jitbpf.asm import assemble
    from jitbpf.program import Object
    from jitbpf.runtime import Runtime
    from jitbpf.runtime.maps import create
    rt = Runtime()
    obj = Object(rt)
    for i, (mtype, k, v, n) in enumerate(gen.MAPS):
        obj.add_map(create(rt, f"m{i}", mtype, k, v, n))
    valid, mutated = Tally(), Tally()
    for name, ptype, text, is_mutated in gen.programs(seed, count):
        tally = mutated if is_mutated else valid
        try:
            prog = obj.add_program(name, assemble(text), prog_type=ptype)
        except (BpfValidationError, BpfError):
            tally.skipped += 1            # a mutation that does not even assemble or encode
            continue
        ours, kernel = compare(prog)
        tally.add(ours, kernel, f"{name} ({ptype}):\n{text}")
        del obj.programs[name]
    return valid, mutated


def report(name: str, t: Tally, show: int = 3) -> str:
    lines = [f"{name}: {t.total} programs, agreement {t.agreement:.1%} "
             f"(both accept {t.agree_accept}, both reject {t.agree_reject}, only we reject "
             f"{sum(t.ours_only.values())}, only the kernel rejects {sum(t.kernel_only.values())}"
             f"{f', skipped {t.skipped}' if t.skipped else ''})"]
    for who, counter in (("only we reject", t.ours_only), ("only the kernel rejects", t.kernel_only)):
        for key, n in counter.most_common():
            lines.append(f"    {who} x{n}: {key}")
            if show:
                example = t.examples.get(("ours" if counter is t.ours_only else "kernel", key), "")
                lines.append("        " + example.replace("\n", "\n        ")[:2000])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000, help="generated programs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--examples", action="store_true", help="print one program per disagreement class")
    args = ap.parse_args(argv)
    if not available():
        print("bpf(2) is not available here: no kernel to compare with", file=sys.stderr)
        return 2
    total = Tally()
    for name, tally in (("fixtures as the kernel engine runs them", fixtures(False)),
                        ("fixtures as their own kernel program type", fixtures(True)), ("corpus", corpus())):
        print(report(name, tally, args.examples))
        _merge(total, tally)
    valid, mutated = generated(args.seed, args.count)
    print(report("generated, valid by construction", valid, args.examples))
    print(report("generated, mutated", mutated, args.examples))
    _merge(total, valid)
    _merge(total, mutated)
    print(f"overall: {total.total} programs, agreement {total.agreement:.1%}")
    return 0


def _merge(into: Tally, t: Tally) -> None:
    into.agree_accept += t.agree_accept
    into.agree_reject += t.agree_reject
    into.ours_only.update(t.ours_only)
    into.kernel_only.update(t.kernel_only)
    into.skipped += t.skipped


if __name__ == "__main__":
    sys.exit(main())
