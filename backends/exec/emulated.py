"""Run x86_64 or arm64 images inside unicorn, on any host.

Identity mapping keeps pointers equal to the other engines': the image, the
helper stubs, the run state, the stacks and every memory region of the runtime live
in host ``HostBuffer`` pages that are mapped into the emulator at their own host
addresses with ``mem_map_ptr`` (the emulator reads and writes the very same
bytes). Code is mapped read+execute, so a store into it is a clean fault. Regions
are re-synchronised before each run, so buffers that come and go between runs
(input memory, packets) are never left mapped after they are freed. One emulator
runs one thing at a time: runs from several threads take turns.

Helpers are 16-byte stubs holding a ``ret``; a code hook on the stub page runs the
Python helper with the argument registers and writes the result register, then
the ``ret`` returns to the caller. A helper error, or a helper ending the program
(tail call), stops the emulation at once. Callbacks into BPF (bpf_loop) start a
nested emulation from inside the hook. Invalid accesses become BpfRuntimeError
with the faulting address and, where known, the BPF instruction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from unicorn import (UC_ARCH_ARM64, UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_MEM_INVALID, UC_MEM_FETCH_UNMAPPED,
                     UC_MEM_READ_PROT, UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED,
                     UC_MODE_64, UC_MODE_ARM, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc,
                     UcError)
from unicorn import arm64_const as A
from unicorn import x86_const as X

from jitbpf.errors import BpfEngineError, BpfRuntimeError
from jitbpf.runtime import HostBuffer, Runtime

from .. import abi
from ..link import Image
from .loaded import LoadedCode, RunOptions
from .runstate import RunState


@dataclass(frozen=True)
class ArchSpec:
    uc_arch: int
    uc_mode: int
    args: tuple[int, ...]     # r1..r5 and the run state
    ret: int
    sp: int
    pc: int
    link: int | None          # link register (arm64) or None (x86_64 pushes the return address)
    ret_insn: bytes


ARCHES = {
    "x86_64": ArchSpec(UC_ARCH_X86, UC_MODE_64,
                       (X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RDX, X.UC_X86_REG_RCX, X.UC_X86_REG_R8,
                        X.UC_X86_REG_R9),
                       X.UC_X86_REG_RAX, X.UC_X86_REG_RSP, X.UC_X86_REG_RIP, None, b"\xc3"),
    "arm64": ArchSpec(UC_ARCH_ARM64, UC_MODE_ARM,
                      (A.UC_ARM64_REG_X0, A.UC_ARM64_REG_X1, A.UC_ARM64_REG_X2, A.UC_ARM64_REG_X3,
                       A.UC_ARM64_REG_X4, A.UC_ARM64_REG_X5),
                      A.UC_ARM64_REG_X0, A.UC_ARM64_REG_SP, A.UC_ARM64_REG_PC, A.UC_ARM64_REG_X30,
                      bytes.fromhex("c0035fd6")),
}
STACK_SIZE = 1 << 20
STUB_SLOT = 16
DEFAULT_MAX_INSTRUCTIONS = 200_000_000
_ACCESS = {UC_MEM_READ_UNMAPPED: "read of unmapped memory", UC_MEM_WRITE_UNMAPPED: "write to unmapped memory",
           UC_MEM_FETCH_UNMAPPED: "jump to unmapped memory", UC_MEM_READ_PROT: "read of protected memory",
           UC_MEM_WRITE_PROT: "write to read-only memory"}


class EmulatedCode(LoadedCode):
    """An Image loaded into a unicorn instance; call it with r1..r5."""

    def __init__(self, image: Image, rt: Runtime, entry: str = abi.ENTRY,
                 function_symbols: list[str] | None = None, options: RunOptions = RunOptions(),
                 max_instructions: int = DEFAULT_MAX_INSTRUCTIONS, low: bool = False):
        if image.arch not in ARCHES:
            raise BpfEngineError(f"unicorn executor: unsupported architecture {image.arch}")
        self.spec = ARCHES[image.arch]
        self.max_instructions = max_instructions
        self.uc = Uc(self.spec.uc_arch, self.spec.uc_mode)
        self.lock = threading.RLock()
        self.code = HostBuffer(len(image), low=low)
        self._place(image, rt, self.code.address, entry, function_symbols, options)
        self.stub_names: list[str] = []
        self.stubs = HostBuffer(4096)
        self.stack = HostBuffer(STACK_SIZE)               # the emulated CPU's own stack
        self.code.view[:] = image.load(self.code.address, self._resolve)
        self.halt = self.stubs.address + self.stubs.size - STUB_SLOT
        for slot in range(0, self.stubs.size, STUB_SLOT):
            self.stubs.view[slot:slot + len(self.spec.ret_insn)] = self.spec.ret_insn
        text = image.writable_from if image.writable_from < len(image) else self.code.capacity
        self.uc.mem_map_ptr(self.code.address, text, UC_PROT_READ | UC_PROT_EXEC, self.code.address)
        if self.code.capacity > text:
            self.uc.mem_map_ptr(self.code.address + text, self.code.capacity - text, UC_PROT_READ | UC_PROT_WRITE,
                                self.code.address + text)
        for buf, prot in ((self.stubs, UC_PROT_READ | UC_PROT_EXEC), (self.stack, UC_PROT_READ | UC_PROT_WRITE)):
            self.uc.mem_map_ptr(buf.address, buf.capacity, prot, buf.address)
        self.uc.hook_add(UC_HOOK_CODE, self._on_stub, begin=self.stubs.address, end=self.halt - 1)
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._on_fault)
        self.mapped: dict[tuple[int, int], int] = {}     # (address, size) of runtime pages -> prot
        self.fault: str | None = None
        self.fault_slot: int | None = None

    # ---------------------------------------------------------------- linking
    def _resolve(self, name: str) -> int:
        address = self.resolve_data(name)
        if address is not None:
            return address
        abi.helper_for_symbol(self.rt, name)            # fails early for an unknown helper
        if name not in self.stub_names:
            if (len(self.stub_names) + 2) * STUB_SLOT > 4096:
                raise BpfEngineError("too many distinct helpers for the emulator's stub page")
            self.stub_names.append(name)
        return self.stubs.address + STUB_SLOT * self.stub_names.index(name)

    # ---------------------------------------------------------------- memory
    def _sync_regions(self, state: RunState) -> None:
        """Map every runtime region's pages and the run state; unmap pages whose regions are gone."""
        wanted: dict[tuple[int, int], int] = {(state.page.address, state.page.capacity): UC_PROT_READ | UC_PROT_WRITE}
        for region in self.rt.memory.regions:
            owner = region.owner
            if not isinstance(owner, HostBuffer):
                continue
            prot = UC_PROT_READ | (UC_PROT_WRITE if region.writable else 0)
            key = (owner.address, owner.capacity)
            wanted[key] = wanted.get(key, 0) | prot
        for key in [k for k in self.mapped if wanted.get(k) != self.mapped[k]]:
            self.uc.mem_unmap(*key)
            del self.mapped[key]
        for key, prot in wanted.items():
            if key not in self.mapped:
                self.uc.mem_map_ptr(key[0], key[1], prot, key[0])
                self.mapped[key] = prot

    # ---------------------------------------------------------------- hooks
    def _on_stub(self, uc: Uc, address: int, size: int, _data) -> None:
        name = self.stub_names[(address - self.stubs.address) // STUB_SLOT]
        args = [uc.reg_read(r) for r in self.spec.args[:5]]
        try:
            result = abi.helper_for_symbol(self.rt, name).func(self.rt, *args) & abi.MASK64
        except BaseException as exc:           # noqa: BLE001 - re-raised after the emulation stops
            self.rt.fail_program(exc)
            result = 0
        uc.reg_write(self.spec.ret, result)
        if self.rt.unwinding:
            uc.emu_stop()

    def _on_fault(self, uc: Uc, access: int, address: int, size: int, value: int, _data) -> bool:
        pc = uc.reg_read(self.spec.pc)
        self.fault_slot = self.image.bpf_slot(pc - self.code.address)
        self.fault = (f"{_ACCESS.get(access, 'invalid access')} at 0x{address:x} ({size} bytes)"
                      f" by native code at 0x{pc:x}")
        return False

    # ---------------------------------------------------------------- running
    def _start(self, address: int, args: tuple[int, ...], sp: int, state: RunState) -> int:
        uc, spec = self.uc, self.spec
        for reg, value in zip(spec.args, [*args, *[0] * (5 - len(args)), state.address]):
            uc.reg_write(reg, value & abi.MASK64)
        sp &= ~0xF
        if spec.link is None:                      # x86_64: the call pushed the return address
            sp -= 8
            self.stack.view[sp - self.stack.address:sp - self.stack.address + 8] = self.halt.to_bytes(8, "little")
        else:
            uc.reg_write(spec.link, self.halt)
        uc.reg_write(spec.sp, sp)
        self.fault, self.fault_slot = None, None
        try:
            uc.emu_start(address, self.halt, count=self.max_instructions)
        except UcError as e:
            if self.fault is None:         # a CPU exception, not a memory hook (arm64 exclusive pairs)
                native = uc.reg_read(spec.pc)
                self.fault = f"{e} by native code at 0x{native:x}"
                self.fault_slot = self.image.bpf_slot(native - self.code.address)
            raise BpfRuntimeError(f"native fault: {self.fault}", pc=self.fault_slot) from None
        pc = uc.reg_read(spec.pc)
        if pc != self.halt and not self.rt.unwinding:
            raise BpfRuntimeError(f"emulation stopped after {self.max_instructions} native instructions "
                                  f"(at 0x{pc:x}): the program does not terminate in time")
        return uc.reg_read(spec.ret)

    def __call__(self, *args: int) -> int:
        with self.lock:
            return super().__call__(*args)

    def _enter(self, address: int, args: tuple[int, ...], state: RunState) -> int:
        self._sync_regions(state)
        return self._start(address, args, self.stack.address + self.stack.size, state)

    def _nested(self, address: int, args: tuple[int, ...], state: RunState) -> int:
        """A callback from inside a helper hook: a nested emulation below the caller's frame."""
        saved = self.uc.context_save()
        sp = self.uc.reg_read(self.spec.sp) - 256          # below the caller's frame and red zone
        try:
            return self._start(address, args, sp, state)
        finally:
            self.uc.context_restore(saved)

    def code_bytes(self) -> bytes:
        return self.code.bytes()
