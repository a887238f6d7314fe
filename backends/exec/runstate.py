"""The run state of native and emulated code: one per thread and loaded image.

A run state is the page ``rs`` points to (fields ``abi.RUN_*``: unwind cell, call
depth, budget, stack pointers, the region table of bounds checks) and the BPF stack,
8 frames x 512 bytes between two guard pages. Neither is reachable from BPF: the page
is never a region of the address space, and the stack is one only while a run is on
(helpers receive pointers into it). A run started while another one of the same image
is on in the same thread (a helper running the program again) saves and restores the
fields of the outer one.
"""

from __future__ import annotations

import ctypes
import struct

from jitbpf.errors import BpfRuntimeError
from jitbpf.interpreter import budget_error
from jitbpf.isa import MAX_CALL_DEPTH, STACK_SIZE
from jitbpf.runtime import HostBuffer, Region
from jitbpf.runtime.memory import StackRegion

from .. import abi

STACK_BYTES = STACK_SIZE * MAX_CALL_DEPTH
_HEADER = abi.RUN_COUNT                      # the fields saved around a nested run


class RunState:
    def __init__(self, budget: int | None, bounds_check: bool, stack_fill: int = 0):
        self.budget, self.bounds_check, self.stack_fill = budget, bounds_check, stack_fill
        self.page = HostBuffer(abi.RUN_SIZE)
        self.stack = HostBuffer(STACK_BYTES, guard=True)
        self.view = self.page.view
        # Live frames only: from the run's stack pointer (rs->sp, the floor of the deepest
        # frame) up; the checks in generated code test the same range.
        self.stack_region = StackRegion(self.stack, lambda: struct.unpack_from("<Q", self.view, abi.RUN_SP)[0])
        self.address = self.page.address
        self.unwind = self.view[abi.RUN_UNWIND:abi.RUN_UNWIND + 8]
        self.active = 0

    def begin(self, rt) -> bytes | None:
        """Prepare a run; returns what ``end`` restores (for a nested run)."""
        saved = bytes(self.view[:_HEADER]) if self.active else None
        if not self.active:
            top = self.stack.address + STACK_BYTES
            struct.pack_into("<QQqQQQQQ", self.view, 0, 0, 0, abi.UNLIMITED if self.budget is None else self.budget,
                             top, top, abi.STOP_NONE, 0, rt.cpu)
            ctypes.memset(self.stack.address, self.stack_fill, STACK_BYTES)
        self.active += 1
        if self.bounds_check:
            self.fill_table(rt.memory.regions)
        return saved

    def end(self, saved: bytes | None) -> None:
        self.active -= 1
        if saved is not None:
            self.view[:_HEADER] = saved

    def fill_table(self, regions: list[Region], first: tuple[int, int, bool] | None = None) -> None:
        """The regions a bounds check tests (the stack is tested on its own: its floor
        moves); ``first``: an entry (start, end, writable) before them, which native code
        may rewrite between runs (the records loop's current record)."""
        entries = [] if first is None else [first]
        entries += [(r.address, r.end, r.writable) for r in regions if not isinstance(r, StackRegion)]
        entries = entries[:abi.TABLE_ENTRIES]
        struct.pack_into("<Q", self.view, abi.RUN_COUNT, len(entries))
        for i, (start, end, writable) in enumerate(entries):
            struct.pack_into("<QQQ", self.view, abi.RUN_TABLE + abi.TABLE_ENTRY * i, start, end, int(writable))

    def stop(self, reason: int) -> None:
        """Cut the run short at its next budget tick (from another thread: Ctrl-C, timeout)."""
        struct.pack_into("<Q", self.view, abi.RUN_STOP, reason)
        struct.pack_into("<q", self.view, abi.RUN_BUDGET, -(1 << 62))

    def spent(self) -> BaseException | None:
        """Why the run ended at a tick (the tick stored its slot and unwound), if it did:
        the budget's error, the time limit's, or KeyboardInterrupt for Ctrl-C. Clears it."""
        slot = struct.unpack_from("<Q", self.view, abi.RUN_SPENT)[0]
        if not slot:
            return None
        struct.pack_into("<Q", self.view, abi.RUN_UNWIND, 0)
        struct.pack_into("<Q", self.view, abi.RUN_SPENT, 0)
        pc = slot - 1
        reason = struct.unpack_from("<Q", self.view, abi.RUN_STOP)[0]
        if reason == abi.STOP_INTERRUPT:
            _let_python_handle_signals()       # raises KeyboardInterrupt if the signal is still pending
            return KeyboardInterrupt()         # its handler ran in a callback, which swallowed it
        if reason == abi.STOP_TIMEOUT:
            return BpfRuntimeError("the run exceeded its time limit", pc=pc)
        return budget_error(self.budget, pc)


def _let_python_handle_signals() -> None:
    """A Python function's entry is where a pending signal's handler runs."""
    return None
