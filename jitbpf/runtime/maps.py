"""BPF maps with Linux semantics, stored in host memory at stable addresses.

Every map owns one page-aligned :class:`HostBuffer`: a 128-byte read-only header
followed by its storage. The header's address is the map handle (what
``lddw map_fd`` loads and helpers receive in r1, ``Runtime.map_at`` maps it back)
and describes the storage so backends can later inline the hot operations::

    0 u32 map_type   4 u32 key_size   8 u32 value_size  12 u32 max_entries
   16 u64 data (address of the storage)  24 u32 stride  28 u32 capacity
   32 u32 ncpus     36 u32 map_flags
   arrays: 56 the key bpf_for_each_map_elem passes
   hash maps: 40 u32 elements   44 u32 count   48 u32 tombstones   52 u32 free
              56 u32 fresh      60 u32 lock    64 u32 lru_head     68 u32 lru_tail

- array / percpu_array: element i (cpu c) at ``data + (i * ncpus + c) * stride``,
  stride = value_size rounded up to 8. Global data sections are one-element arrays.
- hash / percpu_hash / lru_hash / lru_percpu_hash: an index and a pool of
  ``max_entries`` preallocated elements (as Linux preallocates them). The index is
  ``capacity`` (a power of two, at least twice max_entries) u32 entries at ``data``:
  0 empty, 0xFFFFFFFF deleted, else 1 + an element number; open addressing with
  linear probing from the home slot ``fnv1a32(key) & (capacity - 1)``. The pool
  starts at ``data + elements`` (header offset 40); element e is ``stride`` bytes
  at ``data + elements + e * stride``: ``u32 state`` (1 used, 0 free), ``u32 next``
  (free elements: 1 + the next free element, 0 at the end), ``u32 prev, next`` (LRU
  maps: the LRU list, least recent at ``lru_head``, most recent at ``lru_tail``; 1 +
  element, 0 at the ends), the key (from byte 16, rounded up to 8), then the value
  (per CPU: ncpus values of value_size rounded up to 8). An
  element never moves while its key lives, so a lookup's pointer stays valid
  (Linux's guarantee); when deleted markers (``tombstones``) and live elements
  (``count``) would fill 3/4 of the index, it is rebuilt (live elements re-placed in
  element order). A new element is the head of the free list (``free``: 1 + element,
  0 empty: deleted ones, last freed first), else element ``fresh`` (never used yet).
  Updates, deletes and LRU lookups (which move the element to the tail) hold ``lock``
  (0 free, 1 held: a spin lock shared with native code, see ``locked``); other
  lookups take none, as in Linux (RCU), and may miss a key while another thread
  rebuilds the index. A full LRU map evicts ``lru_head``.
- lpm_trie, queue/stack: slabs of ``stride``-byte slots, indexed from Python.
- ringbuf: ``max_entries`` data bytes plus a mirror of the same size, so a record
  that wraps is still contiguous for the program (copied back on submit); records
  carry the kernel's 8-byte header (length | BUSY | DISCARD bits).
- bloom_filter: a bitset; prog_array: u32 program ids.

Programs see the storage as regions of the runtime's address space (bounds
checked by the interpreter, mapped by unicorn). Helpers call the ``_lookup`` /
``_update`` / ... methods, which return addresses or ``-errno`` like the kernel;
the Python API (``lookup``, ``update``, ``items`` ...) raises :class:`BpfMapError`.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import itertools
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..errors import BpfRuntimeError
from .memory import HostBuffer, Region

# Linux enum bpf_map_type
MAP_TYPES: dict[str, int] = {
    "hash": 1, "array": 2, "prog_array": 3, "perf_event_array": 4, "percpu_hash": 5, "percpu_array": 6,
    "stack_trace": 7, "cgroup_array": 8, "lru_hash": 9, "lru_percpu_hash": 10, "lpm_trie": 11,
    "array_of_maps": 12, "hash_of_maps": 13, "devmap": 14, "sockmap": 15, "cpumap": 16, "xskmap": 17,
    "sockhash": 18, "cgroup_storage": 19, "reuseport_sockarray": 20, "percpu_cgroup_storage": 21,
    "queue": 22, "stack": 23, "sk_storage": 24, "devmap_hash": 25, "struct_ops": 26, "ringbuf": 27,
    "inode_storage": 28, "task_storage": 29, "bloom_filter": 30, "user_ringbuf": 31, "cgrp_storage": 32,
    "arena": 33,
}
MAP_TYPE_NAMES = {v: k for k, v in MAP_TYPES.items()}

BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4
BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, BPF_F_MMAPABLE = 0x1, 0x80, 0x400
# Linux errno numbers (not the host's), shared by maps, helpers and contexts
ENOENT, E2BIG, EAGAIN, ENOMEM, EACCES, EFAULT, EBUSY, EEXIST, EINVAL, ENOSPC, ERANGE, EOPNOTSUPP = \
    2, 7, 11, 12, 13, 14, 16, 17, 22, 28, 34, 95
ERRNO_NAMES = {ENOENT: "ENOENT", E2BIG: "E2BIG", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES",
               EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", EINVAL: "EINVAL", ENOSPC: "ENOSPC",
               ERANGE: "ERANGE", EOPNOTSUPP: "EOPNOTSUPP"}
HEADER_SIZE = 128
ITER_KEY = 56            # header bytes holding the current key of bpf_for_each_map_elem on arrays
FNV_OFFSET, FNV_PRIME = 0x811C9DC5, 0x01000193
RB_BUSY, RB_DISCARD, RB_HEADER = 1 << 31, 1 << 30, 8
HASH_EMPTY, HASH_DELETED = 0, 0xFFFF_FFFF      # hash index entries besides 1 + element number
H_ELEMENTS, H_COUNT, H_TOMBSTONES, H_FREE, H_FRESH, H_LOCK, H_LRU_HEAD, H_LRU_TAIL = \
    40, 44, 48, 52, 56, 60, 64, 68                                      # hash map header fields
E_STATE, E_FREE_NEXT, E_PREV, E_NEXT, E_KEY = 0, 4, 8, 12, 16          # hash element fields


def _atomics():
    """libatomic's compare-exchange and store (Python has no atomic memory operations of
    its own), for the lock word native code takes with cmpxchg; None without libatomic."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("atomic") or "libatomic.so.1")
    except OSError:
        return None
    cas = lib.__atomic_compare_exchange_4
    cas.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_int]
    cas.restype = ctypes.c_bool
    store = lib.__atomic_store_4
    store.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int]
    return cas, store


_ATOMICS = _atomics()
_ACQUIRE, _RELEASE = 2, 3            # __ATOMIC_ACQUIRE, __ATOMIC_RELEASE
_fallback_lock = threading.Lock()


@contextmanager
def locked(address: int) -> Iterator[None]:
    """Hold the spin lock word at ``address`` (a u32: 0 free, 1 held), the one native
    map updates take (jitbpf.runtime.native), so Python and native writers exclude each
    other. Without libatomic, only Python writers exclude each other."""
    if _ATOMICS is None:
        with _fallback_lock:
            yield
        return
    cas, store = _ATOMICS
    expected = ctypes.c_uint32(0)
    while not cas(address, ctypes.addressof(expected), 1, _ACQUIRE, _ACQUIRE):
        expected.value = 0
        time.sleep(0)                    # the holder may be a Python thread waiting for the GIL
    try:
        yield
    finally:
        store(address, 0, _RELEASE)


class BpfMapError(BpfRuntimeError):
    """A map operation failed; ``errno`` is the Linux error number."""

    def __init__(self, message: str, errno: int = EINVAL):
        self.errno = errno
        super().__init__(message)


def round8(n: int) -> int:
    return (n + 7) & ~7


def fnv1a32(data: bytes, seed: int = 0) -> int:
    """The fixed hash of hash maps and bloom filters (FNV-1a, 32 bits, seed xored in)."""
    h = FNV_OFFSET ^ seed
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFF_FFFF
    return h


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class Map:
    """Common storage, header, Python API and snapshotting of every map type."""

    map_type = 0
    percpu = False
    #: whether the value holds a bpf_spin_lock (set by the ELF loader from BTF), which
    #: BPF_F_LOCK updates need; never in per-CPU and LRU hashes, as in Linux.
    has_spin_lock = False
    capacity = 0                          # hash maps: slots (in the header)
    _state: tuple[str, ...] = ()          # Python-side attributes that snapshot/restore copy

    def __init__(self, rt, name: str, key_size: int, value_size: int, max_entries: int,
                 map_flags: int = 0, map_extra: int = 0, initial: bytes | None = None):
        self.rt, self.name = rt, name
        self.key_size, self.value_size, self.max_entries = key_size, value_size, max_entries
        self.map_flags, self.map_extra = map_flags, map_extra
        self.initial = initial                      # global data: the section's bytes
        self.ncpus = rt.num_cpus if self.percpu else 1
        self.btf_key_type = self.btf_value_type = 0  # set by the ELF loader
        if max_entries <= 0 and self.map_type != MAP_TYPES["ringbuf"]:
            self._fail("max_entries must be positive")
        for what, size in (("key_size", key_size), ("value_size", value_size)):
            if not 0 <= size < 1 << 31:
                self._fail(f"{what} {size} is too large", E2BIG)
        self.stride = self.value_stride = round8(value_size)
        self._setup()
        size = self._data_size()
        try:
            self.buffer = HostBuffer(HEADER_SIZE + size)
        except (OSError, OverflowError) as e:            # e.g. max_entries from a damaged object
            self._fail(f"cannot allocate {size} bytes of storage ({e})", ENOMEM)
        self.data = self.buffer.address + HEADER_SIZE
        self.view = self.buffer.view[HEADER_SIZE:]   # the storage (BPF_F_MMAPABLE analogue)
        header = b"".join(v.to_bytes(4, "little") for v in (self.map_type, key_size, value_size, max_entries))
        header += self.data.to_bytes(8, "little") + b"".join(
            v.to_bytes(4, "little") for v in (self.stride, self.capacity, self.ncpus, map_flags))
        header += self._header_extra()
        self.buffer.view[:len(header)] = header
        self.regions = [Region(f"map {name} header", self.buffer.address, HEADER_SIZE,
                               self.buffer.view[:HEADER_SIZE], False, self.buffer),
                        Region(f"map {name}", self.data, size, self.view,
                               not map_flags & BPF_F_RDONLY_PROG, self.buffer)]
        if initial:
            self.view[:len(initial)] = initial

    def _header_extra(self) -> bytes:
        """Header bytes from offset 40 that describe a type's own layout."""
        return b""

    def _setup(self) -> None:
        """Check the attributes and compute the layout (before the buffer exists)."""

    def _data_size(self) -> int:
        return self.max_entries * self.ncpus * self.stride

    def _fail(self, message: str, errno: int = EINVAL):
        raise BpfMapError(f"map '{self.name}' ({self.type_name}): {message}", errno)

    @property
    def address(self) -> int:
        return self.buffer.address

    @property
    def type_name(self) -> str:
        return MAP_TYPE_NAMES.get(self.map_type, str(self.map_type))

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} {self.type_name} key={self.key_size} "
                f"value={self.value_size} max_entries={self.max_entries}>")

    # ---------------------------------------------------------------- coercion
    def key(self, key: Any) -> bytes:
        """Key bytes from bytes or an int; maps without keys (key_size 0) ignore it."""
        return self._bytes(key, self.key_size, "key") if self.key_size else b""

    def _bytes(self, x: Any, size: int, what: str) -> bytes:
        if x is None:
            self._fail(f"a {what} is required")
        if isinstance(x, int):
            return (x & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        x = bytes(x)
        if len(x) != size:
            self._fail(f"{what} of {len(x)} bytes, expected {size}")
        return x

    def value_blob(self, value: Any) -> bytes:
        """A Python value for every CPU: one value (copied to each CPU), a list of
        per-CPU values, or the kernel's layout (ncpus values, each padded to 8)."""
        if not self.percpu:
            return self._bytes(value, self.value_size, "value")
        if isinstance(value, (list, tuple)):
            if len(value) != self.ncpus:
                self._fail(f"{len(value)} per-cpu values for {self.ncpus} cpus")
            parts = [self._bytes(v, self.value_size, "value") for v in value]
        elif not isinstance(value, int) and len(value) == self.ncpus * self.value_stride:
            return bytes(value)
        else:
            parts = [self._bytes(value, self.value_size, "value")] * self.ncpus
        return b"".join(p.ljust(self.value_stride, b"\0") for p in parts)

    def _check(self, rc: int, what: str, key: bytes | None = None) -> int:
        if rc < 0:
            shown = f" {key.hex()}" if key else ""
            self._fail(f"{what}{shown}: {ERRNO_NAMES.get(-rc, -rc)}", -rc)
        return rc

    # ---------------------------------------------------------------- helper-level API (-errno)
    def _lookup(self, key: bytes, cpu: int | None = None) -> int:
        """Address of the value (this CPU's, for percpu maps) or 0."""
        return 0

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int | None = None) -> int:
        return -EINVAL

    def _delete(self, key: bytes) -> int:
        return -EINVAL

    def _next_key(self, key: bytes | None) -> bytes | None:
        return None

    def _keys(self) -> list[bytes]:
        out, k = [], self._next_key(None)
        while k is not None:
            out.append(k)
            k = self._next_key(k)
        return out

    def _read_value(self, address: int, cpu: int | None) -> bytes:
        """The value at ``address`` (cpu 0's for percpu maps): all CPUs unless cpu is given."""
        off = address - self.data
        if cpu is not None or not self.percpu:
            return bytes(self.view[off:off + self.value_size])
        return bytes(self.view[off:off + self.ncpus * self.value_stride])

    def value_address(self, offset: int) -> int:
        """lddw map_value: direct access is only defined for array-like maps."""
        self._fail("direct value access (lddw map_value) needs an array map", EOPNOTSUPP)

    # ---------------------------------------------------------------- Python API
    def lookup(self, key: Any = None) -> bytes | None:
        """The value for key (percpu: every CPU's, each padded to 8), or None."""
        k = self.key(key)
        addr = self._lookup(k, 0)
        return self._read_value(addr, None) if addr else None

    def lookup_percpu(self, key: Any) -> list[bytes] | None:
        blob = self.lookup(key)
        if blob is None or not self.percpu:
            return None if blob is None else [blob]
        return [blob[c * self.value_stride: c * self.value_stride + self.value_size] for c in range(self.ncpus)]

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        k = self.key(key)
        self._check(self._update(k, self.value_blob(value), flags), "update", k)

    def delete(self, key: Any) -> None:
        k = self.key(key)
        self._check(self._delete(k), "delete", k)

    def get_next_key(self, key: Any = None) -> bytes | None:
        """The key after ``key`` in iteration order (the first if key is None or absent)."""
        return self._next_key(None if key is None else self.key(key))

    def keys(self) -> list[bytes]:
        return self._keys()

    def items(self) -> list[tuple[bytes, bytes]]:
        return [(k, self.lookup(k)) for k in self._keys()]

    def values(self) -> list[bytes]:
        return [v for _, v in self.items()]

    def lookup_batch(self, cursor: Any = None, count: int | None = None
                     ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """Up to ``count`` items after ``cursor`` (from the start if None) and the next cursor."""
        out: list[tuple[bytes, bytes]] = []
        k = self._next_key(None) if cursor is None else self._next_key(self.key(cursor))
        while k is not None and (count is None or len(out) < count):
            out.append((k, self.lookup(k)))
            k = self._next_key(k)
        return out, (out[-1][0] if out and k is not None else None)

    def lookup_and_delete_batch(self, count: int | None = None) -> list[tuple[bytes, bytes]]:
        items, _ = self.lookup_batch(None, count)
        self.delete_batch([k for k, _ in items])
        return items

    def update_batch(self, items: Any, flags: int = BPF_ANY) -> int:
        """Update from a dict or (key, value) pairs; stops at the first error (raised)."""
        pairs = items.items() if isinstance(items, dict) else items
        n = 0
        for k, v in pairs:
            self.update(k, v, flags)
            n += 1
        return n

    def delete_batch(self, keys: Any) -> int:
        n = 0
        for k in keys:
            self.delete(k)
            n += 1
        return n

    def clear(self) -> None:
        for k in self._keys():
            self._delete(k)

    def __getitem__(self, key: Any) -> bytes:
        v = self.lookup(key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def __contains__(self, key: Any) -> bool:
        return self.lookup(key) is not None

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def for_each(self, callback: Callable[[int, int], int], cpu: int = 0) -> int:
        """bpf_for_each_map_elem: callback(key address, value address) -> 0 go on / 1 stop."""
        n = 0
        for k in self._keys():
            addr = self._lookup(k, cpu)
            if not addr:
                continue
            n += 1
            if callback(self._key_address(k, addr), addr):
                break
        return n

    def _key_address(self, key: bytes, value_address: int) -> int:
        self._fail("iteration is not supported", EOPNOTSUPP)

    # ---------------------------------------------------------------- cross-checking
    def contents(self) -> Any:
        """A comparable picture of what the map holds (for engine cross-checks)."""
        return dict(self.items())

    def snapshot(self) -> tuple[bytes, dict]:
        """The header (hash maps keep counts there) and storage, and the Python-side state."""
        return self.buffer.bytes(), {a: copy.copy(getattr(self, a)) for a in self._state}

    def restore(self, state: tuple[bytes, dict]) -> None:
        data, attrs = state
        self.buffer.view[:] = data
        for a, v in attrs.items():
            setattr(self, a, copy.copy(v))


class ArrayMap(Map):
    """array and percpu_array; also global data sections (one element)."""

    map_type = MAP_TYPES["array"]

    def _setup(self) -> None:
        if self.key_size != 4 or self.value_size <= 0:
            self._fail("needs 4-byte keys and a non-empty value")

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def _lookup(self, key: bytes, cpu: int | None = None) -> int:
        i = int.from_bytes(key[:4], "little")
        if i >= self.max_entries:
            return 0
        return self.data + (i * self.ncpus + (cpu or 0) * self.percpu) * self.stride

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int | None = None) -> int:
        if flags & ~BPF_F_LOCK > BPF_EXIST:
            return -EINVAL
        if self._index(key) >= self.max_entries:
            return -E2BIG
        if flags & 3 == BPF_NOEXIST:
            return -EEXIST
        if flags & BPF_F_LOCK and not self.has_spin_lock:
            return -EINVAL
        off = (self._index(key) * self.ncpus + (cpu or 0)) * self.stride
        if cpu is not None or not self.percpu:
            self.view[off:off + self.value_size] = value[:self.value_size]
        else:
            self.view[off:off + len(value)] = value
        return 0

    def _next_key(self, key: bytes | None) -> bytes | None:
        i = 0 if key is None or self._index(key) >= self.max_entries else self._index(key) + 1
        return i.to_bytes(4, "little") if i < self.max_entries else None

    def _key_address(self, key: bytes, value_address: int) -> int:
        self.buffer.view[ITER_KEY:ITER_KEY + 4] = key      # the key a for_each callback reads
        return self.address + ITER_KEY

    def value_address(self, offset: int) -> int:
        if not 0 <= offset < self.value_size:
            self._fail(f"value offset {offset} outside the {self.value_size}-byte value")
        return self.data + offset

    def element(self, index: int, cpu: int = 0) -> memoryview:
        """A writable view of element ``index`` (for cpu ``cpu``)."""
        off = (index * self.ncpus + cpu) * self.stride
        return self.view[off:off + self.value_size]

    def contents(self) -> Any:
        return self.buffer.bytes()[HEADER_SIZE:]


class PercpuArrayMap(ArrayMap):
    map_type = MAP_TYPES["percpu_array"]
    percpu = True


class HashMap(Map):
    """hash, percpu_hash, lru_hash and lru_percpu_hash (see the module docstring).

    All state is in the map's memory (index, element pool, free list, LRU list, counts
    in the header), so native code (jitbpf.runtime.native) and this class update the
    same bytes. Elements are preallocated, as in Linux: an element keeps its place from
    its insertion to its deletion, so a pointer a lookup returned stays valid while the
    element exists. Only the index is re-placed when deleted markers pile up. Updates,
    deletes and LRU lookups hold the header's lock word (``locked``); other lookups
    take no lock."""

    map_type = MAP_TYPES["hash"]
    lru = False

    def _setup(self) -> None:
        if self.key_size <= 0 or self.value_size <= 0:
            self._fail("needs a non-empty key and value")
        self.capacity = _pow2(max(8, 2 * self.max_entries))
        self.key_stride = round8(self.key_size)
        self.value_stride = self.stride
        self.stride = E_KEY + self.key_stride + self.value_stride * self.ncpus
        self.elements = round8(4 * self.capacity)      # byte offset of the element pool

    def _data_size(self) -> int:
        return self.elements + self.max_entries * self.stride

    def _header_extra(self) -> bytes:
        return self.elements.to_bytes(4, "little")      # the other fields start at 0

    def _field(self, offset: int) -> int:
        return int.from_bytes(self.buffer.view[offset:offset + 4], "little")

    def _set_field(self, offset: int, value: int) -> None:
        self.buffer.view[offset:offset + 4] = value.to_bytes(4, "little")

    def _index(self, slot: int) -> int:
        return int.from_bytes(self.view[4 * slot:4 * slot + 4], "little")

    def _set_index(self, slot: int, value: int) -> None:
        self.view[4 * slot:4 * slot + 4] = value.to_bytes(4, "little")

    def _offset(self, element: int) -> int:
        """Byte offset of an element in the storage."""
        return self.elements + element * self.stride

    def _word(self, element: int, field: int) -> int:
        off = self._offset(element) + field
        return int.from_bytes(self.view[off:off + 4], "little")

    def _set_word(self, element: int, field: int, value: int) -> None:
        off = self._offset(element) + field
        self.view[off:off + 4] = value.to_bytes(4, "little")

    def _key_at(self, element: int) -> bytes:
        off = self._offset(element) + E_KEY
        return bytes(self.view[off:off + self.key_size])

    def _value_offset(self, element: int, cpu: int | None = None) -> int:
        """Per-CPU maps: ``cpu``'s copy (the others have one value, whatever the CPU)."""
        return self._offset(element) + E_KEY + self.key_stride + (cpu or 0) * self.percpu * self.value_stride

    def _find(self, key: bytes) -> tuple[int, int] | None:
        """(index slot, element) of ``key``, or None."""
        mask = self.capacity - 1
        slot = fnv1a32(key) & mask
        while True:
            e = self._index(slot)
            if e == HASH_EMPTY:
                return None
            if e != HASH_DELETED and self._key_at(e - 1) == key:
                return slot, e - 1
            slot = (slot + 1) & mask

    def _element(self, key: bytes) -> int:
        """Byte offset of the (live) key's element in the storage."""
        return self._offset(self._find(key)[1])

    # The LRU list (lru maps): elements from least to most recently used, doubly linked
    # through E_PREV / E_NEXT (1 + element, 0 at the ends) from H_LRU_HEAD to H_LRU_TAIL.
    def _lru_unlink(self, e: int) -> None:
        prev, nxt = self._word(e, E_PREV), self._word(e, E_NEXT)
        if prev:
            self._set_word(prev - 1, E_NEXT, nxt)
        else:
            self._set_field(H_LRU_HEAD, nxt)
        if nxt:
            self._set_word(nxt - 1, E_PREV, prev)
        else:
            self._set_field(H_LRU_TAIL, prev)
        self._set_word(e, E_PREV, 0)
        self._set_word(e, E_NEXT, 0)

    def _lru_push(self, e: int) -> None:
        tail = self._field(H_LRU_TAIL)
        self._set_word(e, E_PREV, tail)
        self._set_word(e, E_NEXT, 0)
        if tail:
            self._set_word(tail - 1, E_NEXT, e + 1)
        else:
            self._set_field(H_LRU_HEAD, e + 1)
        self._set_field(H_LRU_TAIL, e + 1)

    def _lookup(self, key: bytes, cpu: int | None = None) -> int:
        if not self.lru:
            found = self._find(key)
            return 0 if found is None else self.data + self._value_offset(found[1], cpu)
        with locked(self.address + H_LOCK):
            found = self._find(key)
            if found is None:
                return 0
            self._lru_unlink(found[1])
            self._lru_push(found[1])
            return self.data + self._value_offset(found[1], cpu)

    def _free_slot(self, key: bytes) -> int:
        mask = self.capacity - 1
        slot = fnv1a32(key) & mask
        while self._index(slot) not in (HASH_EMPTY, HASH_DELETED):
            slot = (slot + 1) & mask
        return slot

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int | None = None) -> int:
        if flags & ~BPF_F_LOCK > BPF_EXIST or (flags & BPF_F_LOCK and not self.has_spin_lock):
            return -EINVAL                  # Linux: BPF_F_LOCK needs a bpf_spin_lock in the value
        with locked(self.address + H_LOCK):
            found = self._find(key)
            if flags & 3 == BPF_NOEXIST and found is not None:
                return -EEXIST
            if flags & 3 == BPF_EXIST and found is None:
                return -ENOENT
            if found is None:
                if not self._field(H_FREE) and self._field(H_FRESH) >= self.max_entries:
                    if not self.lru:
                        return -E2BIG
                    self._remove(self._key_at(self._field(H_LRU_HEAD) - 1))     # the least recent
                if self._field(H_TOMBSTONES) + self._field(H_COUNT) + 1 > self.capacity * 3 // 4:
                    self._rebuild()
                slot = self._free_slot(key)
                if self._index(slot) == HASH_DELETED:
                    self._set_field(H_TOMBSTONES, self._field(H_TOMBSTONES) - 1)
                element = self._field(H_FREE) - 1
                if element >= 0:                          # the last freed, else a fresh one
                    self._set_field(H_FREE, self._word(element, E_FREE_NEXT))
                else:
                    element = self._field(H_FRESH)
                    self._set_field(H_FRESH, element + 1)
                off = self._offset(element)
                self.view[off:off + self.stride] = bytes(self.stride)
                self.view[off] = 1
                self.view[off + E_KEY:off + E_KEY + self.key_size] = key
                self._set_index(slot, element + 1)
                self._set_field(H_COUNT, self._field(H_COUNT) + 1)
                found = slot, element
            elif self.lru:
                self._lru_unlink(found[1])
            if self.lru:
                self._lru_push(found[1])
            base = self._value_offset(found[1])
            if cpu is not None or not self.percpu:
                off = base + (cpu or 0) * self.value_stride
                self.view[off:off + self.value_size] = value[:self.value_size]
            else:
                self.view[base:base + len(value)] = value
            return 0

    def _delete(self, key: bytes) -> int:
        with locked(self.address + H_LOCK):
            return self._remove(key)

    def _remove(self, key: bytes) -> int:
        """Delete with the lock held: mark the slot deleted, push the element on the free list."""
        found = self._find(key)
        if found is None:
            return -ENOENT
        slot, element = found
        if self.lru:
            self._lru_unlink(element)
        self._set_index(slot, HASH_DELETED)
        self._set_word(element, E_STATE, 0)
        self._set_word(element, E_FREE_NEXT, self._field(H_FREE))
        self._set_field(H_FREE, element + 1)
        self._set_field(H_COUNT, self._field(H_COUNT) - 1)
        self._set_field(H_TOMBSTONES, self._field(H_TOMBSTONES) + 1)
        return 0

    def _rebuild(self) -> None:
        """Re-place every live element in the index, in element order (drops the deleted
        markers that lengthen probes); the elements stay where they are."""
        self.view[:self.elements] = bytes(self.elements)
        self._set_field(H_TOMBSTONES, 0)
        for e in range(self._field(H_FRESH)):
            if self._word(e, E_STATE) == 1:
                self._set_index(self._free_slot(self._key_at(e)), e + 1)

    def _next_key(self, key: bytes | None) -> bytes | None:
        """Index order; the first key when ``key`` is None or absent (as Linux does)."""
        order = self._keys()
        if key is None or self._find(key) is None:
            return order[0] if order else None
        i = order.index(key) + 1
        return order[i] if i < len(order) else None

    def _keys(self) -> list[bytes]:
        index = self.view[:4 * self.capacity].cast("I")
        return [self._key_at(e - 1) for e in index if e not in (HASH_EMPTY, HASH_DELETED)]

    def lookup(self, key: Any = None) -> bytes | None:
        """As Map.lookup, without touching the LRU order (only programs' accesses do)."""
        found = self._find(self.key(key))
        if found is None:
            return None
        return self._read_value(self.data + self._value_offset(found[1]), None)

    def _key_address(self, key: bytes, value_address: int) -> int:
        return self.data + self._element(key) + E_KEY

    def __len__(self) -> int:
        return self._field(H_COUNT)


class PercpuHashMap(HashMap):
    map_type = MAP_TYPES["percpu_hash"]
    percpu = True


class LruHashMap(HashMap):
    """Evicts the least recently used key (by lookups and updates through helpers) when full."""

    map_type = MAP_TYPES["lru_hash"]
    lru = True


class LruPercpuHashMap(LruHashMap):
    map_type = MAP_TYPES["lru_percpu_hash"]
    percpu = True


class LpmTrieMap(Map):
    """Longest-prefix match on keys ``struct { u32 prefixlen; u8 data[key_size - 4]; }``."""

    map_type = MAP_TYPES["lpm_trie"]
    _state = ("_entries", "_free")

    def _setup(self) -> None:
        if self.key_size <= 4 or self.value_size <= 0:
            self._fail("needs a key of a u32 prefix length plus data, and a value")
        self.bits = 8 * (self.key_size - 4)
        self.key_stride = round8(self.key_size)
        self.value_stride = self.stride
        self.stride = self.key_stride + self.value_stride
        self._entries: dict[tuple[int, int], int] = {}     # (prefixlen, masked data) -> slot
        self._free = list(range(self.max_entries - 1, -1, -1))

    def _split(self, key: bytes) -> tuple[int, int]:
        return int.from_bytes(key[:4], "little"), int.from_bytes(key[4:], "big")

    def _mask(self, data: int, plen: int) -> int:
        return data & (((1 << plen) - 1) << (self.bits - plen))

    def _lookup(self, key: bytes, cpu: int | None = None) -> int:
        plen, data = self._split(key)
        for n in range(min(plen, self.bits), -1, -1):
            slot = self._entries.get((n, self._mask(data, n)))
            if slot is not None:
                return self.data + slot * self.stride + self.key_stride
        return 0

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int | None = None) -> int:
        plen, data = self._split(key)
        if flags & ~BPF_F_LOCK > BPF_EXIST or plen > self.bits:
            return -EINVAL
        ident = (plen, self._mask(data, plen))
        slot = self._entries.get(ident)
        if flags & 3 == BPF_NOEXIST and slot is not None:
            return -EEXIST
        if flags & 3 == BPF_EXIST and slot is None:
            return -ENOENT
        if slot is None:
            if not self._free:
                return -ENOSPC
            slot = self._entries[ident] = self._free.pop()
            off = slot * self.stride
            self.view[off:off + self.key_size] = self._make_key(*ident)
        off = slot * self.stride + self.key_stride
        self.view[off:off + self.value_size] = value[:self.value_size]
        return 0

    def _make_key(self, plen: int, data: int) -> bytes:
        return plen.to_bytes(4, "little") + data.to_bytes(self.key_size - 4, "big")

    def _delete(self, key: bytes) -> int:
        plen, data = self._split(key)
        slot = self._entries.pop((plen, self._mask(data, plen)), None) if plen <= self.bits else None
        if slot is None:
            return -ENOENT
        self._free.append(slot)
        return 0

    def _order(self, ident: tuple[int, int]) -> str:
        """Post-order of the trie: more specific prefixes first, 0 branches before 1."""
        plen, data = ident
        return format(data >> (self.bits - plen), f"0{plen}b")[:plen] + "2" if plen else "2"

    def _keys(self) -> list[bytes]:
        return [self._make_key(*i) for i in sorted(self._entries, key=self._order)]

    def _next_key(self, key: bytes | None) -> bytes | None:
        keys = self._keys()
        if key is not None:
            plen, data = self._split(key)
            ident = self._make_key(plen, self._mask(data, plen)) if plen <= self.bits else None
            if ident in keys:
                i = keys.index(ident) + 1
                return keys[i] if i < len(keys) else None
        return keys[0] if keys else None

    def _key_address(self, key: bytes, value_address: int) -> int:
        return value_address - self.key_stride


class _ValueMap(Map):
    """Maps of values without keys (queue, stack, bloom filter): an update is a push."""

    def _setup(self) -> None:
        if self.key_size != 0 or self.value_size <= 0:
            self._fail("needs key_size 0 and a value")

    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        self._check(self._push(self._bytes(value, self.value_size, "value"), flags), "push")

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int | None = None) -> int:
        return self._push(value, flags)           # each subclass defines _push


class QueueMap(_ValueMap):
    """queue (FIFO) and stack (LIFO): push/pop/peek, key_size 0."""

    map_type = MAP_TYPES["queue"]
    lifo = False
    _state = ("_items", "_free")

    def _setup(self) -> None:
        super()._setup()
        self._items: list[int] = []          # slots, oldest first
        self._free = list(range(self.max_entries - 1, -1, -1))

    def pop(self) -> bytes | None:
        return self._take(True)

    def peek(self) -> bytes | None:
        return self._take(False)

    def _push(self, value: bytes, flags: int) -> int:
        if flags & ~BPF_EXIST:
            return -EINVAL
        if not self._free:
            if not flags & BPF_EXIST:
                return -E2BIG
            self._free.append(self._items.pop(0))     # overwrite the oldest element
        slot = self._free.pop()
        self._items.append(slot)
        self.view[slot * self.stride:slot * self.stride + self.value_size] = value
        return 0

    def _take(self, remove: bool) -> bytes | None:
        if not self._items:
            return None
        slot = self._items[-1] if self.lifo else self._items[0]
        if remove:
            self._items.remove(slot)
            self._free.append(slot)
        return bytes(self.view[slot * self.stride:slot * self.stride + self.value_size])

    def lookup(self, key: Any = None) -> bytes | None:
        return self.peek()

    def items(self) -> list[tuple[bytes, bytes]]:
        """(b"", value) in pop order."""
        order = reversed(self._items) if self.lifo else self._items
        return [(b"", bytes(self.view[s * self.stride:s * self.stride + self.value_size])) for s in order]

    def _keys(self) -> list[bytes]:
        return []

    def __len__(self) -> int:
        return len(self._items)

    def contents(self) -> Any:
        return [v for _, v in self.items()]


class StackMap(QueueMap):
    map_type = MAP_TYPES["stack"]
    lifo = True


class BloomFilterMap(_ValueMap):
    """push adds a value, peek answers 'maybe present' (0) or -ENOENT; no keys."""

    map_type = MAP_TYPES["bloom_filter"]

    def _setup(self) -> None:
        super()._setup()
        self.nr_hashes = self.map_extra & 0xF or 5
        self.nbits = _pow2(max(64, self.max_entries * self.nr_hashes * 7 // 5))
        self.stride = 1

    def _data_size(self) -> int:
        return self.nbits // 8

    def _bits(self, value: bytes) -> list[int]:
        return [fnv1a32(value, i) & (self.nbits - 1) for i in range(self.nr_hashes)]

    def _push(self, value: bytes, flags: int) -> int:
        if flags != BPF_ANY:
            return -EINVAL
        for b in self._bits(value):
            self.view[b >> 3] |= 1 << (b & 7)
        return 0

    def _peek(self, value: bytes) -> int:
        return 0 if all(self.view[b >> 3] >> (b & 7) & 1 for b in self._bits(value)) else -ENOENT

    def __contains__(self, value: Any) -> bool:
        return self._peek(self._bytes(value, self.value_size, "value")) == 0

    def items(self) -> list[tuple[bytes, bytes]]:
        return []

    def contents(self) -> Any:
        return self.buffer.bytes()[HEADER_SIZE:]


class RingBufMap(Map):
    """BPF ring buffer: reserve/submit/discard/output from programs, consume from Python."""

    map_type = MAP_TYPES["ringbuf"]
    _state = ("producer", "consumer")

    def _setup(self) -> None:
        size = self.max_entries
        if self.key_size or self.value_size or size <= 0 or size & (size - 1) or size % 4096:
            self._fail("needs key and value size 0 and a power-of-2, page-multiple max_entries")
        self.producer = self.consumer = 0

    def _data_size(self) -> int:
        return 2 * self.max_entries

    def reserve(self, size: int) -> int:
        """Address of a new busy record of ``size`` bytes, or 0 when it does not fit."""
        total = round8(size + RB_HEADER)
        if size <= 0 or size > self.max_entries - RB_HEADER or \
                self.producer + total - self.consumer >= self.max_entries:     # Linux: > mask
            return 0
        off = self.producer % self.max_entries
        self.view[off:off + 8] = ((size | RB_BUSY).to_bytes(4, "little")
                                  + (off // 4096).to_bytes(4, "little"))
        self.producer += total
        return self.data + off + RB_HEADER

    def contains_record(self, address: int) -> bool:
        return self.data + RB_HEADER <= address < self.data + 2 * self.max_entries

    def commit(self, address: int, discard: bool) -> None:
        off = address - RB_HEADER - self.data
        hdr = int.from_bytes(self.view[off:off + 4], "little")
        if not hdr & RB_BUSY:
            raise BpfRuntimeError(f"ringbuf {self.name}: record at 0x{address:x} was already submitted")
        size = hdr & ~(RB_BUSY | RB_DISCARD)
        end = off + RB_HEADER + size
        if end > self.max_entries:                   # wrapped: copy the mirror back to the start
            self.view[0:end - self.max_entries] = self.view[self.max_entries:end]
        self.view[off:off + 4] = (size | (RB_DISCARD if discard else 0)).to_bytes(4, "little")

    def query(self, flag: int) -> int:
        return {0: self.producer - self.consumer, 1: self.max_entries, 2: self.consumer,
                3: self.producer}.get(flag, 0)

    def _records(self, consume: bool) -> list[bytes]:
        out, pos = [], self.consumer
        while pos < self.producer:
            off = pos % self.max_entries
            hdr = int.from_bytes(self.view[off:off + 4], "little")
            if hdr & RB_BUSY:
                break
            size = hdr & ~RB_DISCARD
            if not hdr & RB_DISCARD:
                start = off + RB_HEADER
                data = bytes(self.view[start:start + size]) if start + size <= self.max_entries else \
                    bytes(self.view[start:self.max_entries]) + bytes(self.view[0:start + size - self.max_entries])
                out.append(data)
            pos += round8(size + RB_HEADER)
            if consume:
                self.consumer = pos
        return out

    def consume(self, callback: Callable[[bytes], Any] | None = None) -> int:
        """Hand every committed record to ``callback`` (oldest first); returns how many."""
        records = self._records(True)
        for r in records:
            if callback is not None:
                callback(r)
        return len(records)

    def drain(self) -> list[bytes]:
        return self._records(True)

    def items(self) -> list[tuple[bytes, bytes]]:
        """(b"", record) for every committed record not yet consumed."""
        return [(b"", r) for r in self._records(False)]

    def _keys(self) -> list[bytes]:
        return []

    def contents(self) -> Any:
        return self.producer, self.consumer, self._records(False)


_program_ids: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()
_next_program_id = itertools.count(1)


def program_id(program: Any) -> int:
    """A small stable number standing for a program in a prog_array (its 'fd')."""
    if program not in _program_ids:
        _program_ids[program] = next(_next_program_id)
    return _program_ids[program]


class ProgArrayMap(ArrayMap):
    """Tail-call targets: u32 index -> program (stored as a u32 program id)."""

    map_type = MAP_TYPES["prog_array"]
    _state = ("programs",)

    def _setup(self) -> None:
        if self.key_size != 4 or self.value_size != 4:
            self._fail("needs 4-byte keys and values")
        self.programs: dict[int, Any] = {}

    def value_blob(self, value: Any) -> bytes:
        return value if isinstance(value, bytes) else program_id(value).to_bytes(4, "little")

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """``prog_array[i] = program`` (a Program of the same runtime)."""
        if isinstance(value, (int, bytes)):
            self._fail("values are programs (jitbpf.Program objects)")
        k = self.key(key)
        if flags & 3 == BPF_NOEXIST:
            self._fail("update: EEXIST", EEXIST)
        self._check(ArrayMap._update(self, k, self.value_blob(value), BPF_ANY), "update", k)
        self.programs[self._index(k)] = value

    def _update(self, key: bytes, value: bytes, flags: int, cpu: int | None = None) -> int:
        return -EINVAL                               # programs cannot update prog arrays

    def _lookup(self, key: bytes, cpu: int | None = None) -> int:
        return super()._lookup(key, cpu) if self._index(key) in self.programs else 0

    def _delete(self, key: bytes) -> int:
        if self.programs.pop(self._index(key), None) is None:
            return -ENOENT
        self.element(self._index(key))[:] = bytes(4)
        return 0

    def _next_key(self, key: bytes | None) -> bytes | None:
        k = super()._next_key(key)
        while k is not None and self._index(k) not in self.programs:
            k = super()._next_key(k)
        return k

    def program_at(self, index: int) -> Any:
        return self.programs.get(index & 0xFFFF_FFFF)

    def contents(self) -> Any:
        return {i: p.name for i, p in self.programs.items()}


MAP_CLASSES: dict[int, type[Map]] = {cls.map_type: cls for cls in (
    ArrayMap, PercpuArrayMap, HashMap, PercpuHashMap, LruHashMap, LruPercpuHashMap, LpmTrieMap,
    QueueMap, StackMap, BloomFilterMap, RingBufMap, ProgArrayMap)}


def map_type_number(map_type: int | str) -> int:
    if isinstance(map_type, int):
        return map_type
    name = map_type.lower().removeprefix("bpf_map_type_")
    if name not in MAP_TYPES:
        raise BpfMapError(f"unknown map type '{map_type}'")
    return MAP_TYPES[name]


def create(rt, name: str, map_type: int | str, key_size: int, value_size: int, max_entries: int,
           map_flags: int = 0, map_extra: int = 0, initial: bytes | None = None) -> Map:
    """Create a map of a Linux map type (number or name, e.g. ``"hash"``) in runtime ``rt``."""
    number = map_type_number(map_type)
    cls = MAP_CLASSES.get(number)
    if cls is None:
        raise BpfMapError(f"map '{name}': map type {MAP_TYPE_NAMES.get(number, number)} is not supported "
                          f"(supported: {', '.join(sorted(MAP_TYPE_NAMES[n] for n in MAP_CLASSES))})",
                          EOPNOTSUPP)
    m = cls(rt, name, key_size, value_size, max_entries, map_flags, map_extra, initial)
    rt.add_map(m)
    return m
