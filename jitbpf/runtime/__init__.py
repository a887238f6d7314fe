"""The runtime every engine shares: address space, helpers, maps, trace output.

One :class:`Runtime` belongs to a loaded object; all engines compiled from it
see the same maps and memory, so a cross-check can compare them.
"""

from __future__ import annotations

import os
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import BpfRuntimeError
from ..isa import MASK64
from .helpers import Helper, HelperRegistry, default_registry
from .memory import AddressSpace, HostBuffer, Region

__all__ = ["Runtime", "AddressSpace", "HostBuffer", "Region", "Helper", "HelperRegistry"]


@dataclass
class Task:
    """The 'current task' helpers such as bpf_get_current_pid_tgid report."""

    pid: int = field(default_factory=os.getpid)
    tgid: int = field(default_factory=os.getpid)
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    comm: bytes = b"jitbpf"


class RunContext:
    """What one thread's current run shares with the helpers it calls."""

    def __init__(self) -> None:
        # Set by the engine while a program runs: calls a BPF function pointer
        # (bpf_loop and friends): invoke(pointer, r1..r5) -> r0.
        self.invoke: Callable[..., int] | None = None
        self.engine: str | None = None       # name of the engine running right now
        self.tail_calls = 0                  # bpf_tail_calls taken in the current run
        self.pending_tail_call = None        # (program, ctx) that CompiledProgram.invoke runs next
        # Ending the whole program from inside a helper (bpf_tail_call's "does not return",
        # or a helper error under native code, where exceptions cannot unwind JIT frames):
        # the helper sets a pending exit or error and the run's unwind cell to 1; compiled
        # code tests that cell after every helper call and returns at once, and the engine
        # then calls finish_unwind().
        self.pending_exit: int | None = None
        self.pending_error: BaseException | None = None
        self.unwind: memoryview = memoryview(bytearray(8))   # the native run state's cell, when one runs
        self.state = None                    # the executor's run state (backends.exec.runstate), if any


class Runtime:
    def __init__(self, helpers: HelperRegistry | None = None, seed: int = 0, num_cpus: int = 4):
        self.memory = AddressSpace()
        self.helpers = helpers if helpers is not None else default_registry()
        self.maps: dict = {}                 # name -> map (see runtime.maps)
        self.maps_by_address: dict = {}      # map handle (header address) -> map
        self.num_cpus = num_cpus             # virtual CPUs of percpu maps
        self.cpu = 0                         # the CPU programs run on (bpf_get_smp_processor_id)
        self.task = Task()
        self.compiled: dict = {}             # (program, engine) -> CompiledProgram, for tail calls
        self.trace_lines: list[str] = []     # bpf_trace_printk output
        self.rng = random.Random(seed)
        self.fixed_clock_ns: int | None = None
        # Socket-buffer contexts of the current runs: ctx address -> (data address, length),
        # for LD_ABS/LD_IND.
        self.skb_packets: dict[int, tuple[int, int]] = {}
        # Context objects of the current runs by ctx address (XDP frames for bpf_xdp_adjust_*).
        self.contexts: dict[int, object] = {}
        self._threads = threading.local()

    @property
    def run(self) -> RunContext:
        """This thread's run context (helpers and engines of one thread share it)."""
        ctx = getattr(self._threads, "run", None)
        if ctx is None:
            ctx = self._threads.run = RunContext()
        return ctx

    @property
    def invoke(self) -> Callable[..., int] | None:
        return self.run.invoke

    @invoke.setter
    def invoke(self, value: Callable[..., int] | None) -> None:
        self.run.invoke = value

    @property
    def unwinding(self) -> bool:
        """Whether the running program is leaving (a helper ended or failed it, or native
        code set its unwind cell itself: a spent budget)."""
        run = self.run
        return run.pending_exit is not None or run.pending_error is not None or run.unwind[0] != 0

    @property
    def pending_exit(self) -> int | None:
        return self.run.pending_exit

    def end_program(self, r0: int) -> None:
        """Make the running program return ``r0`` as soon as the current helper returns."""
        run = self.run
        run.pending_exit = r0 & MASK64
        run.unwind[:8] = (1).to_bytes(8, "little")

    def fail_program(self, error: BaseException) -> None:
        """Make the running program stop and raise ``error`` (used by native executors)."""
        run = self.run
        if run.pending_error is None:
            run.pending_error = error
        run.unwind[:8] = (1).to_bytes(8, "little")

    def finish_unwind(self, r0: int) -> int:
        """Called by an engine when the program returned: raise a pending error, or
        return the pending exit value instead of r0; clears the unwind state."""
        run = self.run
        error, exit_value = run.pending_error, run.pending_exit
        run.pending_error = run.pending_exit = None
        run.unwind[:8] = bytes(8)
        if error is not None:
            raise error
        return r0 if exit_value is None else exit_value

    def add_map(self, m) -> None:
        """Register a map: by name, by handle, and its storage as memory regions."""
        self.maps[m.name] = m
        self.maps_by_address[m.address] = m
        for region in m.regions:
            self.memory.add(region)

    def map_at(self, address: int, pc: int | None = None):
        """The map whose handle is ``address`` (what lddw map_fd loaded)."""
        m = self.maps_by_address.get(address)
        if m is None:
            raise BpfRuntimeError(f"0x{address:x} is not a map", pc=pc)
        return m

    def clock_ns(self) -> int:
        return self.fixed_clock_ns if self.fixed_clock_ns is not None else time.monotonic_ns()

    def call_helper(self, id: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        return self.helpers.get(id).func(self, r1, r2, r3, r4, r5) & MASK64

    def skb_window(self, ctx: int, pc: int | None = None) -> tuple[int, int]:
        try:
            return self.skb_packets[ctx]
        except KeyError:
            raise BpfRuntimeError("LD_ABS/LD_IND need r6 to be a socket-buffer context", pc=pc) from None

    @contextmanager
    def mapped(self, *regions: Region) -> Iterator[None]:
        """Make regions visible to the program (and helpers) for the duration of a run."""
        for r in regions:
            self.memory.add(r)
        try:
            yield
        finally:
            for r in regions:
                self.memory.remove(r)
