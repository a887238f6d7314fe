"""Run images on the host (x86_64 images on x86_64, arm64 images on arm64).

The image is copied into an anonymous mapping that is writable while it is being
relocated and then made read+execute (W^X); writable data sections keep their own
read+write pages. Helpers are ctypes callbacks into the Python helper registry; a
Python exception inside a helper cannot unwind JIT frames, so the callback records
it with ``Runtime.fail_program`` and returns 0, the generated code sees the unwind
cell and returns, and the executor re-raises the error.

Calls go through :mod:`backends.exec.faultguard` where it is available, so a fault
in the generated code (a wild pointer the program dereferences) raises
BpfRuntimeError instead of killing the process.
"""

from __future__ import annotations

import array
import ctypes
import mmap

from jitbpf.errors import BpfEngineError, BpfRuntimeError
from jitbpf.runtime import Runtime
from jitbpf.runtime import native as native_runtime
from jitbpf.targets import HOST_ARCH

from .. import abi
from ..link import PAGE, Image, link_elf
from . import batch, faultguard
from .loaded import LoadedCode, RunOptions
from .runstate import STACK_BYTES, RunState

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.pthread_self.restype = ctypes.c_ulong

HELPER_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, *[ctypes.c_uint64] * 5)    # rs, the sixth, unused
ENTRY_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, *[ctypes.c_uint64] * 6)


def _round(n: int) -> int:
    return max(PAGE, (n + PAGE - 1) // PAGE * PAGE)


class _Mapping:
    """An anonymous mapping managed with libc (mmap objects refuse to close while pointed to)."""

    def __init__(self, size: int, low: bool = False):
        self.size = _round(size)
        if low:                                     # below 4 GiB (compiled XDP objects)
            from jitbpf.runtime.memory import _mmap_low
            self.address = _mmap_low(self.size)
            return
        addr = _libc.mmap(None, self.size, mmap.PROT_READ | mmap.PROT_WRITE,
                          mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise BpfEngineError(f"mmap of {self.size} bytes failed: errno {ctypes.get_errno()}")
        self.address = addr

    def protect(self, start: int, length: int, prot: int) -> None:
        if length and _libc.mprotect(self.address + start, _round(length), prot) != 0:
            raise BpfEngineError(f"mprotect failed: errno {ctypes.get_errno()}")

    def __del__(self) -> None:
        if getattr(self, "address", None):
            _libc.munmap(self.address, self.size)
            self.address = None


class HelperCallbacks:
    """ctypes callbacks for the helpers of one runtime, created on first use."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self._callbacks: dict[str, object] = {}

    def address(self, name: str) -> int:
        cb = self._callbacks.get(name)
        if cb is None:
            func, rt = abi.helper_for_symbol(self.rt, name).func, self.rt

            def call(r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
                try:
                    return func(rt, r1, r2, r3, r4, r5) & abi.MASK64
                except BaseException as exc:        # noqa: BLE001 - re-raised by the executor
                    rt.fail_program(exc)
                    return 0
            cb = self._callbacks[name] = HELPER_CFUNC(call)
        return ctypes.cast(cb, ctypes.c_void_p).value


_runtime_images: dict = {}


def _runtime_image() -> Image:
    """The native runtime linked for the host (once per process)."""
    image = _runtime_images.get(HOST_ARCH)
    if image is None:
        image = _runtime_images[HOST_ARCH] = link_elf(native_runtime.object_for(HOST_ARCH))
    return image


class NativeCode(LoadedCode):
    """An Image loaded into executable host memory; call it with r1..r5."""

    def __init__(self, image: Image, rt: Runtime, entry: str = abi.ENTRY,
                 function_symbols: list[str] | None = None, options: RunOptions = RunOptions(),
                 low: bool = False):
        if image.arch != HOST_ARCH:
            raise BpfEngineError(f"cannot run {image.arch} code natively on a {HOST_ARCH} host")
        # The native runtime (jitbpf.runtime.native) is linked after the program in the
        # same mapping, so the fault guard's code range covers both.
        self.runtime_image = None if options.bounds_check else _runtime_image()
        program_size = _round(len(image))
        extra = len(self.runtime_image) if self.runtime_image is not None else 0
        self.mapping = _Mapping(program_size + extra, low)
        self._place(image, rt, self.mapping.address, entry, function_symbols, options)
        self.callbacks = HelperCallbacks(rt)
        if self.runtime_image is not None:
            self.runtime_base = self.base + program_size
            fallbacks = {v: k for k, v in native_runtime.FALLBACKS.items()}
            code = self.runtime_image.load(self.runtime_base, lambda name: self.callbacks.address(
                "bpf_" + next(h for h, sym in native_runtime.SYMBOLS.items() if sym == fallbacks[name])))
            ctypes.memmove(self.runtime_base, code, len(code))
            self.mapping.protect(program_size, extra, mmap.PROT_READ | mmap.PROT_EXEC)
        code = image.load(self.base, self._resolve)
        ctypes.memmove(self.base, code, len(code))
        self.mapping.protect(0, image.writable_from, mmap.PROT_READ | mmap.PROT_EXEC)
        self.code_end = self.base + program_size + extra
        self.guard = faultguard.guard() if faultguard.available() else None

    def _call(self, address: int, args: tuple[int, ...], state: RunState) -> int:
        args = (*(a & abi.MASK64 for a in args), *[0] * (5 - len(args)), state.address)
        if self.guard is None:
            return ENTRY_CFUNC(address)(*args)
        try:
            return self.guard.run(address, self.base, self.code_end, args)
        except faultguard.NativeFault as fault:
            slot = self.image.bpf_slot(fault.native_pc - self.base)
            if slot is not None:
                fault.pc = slot
                fault.args = (fault._render(),)
            raise

    def _resolve(self, name: str) -> int:
        address = self.resolve_data(name)
        if address is not None:
            return address
        if self.runtime_image is not None:
            native = getattr(abi.helper_for_symbol(self.rt, name), "native", None)
            if native is not None:
                return self.runtime_image.address_of(self.runtime_base, native)
        return self.callbacks.address(name)

    _enter = _nested = _call

    def _batch(self, args_list: list[tuple[int, ...]], repeat: int, state: RunState) -> list[int]:
        """All runs from the native loop (backends.exec.batch); Python only where a run
        left with the unwind cell set (its pending exit or error), then the loop resumes."""
        loop, rt, n = batch.batch_loop(), self.rt, len(args_list)
        args = (ctypes.c_uint64 * (batch.ARGS_PER_INPUT * n))()
        for i, a in enumerate(args_list):
            for j, value in enumerate(a[:batch.ARGS_PER_INPUT]):
                args[batch.ARGS_PER_INPUT * i + j] = value & abi.MASK64
        out = (ctypes.c_uint64 * n)()
        b = self._batch_fields(state)
        b[batch.B_ARGS], b[batch.B_COUNT], b[batch.B_REPEAT], b[batch.B_OUT] = \
            ctypes.addressof(args), n, repeat, ctypes.addressof(out)
        address = b.address
        while True:
            self._call(loop.address, (address,), state)
            if not b[batch.B_STATUS]:
                return list(out)
            i, k = b[batch.B_I], b[batch.B_K]
            spent = state.spent()
            if spent is not None:
                rt.finish_unwind(0)
                raise spent
            out[i] = rt.finish_unwind(b[batch.B_R0])
            k += 1
            if k >= repeat:
                i, k = i + 1, 0
            if i >= n:
                return list(out)
            b[batch.B_I], b[batch.B_K] = i, k

    def _batch_fields(self, state: RunState) -> batch.Fields:
        """What both native loops take from this code and the run state. Stack bytes are
        zeroed before each run unless the code is proven to read only stack it wrote."""
        b = batch.Fields()
        b[batch.B_ENTRY], b[batch.B_RS] = self.entry_address, state.address
        b[batch.B_BUDGET] = abi.UNLIMITED if state.budget is None else state.budget
        b[batch.B_STACK], b[batch.B_STACK_BYTES] = state.stack.address, STACK_BYTES
        b[batch.B_CLEAR] = 0 if self.options.stack_proven else STACK_BYTES
        return b

    def _records(self, buffer, chunk: int, state: RunState) -> array.array:
        """One run per record of ``buffer`` (a RecordBuffer) from the native records loop
        (backends.exec.batch), as an array('Q'): copying the loop's results is one memcpy
        per chunk, no Python int per record. A budget or stop request ends it with the
        run's error."""
        loop, out = batch.batch_loop(), (ctypes.c_uint64 * chunk)()
        b = self._batch_fields(state)
        b[batch.B_ARGS], b[batch.B_COUNT], b[batch.B_OUT], b[batch.B_SIZE] = \
            buffer.address, chunk, ctypes.addressof(out), buffer.size
        b[batch.B_HEADER], b[batch.B_LENGTH_AT] = buffer.header, buffer.length_at
        state.fill_table(self.rt.memory.regions, first=(0, 0, True))    # entry 0: the record (the loop sets it)
        results, raw = array.array("Q"), memoryview(out).cast("B")
        while True:
            self._call(loop.records_address, (b.address,), state)
            status, done = b[batch.B_STATUS], b[batch.B_I]
            results.frombytes(raw[:8 * done])
            if status == batch.STATUS_UNWOUND:
                spent = state.spent()
                self.rt.finish_unwind(0)
                raise spent if spent is not None else BpfRuntimeError(
                    "a program run over records left early (only helper-free code runs here)")
            if status == batch.STATUS_OVERRUN:
                raise buffer.overrun(b[batch.B_OFFSET])
            if b[batch.B_OFFSET] >= buffer.size:
                return results
            b[batch.B_I] = 0

    def code_bytes(self) -> bytes:
        return ctypes.string_at(self.base, len(self.image))
