"""Direct JITs: the shared skeleton of the x86_64 and arm64 template compilers.

One pass over the BPF instructions writes assembler text (a template per
instruction), and the whole image is assembled in ONE keystone call (keystone
costs ~35 us per call, ~3 us per instruction). Offsets the linker needs
(relocation sites, function entries, one per BPF instruction for ``pc_map``)
come from a table of ``.long label - start`` words appended to the text and cut
off again, so keystone's own branch relaxation stays the only layout authority.
Relocation sites are fixed placeholder encodings (``.byte`` / ``.long``) that
:func:`backends.link.link` patches: helper calls go through its stubs, the
unwind cell through its GOT.

Every BPF function has the same native frame (callee-saved registers, a spill
area for r1-r5 around helper calls, 16-byte aligned at every call), so the BPF
``exit`` of any function is a jump to one shared epilogue, a jump from one
function into another behaves as in the interpreter, and an unwinding helper
(abi: the ``jitbpf_unwind`` cell) makes the code leave every frame through it.

Run state lives in a control block per compiled program (a HostBuffer): one page
for the call depth, the loop budget and the region table of bounds checks, then
one page of BPF stack, 8 frames x 512 bytes, frame k's r10 = top - 512 k as in
the interpreter. The stack page is the region "stack" while the program runs, so
helpers and unicorn see it. A compiled program is therefore not re-entrant from
another thread (neither is the interpreter).

Options (``compile("direct", ...)``):
- ``blind=True``: constant blinding; every immediate reaches a register as
  ``(imm ^ key) ^ key`` with a fresh random key, so no program-chosen constant
  appears in the code.
- ``bounds_check=True``: every load, store and atomic checks its address against
  the regions registered when the run starts (the stack included); a miss asks
  the runtime (regions that appeared since), and a violation raises the
  interpreter's BpfRuntimeError with the BPF pc instead of faulting.
- ``budget=N``: at most N taken back-edges per run, then BpfRuntimeError.
Errors found by generated code go through ``abi.TRAP``.
"""

from __future__ import annotations

import ctypes
import random
import re
import struct
import weakref
from dataclasses import dataclass
from typing import Any

from jitbpf import isa
from jitbpf.errors import BpfEngineError
from jitbpf.isa import MAX_CALL_DEPTH, STACK_SIZE, Insn, OpInfo
from jitbpf.runtime import AddressSpace, Helper, HostBuffer, Region

from . import abi
from .link import Image, Reloc, Section, link

# Control block layout (byte offsets).
CTRL_DEPTH, CTRL_BUDGET, CTRL_COUNT, CTRL_TABLE = 0, 8, 16, 32
ENTRY_SIZE = 24                                   # region table entry: start, end, writable
PAGE = 4096
TABLE_ENTRIES = (PAGE - CTRL_TABLE) // ENTRY_SIZE
STACK_TOP = 2 * PAGE                              # the stack page is the control block's second page
assert STACK_SIZE * MAX_CALL_DEPTH == PAGE

CHECK = "jitbpf_check_access"
SENTINEL = 0x5EB0_F00D                            # last word of the assembled text: nothing was dropped

#: Control block address -> its compiled program (for the bounds-check slow path).
_live: dict[int, "DirectProgram"] = {}


def _check_access(rt, ctrl: int, address: int, info: int, *_: int) -> int:
    """Slow path of a bounds check: the access missed the table of regions taken at the start
    of the run. Accept it if a region registered since covers it (the executors' own stacks
    excepted), else raise the interpreter's error for it."""
    program = _live.get(ctrl)
    visible = AddressSpace(program.program_regions() if program is not None else rt.memory.regions)
    visible._region(address, (info >> 1) & 0x7F, bool(info & 1), info >> 8)   # raises if invalid
    return 0


abi.RUNTIME_CALLS.setdefault(CHECK, Helper(-3, CHECK, _check_access))   # bound by name, like TRAP


@dataclass(frozen=True)
class Options:
    blind: bool = False
    bounds_check: bool = False
    budget: int | None = None


class Emitter:
    """The target-independent half of a direct JIT. A target subclass provides the
    templates (``op_alu``, ``op_jcond``, ``ldx``... and the call sequences); this class
    walks the program, names labels, resolves calls, collects relocations and assembles."""

    arch = ""
    ks_arch = ks_mode = 0
    #: Name of the register that holds a materialised (or blinded) immediate operand.
    IMM_REG = ""

    def __init__(self, program, options: Options, ctrl: int):
        self.program = program
        self.rt = program.runtime
        self.options = options
        self.ctrl = ctrl
        self.lines: list[Any] = []          # assembler lines (targets may add their own items)
        self.cold: list[Any] = []           # out-of-line code of the current function
        self.marks: list[str] = []          # labels whose offsets are read back after assembly
        self.relocs: list[tuple[str, int, str, str, int]] = []   # (mark, delta, kind, symbol, addend)
        self.symbols: dict[str, str] = {}   # image symbol -> label
        self.pc_marks: list[tuple[str, int]] = []
        self.counter = 0
        self.rng = random.SystemRandom() if options.blind else None     # keys from os.urandom
        self.uses_callx = False
        self.errors: dict[tuple[int, int, int], str] = {}

    # ------------------------------------------------------------------ text
    def emit(self, *lines: Any) -> None:
        self.lines.extend(lines)

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def fresh(self) -> str:
        self.counter += 1
        return f"J{self.counter}"

    def mark(self) -> str:
        """A label at the current position whose offset will be known after assembly."""
        name = f"M{len(self.marks)}"
        self.marks.append(name)
        self.label(name)
        return name

    def reloc(self, kind: str, symbol: str, addend: int = 0, delta: int = 0) -> None:
        """Record a relocation for the instruction emitted next (``delta`` bytes into it)."""
        self.relocs.append((self.mark(), delta, kind, symbol, addend))

    def out_of_line(self, *lines: Any) -> str:
        """Cold code placed after the current function; returns its label."""
        name = self.fresh()
        self.cold.append(f"{name}:")
        self.cold.extend(lines)
        return name

    # ------------------------------------------------------------------ program walk
    def build(self) -> Image:
        program = self.program
        self.label("K_start")
        for start, end in program.function_ranges():
            self.function(start, end)
        self.routines()
        exported = [(f"{abi.function_symbol(slot)}.body", f"F{slot}") for slot in program.functions]
        exported += [(f"direct.{name}", f"K_{name}") for name in ("unwind", "epilogue", "fail")]
        exported += [("direct.check", "K_check")] if self.options.bounds_check else []
        exported += [("direct.callx", "K_callx")] if self.uses_callx else []
        for name, label in exported:                 # named in listings
            self.marks.append(label)
            self.symbols[name] = label
        code, offsets = self.assemble()
        symbols = {name: (".text", offsets[label]) for name, label in self.symbols.items()}
        relocs = [Reloc(".text", offsets[m] + delta, kind, symbol, addend)
                  for m, delta, kind, symbol, addend in self.relocs]
        pc_map = [(".text", offsets[m], pc) for m, pc in self.pc_marks]
        return link(self.arch, [Section(".text", code, 16, executable=True)], symbols, relocs, pc_map)

    def function(self, start: int, end: int) -> None:
        self.prologue(start)
        insns, specs = self.program.insns, self.program.specs
        for pc in range(start, end):
            spec = specs[pc]
            if spec is None:                # second slot of an lddw
                continue
            self.marks.append(f"L{pc}")
            self.pc_marks.append((f"L{pc}", pc))
            self.label(f"L{pc}")
            getattr(self, "op_" + spec.kind)(pc, insns[pc], spec)
        if end < len(insns):                # falling off a function continues in the next one
            self.jump(f"L{end}")
        self.lines.extend(self.cold)
        self.cold = []

    def assemble(self) -> tuple[bytes, dict[str, int]]:
        text = self.render()
        table = "\n".join(f".long {m} - K_start" for m in self.marks)
        source = f"{text}\n{table}\n.long {SENTINEL:#x}\n"
        for attempt in range(2):
            try:
                encoding, _ = _keystone(self.ks_arch, self.ks_mode, fresh=attempt > 0).asm(source, 0)
                break
            except Exception as e:                  # a template bug, never the user's
                failure = e
        else:                                       # the same error from a fresh assembler: not a fluke
            raise BpfEngineError(f"direct-{self.arch}: keystone rejected the generated code: {failure}"
                                 f"{_first_bad_line(self.ks_arch, self.ks_mode, text)}")
        blob = bytes(encoding or b"")
        size = len(blob) - 4 * len(self.marks) - 4
        if size < 0 or blob[-4:] != struct.pack("<I", SENTINEL):    # keystone stops silently on some errors
            raise BpfEngineError(f"direct-{self.arch}: keystone dropped part of the generated code")
        values = struct.unpack_from(f"<{len(self.marks)}I", blob, size)
        self.check_size(size)
        return blob[:size], dict(zip(self.marks, values))

    def render(self) -> str:
        return "\n".join(self.lines)

    def check_size(self, size: int) -> None:
        """Hook: a target that predicted its layout verifies it here."""

    # ------------------------------------------------------------------ shared semantics
    def target(self, pc: int, target: int) -> str:
        """Label of jump target ``target`` from ``pc``; with a loop budget, a back-edge
        goes through a stub that counts it."""
        label = f"L{target}"
        if self.options.budget is None or target > pc:
            return label
        return self.out_of_line(*self.budget_tick(self.trap_label(pc, abi.TRAP_BUDGET, self.options.budget)),
                                *self.jump_lines(label))

    def trap_label(self, pc: int, code: int, value: int | str = 0) -> str:
        """Label of a cold stub that reports trap ``code`` at ``pc`` and unwinds. ``value``
        is a constant or the name of a register holding it."""
        key = (pc, code, value)
        if key not in self.errors:
            self.errors[key] = self.out_of_line(*self.trap_lines(code, pc, value))
        return self.errors[key]

    def operand(self, insn: Insn) -> int | str:
        """The source operand: a register name for the X form; for the K form the
        sign-extended immediate, or under blinding the register that now holds it."""
        if insn.source == isa.SRC_X:
            return self.reg(insn.src)
        value = insn.imm & isa.MASK64
        if self.rng is None:
            return isa.to_s64(value)
        self.blinded_load(self.IMM_REG, isa.to_s64(value))
        return self.IMM_REG

    def constant(self, reg: str, value: int) -> None:
        """Load a 64-bit constant into a native register (blinded if asked)."""
        value = isa.to_s64(value)
        if self.rng is None:
            self.load_imm(reg, value)
        else:
            self.blinded_load(reg, value)

    def key(self, bits: int) -> int:
        return isa.sign_extend(self.rng.getrandbits(bits), bits)

    def op_ja(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.jump(self.target(pc, isa.jump_target(insn, pc)))

    def op_exit(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.jump("K_epilogue")

    def op_call(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if insn.src == isa.CALL_LOCAL:
            self.call_local(f"F{isa.jump_target(insn, pc)}")
            return
        if insn.src == isa.CALL_KFUNC:
            name = self.program.kfuncs.get(pc)
            if name is None:
                raise BpfEngineError(f"kfunc call to BTF id {insn.imm} has no name (load it from an object "
                                     "with BTF)", pc=pc)
            try:
                self.rt.helpers.lookup(name)
            except BpfEngineError as e:
                raise BpfEngineError(e.message, pc=pc) from None
            self.call_helper(name)
            return
        if insn.imm not in self.rt.helpers:
            raise BpfEngineError(f"unknown helper {insn.imm}", pc=pc)
        self.call_helper(abi.helper_symbol(self.rt, insn.imm))

    def op_callx(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.uses_callx = True
        self.callx(pc, self.reg(insn.dst))

    def op_lddw(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if insn.src == isa.Pseudo.FUNC:
            self.function_address(self.reg(insn.dst), isa.jump_target(insn, pc))
        else:
            self.constant(self.reg(insn.dst), self.program.lddw_value(pc))

    def op_ldabs(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.packet_load(pc, spec.width, None, insn)

    def op_ldind(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.packet_load(pc, spec.width, self.reg(insn.src), insn)

    def callx_targets(self) -> tuple[list[int], list[tuple[int, str]]]:
        """What callx may reach: the program's functions and the helpers registered now."""
        helpers = [(h.id, h.symbol) for h in self.rt.helpers]
        return list(self.program.functions), helpers

    def check_info(self, pc: int, size: int, write: bool) -> int:
        return (pc << 8) | (size << 1) | int(write)

    def jump(self, label: str) -> None:
        self.emit(*self.jump_lines(label))

    def routines(self) -> None:
        """Shared code after the functions: the exits (``K_unwind``, ``K_epilogue``), the trap
        exit ``K_fail`` that reports through abi.TRAP and unwinds, and the bounds check and
        callx dispatch when used."""
        self.exits()
        self.label("K_fail")
        self.call_external(abi.TRAP)
        self.jump("K_unwind")
        if self.options.bounds_check:
            self.check_routine()
        if self.uses_callx:
            self.callx_routine()

    # Target hooks (documented in the subclasses): reg, prologue, exits, jump_lines, load_imm,
    # blinded_load, budget_tick, trap_lines, call_external, call_local, call_helper, callx,
    # callx_routine, check_routine, function_address, packet_load, op_alu, op_end, op_jcond,
    # op_ldx, op_st, op_stx, op_atomic.


_assemblers: dict[tuple[int, int], Any] = {}


def _keystone(arch: int, mode: int, fresh: bool = False):
    """The assembler for a target, made once; ``fresh`` replaces it. keystone's arm64
    assembler was seen to fail ("Unknown error") on valid text that a fresh instance
    then assembled (only in subprocesses of pytest-xdist workers, never reproduced
    otherwise), so a failure is retried once with a fresh instance."""
    ks = None if fresh else _assemblers.get((arch, mode))
    if ks is None:
        from keystone import Ks
        ks = _assemblers[(arch, mode)] = Ks(arch, mode)
    return ks


def _first_bad_line(arch: int, mode: int, text: str) -> str:
    """For an error message: the first line keystone rejects on its own (the labels it
    names defined after it; keystone's symbol-resolver callback mis-assembles arm64)."""
    from keystone import Ks
    ks = Ks(arch, mode)
    labels = {line[:-1] for line in text.splitlines() if line.endswith(":")}
    for line in text.splitlines():
        if line and not line.endswith(":"):
            refs = "".join(f"\n{word}:" for word in set(re.findall(r"[A-Za-z_]\w*", line)) & labels)
            try:
                if ks.asm(line + refs, 0)[0]:
                    continue
            except Exception:
                pass
            return f" (at '{line}')"
    return ""


# ---------------------------------------------------------------------- running

class DirectProgram:
    """A compiled program: its loaded image plus the control block and stack it runs with."""

    def __init__(self, program, image: Image, code, ctrl: HostBuffer, options: Options):
        self.program, self.image, self.code, self.ctrl, self.options = program, image, code, ctrl, options
        self.rt = program.runtime
        self.stack_region = Region("stack", ctrl.address + PAGE, PAGE, ctrl.view[PAGE:2 * PAGE], True, ctrl)
        self.active = 0
        _live[ctrl.address] = self
        weakref.finalize(self, _live.pop, ctrl.address, None)

    def program_regions(self) -> list[Region]:
        """The runtime's regions without those the executor adds for itself (its own
        stacks), which are never valid for the program."""
        own = getattr(self.code, "stack_region", None)
        if own is None:
            from .native import thread_stack_region
            own = thread_stack_region()
        return [r for r in self.rt.memory.regions if r is not own]

    def _fill_table(self) -> None:
        view = self.ctrl.view
        regions = self.program_regions()[:TABLE_ENTRIES]
        struct.pack_into("<Q", view, CTRL_COUNT, len(regions))
        for i, r in enumerate(regions):
            struct.pack_into("<QQQ", view, CTRL_TABLE + ENTRY_SIZE * i, r.address, r.end, int(r.writable))

    def __call__(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        view = self.ctrl.view
        saved = bytes(view[:CTRL_TABLE])
        if self.active == 0:                # a fresh run: depth 0, full budget, a zeroed stack
            struct.pack_into("<Qq", view, CTRL_DEPTH, 0, self.options.budget or 0)
            ctypes.memset(self.stack_region.address, 0, PAGE)
        self.active += 1
        try:
            with self.rt.mapped(self.stack_region):
                if self.options.bounds_check:
                    self._fill_table()
                return self.code(r1, r2, r3, r4, r5)
        finally:
            self.active -= 1
            if self.active:                 # a nested top-level run gives the outer one its state back
                view[:CTRL_TABLE] = saved

    def __getattr__(self, name: str):        # address(), code_bytes(), functions ... of the loaded code
        return getattr(self.code, name)


EMITTERS = {"x86_64": "backends.x86_64", "arm64": "backends.arm64"}


class DirectEngine:
    """``make_engine`` result: compiles programs with the direct JIT for one EngineSpec."""

    def __init__(self, spec, blind: bool = False, bounds_check: bool = False, budget: int | None = None,
                 **executor_options: Any):
        unknown = set(executor_options) - {"max_instructions"}
        if unknown:
            raise BpfEngineError(f"direct: unknown options {', '.join(sorted(unknown))}")
        if spec.executor == "native" and executor_options:
            raise BpfEngineError("direct: max_instructions applies to unicorn engines only")
        if budget is not None and not 0 <= budget < 1 << 62:
            raise BpfEngineError("direct: budget must be a number of back-edges >= 0")
        self.spec = spec
        self.options = Options(bool(blind), bool(bounds_check), budget)
        self.executor_options = executor_options

    @property
    def name(self) -> str:
        return self.spec.name

    def _emit(self, program, ctrl: int) -> Image:
        import importlib
        emitter = importlib.import_module(EMITTERS[self.spec.arch]).EMITTER
        return emitter(program, self.options, ctrl).build()

    def image(self, program, debug: bool = True) -> Image:
        """The linked image, for listings (``pc_map`` is always recorded, so ``debug`` is
        moot; the control block address is a placeholder)."""
        return self._emit(program, 0x7F00_0000_0000)

    def compile(self, program) -> DirectProgram:
        from .executor import load_image
        ctrl = HostBuffer(2 * PAGE)
        image = self._emit(program, ctrl.address)
        code = load_image(image, program, self.spec, **self.executor_options)
        return DirectProgram(program, image, code, ctrl, self.options)


def make_engine(spec, **options: Any) -> DirectEngine:
    return DirectEngine(spec, **options)
