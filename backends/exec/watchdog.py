"""Cutting native and emulated runs short: time limits and Ctrl-C.

Generated code cannot be interrupted from outside, but it spends its run budget at
every loop head and function entry (``tick``). So the watchdog, a daemon thread, ends a
run by storing a large negative budget and the reason into its run state
(``RunState.stop``); the next tick traps and the run raises. It repeats the store until
the run is over, because the code's own decrement may overwrite one store.

- ``timeout``: a deadline per run.
- SIGINT: while the main thread runs native code (the GIL released, so Python's own
  handler cannot run), a wakeup fd (``signal.set_wakeup_fd``) tells the watchdog; the
  run ends with an error and Python's handler, still pending, then raises
  KeyboardInterrupt as usual. Bytes meant for a wakeup fd set by someone else (asyncio)
  are passed on to it.
"""

from __future__ import annotations

import heapq
import itertools
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from .. import abi

REPEAT = 0.01            # seconds between repeated stores into a run that has not noticed yet


class Watchdog:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.deadlines: list[tuple[float, int, object]] = []      # (when, tie, state)
        self.stopping: dict[int, tuple[object, int]] = {}         # id(state) -> (state, reason)
        self.interruptible: set[object] = set()                   # main-thread runs
        self.order = itertools.count()
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        os.set_blocking(self.read_fd, False)
        self.previous_fd = -1
        threading.Thread(target=self._loop, name="jitbpf-watchdog", daemon=True).start()
        threading.Thread(target=self._signals, name="jitbpf-signals", daemon=True).start()

    # ------------------------------------------------------------------ registering runs
    @contextmanager
    def watch(self, state, timeout: float | None) -> Iterator[None]:
        """Watch one run: its deadline, and Ctrl-C when it runs on the main thread."""
        main = threading.current_thread() is threading.main_thread()
        entry = None
        with self.lock:
            if timeout is not None:
                entry = (time.monotonic() + timeout, next(self.order), state)
                heapq.heappush(self.deadlines, entry)
                self.lock.notify()
            if main:
                self.interruptible.add(state)
        previous = None
        if main:
            try:
                previous = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
                self.previous_fd = previous
            except ValueError:             # not the main interpreter: no Ctrl-C watch
                previous = None
        try:
            yield
        finally:
            if previous is not None:
                signal.set_wakeup_fd(previous)
            with self.lock:
                self.interruptible.discard(state)
                self.stopping.pop(id(state), None)
                if entry is not None and entry in self.deadlines:
                    self.deadlines.remove(entry)
                    heapq.heapify(self.deadlines)

    # ------------------------------------------------------------------ the threads
    def _stop(self, state, reason: int) -> None:
        self.stopping[id(state)] = (state, reason)
        state.stop(reason)
        self.lock.notify()

    def _loop(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                while self.deadlines and self.deadlines[0][0] <= now:
                    _, _, state = heapq.heappop(self.deadlines)
                    self._stop(state, abi.STOP_TIMEOUT)
                for state, reason in list(self.stopping.values()):
                    state.stop(reason)                  # again: the run may have overwritten it
                wait = REPEAT if self.stopping else None
                if self.deadlines:
                    wait = min(wait or 1e9, max(0.0, self.deadlines[0][0] - now))
                self.lock.wait(wait)

    def _signals(self) -> None:
        import select
        while True:
            select.select([self.read_fd], [], [])
            try:
                data = os.read(self.read_fd, 512)
            except BlockingIOError:
                continue
            if self.previous_fd >= 0:
                try:
                    os.write(self.previous_fd, data)
                except OSError:
                    pass
            if signal.SIGINT in data:
                with self.lock:
                    for state in list(self.interruptible):
                        self._stop(state, abi.STOP_INTERRUPT)


_watchdog: Watchdog | None = None
_create = threading.Lock()


def watchdog() -> Watchdog:
    global _watchdog
    if _watchdog is None:
        with _create:
            if _watchdog is None:
                _watchdog = Watchdog()
    return _watchdog
