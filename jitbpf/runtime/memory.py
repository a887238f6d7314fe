"""Host memory that BPF programs address, shared by every engine.

Everything a program can point to (input memory, packets, contexts, map storage,
global data, stacks) lives in page-aligned anonymous mmaps at stable host
addresses. Pointer values are therefore the same in every engine: native code
dereferences them directly, unicorn maps the same pages at the same guest
addresses (``mem_map_ptr``), and the interpreter reads them through
:class:`AddressSpace`, which bounds-checks every access against the registered
regions.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import BpfRuntimeError

PAGE_SIZE = mmap.PAGESIZE
PROT_NONE = 0


def page_round(n: int) -> int:
    return max(PAGE_SIZE, (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE)


class HostBuffer:
    """A zero-filled, page-aligned block of host memory with a stable address.

    ``size`` is what the user asked for; ``capacity`` the mapped length (whole pages).
    ``low=True`` places it below 4 GiB: the UAPI ``xdp_md`` / ``__sk_buff`` hold packet
    pointers in u32 fields, so packet buffers must have 32-bit addresses for a plain
    u32 load of ``ctx->data`` to be the pointer in every engine. ``guard=True`` puts an
    inaccessible page on each side (the BPF stack), so a run off either end faults.
    """

    def __init__(self, size: int, data: bytes | None = None, *, low: bool = False, guard: bool = False):
        self.size = size
        self.capacity = page_round(size)
        low = low or getattr(_placement, "low", False)
        if low or guard:
            extra = PAGE_SIZE if guard else 0
            start = (_mmap_low if low else _mmap_anywhere)(self.capacity + 2 * extra)
            if guard and (_libc.mprotect(start, extra, PROT_NONE)
                          or _libc.mprotect(start + extra + self.capacity, extra, PROT_NONE)):
                _libc.munmap(start, self.capacity + 2 * extra)
                raise OSError(ctypes.get_errno(), "mprotect of a guard page failed")
            self.address = start + extra
            array = (ctypes.c_char * self.capacity).from_address(self.address)
            array._owner = self                   # a live view keeps the mapping alive
            weakref.finalize(self, _libc.munmap, start, self.capacity + 2 * extra)
            self.view = memoryview(array).cast("B")[:size]
        else:
            self._mmap = mmap.mmap(-1, self.capacity, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            self._anchor = ctypes.c_char.from_buffer(self._mmap)
            self.address = ctypes.addressof(self._anchor)
            self.view = memoryview(self._mmap)[:size]
        if data is not None:
            if len(data) > size:
                raise ValueError(f"{len(data)} bytes do not fit a {size}-byte buffer")
            self.view[: len(data)] = data

    def __len__(self) -> int:
        return self.size

    def bytes(self) -> bytes:
        return bytes(self.view)

    def clear(self) -> None:
        ctypes.memset(self.address, 0, self.size)


_placement = threading.local()


@contextmanager
def placed_low() -> Iterator[None]:
    """Every buffer made inside (this thread) goes below 4 GiB, in ascending order: a
    layout unlike the default (high, descending), for finding out whether a program's
    outcome depends on where its memory is (the fuzz oracle's second reference run)."""
    before = getattr(_placement, "low", False)
    _placement.low = True
    try:
        yield
    finally:
        _placement.low = before


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_MAP_FIXED_NOREPLACE = 0x100000
_LOW_START, _LOW_END = 0x1000_0000, 0x1_0000_0000
_low_cursor = _LOW_START


def _mmap_anywhere(length: int) -> int:
    addr = _libc.mmap(None, length, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        raise OSError(ctypes.get_errno(), f"mmap of {length} bytes failed")
    return addr


def _mmap_low(capacity: int) -> int:
    """Anonymous read/write pages below 4 GiB: probe hint addresses with
    MAP_FIXED_NOREPLACE (works on x86_64 and arm64 alike, unlike MAP_32BIT)."""
    global _low_cursor
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED_NOREPLACE
    for _ in range((_LOW_END - _LOW_START) >> 24):
        hint = _low_cursor if _low_cursor + capacity <= _LOW_END else _LOW_START
        _low_cursor = hint + capacity + PAGE_SIZE     # a gap: no buffer ends where the next begins
        addr = _libc.mmap(hint, capacity, prot, flags, -1, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            _low_cursor = hint + (1 << 24)        # occupied: skip ahead 16 MiB
            continue
        if addr == hint:
            return addr
        _libc.munmap(addr, capacity)              # an old kernel ignored the hint
    raise BpfRuntimeError(f"cannot map {capacity} bytes below 4 GiB for a packet buffer")


@dataclass(eq=False)
class Region:
    """A named, bounds-checked window of host memory a program may access."""

    name: str
    address: int
    size: int
    view: memoryview
    writable: bool = True
    owner: object = field(default=None, repr=False)   # keeps the backing memory alive

    @property
    def end(self) -> int:
        return self.address + self.size

    @classmethod
    def of(cls, name: str, buf: HostBuffer, writable: bool = True) -> "Region":
        return cls(name, buf.address, buf.size, buf.view, writable, buf)


class StackRegion:
    """The BPF stack of a run, as a region: only its live part is addressable, from the
    floor of the deepest frame in use (its r10 - 512) up to the top, which is every
    frame of the current call chain; the frames below are dead. ``floor()`` says where
    the floor is now (the interpreter's frames, or the native run state's stack pointer)."""

    name = "stack"
    writable = True

    def __init__(self, buf: HostBuffer, floor: Callable[[], int]):
        self.owner, self.floor = buf, floor
        self.base, self.end, self._view = buf.address, buf.address + buf.size, buf.view

    @property
    def address(self) -> int:
        return self.floor()

    @property
    def size(self) -> int:
        return self.end - self.floor()

    @property
    def view(self) -> memoryview:
        return self._view[self.floor() - self.base:]


class AddressSpace:
    """The set of regions a program may touch; every interpreter access goes through it."""

    def __init__(self, regions: list[Region] | None = None):
        self.regions: list[Region] = []
        self._last: Region | None = None         # the region of the previous access, tried first
        self._lock = threading.Lock()            # threads add and remove their runs' regions
        for r in regions or ():
            self.add(r)

    def add(self, region: Region) -> Region:
        if region.size > 0 or isinstance(region, StackRegion):
            with self._lock:
                self.regions = [*self.regions, region]
        return region

    def remove(self, region: Region) -> None:
        with self._lock:
            self.regions = [r for r in self.regions if r is not region]
        if self._last is region:
            self._last = None

    def find(self, address: int, size: int) -> Region | None:
        last = self._last
        if last is not None and last.address <= address and address + size <= last.address + last.size:
            return last
        for r in self.regions:
            if r.address <= address and address + size <= r.address + r.size:
                self._last = r
                return r
        return None

    def access(self, address: int, size: int, write: bool, pc: int | None = None) -> Region:
        """The region an access of ``size`` bytes at ``address`` falls in; the
        interpreter's error for it (naming ``pc``) when there is none or it is read-only."""
        r = self.find(address, size)
        if r is None:
            verb = "write" if write else "read"
            raise BpfRuntimeError(
                f"out-of-bounds {verb} of {size} byte{'s' if size != 1 else ''} at 0x{address:x}"
                f"{self._nearest(address)}", pc=pc)
        if write and not r.writable:
            raise BpfRuntimeError(f"write of {size} bytes to read-only {r.name} at 0x{address:x}", pc=pc)
        return r

    def _nearest(self, address: int) -> str:
        for r in self.regions:
            if r.address - 64 <= address < r.end + 64:
                return f" (near {r.name} [0x{r.address:x}, 0x{r.end:x}))"
        return " (no mapped region)"

    def load(self, address: int, size: int, pc: int | None = None) -> int:
        r = self.access(address, size, False, pc)
        off = address - r.address
        return int.from_bytes(r.view[off:off + size], "little")

    def store(self, address: int, size: int, value: int, pc: int | None = None) -> None:
        r = self.access(address, size, True, pc)
        off = address - r.address
        r.view[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def read(self, address: int, size: int, pc: int | None = None) -> bytes:
        if size == 0:
            return b""
        r = self.access(address, size, False, pc)
        off = address - r.address
        return bytes(r.view[off:off + size])

    def write(self, address: int, data: bytes, pc: int | None = None) -> None:
        if not data:
            return
        r = self.access(address, len(data), True, pc)
        off = address - r.address
        r.view[off:off + len(data)] = data

    def read_cstr(self, address: int, limit: int, pc: int | None = None) -> bytes:
        """Bytes up to (not including) a NUL, at most ``limit`` bytes, within one region."""
        r = self.access(address, 1, False, pc)
        off = address - r.address
        chunk = bytes(r.view[off:off + min(limit, r.size - off)])
        return chunk.split(b"\0", 1)[0]


class RecordBuffer:
    """A run of length-prefixed records in our own host memory (a private copy, so a
    program that writes to its record never changes the caller's bytes): each record is
    a ``header``-byte header whose host-order u32 at ``length_at`` is the number of bytes
    after it, as in the body of a pcap file (``header=16, length_at=8``)."""

    def __init__(self, data: bytes, header: int = 16, length_at: int = 8):
        if not 0 <= length_at <= header - 4:
            raise ValueError(f"a u32 length at byte {length_at} does not fit a {header}-byte header")
        self.header, self.length_at, self.size = header, length_at, len(data)
        self.buffer = HostBuffer(max(len(data), 1), data, guard=True)
        self.address = self.buffer.address

    def records(self) -> list[bytes]:
        """Each record as bytes, header included (the reference walk of the records loop)."""
        out, offset, view = [], 0, self.buffer.view
        while offset < self.size:
            end = offset + self.header
            if end <= self.size:
                end += int.from_bytes(view[offset + self.length_at:offset + self.length_at + 4], sys.byteorder)
            if end > self.size:
                raise self.overrun(offset)
            out.append(bytes(view[offset:end]))
            offset = end
        return out

    def overrun(self, offset: int) -> BpfRuntimeError:
        return BpfRuntimeError(f"the record at byte {offset} of {self.size} overruns the buffer")
