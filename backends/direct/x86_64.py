"""Direct JIT for x86_64: one template per BPF instruction (see :mod:`backends.direct`).

Register mapping (the Linux x86_64 JIT's)::

    r0 rax    r1 rdi   r2 rsi   r3 rdx   r4 rcx   r5 r8      r1-r5 = SysV argument registers
    r6 rbx    r7 r13   r8 r14   r9 r15                        callee-saved
    r10 rbp   (frame pointer)   r12 run state (abi)           callee-saved
    AX r10 (the passes' scratch, as in Linux); r9 and r11 scratch (r11 addresses and
    divisors); r9 is also the sixth argument: the run state, in every call made

So a BPF function body is a SysV ``u64 f(u64 r1..r5, rs)`` as it stands (its C entry
saves the callee-saved registers, keeps rs in r12 and zeroes r0 and r6-r9 first), and
helpers are called with the arguments already in place (r1-r5 are spilled around the
call: as in the interpreter they survive it).

Frame: push rbp, rbx, r13, r14, r15, then 48 bytes of spill area (r1-r5, then the
caller's ``rs->sp``, restored on the way out): rsp is 16-byte aligned in every function
body, so calls from the body are aligned.

The classic pitfalls are handled in the templates: ``div``/``idiv`` trap on 0 and
on INT_MIN / -1, so a register divisor is tested first (an immediate one is decided
at compile time); variable shifts need the count in CL, which is BPF r4 (rcx), so
rcx is parked in r11 around the shift (and the shift applied to r11 when rcx is
also the destination); byte stores from rsi/rdi need a REX prefix (sil/dil), and
rbp/r13 and rsp/r12 bases need disp8 and SIB forms (keystone encodes them;
tests/test_direct_encoding.py checks every pair with capstone); a 32-bit
``cmpxchg`` leaves rax's upper half alone when it succeeds, so r0 is
zero-extended after it.
"""

from __future__ import annotations

from keystone import KS_ARCH_X86, KS_MODE_64

from jitbpf.isa import MAX_CALL_DEPTH, SRC_X, STACK_SIZE, Pseudo, jump_target, to_s32, to_s64

from .. import abi
from .emitter import Emitter
from .patch import IMM, IMM64, OFF, OFF_IMM

REGS = ("rax", "rdi", "rsi", "rdx", "rcx", "r8", "rbx", "r13", "r14", "r15", "rbp", "r10")
ARGS = REGS[1:6]
_LEGACY = {"rax": "a", "rcx": "c", "rdx": "d", "rbx": "b"}
_INDEX = {64: 0, 32: 1, 16: 2, 8: 3}
PTR = {1: "byte", 2: "word", 4: "dword", 8: "qword"}
CC = {"jeq": "e", "jne": "ne", "jgt": "a", "jge": "ae", "jlt": "b", "jle": "be",
      "jsgt": "g", "jsge": "ge", "jslt": "l", "jsle": "le", "jset": "ne"}
SHIFTS = {"lsh": "shl", "rsh": "shr", "arsh": "sar"}
SPILL = 48                      # r1-r5 around helper calls, then the caller's rs->sp
SAVED_SP = 40
SAVE_ARGS = tuple(f"mov qword ptr [rsp + {8 * i}], {r}" for i, r in enumerate(ARGS))
RESTORE_ARGS = tuple(f"mov {r}, qword ptr [rsp + {8 * i}]" for i, r in enumerate(ARGS))
NUMBERS = {"rax": 0, "rcx": 1, "rdx": 2, "rbx": 3, "rsp": 4, "rbp": 5, "rsi": 6, "rdi": 7,
           **{f"r{i}": i for i in range(8, 16)}}


def _names(reg: str) -> tuple[str, str, str, str]:
    if reg in _LEGACY:
        x = _LEGACY[reg]
        return reg, f"e{x}x", f"{x}x", f"{x}l"
    if reg[1:].isdigit():
        return reg, f"{reg}d", f"{reg}w", f"{reg}b"
    base = reg[1:]                      # rsi, rdi, rbp, rsp
    return reg, f"e{base}", base, f"{base}l"


SIZED = {r: _names(r) for r in NUMBERS}


def sized(reg: str, bits: int) -> str:
    """``rax`` -> eax / ax / al; ``rsi`` -> sil (needs REX); ``r9`` -> r9d ..."""
    return SIZED[reg][_INDEX[bits]]


def mem(base: str, off: int) -> str:
    return f"[{base} + {off}]" if off >= 0 else f"[{base} - {-off}]"


def _disp(off: int) -> int:
    """keystone's displacement forms: none (except rbp/r13 bases), disp8, disp32."""
    return 0 if off == 0 else 1 if -128 <= off < 128 else 2


def _movabs(reg: str) -> str:
    """``movabs reg, 0`` as bytes: the imm64 (at +2) is an absolute relocation."""
    n = NUMBERS[reg]
    return f".byte {0x48 | (1 if n >= 8 else 0)}, {0xB8 + (n & 7)}, 0, 0, 0, 0, 0, 0, 0, 0"


class X86Emitter(Emitter):
    arch = "x86_64"
    ks_arch, ks_mode = KS_ARCH_X86, KS_MODE_64

    def reg(self, n: int) -> str:
        return REGS[n]

    # ------------------------------------------------------------------ frames and control flow
    def prologue(self, slot: int) -> None:
        """The C entry (symbol ``abi.function_symbol``) starts from zero r0 and r6-r9 as the
        interpreter does; BPF-to-BPF calls enter the body, sharing the caller's registers."""
        thunk, body = f"T{slot}", f"F{slot}"
        self.marks.append(thunk)
        self.symbols[abi.function_symbol(slot)] = thunk
        self.emit(f"{thunk}:", "push rbx", "push r12", "push r13", "push r14", "push r15", "mov r12, r9",
                  "xor eax, eax", "xor ebx, ebx", "xor r13d, r13d", "xor r14d, r14d", "xor r15d, r15d",
                  f"call {body}", "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "ret",
                  f"{body}:", "push rbp", "push rbx", "push r13", "push r14", "push r15", f"sub rsp, {SPILL}",
                  f"mov r9, qword ptr [r12 + {abi.RUN_SP}]", f"mov qword ptr [rsp + {SAVED_SP}], r9",
                  f"mov r11, qword ptr [r12 + {abi.RUN_DEPTH}]", f"cmp r11, {MAX_CALL_DEPTH}",
                  f"jae {self.trap_label(slot, abi.TRAP_DEPTH)}",
                  "lea r9, [r11 + 1]", f"mov qword ptr [r12 + {abi.RUN_DEPTH}], r9",
                  "shl r11, 9", f"mov rbp, qword ptr [r12 + {abi.RUN_STACK_TOP}]", "sub rbp, r11",
                  f"lea r9, [rbp - {STACK_SIZE}]", f"mov qword ptr [r12 + {abi.RUN_SP}], r9")

    def exits(self) -> None:
        self.emit("K_unwind:", "xor eax, eax",
                  "K_epilogue:", f"dec qword ptr [r12 + {abi.RUN_DEPTH}]",
                  f"mov r9, qword ptr [rsp + {SAVED_SP}]", f"mov qword ptr [r12 + {abi.RUN_SP}], r9",
                  f"add rsp, {SPILL}",
                  "pop r15", "pop r14", "pop r13", "pop rbx", "pop rbp", "ret")

    def jump_lines(self, label: str) -> list[str]:
        return [f"jmp {label}"]

    def budget_tick(self, error: str) -> list[str]:
        return [f"dec qword ptr [r12 + {abi.RUN_BUDGET}]", f"js {error}"]

    def spent_lines(self, pc: int) -> list[str]:
        return [f"mov qword ptr [r12 + {abi.RUN_SPENT}], {pc + 1}", f"mov qword ptr [r12 + {abi.RUN_UNWIND}], 1",
                "jmp K_unwind"]

    def trap_lines(self, code: int, pc: int, value: int | str) -> list[str]:
        value_lines = [f"mov rdx, {value}"] if isinstance(value, str) else self.imm_lines("rdx", value)
        return [*value_lines, f"mov edi, {code}", f"mov esi, {pc}", "jmp K_fail"]

    def unwind_check(self) -> None:
        self.emit(f"cmp qword ptr [r12 + {abi.RUN_UNWIND}], 0", "jne K_unwind")

    def call_external(self, symbol: str) -> None:
        self.emit("mov r9, r12")
        self.reloc("plt32", symbol, -4, 1)
        self.emit(".byte 0xe8, 0, 0, 0, 0")

    def call_helper(self, symbol: str) -> None:
        self.emit(*SAVE_ARGS)
        self.call_external(symbol)
        self.emit(*RESTORE_ARGS)
        self.unwind_check()

    def call_local(self, label: str) -> None:
        self.emit(f"call {label}")
        self.unwind_check()

    def callx(self, pc: int, reg: str) -> None:
        self.emit(f"mov r11, {reg}", f"mov r9d, {pc}", "call K_callx")
        self.unwind_check()

    def callx_routine(self) -> None:
        """Dispatch on r11 (pc in r9): tail-jump to a function, or call a helper by id
        (r1-r5 kept), or trap. Entered by ``call``, so rsp is 8 off alignment."""
        functions, helpers = self.callx_targets()
        self.label("K_callx")
        for slot in functions:
            self.emit(f"lea r10, [rip + T{slot}]", "cmp r11, r10", f"je F{slot}")
        for i, (hid, _) in enumerate(helpers):
            if -(1 << 31) <= hid < 1 << 31:
                self.emit(f"cmp r11, {hid}", f"je KH{i}")
            else:
                self.emit(f"movabs r10, {hid}", "cmp r11, r10", f"je KH{i}")
        self.emit("add rsp, 8", "mov rdx, r11", f"mov edi, {abi.TRAP_CALLX}", "mov esi, r9d", "jmp K_fail")
        for i, (_, symbol) in enumerate(helpers):
            self.label(f"KH{i}")
            self.emit(*(f"push {r}" for r in ARGS))
            self.call_external(symbol)
            self.emit(*(f"pop {r}" for r in reversed(ARGS)), "ret")

    def function_address(self, reg: str, slot: int) -> None:
        self.emit(f"lea {reg}, [rip + T{slot}]")

    def symbol_address(self, reg: str, symbol: str, addend: int) -> None:
        self.reloc("abs64", symbol, addend, 2)
        self.emit(_movabs(reg))

    # ------------------------------------------------------------------ fast path
    def shape(self, pc: int, insn, spec):
        """The fast path's key (see Emitter.shape): the template's choices (zero, imm32 of
        mov; keystone's imm8 / disp8 forms) as classes, the rest of the text exact."""
        kind = spec.kind
        if kind == "alu" and not insn.opcode & SRC_X:            # the most frequent kinds first
            op, imm = spec.op, insn.imm
            if op == "mov":
                tag = (imm > 0) - (imm < 0) if spec.width == 64 else imm == 0
                return (insn.opcode, insn.dst, insn.off, tag), (imm,), IMM
            if op in ("add", "sub", "or", "and", "xor", "mul"):
                return (insn.opcode, insn.dst, insn.off, -128 <= imm < 128), (imm,), IMM
        elif kind == "ldx" or kind == "stx":
            return (insn.opcode, insn.dst, insn.src, _disp(insn.off)), (insn.off,), OFF
        elif kind == "jcond":
            if insn.opcode & SRC_X:
                return (insn.opcode, insn.dst, insn.src), (), None
            return (insn.opcode, insn.dst, -128 <= insn.imm < 128), (insn.imm,), IMM
        elif kind == "ja" or kind == "exit":
            return (insn.opcode,), (), None
        elif kind == "st":
            return (insn.opcode, insn.dst, _disp(insn.off)), (insn.off, insn.imm), OFF_IMM
        if kind in ("alu", "end"):
            return (insn.opcode, insn.dst, insn.src, insn.off, insn.imm), (), None
        if kind == "lddw" and insn.src == Pseudo.IMM64:
            v = to_s64(insn.imm64)
            tag = 0 if v == 0 else 1 if 0 < v < 1 << 32 else 2 if -(1 << 31) <= v < 0 else 3
            return (insn.opcode, insn.dst, tag), (v,), IMM64
        return None

    # ------------------------------------------------------------------ constants
    def imm_lines(self, reg: str, value: int) -> list[str]:
        if value == 0:
            return [f"xor {sized(reg, 32)}, {sized(reg, 32)}"]
        if 0 < value < 1 << 32:
            return [f"mov {sized(reg, 32)}, {to_s32(value)}"]
        if -(1 << 31) <= value < 0:
            return [f"mov {reg}, {value}"]
        return [f"movabs {reg}, {value}"]

    def load_imm(self, reg: str, value: int) -> None:
        self.emit(*self.imm_lines(reg, value))

    # ------------------------------------------------------------------ ALU
    def op_alu(self, pc: int, insn, spec) -> None:
        w, op, d = spec.width, spec.op, self.reg(insn.dst)
        dst = sized(d, w)
        if op == "neg":
            self.emit(f"neg {dst}")
            return
        if op == "movsx":
            src = sized(self.reg(insn.src), spec.sx_bits)
            self.emit(f"movsxd {d}, {src}" if spec.sx_bits == 32 else f"movsx {dst}, {src}")
            return
        src = self.operand(insn)
        if op in SHIFTS:
            self.shift(SHIFTS[op], d, src, w)
        elif op in ("div", "mod", "sdiv", "smod"):
            self.divide(op, d, src, w)
        elif op == "mov":
            if isinstance(src, int):
                self.load_imm(d, src if w == 64 else src & 0xFFFF_FFFF)
            elif w == 32 or src != d:                 # mov r32, r32 zero-extends
                self.emit(f"mov {dst}, {sized(src, w)}")
        elif op == "mul":
            self.emit(f"imul {dst}, {dst}, {src}" if isinstance(src, int) else f"imul {dst}, {sized(src, w)}")
        else:
            self.emit(f"{op} {dst}, {src if isinstance(src, int) else sized(src, w)}")

    def shift(self, op: str, d: str, src: int | str, w: int) -> None:
        dst = sized(d, w)
        if isinstance(src, int):
            count = src & (w - 1)
            if count:
                self.emit(f"{op} {dst}, {count}")
            elif w == 32:
                self.emit(f"mov {dst}, {dst}")
        elif src == "rcx":
            self.emit(f"{op} {dst}, cl")
        else:                                           # the count must be in cl (BPF r4)
            target = "r11" if d == "rcx" else d
            self.emit("mov r11, rcx", f"mov rcx, {src}", f"{op} {sized(target, w)}, cl", "mov rcx, r11")

    def divide(self, op: str, d: str, src: int | str, w: int) -> None:
        signed, modulo = op in ("sdiv", "smod"), op in ("mod", "smod")
        dst, lo, div = sized(d, w), sized(d, 32), sized("r11", w)
        zero = ([f"mov {lo}, {lo}"] if w == 32 else []) if modulo else [f"xor {lo}, {lo}"]
        minus = [f"xor {lo}, {lo}"] if modulo else [f"neg {dst}"]
        guarded = not isinstance(src, int)
        if guarded:
            labels = self.fresh(), self.fresh(), self.fresh()
            self.emit(f"mov {div}, {sized(src, w)}", f"test {div}, {div}", f"jz {labels[0]}")
            if signed:
                self.emit(f"cmp {div}, -1", f"je {labels[1]}")
        else:
            mask = (1 << w) - 1
            if src & mask == 0:
                self.emit(*zero)
                return
            if signed and src & mask == mask:
                self.emit(*minus)
                return
            self.emit(f"mov {div}, {src if w == 64 else to_s32(src)}")
        extend = ("cqo" if w == 64 else "cdq") if signed else "xor edx, edx"
        self.emit("mov r9, rax", "mov r10, rdx", *([] if d == "rax" else [f"mov {sized('rax', w)}, {dst}"]), extend,
                  f"{'idiv' if signed else 'div'} {div}",
                  f"mov {div}, {sized('rdx' if modulo else 'rax', w)}", "mov rax, r9", "mov rdx, r10",
                  f"mov {dst}, {div}")
        if guarded:
            self.emit(f"jmp {labels[2]}", f"{labels[0]}:", *zero)
            if signed:
                self.emit(f"jmp {labels[2]}", f"{labels[1]}:", *minus)
            self.emit(f"{labels[2]}:")

    def op_end(self, pc: int, insn, spec) -> None:
        d, bits = self.reg(insn.dst), spec.width
        if spec.op == "le":
            lines = {16: [f"movzx {sized(d, 32)}, {sized(d, 16)}"], 32: [f"mov {sized(d, 32)}, {sized(d, 32)}"],
                     64: []}[bits]
        else:
            lines = {16: [f"ror {sized(d, 16)}, 8", f"movzx {sized(d, 32)}, {sized(d, 16)}"],
                     32: [f"bswap {sized(d, 32)}"], 64: [f"bswap {d}"]}[bits]
        self.emit(*lines)

    def op_jcond(self, pc: int, insn, spec) -> None:
        w = spec.width
        dst, src = sized(self.reg(insn.dst), w), self.operand(insn)
        text = src if isinstance(src, int) else sized(src, w)
        self.emit(f"{'test' if spec.op == 'jset' else 'cmp'} {dst}, {text}",
                  f"j{CC[spec.op]} {self.target(pc, jump_target(insn, pc))}")

    # ------------------------------------------------------------------ memory
    def address(self, pc: int, base: str, off: int, size: int, write: bool) -> str:
        return mem(base, off)

    def check(self, base: str, off: int, info: int) -> None:
        self.emit(f"lea r11, {mem(base, off)}", f"mov r9d, {info}", "call K_check")

    def op_ldx(self, pc: int, insn, spec) -> None:
        size, d = spec.width, self.reg(insn.dst)
        operand = f"{PTR[size]} ptr {self.address(pc, self.reg(insn.src), insn.off, size, False)}"
        if spec.signed:
            self.emit(f"movsxd {d}, {operand}" if size == 4 else f"movsx {d}, {operand}")
        elif size < 4:
            self.emit(f"movzx {sized(d, 32)}, {operand}")
        else:
            self.emit(f"mov {sized(d, 8 * size)}, {operand}")

    def op_st(self, pc: int, insn, spec) -> None:
        size = spec.width
        value = insn.imm & 0xFF if size == 1 else insn.imm & 0xFFFF if size == 2 else insn.imm
        self.emit(f"mov {PTR[size]} ptr {self.address(pc, self.reg(insn.dst), insn.off, size, True)}, {value}")

    def op_stx(self, pc: int, insn, spec) -> None:
        size = spec.width
        target = self.address(pc, self.reg(insn.dst), insn.off, size, True)
        self.emit(f"mov {PTR[size]} ptr {target}, {sized(self.reg(insn.src), 8 * size)}")

    def op_atomic(self, pc: int, insn, spec) -> None:
        size, op = spec.width, spec.op
        bits, ptr = 8 * size, PTR[size]
        s = self.reg(insn.src)
        src = sized(s, bits)
        target = self.address(pc, self.reg(insn.dst), insn.off, size, True)
        if op in ("add", "or", "and", "xor"):
            self.emit(f"lock {op} {ptr} ptr {target}, {src}")
        elif op == "fetch_add":
            self.emit(f"lock xadd {ptr} ptr {target}, {src}")
        elif op == "xchg":
            self.emit(f"xchg {ptr} ptr {target}, {src}")
        elif op == "cmpxchg":
            self.emit(f"lock cmpxchg {ptr} ptr {target}, {src}")
            if bits == 32:
                self.emit("mov eax, eax")
        else:                                   # fetch_or/and/xor: a cmpxchg loop (rax is its comparand)
            if target != "[r11]":
                self.emit(f"lea r11, {target}")
            operand = sized("r9" if s == "rax" else s, bits)
            acc, new, loop = sized("rax", bits), sized("r10", bits), self.fresh()
            self.emit("mov r9, rax", f"mov {acc}, {ptr} ptr [r11]", f"{loop}:", f"mov {new}, {acc}",
                      f"{op[6:]} {new}, {operand}", f"lock cmpxchg {ptr} ptr [r11], {new}", f"jne {loop}",
                      "mov r10, rax", "mov rax, r9", f"mov {s}, r10")

    def check_routine(self) -> None:
        """Bounds check of [r11, r11 + size) (info in r9: pc << 8 | size << 1 | write) against
        the run's region table; misses ask the runtime, which raises or accepts.
        Preserves every BPF register; on a violation it leaves through K_unwind."""
        self.emit("K_check:", "push rax", "push rcx", "push rdx",
                  "mov eax, r9d", "shr eax, 1", "and eax, 127", "add rax, r11", "jc K_check_slow",
                  f"cmp r11, qword ptr [r12 + {abi.RUN_SP}]", "jb K_check_table",       # the live stack first
                  f"cmp rax, qword ptr [r12 + {abi.RUN_STACK_TOP}]", "jbe K_check_ok",
                  "K_check_table:", f"lea rdx, [r12 + {abi.RUN_TABLE}]", f"mov rcx, qword ptr [r12 + {abi.RUN_COUNT}]",
                  "K_check_loop:", "test rcx, rcx", "jz K_check_slow",
                  "cmp r11, qword ptr [rdx]", "jb K_check_next",
                  "cmp rax, qword ptr [rdx + 8]", "ja K_check_next",
                  "test r9d, 1", "jz K_check_ok", "cmp qword ptr [rdx + 16], 0", "jne K_check_ok",
                  "K_check_next:", f"add rdx, {abi.TABLE_ENTRY}", "dec rcx", "jmp K_check_loop",
                  "K_check_ok:", "pop rdx", "pop rcx", "pop rax", "ret",
                  "K_check_slow:", "push rdi", "push rsi", "push r8", "push r10", "push r11", "sub rsp, 8",
                  "mov rdi, r11", "mov rsi, r9")
        self.call_external(abi.CHECK)
        self.emit("add rsp, 8", "pop r11", "pop r10", "pop r8", "pop rsi", "pop rdi",
                  f"cmp qword ptr [r12 + {abi.RUN_UNWIND}], 0", "je K_check_ok",
                  "add rsp, 32", "jmp K_unwind")

    def packet_load(self, pc: int, size: int, src: str | None, insn) -> None:
        """LD_ABS / LD_IND through the runtime (abi.LOAD_PACKET); r1-r5 survive it."""
        imm = insn.imm
        if src is None:
            offset = imm
        else:
            self.emit(f"mov r11, {src}", f"add r11, {imm}", "movsxd r11, r11d")   # 32-bit sum, sign-extended
            offset = "r11"
        self.emit(*SAVE_ARGS, f"mov rsi, {offset}", "mov rdi, rbx", f"mov edx, {size}", f"mov ecx, {pc}")
        self.call_external(abi.LOAD_PACKET)
        self.emit(*RESTORE_ARGS)
        self.unwind_check()


EMITTER = X86Emitter
