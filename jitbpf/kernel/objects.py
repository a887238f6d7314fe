"""An object's maps as kernel maps, kept in step with the runtime's maps.

Our runtime owns the truth: before a kernel run every map's contents are copied
into its kernel twin, and afterwards copied back, so a cross-check compares the
same maps whatever engine ran. Arrays and global data are ``BPF_F_MMAPABLE`` twins
copied with one memcpy each way (their layout is the kernel's: element i at
``i * round8(value_size)``); a read-only (``.rodata``) array is filled once and
frozen, as libbpf does, so the verifier may treat its contents as constants.
Hashes, LPM tries and per-CPU maps go element by element; queues and stacks are
drained and refilled; ring buffers are kept in step through the kernel ring's mmap
(records copied byte for byte, our consumer position written to the kernel's);
prog arrays hold the kernel fds of the programs ours hold. Per-CPU values: kernel
CPU c is our CPU c, and programs run pinned to the runtime's current CPU.
"""

from __future__ import annotations

import mmap
import weakref

from ..errors import BpfEngineError
from ..isa import Pseudo
from . import syscall as sc

_T = sc.MAP_TYPES
_ARRAYS = {_T["array"]}
_KEYED = {_T["hash"], _T["lru_hash"], _T["lpm_trie"], _T["percpu_hash"], _T["lru_percpu_hash"],
          _T["percpu_array"]}
_QUEUES = {_T["queue"], _T["stack"]}
_MAP_SOURCES = (Pseudo.MAP_FD, Pseudo.MAP_VALUE, Pseudo.MAP_IDX, Pseudo.MAP_IDX_VALUE)
_UNSUPPORTED = {
    _T["bloom_filter"]: "the kernel's filter bits use another hash and cannot be copied",
    _T["perf_event_array"]: "perf events are not available to test runs",
}


class Twin:
    """One of our maps and its kernel counterpart."""

    def __init__(self, ours, owner: "KernelMaps"):
        self.ours = ours
        self.owner = owner
        t = ours.map_type
        if t in _UNSUPPORTED:
            raise BpfEngineError(f"kernel: map '{ours.name}' ({ours.type_name}): {_UNSUPPORTED[t]}")
        flags = ours.map_flags | (sc.F_MMAPABLE if t in _ARRAYS else 0)
        self.frozen = bool(t in _ARRAYS and ours.map_flags & sc.F_RDONLY_PROG)
        args = (t, ours.key_size, ours.value_size, ours.max_entries, flags, ours.name)
        extra = ours.map_extra
        btf_ids = (ours.btf_key_type, ours.btf_value_type)
        if owner.btf.fd and any(btf_ids):
            try:        # with BTF when it has it (spin locks and timers need it), else without
                self.kernel = sc.create_map(*args, btf_fd=owner.btf.fd, btf_key_type_id=btf_ids[0],
                                            btf_value_type_id=btf_ids[1], map_extra=extra)
            except sc.KernelError:
                self.kernel = sc.create_map(*args, map_extra=extra)
        else:
            self.kernel = sc.create_map(*args, map_extra=extra)
        self.filled = False
        self._ring: tuple[mmap.mmap, mmap.mmap] | None = None
        self.ring_delta: int | None = None      # our ring positions minus the kernel's
        self.mapped = t in _ARRAYS and not self.frozen and self._mmap_works()

    def _mmap_works(self) -> bool:
        """Arrays are copied through their mmap, except where the kernel refuses one
        (values with spin locks, timers and other special fields): element by element."""
        try:
            self.kernel.view
        except OSError:
            return False
        return True

    @property
    def size(self) -> int:
        return self.kernel.stride * self.ours.max_entries

    # ---------------------------------------------------------------- ours -> kernel
    def push(self) -> None:
        t, k, m = self.ours.map_type, self.kernel, self.ours
        if t in _ARRAYS:
            if self.mapped:
                k.view[:self.size] = m.view[:self.size]
            elif not self.frozen or not self.filled:
                for i in range(m.max_entries):
                    k.update(i.to_bytes(4, "little"), bytes(m.element(i)))
                if self.frozen:
                    k.freeze()
        elif t in _KEYED:
            for key in list(k.keys()):
                if t != _T["percpu_array"]:
                    k.delete(key)
            for key, value in m.items():
                k.update(key, self._to_kernel(value) if m.percpu else value)
        elif t in _QUEUES:
            while k.pop() is not None:
                pass
            values = [v for _, v in m.items()]
            for v in (reversed(values) if t == _T["stack"] else values):
                k.push(v)
        elif t == _T["ringbuf"]:
            self._ring_push()
        elif t == _T["prog_array"]:
            for key in list(k.keys()):
                k.delete(key)
            for index, program in m.programs.items():
                k.update(index.to_bytes(4, "little"), self.owner.program_fd(program).to_bytes(4, "little"))
        self.filled = True

    # ---------------------------------------------------------------- kernel -> ours
    def pull(self) -> None:
        t, k, m = self.ours.map_type, self.kernel, self.ours
        if t in _ARRAYS:
            if self.mapped:
                m.view[:self.size] = k.view[:self.size]
            elif not self.frozen:
                for i in range(m.max_entries):
                    m.element(i)[:] = k.lookup(i.to_bytes(4, "little"))
        elif t in _KEYED:
            if t != _T["percpu_array"]:
                m.clear()
            for key, value in k.items():
                m.update(key, self._from_kernel(value) if m.percpu else value)
        elif t in _QUEUES:
            while m.pop() is not None:
                pass
            values = []
            while (v := k.pop()) is not None:
                values.append(v)
            for v in (reversed(values) if t == _T["stack"] else values):
                m.push(v)
        elif t == _T["ringbuf"]:
            self._ring_pull()

    def _to_kernel(self, blob: bytes) -> bytes:
        """Our per-CPU layout (ncpus values, each padded to 8) for the kernel's CPU count."""
        n = sc.possible_cpus() * self.kernel.stride
        return blob[:n].ljust(n, b"\0")

    def _from_kernel(self, blob: bytes) -> list[bytes]:
        """The kernel's per-CPU values for our CPUs, as a list."""
        stride, size = self.kernel.stride, self.ours.value_size
        return [blob[c * stride:c * stride + size].ljust(size, b"\0") for c in range(self.ours.ncpus)]

    # ---------------------------------------------------------------- ring buffers
    def _ring_positions(self) -> tuple[int, int]:
        """(consumer, producer) of the kernel ring, mapping it on first use: the
        consumer page (writable), then the producer page and the data pages twice."""
        if self._ring is None:
            page, size = mmap.PAGESIZE, self.ours.max_entries
            self._ring = (mmap.mmap(self.kernel.fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE),
                          mmap.mmap(self.kernel.fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                                    offset=page))
        cons_page, prod_pages = self._ring
        return int.from_bytes(cons_page[:8], "little"), int.from_bytes(prod_pages[:8], "little")

    def _ring_push(self) -> None:
        """Keep the kernel ring in step with ours: records are copied to us as the kernel
        writes them, so the kernel's positions are ours minus a fixed ``ring_delta``;
        what our user consumed, the kernel's consumer skips too."""
        m = self.ours
        _consumer, producer = self._ring_positions()
        if self.ring_delta is None or m.producer - self.ring_delta != producer:
            if m.producer != m.consumer:
                raise BpfEngineError(f"kernel: ring buffer '{m.name}' holds {m.producer - m.consumer} bytes of "
                                     "records the kernel did not write (drain it before a kernel run)")
            self.ring_delta = m.producer - producer
        self._ring[0][:8] = (m.consumer - self.ring_delta).to_bytes(8, "little")

    def _ring_pull(self) -> None:
        """Copy what the kernel produced (headers and all, byte for byte) into our ring."""
        m, size = self.ours, self.ours.max_entries
        _consumer, producer = self._ring_positions()
        data = self._ring[1]
        start = m.producer - self.ring_delta
        for pos in range(start, producer, size):          # at most one wrap per ring size
            end = min(producer, pos + size)
            first = pos % size
            chunk = data[mmap.PAGESIZE + first:mmap.PAGESIZE + first + (end - pos)]   # data is mapped twice
            head = min(len(chunk), size - first)
            m.view[first:first + head] = chunk[:head]
            m.view[0:len(chunk) - head] = chunk[head:]
        m.producer = producer + self.ring_delta

    def close(self) -> None:
        if self._ring is not None:
            for mm in self._ring:
                mm.close()
            self._ring = None
        self.kernel.close()


class KernelMaps:
    """The kernel twins of one object's maps (``obj.map_list`` order), shared by every
    kernel program of the object, plus the r0 cell their wrapped exits write."""

    def __init__(self, obj):
        from .btfload import KernelBtf
        self._obj = weakref.ref(obj)      # the object owns us, not the other way round
        self.btf = KernelBtf(obj)
        self.twins: list[Twin] = []
        self.r0 = sc.create_map("array", 4, 8, 1, sc.F_MMAPABLE, "jitbpf_r0")
        self.programs: dict = {}          # Program -> KernelProgram, for prog arrays

    @property
    def obj(self):
        return self._obj()

    @classmethod
    def of(cls, obj) -> "KernelMaps":
        """The object's kernel maps, kept on the object so they live and die with it."""
        maps = getattr(obj, "_kernel_maps", None)
        if maps is None:
            maps = obj._kernel_maps = cls(obj)
        maps.sync_list()
        return maps

    def sync_list(self) -> None:
        """Create twins for maps added to the object since the last call."""
        for m in self.obj.map_list[len(self.twins):]:
            self.twins.append(Twin(m, self))

    @property
    def fds(self) -> list[int]:
        """fd_array for BPF_PROG_LOAD: the object's maps by index, then the r0 cell."""
        return [t.kernel.fd for t in self.twins] + [self.r0.fd]

    @property
    def r0_index(self) -> int:
        return len(self.twins)

    def used_by(self, insns) -> list[int]:
        """Indices of the maps a program references (all of them once it can tail-call)."""
        used = sorted({i.imm for i in insns if i.is_lddw and i.src in _MAP_SOURCES})
        if any(self.twins[i].ours.map_type == _T["prog_array"] for i in used if i < len(self.twins)):
            return list(range(len(self.twins)))
        return [i for i in used if i < len(self.twins)]

    def push(self, indices: list[int]) -> None:
        for i in indices:
            self.twins[i].push()

    def pull(self, indices: list[int]) -> None:
        for i in indices:
            self.twins[i].pull()

    def program_fd(self, program) -> int:
        """The kernel fd of another program of this object (a tail-call target)."""
        from .engine import KernelProgram
        kp = self.programs.get(program)
        if kp is None:
            kp = self.programs[program] = KernelProgram(program)
        if kp.wrapped:
            raise BpfEngineError(f"kernel: tail calls need programs that run on their own context "
                                 f"(xdp, tc, socket ...); '{program.name}' is a {program.prog_type} program, "
                                 "run wrapped (the kernel's syscall programs are sleepable: no prog arrays)")
        return kp.load().fd
