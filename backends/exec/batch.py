"""The native batch loops: one native call runs a loaded program over many inputs.

``jitbpf_run_batch(struct batch *b)`` (LLVM IR below, compiled once per process for the
host by llvmlite and linked by our linker) calls the entry of a native image for every
input ``i`` in ``[b->i, b->count)`` ``b->repeat`` times (the first input from repeat
``b->k``), with the input's r1..r5 (``b->args[5 * i ..]``) and the run state ``b->rs``.
Before each run it does what :meth:`RunState.begin` does before a single one: zero the
unwind cell, call depth and spent slot, reset both stack pointers and the budget, and
zero the first ``b->clear`` bytes of the BPF stack (all of it, or none for code verified
to read only stack it wrote: ``pipeline.reads_own_stack``). ``b->out[i]`` receives
the r0 of the input's last run.

``jitbpf_run_records(struct batch *b)`` walks a buffer of records instead (``b->args``
the buffer, ``b->size`` its length, resuming at byte ``b->offset``): each record is a
``b->header``-byte header whose u32 at ``b->length_at`` is the length of the bytes that
follow, as in a pcap file. Each runs once with r1 = the record, r2 = its whole length,
and entry 0 of the region table set to the record, so a bounds check admits exactly it.
It stops when ``b->count`` results are out (status 0, ``b->offset`` where to resume), at
the end of the buffer (status 0, offset = size) or at a record that overruns it
(status 2, offset = where it starts).

Both stop early, recording where (``b->i``, ``b->k``), the run's r0 and ``b->status`` = 1,
when a run leaves with the unwind cell set (a helper ended or failed the program, a
budget tick fired) or when a stop was requested (Ctrl-C, time limit: the watchdog's
``RunState.stop``); in the second case they mark the run spent itself, so the executor
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
RECORDS_SYMBOL = "jitbpf_run_records"
(B_ENTRY, B_RS, B_ARGS, B_COUNT, B_REPEAT, B_OUT, B_BUDGET, B_STACK, B_STACK_BYTES, B_I, B_K, B_STATUS, B_R0,
 B_CLEAR, B_SIZE, B_OFFSET, B_HEADER, B_LENGTH_AT) = (8 * i for i in range(18))
B_FIELDS = 18
ARGS_PER_INPUT = 5
STATUS_DONE, STATUS_UNWOUND, STATUS_OVERRUN = 0, 1, 2


class Fields:
    """A struct batch in host memory, indexed by byte offset (``B_*``)."""

    def __init__(self) -> None:
        self.words = (ctypes.c_uint64 * B_FIELDS)()
        self.address = ctypes.addressof(self.words)

    def __getitem__(self, offset: int) -> int:
        return self.words[offset // 8]

    def __setitem__(self, offset: int, value: int) -> None:
        self.words[offset // 8] = value


def _field(name: str, offset: int, ty: str = "i64") -> str:
    return f"  %p.{name} = getelementptr i8, ptr %b, i64 {offset}\n  %{name} = load {ty}, ptr %p.{name}\n"


_PROLOGUE = "".join(_field(n, o, t) for n, o, t in (
    ("fn", B_ENTRY, "ptr"), ("rsi", B_RS, "i64"), ("args", B_ARGS, "ptr"), ("count", B_COUNT, "i64"),
    ("out", B_OUT, "ptr"), ("budget", B_BUDGET, "i64"), ("stack", B_STACK, "ptr"),
    ("sbytes", B_STACK_BYTES, "i64"), ("clear", B_CLEAR, "i64"), ("i0", B_I, "i64"))) + f"""\
  %rs = inttoptr i64 %rsi to ptr
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
"""


def _run(where: str) -> str:
    """Reset the run state, honour a stop request, call the entry with %a0..%a4; on to
    %next with %r, or leave with status 1 (``where``: the stores that say where)."""
    return f"""\
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
{where}  store i64 {STATUS_UNWOUND}, ptr %p.status
  store i64 0, ptr %p.r0
  ret i64 0

go:
  call void @llvm.memset.p0.i64(ptr %stack, i8 0, i64 %clear, i1 false)
  %r = call i64 %fn(i64 %a0, i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %rsi)
  %uw = load i64, ptr %rs
  %left = icmp ne i64 %uw, 0
  br i1 %left, label %unwound, label %next

unwound:
{where}  store i64 {STATUS_UNWOUND}, ptr %p.status
  store i64 %r, ptr %p.r0
  ret i64 0
"""


_AT_INPUT = "  store i64 %i, ptr %p.i\n  store i64 %k, ptr %p.k\n"
_AT_RECORD = "  store i64 %i, ptr %p.i\n  store i64 %off, ptr %p.off\n"

IR = f"""
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

define i64 @{SYMBOL}(i64 %bp, i64 %u1, i64 %u2, i64 %u3, i64 %u4, i64 %u5) {{
entry:
  %b = inttoptr i64 %bp to ptr
{_PROLOGUE}{_field("repeat", B_REPEAT)}{_field("k0", B_K)}\
  %p.i = getelementptr i8, ptr %b, i64 {B_I}
  %p.k = getelementptr i8, ptr %b, i64 {B_K}
  %empty = icmp uge i64 %i0, %count
  br i1 %empty, label %done, label %loop

loop:
  %i = phi i64 [ %i0, %entry ], [ %inext, %next ]
  %k = phi i64 [ %k0, %entry ], [ %knext, %next ]
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
{_run(_AT_INPUT)}
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
  store i64 {STATUS_DONE}, ptr %p.status
  ret i64 0
}}

define i64 @{RECORDS_SYMBOL}(i64 %bp, i64 %u1, i64 %u2, i64 %u3, i64 %u4, i64 %u5) {{
entry:
  %b = inttoptr i64 %bp to ptr
{_PROLOGUE}{_field("size", B_SIZE)}{_field("off0", B_OFFSET)}{_field("header", B_HEADER)}\
{_field("lenat", B_LENGTH_AT)}\
  %p.i = getelementptr i8, ptr %b, i64 {B_I}
  %p.off = getelementptr i8, ptr %b, i64 {B_OFFSET}
  %rs.start = getelementptr i8, ptr %rs, i64 {abi.RUN_TABLE}
  %rs.end = getelementptr i8, ptr %rs, i64 {abi.RUN_TABLE + 8}
  %a2 = add i64 0, 0
  %a3 = add i64 0, 0
  %a4 = add i64 0, 0
  br label %loop

loop:
  %i = phi i64 [ %i0, %entry ], [ %i1, %next ]
  %off = phi i64 [ %off0, %entry ], [ %rend, %next ]
  %full = icmp uge i64 %i, %count
  br i1 %full, label %stopped.at, label %head

head:
  %hend = add i64 %off, %header
  %nohdr = icmp ugt i64 %hend, %size
  br i1 %nohdr, label %short, label %record

short:
  %clean = icmp eq i64 %off, %size
  br i1 %clean, label %stopped.at, label %overrun

record:
  %p = getelementptr i8, ptr %args, i64 %off
  %plen = getelementptr i8, ptr %p, i64 %lenat
  %len32 = load i32, ptr %plen, align 1
  %len = zext i32 %len32 to i64
  %a1 = add i64 %header, %len
  %rend = add i64 %off, %a1
  %over = icmp ugt i64 %rend, %size
  br i1 %over, label %overrun, label %start

overrun:
  store i64 %i, ptr %p.i
  store i64 %off, ptr %p.off
  store i64 {STATUS_OVERRUN}, ptr %p.status
  ret i64 0

start:
  %a0 = ptrtoint ptr %p to i64
  %pend = add i64 %a0, %a1
  store i64 %a0, ptr %rs.start
  store i64 %pend, ptr %rs.end
{_run(_AT_RECORD)}
next:
  %po = getelementptr i64, ptr %out, i64 %i
  store i64 %r, ptr %po
  %i1 = add i64 %i, 1
  br label %loop

stopped.at:
  store i64 %i, ptr %p.i
  store i64 %off, ptr %p.off
  store i64 {STATUS_DONE}, ptr %p.status
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
        self.records_address = image.address_of(base, RECORDS_SYMBOL)


_loop: BatchLoop | None = None
_lock = threading.Lock()


def batch_loop() -> BatchLoop:
    global _loop
    with _lock:
        if _loop is None:
            _loop = BatchLoop()
        return _loop
