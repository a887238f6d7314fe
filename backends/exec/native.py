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

import ctypes
import mmap

from jitbpf.errors import BpfEngineError
from jitbpf.runtime import Runtime
from jitbpf.targets import HOST_ARCH

from .. import abi
from ..link import PAGE, Image
from . import faultguard
from .loaded import LoadedCode, RunOptions
from .runstate import RunState

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


class NativeCode(LoadedCode):
    """An Image loaded into executable host memory; call it with r1..r5."""

    def __init__(self, image: Image, rt: Runtime, entry: str = abi.ENTRY,
                 function_symbols: list[str] | None = None, options: RunOptions = RunOptions(),
                 low: bool = False):
        if image.arch != HOST_ARCH:
            raise BpfEngineError(f"cannot run {image.arch} code natively on a {HOST_ARCH} host")
        self.mapping = _Mapping(len(image), low)
        self._place(image, rt, self.mapping.address, entry, function_symbols, options)
        self.callbacks = HelperCallbacks(rt)
        code = image.load(self.base, self._resolve)
        ctypes.memmove(self.base, code, len(code))
        self.mapping.protect(0, image.writable_from, mmap.PROT_READ | mmap.PROT_EXEC)
        self.guard = faultguard.guard() if faultguard.available() else None

    def _call(self, address: int, args: tuple[int, ...], state: RunState) -> int:
        args = (*(a & abi.MASK64 for a in args), *[0] * (5 - len(args)), state.address)
        if self.guard is None:
            return ENTRY_CFUNC(address)(*args)
        try:
            return self.guard.run(address, self.base, self.base + len(self.image), args)
        except faultguard.NativeFault as fault:
            slot = self.image.bpf_slot(fault.native_pc - self.base)
            if slot is not None:
                fault.pc = slot
                fault.args = (fault._render(),)
            raise

    def _resolve(self, name: str) -> int:
        address = self.resolve_data(name)
        return address if address is not None else self.callbacks.address(name)

    _enter = _nested = _call

    def code_bytes(self) -> bytes:
        return ctypes.string_at(self.base, len(self.image))
