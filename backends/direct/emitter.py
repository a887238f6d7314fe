"""Direct JITs: the shared skeleton of the x86_64 and arm64 template compilers.

One pass over the BPF instructions writes assembler text (a template per
instruction). Two ways to turn it into code, with the same bytes:

- the fast path (:mod:`backends.direct.patch`, the default): each instruction shape
  is assembled by keystone once per process (from the second program that brings it,
  with probes that locate its immediates and offsets) and later instructions of that
  shape are written as its bytes with their values patched in, skipping the template;
  other text is encoded from a per-line cache, and branches are laid out here. A
  program makes no keystone call when it brings no new line, branch form or shape to
  learn, at most two otherwise (new branch forms; new lines together with the probes
  of the shapes it teaches).
- the text path (``fast=False``, and the fallback when the fast path cannot handle a
  program): the whole image assembled in ONE keystone call (keystone costs ~35 us per
  call, ~3 us per instruction). Offsets the linker needs (relocation sites, function
  entries, one per BPF instruction for ``pc_map``) come from a table of
  ``.long label - start`` words appended to the text and cut off again, so keystone's
  own branch relaxation is the layout authority.

Relocation sites are fixed placeholder encodings (``.byte`` / ``.long``) that
:func:`backends.link.link` patches: helper calls go through its stubs, maps are
absolute 64-bit relocations. Nothing absolute is baked in: the image is relocatable.

Branch layout: no alignment or padding. Measured side by side against gcc -O2 on
benchmarks/programs (x86_64, AMD EPYC; issue 14): ``.p2align 4`` at loop heads, padding
after every conditional jump to 8 or 16 bytes, or both, each helped one program (log2:
2.1x -> 1.65x gcc) and cost as much elsewhere (switch 1.43x -> 1.65x, parse 1.03x ->
1.2x), so none is applied.

Every BPF function has the same native frame (callee-saved registers, a spill
area for r1-r5 around helper calls, 16-byte aligned at every call), so the BPF
``exit`` of any function is a jump to one shared epilogue, a jump from one
function into another behaves as in the interpreter, and an unwinding helper
(``rs->unwind``, see :mod:`backends.abi`) makes the code leave every frame through it.

The programs come from the passes (jitbpf.passes): constant blinding, budget ticks
and bounds checks are instructions there (AX, ``tick``, ``check``), helpers come
resolved. Run state (call depth, budget, the region table of bounds checks, the BPF
stack: 8 frames x 512 bytes, frame k's r10 = top - 512 k as in the interpreter)
comes in the run-state argument, kept in a callee-saved register.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from jitbpf import isa
from jitbpf.errors import BpfEngineError
from jitbpf.isa import Insn, OpInfo

from .. import abi
from ..link import Image, Reloc, Section, link
from .patch import Assembler, Piece, Unsupported

SENTINEL = 0x5EB0_F00D                            # last word of the assembled text: nothing was dropped


class Emitter:
    """The target-independent half of a direct JIT. A target subclass provides the
    templates (``op_alu``, ``op_jcond``, ``ldx``... and the call sequences); this class
    walks the program, names labels, resolves calls, collects relocations and assembles."""

    arch = ""
    ks_arch = ks_mode = 0
    fast = True                             # the patching assembler; False: the text path

    def __init__(self, program, fast: bool | None = None):
        if fast is not None:
            self.fast = fast
        self.program = program
        self.rt = program.runtime
        self.lines: list[Any] = []          # assembler lines (targets may add their own items)
        self.cold: list[Any] = []           # out-of-line code of the current function
        self.marks: list[str] = []          # labels whose offsets are read back after assembly
        self.relocs: list[tuple[str, int, str, str, int]] = []   # (mark, delta, kind, symbol, addend)
        self.symbols: dict[str, str] = {}   # image symbol -> label
        self.pc_marks: list[tuple[str, int]] = []
        self.pcs: list[int] = []            # fast path: the BPF slots (labels L<pc>) in order
        self.pc_offsets: list[int] = []     # and their offsets, after layout
        self.counter = 0
        self.uses_callx = self.uses_check = False
        self.errors: dict[tuple[int, int, int], str] = {}
        self.requests: dict = {}            # fast path: shapes to learn after the walk

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
        if not self.fast:
            return self._build()
        try:
            return self._build()
        except Unsupported:                          # the text path assembles it, or says why not
            return type(self)(self.program, fast=False)._build()

    def _build(self) -> Image:
        program = self.program
        self.label("K_start")
        for start, end in program.function_ranges():
            self.function(start, end)
        self.routines()
        exported = [(f"{abi.function_symbol(slot)}.body", f"F{slot}") for slot in program.functions]
        exported += [(f"direct.{name}", f"K_{name}") for name in ("unwind", "epilogue", "fail")]
        exported += [("direct.check", "K_check")] if self.uses_check else []
        exported += [("direct.callx", "K_callx")] if self.uses_callx else []
        for name, label in exported:                 # named in listings
            self.marks.append(label)
            self.symbols[name] = label
        code, offsets = self.assemble()
        symbols = {name: (".text", offsets[label]) for name, label in self.symbols.items()}
        relocs = [Reloc(".text", offsets[m] + delta, kind, symbol, addend)
                  for m, delta, kind, symbol, addend in self.relocs]
        pc_map = [(".text", offsets[m], pc) for m, pc in self.pc_marks] + \
            [(".text", offset, pc) for offset, pc in zip(self.pc_offsets, self.pcs)]
        return link(self.arch, [Section(".text", code, 16, executable=True)], symbols, relocs, pc_map)

    def function(self, start: int, end: int) -> None:
        self.prologue(start)
        insns, specs = self.program.insns, self.program.specs
        marks, pc_marks, lines, pcs = self.marks, self.pc_marks, self.lines, self.pcs
        fast = assembler(type(self)) if self.fast else None
        shapes = fast.shapes if fast else None
        shape_of = self.shape
        for pc in range(start, end):
            spec = specs[pc]
            if spec is None:                # second slot of an lddw
                continue
            insn = insns[pc]
            if not fast:
                label = f"L{pc}"
                marks.append(label)
                pc_marks.append((label, pc))
                lines.append(label + ":")
            else:
                lines.append(pc)            # label L<pc>, its offset known after layout
                pcs.append(pc)
                shape = shape_of(pc, insn, spec)
                if shape is not None:
                    key, values, make = shape
                    piece = shapes.get(key)
                    if piece.__class__ is not Piece:
                        parts = fast.piece(self, pc, insn, spec, key, values, make)
                    elif piece.simple:
                        parts = piece.parts
                    else:
                        parts = piece.instance(values, self.target(pc, isa.jump_target(insn, pc))
                                               if piece.jumps else None)
                    if parts is not None:
                        lines.extend(parts)
                        continue
            getattr(self, "op_" + spec.kind)(pc, insn, spec)
        if end < len(insns):                # falling off a function continues in the next one
            self.jump(f"L{end}")
        self.lines.extend(self.cold)
        self.cold = []

    def assemble(self) -> tuple[bytes, dict[str, int]]:
        if self.fast:
            return assembler(type(self)).assemble(self)
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

    def shape(self, pc: int, insn: Insn, spec: OpInfo):
        """Hook for the fast path: ``(key, values, maker)`` where ``key`` determines the
        template's text except for ``values`` (immediates/offsets, their classes in the
        key) and, for jumps, the target label, or None (the template runs as text). See
        :mod:`backends.direct.patch` (which refuses templates with side effects or text
        that depends on pc)."""
        return None

    def render(self) -> str:
        return "\n".join(self.lines)

    def check_size(self, size: int) -> None:
        """Hook: a target that predicted its layout verifies it here."""

    # ------------------------------------------------------------------ shared semantics
    def target(self, pc: int, target: int) -> str:
        return f"L{target}"

    def trap_label(self, pc: int, code: int, value: int | str = 0) -> str:
        """Label of a cold stub that reports trap ``code`` at ``pc`` and unwinds. ``value``
        is a constant or the name of a register holding it."""
        key = (pc, code, value)
        if key not in self.errors:
            self.errors[key] = self.out_of_line(*self.trap_lines(code, pc, value))
        return self.errors[key]

    def operand(self, insn: Insn) -> int | str:
        """The source operand: a register name for the X form, the sign-extended
        immediate for the K form."""
        return self.reg(insn.src) if insn.source == isa.SRC_X else insn.imm

    def op_ja(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.jump(self.target(pc, isa.jump_target(insn, pc)))

    def op_exit(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.jump("K_epilogue")

    def op_call(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if insn.src == isa.CALL_LOCAL:
            self.call_local(f"F{isa.jump_target(insn, pc)}")
        else:
            self.call_helper(self.program.helpers[pc].symbol)

    def op_callx(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.uses_callx = True
        self.callx(pc, self.reg(insn.dst))

    def op_lddw(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if insn.src == isa.Pseudo.FUNC:
            self.function_address(self.reg(insn.dst), isa.jump_target(insn, pc))
        elif insn.src == isa.Pseudo.IMM64:
            self.load_imm(self.reg(insn.dst), isa.to_s64(insn.imm64))
        else:
            self.symbol_address(self.reg(insn.dst), *self.program.lddw_symbol(pc))

    def op_tick(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.emit(*self.budget_tick(self.spent_label(pc)))

    def spent_label(self, pc: int) -> str:
        """Label of a cold stub for a tick at ``pc`` that found the budget spent."""
        key = (pc, "spent", 0)
        if key not in self.errors:
            self.errors[key] = self.out_of_line(*self.spent_lines(pc))
        return self.errors[key]

    def op_check(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.uses_check = True
        self.check(self.reg(insn.dst), insn.off, self.check_info(pc, spec.width, bool(insn.imm)))

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
        if self.uses_check:
            self.check_routine()
        if self.uses_callx:
            self.callx_routine()

    # Target hooks (documented in the subclasses): reg, prologue, exits, jump_lines, load_imm,
    # symbol_address, budget_tick, spent_lines, trap_lines, call_external, call_local, call_helper, callx,
    # callx_routine, check, check_routine, function_address, packet_load, op_alu, op_end,
    # op_jcond, op_ldx, op_st, op_stx, op_atomic.


_assemblers: dict[tuple[int, int], Any] = {}
_fast: dict[type, Assembler] = {}


def assembler(cls: type) -> Assembler:
    """The fast path's caches for an emitter class (kept for the process)."""
    fast = _fast.get(cls)
    if fast is None:
        fast = _fast[cls] = Assembler(cls)
    return fast


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


EMITTERS = {"x86_64": "x86_64", "arm64": "arm64"}


def lower(program, arch: str, fast: bool = True) -> Image:
    """The direct JIT's linked image of ``program`` (as the passes left it) for ``arch``;
    ``fast=False``: through the whole-text keystone path (the reference for the fast one)."""
    import importlib
    emitter = importlib.import_module(f"{__package__}.{EMITTERS[arch]}").EMITTER
    return emitter(program, fast).build()
