"""Engines by name, and the compiled-program object every engine returns.

An engine name is ``BACKEND[-ARCH][@EXECUTOR]`` (see ARCHITECTURE.md):
``interp``, ``llvm``, ``llvm-arm64``, ``llvm-x86_64@unicorn``, ``direct``,
``direct-arm64``, ``direct-x86_64@unicorn``, ``kernel``. A backend module
exposes ``make_engine(arch, executor, **options)`` returning an object with
``compile(program) -> executable``; the executable is called with r1..r5 and
returns r0, while the input regions are mapped in the program's runtime.
"""

from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import BpfEngineError, BpfError, BpfMismatchError
from .runtime import context

_ARCH_ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}
HOST_ARCH = _ARCH_ALIASES.get(platform.machine().lower(), platform.machine().lower())
ARCHES = ("x86_64", "arm64")
EXECUTORS = ("native", "unicorn")

#: backend name -> module providing make_engine(); imported on first use.
BACKENDS: dict[str, str] = {
    "interp": "jitbpf.interpreter",
    "llvm": "backends.llvm",
    "kernel": "jitbpf.kernel",
    "direct": "backends.direct",
}

#: The engines every command offers, in the order "all" runs them.
ENGINE_NAMES = ["interp", "llvm", "llvm-arm64", "llvm-x86_64@unicorn",
                "direct", "direct-arm64", "direct-x86_64@unicorn", "kernel"]


@dataclass(frozen=True)
class EngineSpec:
    backend: str
    arch: str
    executor: str

    @property
    def name(self) -> str:
        return canonical_name(self)


def parse_engine(name: str) -> EngineSpec:
    """Split an engine name; the architecture defaults to the host, the executor to
    native for the host architecture and unicorn otherwise."""
    base, _, executor = name.partition("@")
    backend, _, arch = base.partition("-")
    arch = _ARCH_ALIASES.get(arch, arch) or HOST_ARCH
    if backend not in BACKENDS:
        raise BpfEngineError(f"unknown engine '{name}' (known: {', '.join(available_engines())})")
    if arch not in ARCHES:
        raise BpfEngineError(f"unknown architecture '{arch}' in engine '{name}' (x86_64 or arm64)")
    executor = executor or _default_executor(arch)
    if executor not in EXECUTORS:
        raise BpfEngineError(f"unknown executor '{executor}' in engine '{name}' (native or unicorn)")
    if executor == "native" and arch != HOST_ARCH:
        raise BpfEngineError(f"engine '{name}': {arch} code cannot run natively on this {HOST_ARCH} host")
    return EngineSpec(backend, arch, executor)


def canonical_name(spec: EngineSpec) -> str:
    if spec.backend in ("interp", "kernel"):
        return spec.backend
    name = spec.backend if spec.arch == HOST_ARCH else f"{spec.backend}-{spec.arch}"
    return name if spec.executor == _default_executor(spec.arch) else f"{name}@{spec.executor}"


def _default_executor(arch: str) -> str:
    return "native" if arch == HOST_ARCH else "unicorn"


def available_engines() -> list[str]:
    """The engine names usable here: ``kernel`` only where bpf(2) works."""
    return [n for n in ENGINE_NAMES if n != "kernel" or _kernel_works()]


def _kernel_works() -> bool:
    from .kernel.syscall import kernel_available      # one cached probe per process
    return kernel_available()


def get_engine(name: str, **options: Any):
    return _make_engine(parse_engine(name), **options)


def _make_engine(spec: EngineSpec, **options: Any):
    return importlib.import_module(BACKENDS[spec.backend]).make_engine(spec, **options)


@dataclass
class Result:
    r0: int
    engine: str
    memory: bytes | None = None            # the input memory after the run
    trace: list[str] = field(default_factory=list)   # bpf_trace_printk lines of this run

    def __int__(self) -> int:
        return self.r0


class CompiledProgram:
    """A program compiled for one engine; ``run`` executes it with a context."""

    def __init__(self, program, engine_name: str, executable: Callable[..., int], engine: Any,
                 options: dict[str, Any] | None = None):
        self.program = program
        self.engine_name = engine_name
        self.executable = executable
        self.engine = engine
        self.options = dict(options or {})       # tail-call targets are compiled with the same ones

    def invoke(self, inv: context.Invocation) -> int:
        """Run with a prepared invocation (its regions mapped for the duration)."""
        rt = self.program.runtime
        outer = rt.current_engine, rt.tail_calls
        rt.current_engine, rt.tail_calls = self.engine_name, 0
        running = self.program
        try:
            with inv.active(rt):
                r0 = self.executable(*inv.args)
                while rt.pending_tail_call is not None:      # bpf_tail_call: run the target next
                    running, ctx = rt.pending_tail_call
                    rt.pending_tail_call = None
                    key = (running, self.engine_name, tuple(sorted(self.options.items())))
                    compiled = rt.compiled.get(key)
                    if compiled is None:
                        compiled = rt.compiled[key] = running.compile(self.engine_name, **self.options)
                    r0 = compiled.executable(ctx)
                return r0
        except BpfError as e:
            if e.pc is not None and e.line is None and running.source_line(e.pc):
                e.line = running.source_line(e.pc)          # BTF line info: name the C source line
                e.args = (e._render(),)
            raise
        finally:
            rt.current_engine, rt.tail_calls = outer
            rt.pending_tail_call = None

    def run(self, mem: bytes | None = None, *, packet: bytes | None = None, ctx: bytes | None = None,
            check: bool = False) -> Result:
        """Run once with the context of the program's type (see runtime.context): ``mem``
        for raw programs, ``packet`` (+ optional ``ctx`` fields) for XDP and socket-buffer
        programs, ``ctx`` bytes for the others. ``check=True`` also runs ``interp`` from
        the same state and compares r0, the memory after the run and every map."""
        inv = context.for_program(self.program.prog_type, mem, packet, ctx)
        if check and self.engine_name != "interp":
            return self._checked(inv)
        return self._run(inv)

    def _run(self, inv: context.Invocation) -> Result:
        rt = self.program.runtime
        first_trace = len(rt.trace_lines)
        r0 = self.invoke(inv)
        return Result(r0, self.engine_name, inv.memory_after(), rt.trace_lines[first_trace:])

    def _checked(self, inv: context.Invocation) -> Result:
        """Run interp, restore every map, the invocation's memory and the random state,
        then run this engine; the clock stands still for both runs unless fixed."""
        rt = self.program.runtime
        maps = list(rt.maps.values())
        map_states, inv_state, rng_state, trace_len = (
            [m.snapshot() for m in maps], inv.snapshot(), rt.rng.getstate(), len(rt.trace_lines))
        frozen = rt.fixed_clock_ns is None
        if frozen:
            rt.fixed_clock_ns = rt.clock_ns()
        try:
            reference = self.program.compile("interp")._run(inv)
            expected = [m.contents() for m in maps]
            for m, state in zip(maps, map_states):
                m.restore(state)
            inv.restore(inv_state)
            rt.rng.setstate(rng_state)
            del rt.trace_lines[trace_len:]
            result = self._run(inv)
        finally:
            if frozen:
                rt.fixed_clock_ns = None
        problems = []
        if reference.r0 != result.r0:
            problems.append(f"r0 0x{result.r0:x} != interp 0x{reference.r0:x}")
        if reference.memory != result.memory:
            problems.append("memory after the run differs from interp" + _first_difference(
                result.memory, reference.memory))
        for m, want in zip(maps, expected):
            got = m.contents()
            if got != want:
                problems.append(f"map '{m.name}' differs from interp" + _first_difference(got, want))
        if problems:
            raise BpfMismatchError(f"{self.engine_name}: " + "; ".join(problems))
        return result

    def __call__(self, *args: int) -> int:
        return self.executable(*args)


def _first_difference(got: Any, want: Any) -> str:
    """Where two memories or map contents first differ, for mismatch messages."""
    if isinstance(got, dict) and isinstance(want, dict):
        for k in sorted(set(got) | set(want), key=repr):
            if got.get(k) != want.get(k):
                show = (lambda v: v.hex() if isinstance(v, bytes) else repr(v))
                key = k.hex() if isinstance(k, bytes) else repr(k)
                return f" (key {key}: {show(got.get(k))} != interp {show(want.get(k))})"
        return ""
    if isinstance(got, bytes) and isinstance(want, bytes):
        if len(got) != len(want):
            return f" ({len(got)} bytes != interp {len(want)})"
        i = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        return f" (first at byte {i}: {got[i:i + 8].hex()} != interp {want[i:i + 8].hex()})"
    return f" ({got!r} != interp {want!r})"


def compile_program(program, engine: str = "interp", **options: Any) -> CompiledProgram:
    spec = parse_engine(engine)
    eng = _make_engine(spec, **options)
    return CompiledProgram(program, spec.name, eng.compile(program), eng, options)
