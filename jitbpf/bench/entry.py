"""The only place that knows how a compiled program is entered below the public API.

The harness times generated code from a native loop, so it needs the native entry
point and its arguments, and the kernel's BPF_PROG_TEST_RUN with its own ``repeat``.
Neither is public API yet (per-thread run state and ``CompiledProgram.run_many`` are
coming): when they land, these functions change and nothing else does.

Both work by letting the engine do all of its per-run set-up (regions mapped, run
state reset, helpers reachable, the fault guard armed) through ``CompiledProgram.invoke``
and replacing only its one innermost call: the native call of the entry (whose sixth
argument is the thread's run state), or the test-run system call. The N runs of a batch
share one run state, so timed programs are compiled without a run budget.
"""

from __future__ import annotations

import time
from typing import Callable

from ..errors import BpfEngineError

#: batch(entry, args, call) -> r0: ``entry`` and ``args`` are what the engine would call
#: once; ``call(function, args)`` calls native code the way the engine does.
Batch = Callable[[int, tuple, Callable[[int, tuple], int]], int]


def _native_code(compiled):
    """The loaded native image of an llvm or direct program (NativeCode)."""
    code = compiled.executable
    if not (hasattr(code, "entry_address") and hasattr(code, "_enter") and hasattr(code, "guard")):
        raise BpfEngineError(f"{compiled.engine_name}: not native code (no entry point to time)")
    return code


def native_entry(compiled, invocation, batch: Batch) -> int:
    """Run ``batch`` where ``compiled`` would make its one native call for ``invocation``."""
    code = _native_code(compiled)
    call = code._enter

    def enter(address: int, args: tuple, state) -> int:
        return batch(address, (*args, state.address), lambda function, a: call(function, a, state))
    code._enter = enter
    try:
        return compiled.invoke(invocation)
    finally:
        del code._enter


def kernel_batch(compiled, invocation, repeat: int) -> tuple[int, int, int, int]:
    """One BPF_PROG_TEST_RUN of ``repeat`` runs: (r0, thread CPU ns, wall ns, the kernel's
    own ns per run) with the clocks read around the system call alone."""
    kernel = compiled.executable
    measured = {}
    test_run = kernel._test_run

    def timed(loaded, **kw):
        c, w = time.thread_time_ns(), time.perf_counter_ns()
        run = test_run(loaded, **kw)
        measured["cpu"], measured["wall"] = time.thread_time_ns() - c, time.perf_counter_ns() - w
        return run
    kernel.repeat, kernel._test_run = repeat, timed
    try:
        r0 = compiled.invoke(invocation)
    finally:
        kernel.repeat = 1
        del kernel._test_run
    return r0, measured["cpu"], measured["wall"], kernel.last_run.duration_ns


def kernel_load(compiled) -> None:
    """Load the program into the kernel now (BPF_PROG_LOAD: verifier and JIT), as its
    first run would."""
    compiled.executable.load()
