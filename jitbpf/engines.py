"""What compiling returns: :class:`CompiledProgram` (run it) and :class:`Result`.

Engines are named and compiled by :mod:`jitbpf.pipeline`; this module holds what every
engine's compiled program shares: the run protocol (contexts, tail calls, errors named
by the loaded program's slot and C source line) and the cross-check against ``interp``.
"""

from __future__ import annotations

import array
import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

from . import isa
from .errors import BpfEngineError, BpfError, BpfMismatchError
from .runtime import context
from .targets import ENGINE_NAMES, EngineSpec, parse_engine  # noqa: F401  (the engine names' home)


#: Inputs whose contexts are mapped at once for one native batch call (bounds-checked code
#: tests every mapped region, and the run state's region table has room for ~160).
BATCH_CHUNK = 32


def available_engines() -> list[str]:
    """The engine names usable here: ``kernel`` only where bpf(2) works."""
    return [n for n in ENGINE_NAMES if n != "kernel" or _kernel_works()]


def _kernel_works() -> bool:
    from .kernel.syscall import kernel_available      # one cached probe per process
    return kernel_available()


@dataclass
class Result:
    r0: int
    engine: str
    memory: bytes | None = None            # the input memory after the run
    trace: list[str] = field(default_factory=list)   # bpf_trace_printk lines of this run

    def __int__(self) -> int:
        return self.r0


class CompiledProgram:
    """A program compiled for one engine; ``run`` executes it with a context.

    ``prepared`` is the program the backend received (after the passes), ``options`` the
    engine's resolved options and ``given`` the keyword arguments as passed (tail-call
    targets are compiled with the same ones)."""

    def __init__(self, program, engine_name: str, executable: Callable[..., int], prepared: Any = None,
                 options: Any = None, given: dict[str, Any] | None = None, origin: list[int] | None = None):
        self.program = program
        self.engine_name = engine_name
        self.executable = executable
        self.prepared = prepared
        self.origin = origin if origin is not None else getattr(prepared, "origin", None)
        self.options = options
        self.given = dict(given or {})

    def invoke(self, inv: context.Invocation) -> int:
        """Run with a prepared invocation (its regions mapped for the duration)."""
        rt = self.program.runtime
        run = rt.run
        outer = run.engine, run.tail_calls
        run.engine, run.tail_calls = self.engine_name, 0
        running = self
        try:
            with inv.active(rt):
                r0 = self.executable(*inv.args)
                while run.pending_tail_call is not None:      # bpf_tail_call: run the target next
                    target, ctx = run.pending_tail_call
                    run.pending_tail_call = None
                    key = (target, self.engine_name, tuple(sorted(self.given.items())))
                    running = rt.compiled.get(key)
                    if running is None:
                        running = rt.compiled[key] = target.compile(self.engine_name, **self.given)
                    r0 = running.executable(ctx)
                return r0
        except BpfError as e:
            running._name_source(e)
            raise
        finally:
            run.engine, run.tail_calls = outer
            run.pending_tail_call = None

    def _name_source(self, e: BpfError) -> None:
        """Name the slot of the loaded program (not of the passes' rewrite) and, where BTF
        line info exists, the C source line."""
        if e.pc is None or getattr(e, "at_source", False):
            return
        if self.origin is not None and 0 <= e.pc < len(self.origin):
            e.pc = self.origin[e.pc]
        e.at_source = True
        if e.line is None:
            e.line = self.program.source_line(e.pc)
        e.args = (e._render(),)

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

    def run_many(self, inputs, *, repeat: int = 1, ctx: bytes | None = None) -> list[int]:
        """The r0 of every input, each run ``repeat`` times in a row (r0 of the last run),
        like BPF_PROG_TEST_RUN's ``repeat``: the context is set up once per input, not
        reset between its repeats. An input is what ``run`` takes positionally (memory for
        raw programs, the packet of packet programs, context bytes for the others);
        ``ctx`` gives the context fields of packet programs.

        Native code runs a chunk of inputs in one native call (backends.exec.batch); the
        other engines run one call per run. A program that may tail-call (its object has
        a prog array) runs one ``invoke`` per run, which takes the tail calls. An error
        stops the batch and is raised as ``run`` raises it. A time limit (``timeout``)
        applies to each chunk of native runs as a whole."""
        rt = self.program.runtime
        inputs = list(inputs)
        kind = context.context_kind(self.program.prog_type)
        make = ((lambda data: context.for_program(self.program.prog_type, packet=data, ctx=ctx))
                if kind in ("xdp", "skb") else (lambda data: context.for_program(self.program.prog_type, data)))
        batched = getattr(self.executable, "run_batch", None)
        if any(m.type_name == "prog_array" for m in rt.maps.values()):
            batched = None
        out: list[int] = []
        for start in range(0, len(inputs), BATCH_CHUNK):
            invs = [make(data) for data in inputs[start:start + BATCH_CHUNK]]
            if batched is None:
                for inv in invs:
                    for _ in range(repeat):
                        r0 = self.invoke(inv)
                    out.append(r0)
                continue
            with self._native_runs(), contextlib.ExitStack() as stack:
                for inv in invs:
                    stack.enter_context(inv.active(rt))
                out.extend(batched([inv.args for inv in invs], repeat))
        return out

    @contextlib.contextmanager
    def _native_runs(self):
        """Runs of this engine in one native call: the run knows its engine, tail calls
        start from zero, and an error names the loaded program's slot."""
        run = self.program.runtime.run
        outer = run.engine, run.tail_calls
        run.engine, run.tail_calls = self.engine_name, 0
        try:
            yield
        except BpfError as e:
            self._name_source(e)
            raise
        finally:
            run.engine, run.tail_calls = outer

    def run_records(self, data, *, header: int = 16, length_at: int = 8, as_array: bool = False):
        """The r0 of one run per record of ``data`` (bytes, or a runtime.memory.RecordBuffer
        to reuse one copy over several programs; a little-endian pcap file's body by
        default), each with r1 = the record and r2 = its length: what a raw-memory program
        such as a translated classic filter takes.

        Native code walks the records in one native call when the program calls no
        helpers (nothing outside the program can see the records then); otherwise each
        record is one ``run_many`` input. Equal results either way: a list, or with
        ``as_array`` an array('Q'), which spares a Python int per record (the native
        loop's results are copied as bytes)."""
        from .runtime.memory import RecordBuffer
        if context.context_kind(self.program.prog_type) != "raw":
            raise BpfEngineError(f"run_records takes raw-memory programs, not {self.program.prog_type} programs")
        buffer = data if isinstance(data, RecordBuffer) else RecordBuffer(data, header, length_at)
        native = getattr(self.executable, "run_records", None)
        if native is not None and self.prepared is not None and not any(isa.external_calls(self.prepared.insns)):
            with self._native_runs():
                results = native(buffer)
            if results is not None:
                return results if as_array else results.tolist()
        results = self.run_many(buffer.records())
        return array.array("Q", results) if as_array else results

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
            budget = getattr(self.options, "budget", None)
            reference = self.program.compile("interp", budget=budget)._run(inv)
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
        """Run with r1..r5 as given (no context set up; the caller maps any memory)."""
        try:
            return self.executable(*args)
        except BpfError as e:
            self._name_source(e)
            raise


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
