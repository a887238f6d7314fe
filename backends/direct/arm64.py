"""Direct JIT for arm64 (AArch64): one template per BPF instruction (see :mod:`backends.direct`).

Register mapping (the Linux arm64 JIT's)::

    r0 x7     r1 x0   r2 x1   r3 x2   r4 x3   r5 x4      r1-r5 = AAPCS64 argument registers
    r6 x19    r7 x20  r8 x21  r9 x22                      callee-saved
    r10 x25   (frame pointer)   x26 run state (abi)       callee-saved
    AX x6 (the passes' scratch); x9-x15 scratch (x11 addresses, x12 bounds-check info,
    x13 immediates), x16/x17 IP0/IP1; x5 is the sixth argument: the run state

Inside the image, BPF functions return r0 in x7 (so a bpf-to-bpf call leaves r1 in
x0 as the callee left it, as in the interpreter); each function's C-callable
symbol is a small thunk that zeroes r0 and r6-r9 (the interpreter's initial
state), calls the body and moves x7 to x0.

Frame: x29/x30, x19-x22, x25, the caller's ``rs->sp`` (restored on the way out) and a
spill area for x0-x4 around helper calls, 112 bytes, so sp stays 16-byte aligned. Map addresses are 64-bit literals in the
code (``ldr xN, #8; b #12; .quad``), an absolute relocation each.

AArch64 specifics: ``udiv``/``sdiv`` never trap and already give BPF's results
(x / 0 = 0, INT_MIN / -1 = INT_MIN, and ``msub`` makes x % 0 = x); keystone does
not assemble LSE atomics, so atomics are LDXR/STXR loops (unicorn runs them);
immediates that fit no encoding (12-bit add/compare, bitmask logical, scaled or
9-bit memory offsets) are materialised in x13/x10 with movz/movn/movk;
conditional branches reach +-1 MiB and keystone silently truncates farther ones,
so this module lays the code out itself (every line is one 4-byte instruction)
and turns each out-of-range ``b.cond``/``cbz`` into the inverted branch over a ``b``
(the fast path's layout, backends/direct/patch.py, does the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN

from jitbpf.errors import BpfEngineError
from jitbpf.isa import MASK64, MAX_CALL_DEPTH, SRC_X, STACK_SIZE, Pseudo, jump_target, to_s64

from .. import abi
from .emitter import Emitter
from .patch import IMM, IMM64, OFF, OFF_IMM

REGS = ("x7", "x0", "x1", "x2", "x3", "x4", "x19", "x20", "x21", "x22", "x25", "x6")
FRAME = 112
SAVE_ARGS = ("stp x0, x1, [sp, #64]", "stp x2, x3, [sp, #80]", "str x4, [sp, #96]")
RESTORE_ARGS = ("ldp x0, x1, [sp, #64]", "ldp x2, x3, [sp, #80]", "ldr x4, [sp, #96]")
COND = {"jeq": "eq", "jne": "ne", "jgt": "hi", "jge": "hs", "jlt": "lo", "jle": "ls",
        "jsgt": "gt", "jsge": "ge", "jslt": "lt", "jsle": "le", "jset": "ne"}
LOGICAL = {"and": "and", "or": "orr", "xor": "eor"}
SHIFTS = {"lsh": "lslv", "rsh": "lsrv", "arsh": "asrv"}
SHIFTS_IMM = {"lsh": "lsl", "rsh": "lsr", "arsh": "asr"}
LOADS = {(1, False): "ldrb", (2, False): "ldrh", (4, False): "ldr", (8, False): "ldr",
         (1, True): "ldrsb", (2, True): "ldrsh", (4, True): "ldrsw"}
STORES = {1: "strb", 2: "strh", 4: "str", 8: "str"}
RMW = {"add": "add", "or": "orr", "and": "and", "xor": "eor"}
BRANCH_RANGE = 1 << 20
INVERT = {"eq": "ne", "ne": "eq", "hi": "ls", "ls": "hi", "hs": "lo", "lo": "hs",
          "gt": "le", "le": "gt", "ge": "lt", "lt": "ge", "mi": "pl", "pl": "mi"}
# Placeholder encodings that the linker patches.
BL = 0x94000000
ADRP = 0x90000000
ADD_IMM = 0x91000000
LDR_LITERAL = 0x58000000
B = 0x14000000


@dataclass
class Branch:
    """A conditional branch (``b.eq``, ``cbnz x16``...) whose form is chosen at layout."""
    op: str
    label: str

    def text(self, op: str | None = None, label: str | None = None) -> str:
        op = op or self.op
        return f"{op}, {label or self.label}" if " " in op else f"{op} {label or self.label}"

    def inverted(self, label: str) -> str:
        if self.op.startswith("b."):
            return self.text("b." + INVERT[self.op[2:]], label)
        name, reg = self.op.split()
        return self.text({"cbz": "cbnz", "cbnz": "cbz"}[name] + " " + reg, label)


def sized(reg: str, bits: int) -> str:
    return reg if bits == 64 else "w" + reg[1:]


def number(reg: str) -> int:
    return int(reg[1:])


def add_imm_ok(u: int) -> bool:
    """12-bit unsigned immediate, optionally shifted left by 12 (add, sub, cmp, cmn)."""
    return 0 <= u < 4096 or (u & 0xFFF == 0 and 0 <= u >> 12 < 4096)


def logical_imm_ok(value: int, bits: int) -> bool:
    """Whether ``value`` is an AArch64 bitmask immediate of width ``bits`` (a repeated,
    rotated run of ones; never 0 or all ones)."""
    value &= (1 << bits) - 1
    if value in (0, (1 << bits) - 1):
        return False
    size = bits
    while size > 2:                      # the smallest period of the pattern
        half = size // 2
        if (value >> half) & ((1 << half) - 1) != value & ((1 << half) - 1):
            break
        size = half
    pattern = value & ((1 << size) - 1)
    rises = sum(1 for i in range(size) if not pattern >> i & 1 and pattern >> ((i + 1) % size) & 1)
    return rises == 1


def imm_lines(reg: str, value: int) -> list[str]:
    """movz/movn + movk sequence loading the 64-bit ``value`` into x-register ``reg``."""
    u = value & MASK64
    chunks = [(u >> (16 * i)) & 0xFFFF for i in range(4)]
    invert = chunks.count(0xFFFF) > chunks.count(0)
    skip = 0xFFFF if invert else 0
    lines = []
    for i, chunk in enumerate(chunks):
        if chunk == skip:
            continue
        if not lines:
            lines.append(f"movn {reg}, #{~chunk & 0xFFFF}, lsl #{16 * i}" if invert
                         else f"movz {reg}, #{chunk}, lsl #{16 * i}")
        else:
            lines.append(f"movk {reg}, #{chunk}, lsl #{16 * i}")
    return lines or [f"movn {reg}, #0" if invert else f"movz {reg}, #0"]


def chunks_shape(value: int) -> tuple:
    """What imm_lines' text depends on besides the chunk values: movz or movn, and
    which 16-bit chunks it skips."""
    u = value & MASK64
    chunks = [(u >> (16 * i)) & 0xFFFF for i in range(4)]
    invert = chunks.count(0xFFFF) > chunks.count(0)
    skip = 0xFFFF if invert else 0
    return invert, tuple(c == skip for c in chunks)


def add_shape(u: int, mask: int, src: int) -> tuple:
    """The choice of add/sub/cmp/cmn with a 12-bit immediate (shifted or not), or x13."""
    if add_imm_ok(u):
        return "+", u < 4096
    if add_imm_ok(-u & mask):
        return "-", -u & mask < 4096
    return "r", chunks_shape(src)


def access_shape(off: int, size: int) -> tuple:
    if 0 <= off < 4096 * size and off % size == 0:
        return ("scaled",)
    if -256 <= off < 256:
        return ("unscaled",)
    return "x10", chunks_shape(off)


class Arm64Emitter(Emitter):
    arch = "arm64"
    ks_arch, ks_mode = KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN
    IMM_REG = "x13"                      # where register() materialises an immediate

    def reg(self, n: int) -> str:
        return REGS[n]

    def bcond(self, op: str, label: str) -> None:
        self.emit(Branch(op, label))

    def word(self, value: int) -> None:
        self.emit(f".long {value:#x}")

    # ------------------------------------------------------------------ frames and control flow
    def prologue(self, slot: int) -> None:
        thunk, body = f"T{slot}", f"F{slot}"
        self.marks.append(thunk)
        self.symbols[abi.function_symbol(slot)] = thunk
        self.emit(f"{thunk}:", "stp x29, x30, [sp, #-64]!", "mov x29, sp", "stp x19, x20, [sp, #16]",
                  "stp x21, x22, [sp, #32]", "stp x25, x26, [sp, #48]", "mov x26, x5", "mov x7, #0",
                  "mov x19, #0", "mov x20, #0", "mov x21, #0", "mov x22, #0", f"bl {body}", "mov x0, x7",
                  "ldp x19, x20, [sp, #16]", "ldp x21, x22, [sp, #32]", "ldp x25, x26, [sp, #48]",
                  "ldp x29, x30, [sp], #64", "ret",
                  f"{body}:", f"stp x29, x30, [sp, #-{FRAME}]!", "mov x29, sp", "stp x19, x20, [sp, #16]",
                  "stp x21, x22, [sp, #32]", "str x25, [sp, #48]", f"ldr x10, [x26, #{abi.RUN_SP}]",
                  "str x10, [sp, #56]", f"ldr x9, [x26, #{abi.RUN_DEPTH}]", f"cmp x9, #{MAX_CALL_DEPTH}")
        self.bcond("b.hs", self.trap_label(slot, abi.TRAP_DEPTH))
        self.emit("add x10, x9, #1", f"str x10, [x26, #{abi.RUN_DEPTH}]", f"ldr x25, [x26, #{abi.RUN_STACK_TOP}]",
                  "sub x25, x25, x9, lsl #9", f"sub x10, x25, #{STACK_SIZE}", f"str x10, [x26, #{abi.RUN_SP}]")

    def exits(self) -> None:
        self.emit("K_unwind:", "mov x7, #0",
                  "K_epilogue:", f"ldr x9, [x26, #{abi.RUN_DEPTH}]", "sub x9, x9, #1",
                  f"str x9, [x26, #{abi.RUN_DEPTH}]", "ldr x9, [sp, #56]", f"str x9, [x26, #{abi.RUN_SP}]",
                  "ldr x25, [sp, #48]", "ldp x21, x22, [sp, #32]", "ldp x19, x20, [sp, #16]",
                  f"ldp x29, x30, [sp], #{FRAME}", "ret")

    def jump_lines(self, label: str) -> list[str]:
        return [f"b {label}"]

    def budget_tick(self, error: str) -> list:
        return [f"ldr x9, [x26, #{abi.RUN_BUDGET}]", "subs x9, x9, #1", f"str x9, [x26, #{abi.RUN_BUDGET}]",
                Branch("b.mi", error)]

    def spent_lines(self, pc: int) -> list[str]:
        return [*imm_lines("x9", pc + 1), f"str x9, [x26, #{abi.RUN_SPENT}]", "mov x9, #1",
                f"str x9, [x26, #{abi.RUN_UNWIND}]", "b K_unwind"]

    def trap_lines(self, code: int, pc: int, value: int | str) -> list[str]:
        value_lines = [f"mov x2, {value}"] if isinstance(value, str) else imm_lines("x2", value)
        return [*value_lines, *imm_lines("x0", code), *imm_lines("x1", pc), "b K_fail"]

    def load_unwind_flag(self) -> None:
        """x16 = rs->unwind."""
        self.emit(f"ldr x16, [x26, #{abi.RUN_UNWIND}]")

    def unwind_check(self) -> None:
        self.load_unwind_flag()
        self.bcond("cbnz x16", "K_unwind")

    def call_external(self, symbol: str) -> None:
        self.emit("mov x5, x26")
        self.reloc("call26", symbol)
        self.word(BL)

    def call_helper(self, symbol: str) -> None:
        self.emit(*SAVE_ARGS)
        self.call_external(symbol)
        self.emit("mov x7, x0", *RESTORE_ARGS)
        self.unwind_check()

    def call_local(self, label: str) -> None:
        self.emit(f"bl {label}")
        self.unwind_check()

    def callx(self, pc: int, reg: str) -> None:
        self.emit(f"mov x9, {reg}", *imm_lines("x10", pc), "bl K_callx")
        self.unwind_check()

    def address_of(self, reg: str, symbol: str) -> None:
        n = number(reg)
        self.reloc("adr_page", symbol)
        self.word(ADRP | n)
        self.reloc("add_lo12", symbol)
        self.word(ADD_IMM | (n << 5) | n)

    def function_address(self, reg: str, slot: int) -> None:
        self.address_of(reg, abi.function_symbol(slot))

    def symbol_address(self, reg: str, symbol: str, addend: int) -> None:
        """``reg`` = symbol + addend from a literal in the code (anywhere in the address space)."""
        self.word(LDR_LITERAL | (8 >> 2) << 5 | number(reg))     # ldr reg, #8
        self.word(B | 12 >> 2)                                    # b #12
        self.reloc("abs64", symbol, addend)
        self.emit(".long 0", ".long 0")

    def callx_routine(self) -> None:
        """Dispatch on x9 (pc in x10): branch to a function body, or call a helper by id
        (r1-r5 kept), or trap. Entered by ``bl``; the caller's frame saved x30."""
        functions, helpers = self.callx_targets()
        self.label("K_callx")
        for slot in functions:
            self.address_of("x11", abi.function_symbol(slot))
            self.emit("cmp x9, x11")
            self.bcond("b.eq", f"F{slot}")
        for i, (hid, _) in enumerate(helpers):
            if add_imm_ok(hid):
                self.emit(f"cmp x9, #{hid}")
            else:
                self.emit(*imm_lines("x11", hid), "cmp x9, x11")
            self.bcond("b.eq", f"KH{i}")
        self.emit("mov x2, x9", *imm_lines("x0", abi.TRAP_CALLX), "mov x1, x10", "b K_fail")
        for i, (_, symbol) in enumerate(helpers):
            self.emit(f"KH{i}:", "stp x29, x30, [sp, #-64]!", "stp x0, x1, [sp, #16]", "stp x2, x3, [sp, #32]",
                      "str x4, [sp, #48]")
            self.call_external(symbol)
            self.emit("mov x7, x0", "ldp x0, x1, [sp, #16]", "ldp x2, x3, [sp, #32]", "ldr x4, [sp, #48]",
                      "ldp x29, x30, [sp], #64", "ret")

    # ------------------------------------------------------------------ fast path
    def shape(self, pc: int, insn, spec):
        """The fast path's key (see Emitter.shape): the templates' choices of immediate
        forms as classes; bitmask immediates and shifts by exact value."""
        kind = spec.kind
        if kind in ("ja", "exit"):
            return (insn.opcode,), (), None
        if kind in ("ldx", "stx"):
            return (insn.opcode, insn.dst, insn.src, access_shape(insn.off, spec.width)), (insn.off,), OFF
        if kind == "st":
            value = "xzr" if insn.imm == 0 else chunks_shape(insn.imm)
            return (insn.opcode, insn.dst, access_shape(insn.off, spec.width), value), (insn.off, insn.imm), OFF_IMM
        w = spec.width
        mask = (1 << w) - 1
        if kind == "jcond":
            if insn.opcode & SRC_X:
                return (insn.opcode, insn.dst, insn.src), (), None
            u = insn.imm & mask
            if spec.op != "jset":
                return (insn.opcode, insn.dst, add_shape(u, mask, insn.imm)), (insn.imm,), IMM
            if not logical_imm_ok(u, w):
                return (insn.opcode, insn.dst, chunks_shape(insn.imm)), (insn.imm,), IMM
        if kind == "alu" and not insn.opcode & SRC_X:
            op, imm = spec.op, insn.imm
            u = imm & mask
            tag = None
            if op == "mov":
                tag = chunks_shape(u if w == 32 else imm)
            elif op in ("add", "sub"):
                tag = add_shape(u, mask, imm)
            elif op in LOGICAL and not logical_imm_ok(u, w) or op in ("mul", "div", "sdiv", "mod", "smod"):
                tag = "r", chunks_shape(imm)
            if tag is not None:
                return (insn.opcode, insn.dst, insn.off, tag), (imm,), IMM
        if kind == "jcond":
            return (insn.opcode, insn.dst, insn.imm), (), None
        if kind in ("alu", "end"):
            return (insn.opcode, insn.dst, insn.src, insn.off, insn.imm), (), None
        if kind == "lddw" and insn.src == Pseudo.IMM64:
            v = to_s64(insn.imm64)
            return (insn.opcode, insn.dst, chunks_shape(v)), (v,), IMM64
        return None

    # ------------------------------------------------------------------ constants
    def load_imm(self, reg: str, value: int) -> None:
        self.emit(*imm_lines(reg, value))

    def register(self, src: int | str, bits: int) -> str:
        """``src`` as a register of width ``bits``, materialising an immediate in x13."""
        if isinstance(src, int):
            self.load_imm(self.IMM_REG, src)
            src = self.IMM_REG
        return sized(src, bits)

    # ------------------------------------------------------------------ ALU
    def op_alu(self, pc: int, insn, spec) -> None:
        w, op, d = spec.width, spec.op, self.reg(insn.dst)
        dst = sized(d, w)
        if op == "neg":
            self.emit(f"neg {dst}, {dst}")
            return
        if op == "movsx":
            letter = {8: "b", 16: "h", 32: "w"}[spec.sx_bits]
            self.emit(f"sxt{letter} {dst}, {sized(self.reg(insn.src), 32)}")
            return
        src = self.operand(insn)
        mask = (1 << w) - 1
        u = src & mask if isinstance(src, int) else None
        if op == "mov":
            if u is not None:
                self.load_imm(d, u if w == 32 else src)
            elif w == 32 or src != d:                       # mov w, w zero-extends
                self.emit(f"mov {dst}, {sized(src, w)}")
        elif op in ("add", "sub"):
            other = {"add": "sub", "sub": "add"}[op]
            if u is not None and add_imm_ok(u):
                self.emit(f"{op} {dst}, {dst}, #{u}")
            elif u is not None and add_imm_ok(-u & mask):
                self.emit(f"{other} {dst}, {dst}, #{-u & mask}")
            else:
                self.emit(f"{op} {dst}, {dst}, {self.register(src, w)}")
        elif op in LOGICAL:
            if u is not None and logical_imm_ok(u, w):
                self.emit(f"{LOGICAL[op]} {dst}, {dst}, #{u:#x}")
            else:
                self.emit(f"{LOGICAL[op]} {dst}, {dst}, {self.register(src, w)}")
        elif op in SHIFTS:
            if u is None:
                self.emit(f"{SHIFTS[op]} {dst}, {dst}, {sized(src, w)}")
            elif u & (w - 1) or w == 32:                    # a 32-bit shift by 0 still zero-extends
                self.emit(f"{SHIFTS_IMM[op]} {dst}, {dst}, #{u & (w - 1)}")
        elif op == "mul":
            self.emit(f"mul {dst}, {dst}, {self.register(src, w)}")
        elif op in ("div", "sdiv"):                         # x / 0 = 0 and INT_MIN / -1 = INT_MIN natively
            self.emit(f"{'sdiv' if op == 'sdiv' else 'udiv'} {dst}, {dst}, {self.register(src, w)}")
        else:                                               # mod, smod: x - (x / y) * y, and x % 0 = x
            divisor, quotient = self.register(src, w), sized("x9", w)
            self.emit(f"{'sdiv' if op == 'smod' else 'udiv'} {quotient}, {dst}, {divisor}",
                      f"msub {dst}, {quotient}, {divisor}, {dst}")

    def op_end(self, pc: int, insn, spec) -> None:
        d, bits = self.reg(insn.dst), spec.width
        w = sized(d, 32)
        if spec.op == "le":
            lines = {16: [f"uxth {w}, {w}"], 32: [f"mov {w}, {w}"], 64: []}[bits]
        else:
            lines = {16: [f"rev16 {w}, {w}", f"uxth {w}, {w}"], 32: [f"rev {w}, {w}"], 64: [f"rev {d}, {d}"]}[bits]
        self.emit(*lines)

    def op_jcond(self, pc: int, insn, spec) -> None:
        w = spec.width
        dst, src, mask = sized(self.reg(insn.dst), w), self.operand(insn), (1 << w) - 1
        u = src & mask if isinstance(src, int) else None
        if spec.op == "jset":
            if u is not None and logical_imm_ok(u, w):
                self.emit(f"tst {dst}, #{u:#x}")
            else:
                self.emit(f"tst {dst}, {self.register(src, w)}")
        elif u is not None and add_imm_ok(u):
            self.emit(f"cmp {dst}, #{u}")
        elif u is not None and add_imm_ok(-u & mask):      # u != 0 here, so the flags agree with cmp
            self.emit(f"cmn {dst}, #{-u & mask}")
        else:
            self.emit(f"cmp {dst}, {self.register(src, w)}")
        self.bcond("b." + COND[spec.op], self.target(pc, jump_target(insn, pc)))

    # ------------------------------------------------------------------ memory
    def address_into(self, dest: str, base: str, off: int) -> None:
        if add_imm_ok(off):
            self.emit(f"add {dest}, {base}, #{off}")
        elif add_imm_ok(-off):
            self.emit(f"sub {dest}, {base}, #{-off}")
        else:
            self.emit(*imm_lines(dest, off), f"add {dest}, {base}, {dest}")

    def check(self, base: str, off: int, info: int) -> None:
        """x11 = base + off, checked (K_check)."""
        self.address_into("x11", base, off)
        self.emit(*imm_lines("x12", info), "bl K_check")

    def access(self, pc: int, mnemonic: str, reg: str, base: str, off: int, size: int, write: bool) -> None:
        if 0 <= off < 4096 * size and off % size == 0:
            self.emit(f"{mnemonic} {reg}, [{base}, #{off}]")
        elif -256 <= off < 256:                             # the unscaled form: ldur, sturb ...
            self.emit(f"{mnemonic[:2]}u{mnemonic[2:]} {reg}, [{base}, #{off}]")
        else:
            self.emit(*imm_lines("x10", off), f"{mnemonic} {reg}, [{base}, x10]")

    def op_ldx(self, pc: int, insn, spec) -> None:
        size = spec.width
        d = self.reg(insn.dst)
        reg = d if spec.signed or size == 8 else sized(d, 32)
        self.access(pc, LOADS[(size, spec.signed)], reg, self.reg(insn.src), insn.off, size, False)

    def op_st(self, pc: int, insn, spec) -> None:
        size = spec.width
        if insn.imm == 0:
            value = "xzr"
        else:
            value = self.register(insn.imm, 64)
        self.access(pc, STORES[size], sized(value, 64 if size == 8 else 32), self.reg(insn.dst), insn.off,
                    size, True)

    def op_stx(self, pc: int, insn, spec) -> None:
        size = spec.width
        src = sized(self.reg(insn.src), 64 if size == 8 else 32)
        self.access(pc, STORES[size], src, self.reg(insn.dst), insn.off, size, True)

    def op_atomic(self, pc: int, insn, spec) -> None:
        size, op = spec.width, spec.op
        bits = 8 * size
        base, s = self.reg(insn.dst), self.reg(insn.src)
        src, old, new = sized(s, bits), sized("x17", bits), sized("x9", bits)
        self.address_into("x11", base, insn.off)
        loop, done = self.fresh(), self.fresh()
        fetch = op not in RMW
        store = "stlxr" if fetch else "stxr"
        self.emit(f"{loop}:", f"ldxr {old}, [x11]")
        if op == "cmpxchg":
            self.emit(f"cmp {old}, {sized('x7', bits)}", f"b.ne {done}")
            value = src
        elif op == "xchg":
            value = src
        else:
            self.emit(f"{RMW[op.removeprefix('fetch_')]} {new}, {old}, {src}")
            value = new
        self.emit(f"{store} w10, {value}, [x11]", f"cbnz w10, {loop}", f"{done}:")
        if fetch:
            self.emit("dmb ish", f"mov {sized('x7', bits) if op == 'cmpxchg' else src}, {old}")

    def check_routine(self) -> None:
        """Bounds check of [x11, x11 + size) (info in x12: pc << 8 | size << 1 | write) against
        the run's region table; misses ask the runtime, which raises or accepts.
        Preserves every BPF register and x11/x13; on a violation it leaves through K_unwind."""
        self.emit("K_check:", "lsr x14, x12, #1", "and x14, x14, #0x7f", "adds x14, x14, x11", "b.cs K_check_slow",
                  f"ldr x9, [x26, #{abi.RUN_SP}]", "cmp x11, x9", "b.lo K_check_table",     # the live stack first
                  f"ldr x9, [x26, #{abi.RUN_STACK_TOP}]", "cmp x14, x9", "b.ls K_check_ok",
                  "K_check_table:",
                  f"add x15, x26, #{abi.RUN_TABLE}", f"ldr x9, [x26, #{abi.RUN_COUNT}]",
                  "K_check_loop:", "cbz x9, K_check_slow",
                  "ldr x10, [x15]", "cmp x11, x10", "b.lo K_check_next",
                  "ldr x10, [x15, #8]", "cmp x14, x10", "b.hi K_check_next",
                  "tbz x12, #0, K_check_ok", "ldr x10, [x15, #16]", "cbnz x10, K_check_ok",
                  "K_check_next:", f"add x15, x15, #{abi.TABLE_ENTRY}", "sub x9, x9, #1", "b K_check_loop",
                  "K_check_ok:", "ret",
                  "K_check_slow:", "stp x29, x30, [sp, #-80]!", "stp x0, x1, [sp, #16]", "stp x2, x3, [sp, #32]",
                  "stp x4, x7, [sp, #48]", "stp x11, x13, [sp, #64]", "mov x0, x11", "mov x1, x12")
        self.call_external(abi.CHECK)
        self.emit("ldp x0, x1, [sp, #16]", "ldp x2, x3, [sp, #32]", "ldp x4, x7, [sp, #48]",
                  "ldp x11, x13, [sp, #64]", "ldp x29, x30, [sp], #80")
        self.load_unwind_flag()
        self.emit("cbz x16, K_check_ok", "b K_unwind")

    def packet_load(self, pc: int, size: int, src: str | None, insn) -> None:
        """LD_ABS / LD_IND through the runtime (abi.LOAD_PACKET); r1-r5 survive it."""
        self.load_imm(self.IMM_REG, insn.imm)
        offset = self.IMM_REG
        if src is not None:                                 # 32-bit sum, sign-extended
            self.emit(f"add w9, {sized(src, 32)}, w13", "sxtw x9, w9")
            offset = "x9"
        self.emit(*SAVE_ARGS, f"mov x1, {offset}", "mov x0, x19", *imm_lines("x2", size), *imm_lines("x3", pc))
        self.call_external(abi.LOAD_PACKET)
        self.emit("mov x7, x0", *RESTORE_ARGS)
        self.unwind_check()

    # ------------------------------------------------------------------ layout
    def render(self) -> str:
        """Choose each conditional branch's form (fixpoint: a long form only grows the code)
        and return the text; every non-label line is one 4-byte word."""
        lines = self.lines
        branches = [i for i, line in enumerate(lines) if isinstance(line, Branch)]
        words = sum(1 for line in lines if not isinstance(line, str) or not line.endswith(":"))
        long: set[int] = set()
        if (words + len(branches)) * 4 >= BRANCH_RANGE:
            while True:
                where, at, labels = [0] * len(lines), 0, {}
                for i, line in enumerate(lines):
                    where[i] = at
                    if isinstance(line, str):
                        if line.endswith(":"):
                            labels[line[:-1]] = at
                        else:
                            at += 4
                    else:
                        at += 8 if i in long else 4
                grown = [i for i in branches if i not in long
                         and not -BRANCH_RANGE <= labels[lines[i].label] - where[i] < BRANCH_RANGE]
                if not grown:
                    break
                long.update(grown)
        self.predicted = 4 * (words + len(long))
        out = []
        for i, line in enumerate(lines):
            if isinstance(line, str):
                out.append(line)
            elif i in long:
                skip = self.fresh()
                out += [line.inverted(skip), f"b {line.label}", f"{skip}:"]
            else:
                out.append(line.text())
        return "\n".join(out)

    def check_size(self, size: int) -> None:
        if size != self.predicted:
            raise BpfEngineError(f"direct-arm64: code layout predicted {self.predicted} bytes, keystone "
                                 f"produced {size} (a template emits a multi-word instruction)")


EMITTER = Arm64Emitter
