"""The compilation pipeline every engine goes through, and the one place that knows engines.

    load (jitbpf.load / assemble / from_bytes: elf, btf, asm) -> validate (jitbpf.isa, at load)
      -> verify (a stage; no-op until the verifier is on) -> passes (jitbpf.passes)
      -> lower (backend: interp handlers | llvm | direct -> Image) -> link (backends.link)
      -> load (executor: native | unicorn)

``compile_program(program, engine, **options)`` runs the stages; ``prepare`` stops after
the passes (``jitbpf disasm --passes``) and ``image`` after linking (listings, saved
images). Engine names are parsed by :mod:`jitbpf.targets`, options checked against
:data:`OPTIONS` (an option an engine does not take is an error naming the engine), and
backends are looked up here: nothing in ``backends`` imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from . import isa
from .errors import BpfEngineError, BpfError
from .passes import PassOptions, needs_checks, run_passes
from .targets import EngineSpec, parse_engine

DEFAULT_BUDGET = 1_000_000

# ------------------------------------------------------------------------------ options


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ValueError("expected a boolean (1/0, true/false)")


def _integer(low: int, high: int, none: bool = False) -> Callable[[Any], int | None]:
    def convert(value: Any) -> int | None:
        if none and (value is None or isinstance(value, str) and value.lower() == "none"):
            return None
        if isinstance(value, bool):
            raise ValueError("expected a number")
        number = int(value, 0) if isinstance(value, str) else int(value)
        if not low <= number <= high:
            raise ValueError(f"expected {low}..{high}")
        return number
    return convert


def _seconds(value: Any) -> float | None:
    if value is None or isinstance(value, str) and value.lower() == "none":
        return None
    seconds = float(value)
    if not seconds > 0:
        raise ValueError("expected seconds > 0")
    return seconds


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a name")
    return value


COMPILED = frozenset({"llvm", "direct"})
BYTECODE = frozenset({"interp", "llvm", "direct"})


@dataclass(frozen=True)
class Option:
    name: str
    convert: Callable[[Any], Any]
    default: Any
    backends: frozenset[str]
    help: str
    unicorn_only: bool = False


#: Every engine option: -X name=value on the command line, keyword arguments of compile().
OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("budget", _integer(0, 1 << 62, none=True), DEFAULT_BUDGET, BYTECODE,
           "run budget: loop heads and function entries per run (None: unlimited)"),
    Option("blind", _flag, False, BYTECODE, "constant blinding of every immediate"),
    Option("bounds_check", _flag, None, BYTECODE,
           "check every memory access neither the verifier nor the passes prove safe (default: on for "
           "generated code; off asks for unchecked native code)"),
    Option("verify", _flag, None, BYTECODE,
           "run the static verifier first (default: on for generated code; its proofs spare bounds checks)"),
    Option("timeout", _seconds, None, BYTECODE, "seconds a run may take (None: no limit)"),
    Option("stack_fill", _integer(0, 255), 0, COMPILED,
           "byte the BPF stack holds when a run starts, for code verified to read only stack it wrote "
           "(reads_own_stack; a fuzzing oracle: the byte must not matter)"),
    Option("inline_maps", _flag, True, BYTECODE,
           "inline array-map lookups in code without bounds checks (the kernel's map_gen_lookup)"),
    Option("opt", _integer(0, 3), 2, frozenset({"llvm"}), "LLVM optimisation level"),
    Option("cpu", _text, None, frozenset({"llvm"}), "LLVM CPU: host, generic or a CPU name"),
    Option("debug", _flag, None, frozenset({"llvm"}), "line info (BPF slot of each native instruction)"),
    Option("cache", _flag, True, frozenset({"llvm"}), "reuse objects compiled from the same IR"),
    Option("verify_ir", _flag, True, frozenset({"llvm"}), "verify the generated LLVM IR"),
    Option("max_instructions", _integer(1, 1 << 62), 200_000_000, COMPILED,
           "unicorn: native instructions per run", unicorn_only=True),
    Option("repeat", _integer(1, 1 << 31), 1, frozenset({"kernel"}), "BPF_PROG_TEST_RUN repeat count"),
    Option("log_level", _integer(0, 2), 0, frozenset({"kernel"}), "kernel verifier log level"),
)}


@dataclass(frozen=True)
class Options:
    """Every option with its value for one engine (defaults filled in)."""

    budget: int | None = DEFAULT_BUDGET
    blind: bool = False
    bounds_check: bool = False
    verify: bool = False
    timeout: float | None = None
    stack_fill: int = 0
    inline_maps: bool = True
    opt: int = 2
    cpu: str | None = None
    debug: bool | None = None
    cache: bool = True
    verify_ir: bool = True
    max_instructions: int = 200_000_000
    repeat: int = 1
    log_level: int = 0


def accepted(spec: EngineSpec) -> list[Option]:
    """The options engine ``spec`` takes."""
    return [o for o in OPTIONS.values()
            if spec.backend in o.backends and (not o.unicorn_only or spec.executor == "unicorn")]


def resolve_options(spec: EngineSpec, given: dict[str, Any]) -> Options:
    taken = {o.name: o for o in accepted(spec)}
    values = {}
    for name, value in given.items():
        option = taken.get(name)
        if option is None:
            known = ", ".join(sorted(taken)) or "none"
            why = "is unknown" if name not in OPTIONS else "does not apply to it"
            raise BpfEngineError(f"engine '{spec.name}': option '{name}' {why} (its options: {known})")
        if value is None and option.default is None:
            values[name] = None                       # "the default", spelled out
            continue
        try:
            values[name] = option.convert(value)
        except (ValueError, TypeError) as e:
            raise BpfEngineError(f"engine '{spec.name}': option {name}={value!r}: {e}") from None
    # Safe by default: generated code runs in this process, so it is verified first, and
    # every access neither the verifier nor the passes prove safe is checked at run time.
    if values.get("verify") is None:
        values["verify"] = spec.backend in COMPILED
    if values.get("bounds_check") is None:
        values["bounds_check"] = spec.backend in COMPILED
    return Options(**values)


def parse_option_text(text: str) -> tuple[str, str]:
    """``name=value`` (the CLI's -X) -> (name, value); values are converted per engine."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise BpfEngineError(f"option '{text}': expected name=value (options: {', '.join(OPTIONS)})")
    return name.strip().replace("-", "_"), value.strip()


# ------------------------------------------------------------------------------ backends

class Backend:
    """One backend: which passes it needs, and how it turns a prepared program into
    something that runs (and, for code generators, a linked Image)."""

    name = ""

    def passes(self, spec: EngineSpec, options: Options) -> PassOptions | None:
        return PassOptions(bounds_check=options.bounds_check, ticks=True, blind=options.blind,
                           inline_maps=options.inline_maps)

    def image(self, program, spec: EngineSpec, options: Options, debug: bool | None = None):
        raise BpfEngineError(f"engine '{spec.name}' generates no native code")

    def load(self, program, spec: EngineSpec, options: Options):
        return _load(self.image(program, spec, options), program.runtime, program.functions, spec, options,
                     stack_proven=options.verify and reads_own_stack(program))


class InterpBackend(Backend):
    name = "interp"

    def passes(self, spec: EngineSpec, options: Options) -> PassOptions:
        return PassOptions(bounds_check=options.bounds_check,
                           ticks=options.budget is not None or options.timeout is not None, blind=options.blind,
                           inline_maps=options.inline_maps)

    def load(self, program, spec: EngineSpec, options: Options):
        from .interpreter import Interpreter
        return Interpreter(program, options.budget, options.timeout)


class LLVMBackend(Backend):
    name = "llvm"

    def llvm_options(self, spec: EngineSpec, options: Options, debug: bool | None = None):
        from .backends.llvm import LLVMOptions
        emulated = spec.executor == "unicorn"
        if debug is None:
            # Line info costs compile time; unicorn engines use it to name the BPF
            # instruction of a fault.
            debug = emulated if options.debug is None else options.debug
        return LLVMOptions(options.opt, options.cpu or ("generic" if emulated else "host"), debug,
                           options.cache, options.verify_ir)

    def image(self, program, spec: EngineSpec, options: Options, debug: bool | None = None):
        from .backends.llvm import lower
        return lower(program, spec.arch, spec.executor == "unicorn", self.llvm_options(spec, options, debug))


class DirectBackend(Backend):
    name = "direct"

    def image(self, program, spec: EngineSpec, options: Options, debug: bool | None = None):
        from .backends.direct import lower
        return lower(program, spec.arch)


class KernelBackend(Backend):
    name = "kernel"

    def passes(self, spec: EngineSpec, options: Options) -> None:
        return None                      # the kernel verifies and rewrites programs itself

    def load(self, program, spec: EngineSpec, options: Options):
        from .kernel import KernelEngine
        return KernelEngine(options.repeat, options.log_level).compile(program)


BACKENDS: dict[str, Backend] = {b.name: b for b in (InterpBackend(), LLVMBackend(), DirectBackend(), KernelBackend())}


# ------------------------------------------------------------------------------ stages

@dataclass
class Compilation:
    """One program on its way through the stages for one engine."""

    program: Any                     # as loaded
    spec: EngineSpec
    options: Options
    given: dict[str, Any] = field(default_factory=dict)
    prepared: Any = None             # after verify and passes

    @property
    def backend(self) -> Backend:
        return BACKENDS[self.spec.backend]


def start(program, engine: str, options: dict[str, Any]) -> Compilation:
    spec = parse_engine(engine)
    return Compilation(program, spec, resolve_options(spec, options), dict(options))


def verify(c: Compilation):
    """The verify stage (jitbpf.verifier, without the kernel's refusals that are not about
    safety): a rejected program is an error; an accepted one's facts go to the passes.
    A program's verdict (acceptance or refusal) is kept with it: every engine asks the
    same question."""
    if not c.options.verify:
        return None
    program = c.program
    code = isa.encode(program.insns)        # (a program's instructions may be edited between compiles)
    cached = program.__dict__.get("_verdict")
    if cached is None or cached[0] != code:
        from .verifier import verify as run_verifier
        try:
            verdict = run_verifier(program, strict=False)
        except BpfError as e:
            if not e.message.endswith(VERIFY_HINT):
                e.message += VERIFY_HINT
                e.args = (e._render(),)
            verdict = e
        cached = program.__dict__["_verdict"] = (code, verdict)
    if isinstance(cached[1], BpfError):
        raise cached[1].with_traceback(None)   # a refusal, as final as an acceptance
    return cached[1]


VERIFY_HINT = " (verify=False, or --no-verify, runs it anyway, bounds-checked)"


def adopt_verdict(program, twin) -> None:
    """Let ``program`` reuse the verdict ``twin`` has (if any): the caller vouches that
    the two are copies (same instructions, program type and maps of the same shapes and
    contents), as the fuzzer's fresh per-engine instances of one case are."""
    cached = twin.__dict__.get("_verdict")
    if cached is not None and cached[0] == isa.encode(program.insns):
        program.__dict__["_verdict"] = cached


def prepare_compilation(c: Compilation):
    verdict = verify(c)
    pass_options = c.backend.passes(c.spec, c.options)
    if pass_options is not None and verdict is not None:
        pass_options = replace(pass_options, proven=verdict.facts.proven_slots)
        if pass_options.bounds_check and not needs_checks(c.program, pass_options.proven):
            # The verifier proved every access (helper arguments too): the code is as safe
            # as unchecked code, so it is compiled and run as such (no region table, the
            # native runtime, inlined array lookups). The one place this is decided.
            pass_options = replace(pass_options, bounds_check=False)
            c.options = replace(c.options, bounds_check=False)
    c.prepared = c.program if pass_options is None else run_passes(c.program, pass_options)
    return c.prepared


def prepare(program, engine: str = "interp", **options: Any):
    """The program as engine ``engine``'s backend receives it (after verify and passes)."""
    return prepare_compilation(start(program, engine, options))


def image(program, engine: str, debug: bool | None = None, **options: Any):
    """(the linked Image an engine generates for ``program``, the prepared program)."""
    return _image(start(program, engine, options), debug)


def _image(c: Compilation, debug: bool | None = None):
    prepared = prepare_compilation(c)
    return _at_source(prepared, lambda: c.backend.image(prepared, c.spec, c.options, debug)), prepared


def _at_source(prepared, build: Callable):
    """Run a backend stage; its errors name the loaded program's slot."""
    try:
        return build()
    except BpfError as e:
        if e.pc is not None and not e.at_source:
            e.pc = prepared.source_pc(e.pc)
            e.at_source = True
            e.args = (e._render(),)
        raise


def compile_program(program, engine: str = "interp", **options: Any):
    from .engines import CompiledProgram
    c = start(program, engine, options)
    prepared = prepare_compilation(c)
    executable = _at_source(prepared, lambda: c.backend.load(prepared, c.spec, c.options))
    return CompiledProgram(program, c.spec.name, executable, prepared, c.options, options)


#: helper arguments the helper may leave partly unwritten (bpf_probe_read_str stops at the
#: NUL, a failed map_pop_elem writes nothing) while the verifier counts them written, as Linux does
_PARTIAL_WRITES = frozenset({"ptr_to_uninit_mem", "ptr_to_uninit_map_value"})


def reads_own_stack(program) -> bool:
    """Whether a verified ``program`` reads only stack bytes it wrote: no helper it calls
    may leave part of a buffer unwritten, and it calls no kfunc. Such code needs no
    cleared stack before a run (and ``stack_fill`` is how the fuzzer checks it)."""
    for insn in isa.external_calls(program.insns):
        if insn.src != 0:
            return False
        helper = program.runtime.helpers.by_id.get(insn.imm)
        if helper is None or _PARTIAL_WRITES.intersection(helper.args or ()):
            return False
    return True


def _load(linked, runtime, functions: list[int], spec: EngineSpec, options: Options, stack_proven: bool = False):
    """Load a linked image; ``stack_proven``: the program is verified to read only stack
    it wrote (``reads_own_stack``), which a saved image's loader cannot know."""
    from .backends.exec import RunOptions, load_image
    extra = {"max_instructions": options.max_instructions} if spec.executor == "unicorn" else {}
    run = RunOptions(options.budget, options.bounds_check, options.timeout, stack_proven,
                     options.stack_fill if stack_proven else 0)
    return load_image(linked, runtime, functions, spec.executor, run, **extra)


def save_image(program, engine: str, **options: Any) -> bytes:
    """A relocatable image of ``program`` for a code-generating engine, with what loading
    it needs (``load_saved``): no address of this process is in it."""
    c = start(program, engine, options)
    linked, prepared = _image(c)
    linked.meta = {"engine": c.spec.name, "program": program.name, "prog_type": program.prog_type,
                   "functions": prepared.functions, "origin": prepared.origin,
                   "budget": c.options.budget, "bounds_check": c.options.bounds_check,
                   "maps": sorted(m.name for m in program.obj.map_list)}
    return linked.to_bytes()


def load_saved(data: bytes, program, engine: str | None = None, **options: Any):
    """Run a saved image (``save_image``) over ``program``'s runtime: its maps (found by
    name), helpers and contexts. ``engine`` picks the executor (default: as saved)."""
    from .backends.link import Image
    from .engines import CompiledProgram
    linked = Image.from_bytes(data)
    meta = linked.meta
    try:
        spec = parse_engine(engine or meta["engine"])
        run = {"budget": meta["budget"], "bounds_check": meta["bounds_check"], **options}
        functions, origin = [int(f) for f in meta["functions"]], [int(o) for o in meta["origin"]]
    except (KeyError, TypeError, ValueError) as e:
        raise BpfEngineError(f"the saved image lacks what loading needs ({e})") from None
    if spec.backend not in COMPILED or spec.arch != linked.arch:
        raise BpfEngineError(f"a saved {linked.arch} image cannot run on engine '{spec.name}'")
    missing = set(meta.get("maps", ())) - set(program.runtime.maps)
    if missing:
        raise BpfEngineError(f"the saved image needs maps this object lacks: {', '.join(sorted(missing))}")
    resolved = resolve_options(spec, run)
    executable = _load(linked, program.runtime, functions, spec, resolved)
    return CompiledProgram(program, spec.name, executable, None, resolved, run, origin=origin)


def llvm_ir(program, engine: str = "llvm", optimized: bool = False, **options: Any) -> str:
    """The LLVM IR of ``program`` for an LLVM engine, as generated or after the IR pipeline."""
    c = start(program, engine, options)
    if not isinstance(c.backend, LLVMBackend):
        raise BpfEngineError(f"engine '{c.spec.name}' does not use LLVM")
    prepared = prepare_compilation(c)
    from .backends.llvm import module_text, optimised
    llvm_options = c.backend.llvm_options(c.spec, c.options)
    text = _at_source(prepared, lambda: module_text(prepared, llvm_options.debug))
    if not optimized:
        return text
    return str(optimised(text, c.spec.arch, c.spec.executor == "unicorn", llvm_options))


def listing(program, engine: str, style: str = "asm", **options: Any) -> str:
    """Native code interleaved with the BPF instructions it came from."""
    from .backends.listing import listing as render
    linked, prepared = image(program, engine, debug=True, **options)
    return render(linked, prepared, style=style)


def option_table(spec: EngineSpec) -> list[tuple[str, Any, str]]:
    return [(o.name, o.default, o.help) for o in accepted(spec)]


__all__ = ["OPTIONS", "Options", "compile_program", "prepare", "image", "save_image", "load_saved", "llvm_ir", "listing",
           "resolve_options", "parse_option_text", "DEFAULT_BUDGET", "BACKENDS"]
