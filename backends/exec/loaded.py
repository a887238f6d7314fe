"""What the two executors share: placing an Image, the run protocol, run states per thread."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from jitbpf.errors import BpfRuntimeError
from jitbpf.runtime import Runtime

from .. import abi
from ..link import Image
from .runstate import RunState
from .watchdog import watchdog


@dataclass(frozen=True)
class RunOptions:
    """What a loaded image needs to know about its runs (the pipeline's options)."""

    budget: int | None = None
    bounds_check: bool = False
    timeout: float | None = None          # seconds per run
    stack_proven: bool = False            # verified to read only stack it wrote (pipeline.reads_own_stack)
    stack_fill: int = 0                   # the BPF stack's bytes when a run starts


class LoadedCode:
    """An Image placed at ``base`` for a runtime; call it with r1..r5 to run the entry.

    Subclasses say how to run from the outermost frame (``_enter``) and how to run a
    callback from inside a helper (``_nested``), both with the thread's run state. During
    a run ``rt.invoke`` reaches this code's functions; a pending helper error or program
    end is settled by ``Runtime.finish_unwind``.
    """

    image: Image
    rt: Runtime
    base: int

    def _place(self, image: Image, rt: Runtime, base: int, entry: str, function_symbols: list[str] | None,
               options: RunOptions) -> None:
        self.image, self.rt, self.base, self.options = image, rt, base, options
        self.entry_address = image.address_of(base, entry)
        self.functions = {image.address_of(base, n) for n in (function_symbols or [entry])}
        self._threads = threading.local()

    def run_state(self) -> RunState:
        """This thread's run state for this image, made on first use."""
        state = getattr(self._threads, "state", None)
        if state is None:
            state = self._threads.state = self._new_run_state()
        return state

    def _new_run_state(self) -> RunState:
        return RunState(self.options.budget, self.options.bounds_check, self.options.stack_fill)

    def _enter(self, address: int, args: tuple[int, ...], state: RunState) -> int:
        raise NotImplementedError

    def _nested(self, address: int, args: tuple[int, ...], state: RunState) -> int:
        raise NotImplementedError

    def __call__(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        return self._outermost(lambda state: self._single((r1, r2, r3, r4, r5), state))

    def _single(self, args: tuple[int, ...], state: RunState) -> int:
        r0 = self._enter(self.entry_address, args, state)
        spent = state.spent()
        if spent is not None:
            self.rt.finish_unwind(0)
            raise spent
        return self.rt.finish_unwind(r0)

    def run_batch(self, args_list: list[tuple[int, ...]], repeat: int = 1) -> list[int]:
        """For every r1..r5 tuple, ``repeat`` runs; the r0 of each tuple's last run. Code
        with a native batch loop (``_batch``) makes one native call for all of them."""
        if not args_list or repeat < 1:
            return [0] * len(args_list) if repeat < 1 else []
        state = self.run_state()
        batch = getattr(self, "_batch", None)
        if batch is None or state.active:
            out = []
            for args in args_list:
                for _ in range(repeat):
                    r0 = self(*args)
                out.append(r0)
            return out
        return self._outermost(lambda s: batch(args_list, repeat, s))

    def run_records(self, buffer, chunk: int = 1 << 16):
        """The r0 of one run per record of ``buffer`` (a jitbpf.runtime.RecordBuffer), an
        array('Q') from a native records loop, or None where this code has none (the caller then
        runs the records one by one)."""
        records = getattr(self, "_records", None)
        if records is None or self.run_state().active:
            return None
        return self._outermost(lambda s: records(buffer, chunk, s))

    def _outermost(self, body):
        """``body(state)`` with this thread's run state begun, the stack mapped, helpers
        pointed at this code and the watchdog watching; any pending unwind settled."""
        rt, state = self.rt, self.run_state()
        run = rt.run
        outer = run.invoke, run.unwind, run.state
        run.invoke, run.unwind, run.state = self.invoke, state.unwind, state
        try:
            with rt.mapped(state.stack_region), self._watched(state):
                saved = state.begin(rt)
                try:
                    return body(state)
                finally:
                    state.end(saved)
        except BpfRuntimeError:
            rt.finish_unwind(0)            # a helper's error, if any, explains the fault better
            raise
        finally:
            run.invoke, run.unwind, run.state = outer

    def _watched(self, state: RunState):
        """The watchdog's eye on an outermost run (time limit, Ctrl-C on the main thread)."""
        if state.active:
            return contextlib.nullcontext()
        return watchdog().watch(state, self.options.timeout)

    def invoke(self, pointer: int, *args: int) -> int:
        """Call a BPF function pointer (a function of this image) from a helper."""
        if pointer not in self.functions:
            raise BpfRuntimeError(f"0x{pointer:x} is not a BPF function of this program")
        return self._nested(pointer, args, self.run_state())

    def address(self, symbol: str) -> int:
        return self.image.address_of(self.base, symbol)

    def resolve_data(self, name: str) -> int | None:
        return abi.data_symbol(self.rt, name)
