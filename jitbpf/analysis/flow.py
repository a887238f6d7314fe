"""Control- and data-flow facts about a BPF program that code generators need.

- :class:`Function`: one BPF function: the slots reachable from its entry by jumps and
  fall-through (so code a function jumps or falls into belongs to it too, and ``exit``
  anywhere returns from the current frame, exactly as in the interpreter; code shared by
  two functions is compiled into both), with its block leaders.
- Register liveness, so compiled code can follow the interpreter exactly across
  bpf-to-bpf calls without paying for it in ordinary programs: the interpreter has one
  register file, so a callee that reads r0/r6-r9 before writing them sees the caller's
  values, and a caller that reads r1-r5 after a call sees the callee's last values.
  :func:`analyse` finds which functions need their inherited registers (``live_in``)
  and which must hand r1-r5 back (``returns_args``); for verified programs both are empty.
- Known bases (:meth:`ProgramFlow.bases`): for each instruction, which registers hold
  ``r10 + k`` or ``argument + k`` for a known ``k``, so code generators can address the
  frame itself (the optimiser keeps stack slots in registers) and every access off one
  argument from one pointer (alias analysis tells ``[r1+8]`` from ``[r1+16]``).
- The call graph depth: whether a program can exceed the 8-frame limit at all.

Register sets are bit masks (bit n = rn).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from jitbpf import isa
from jitbpf.isa import MAX_CALL_DEPTH, Insn, OpInfo, jump_target

ARGS = 0b111110                 # r1-r5
INHERITED = 0b1111000001        # r0, r6-r9: what a callee shares with its caller
FETCHES = frozenset({"fetch_add", "fetch_or", "fetch_and", "fetch_xor", "xchg"})
_LIMIT = 1 << 20                # offsets beyond this are not tracked


def bit(reg: int) -> int:
    return 1 << reg


@dataclass
class Function:
    start: int
    slots: list[int] = field(default_factory=list)     # reachable instruction slots, sorted
    leaders: set[int] = field(default_factory=set)
    branch_only: set[int] = field(default_factory=set)   # leaders entered only from pc - 1
    heads: set[int] = field(default_factory=set)         # leaders jumped to from them or later
    live_in: int = 0              # inherited registers (INHERITED bits) read before written
    returns_args: bool = False    # some caller reads r1-r5 after calling this function
    may_unwind: bool = False      # can end the program (helpers, runtime checks, callees)
    address_taken: bool = False   # a lddw func names it: helpers may call it back

    def contains(self, pc: int) -> bool:
        return pc in self._members

    def blocks(self) -> dict[int, list[int]]:
        """Leader -> the slots of its block, in order."""
        blocks: dict[int, list[int]] = {}
        current: list[int] = []
        for pc in self.slots:
            if pc in self.leaders:
                current = blocks[pc] = []
            current.append(pc)
        return blocks

    def __post_init__(self) -> None:
        self._members = set(self.slots)


class ProgramFlow:
    """Flow facts of one program; ``functions`` in slot order, main first."""

    def __init__(self, program):
        self.insns: list[Insn] = program.insns
        self.specs: list[OpInfo | None] = program.specs
        self.next = [self._successors(pc) if spec is not None else () for pc, spec in enumerate(self.specs)]
        self.functions = [Function(entry, self._reachable(entry)) for entry in program.functions]
        self.by_start = {f.start: f for f in self.functions}
        self.called: set[int] = set()           # entries named by call local / callx candidates
        for f in self.functions:
            self._leaders(f)
        for pc, insn in enumerate(self.insns):
            spec = self.specs[pc]
            if spec is not None and spec.kind == "lddw" and insn.src == isa.Pseudo.FUNC:
                self.by_start[jump_target(insn, pc)].address_taken = True
            if spec is not None and spec.kind == "call" and insn.src == isa.CALL_LOCAL:
                self.called.add(jump_target(insn, pc))
        if self.has_callx:
            self.called.update(self.by_start)
        calls = bool(self.called) or any(f.address_taken for f in self.functions)
        if calls:                       # a lone main function inherits nothing and returns only r0
            self._interprocedural()
        else:
            self.functions[0].may_unwind = True
        self.track_depth = calls and self._may_exceed_depth()

    # ---------------------------------------------------------------- structure
    @property
    def has_callx(self) -> bool:
        return any(s is not None and s.kind == "callx" for s in self.specs)

    def _reachable(self, entry: int) -> list[int]:
        seen = {entry}
        work = [entry]
        nxt = self.next
        while work:
            for succ in nxt[work.pop()]:
                if succ not in seen:
                    seen.add(succ)
                    work.append(succ)
        return sorted(seen)

    def _leaders(self, f: Function) -> None:
        """Block starts: the entry, jump targets, and whatever follows a jump or exit;
        ``branch_only``: the blocks entered only by falling through a conditional jump;
        ``heads``: the blocks some later slot jumps back to."""
        targets = {f.start}
        after_jcond = set()
        for pc in f.slots:
            spec = self.specs[pc]
            if spec.kind in ("jcond", "ja"):
                target = self.next[pc][-1]
                targets.add(target)
                if target <= pc:
                    f.heads.add(target)
            if spec.kind in ("jcond", "ja", "exit") and f.contains(pc + 1):
                f.leaders.add(pc + 1)
                if spec.kind == "jcond":
                    after_jcond.add(pc + 1)
        f.leaders |= targets
        f.branch_only = after_jcond - targets

    def successors(self, pc: int) -> tuple[int, ...]:
        """Slots control can reach next within the same frame."""
        return self.next[pc]

    def _successors(self, pc: int) -> tuple[int, ...]:
        spec, insn = self.specs[pc], self.insns[pc]
        if spec.kind == "exit":
            return ()
        if spec.kind == "ja":
            return (isa.jump_target(insn, pc),)
        nxt = pc + (2 if spec.kind == "lddw" else 1)
        if spec.kind == "jcond":
            return (nxt, isa.jump_target(insn, pc))
        return (nxt,)

    def callees(self, pc: int) -> list[Function]:
        """Functions an instruction may call directly (local call, callx)."""
        spec, insn = self.specs[pc], self.insns[pc]
        if spec.kind == "call" and insn.src == isa.CALL_LOCAL:
            return [self.by_start[jump_target(insn, pc)]]
        if spec.kind == "callx":
            return list(self.functions)
        return []

    def calls_back(self, pc: int) -> bool:
        """Whether an instruction calls runtime code that may call back into BPF functions."""
        spec, insn = self.specs[pc], self.insns[pc]
        return spec.kind == "callx" or spec.kind == "call" and insn.src != isa.CALL_LOCAL

    # ---------------------------------------------------------------- registers
    def uses_defs(self, pc: int, f: Function) -> tuple[int, int]:
        """(registers read, registers certainly written) by one instruction of ``f``."""
        spec, insn = self.specs[pc], self.insns[pc]
        kind, d, s = spec.kind, bit(insn.dst), bit(insn.src)
        x = insn.source == isa.SRC_X
        if kind == "alu":
            if spec.op in ("mov", "movsx"):
                return (s if x else 0), d
            if spec.op == "neg":
                return d, d
            return d | (s if x else 0), d
        if kind == "end":
            return d, d
        if kind == "jcond":
            return d | (s if x else 0), 0
        if kind == "ldx":
            return s, d
        if kind in ("st", "check"):
            return d, 0
        if kind == "stx":
            return d | s, 0
        if kind == "atomic":
            if spec.op == "cmpxchg":
                return d | s | 1, 1
            return d | s, s if spec.op in FETCHES else 0
        if kind == "lddw":
            return 0, d
        if kind == "ldabs":
            return bit(6), 1
        if kind == "ldind":
            return bit(6) | s, 1
        if kind == "exit":
            return 1 | (ARGS if f.returns_args else 0), 0
        if kind == "call":
            if insn.src == isa.CALL_LOCAL:
                return ARGS | self.by_start[jump_target(insn, pc)].live_in, 1 | ARGS
            return ARGS, 1
        if kind == "callx":
            inherited = 0
            for f in self.functions:
                inherited |= f.live_in
            return d | ARGS | inherited, 1
        return 0, 0                      # ja

    def liveness(self, f: Function) -> dict[int, int]:
        """Registers live after each instruction of ``f`` (r10 excluded)."""
        live_out: dict[int, int] = {}
        live_in: dict[int, int] = {}
        pcs = f.slots
        facts = {pc: self.uses_defs(pc, f) for pc in pcs}
        changed = True
        while changed:
            changed = False
            for pc in reversed(pcs):
                out = 0
                for succ in self.successors(pc):
                    out |= live_in.get(succ, 0)
                uses, defs = facts[pc]
                new_in = (uses | (out & ~defs)) & 0x3FF
                live_out[pc] = out
                if live_in.get(pc) != new_in:
                    live_in[pc] = new_in
                    changed = True
        f.live_in = live_in.get(f.start, 0) & INHERITED
        return live_out

    def _interprocedural(self) -> None:
        """Fixpoint of live_in / returns_args / may_unwind over the call graph."""
        while True:
            before = [(f.live_in, f.returns_args, f.may_unwind) for f in self.functions]
            for f in self.functions:
                live_out = self.liveness(f)
                for pc in live_out:
                    if live_out[pc] & ARGS:
                        for callee in self.callees(pc):
                            callee.returns_args = True
                    if self.calls_back(pc) or self.specs[pc].kind in _RUNTIME_KINDS \
                            or any(c.may_unwind for c in self.callees(pc)):
                        f.may_unwind = True
            if before == [(f.live_in, f.returns_args, f.may_unwind) for f in self.functions]:
                return

    # ---------------------------------------------------------------- call depth
    def _may_exceed_depth(self) -> bool:
        """Whether some chain of calls can reach more than MAX_CALL_DEPTH frames
        (recursion included); only then does compiled code count frames."""
        targets = [f for f in self.functions if f.address_taken]
        edges: dict[int, set[int]] = {f.start: set() for f in self.functions}
        for f in self.functions:
            for pc in f.slots:
                edges[f.start].update(c.start for c in self.callees(pc))
                if self.calls_back(pc):
                    edges[f.start].update(t.start for t in targets)
        longest: dict[int, int] = {}
        on_path: set[int] = set()

        def depth(node: int) -> int:
            if node in on_path:
                return MAX_CALL_DEPTH + 1            # a cycle: unbounded
            if node not in longest:
                on_path.add(node)
                longest[node] = 1 + max((depth(n) for n in edges[node]), default=0)
                on_path.discard(node)
            return longest[node]
        return depth(0) > MAX_CALL_DEPTH

    # ---------------------------------------------------------------- known bases
    def bases(self, f: Function) -> dict[int, tuple[Known, ...]]:
        """For each instruction of ``f``, what r0-r9 hold before it runs (see Known).
        Blocks are visited in slot order (a heap), so straight-line code and forward
        branches are visited once and loops until their facts settle."""
        blocks = f.blocks()
        specs, insns = self.specs, self.insns
        entry: tuple[Known, ...] = (None, *((r, 0) for r in range(1, 6)), None, None, None, None, (isa.FP, 0), None)
        at_leader: dict[int, tuple[Known, ...]] = {f.start: entry}
        state: dict[int, tuple[Known, ...]] = {}
        work, queued = [f.start], {f.start}
        while work:
            leader = heapq.heappop(work)
            queued.discard(leader)
            regs = at_leader[leader]
            for pc in blocks[leader]:
                state[pc] = regs
                spec = specs[pc]
                if spec.kind in _KEEPS_BASES:
                    continue
                if spec.kind in _WRITES_DST:          # the common case, without a call
                    insn = insns[pc]
                    value = _alu_base(spec, insn, regs) if spec.kind == "alu" else None
                    if regs[insn.dst] != value:
                        regs = (*regs[:insn.dst], value, *regs[insn.dst + 1:])
                else:
                    regs = self._base_transfer(pc, regs)
            for succ in self.next[blocks[leader][-1]]:
                old = at_leader.get(succ)
                if old == regs:
                    continue
                new = regs if old is None else tuple(a if a == b else None for a, b in zip(old, regs))
                if new != old:
                    at_leader[succ] = new
                    if succ not in queued:
                        queued.add(succ)
                        heapq.heappush(work, succ)
        return state

    def _base_transfer(self, pc: int, regs: tuple[Known, ...]) -> tuple[Known, ...]:
        """The registers after a call, callx, LD_ABS/LD_IND or atomic instruction (the
        other kinds are handled in :meth:`bases` itself)."""
        spec, insn = self.specs[pc], self.insns[pc]
        kind = spec.kind
        if kind == "atomic":
            reg = 0 if spec.op == "cmpxchg" else insn.src if spec.op in FETCHES else None
            if reg is None or regs[reg] is None:
                return regs
            return (*regs[:reg], None, *regs[reg + 1:])
        out = list(regs)
        out[0] = None                                 # helpers keep r1-r5, functions may not
        if kind == "callx" or kind == "call" and insn.src == isa.CALL_LOCAL:
            out[1:6] = (None,) * 5
        return tuple(out)


#: What a register holds, for addressing: ``(base, k)`` = exactly ``base + k``, where base
#: is r10 (``isa.FP``), 1-5 (the function's argument rN as it arrived) or CONST (k is the
#: value: constants are followed so that blinded ones, built in AX, are still known);
#: None = unknown.
Known = tuple[int, int] | None
CONST = -1
ARG_BASES = frozenset(range(1, 6))


#: Kinds that call the runtime, which may end the program.
_RUNTIME_KINDS = frozenset({"ldabs", "ldind", "tick", "check"})
_KEEPS_BASES = frozenset({"jcond", "ja", "exit", "st", "stx", "check", "tick"})
_WRITES_DST = frozenset({"alu", "end", "ldx", "lddw"})
_CONST_OPS = {"mov": lambda a, b: b, "add": lambda a, b: a + b, "sub": lambda a, b: a - b,
              "xor": lambda a, b: a ^ b, "or": lambda a, b: a | b, "and": lambda a, b: a & b,
              "lsh": lambda a, b: a << (b & 63)}


def _alu_base(spec: OpInfo, insn: Insn, regs: tuple[Known, ...]) -> Known:
    """A known base after an ALU instruction: constants through mov/add/sub/xor/or/and/lsh
    (64-bit, and 32-bit mov/xor); mov of a known register; a known base plus or minus a
    constant."""
    op = spec.op
    if insn.source == isa.SRC_K:
        if spec.width == 32:
            known = regs[insn.dst]
            if op == "mov" or op == "xor" and known is not None and known[0] == CONST:
                a = known[1] if op == "xor" else 0
                return (CONST, (a ^ insn.imm if op == "xor" else insn.imm) & isa.MASK32)
            return None
        src: Known = (CONST, insn.imm)
    elif spec.width == 64 and op not in ("movsx",):
        src = (isa.FP, 0) if insn.src == isa.FP else regs[insn.src]
        if op == "mov":
            return src
    else:
        return None
    known = None if op == "mov" else regs[insn.dst]
    if src is None or op != "mov" and known is None or op not in _CONST_OPS:
        return None
    if src[0] == CONST and (op == "mov" or known[0] == CONST):
        return (CONST, _CONST_OPS[op](0 if op == "mov" else known[1], src[1]) & isa.MASK64)
    if src[0] == CONST and op in ("add", "sub"):
        k = known[1] + isa.to_s64(src[1]) if op == "add" else known[1] - isa.to_s64(src[1])
        return (known[0], k) if abs(k) < _LIMIT else None
    return None
