"""Run x86_64 images on the host (only where the host is x86_64 — or arm64 images on arm64).

The image is copied into an anonymous mapping that is writable while it is being
relocated and then made read+execute (W^X); writable data sections keep their own
read+write pages. Helpers are ctypes callbacks into the Python helper registry; a
Python exception inside a helper cannot unwind JIT frames, so the callback records
it with ``Runtime.fail_program`` and returns 0, the generated code sees the unwind
cell and returns, and the executor re-raises the error.

Calls go through :mod:`backends.faultguard` where it is available, so a fault in
the generated code (a wild pointer the program dereferences) raises BpfRuntimeError
instead of killing the process.

While native code runs, the calling thread's C stack (where the BPF stack frames
live) is registered as a memory region, so helpers can read and write stack
buffers a program passes them — through the same bounds checks as everywhere.
"""

from __future__ import annotations

import ctypes
import mmap
import threading

from jitbpf.errors import BpfEngineError
from jitbpf.runtime import Region, Runtime

from . import abi, faultguard
from .executor import LoadedCode
from .link import PAGE, Image

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.pthread_self.restype = ctypes.c_ulong

HELPER_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, *[ctypes.c_uint64] * 5)
ENTRY_CFUNC = HELPER_CFUNC


def _round(n: int) -> int:
    return max(PAGE, (n + PAGE - 1) // PAGE * PAGE)


class _Mapping:
    """An anonymous mapping managed with libc (mmap objects refuse to close while pointed to)."""

    def __init__(self, size: int):
        self.size = _round(size)
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


_stack_regions: dict[int, Region] = {}


def thread_stack_region() -> Region:
    """The current thread's C stack as a Region (via pthread_getattr_np)."""
    ident = threading.get_ident()
    region = _stack_regions.get(ident)
    if region is None:
        attr = ctypes.create_string_buffer(128)          # pthread_attr_t is 56 or 64 bytes
        if _libc.pthread_getattr_np(ctypes.c_ulong(_libc.pthread_self()), attr) != 0:
            raise BpfEngineError("pthread_getattr_np failed: cannot find the native stack")
        base, size = ctypes.c_void_p(), ctypes.c_size_t()
        _libc.pthread_attr_getstack(attr, ctypes.byref(base), ctypes.byref(size))
        _libc.pthread_attr_destroy(attr)
        view = (ctypes.c_char * size.value).from_address(base.value)
        region = Region("native stack", base.value, size.value, memoryview(view).cast("B"), True, view)
        _stack_regions[ident] = region
    return region


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


class NativeCode(LoadedCode):
    """An Image loaded into executable host memory; call it with r1..r5."""

    def __init__(self, image: Image, rt: Runtime, entry: str = abi.ENTRY,
                 function_symbols: list[str] | None = None):
        if image.arch != _host_arch():
            raise BpfEngineError(f"cannot run {image.arch} code natively on a {_host_arch()} host")
        self.mapping = _Mapping(len(image))
        self._place(image, rt, self.mapping.address, entry, function_symbols)
        self.callbacks = HelperCallbacks(rt)
        code = image.load(self.base, self._resolve)
        ctypes.memmove(self.base, code, len(code))
        self.mapping.protect(0, image.writable_from, mmap.PROT_READ | mmap.PROT_EXEC)
        self.guard = faultguard.guard() if faultguard.available() else None

    def _call(self, address: int, args: tuple[int, ...]) -> int:
        args = tuple(a & abi.MASK64 for a in args)
        if self.guard is None:
            return ENTRY_CFUNC(address)(*args, *[0] * (5 - len(args)))
        try:
            return self.guard.run(address, self.base, self.base + len(self.image), args)
        except faultguard.NativeFault as fault:
            slot = self.image.bpf_slot(fault.native_pc - self.base)
            if slot is not None:
                fault.pc = slot
                fault.args = (fault._render(),)
            raise

    def _resolve(self, name: str) -> int:
        address = abi.runtime_symbol(self.rt, name)
        return address if address is not None else self.callbacks.address(name)

    def run_regions(self) -> list[Region]:
        return [thread_stack_region()]

    _enter = _nested = _call

    def code_bytes(self) -> bytes:
        return ctypes.string_at(self.base, len(self.image))


def _host_arch() -> str:
    from jitbpf.engines import HOST_ARCH
    return HOST_ARCH
