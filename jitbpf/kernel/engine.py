"""The ``kernel`` engine: programs verified, JIT-compiled and run by the host kernel.

BPF_PROG_TEST_RUN gives no way to set r1/r2 and returns only 32 bits of r0, so
programs are wrapped before loading:

* every ``exit`` of the main function becomes ``lddw r1, <r0 cell>; *(u64 *)r1 = r0;
  exit``: the full 64-bit r0 is in a ``BPF_F_MMAPABLE`` array map (shared by the
  object's programs, so a tail-called program reports its r0 too) when the run ends.
  bpf-to-bpf functions and callbacks keep their exits;
* raw-memory programs (r1 = memory, r2 = length, the conformance convention) and
  programs whose context is plain bytes (``syscall``, ``kprobe``, ``tracepoint``,
  ``perf_event``: the kernel cannot test-run the tracing types, and its syscall
  programs are sleepable, which rules out many maps and helpers taking the
  context as memory) get their bytes as the value of a one-entry mmap-able array
  map whose value size is exactly their length, so the kernel verifier
  bounds-checks every access as tightly as our interpreter. A prologue sets r1 =
  that map value (``lddw map_idx_value``), r2-r5 to the caller's values and r0,
  r6-r9 to zero (as the interpreter does). These run as XDP programs (spin locks and
  every map type allowed) over a dummy 14-byte packet; one kernel program is loaded
  per memory length and r2-r5 values, and kept. A wrapped program cannot pass its context to a
  helper that needs the real one (bpf_tail_call): the verifier says so.
* ``xdp``, ``tc``, ``socket``, ``cgroup_skb`` and ``raw_tracepoint`` programs run
  natively on their own context: packet and context fields go through data_in /
  ctx_in and come back from data_out / ctx_out;
* jumps, local calls and function pointers are re-aimed across inserted slots.

Object maps (``obj.map_list``) become kernel maps (see :mod:`.objects`): lddw
``map_fd``/``map_value`` and ``map_idx``/``map_idx_value`` all index the
``fd_array`` given to BPF_PROG_LOAD. The runtime's maps are copied into the kernel
before every run and back afterwards, so every engine sees the same map state.
Runs are pinned to the runtime's current CPU (per-CPU slots, smp_processor_id).

What the kernel does differently is reported, never papered over: its verifier
rejects what it cannot prove safe (KernelVerifierError with the log, pc mapped
back to our instruction index), helpers are the kernel's own (our Python helpers
and trace output are not used), and ``callx`` does not exist in Linux.
"""

from __future__ import annotations

import os
import struct
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator

from .. import isa
from ..errors import BpfEngineError
from ..isa import Insn, Pseudo
from ..runtime.context import ETH_HLEN, SK_BUFF_SIZE, SKB
from . import syscall as sc
from .rewrite import Spliced, splice

#: The kernel's lddw sources for our map references: everything goes through fd_array.
_FD_ARRAY_SOURCE = {Pseudo.MAP_FD: Pseudo.MAP_IDX, Pseudo.MAP_IDX: Pseudo.MAP_IDX,
                    Pseudo.MAP_VALUE: Pseudo.MAP_IDX_VALUE, Pseudo.MAP_IDX_VALUE: Pseudo.MAP_IDX_VALUE}
DUMMY_PACKET = bytes(ETH_HLEN)   # the smallest packet an XDP test run takes


def _mov(reg: int, value: int) -> list[Insn]:
    value &= isa.MASK64
    if value < (1 << 31) or value >= isa.MASK64 - (1 << 31) + 1:
        return [Insn(isa.Cls.ALU64 | 0xB0, reg, 0, 0, isa.to_s32(value))]
    return isa.lddw(reg, value)


def _map_value(reg: int, index: int, offset: int = 0) -> list[Insn]:
    first = Insn(isa.OP_LDDW, reg, Pseudo.MAP_IDX_VALUE, 0, index, offset)
    return [first, Insn(0, 0, 0, 0, offset)]


def map_references(insns: list[Insn]) -> list[Insn]:
    """Our lddw map sources rewritten to the kernel's fd_array forms (indices unchanged)."""
    out = list(insns)
    for pc, insn in enumerate(insns):
        if insn.is_lddw and insn.src in _FD_ARRAY_SOURCE:
            out[pc] = Insn(insn.opcode, insn.dst, _FD_ARRAY_SOURCE[insn.src], insn.off, insn.imm, insn.next_imm)
    return out


def wrap_exits(program, insns: list[Insn], r0_index: int, prologue: list[Insn]) -> Spliced:
    """Prepend ``prologue`` and make every exit of the main function store r0 into
    map ``r0_index`` first."""
    main_end = program.function_ranges()[0][1]
    store = _map_value(1, r0_index) + [Insn(isa.Cls.STX | isa.Mode.MEM | isa.Size.DW, 1, 0, 0, 0),
                                       Insn(isa.OP_EXIT)]
    exits = {pc: store for pc in range(main_end)
             if insns[pc].opcode == isa.OP_EXIT and program.specs[pc] is not None}
    return splice(insns, prologue, exits)


#: Our program types -> (kernel program type, wrapped): wrapped programs get their
#: memory or context bytes in a map value (see above), the others their own context.
PROGRAM_TYPES = {
    "raw": ("xdp", True), "syscall": ("xdp", True), "kprobe": ("xdp", True),
    "tracepoint": ("xdp", True), "perf_event": ("xdp", True),
    "xdp": ("xdp", False), "tc": ("sched_cls", False), "socket": ("socket_filter", False),
    "cgroup_skb": ("cgroup_skb", False), "raw_tracepoint": ("raw_tracepoint", False),
}
_SKB_TYPES = {"socket_filter", "sched_cls", "cgroup_skb"}
#: What makes a run depend on the CPU it runs on.
_CPU_MAPS = {"percpu_array", "percpu_hash", "lru_percpu_hash", "prog_array"}
_CPU_HELPERS = {8, 153, 154, 195}   # get_smp_processor_id, per_cpu_ptr, this_cpu_ptr, map_lookup_percpu_elem
#: __sk_buff fields (offset, size) the kernel reports back after a test run, and those
#: a test run may set (the kernel rejects the others when non-zero).
_SKB_OUT = tuple((SKB[f], n) for f, n in (("mark", 4), ("priority", 4), ("cb", 20), ("tstamp", 8)))
_SKB_IN = _SKB_OUT + tuple((SKB[f], 4) for f in ("ingress_ifindex", "ifindex", "wire_len", "gso_segs", "gso_size"))
#: Ethertype -> the smallest packet a socket-buffer test run takes (Ethernet + IP header).
_SKB_MIN_PACKET = {0x0800: ("IPv4", ETH_HLEN + 20), 0x86DD: ("IPv6", ETH_HLEN + 40)}
RAW_TP_MAX_ARGS = 12             # a raw_tracepoint test run takes up to 12 u64 arguments


@dataclass
class Loaded:
    """One kernel program (and, for wrapped programs, the map holding the memory)."""

    fd: int
    spliced: Spliced
    mem: sc.KernelMap | None = None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.mem is not None:
            self.mem.close()


@contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Run on CPU ``cpu`` (the runtime's current CPU), so per-CPU map slots and
    bpf_get_smp_processor_id agree with our runtime."""
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        raise BpfEngineError(f"kernel: cannot run on CPU {cpu} (the runtime's current CPU): this process "
                             f"may only use CPUs {', '.join(map(str, sorted(allowed)))}")
    if allowed == {cpu}:
        yield
        return
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


class KernelProgram:
    """A program prepared for the kernel; call it with r1..r5 like any executable."""

    def __init__(self, program, repeat: int = 1, log_level: int = 0):
        sc.require()
        if program.prog_type not in PROGRAM_TYPES:
            raise BpfEngineError(f"kernel: the kernel cannot test-run {program.prog_type} programs "
                                 f"(it can: {', '.join(sorted(PROGRAM_TYPES))})")
        if program.kfuncs:
            raise BpfEngineError(f"kernel: kfunc calls ({', '.join(sorted(set(program.kfuncs.values())))}) "
                                 "are not supported by the kernel engine")
        from .objects import KernelMaps
        self.program = program
        self.runtime = program.runtime
        self.repeat = repeat
        self.log_level = log_level
        self.kernel_type, self.wrapped = PROGRAM_TYPES[program.prog_type]
        self.loads: dict[tuple | None, Loaded] = {}
        self.last_run: sc.TestRun | None = None
        self.last_log = ""
        self.maps = KernelMaps.of(program.obj)
        self.insns = map_references(program.insns)
        self.used_maps = self.maps.used_by(self.insns)
        self.cpu_bound = self._cpu_bound()
        self._run = (self._run_wrapped if self.wrapped else self._run_skb if self.kernel_type in _SKB_TYPES
                     else getattr(self, "_run_" + self.kernel_type))

    def _cpu_bound(self) -> bool:
        """Whether the CPU shows: per-CPU maps, prog arrays (the callee might), or
        helpers that name the CPU; pinning costs two system calls, so only then."""
        types = {self.maps.twins[i].ours.type_name for i in self.used_maps}
        calls = {i.imm for i in self.insns if i.opcode == isa.OP_CALL and i.src == isa.CALL_HELPER}
        return bool(types & _CPU_MAPS or calls & _CPU_HELPERS)

    # ---------------------------------------------------------------- loading
    def load(self, mem_len: int = 0, args: tuple[int, ...] = (0, 0, 0, 0)) -> Loaded:
        """The kernel program (wrapped programs: for ``mem_len`` bytes of memory and
        r2..r5 = ``args``), loaded on first use and kept."""
        key = (mem_len, tuple(args)) if self.wrapped else None
        loaded = self.loads.get(key)
        if loaded is None:
            loaded = self.loads[key] = self._load(mem_len if self.wrapped else None, args)
        return loaded

    def _load(self, mem_len: int | None, args: tuple[int, ...]) -> Loaded:
        fds = self.maps.fds
        mem, prologue = None, []
        if mem_len is not None:
            if mem_len:
                mem = sc.create_map("array", 4, mem_len, 1, sc.F_MMAPABLE, "jitbpf_mem")
                fds = fds + [mem.fd]
            prologue = _mov(0, 0) + (_map_value(1, len(fds) - 1) if mem else _mov(1, 0))
            prologue += [i for reg, value in zip(range(2, 6), args) for i in _mov(reg, value)]
            prologue += [i for reg in range(6, 10) for i in _mov(reg, 0)]
        spliced = wrap_exits(self.program, self.insns, self.maps.r0_index, prologue)
        btf = self.maps.btf
        func_info = btf.func_info(self.program, lambda entry: spliced.where[entry])
        options = sc.LoadOptions(name=self.program.name, fd_array=fds,
                                 license=getattr(self.program.obj, "license", "") or "GPL",
                                 btf_fd=btf.program_fd(self.program) if func_info else 0, func_info=func_info,
                                 func_info_rec_size=8)
        try:
            fd = self._prog_load(spliced, options)
        except BaseException:
            if mem is not None:
                mem.close()
            raise
        return Loaded(fd, spliced, mem)

    def _prog_load(self, spliced: Spliced, options: sc.LoadOptions) -> int:
        code = isa.encode(spliced.insns)
        try:
            if self.log_level:
                fd, self.last_log = sc.load_with_log(code, self.kernel_type, options, self.log_level)
                return fd
            return sc.load_program(code, self.kernel_type, options)
        except sc.KernelVerifierError as e:
            pc = spliced.old_pc(e.pc)
            line = self.program.source_line(pc) if pc is not None else None
            raise sc.KernelVerifierError(e.message, e.log, pc, e.errno, line) from None

    # ---------------------------------------------------------------- running
    def __call__(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        cell = self.maps.r0.view
        cell[:8] = bytes(8)
        self.maps.push(self.used_maps)
        with pinned(self.runtime.cpu) if self.cpu_bound else nullcontext():
            self._run(r1, (r2, r3, r4, r5))
        self.maps.pull(self.used_maps)
        r0 = int.from_bytes(cell[:8], "little")
        return r0 if r0 & isa.MASK32 == self.last_run.retval else self.last_run.retval

    def run_batch(self, args_list: list[tuple[int, ...]], repeat: int = 1) -> list[int]:
        """One BPF_PROG_TEST_RUN per r1..r5 tuple, with the kernel's own ``repeat``."""
        saved, self.repeat = self.repeat, repeat
        try:
            return [self(*args) for args in args_list]
        finally:
            self.repeat = saved

    def _test_run(self, loaded: Loaded, **kw) -> sc.TestRun:
        repeat = self.repeat if self.kernel_type != "raw_tracepoint" else 0
        self.last_run = sc.test_run(loaded.fd, repeat=repeat, **kw)
        return self.last_run

    def _run_wrapped(self, r1: int, args: tuple[int, ...]) -> None:
        """Memory (raw) or context bytes from r1 to the end of its region, in a map value."""
        region = self.runtime.memory.find(r1, 1) if r1 else None
        start = r1 - region.address if region is not None else 0
        data = bytes(region.view[start:]) if region is not None else b""
        loaded = self.load(len(data), args)
        if loaded.mem is not None:
            loaded.mem.view[:len(data)] = data
        self._test_run(loaded, data=DUMMY_PACKET, data_out_size=0)
        if loaded.mem is not None and region.writable:
            region.view[start:] = loaded.mem.view[:len(data)]

    def _run_xdp(self, r1: int, args: tuple[int, ...]) -> None:
        frame = self.runtime.contexts[r1]
        data, end, meta = frame.pointers()
        if end - data < ETH_HLEN:
            raise BpfEngineError(f"kernel: an XDP test run needs a packet of at least {ETH_HLEN} bytes "
                                 f"(an Ethernet header), not {end - data}")
        ingress, queue = struct.unpack_from("<II", frame.ctx.view, 12)
        # the kernel's default frame comes from the loopback device (ifindex 1, queue 0)
        ctx = struct.pack("<6I", 0, end - data, 0, 0 if (ingress, queue) == (1, 0) else ingress, queue, 0)
        run = self._test_run(self.load(), data=frame.packet(), ctx=ctx)
        md_data, md_end = struct.unpack_from("<II", run.ctx_out, 0)
        packet = run.data_out[md_data:md_end]
        start = data - frame.hard_start
        frame.buffer.view[start:start + len(packet)] = packet
        frame._set(data, data + len(packet), data - md_data)

    def _run_skb(self, r1: int, args: tuple[int, ...]) -> None:
        memory = self.runtime.memory
        data, length = self.runtime.skb_packets[r1]
        head = ETH_HLEN if self.kernel_type == "socket_filter" else 0       # socket filters start after L2
        packet = memory.read(data - head, length + head)
        proto, need = _SKB_MIN_PACKET.get(int.from_bytes(packet[12:14], "big"), ("", 0))
        if len(packet) < need:
            raise BpfEngineError(f"kernel: a test run needs an {proto} packet of at least {need} bytes "
                                 f"(Ethernet and {proto} headers), not {len(packet)}")
        ours = memory.read(r1, SK_BUFF_SIZE)
        ctx = bytearray(SK_BUFF_SIZE)
        for off, size in _SKB_IN:
            ctx[off:off + size] = ours[off:off + size]
        run = self._test_run(self.load(), data=packet, ctx=bytes(ctx))
        memory.write(data, run.data_out[head:head + length])
        for off, size in _SKB_OUT:
            memory.write(r1 + off, run.ctx_out[off:off + size])

    def _run_raw_tracepoint(self, r1: int, args: tuple[int, ...]) -> None:
        region = self.runtime.memory.find(r1, 1)
        ctx = bytes(region.view[r1 - region.address:]) if region is not None else b""
        if len(ctx) % 8 or len(ctx) > 8 * RAW_TP_MAX_ARGS:
            raise BpfEngineError(f"kernel: a raw_tracepoint test run takes up to {RAW_TP_MAX_ARGS} u64 "
                                 f"arguments, not {len(ctx)} bytes")
        self._test_run(self.load(), ctx=ctx or None, ctx_out_size=0)

    def info(self, mem_len: int = 0) -> sc.ProgInfo:
        """The kernel's view of the program: xlated instructions and JITed code."""
        args = (mem_len if self.program.prog_type == "raw" else 0, 0, 0, 0)
        return sc.prog_info(self.load(mem_len, args).fd)

    def close(self) -> None:
        for loaded in self.loads.values():
            loaded.close()
        self.loads.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class KernelEngine:
    name = "kernel"

    def __init__(self, repeat: int = 1, log_level: int = 0):
        if repeat < 1:
            raise BpfEngineError("kernel: repeat must be at least 1")
        self.repeat = repeat
        self.log_level = log_level

    def compile(self, program) -> KernelProgram:
        return KernelProgram(program, self.repeat, self.log_level)


def make_engine(spec=None, repeat: int = 1, log_level: int = 0, **options) -> KernelEngine:
    if options:
        raise BpfEngineError(f"kernel: unknown options {', '.join(options)}")
    sc.require()
    return KernelEngine(repeat, log_level)
