"""Hostile programs: every attack ends in a jitbpf error, the targeted memory is unchanged
and the process keeps working (issues 11 and 12). Native code runs in this very process,
so a regression here would show up as a crashed test worker.

Two layers stand in the way. By default generated code is verified first and a refused
program never runs (test_the_verifier_refuses_what_it_can_see); the run time's checks
stand behind it, for what the verifier cannot prove (accesses to raw input memory) and
for everything when ``verify=False``: most tests here attack that layer, unverified."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
import threading
import time

import pytest

import jitbpf
from jitbpf import BpfRuntimeError, BpfVerifierError
from jitbpf.backends import abi
from jitbpf.engines import available_engines

import conftest

ENGINES = [e for e in available_engines() if e != "kernel"]
GENERATED = [e for e in ENGINES if e != "interp"]


UNVERIFIED = {"verify": False}


def run_asm(text, mem=None, engine="interp", **options):
    """Run ``text`` on the run time's layer alone (unverified)."""
    return conftest.run_asm(text, mem, engine, **UNVERIFIED, **options)


def compile_unverified(text: str, engine: str, **options):
    return jitbpf.assemble(text).program().compile(engine, **UNVERIFIED, **options)


def healthy(engine: str) -> None:
    """The engine still runs an ordinary program correctly (verified, by default)."""
    assert conftest.run_asm("mov %r0, 40\nadd %r0, 2\nexit", engine=engine).r0 == 42


def _abort_address() -> int:
    return ctypes.cast(ctypes.CDLL(None).abort, ctypes.c_void_p).value


# name -> (program, the verifier's refusal, or None where only the run time can tell)
ATTACKS = {
    "input+64": ("mov %r0, 0\nstdw [%r1+64], 1\nexit", None),
    "r10-520": ("mov %r0, 0\nstdw [%r10-520], 1\nexit", "invalid write to stack R10 off=-520 size=8"),
    "r10-4096": ("mov %r0, 0\nstdw [%r10-4096], 1\nexit", "invalid write to stack R10 off=-4096 size=8"),
    "r10+8": ("mov %r0, 0\nstdw [%r10+8], 1\nexit", "invalid write to stack R10 off=8 size=8"),
    "python-object": ("lddw %r1, 0x7f0000001000\nstb [%r1+0], 0x41\nmov %r0, 0\nexit",
                      "R1 invalid mem access 'scalar'"),
    "return-address": (f"lddw %r2, {_abort_address():#x}\nstxdw [%r10+8], %r2\nmov %r0, 0\nexit",
                       "invalid write to stack R10 off=8 size=8"),
    "guessed-address": ("ldxdw %r1, [%r1+0]\nstdw [%r1+0], 0x7ffffff\nmov %r0, 0\nexit",
                        "R1 invalid mem access 'scalar'"),
    "code": ("lddw %r1, func(f)\nstdw [%r1+0], 0\ncall local f\nexit\nf:\nmov %r0, 7\nexit",
             "R1 invalid mem access 'func'"),
}


@pytest.mark.parametrize("engine", GENERATED)
@pytest.mark.parametrize("attack", ATTACKS)
def test_the_verifier_refuses_what_it_can_see(engine, attack):
    """Default options: refused before any code is generated, with the verifier's message
    and the way to run it anyway; what it cannot see is caught at run time."""
    text, refusal = ATTACKS[attack]
    program = jitbpf.assemble(text).program()
    if refusal is None:
        with pytest.raises(BpfRuntimeError, match="out-of-bounds write"):
            program.compile(engine).run(bytes(16))
    else:
        with pytest.raises(BpfVerifierError, match=refusal) as err:
            program.compile(engine)
        assert str(err.value).endswith("(verify=False, or --no-verify, runs it anyway, bounds-checked)")
    healthy(engine)


# ----------------------------------------------------------------------------- memory

@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("store, what", [
    ("stdw [%r1+64], 1", "past the 16-byte input"),
    ("stdw [%r10-520], 1", "below the frame, in a dead one"),
    ("stdw [%r10-4100], 1", "below the whole stack"),
    ("stdw [%r10+8], 1", "above the stack, where the host stack used to be"),
], ids=["input+64", "r10-520", "r10-4100", "r10+8"])
def test_stores_outside_their_memory_are_errors(engine, store, what):
    mem = bytes(range(16))
    with pytest.raises(BpfRuntimeError, match="out-of-bounds write of 8 bytes") as err:
        compile_unverified(f"mov %r0, 0\n{store}\nexit", engine).run(mem)
    assert err.value.pc == 1, what
    healthy(engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_store_cannot_reach_python_objects(engine):
    target = bytes(b"untouched bytes object")
    address = id(target) + sys.getsizeof(b"") - 1          # where CPython keeps the characters
    assert ctypes.string_at(address, len(target)) == target
    text = f"lddw %r1, {address:#x}\nstb [%r1+0], 0x41\nmov %r0, 0\nexit"
    with pytest.raises(BpfRuntimeError, match="out-of-bounds write of 1 byte"):
        run_asm(text, engine=engine)
    assert target == b"untouched bytes object"
    healthy(engine)


@pytest.mark.parametrize("engine", GENERATED)
def test_a_return_address_cannot_be_planted(engine):
    """Storing a libc function's address where the host stack's return addresses were:
    an error, and nothing jumps anywhere."""
    abort = _abort_address()
    text = f"lddw %r2, {abort:#x}\nstxdw [%r10+8], %r2\nstxdw [%r10+16], %r2\nmov %r0, 0\nexit"
    with pytest.raises(BpfRuntimeError, match="out-of-bounds write"):
        run_asm(text, engine=engine)
    healthy(engine)


# ----------------------------------------------------------------------------- run state

@pytest.mark.parametrize("engine", GENERATED)
@pytest.mark.parametrize("field, name", [(abi.RUN_BUDGET, "budget"), (abi.RUN_DEPTH, "depth"),
                                         (abi.RUN_UNWIND, "unwind"), (abi.RUN_SP, "stack pointer"),
                                         (abi.RUN_TABLE, "region table")])
def test_run_state_is_out_of_reach(engine, field, name):
    """The program is handed the address of one of its own run state's fields (as if it
    had guessed it) and overwrites it: an error, and the field does not hold the value."""
    fn = compile_unverified(ATTACKS["guessed-address"][0], engine, budget=1000)
    state = fn.executable.run_state()            # this thread's, the one the run uses
    with pytest.raises(BpfRuntimeError, match="out-of-bounds write") as err:
        fn.run((state.address + field).to_bytes(8, "little"))
    assert err.value.pc == 1, name
    assert int.from_bytes(state.view[field:field + 8], "little") != 0x7FFFFFF, name
    healthy(engine)


# ----------------------------------------------------------------------------- time

LOOP = "mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit"


@pytest.mark.parametrize("engine", ENGINES)
def test_an_endless_loop_ends_by_default(engine):
    """Unverified: the budget ends what the verifier does not refuse (or was not asked)."""
    with pytest.raises(BpfRuntimeError, match="run budget of 1000000 exceeded") as err:
        run_asm(LOOP, engine=engine)
    assert err.value.pc == 1
    healthy(engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_time_limit_ends_an_unbudgeted_run(engine):
    fn = compile_unverified(LOOP, engine, budget=None, timeout=0.2)
    start = time.monotonic()
    with pytest.raises(BpfRuntimeError, match="exceeded its time limit"):
        fn.run()
    assert time.monotonic() - start < 5
    healthy(engine)


@pytest.mark.parametrize("opt", [1, 2, 3])
def test_a_time_limit_ends_an_unbudgeted_run_at_every_llvm_level(opt):
    """O3's LICM would keep the budget cell in a register (blind to the watchdog's store)
    and compute this loop's end in closed form: a budget error instead of the time limit."""
    fn = compile_unverified(LOOP, "llvm", opt=opt, budget=None, timeout=0.2)
    with pytest.raises(BpfRuntimeError, match="exceeded its time limit"):
        fn.run()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGINT needs the main thread")
@pytest.mark.parametrize("engine", ENGINES)
def test_ctrl_c_interrupts_a_native_run(engine):
    fn = compile_unverified(LOOP, engine, budget=None, timeout=20)     # (a hang guard)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)     # even where SIGINT is ignored
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            fn.run()
            time.sleep(5)              # (only if the run ended without noticing: the signal lands here)
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 4
    healthy(engine)


# ----------------------------------------------------------------------------- emulated code

@pytest.mark.parametrize("engine", [e for e in GENERATED if "arm64" in e or "@unicorn" in e])
@pytest.mark.parametrize("checked", [True, False], ids=["default", "unchecked"])
def test_emulated_code_is_read_only(engine, checked):
    text = ATTACKS["code"][0]
    options = {} if checked else {"bounds_check": False}
    match = "out-of-bounds write" if checked else "write to read-only memory"
    with pytest.raises(BpfRuntimeError, match=match):
        run_asm(text, engine=engine, **options)
    assert run_asm(text.replace("stdw [%r1+0], 0\n", ""), engine=engine).r0 == 7


# ----------------------------------------------------------------------------- threads

@pytest.mark.parametrize("engine", ENGINES)
def test_threads_running_one_program_get_their_own_results(engine):
    """Four threads run one compiled program (a loop and a bpf-to-bpf call over its own
    input) at once: every result is that thread's input's."""
    text = """
        ldxdw %r6, [%r1+0]
        mov %r0, 0
        mov %r7, 0
    loop:
        add %r0, %r6
        add %r7, 1
        jlt %r7, 200, loop
        mov %r1, %r0
        call local double
        exit
    double:
        mov %r0, %r1
        lsh %r0, 1
        exit
    """
    fn = jitbpf.assemble(text).program().compile(engine)
    errors, results = [], {}

    def worker(k: int) -> None:
        try:
            results[k] = [fn.run(k.to_bytes(8, "little")).r0 for _ in range(25)]
        except Exception as e:           # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {k: [400 * k] * 25 for k in range(1, 5)}


# ----------------------------------------------------------------------------- leaks

def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.parametrize("engine", GENERATED)
def test_dropped_programs_are_freed(engine):
    """500 programs compiled, run and dropped: memory stays flat (the first 50 warm up
    caches and allocators); verified, as by default."""
    prog = jitbpf.assemble("stdw [%r10-8], 1\nldxdw %r0, [%r10-8]\ncall 7\nexit").program()

    def churn(n: int) -> None:
        for _ in range(n):
            prog.compile(engine).run()
        gc.collect()
    churn(50)
    before = _rss()
    churn(500)
    grown = _rss() - before
    assert grown < 40 << 20, f"{grown >> 20} MiB more after 500 programs"
