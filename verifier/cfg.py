"""Program structure, checked before any path is explored (the kernel's check_subprogs
and check_cfg): subprogram boundaries, jumps that stay inside their function, a last
instruction that cannot fall into the next function, no unreachable instruction,
the call graph (no recursion, at most 8 frames deep) and the prune points where the
path exploration compares states (jump targets, conditional jumps, call returns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jitbpf import isa
from jitbpf.isa import MAX_CALL_DEPTH, Insn, OpInfo, Pseudo


class VerifyError(Exception):
    """A rejection, with the instruction it is about (the API turns it into BpfVerifierError)."""

    def __init__(self, message: str, pc: int | None):
        super().__init__(message)
        self.message = message
        self.pc = pc


@dataclass
class Subprog:
    start: int
    end: int                                   # one past the last slot
    callees: set[int] = field(default_factory=set)      # entries called directly (call local)
    callbacks: set[int] = field(default_factory=set)    # entries whose address it takes (lddw func)
    has_tail_call: bool = False
    has_ld_abs: bool = False


@dataclass
class Cfg:
    subprogs: list[Subprog]
    prune_points: frozenset[int]
    force_checkpoints: frozenset[int]           # callback-calling helper calls
    jump_targets: frozenset[int]
    second_slots: frozenset[int]

    def subprog_at(self, pc: int) -> Subprog:
        lo, hi = 0, len(self.subprogs) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.subprogs[mid].start <= pc:
                lo = mid
            else:
                hi = mid - 1
        return self.subprogs[lo]

    def entry_of(self, pc: int) -> int:
        return self.subprog_at(pc).start


def _callback_calls(insns: list[Insn], specs: list[OpInfo | None], helpers) -> set[int]:
    out = set()
    for pc, (insn, spec) in enumerate(zip(insns, specs)):
        if spec is not None and spec.kind == "call" and insn.src == isa.CALL_HELPER:
            h = helpers.by_id.get(insn.imm) if helpers is not None else None
            if h is not None and h.callback:
                out.add(pc)
    return out


def analyse(insns: list[Insn], specs: list[OpInfo | None], helpers=None) -> Cfg:
    """Check the structure and find subprograms and prune points; raises VerifyError."""
    n = len(insns)
    second = frozenset(pc + 1 for pc, s in enumerate(specs) if s is not None and s.kind == "lddw")
    entries = {0}
    for pc, (insn, spec) in enumerate(zip(insns, specs)):
        if spec is None:
            continue
        if (spec.kind == "call" and insn.src == isa.CALL_LOCAL) or (spec.kind == "lddw" and insn.src == Pseudo.FUNC):
            target = isa.jump_target(insn, pc)
            if not 0 <= target < n:
                raise VerifyError(f"jump out of range from insn {pc} to {target}", pc)
            if target == 0 and spec.kind == "lddw":
                raise VerifyError("callback function cannot be the main program", pc)
            entries.add(target)
    starts = sorted(entries)
    subprogs = [Subprog(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]
    by_start = {s.start: s for s in subprogs}

    # jumps stay in their function; the last slot of each function is exit or ja
    for sp in subprogs:
        for pc in range(sp.start, sp.end):
            spec, insn = specs[pc], insns[pc]
            if spec is None:
                continue
            if spec.kind in ("jcond", "ja"):
                target = isa.jump_target(insn, pc)
                if not sp.start <= target < sp.end:
                    raise VerifyError(f"jump out of range from insn {pc} to {target}", pc)
                if target in second:
                    raise VerifyError(f"jump into the middle of ldimm64 insn {target - 1}", pc)
            elif spec.kind == "call":
                if insn.src == isa.CALL_LOCAL:
                    sp.callees.add(isa.jump_target(insn, pc))
                elif insn.src == isa.CALL_HELPER and insn.imm == 12:
                    sp.has_tail_call = True
            elif spec.kind == "lddw" and insn.src == Pseudo.FUNC:
                sp.callbacks.add(isa.jump_target(insn, pc))
            elif spec.kind in ("ldabs", "ldind"):
                sp.has_ld_abs = True
        last = sp.end - 1
        last_spec = specs[last] if specs[last] is not None else None
        if last_spec is None or last_spec.kind not in ("exit", "ja"):
            raise VerifyError("last insn is not an exit or jmp", last)

    # every slot reachable from the entry (calls and function pointers reach their callees)
    seen = [False] * n
    work = [0]
    seen[0] = True
    while work:
        pc = work.pop()
        spec, insn = specs[pc], insns[pc]
        nxt: list[int] = []
        if spec.kind == "exit":
            pass
        elif spec.kind == "ja":
            nxt.append(isa.jump_target(insn, pc))
        else:
            nxt.append(pc + (2 if spec.kind == "lddw" else 1))
            target = isa.jump_target(insn, pc)
            if target is not None:
                nxt.append(target)
        for t in nxt:
            if t < n and not seen[t]:
                seen[t] = True
                work.append(t)
    for pc in range(n):
        if not seen[pc] and pc not in second:
            raise VerifyError(f"unreachable insn {pc}", pc)

    _check_call_graph(subprogs, by_start)

    prune, jump_targets = set(), set()
    for pc, (insn, spec) in enumerate(zip(insns, specs)):
        if spec is None:
            continue
        if spec.kind == "jcond":
            prune.add(pc)
            t = isa.jump_target(insn, pc)
            prune.add(t)
            jump_targets.add(t)
        elif spec.kind == "ja":
            t = isa.jump_target(insn, pc)
            prune.add(t)
            jump_targets.add(t)
        elif spec.kind in ("call", "callx"):
            prune.add(pc + 1)
            if insn.src == isa.CALL_LOCAL:
                prune.add(pc)
        elif spec.kind == "lddw" and insn.src == Pseudo.FUNC:
            prune.add(pc + 2)
    force = _callback_calls(insns, specs, helpers)
    prune |= force
    return Cfg(subprogs, frozenset(p for p in prune if p < n), frozenset(force), frozenset(jump_targets), second)


def _check_call_graph(subprogs: list[Subprog], by_start: dict[int, Subprog]) -> None:
    """No recursion (through calls or callbacks) and at most MAX_CALL_DEPTH frames."""
    color: dict[int, int] = {}          # 1: on the DFS path, 2: done
    longest: dict[int, int] = {}

    def dfs(entry: int) -> None:
        color[entry] = 1
        best = 1
        sp = by_start[entry]
        for callee in sorted(sp.callees | sp.callbacks):
            if color.get(callee) == 1:
                raise VerifyError(f"recursive call from the function at insn {entry} to the function at "
                               f"insn {callee}", entry)
            if color.get(callee) != 2:
                dfs(callee)
            best = max(best, 1 + longest[callee])
        color[entry] = 2
        longest[entry] = best

    for sp in subprogs:
        if sp.start not in color:
            dfs(sp.start)
            if longest[sp.start] > MAX_CALL_DEPTH:
                raise VerifyError(f"the call stack of {longest[sp.start]} frames is too deep !", sp.start)


def max_stack_depth(subprogs: list[Subprog], depth_of: dict[int, int]) -> tuple[int, list[int]] | None:
    """The deepest call chain's combined stack (each frame rounded up to 16 bytes, as the
    kernel counts for JIT-compiled programs) if it exceeds 512 bytes: (bytes, chain of
    function entries); else None."""
    by_start = {s.start: s for s in subprogs}

    def rounded(entry: int) -> int:
        return (depth_of.get(entry, 0) + 15) // 16 * 16

    worst: tuple[int, list[int]] = (0, [])

    def walk(entry: int, total: int, chain: list[int]) -> None:
        nonlocal worst
        total += rounded(entry)
        chain = chain + [entry]
        if total > worst[0]:
            worst = (total, chain)
        for callee in by_start[entry].callees:
            if callee not in chain:
                walk(callee, total, chain)

    walk(0, 0, [])
    return worst if worst[0] > isa.STACK_SIZE else None
