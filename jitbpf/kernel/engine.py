"""The ``kernel`` engine: programs verified, JIT-compiled and run by the host kernel.

Raw-memory programs (r1 = memory, r2 = length, the conformance convention) are
wrapped before loading, because BPF_PROG_TEST_RUN gives no way to pass r1/r2 and
returns only 32 bits of r0:

* the input memory is the value of a one-entry ``BPF_F_MMAPABLE`` array map whose
  value size is exactly the memory length, so the kernel verifier bounds-checks
  accesses as tightly as our interpreter; a second such map holds r0;
* a prologue sets r1 = that map value (``lddw map_idx_value``), r2 = the length,
  r3-r5 to the caller's values and r0, r6-r9 to zero (as the interpreter does);
* every ``exit`` of the main function becomes ``lddw r1, <r0 cell>; *(u64 *)r1 = r0;
  exit``, so the full 64-bit r0 is in the r0 map when the run ends (bpf-to-bpf
  functions and callbacks keep their exits);
* jumps, local calls and function pointers are re-aimed across the inserted slots.

The program is loaded as a socket filter (any packet type works: r1 is replaced)
and run with a dummy 14-byte packet; memory and r0 are read back through the maps'
mmaps. One kernel program is loaded per memory length and kept for later runs.

Object maps (``obj.map_list``) become kernel maps (see :mod:`.objects`): lddw
``map_fd``/``map_value`` and ``map_idx``/``map_idx_value`` all index the
``fd_array`` given to BPF_PROG_LOAD. The runtime's maps are copied into the kernel
before every run and back afterwards, so every engine sees the same map state.

What the kernel does differently is reported, never papered over: its verifier
rejects what it cannot prove safe (KernelVerifierError with the log, pc mapped
back to our instruction index), helpers are the kernel's own (our Python helpers
and trace output are not used), and ``callx`` does not exist in Linux.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import isa
from ..errors import BpfEngineError
from ..isa import Insn, Pseudo
from . import syscall as sc
from .rewrite import Spliced, splice

#: The kernel's lddw sources for our map references: everything goes through fd_array.
_FD_ARRAY_SOURCE = {Pseudo.MAP_FD: Pseudo.MAP_IDX, Pseudo.MAP_IDX: Pseudo.MAP_IDX,
                    Pseudo.MAP_VALUE: Pseudo.MAP_IDX_VALUE, Pseudo.MAP_IDX_VALUE: Pseudo.MAP_IDX_VALUE}
DUMMY_PACKET = bytes(14)         # the smallest packet a socket-filter test run takes (ETH_HLEN)


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


@dataclass
class Loaded:
    """One kernel program and the maps it owns."""

    fd: int
    spliced: Spliced
    mem: sc.KernelMap | None
    r0: sc.KernelMap

    def close(self) -> None:
        if self.fd >= 0:
            import os
            os.close(self.fd)
            self.fd = -1
        for m in (self.mem, self.r0):
            if m is not None:
                m.close()


class KernelProgram:
    """A program prepared for the kernel; call it with r1..r5 like any executable."""

    def __init__(self, program, repeat: int = 1, log_level: int = 0):
        sc.require()
        self.program = program
        self.runtime = program.runtime
        self.repeat = repeat
        self.log_level = log_level
        self.loads: dict[int, Loaded] = {}
        self.last_run: sc.TestRun | None = None
        self.last_log = ""
        from .objects import KernelMaps
        self.maps = KernelMaps.of(program.obj)
        self.insns = map_references(program.insns)

    # ---------------------------------------------------------------- loading
    def load(self, mem_len: int) -> Loaded:
        """The kernel program for inputs of ``mem_len`` bytes (loaded on first use)."""
        loaded = self.loads.get(mem_len)
        if loaded is None:
            loaded = self.loads[mem_len] = self._load(mem_len)
        return loaded

    def _load(self, mem_len: int) -> Loaded:
        base = len(self.maps.fds)
        mem = sc.create_map("array", 4, mem_len, 1, sc.F_MMAPABLE, "jitbpf_mem") if mem_len else None
        r0 = sc.create_map("array", 4, 8, 1, sc.F_MMAPABLE, "jitbpf_r0")
        prologue = (_mov(0, 0) + (_map_value(1, base) if mem else _mov(1, 0)) + _mov(2, mem_len)
                    + [i for reg in range(3, 10) for i in _mov(reg, 0)])
        spliced = wrap_exits(self.program, self.insns, base + 1, prologue)
        fds = self.maps.fds + [mem.fd if mem else r0.fd, r0.fd]
        options = sc.LoadOptions(name=self.program.name, fd_array=fds, license="GPL")
        fd = self._prog_load(spliced, "socket_filter", options)
        return Loaded(fd, spliced, mem, r0)

    def _prog_load(self, spliced: Spliced, prog_type, options: sc.LoadOptions) -> int:
        code = isa.encode(spliced.insns)
        try:
            if self.log_level:
                fd, self.last_log = sc.load_with_log(code, prog_type, options, self.log_level)
                return fd
            return sc.load_program(code, prog_type, options)
        except sc.KernelVerifierError as e:
            pc = spliced.old_pc(e.pc)
            line = self.program.source_line(pc) if pc is not None else None
            raise sc.KernelVerifierError(e.message, e.log, pc, e.errno, line) from None

    # ---------------------------------------------------------------- running
    def __call__(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        if r3 or r4 or r5:
            raise BpfEngineError("kernel: only r1 (memory) and r2 (its length) can be passed in")
        memory = self.runtime.memory
        data = memory.read(r1, r2) if r1 else b""
        loaded = self.load(len(data))
        if loaded.mem is not None:
            loaded.mem.view[:len(data)] = data
        loaded.r0.view[:8] = bytes(8)
        self.maps.push()
        self.last_run = sc.test_run(loaded.fd, DUMMY_PACKET, repeat=self.repeat, data_out_size=0)
        self.maps.pull()
        if loaded.mem is not None:
            memory.write(r1, bytes(loaded.mem.view[:len(data)]))
        r0 = int.from_bytes(loaded.r0.view[:8], "little")
        return r0 if r0 & isa.MASK32 == self.last_run.retval else self.last_run.retval

    def info(self, mem_len: int = 0) -> sc.ProgInfo:
        """The kernel's view of the program: xlated instructions and JITed code."""
        return sc.prog_info(self.load(mem_len).fd)

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
