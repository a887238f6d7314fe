"""The LLVM backend: eBPF -> LLVM IR (text) -> x86_64 / aarch64 ELF object -> Image.

Lowering (one LLVM function per BPF function, native ABI of :mod:`backends.abi`):

- Registers r0-r9 are SSA values, built as the text is written: a block entered only
  from the conditional jump before it keeps that block's values, other blocks start with
  phis where the incoming values differ (a loop head with one per register, completed
  when its back edges are known; LLVM folds the trivial ones). r10 is the end of a
  zeroed 512-byte frame alloca. An access whose base is known
  (:meth:`flow.ProgramFlow.bases`) to be ``r10 + k`` addresses the alloca itself, so
  SROA keeps stack slots in registers; one based on ``argument + k`` addresses that
  argument's pointer, so alias analysis tells the accesses apart (both pointers are
  defined once, in the entry block); any other is ``inttoptr`` of the register plus the
  offset. (Registers as allocas for SROA made the IR ~30% longer; pointer bases of
  unknown offset, ``gep(arg, reg - arg)``, made sort 50% slower with Reassociate.)
- No undefined behaviour for any input: divisors are replaced *before* dividing (0 ->
  the ISA's result, INT_MIN / -1 -> negation), shift counts are masked, loads and stores
  are ``align 1``, the frame is zeroed (reads of unwritten slots give 0 as in the
  interpreter's first frame), no ``nsw``/``nuw``/``mustprogress``. Atomics are
  ``atomicrmw``/``cmpxchg seq_cst`` with natural alignment (LLVM would otherwise call
  libatomic); a misaligned atomic still runs on x86_64 and faults cleanly in unicorn.
- Helpers and kfuncs are calls to external symbols; after each, the unwind cell is
  tested (``abi.UNWIND``). callx compares the target with every function's address,
  then switches over the helper ids registered at compile time; anything else traps.
  LD_ABS/LD_IND call the runtime (``abi.LOAD_PACKET``).
- Exact interpreter semantics across bpf-to-bpf calls (shared register file, the
  8-frame limit) cost nothing unless a program needs them: see :mod:`backends.flow`.
  Inherited registers and r1-r5 handed back travel through internal globals; frames
  are counted only when the call graph can exceed 8 frames; an optional ``budget``
  counts back-edges so that fuzzed loops cannot hang. Run state is reset by an entry
  wrapper that exists only when such state does.

Pass pipeline (:data:`PASSES`): O1 and O2 run a pipeline chosen for BPF-derived IR,
O3 LLVM's whole default<O3> per-module pipeline, O0 nothing (the frame stays in
memory); code generation runs at the same level. BPF from clang is already optimised
at the BPF level (inlined, CSE'd, LICM'd, unrolled); what the lowering adds is stack
slots in memory, 32-bit operations as trunc/zext pairs, divisor guards and one block
per BPF block. So O1 is SROA, InstCombine and SimplifyCFG (diamonds become selects),
and O2 adds Reassociate before InstCombine (address arithmetic folds, xor/add chains
gain ILP: crc32 -4%). No inliner: bpf-to-bpf calls stay calls (clang kept them on
purpose), as in the kernel's JIT.

Compile time, benchmarks/compute.py's 1,000-slot program (callgrind, instructions per
compile, before -> after): x86_64 O2 430 M -> 248 M (CPU ~62 -> ~35-45 ms on this
loaded 2-core machine; side by side 0.53-0.65x), O0 124 -> 84 M, O1 405 -> 242 M, O3
431 -> 328 M; arm64 O2 (unicorn, line info) 568 M -> 319 M. Before: LLVM's
default<O2> pipeline ~200 M (InstCombine alone ~125 M: it runs 8 times, computing known
bits over long ALU chains), code generation ~125 M, IR parsing ~35 M, lowering ~45 M,
reading the object with pyelftools ~10 M (60 M on arm64 with its DWARF line table).
After: code generation ~134 M (instruction selection 63 M, register allocation 29 M;
the floor: DAG combining computes the same known bits), IR passes 62 M (InstCombine
41 M, SROA 11 M, Reassociate 6 M, SimplifyCFG 4 M), parsing 15 M, verifying 2 M,
lowering and flow analysis ~37 M, linking ~1 M (backends/elfobj.py). Execution of the
compute kernels against the old default<O2> side by side: checksum, fnv1a and vm the
same within noise, sort -25% (default<O2> unrolled its outer loop), crc32 +3% (it was
unrolled x2; LoopUnroll here gives it back but costs sort 20%: opt=3 unrolls); the
vectorisers, GVN, LICM and unrolling did not pay off on these programs overall. Not
kept: GVN (NewGVN +12 M, fewer instructions for code generation but more in total),
fast instruction selection (-40 M, crc32 +40%), turning the machine scheduler off (a
process-wide LLVM option; -8 M x86_64, no kernel faster). Compiled objects are cached
by content (ObjectCache).

IR construction: text, then ``parse_assembly``. Measured on a 1,000-instruction ALU
program (``benchmarks/ir_build.py``): building with ``llvmlite.ir`` and parsing its
string takes 44 ms; emitting the same IR as text and parsing it takes 7-8 ms (~6x faster;
llvmlite.ir builds Python objects, then prints the same text anyway).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from jitbpf import isa
from jitbpf.errors import BpfEngineError
from jitbpf.isa import MAX_CALL_DEPTH, STACK_SIZE, Insn, OpInfo, jump_target, sign_extend, to_s64

from . import abi
from .flow import Function, ProgramFlow, bit
from .link import Image, link_elf

TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "arm64": "aarch64-unknown-linux-gnu"}
OPT_LEVELS = (0, 1, 2, 3)

BINOPS = {"add": "add", "sub": "sub", "mul": "mul", "or": "or", "and": "and", "xor": "xor",
          "lsh": "shl", "rsh": "lshr", "arsh": "ashr"}
PREDICATES = {"jeq": "eq", "jne": "ne", "jgt": "ugt", "jge": "uge", "jlt": "ult", "jle": "ule",
              "jsgt": "sgt", "jsge": "sge", "jslt": "slt", "jsle": "sle"}
RMW = {"add": "add", "or": "or", "and": "and", "xor": "xor", "xchg": "xchg",
       "fetch_add": "add", "fetch_or": "or", "fetch_and": "and", "fetch_xor": "xor"}
#: IR passes per level (llvmlite's names); a level not listed runs LLVM's default
#: per-module pipeline for it (see the module docstring for why and what it costs).
PASSES: dict[int, tuple[str, ...]] = {
    1: ("sroa", "instruction_combine", "simplify_cfg"),
    2: ("sroa", "reassociate", "instruction_combine", "simplify_cfg"),
}
UNLIKELY = "!prof !{prof}"
SIGNATURE = "(i64, i64, i64, i64, i64)"
#: Code generation may turn the frame's zeroing into a call to ``memset`` (when it is
#: larger than the target inlines); the module brings its own, a word loop left out of
#: the optimiser ("no-builtins" on every function keeps LLVM from creating other calls).
MEMSET = """define dso_local ptr @memset(ptr %d, i32 %c, i64 %n) #1 {
entry:
  %b = trunc i32 %c to i8
  %b64 = zext i8 %b to i64
  %word = mul i64 %b64, 72340172838076673
  br label %words
words:
  %i = phi i64 [ 0, %entry ], [ %i8, %word_store ]
  %i8 = add i64 %i, 8
  %fits = icmp ule i64 %i8, %n
  br i1 %fits, label %word_store, label %bytes
word_store:
  %p = getelementptr i8, ptr %d, i64 %i
  store i64 %word, ptr %p, align 1
  br label %words
bytes:
  %j = phi i64 [ %i, %words ], [ %j1, %byte_store ]
  %more = icmp ult i64 %j, %n
  br i1 %more, label %byte_store, label %done
byte_store:
  %q = getelementptr i8, ptr %d, i64 %j
  store i8 %b, ptr %q, align 1
  %j1 = add i64 %j, 1
  br label %bytes
done:
  ret ptr %d
}
attributes #1 = { nounwind noinline optnone "no-builtins" }"""


def _ty(bits: int) -> str:
    return f"i{bits}"


def _const(value: int, bits: int) -> str:
    """An LLVM integer literal (signed form) for the low ``bits`` bits of value."""
    return str(sign_extend(value, bits))


class _Module:
    """Accumulates the text of one module: globals, declarations, functions, metadata."""

    def __init__(self, debug: bool):
        self.debug = debug
        self.globals: dict[str, str] = {}
        self.decls: dict[str, str] = {}
        self.body: list[str] = []
        self.meta: list[str] = []
        self.next_meta = 0
        self.prof = self.new_meta('!{!"branch_weights", i32 1, i32 1048575}')
        if debug:
            self.cu = self.new_meta("")
            self.file = self.new_meta('!DIFile(filename: "bpf", directory: "")')
            self.subroutine = self.new_meta("!DISubroutineType(types: !{})")
            self.meta[self.cu] = (f"!{self.cu} = distinct !DICompileUnit(language: DW_LANG_C99, file: "
                                  f"!{self.file}, producer: \"jitbpf\", isOptimized: true, "
                                  "runtimeVersion: 0, emissionKind: LineTablesOnly)")

    def new_meta(self, text: str) -> int:
        n = self.next_meta
        self.next_meta += 1
        self.meta.append(f"!{n} = {text}" if text else "")
        return n

    def declare(self, symbol: str) -> str:
        ref = f'@"{symbol}"'
        self.decls.setdefault(symbol, f"declare i64 {ref}{SIGNATURE} nounwind")
        return ref

    def intrinsic(self, text: str) -> None:
        self.decls.setdefault(text, text)

    def global_i64(self, name: str) -> str:
        ref = f'@"{name}"'
        self.globals.setdefault(name, f"{ref} = internal global i64 0, align 8")
        return ref

    def reg_global(self, reg: int) -> str:
        """The cell through which register ``reg`` passes between caller and callee."""
        return self.global_i64(f"jitbpf.r{reg}")

    def text(self) -> str:
        lines = [*self.globals.values(), f'@"{abi.UNWIND}" = external global i64, align 8',
                 *self.decls.values(), *self.body]
        lines.append(MEMSET)
        lines.append('attributes #0 = { nounwind "frame-pointer"="none" "no-builtins" }')
        if self.debug:
            lines.append(f"!llvm.dbg.cu = !{{!{self.cu}}}")
            a = self.new_meta('!{i32 2, !"Debug Info Version", i32 3}')
            b = self.new_meta('!{i32 7, !"Dwarf Version", i32 4}')
            lines.append(f"!llvm.module.flags = !{{!{a}, !{b}}}")
        lines.extend(m for m in self.meta if m)
        return "\n".join(lines) + "\n"


class Lowering:
    """Lowers one program to the text of an LLVM module."""

    TRAP_DEPTH_NO_PC = -1

    def __init__(self, program, budget: int | None = None, debug: bool = False):
        self.program = program
        self.rt = program.runtime
        self.insns: list[Insn] = program.insns
        self.specs: list[OpInfo | None] = program.specs
        self.flow = ProgramFlow(program)
        self.budget = budget
        self.m = _Module(debug)
        main = self.flow.functions[0]
        self.main_inherits = bool(main.live_in) and (0 in self.flow.called or main.address_taken)
        self.wrapper = self.flow.track_depth or budget is not None or self.main_inherits
        # Inherited registers callbacks (invoked from helpers) expect: zero, as in the interpreter.
        self.callback_inherits = 0
        for f in self.flow.functions:
            if f.address_taken:
                self.callback_inherits |= f.live_in
        self.checked_calls = self.flow.track_depth or budget is not None

    # ---------------------------------------------------------------- symbols
    def symbol(self, f: Function) -> str:
        if f.start == 0 and self.wrapper:
            return "bpf_main"
        return abi.function_symbol(f.start)

    def module(self) -> str:
        for f in self.flow.functions:
            _FunctionLowering(self, f).lower()
        if self.wrapper:
            self._entry_wrapper()
        return self.m.text()

    def _entry_wrapper(self) -> None:
        """``bpf_entry``: resets the run state, then runs the main function."""
        m, out = self.m, []
        if self.flow.track_depth:
            out.append(f"  store i64 0, ptr {m.global_i64('jitbpf.depth')}")
        if self.budget is not None:
            out.append(f"  store i64 {self.budget}, ptr {m.global_i64('jitbpf.budget')}")
        if self.main_inherits:
            for r in range(10):
                if self.flow.functions[0].live_in & bit(r):
                    out.append(f"  store i64 0, ptr {m.reg_global(r)}")
        args = ", ".join(f"i64 %a{i}" for i in range(1, 6))
        dbg = ""
        if m.debug:
            sp = m.new_meta(f'distinct !DISubprogram(name: "{abi.ENTRY}", scope: !{m.file}, file: !{m.file}, '
                            f"line: 1, type: !{m.subroutine}, scopeLine: 1, spFlags: DISPFlagDefinition | "
                            f"DISPFlagOptimized, unit: !{m.cu})")
            loc = m.new_meta(f"!DILocation(line: 1, scope: !{sp})")
            dbg, out = f" !dbg !{sp}", [line + f", !dbg !{loc}" for line in out]
            call_dbg = f", !dbg !{loc}"
        else:
            call_dbg = ""
        m.body.append(f'define dso_local i64 @"{abi.ENTRY}"({args}) #0{dbg} {{')
        m.body.extend(out)
        m.body.append(f'  %r = call i64 @"bpf_main"({args}){call_dbg}')
        m.body.append("  ret i64 %r")
        m.body.append("}")


class _FunctionLowering:
    """Emits one BPF function."""

    def __init__(self, lowering: Lowering, f: Function):
        self.L, self.f, self.m = lowering, f, lowering.m
        self.flow = lowering.flow
        self.insns, self.specs = lowering.insns, lowering.specs
        self.lines: list[str] = []
        self.n = 0
        self.dbg = ""
        self.bases = self.flow.bases(f)
        self.uses_stack = any(self._touches_fp(pc) for pc in f.slots)
        self.terminated = False
        # Registers are SSA values: r0-r9 now; at a join, a phi where the incoming values
        # differ (at a loop head, a phi for every register, completed at the end).
        self.values: list[str] = []
        self.current = "entry"                 # the LLVM block being written
        self.incoming: dict[str, list[tuple[str, list[str]]]] = {}     # label -> (block, values)
        self.open_phis: list[tuple[int, int, str, str]] = []          # (line, reg, label, dbg)
        self.pointers: dict[str, str] = {}     # register value -> its inttoptr, this block
        # Pointers the entry block defines once, on first use: "%stack+N" / "%pR+K" -> line.
        self.entry: dict[str, str] = {}
        self.entry_at = 2                      # where they go: after the frame's lines
        self.fp_line: int | None = None
        self.fp_used = False
        self.pending: list[str] = []          # out-of-line blocks (unwind, traps, back-edges), put last
        self.has_unwind = False

    # ---------------------------------------------------------------- text helpers
    def emit(self, line: str) -> None:
        self.lines.append(f"  {line}{self.dbg}")

    def val(self, expr: str) -> str:
        self.n += 1
        name = f"%t{self.n}"
        self.lines.append(f"  {name} = {expr}{self.dbg}")
        return name

    def label(self, pc: int) -> None:
        """Start the block of the BPF leader at ``pc`` with the registers' values: those
        of the conditional jump just before it if that is its only way in (that block
        dominates it), else phis over the incoming edges."""
        name = f"L{pc}"
        if not self.terminated:
            self.jump(name)
        self.block(name)
        if pc in self.f.branch_only:
            return
        self.pointers.clear()
        if pc in self.f.heads:                 # some edges come later: complete these at the end
            for r in range(10):
                self.open_phis.append((len(self.lines), r, name, self.dbg))
                self.lines.append("")
            self.values = [f"%r{r}.{name}" for r in range(10)]
        else:
            self.join(name)

    def join(self, name: str) -> None:
        """At the start of block ``name``, all of whose incoming edges are known: a phi for
        each register whose incoming values differ."""
        edges = self.incoming[name]
        first = edges[0][1]
        differ = set()
        for _, values in edges[1:]:
            if values != first:
                differ.update(r for r in range(10) if values[r] != first[r])
        values = list(first)
        for r in sorted(differ):
            values[r] = f"%r{r}.{name}"
            self.lines.append(f"  {values[r]} = {self._phi(edges, r)}{self.dbg}")
        self.values = values

    @staticmethod
    def _phi(edges: list[tuple[str, list[str]]], reg: int) -> str:
        return "phi i64 " + ", ".join(f"[{values[reg]}, %{block}]" for block, values in edges)

    def edge(self, name: str) -> None:
        """Record that the current block branches to ``name`` with the current values."""
        self.incoming.setdefault(name, []).append((self.current, list(self.values)))

    def jump(self, name: str) -> None:
        self.edge(name)
        self.terminate(f"br label %{name}")

    def block(self, name: str) -> None:
        """Start a block (register values stay as they are: callers decide)."""
        self.lines.append(f"{name}:")
        self.current = name
        self.terminated = False

    def terminate(self, line: str) -> None:
        self.emit(line)
        self.terminated = True

    def fresh(self, stem: str) -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def get(self, reg: int, bits: int = 64) -> str:
        if reg == isa.FP:
            self.fp_used = True
            value = "%fp"
        else:
            value = self.values[reg]
        return value if bits == 64 else self.val(f"trunc i64 {value} to i{bits}")

    def put(self, reg: int, value: str, bits: int = 64) -> None:
        if bits != 64:
            value = self.val(f"zext i{bits} {value} to i64")
        self.values[reg] = value

    def _touches_fp(self, pc: int) -> bool:
        insn, spec = self.insns[pc], self.specs[pc]
        return insn.dst == isa.FP or insn.src == isa.FP and spec.kind not in ("call", "lddw", "ldabs")

    # ---------------------------------------------------------------- function
    def lower(self) -> None:
        f, m, L = self.f, self.m, self.L
        sym = L.symbol(f)
        dbg_attr = ""
        if m.debug:
            self.sp = m.new_meta(f'distinct !DISubprogram(name: "{sym}", scope: !{m.file}, file: !{m.file}, '
                                 f"line: {f.start + 1}, type: !{m.subroutine}, scopeLine: {f.start + 1}, "
                                 f"spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: !{m.cu})")
            self.locs: dict[int, int] = {}
            dbg_attr = f" !dbg !{self.sp}"
            self._at(f.start)
        args = ", ".join(f"i64 %a{i}" for i in range(1, 6))
        self.lines.append(f'define dso_local i64 @"{sym}"({args}) #0{dbg_attr} {{')
        self.lines.append("entry:")
        self._prologue()
        for pc in f.slots:                    # a slot not following its predecessor is a leader
            spec = self.specs[pc]
            if pc in f.leaders:
                self.label(pc)
            self._at(pc)
            getattr(self, "_" + spec.kind)(pc, self.insns[pc], spec)
        self.lines.extend(self.pending)
        self.lines.append("}")
        for line, reg, name, dbg in self.open_phis:
            self.lines[line] = f"  %r{reg}.{name} = {self._phi(self.incoming[name], reg)}{dbg}"
        self.lines[self.entry_at:self.entry_at] = list(self.entry.values())
        if self.fp_line is not None and not self.fp_used:
            del self.lines[self.fp_line:self.fp_line + 2]
        m.body.extend(self.lines)

    def _at(self, pc: int) -> None:
        if self.m.debug:
            loc = self.locs.get(pc)
            if loc is None:
                loc = self.locs[pc] = self.m.new_meta(f"!DILocation(line: {pc + 1}, scope: !{self.sp})")
            self.dbg = f", !dbg !{loc}"

    def _prologue(self) -> None:
        f, L, m = self.f, self.L, self.m
        if self.uses_stack:
            m.intrinsic("declare void @llvm.memset.inline.p0.i64(ptr, i8, i64, i1 immarg)")
            self.emit(f"%stack = alloca [{STACK_SIZE} x i8], align 16")
            self.emit(f"call void @llvm.memset.inline.p0.i64(ptr align 16 %stack, i8 0, i64 {STACK_SIZE}, i1 false)")
            # r10 as a value escapes the frame (SROA then keeps it in memory): the
            # line stays only if some instruction reads r10 other than as an address base.
            self.fp_line = len(self.lines)
            self.emit(f"%fpp = getelementptr inbounds i8, ptr %stack, i64 {STACK_SIZE}")
            self.emit("%fp = ptrtoint ptr %fpp to i64")
            self.entry_at = len(self.lines)
        inherits = f.start != 0 or L.main_inherits
        for r in range(10):
            if 1 <= r <= 5:
                self.values.append(f"%a{r}")
            elif inherits and f.live_in & bit(r):
                self.values.append(self.val(f"load i64, ptr {m.reg_global(r)}"))
            else:
                self.values.append("0")
        if self.flow.track_depth:
            depth = m.global_i64("jitbpf.depth")
            self.emit(f"%depth = load i64, ptr {depth}")
            self.emit("%depth1 = add i64 %depth, 1")
            self.emit(f"store i64 %depth1, ptr {depth}")
            over = self.val(f"icmp ugt i64 %depth1, {MAX_CALL_DEPTH}")
            ok = self.fresh("ok")
            trap = self._trap_block(abi.TRAP_DEPTH, Lowering.TRAP_DEPTH_NO_PC, "0")
            self.terminate(f"br i1 {over}, label %{trap}, label %{ok}, {UNLIKELY.format(prof=m.prof)}")
            self.block(ok)
        self.jump(f"L{f.start}")

    # ---------------------------------------------------------------- out-of-line blocks
    def _unwind_label(self) -> str:
        if not self.has_unwind:
            self.has_unwind = True
            self.pending += ["unwind:", "  ret i64 0"]
        return "unwind"

    def _check_unwind(self) -> None:
        cell = self.val(f'load i64, ptr @"{abi.UNWIND}", align 8')
        stop = self.val(f"icmp ne i64 {cell}, 0")
        cont = self.fresh("c")
        self.terminate(f"br i1 {stop}, label %{self._unwind_label()}, label %{cont}, "
                       + UNLIKELY.format(prof=self.m.prof))
        self.block(cont)

    def _trap_block(self, code: int, pc: int, value: str) -> str:
        """A block that reports a runtime error through abi.TRAP and returns."""
        name = self.fresh("trap")
        trap = self.m.declare(abi.TRAP)
        saved, self.lines = self.lines, []
        self.lines.append(f"{name}:")
        self.emit(f"call i64 {trap}(i64 {code}, i64 {pc}, i64 {value}, i64 0, i64 0)")
        self.emit("ret i64 0")
        self.pending += self.lines
        self.lines = saved
        return name

    def _target(self, pc: int, target: int) -> str:
        """The label a jump from ``pc`` to ``target`` goes to (through the budget counter
        on a back-edge)."""
        if self.L.budget is None or target > pc:
            return f"L{target}"
        name = self.fresh("back")
        budget = self.m.global_i64("jitbpf.budget")
        trap = self._trap_block(abi.TRAP_BUDGET, pc, str(self.L.budget))
        saved, self.lines = self.lines, [f"{name}:"]
        left = self.val(f"load i64, ptr {budget}")
        left1 = self.val(f"sub i64 {left}, 1")
        self.emit(f"store i64 {left1}, ptr {budget}")
        out = self.val(f"icmp slt i64 {left1}, 0")
        self.emit(f"br i1 {out}, label %{trap}, label %L{target}, {UNLIKELY.format(prof=self.m.prof)}")
        self.incoming.setdefault(f"L{target}", []).append((name, list(self.values)))
        self.pending += self.lines
        self.lines = saved
        return name

    # ---------------------------------------------------------------- ALU
    def _operand(self, insn: Insn, bits: int) -> str:
        if insn.source == isa.SRC_X:
            return self.get(insn.src, bits)
        return _const(insn.imm, bits)

    def _alu(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        bits, op, t = spec.width, spec.op, _ty(spec.width)
        if op == "mov":
            if bits == 32 and insn.source == isa.SRC_K:
                self.put(insn.dst, str(insn.imm & isa.MASK32))
            else:
                self.put(insn.dst, self._operand(insn, bits), bits)
            return
        if op == "movsx":
            narrow = self.get(insn.src, spec.sx_bits)
            self.put(insn.dst, self.val(f"sext i{spec.sx_bits} {narrow} to {t}"), bits)
            return
        a = self.get(insn.dst, bits)
        if op == "neg":
            self.put(insn.dst, self.val(f"sub {t} 0, {a}"), bits)
            return
        b = self._operand(insn, bits)
        if op in ("lsh", "rsh", "arsh"):
            if insn.source == isa.SRC_K:
                b = str(insn.imm & (bits - 1))
            else:
                b = self.val(f"and {t} {b}, {bits - 1}")
        if op in BINOPS:
            self.put(insn.dst, self.val(f"{BINOPS[op]} {t} {a}, {b}"), bits)
            return
        self.put(insn.dst, self._divide(op, t, a, b, insn), bits)

    def _divide(self, op: str, t: str, a: str, b: str, insn: Insn) -> str:
        """div/mod/sdiv/smod with the divisor made safe before the operation."""
        signed = op[0] == "s"
        llvm_op = {"div": "udiv", "mod": "urem", "sdiv": "sdiv", "smod": "srem"}[op]
        if insn.source == isa.SRC_K:             # a constant divisor: decide now
            if insn.imm == 0:
                return "0" if op in ("div", "sdiv") else a
            if signed and insn.imm == -1:
                return self.val(f"sub {t} 0, {a}") if op == "sdiv" else "0"
            return self.val(f"{llvm_op} {t} {a}, {b}")
        zero = self.val(f"icmp eq {t} {b}, 0")
        bad = zero
        if signed:
            minus1 = self.val(f"icmp eq {t} {b}, -1")
            bad = self.val(f"or i1 {zero}, {minus1}")
        safe = self.val(f"select i1 {bad}, {t} 1, {t} {b}")
        result = self.val(f"{llvm_op} {t} {a}, {safe}")
        if op == "sdiv":
            negated = self.val(f"sub {t} 0, {a}")
            result = self.val(f"select i1 {minus1}, {t} {negated}, {t} {result}")
        return self.val(f"select i1 {zero}, {t} {'0' if op in ('div', 'sdiv') else a}, {t} {result}")

    def _end(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        bits = spec.width
        if spec.op == "le":
            if bits != 64:
                value = self.get(insn.dst)
                self.put(insn.dst, self.val(f"and i64 {value}, {(1 << bits) - 1}"))
            return
        t = _ty(bits)
        self.m.intrinsic(f"declare {t} @llvm.bswap.{t}({t})")
        value = self.get(insn.dst, bits)
        self.put(insn.dst, self.val(f"call {t} @llvm.bswap.{t}({t} {value})"), bits)

    # ---------------------------------------------------------------- jumps
    def _jcond(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        bits, t = spec.width, _ty(spec.width)
        a = self.get(insn.dst, bits)
        b = self._operand(insn, bits)
        if spec.op == "jset":
            cond = self.val(f"icmp ne {t} {self.val(f'and {t} {a}, {b}')}, 0")
        else:
            cond = self.val(f"icmp {PREDICATES[spec.op]} {t} {a}, {b}")
        target = self._target(pc, self.flow.next[pc][-1])
        if target[0] == "L":
            self.edge(target)
        self.edge(f"L{pc + 1}")
        self.terminate(f"br i1 {cond}, label %{target}, label %L{pc + 1}")

    def _ja(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        target = self._target(pc, self.flow.next[pc][-1])
        if target[0] == "L":
            self.edge(target)
        self.terminate(f"br label %{target}")

    def _exit(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if self.f.returns_args:
            for r in range(1, 6):
                self.emit(f"store i64 {self.get(r)}, ptr {self.m.reg_global(r)}")
        if self.flow.track_depth:
            self.emit(f'store i64 %depth, ptr {self.m.global_i64("jitbpf.depth")}')
        self.terminate(f"ret i64 {self.get(0)}")

    # ---------------------------------------------------------------- calls
    def _args(self) -> str:
        return ", ".join(f"i64 {self.get(r)}" for r in range(1, 6))

    def _call_external(self, symbol: str) -> None:
        if self.L.callback_inherits:
            for r in range(10):
                if self.L.callback_inherits & bit(r):
                    self.emit(f"store i64 0, ptr {self.m.reg_global(r)}")
        ref = self.m.declare(symbol)
        self.put(0, self.val(f"call i64 {ref}({self._args()})"))
        self._check_unwind()

    def _call_local(self, pc: int, callee: Function) -> None:
        m = self.m
        if self.flow.track_depth:
            depth = self.val(f'load i64, ptr {m.global_i64("jitbpf.depth")}')
            over = self.val(f"icmp uge i64 {depth}, {MAX_CALL_DEPTH}")
            ok = self.fresh("ok")
            trap = self._trap_block(abi.TRAP_DEPTH, pc, "0")
            self.terminate(f"br i1 {over}, label %{trap}, label %{ok}, {UNLIKELY.format(prof=m.prof)}")
            self.block(ok)
        for r in range(10):
            if callee.live_in & bit(r):
                self.emit(f"store i64 {self.get(r)}, ptr {m.reg_global(r)}")
        result = self.val(f'call i64 @"{self.L.symbol(callee)}"({self._args()})')
        self.put(0, result)
        if callee.may_unwind or self.L.checked_calls:
            self._check_unwind()
        if callee.returns_args:
            for r in range(1, 6):
                value = self.val(f"load i64, ptr {m.reg_global(r)}")
                self.put(r, value)

    def _call(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if insn.src == isa.CALL_LOCAL:
            self._call_local(pc, self.flow.by_start[jump_target(insn, pc)])
            return
        if insn.src == isa.CALL_KFUNC:
            name = self.L.program.kfuncs.get(pc)
            if name is None:
                raise BpfEngineError(f"kfunc call to BTF id {insn.imm} has no name (load it from an object "
                                     "with BTF)", pc=pc)
            try:
                self.L.rt.helpers.lookup(name)
            except BpfEngineError as e:
                raise BpfEngineError(e.message, pc=pc) from None
            self._call_external(name)
            return
        if insn.imm not in self.L.rt.helpers:
            raise BpfEngineError(f"unknown helper {insn.imm}", pc=pc)
        self._call_external(abi.helper_symbol(self.L.rt, insn.imm))

    def _callx(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        """Functions first (by address), then the registered helper ids, else a trap.
        Each case starts from the values at the dispatch; phis join them after."""
        target = self.get(insn.dst)
        done = self.fresh("cxdone")
        cases: list[tuple[str, str, Any]] = []
        for f in self.flow.functions:
            address = self.val(f'ptrtoint ptr @"{self.L.symbol(f)}" to i64')
            hit = self.val(f"icmp eq i64 {target}, {address}")
            yes, no = self.fresh("cxf"), self.fresh("cxn")
            self.terminate(f"br i1 {hit}, label %{yes}, label %{no}")
            cases.append((yes, "function", f))
            self.block(no)
        helpers = [(self.fresh("cxh"), "helper", h) for h in self.L.rt.helpers]
        trap = self._trap_block(abi.TRAP_CALLX, pc, target)
        self.terminate(f"switch i64 {target}, label %{trap} ["
                       + " ".join(f"i64 {to_s64(h.id)}, label %{lab}" for lab, _, h in helpers) + "]")
        dispatch = self.values
        for lab, kind, callee in cases + helpers:
            self.block(lab)
            self.values = list(dispatch)
            self.pointers.clear()
            if kind == "function":
                self._call_local(pc, callee)
            else:
                self._call_external(callee.symbol)
            self.jump(done)
        self.block(done)
        self.pointers.clear()
        self.join(done)

    # ---------------------------------------------------------------- memory
    def _address(self, pc: int, reg: int, off: int, size: int) -> str:
        """A pointer to ``reg + off``. Where the register is known to be r10 + k and the
        access lies inside the frame: into the frame alloca. Where it is an argument + k:
        from that argument's pointer, so alias analysis tells ``[r1+8]`` from ``[r1+16]``.
        Else from the ``inttoptr`` of the register's value (shared by the accesses of one
        block). Instruction selection folds the constant into the addressing mode."""
        known = (isa.FP, 0) if reg == isa.FP else self.bases[pc][reg]
        if known is not None:
            base, k = known
            if base == isa.FP:
                if self.uses_stack and -STACK_SIZE <= k + off and k + off + size <= 0:
                    return self._entry_pointer("%stack", STACK_SIZE + k + off, "inbounds ")
            else:
                return self._entry_pointer(self._entry_pointer(f"%a{base}", None), k + off)
        address = self.get(reg)
        pointer = self.pointers.get(address)
        if pointer is None:
            pointer = self.pointers[address] = self.val(f"inttoptr i64 {address} to ptr")
        return self.val(f"getelementptr i8, ptr {pointer}, i64 {off}") if off else pointer

    def _entry_pointer(self, base: str, offset: int | None, flags: str = "") -> str:
        """``base`` + offset (base as a pointer when offset is None), defined once in the
        entry block (which dominates every use)."""
        key = f"{base}+{offset}"
        name = f"{base}.p" if offset is None else f"{base}.{offset}".replace("-", "m") if offset else base
        if key not in self.entry and name != base:
            self.entry[key] = (f"  {name} = inttoptr i64 {base} to ptr" if offset is None else
                               f"  {name} = getelementptr {flags}i8, ptr {base}, i64 {offset}")
        return name

    def _ldx(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        bits = spec.width * 8
        p = self._address(pc, insn.src, insn.off, spec.width)
        value = self.val(f"load i{bits}, ptr {p}, align 1")
        if bits != 64:
            value = self.val(f"{'sext' if spec.signed else 'zext'} i{bits} {value} to i64")
        self.put(insn.dst, value)

    def _st(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        bits = spec.width * 8
        p = self._address(pc, insn.dst, insn.off, spec.width)
        self.emit(f"store i{bits} {_const(insn.imm, bits)}, ptr {p}, align 1")

    def _stx(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        bits = spec.width * 8
        p = self._address(pc, insn.dst, insn.off, spec.width)
        self.emit(f"store i{bits} {self.get(insn.src, bits)}, ptr {p}, align 1")

    def _atomic(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        size, bits = spec.width, spec.width * 8
        t = _ty(bits)
        p = self._address(pc, insn.dst, insn.off, size)
        if spec.op == "cmpxchg":
            expected = self.get(0, bits)
            pair = self.val(f"cmpxchg ptr {p}, {t} {expected}, {t} {self.get(insn.src, bits)} "
                            f"seq_cst seq_cst, align {size}")
            self.put(0, self.val(f"extractvalue {{ {t}, i1 }} {pair}, 0"), bits)
            return
        old = self.val(f"atomicrmw {RMW[spec.op]} ptr {p}, {t} {self.get(insn.src, bits)} seq_cst, align {size}")
        if spec.op.startswith("fetch_") or spec.op == "xchg":
            self.put(insn.src, old, bits)

    def _lddw(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if insn.src == isa.Pseudo.FUNC:
            callee = self.flow.by_start[jump_target(insn, pc)]
            value = self.val(f'ptrtoint ptr @"{self.L.symbol(callee)}" to i64')
        else:
            value = str(to_s64(self.L.program.lddw_value(pc)))
        self.put(insn.dst, value)

    def _packet(self, pc: int, size: int, offset: str) -> None:
        ref = self.m.declare(abi.LOAD_PACKET)
        value = self.val(f"call i64 {ref}(i64 {self.get(6)}, i64 {offset}, i64 {size}, i64 {pc}, i64 0)")
        self.put(0, value)
        self._check_unwind()

    def _ldabs(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self._packet(pc, spec.width, str(insn.imm))

    def _ldind(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        offset = self.val(f"add i32 {self.get(insn.src, 32)}, {insn.imm}")
        self._packet(pc, spec.width, self.val(f"sext i32 {offset} to i64"))


# ==================================================================== compiling

_lock = threading.Lock()
_machines: dict[tuple[str, int, str, bool], Any] = {}
_initialised = False
_managers = threading.local()


def _llvm():
    global _initialised
    import llvmlite.binding as llvm
    if not _initialised:
        with _lock:
            if not _initialised:
                llvm.initialize_all_targets()
                llvm.initialize_all_asmprinters()
                _initialised = True
    return llvm


def optimise(module, tm, opt: int) -> None:
    """Run the IR pipeline of level ``opt`` (1-3) over ``module`` (see PASSES). The pass
    managers of PASSES are built once per thread and level: llvmlite 0.50 keeps ~25-60 KB
    of every new one it runs, and a manager's passes carry state while they run. LLVM's
    default pipeline cannot run twice from one manager (O3 keeps ~120 KB per compile)."""
    llvm = _llvm()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=opt))
    passes = PASSES.get(opt)
    if passes is None:
        pb.getModulePassManager().run(module, pb)
        return
    managers = _managers.__dict__.setdefault("by_level", {})
    mpm = managers.get(opt)
    if mpm is None:
        mpm = managers[opt] = llvm.create_new_module_pass_manager()
        for name in passes:
            getattr(mpm, f"add_{name}_pass")()
    mpm.run(module, pb)


def target_machine(arch: str, opt: int, cpu: str = "generic", emulated: bool = False):
    """A cached TargetMachine for the triple of ``arch`` (cpu "host" = this machine's CPU).
    Instruction order does not matter to an emulator: code for unicorn is not scheduled
    a second time after register allocation (arm64 CPUs do that; -15 M instructions of
    ~370 M for benchmarks/compute.py's program)."""
    key = (arch, opt, cpu, emulated)
    tm = _machines.get(key)
    if tm is None:
        llvm = _llvm()
        name, features = cpu, []
        if cpu == "host":
            name, features = llvm.get_host_cpu_name(), [llvm.get_host_cpu_features().flatten()]
        if emulated and arch == "arm64":
            features.append("-use-postra-scheduler")
        target = llvm.Target.from_triple(TRIPLES[arch])
        tm = target.create_target_machine(cpu=name, features=",".join(features), opt=opt, reloc="pic",
                                          codemodel="small")
        _machines[key] = tm
    return tm


class ObjectCache:
    """Compiled objects by content: (arch, executor, opt, cpu, hash of the IR text) ->
    (object, line table). The IR bakes in everything the object depends on (bytecode,
    map and global addresses, the helpers registered, budget, line info), so equal keys
    mean equal objects; the least recently used entry goes first beyond ``size``."""

    def __init__(self, size: int = 256):
        self.size = size
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple, tuple[bytes, list | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple, value: tuple[bytes, list | None]) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


#: Shared by every LLVM engine of the process (``compile("llvm", cache=False)`` skips it).
CACHE = ObjectCache()


class LLVMEngine:
    """``make_engine`` result: compiles programs for one EngineSpec at one optimisation level."""

    def __init__(self, spec, opt: int = 2, budget: int | None = None, cpu: str | None = None,
                 debug: bool | None = None, verify: bool = True, cache: bool = True,
                 **executor_options: Any):
        if opt not in OPT_LEVELS:
            raise BpfEngineError(f"llvm: optimisation level must be 0-3, not {opt!r}")
        if budget is not None and budget < 0:
            raise BpfEngineError("llvm: budget must be >= 0")
        unknown = set(executor_options) - {"max_instructions"}
        if unknown:
            raise BpfEngineError(f"llvm: unknown options {', '.join(sorted(unknown))}")
        if spec.executor == "native" and executor_options:
            raise BpfEngineError("llvm: max_instructions applies to unicorn engines only")
        self.spec, self.opt, self.budget, self.verify, self.cache = spec, opt, budget, verify, cache
        self.cpu = cpu or ("host" if spec.executor == "native" else "generic")
        # Line info (BPF slot per native instruction) costs compile time; unicorn engines
        # use it to name the BPF instruction of a fault, listings always ask for it.
        self.debug = spec.executor == "unicorn" if debug is None else debug
        self.executor_options = executor_options
        self.triple = TRIPLES[spec.arch]

    @property
    def name(self) -> str:
        return self.spec.name

    def llvm_ir(self, program, optimized: bool = False) -> str:
        """The module's IR as generated, or after the optimisation pipeline."""
        text = Lowering(program, self.budget, self.debug).module()
        if not optimized:
            return text
        return str(self._optimised(text))

    def target_machine(self):
        return target_machine(self.spec.arch, self.opt, self.cpu, self.spec.executor == "unicorn")

    def _optimised(self, text: str):
        llvm = _llvm()
        tm = self.target_machine()
        try:
            # A context per module: constants and metadata are uniqued in the context and
            # would otherwise accumulate in the global one with every compile.
            module = llvm.parse_assembly(text, context=llvm.create_context())
            if self.verify:
                module.verify()
        except RuntimeError as e:                       # a lowering bug, never the user's
            raise BpfEngineError(f"llvm: generated IR is invalid: {e}") from None
        module.triple = self.triple
        module.data_layout = str(tm.target_data)
        if self.opt:
            optimise(module, tm, self.opt)
        return module

    def object(self, program) -> bytes:
        """The ELF relocatable object LLVM emits for ``program``."""
        return self._compiled(program)[0]

    def image(self, program, debug: bool | None = None) -> Image:
        """The linked image (with ``pc_map`` when line info is on)."""
        engine = self if debug is None or debug == self.debug else self._with(debug=debug)
        obj, pc_map = engine._compiled(program)
        return link_elf(obj, pc_map)

    def _compiled(self, program) -> tuple[bytes, list[tuple[str, int, int]] | None]:
        """(object, line table or None), from the cache when the same IR was compiled for
        the same target machine before."""
        text = Lowering(program, self.budget, self.debug).module()
        key = None
        if self.cache:
            key = (self.spec.arch, self.spec.executor, self.opt, self.cpu,
                   hashlib.blake2b(text.encode(), digest_size=32).digest())
            hit = CACHE.get(key)
            if hit is not None:
                return hit
        obj = self.target_machine().emit_object(self._optimised(text))
        pc_map = None
        if self.debug:
            from .listing import line_table
            pc_map = line_table(obj)
        if key is not None:
            CACHE.put(key, (obj, pc_map))
        return obj, pc_map

    def _with(self, **changes: Any) -> "LLVMEngine":
        options = dict(opt=self.opt, budget=self.budget, cpu=self.cpu, debug=self.debug, verify=self.verify,
                       cache=self.cache)
        options.update(changes)
        return LLVMEngine(self.spec, **options, **self.executor_options)

    def compile(self, program):
        from .executor import load_image
        return load_image(self.image(program), program, self.spec, **self.executor_options)


def make_engine(spec, opt: int = 2, **options: Any) -> LLVMEngine:
    return LLVMEngine(spec, opt, **options)
