"""The LLVM backend's lowering: eBPF (as the passes left it) -> the text of an LLVM module.

One LLVM function per BPF function, ``i64 f(i64 r1..r5, ptr rs)`` (:mod:`backends.abi`):

- Registers r0-r9 and AX are SSA values, built as the text is written: a block entered
  only from the conditional jump before it keeps that block's values, other blocks start
  with phis where the incoming values differ (a loop head with one per register,
  completed when its back edges are known; LLVM folds the trivial ones).
- The frame: a function whose r10 never escapes (every use of it, or of a register known
  to hold r10 + k, is an access inside its 512 bytes) gets a zeroed alloca, which SROA
  keeps in registers; any other function takes its 512 bytes from the run's BPF stack
  (``rs->sp``), as does every function once some function reaches outside its own frame
  through r10. So nothing of the host stack is ever addressable from BPF.
- An access whose base is known (:meth:`flow.ProgramFlow.bases`) to be ``r10 + k`` addresses
  the frame pointer itself; one based on ``argument + k`` addresses that argument's
  pointer, so alias analysis tells the accesses apart (both pointers are defined once,
  in the entry block); any other is ``inttoptr`` of the register plus the offset.
- No undefined behaviour for any input: divisors are replaced *before* dividing (0 ->
  the ISA's result, INT_MIN / -1 -> negation), shift counts are masked, loads and stores
  are ``align 1``, frames are zeroed, no ``nsw``/``nuw``/``mustprogress``. Atomics are
  ``atomicrmw``/``cmpxchg seq_cst`` with natural alignment (LLVM would otherwise call
  libatomic); a misaligned atomic still runs on x86_64 and faults cleanly in unicorn.
- Helpers and kfuncs are calls to external symbols; after each, ``rs->unwind`` is
  tested. callx compares the target with every function's address, then switches over
  the helper ids registered at compile time; anything else traps. LD_ABS/LD_IND call
  the runtime (``abi.LOAD_PACKET``); ``check`` calls a region-table scan written in IR
  below. ``tick`` counts down a copy of ``rs->budget`` in a local (SROA makes it a
  register: no store-to-load chain through memory in every loop), written back before
  every call and return and read again after a call; each tick also polls ``rs->stop``
  with a monotonic atomic load, which the watchdog thread sets (a plain load on both
  targets, which LLVM may neither hoist out of a loop nor fold into a closed-form count).
- Maps are external globals named ``map:NAME`` / ``mapvalue:NAME``: relocations.
- Blinded constants (``mov AX, k`` from the blinding pass) go through an empty inline
  asm, so LLVM cannot fold ``(imm ^ key) ^ key`` back into the program's constant.
- Exact interpreter semantics across bpf-to-bpf calls (shared register file, the
  8-frame limit) cost nothing unless a program needs them: see :mod:`jitbpf.analysis.flow`.
  Inherited registers and r1-r5 handed back travel through ``rs->regs``; frames are
  counted only when the call graph can exceed 8 frames.
"""

from __future__ import annotations

from typing import Any

from jitbpf import isa
from jitbpf.errors import BpfEngineError
from jitbpf.analysis.flow import ARG_BASES, Function, ProgramFlow, bit
from jitbpf.isa import AX, MAX_CALL_DEPTH, STACK_SIZE, Insn, OpInfo, jump_target, sign_extend, to_s64

from .. import abi

BINOPS = {"add": "add", "sub": "sub", "mul": "mul", "or": "or", "and": "and", "xor": "xor",
          "lsh": "shl", "rsh": "lshr", "arsh": "ashr"}
PREDICATES = {"jeq": "eq", "jne": "ne", "jgt": "ugt", "jge": "uge", "jlt": "ult", "jle": "ule",
              "jsgt": "sgt", "jsge": "sge", "jslt": "slt", "jsle": "sle"}
RMW = {"add": "add", "or": "or", "and": "and", "xor": "xor", "xchg": "xchg",
       "fetch_add": "add", "fetch_or": "or", "fetch_and": "and", "fetch_xor": "xor"}
UNLIKELY = "!prof !{prof}"
SIGNATURE = "(i64, i64, i64, i64, i64, ptr)"
#: The SSA registers (r10 is the frame pointer, not a value).
SSA = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, AX)
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


#: ``check``: the live stack (abi.RUN_SP .. RUN_STACK_TOP), then a scan of the run state's
#: region table (abi.RUN_COUNT / RUN_TABLE); a miss asks the runtime (abi.CHECK), which
#: accepts the access or fails the run.
CHECK_IR = f"""define internal void @jitbpf.check(ptr %rs, i64 %addr, i64 %info) #0 {{
entry:
  %size = lshr i64 %info, 1
  %sz = and i64 %size, 127
  %end = add i64 %addr, %sz
  %wrap = icmp ult i64 %end, %addr
  %countp = getelementptr inbounds i8, ptr %rs, i64 {abi.RUN_COUNT}
  %count = load i64, ptr %countp
  %write = trunc i64 %info to i1
  br i1 %wrap, label %slow, label %stack
stack:
  %spp = getelementptr inbounds i8, ptr %rs, i64 {abi.RUN_SP}
  %floor = load i64, ptr %spp
  %topp = getelementptr inbounds i8, ptr %rs, i64 {abi.RUN_STACK_TOP}
  %top = load i64, ptr %topp
  %above = icmp uge i64 %addr, %floor
  %below = icmp ule i64 %end, %top
  %live = and i1 %above, %below
  br i1 %live, label %done, label %loop
loop:
  %i = phi i64 [ 0, %stack ], [ %i1, %next ]
  %more = icmp ult i64 %i, %count
  br i1 %more, label %body, label %slow
body:
  %off = mul i64 %i, {abi.TABLE_ENTRY}
  %at = add i64 %off, {abi.RUN_TABLE}
  %ep = getelementptr inbounds i8, ptr %rs, i64 %at
  %start = load i64, ptr %ep
  %endp = getelementptr inbounds i8, ptr %ep, i64 8
  %limit = load i64, ptr %endp
  %wp = getelementptr inbounds i8, ptr %ep, i64 16
  %writable = load i64, ptr %wp
  %lo = icmp uge i64 %addr, %start
  %hi = icmp ule i64 %end, %limit
  %in = and i1 %lo, %hi
  %ro = icmp eq i64 %writable, 0
  %bad = and i1 %ro, %write
  %good = xor i1 %bad, true
  %ok = and i1 %in, %good
  %i1 = add i64 %i, 1
  br i1 %ok, label %done, label %next
next:
  br label %loop
done:
  ret void
slow:
  %r = call i64 @"{abi.CHECK}"(i64 %addr, i64 %info, i64 0, i64 0, i64 0, ptr %rs)
  ret void
}}"""


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
        self.check = False                 # the module needs CHECK_IR
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

    def external_global(self, symbol: str) -> str:
        ref = f'@"{symbol}"'
        self.globals.setdefault(symbol, f"{ref} = external global i8")
        return ref

    def text(self) -> str:
        lines = [*self.globals.values(), *self.decls.values(), *self.body]
        if self.check:
            lines.append(CHECK_IR)
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

    def __init__(self, program, debug: bool = False):
        self.program = program
        self.rt = program.runtime
        self.insns: list[Insn] = program.insns
        self.specs: list[OpInfo | None] = program.specs
        self.flow = ProgramFlow(program)
        self.m = _Module(debug)
        # Inherited registers callbacks (invoked from helpers) expect: zero, as in the interpreter.
        self.callback_inherits = 0
        for f in self.flow.functions:
            if f.address_taken:
                self.callback_inherits |= f.live_in
        self.bases = {f.start: self.flow.bases(f) for f in self.flow.functions}
        self.frames = {f.start: self._frame_use(f) for f in self.flow.functions}
        # A function reaching outside its own frame through r10 may read another one's:
        # then every frame lives in the run's BPF stack, as the interpreter's do.
        self.shared_frames = any(outside for _, _, outside in self.frames.values())

    def _frame_use(self, f: Function) -> tuple[bool, bool, bool]:
        """(uses r10 at all, uses it as a value so the frame's address escapes, reaches
        outside its 512 bytes through r10) for one function."""
        bases, insns, specs = self.bases[f.start], self.insns, self.specs
        touches = reads = outside = False
        for pc in f.slots:
            insn, spec = insns[pc], specs[pc]
            kind = spec.kind
            field = _ACCESS_BASE.get(kind)
            if field is not None:
                base = getattr(insn, field)
                known = (isa.FP, 0) if base == isa.FP else bases[pc][base]
                if known is not None and known[0] == isa.FP and not _in_frame(known[1] + insn.off, spec.width):
                    outside = True
            if insn.dst != isa.FP and insn.src != isa.FP:
                continue
            x = insn.source == isa.SRC_X
            touches |= insn.dst == isa.FP or kind not in ("call", "lddw", "ldabs")
            reads |= (kind in ("alu", "jcond") and x and insn.src == isa.FP or kind == "jcond" and insn.dst == isa.FP
                      or kind in ("stx", "atomic", "ldind") and insn.src == isa.FP
                      or kind == "callx" and insn.dst == isa.FP)
        return touches, reads, outside

    def symbol(self, f: Function) -> str:
        return abi.function_symbol(f.start)

    def module(self) -> str:
        for f in self.flow.functions:
            _FunctionLowering(self, f).lower()
        return self.m.text()


#: The register field an access's address is based on, per kind.
_ACCESS_BASE = {"ldx": "src", "st": "dst", "stx": "dst", "atomic": "dst", "check": "dst"}


def _in_frame(offset: int, size: int) -> bool:
    return -STACK_SIZE <= offset and offset + size <= 0


#: Switch dispatch: a tree of compares of one register with constants (clang's BPF form
#: of a ``switch``) is entered through an LLVM ``switch`` over the register's values when
#: an ``and r, K`` (K < SWITCH_DOMAIN) just before it bounds the register and the tree
#: reaches at least SWITCH_LEAVES targets; LLVM makes a jump table of it, as gcc does.
SWITCH_DOMAIN, SWITCH_LEAVES, SWITCH_DEPTH = 64, 4, 16


def _mask_bound(insns, specs, f: Function, pc: int, reg: int) -> int | None:
    """K of the ``and reg, K`` that last wrote ``reg`` in the block of ``pc``, if that is
    what did."""
    at = pc
    while at > f.start and at not in f.leaders:
        at -= 1
        insn, spec = insns[at], specs[at]
        if spec is None:
            continue
        if spec.kind in ("call", "callx", "atomic"):
            return None
        if insn.dst == reg and spec.kind != "st" and spec.kind != "stx":
            if spec.kind == "alu" and spec.op == "and" and insn.source == isa.SRC_K and 0 <= insn.imm < SWITCH_DOMAIN:
                return insn.imm
            return None
    return None


def switch_cases(insns, specs, f: Function, preds: dict[int, int], pc: int) -> list[tuple[int, int]] | None:
    """[(value, slot)]: where the compare tree rooted at the jcond ``pc`` sends each value
    0..K of its register, or None where it is no dispatch (see SWITCH_DOMAIN). Inner nodes
    are jconds of the same register with a constant, entered from their parent only; the
    other values still run the tree itself (the switch's default), so the bound only picks
    the cases and never decides a result."""
    from jitbpf.interpreter import CONDITIONS
    insn, spec = insns[pc], specs[pc]
    if spec.kind != "jcond" or insn.source != isa.SRC_K:
        return None
    reg = insn.dst
    bound = _mask_bound(insns, specs, f, pc, reg)
    if bound is None:
        return None

    def inner(at: int) -> bool:
        i, sp = insns[at], specs[at]
        return (at != pc and f.contains(at) and sp is not None and sp.kind == "jcond" and i.source == isa.SRC_K
                and i.dst == reg and preds.get(at) == 1)
    cases = []
    for value in range(bound + 1):
        at = pc
        for _ in range(SWITCH_DEPTH):
            i, sp = insns[at], specs[at]
            m = isa.MASK64 if sp.width == 64 else isa.MASK32
            at = jump_target(i, at) if CONDITIONS[sp.width][sp.op](value & m, i.imm & m) else at + 1
            if not inner(at):
                break
        else:
            return None
        if at <= pc and at not in f.heads:     # a block written already: its edges are complete
            return None
        cases.append((value, at))
    return cases if len({slot for _, slot in cases}) >= SWITCH_LEAVES else None


class _FunctionLowering:
    """Emits one BPF function."""

    def __init__(self, lowering: Lowering, f: Function):
        self.L, self.f, self.m = lowering, f, lowering.m
        self.flow = lowering.flow
        self.insns, self.specs = lowering.insns, lowering.specs
        self.lines: list[str] = []
        self.n = 0
        self.dbg = ""
        self.bases = lowering.bases[f.start]
        touches, reads, _ = lowering.frames[f.start]
        # Where the frame lives: None (no r10 use), "alloca", or "shared" (the run's stack).
        self.frame = None if not touches else "shared" if lowering.shared_frames or reads else "alloca"
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
        self.fields: dict[int, str] = {}       # rs + offset -> its pointer, defined first of all
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
            for r in SSA:
                self.open_phis.append((len(self.lines), r, name, self.dbg))
                self.lines.append("")
            self.values = [f"%r{r}.{name}" for r in range(isa.NUM_REGS)]
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
                differ.update(r for r in SSA if values[r] != first[r])
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
            if self.frame != "shared":             # _frame_use decided otherwise: a lowering bug
                raise BpfEngineError("llvm: r10 used as a value in a function with a private frame")
            value = "%fp"
        else:
            value = self.values[reg]
        return value if bits == 64 else self.val(f"trunc i64 {value} to i{bits}")

    def field(self, offset: int) -> str:
        """A pointer to the run state's field at ``offset`` (abi.RUN_*)."""
        name = self.fields.get(offset)
        if name is None:
            name = self.fields[offset] = f"%rs.{offset}"
        return name

    def put(self, reg: int, value: str, bits: int = 64) -> None:
        if bits != 64:
            value = self.val(f"zext i{bits} {value} to i64")
        self.values[reg] = value

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
        self.lines.append(f'define dso_local i64 @"{sym}"({args}, ptr noalias %rs) #0{dbg_attr} {{')
        self.lines.append("entry:")
        self._prologue()
        preds = {f.start: 1}
        for pc in f.slots:
            for succ in self.flow.next[pc]:
                preds[succ] = preds.get(succ, 0) + 1
        self.switches = {}
        for pc in f.slots:
            if self.specs[pc].kind == "jcond":
                cases = switch_cases(self.insns, self.specs, f, preds, pc)
                if cases:
                    self.switches[pc] = cases
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
        self.lines[2:2] = [f"  {name} = getelementptr inbounds i8, ptr %rs, i64 {offset}"
                           for offset, name in self.fields.items()]
        m.body.extend(self.lines)

    def _at(self, pc: int) -> None:
        if self.m.debug:
            loc = self.locs.get(pc)
            if loc is None:
                loc = self.locs[pc] = self.m.new_meta(f"!DILocation(line: {pc + 1}, scope: !{self.sp})")
            self.dbg = f", !dbg !{loc}"

    def _prologue(self) -> None:
        f, m = self.f, self.m
        self.ticks = any(self.specs[pc].kind == "tick" for pc in f.slots)
        if self.ticks:
            self.emit("%budget = alloca i64, align 8")
            self._budget_in()
        if self.frame == "alloca":
            m.intrinsic("declare void @llvm.memset.inline.p0.i64(ptr, i8, i64, i1 immarg)")
            self.emit(f"%stack = alloca [{STACK_SIZE} x i8], align 16")
            self.emit(f"call void @llvm.memset.inline.p0.i64(ptr align 16 %stack, i8 0, i64 {STACK_SIZE}, i1 false)")
        elif self.frame == "shared":           # 512 bytes of the run's stack (zeroed per run)
            self.emit(f"%fp = load i64, ptr {self.field(abi.RUN_SP)}")
            self.emit(f"%frame = sub i64 %fp, {STACK_SIZE}")
            self.emit(f"store i64 %frame, ptr {self.field(abi.RUN_SP)}")
            self.emit("%stack = inttoptr i64 %frame to ptr")
        self.entry_at = len(self.lines)
        for r in range(isa.NUM_REGS):
            if 1 <= r <= 5:
                self.values.append(f"%a{r}")
            elif r in SSA and f.live_in & bit(r):
                self.values.append(self.val(f"load i64, ptr {self.field(abi.RUN_REGS + 8 * r)}"))
            else:
                self.values.append("0")
        if self.flow.track_depth:
            depth = self.field(abi.RUN_DEPTH)
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
        cell = self.val(f"load i64, ptr {self.field(abi.RUN_UNWIND)}, align 8")
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
        self.emit(f"call i64 {trap}(i64 {code}, i64 {pc}, i64 {value}, i64 0, i64 0, ptr %rs)")
        self.emit("ret i64 0")
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
        if op == "mov" and insn.dst == AX and insn.source == isa.SRC_K:    # a blinded constant: opaque
            value = str(insn.imm & isa.MASK32) if bits == 32 else str(insn.imm)
            self.put(AX, self.val(f'call i64 asm "", "=r,0"(i64 {value})'))
            return
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
        cases = self.switches.get(pc)
        if cases:                              # switch_cases: a jump table, the tree as default
            arms: dict[int, str] = {}
            for _, slot in cases:
                arms.setdefault(slot, self.fresh("sw"))
            tree = self.fresh("tree")
            self.terminate(f"switch i64 {self.get(insn.dst)}, label %{tree} ["
                           + " ".join(f"i64 {value}, label %{arms[slot]}" for value, slot in cases) + "]")
            for slot, name in arms.items():
                self.block(name)
                self.jump(f"L{slot}")
            self.block(tree)
        bits, t = spec.width, _ty(spec.width)
        a = self.get(insn.dst, bits)
        b = self._operand(insn, bits)
        if spec.op == "jset":
            cond = self.val(f"icmp ne {t} {self.val(f'and {t} {a}, {b}')}, 0")
        else:
            cond = self.val(f"icmp {PREDICATES[spec.op]} {t} {a}, {b}")
        target = f"L{self.flow.next[pc][-1]}"
        self.edge(target)
        self.edge(f"L{pc + 1}")
        self.terminate(f"br i1 {cond}, label %{target}, label %L{pc + 1}")

    def _ja(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self.jump(f"L{self.flow.next[pc][-1]}")

    def _exit(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if self.f.returns_args:
            for r in range(1, 6):
                self.emit(f"store i64 {self.get(r)}, ptr {self.field(abi.RUN_REGS + 8 * r)}")
        if self.flow.track_depth:
            self.emit(f"store i64 %depth, ptr {self.field(abi.RUN_DEPTH)}")
        if self.frame == "shared":
            self.emit(f"store i64 %fp, ptr {self.field(abi.RUN_SP)}")
        self._budget_out()
        self.terminate(f"ret i64 {self.get(0)}")

    def _budget_out(self) -> None:
        """The local budget back into the run state (before a call or a return)."""
        if self.ticks:
            self.emit(f"store i64 {self.val('load i64, ptr %budget')}, ptr {self.field(abi.RUN_BUDGET)}")

    def _budget_in(self) -> None:
        """The run state's budget into the local one again (after a call)."""
        if self.ticks:
            self.emit(f"store i64 {self.val(f'load i64, ptr {self.field(abi.RUN_BUDGET)}')}, ptr %budget")

    def _tick(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        left = self.val("load i64, ptr %budget")
        left1 = self.val(f"sub i64 {left}, 1")
        self.emit(f"store i64 {left1}, ptr %budget")
        stop = self.val(f"load atomic i64, ptr {self.field(abi.RUN_STOP)} monotonic, align 8")
        spent = self.val(f"icmp slt i64 {left1}, 0")
        stopped = self.val(f"icmp ne i64 {stop}, 0")
        out = self.val(f"or i1 {spent}, {stopped}")
        cont, spent = self.fresh("ok"), self.fresh("spent")
        self.pending += [f"{spent}:", f"  store i64 {pc + 1}, ptr {self.field(abi.RUN_SPENT)}{self.dbg}",
                         f"  store i64 1, ptr {self.field(abi.RUN_UNWIND)}{self.dbg}", f"  ret i64 0{self.dbg}"]
        self.terminate(f"br i1 {out}, label %{spent}, label %{cont}, {UNLIKELY.format(prof=self.m.prof)}")
        self.block(cont)

    def _check(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        """A bounds check (CHECK_IR): the region table scan, and the runtime on a miss."""
        self.m.check = True
        self.m.declare(abi.CHECK)
        address = self.val(f"add i64 {self.get(insn.dst)}, {insn.off}")
        info = (pc << 8) | (spec.width << 1) | int(bool(insn.imm))
        self.emit(f"call void @jitbpf.check(ptr %rs, i64 {address}, i64 {info})")
        self._check_unwind()

    # ---------------------------------------------------------------- calls
    def _args(self) -> str:
        return ", ".join(f"i64 {self.get(r)}" for r in range(1, 6)) + ", ptr %rs"

    def _call_external(self, symbol: str) -> None:
        if self.L.callback_inherits:
            for r in SSA:
                if self.L.callback_inherits & bit(r):
                    self.emit(f"store i64 0, ptr {self.field(abi.RUN_REGS + 8 * r)}")
        ref = self.m.declare(symbol)
        self._budget_out()
        self.put(0, self.val(f"call i64 {ref}({self._args()})"))
        self._budget_in()
        self._check_unwind()

    def _call_local(self, pc: int, callee: Function) -> None:
        m = self.m
        if self.flow.track_depth:
            depth = self.val(f"load i64, ptr {self.field(abi.RUN_DEPTH)}")
            over = self.val(f"icmp uge i64 {depth}, {MAX_CALL_DEPTH}")
            ok = self.fresh("ok")
            trap = self._trap_block(abi.TRAP_DEPTH, pc, "0")
            self.terminate(f"br i1 {over}, label %{trap}, label %{ok}, {UNLIKELY.format(prof=m.prof)}")
            self.block(ok)
        for r in SSA:
            if callee.live_in & bit(r):
                self.emit(f"store i64 {self.get(r)}, ptr {self.field(abi.RUN_REGS + 8 * r)}")
        self._budget_out()
        result = self.val(f'call i64 @"{self.L.symbol(callee)}"({self._args()})')
        self._budget_in()
        self.put(0, result)
        if callee.may_unwind or self.flow.track_depth:
            self._check_unwind()
        if callee.returns_args:
            for r in range(1, 6):
                value = self.val(f"load i64, ptr {self.field(abi.RUN_REGS + 8 * r)}")
                self.put(r, value)

    def _call(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        if insn.src == isa.CALL_LOCAL:
            self._call_local(pc, self.flow.by_start[jump_target(insn, pc)])
        else:
            self._call_external(self.L.program.helpers[pc].symbol)

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
            if base == isa.FP and _in_frame(k + off, size):
                return self._entry_pointer("%stack", STACK_SIZE + k + off, "inbounds ")
            if base in ARG_BASES:
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
        elif insn.src == isa.Pseudo.IMM64:
            value = str(to_s64(insn.imm64))
        else:
            symbol, addend = self.L.program.lddw_symbol(pc)
            value = self.val(f"ptrtoint ptr {self.m.external_global(symbol)} to i64")
            if addend:
                value = self.val(f"add i64 {value}, {addend}")
        self.put(insn.dst, value)

    def _packet(self, pc: int, size: int, offset: str) -> None:
        ref = self.m.declare(abi.LOAD_PACKET)
        self._budget_out()
        value = self.val(f"call i64 {ref}(i64 {self.get(6)}, i64 {offset}, i64 {size}, i64 {pc}, i64 0, ptr %rs)")
        self._budget_in()
        self.put(0, value)
        self._check_unwind()

    def _ldabs(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        self._packet(pc, spec.width, str(insn.imm))

    def _ldind(self, pc: int, insn: Insn, spec: OpInfo) -> None:
        offset = self.val(f"add i32 {self.get(insn.src, 32)}, {insn.imm}")
        self._packet(pc, spec.width, self.val(f"sext i32 {offset} to i64"))


