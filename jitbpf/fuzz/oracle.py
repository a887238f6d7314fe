"""Run one case on several engines, each on its own runtime, and compare what they did.

``check=True`` runs interp on the program's own runtime, so a bug in the runtime (a
helper, a map) is the same bug on both sides and never shows. Here every engine gets
a fresh :class:`~jitbpf.runtime.Runtime` with identical maps and contents, the same
random seed and a stopped clock, and the outcomes compared are r0, the memory after
the run (the generator's epilogue stores every register and the stack there), every
map's contents and, when a run fails, the error class and its kind.

The ``kernel`` engine joins where its verifier accepts the program; a rejection (by
the kernel's verifier or ours, on by default for generated code) is recorded, not a
mismatch. Raw programs run unverified, so the run time's own checks are what is tested.
Raw and mutated programs may compute on pointers, whose values differ from runtime to
runtime, so the reference runs twice first, the second time with every buffer below
4 GiB in ascending order (the default is high, descending: other high and low 32 bits,
other order): if those two disagree the case is address-dependent and only crashes count.

Our verifier is an oracle too: a program it accepts (told the input's exact size, so
every access is proven, none left to run-time checks) that then goes out of bounds or
faults on any engine is a verifier bug, reported as a mismatch of the config "verifier".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import BpfError, BpfVerifierError
from ..pipeline import adopt_verdict
from ..program import Object
from ..runtime import Runtime
from ..runtime import maps as bpfmaps
from ..runtime.helpers import MAX_LOOPS
from ..runtime.maps import E2BIG
from ..runtime.memory import placed_low
from .generate import Case

FIXED_CLOCK_NS = 1_000_000_007
NUM_CPUS = 2                 # per-CPU maps: as many CPUs as the kernel engine has on small hosts
RAW_BUDGET = 20_000          # budget ticks (loop heads and function entries) for raw programs


@dataclass(frozen=True)
class Config:
    """An engine and its compile options, spelled ``ENGINE[:option[=value]]...`` (``llvm:opt=0``, ``direct:blind``)."""

    label: str
    engine: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def backend(self) -> str:
        return self.engine.split("-")[0].split("@")[0]

    @property
    def native(self) -> bool:
        return self.backend in ("llvm", "direct") and "-" not in self.engine and "@" not in self.engine


def parse_config(text: str) -> Config:
    """``llvm:opt=0`` -> Config('llvm:opt=0', 'llvm', (('opt', 0),))."""
    engine, *opts = text.strip().split(":")
    options = []
    for o in opts:
        key, eq, value = o.partition("=")
        options.append((key, int(value) if eq and value.lstrip("-").isdigit() else True if not eq else value))
    return Config(text.strip(), engine, tuple(sorted(options)))


def parse_configs(text: str) -> list[Config]:
    return [parse_config(t) for t in text.split(",") if t.strip()]


@dataclass
class Outcome:
    config: str
    r0: int | None = None
    memory: bytes | None = None
    maps: list[Any] | None = None
    error: tuple[str, str] | None = None      # (class name, kind) of a failed run
    message: str = ""
    rejected: bool = False                    # the kernel verifier refused the program

    def fields(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        return {"r0": self.r0, "memory": self.memory, "maps": self.maps}

    def show(self) -> str:
        if self.rejected:
            return f"rejected: {self.message}"
        if self.error is not None:
            return f"{self.error[0]} ({self.error[1]}): {self.message}"
        return f"r0=0x{self.r0:x}"


@dataclass
class Mismatch:
    config: str
    what: list[str]            # the fields that differ: r0, memory, maps, error
    detail: str
    explained: str | None = None   # a known kernel difference (KERNEL_EXPLANATIONS) accounts for it

    def signature(self) -> tuple[str, tuple[str, ...]]:
        return self.config, tuple(self.what)


@dataclass
class Verdict:
    outcomes: list[Outcome]
    mismatches: list[Mismatch] = field(default_factory=list)
    rejections: list[Outcome] = field(default_factory=list)
    address_dependent: bool = False
    internal_errors: list[Outcome] = field(default_factory=list)   # non-BpfError exceptions

    @property
    def executions(self) -> int:
        return sum(1 for o in self.outcomes if not o.rejected)

    @property
    def unexplained(self) -> list[Mismatch]:
        return [m for m in self.mismatches if m.explained is None]


# --------------------------------------------------------------------------- one engine

def instantiate(case: Case, variant: Callable[[Runtime], None] | None = None) -> tuple[Object, Any]:
    """A fresh runtime with the case's maps and the program (may raise BpfValidationError);
    ``variant`` may change the runtime first (see KERNEL_EXPLANATIONS)."""
    rt = Runtime(seed=case.seed & 0xFFFF_FFFF, num_cpus=NUM_CPUS)
    rt.fixed_clock_ns = FIXED_CLOCK_NS
    if variant is not None:
        variant(rt)
    obj = Object(rt)
    for spec in case.maps:
        m = bpfmaps.create(rt, spec.name, spec.type, spec.key_size, spec.value_size, spec.max_entries)
        for key, value in spec.entries:
            if spec.key_size:
                m.update(key, value)
            else:
                m.push(value)
        obj.add_map(m)
    return obj, obj.add_program("fuzz", list(case.insns))


_KINDS = ("out-of-bounds", "read-only", "budget", "call depth", "middle of an lddw", "not a bpf function",
          "callx", "unknown helper", "not a map", "not a ring buffer", "deadlock", "not held")


def error_kind(message: str) -> str:
    """What sort of failure a message describes, without its numbers and addresses (a
    fault on unmapped memory under unicorn is the interpreter's out-of-bounds access)."""
    low = message.lower().replace("unmapped memory", "out-of-bounds")
    for kind in _KINDS:
        if kind in low:
            return kind
    return re.sub(r"0x[0-9a-f]+|-?\d+", "N", low)[:60]


def run_config(case: Case, config: Config, budget: int | None = None,
               variant: Callable[[Runtime], None] | None = None, verify: bool | None = None,
               twins: list | None = None) -> Outcome:
    """One run of ``case`` on ``config`` with its own runtime; ``budget`` and ``verify``
    apply where the config does not set them. ``twins`` collects the case's programs so
    far, so our verifier judges each case once, not once per engine."""
    options = dict(config.options)
    if budget is not None and config.backend in ("interp", "llvm", "direct") and "budget" not in options:
        options["budget"] = budget
    if verify is not None and config.backend in ("llvm", "direct") and "verify" not in options:
        options["verify"] = verify
    try:
        obj, prog = instantiate(case, variant)
        if twins is not None:
            if twins:
                adopt_verdict(prog, twins[0])
            twins.append(prog)
        result = prog.compile(config.engine, **options).run(case.mem)
        maps = [m.contents() for m in obj.map_list]
    except BpfVerifierError as e:
        return Outcome(config.label, rejected=True, message=e.message)
    except BpfError as e:
        if config.engine == "kernel" and type(e).__name__ in ("KernelError", "KernelUnavailable"):
            return Outcome(config.label, rejected=True, message=e.message)
        return Outcome(config.label, error=(type(e).__name__, error_kind(e.message)), message=str(e))
    except Exception as e:          # noqa: BLE001 - anything else is a bug of ours, reported
        return Outcome(config.label, error=("internal:" + type(e).__name__, str(e)[:80]), message=repr(e))
    return Outcome(config.label, result.r0, result.memory, maps)


# --------------------------------------------------------------------------- explained kernel differences

def _inlined_bpf_loop(rt: Runtime) -> None:
    """bpf_loop as the kernel verifier inlines it (verifier.c inline_bpf_loop, whenever
    flags is a constant 0): nr_loops compared with BPF_MAX_LOOPS as 64 bits, and -E2BIG
    set by a 32-bit mov, where the helper itself takes a u32 and returns a 64-bit -E2BIG."""
    helper = rt.helpers.get(181)

    def inlined(rt, nr_loops, callback, ctx, flags, r5):
        if flags == 0 and nr_loops > MAX_LOOPS:
            return (-E2BIG) & 0xFFFF_FFFF
        return helper.func(rt, nr_loops, callback, ctx, flags, r5)
    rt.helpers.register(181, helper.name, inlined, args=helper.args, ret=helper.ret)


#: Known reasons the kernel differs from our reference: (name, runtime variant). A
#: kernel mismatch is explained when interp on that variant gives the kernel's outcome.
KERNEL_EXPLANATIONS: list[tuple[str, Callable[[Runtime], None]]] = [
    ("bpf_loop inlined by the kernel verifier (64-bit nr_loops check, 32-bit -E2BIG)", _inlined_bpf_loop),
]


LRU_EVICTION = "lru_hash eviction (Linux's LRU is approximate: per-CPU free lists; ours is exact)"


def explain(case: Case, kernel: Outcome, ref: Outcome | None = None) -> str | None:
    """The name of the known difference that accounts for the kernel's outcome, if any."""
    if ref is not None and ref.error is None and kernel.error is None and ref.fields()["r0"] == kernel.r0 \
            and ref.memory == kernel.memory:
        differ = [spec for spec, a, b in zip(case.maps, ref.maps, kernel.maps) if a != b]
        if differ and all(spec.type.startswith("lru_") for spec in differ):
            return LRU_EVICTION
    for name, variant in KERNEL_EXPLANATIONS:
        if run_config(case, Config("interp", "interp"), variant=variant).fields() == kernel.fields():
            return name
    return None


# --------------------------------------------------------------------------- the differential

def verifier_accepts(case: Case) -> bool:
    """Our verifier's verdict on ``case`` with the input's size known (so nothing it
    accepts needs a run-time check to stay in bounds)."""
    from ..verifier import verify
    try:
        _, prog = instantiate(case)
        verify(prog, strict=False, mem_size=len(case.mem) if case.mem is not None else None)
    except BpfError:
        return False
    return True


UNSOUND = ("out-of-bounds", "read-only")     # error kinds no verified program may reach


def run_case(case: Case, configs: list[Config], reference: Config | None = None) -> Verdict:
    """Run ``case`` on the reference (interp) and every config; compare each with it."""
    reference = reference or Config("interp", "interp")
    untrusted = case.level == "raw"         # valid and mutated programs stay inside the rules
    budget = RAW_BUDGET if untrusted else None
    verify = False if untrusted else None   # raw programs attack the run time's own checks
    ref = run_config(case, reference, budget)
    verdict = Verdict([ref])
    twins: list = []
    if ref.error is not None and ref.error[0] == "BpfValidationError":
        return verdict                          # the same validator runs for every engine
    if untrusted:
        with placed_low():                      # input, stack and maps elsewhere, in another order
            second = run_config(case, reference, budget)
        if second.fields() != ref.fields():
            verdict.address_dependent = True
    for config in configs:
        if config.label == reference.label:
            continue
        if config.engine == "kernel" and not case.kernel_safe:
            continue                            # made to differ from Linux (seeded prandom, ...)
        if untrusted and config.native and dict(config.options).get("bounds_check", True) in (False, 0):
            continue                            # asked for unchecked code: only rule-abiding programs run
        out = run_config(case, config, budget, verify=verify, twins=twins)
        verdict.outcomes.append(out)
        if out.rejected:
            verdict.rejections.append(out)
            continue
        if out.error is not None and out.error[0].startswith("internal:"):
            verdict.internal_errors.append(out)
        if verdict.address_dependent:
            continue
        problem = compare(ref, out)
        if problem is not None and config.engine == "kernel":
            problem.explained = explain(case, out, ref)
        if problem is not None:
            verdict.mismatches.append(problem)
    if ref.error is not None and ref.error[0].startswith("internal:"):
        verdict.internal_errors.append(ref)
    faulted = [o for o in verdict.outcomes if o.error is not None and o.error[1] in UNSOUND]
    if faulted and verifier_accepts(case):
        verdict.mismatches.append(Mismatch("verifier", ["soundness"], "accepted by our verifier, then "
                                           + "; ".join(f"{o.config}: {o.show()}" for o in faulted)))
    return verdict


def compare(ref: Outcome, out: Outcome) -> Mismatch | None:
    want, got = ref.fields(), out.fields()
    if want == got:
        return None
    if "error" in want or "error" in got:
        return Mismatch(out.config, ["error"], f"{out.config}: {out.show()}; {ref.config}: {ref.show()}")
    what = [k for k in ("r0", "memory", "maps") if want[k] != got[k]]
    details = []
    if "r0" in what:
        details.append(f"r0 0x{out.r0:x} != 0x{ref.r0:x}")
    if "memory" in what:
        details.append("memory" + _first_difference(out.memory, ref.memory))
    if "maps" in what:
        for i, (a, b) in enumerate(zip(out.maps, ref.maps)):
            if a != b:
                details.append(f"map {i}: {_short(a)} != {_short(b)}")
    return Mismatch(out.config, what, f"{out.config} vs {ref.config}: " + "; ".join(details))


def _first_difference(got: bytes | None, want: bytes | None) -> str:
    if got is None or want is None or len(got) != len(want):
        return f" ({None if got is None else len(got)} bytes != {None if want is None else len(want)})"
    i = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
    return f" at byte {i}: {got[i:i + 8].hex()} != {want[i:i + 8].hex()}"


def _short(x: Any) -> str:
    text = repr({k.hex() if isinstance(k, bytes) else k: v.hex() if isinstance(v, bytes) else v
                 for k, v in x.items()} if isinstance(x, dict) else x)
    return text if len(text) < 160 else text[:157] + "..."


def case_summary(case: Case) -> str:
    return f"seed {case.seed} index {case.index} ({case.level}, {len(case.insns)} slots, {len(case.maps)} maps)"


__all__ = ["Config", "Outcome", "Mismatch", "Verdict", "parse_config", "parse_configs", "run_case", "run_config",
           "instantiate", "compare", "error_kind", "case_summary"]
