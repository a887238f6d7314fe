"""The native batch loop: one native call runs a loaded program over many inputs.

``jitbpf_run_batch(struct batch *b)`` (LLVM IR below, compiled once per process for the
host by llvmlite and linked by our linker) calls the entry of a native image for every
input ``i`` in ``[b->i, b->count)`` ``b->repeat`` times (the first input from repeat
``b->k``), with the input's r1..r5 (``b->args[5 * i ..]``) and the run state ``b->rs``.
Before each run it does what :meth:`RunState.begin` does before a single one: zero the
unwind cell, call depth and spent slot, reset both stack pointers and the budget, and
zero the BPF stack. ``b->out[i]`` receives the r0 of the input's last run.

It stops early, recording where (``b->i``, ``b->k``), the run's r0 and ``b->status`` = 1,
when a run leaves with the unwind cell set (a helper ended or failed the program, a
budget tick fired) or when a stop was requested (Ctrl-C, time limit: the watchdog's
``RunState.stop``); in the second case it marks the run spent itself, so the executor
reports it exactly as it reports a tick that found the stop. The budget is stored with
a full barrier (``seq_cst``) before the stop field is read, so a stop the watchdog
requests while the loop resets the budget is never lost.

Struct layout (u64 fields, byte offsets ``B_*``) is shared with :mod:`.native`.
"""

from __future__ import annotations

import ctypes
import mmap
import threading

from jitbpf.errors import BpfEngineError
from jitbpf.targets import HOST_ARCH

from .. import abi

SYMBOL = "jitbpf_run_batch"
B_ENTRY, B_RS, B_ARGS, B_COUNT, B_REPEAT, B_OUT, B_BUDGET, B_STACK, B_STACK_BYTES, B_I, B_K, B_STATUS, B_R0 = \
    (8 * i for i in range(13))
B_SIZE = 8 * 13
ARGS_PER_INPUT = 5


class Fields:
    """A struct batch in host memory, indexed by byte offset (``B_*``)."""

    def __init__(self) -> None:
        self.words = (ctypes.c_uint64 * (B_SIZE // 8))()
        self.address = ctypes.addressof(self.words)

    def __getitem__(self, offset: int) -> int:
        return self.words[offset // 8]

    def __setitem__(self, offset: int, value: int) -> None:
        self.words[offset // 8] = value

IR = f"""
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

define i64 @{SYMBOL}(i64 %bp, i64 %u1, i64 %u2, i64 %u3, i64 %u4, i64 %u5) {{
entry:
  %b = inttoptr i64 %bp to ptr
  %fn = load ptr, ptr %b
  %p.rs = getelementptr i8, ptr %b, i64 {B_RS}
  %rsi = load i64, ptr %p.rs
  %rs = inttoptr i64 %rsi to ptr
  %p.args = getelementptr i8, ptr %b, i64 {B_ARGS}
  %args = load ptr, ptr %p.args
  %p.count = getelementptr i8, ptr %b, i64 {B_COUNT}
  %count = load i64, ptr %p.count
  %p.repeat = getelementptr i8, ptr %b, i64 {B_REPEAT}
  %repeat = load i64, ptr %p.repeat
  %p.out = getelementptr i8, ptr %b, i64 {B_OUT}
  %out = load ptr, ptr %p.out
  %p.budget = getelementptr i8, ptr %b, i64 {B_BUDGET}
  %budget = load i64, ptr %p.budget
  %p.stack = getelementptr i8, ptr %b, i64 {B_STACK}
  %stack = load ptr, ptr %p.stack
  %p.sbytes = getelementptr i8, ptr %b, i64 {B_STACK_BYTES}
  %sbytes = load i64, ptr %p.sbytes
  %p.i = getelementptr i8, ptr %b, i64 {B_I}
  %i0 = load i64, ptr %p.i
  %p.k = getelementptr i8, ptr %b, i64 {B_K}
  %k0 = load i64, ptr %p.k
  %p.status = getelementptr i8, ptr %b, i64 {B_STATUS}
  %p.r0 = getelementptr i8, ptr %b, i64 {B_R0}
  %stacki = ptrtoint ptr %stack to i64
  %top = add i64 %stacki, %sbytes
  %rs.depth = getelementptr i8, ptr %rs, i64 {abi.RUN_DEPTH}
  %rs.budget = getelementptr i8, ptr %rs, i64 {abi.RUN_BUDGET}
  %rs.top = getelementptr i8, ptr %rs, i64 {abi.RUN_STACK_TOP}
  %rs.sp = getelementptr i8, ptr %rs, i64 {abi.RUN_SP}
  %rs.stop = getelementptr i8, ptr %rs, i64 {abi.RUN_STOP}
  %rs.spent = getelementptr i8, ptr %rs, i64 {abi.RUN_SPENT}
  %empty = icmp uge i64 %i0, %count
  br i1 %empty, label %done, label %loop

loop:
  %i = phi i64 [ %i0, %entry ], [ %inext, %next ]
  %k = phi i64 [ %k0, %entry ], [ %knext, %next ]
  store i64 0, ptr %rs
  store i64 0, ptr %rs.depth
  store i64 0, ptr %rs.spent
  store i64 %top, ptr %rs.top
  store i64 %top, ptr %rs.sp
  store atomic i64 %budget, ptr %rs.budget seq_cst, align 8
  %stop = load atomic i64, ptr %rs.stop seq_cst, align 8
  %stopped = icmp ne i64 %stop, 0
  br i1 %stopped, label %cut, label %go

cut:
  store i64 1, ptr %rs.spent
  store i64 1, ptr %rs
  store i64 %i, ptr %p.i
  store i64 %k, ptr %p.k
  store i64 1, ptr %p.status
  store i64 0, ptr %p.r0
  ret i64 0

go:
  call void @llvm.memset.p0.i64(ptr %stack, i8 0, i64 %sbytes, i1 false)
  %slot = mul i64 %i, {ARGS_PER_INPUT}
  %pa0 = getelementptr i64, ptr %args, i64 %slot
  %a0 = load i64, ptr %pa0
  %pa1 = getelementptr i64, ptr %pa0, i64 1
  %a1 = load i64, ptr %pa1
  %pa2 = getelementptr i64, ptr %pa0, i64 2
  %a2 = load i64, ptr %pa2
  %pa3 = getelementptr i64, ptr %pa0, i64 3
  %a3 = load i64, ptr %pa3
  %pa4 = getelementptr i64, ptr %pa0, i64 4
  %a4 = load i64, ptr %pa4
  %r = call i64 %fn(i64 %a0, i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %rsi)
  %uw = load i64, ptr %rs
  %left = icmp ne i64 %uw, 0
  br i1 %left, label %unwound, label %next

unwound:
  store i64 %i, ptr %p.i
  store i64 %k, ptr %p.k
  store i64 1, ptr %p.status
  store i64 %r, ptr %p.r0
  ret i64 0

next:
  %po = getelementptr i64, ptr %out, i64 %i
  store i64 %r, ptr %po
  %k1 = add i64 %k, 1
  %last = icmp uge i64 %k1, %repeat
  %knext = select i1 %last, i64 0, i64 %k1
  %i1 = add i64 %i, 1
  %inext = select i1 %last, i64 %i1, i64 %i
  %fin = icmp uge i64 %inext, %count
  br i1 %fin, label %done, label %loop

done:
  store i64 %count, ptr %p.i
  store i64 0, ptr %p.k
  store i64 0, ptr %p.status
  ret i64 0
}}
"""


class BatchLoop:
    """The loop compiled for the host and placed in executable memory (once per process)."""

    def __init__(self) -> None:
        from ..link import link_elf
        from ..llvm.compile import LLVMOptions, optimised, target_machine

        from .native import _libc, _round
        tm = target_machine(HOST_ARCH, 2)
        image = link_elf(tm.emit_object(optimised(IR, HOST_ARCH, False, LLVMOptions(opt=2))))
        size = _round(len(image))               # mapped for the life of the process
        base = _libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if base in (None, ctypes.c_void_p(-1).value):
            raise BpfEngineError("mmap for the batch loop failed")
        libc = ctypes.CDLL(None)
        code = image.load(base, lambda name: ctypes.cast(getattr(libc, name), ctypes.c_void_p).value)
        ctypes.memmove(base, code, len(code))
        if _libc.mprotect(base, size, mmap.PROT_READ | mmap.PROT_EXEC):
            raise BpfEngineError("mprotect for the batch loop failed")
        self.address = image.address_of(base, SYMBOL)


_loop: BatchLoop | None = None
_lock = threading.Lock()


def batch_loop() -> BatchLoop:
    global _loop
    with _lock:
        if _loop is None:
            _loop = BatchLoop()
        return _loop
