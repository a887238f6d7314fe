"""The reference interpreter: exact RFC 9669 (+ cpu v4, callx) semantics, clear over fast.

Every other engine is checked against this one. The semantics live in small
tables (``alu_semantics``, ``CONDITIONS``, ``ATOMIC``) keyed by the operation
names of :mod:`jitbpf.isa`. Before running, each instruction slot is turned
into a handler closure ``h(regs) -> next_pc`` built from those tables, so the
run loop is only ``pc = handlers[pc](regs)``.

It runs the program the passes produced (jitbpf.passes): helpers come resolved,
``tick`` spends the run budget, ``check`` is a no-op (every access is checked
here anyway), AX is a twelfth register.

Memory goes through the runtime's :class:`AddressSpace` (bounds-checked, with
the pc in every error). Pointers are real host addresses, the same values the
native engines see. The stack is one 8 x 512-byte region; frame k's r10 is
``top - 512 * k``. bpf-to-bpf calls save r6-r9 and r10 and restore them on exit.

Choices where the ISA leaves freedom (documented so engines agree):
helper calls, kfunc calls and LD_ABS/LD_IND leave r1-r5 unchanged here (the
kernel calls them clobbered; a verified program cannot read them); a packet
access out of bounds in LD_ABS/LD_IND ends the program with r0 = 0, as in Linux.
"""

from __future__ import annotations

import time
from typing import Callable

from . import isa
from .errors import BpfRuntimeError
from .isa import MASK32, MASK64, MAX_CALL_DEPTH, STACK_SIZE, Insn, OpInfo, sign_extend
from .runtime.memory import HostBuffer, StackRegion

#: Interpreter-only function pointer values: FUNC_POINTER_BASE + entry slot.
FUNC_POINTER_BASE = 0xFFFF_F000_0000_0000
_EXIT = -1


# --------------------------------------------------------------------------- semantics tables

def _sdiv(a: int, b: int, bits: int) -> int:
    if b == 0:
        return 0
    sa, sb = sign_extend(a, bits), sign_extend(b, bits)
    q = abs(sa) // abs(sb)            # truncate toward zero, unlike Python's //
    return -q if (sa < 0) != (sb < 0) else q


def _smod(a: int, b: int, bits: int) -> int:
    if b == 0:
        return a
    sa, sb = sign_extend(a, bits), sign_extend(b, bits)
    r = abs(sa) % abs(sb)             # the sign follows the dividend
    return -r if sa < 0 else r


def alu_semantics(width: int) -> dict[str, Callable[..., int]]:
    """op -> f(dst, src[, sx_bits]) on unsigned ``width``-bit operands; the result is masked."""
    m = (1 << width) - 1
    shift_mask = width - 1
    return {
        "add": lambda a, b: (a + b) & m,
        "sub": lambda a, b: (a - b) & m,
        "mul": lambda a, b: (a * b) & m,
        "div": lambda a, b: a // b if b else 0,
        "sdiv": lambda a, b: _sdiv(a, b, width) & m,
        "mod": lambda a, b: a % b if b else a,
        "smod": lambda a, b: _smod(a, b, width) & m,
        "or": lambda a, b: a | b,
        "and": lambda a, b: a & b,
        "xor": lambda a, b: a ^ b,
        "lsh": lambda a, b: (a << (b & shift_mask)) & m,
        "rsh": lambda a, b: a >> (b & shift_mask),
        "arsh": lambda a, b: (sign_extend(a, width) >> (b & shift_mask)) & m,
        "neg": lambda a, b: -a & m,
        "mov": lambda a, b: b,
        "movsx": lambda a, b, bits: sign_extend(b, bits) & m,
    }


ALU = {64: alu_semantics(64), 32: alu_semantics(32)}

#: condition -> f(dst, src) on unsigned operands of the given width.
def condition_semantics(width: int) -> dict[str, Callable[[int, int], bool]]:
    def s(x: int) -> int:
        return sign_extend(x, width)
    return {
        "jeq": lambda a, b: a == b, "jne": lambda a, b: a != b, "jset": lambda a, b: bool(a & b),
        "jgt": lambda a, b: a > b, "jge": lambda a, b: a >= b,
        "jlt": lambda a, b: a < b, "jle": lambda a, b: a <= b,
        "jsgt": lambda a, b: s(a) > s(b), "jsge": lambda a, b: s(a) >= s(b),
        "jslt": lambda a, b: s(a) < s(b), "jsle": lambda a, b: s(a) <= s(b),
    }


CONDITIONS = {64: condition_semantics(64), 32: condition_semantics(32)}

#: atomic op -> (new memory value from (old, src), whether src receives the old value).
ATOMIC: dict[str, tuple[Callable[[int, int], int], bool]] = {
    "add": (lambda old, v: old + v, False), "fetch_add": (lambda old, v: old + v, True),
    "or": (lambda old, v: old | v, False), "fetch_or": (lambda old, v: old | v, True),
    "and": (lambda old, v: old & v, False), "fetch_and": (lambda old, v: old & v, True),
    "xor": (lambda old, v: old ^ v, False), "fetch_xor": (lambda old, v: old ^ v, True),
    "xchg": (lambda old, v: v, True),
}


def byteswap(value: int, bits: int) -> int:
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


def end_semantics(op: str, bits: int, value: int) -> int:
    """le/be/bswap of the low ``bits`` bits (the host is little-endian by definition here)."""
    if op == "le":
        return value & ((1 << bits) - 1)
    return byteswap(value, bits)


# --------------------------------------------------------------------------- the machine

class _Abort(Exception):
    """Ends the whole program early with a given r0 (LD_ABS out of bounds)."""

    def __init__(self, r0: int):
        self.r0 = r0


def budget_error(budget: int, pc: int | None) -> BpfRuntimeError:
    """The error of every engine for a run that spent its budget (see jitbpf.passes.budget)."""
    return BpfRuntimeError(f"run budget of {budget} exceeded (loop heads and function entries)", pc=pc)


class Interpreter:
    """A program prepared for interpretation; call it with r1..r5 to run it."""

    def __init__(self, program, budget: int | None = None, timeout: float | None = None):
        self.program = program
        self.runtime = program.runtime
        self.budget = budget
        self.timeout = timeout
        self.left = 0                     # budget left in the current run
        self.deadline = 0.0               # with a timeout: when the current run must end
        self.frames: list[tuple[int, list[int]]] = []   # (return pc, saved r6..r10)
        self.entries = set(program.functions)
        self.stack = HostBuffer(STACK_SIZE * MAX_CALL_DEPTH)
        self.top = self.stack.address + self.stack.size
        self.floor = self.top - STACK_SIZE          # r10 - 512 of the deepest frame in use
        self.stack_region = StackRegion(self.stack, lambda: self.floor)
        self.handlers = [self._handler(pc, insn, spec)
                         for pc, (insn, spec) in enumerate(zip(program.insns, program.specs))]

    # ---------------------------------------------------------------- running
    def __call__(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        rt = self.runtime
        outer_invoke = rt.invoke
        rt.invoke = self.invoke
        self.left = self.budget if self.budget is not None else 1 << 62
        if self.timeout is not None:
            self.deadline = time.monotonic() + self.timeout
        self.frames = []
        self.floor = self.top - STACK_SIZE
        self.stack.clear()
        try:
            with rt.mapped(self.stack_region):
                r0 = self._run(0, [0, r1, r2, r3, r4, r5, 0, 0, 0, 0, self.top, 0])
        except _Abort as abort:
            r0 = abort.r0
        finally:
            rt.invoke = outer_invoke
        return rt.finish_unwind(r0)

    def invoke(self, pointer: int, *args: int) -> int:
        """Call a BPF function pointer (from lddw func) from a helper, e.g. bpf_loop.

        The callback runs in a nested loop one frame deeper; a marker frame makes its
        exit end that loop (and give the caller's frames back: r10 is the caller's).
        """
        entry = pointer - FUNC_POINTER_BASE
        if entry not in self.entries:
            raise BpfRuntimeError(f"0x{pointer:x} is not a BPF function pointer")
        regs = [0, *args, *[0] * (5 - len(args)), 0, 0, 0, 0, self.floor + STACK_SIZE, 0]
        self._enter(regs, entry, _EXIT, None)
        return self._run(entry, regs)

    def _run(self, pc: int, regs: list[int]) -> int:
        handlers = self.handlers
        while pc >= 0:
            pc = handlers[pc](regs)
        return regs[0]

    # ---------------------------------------------------------------- handler construction
    def _handler(self, pc: int, insn: Insn, spec: OpInfo | None) -> Callable[[list[int]], int]:
        if spec is None:                  # second slot of an lddw: never executed
            return self._unreachable(pc)
        return getattr(self, "_h_" + spec.kind)(pc, insn, spec)

    @staticmethod
    def _unreachable(pc: int):
        def h(r):
            raise BpfRuntimeError("jumped into the middle of an lddw", pc=pc)
        return h

    def _h_alu(self, pc: int, insn: Insn, spec: OpInfo):
        d, s, nxt = insn.dst, insn.src, pc + 1
        f = ALU[spec.width][spec.op]
        m = MASK64 if spec.width == 64 else MASK32
        if spec.op == "movsx":
            bits = spec.sx_bits

            def h(r):
                r[d] = f(0, r[s], bits)
                return nxt
            return h
        if insn.source == isa.SRC_X:
            def h(r):
                r[d] = f(r[d] & m, r[s] & m)
                return nxt
            return h
        imm = insn.imm & m                # 64-bit: sign-extended to 64 bits, then used unsigned

        def h(r):
            r[d] = f(r[d] & m, imm)
            return nxt
        return h

    def _h_end(self, pc: int, insn: Insn, spec: OpInfo):
        d, nxt, op, bits = insn.dst, pc + 1, spec.op, spec.width

        def h(r):
            r[d] = end_semantics(op, bits, r[d])
            return nxt
        return h

    def _h_jcond(self, pc: int, insn: Insn, spec: OpInfo):
        d, s, nxt, target = insn.dst, insn.src, pc + 1, isa.jump_target(insn, pc)
        test = CONDITIONS[spec.width][spec.op]
        m = MASK64 if spec.width == 64 else MASK32
        if insn.source == isa.SRC_X:
            def h(r):
                return target if test(r[d] & m, r[s] & m) else nxt
            return h
        imm = insn.imm & m

        def h(r):
            return target if test(r[d] & m, imm) else nxt
        return h

    def _h_ja(self, pc: int, insn: Insn, spec: OpInfo):
        target = isa.jump_target(insn, pc)
        return lambda r: target

    def _h_exit(self, pc: int, insn: Insn, spec: OpInfo):
        def h(r):
            frames = self.frames
            if not frames:
                return _EXIT
            ret, saved = frames.pop()
            r[6:11] = saved
            self.floor = saved[4] - STACK_SIZE
            return ret
        return h

    def _enter(self, r: list[int], entry: int, return_pc: int, pc: int | None) -> int:
        depth = len(self.frames) + 1
        if depth >= MAX_CALL_DEPTH:
            raise BpfRuntimeError(f"call depth exceeds {MAX_CALL_DEPTH} frames", pc=pc)
        self.frames.append((return_pc, r[6:11]))
        r[10] = self.top - STACK_SIZE * depth
        self.floor = r[10] - STACK_SIZE
        return entry

    def _h_call(self, pc: int, insn: Insn, spec: OpInfo):
        nxt = pc + 1
        if insn.src == isa.CALL_LOCAL:
            entry = isa.jump_target(insn, pc)
            return lambda r: self._enter(r, entry, nxt, pc)
        return self._call_helper(self.program.helpers[pc].func, nxt)

    def _call_helper(self, func, nxt: int):
        rt = self.runtime

        def h(r):
            r[0] = func(rt, r[1], r[2], r[3], r[4], r[5]) & MASK64
            if rt.pending_exit is not None:        # e.g. a successful bpf_tail_call
                raise _Abort(r[0])
            return nxt
        return h

    def _h_callx(self, pc: int, insn: Insn, spec: OpInfo):
        d, nxt, rt = insn.dst, pc + 1, self.runtime

        def h(r):
            target = r[d]
            entry = target - FUNC_POINTER_BASE
            if entry in self.entries:
                return self._enter(r, entry, nxt, pc)
            if target not in rt.helpers:
                raise BpfRuntimeError(f"callx to 0x{target:x}: neither a helper id nor a function", pc=pc)
            r[0] = rt.helpers.get(target).func(rt, r[1], r[2], r[3], r[4], r[5]) & MASK64
            if rt.pending_exit is not None:
                raise _Abort(r[0])
            return nxt
        return h

    def _h_lddw(self, pc: int, insn: Insn, spec: OpInfo):
        d, nxt = insn.dst, pc + 2
        if insn.src == isa.Pseudo.FUNC:
            value = FUNC_POINTER_BASE + isa.jump_target(insn, pc)
        else:
            value = self.program.lddw_value(pc)

        def h(r):
            r[d] = value
            return nxt
        return h

    def _h_ldx(self, pc: int, insn: Insn, spec: OpInfo):
        d, s, off, size, nxt = insn.dst, insn.src, insn.off, spec.width, pc + 1
        load = self.runtime.memory.load
        if spec.signed:
            bits = size * 8

            def h(r):
                r[d] = sign_extend(load((r[s] + off) & MASK64, size, pc), bits) & MASK64
                return nxt
            return h

        def h(r):
            r[d] = load((r[s] + off) & MASK64, size, pc)
            return nxt
        return h

    def _h_st(self, pc: int, insn: Insn, spec: OpInfo):
        d, off, size, nxt = insn.dst, insn.off, spec.width, pc + 1
        value = insn.imm & ((1 << (8 * size)) - 1)   # imm sign-extended, then truncated
        store = self.runtime.memory.store

        def h(r):
            store((r[d] + off) & MASK64, size, value, pc)
            return nxt
        return h

    def _h_stx(self, pc: int, insn: Insn, spec: OpInfo):
        d, s, off, size, nxt = insn.dst, insn.src, insn.off, spec.width, pc + 1
        store = self.runtime.memory.store

        def h(r):
            store((r[d] + off) & MASK64, size, r[s], pc)
            return nxt
        return h

    def _h_atomic(self, pc: int, insn: Insn, spec: OpInfo):
        d, s, off, size, nxt = insn.dst, insn.src, insn.off, spec.width, pc + 1
        mem = self.runtime.memory
        m = (1 << (8 * size)) - 1
        if spec.op == "cmpxchg":
            def h(r):
                addr = (r[d] + off) & MASK64
                old = mem.load(addr, size, pc)
                if old == r[0] & m:
                    mem.store(addr, size, r[s], pc)
                r[0] = old                    # zero-extended for the 32-bit form
                return nxt
            return h
        update, fetch = ATOMIC[spec.op]

        def h(r):
            addr = (r[d] + off) & MASK64
            old = mem.load(addr, size, pc)
            mem.store(addr, size, update(old, r[s] & m) & m, pc)
            if fetch:
                r[s] = old
            return nxt
        return h

    def _packet_load(self, pc: int, size: int, nxt: int, offset_of: Callable[[list[int]], int]):
        rt = self.runtime

        def h(r):
            data, length = rt.skb_window(r[6], pc)
            offset = offset_of(r)
            if not 0 <= offset <= length - size:
                raise _Abort(0)
            r[0] = int.from_bytes(rt.memory.read(data + offset, size, pc), "big")
            return nxt
        return h

    def _h_check(self, pc: int, insn: Insn, spec: OpInfo):
        nxt = pc + 1
        return lambda r: nxt

    def _h_tick(self, pc: int, insn: Insn, spec: OpInfo):
        nxt = pc + 1
        if self.timeout is not None:
            def h(r):
                self.left -= 1
                if self.left < 0:
                    raise budget_error(self.budget, pc)
                if not self.left & 1023 and time.monotonic() > self.deadline:
                    raise BpfRuntimeError("the run exceeded its time limit", pc=pc)
                return nxt
            return h
        if self.budget is None:
            return lambda r: nxt

        def h(r):
            self.left -= 1
            if self.left < 0:
                raise budget_error(self.budget, pc)
            return nxt
        return h

    def _h_ldabs(self, pc: int, insn: Insn, spec: OpInfo):
        imm = insn.imm
        return self._packet_load(pc, spec.width, pc + 1, lambda r: imm)

    def _h_ldind(self, pc: int, insn: Insn, spec: OpInfo):
        s, imm = insn.src, insn.imm
        return self._packet_load(pc, spec.width, pc + 1, lambda r: isa.to_s32(r[s] + imm))


