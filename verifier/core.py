"""The path exploration: every path of the program is simulated on abstract states
(:mod:`verifier.state`), the way the kernel's do_check() does, with state pruning at
prune points and a budget of 1,000,000 processed instructions.

Exploration is depth-first: at a conditional jump whose outcome the ranges do not
decide, the jump target is queued and the fall-through continues; a path ends at the
main function's exit, when it reaches a state an explored checkpoint subsumes, or when
a branch cannot happen. A checkpoint's exploration is complete when every path that
went through it has ended (``branches`` counts them); only then may it prune, since
its read and precision marks are final. A checkpoint still being explored that the
path reaches again is a loop: if the state is exactly the same, the loop can never
end ("infinite loop detected"). Bounded loops are explored iteration by iteration.

Errors carry the kernel's wording where the kernel has the check, so a log from one
reads like a log from the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from jitbpf import isa
from jitbpf.isa import Pseudo

from . import bounds as bd
from . import cfg as cfgmod
from .cfg import VerifyError
from . import tnum as tn
from .bounds import M32, M64, S32_MAX
from .facts import Access, Facts
from .log import Log
from .progtypes import ProgType
from .prototypes import Prototype, helper_prototype, kfunc_prototype, map_allows
from .state import (CTX, EMPTY_SLOT, FUNC, INVALID, MAP_KEY, MAP_PTR, MAP_VALUE, MEM, MISC, NOT_INIT, SUB,
                    NOT_INIT_REG, PACKET_TYPES, PKT, PKT_END, PKT_META, SCALAR, SPILL, STACK, ZERO, Callback,
                    Checkpoint, Frame, IdMap, Lock, MemInfo, Reg, Slot, State, const, describe, exact_hash, new,
                    next_seq, reg_loc, regs_exact, regsafe, state_text, unknown)

BUDGET = 1_000_000                    # BPF_COMPLEXITY_LIMIT_INSNS
#: State comparisons per verification: pruning against many checkpoints of one slot is
#: quadratic, so this bounds the time a program can make the verifier spend (the kernel
#: bounds it by evicting states that keep missing; a limit is simpler and as safe).
COMPARE_BUDGET = 200_000             # (the shipped programs need at most ~4,400)
WIDEN_AFTER = 2                       # raw programs: visits of a loop head before widening
MAX_PENDING = 8192                    # BPF_COMPLEXITY_LIMIT_JMP_SEQ
LOOP_JMPS, LOOP_INSNS = 0, 0           # inside a loop, checkpoint at most this often (Linux: 20, 100)
MAX_VAR_OFF = 1 << 29                 # BPF_MAX_VAR_OFF
MAX_VAR_SIZ = 1 << 29                 # BPF_MAX_VAR_SIZ
MAX_PACKET_OFF = 0xFFFF
STACK_SIZE = isa.STACK_SIZE
AT_PKT_END, BEYOND_PKT_END = -1, -2   # packet pointer ranges learned by comparing with pkt_end
NOT_EXACT, RANGE_WITHIN, EXACT, LIVE = 0, 1, 2, 3    # LIVE: read locations, all precise
INF = 1 << 62
ALU_TEXT = {"add": "+=", "sub": "-=", "mul": "*=", "div": "/=", "or": "|=", "and": "&=", "lsh": "<<=",
            "rsh": ">>=", "neg": "neg", "mod": "%=", "xor": "^=", "mov": "=", "arsh": "s>>=", "sdiv": "s/=",
            "smod": "s%="}


@dataclass
class Result:
    processed: int
    facts: Facts
    states: int
    peak_pending: int
    stack_depth: dict[int, int]


class _Visited:
    """The checkpoints of one prune point: still being explored (by exact hash, for the
    infinite-loop check) and complete (for pruning)."""

    __slots__ = ("open", "open_count", "done")

    def __init__(self) -> None:
        self.open: dict[int, list[Checkpoint]] = {}
        self.open_count = 0
        self.done: list[Checkpoint] = []


class Verifier:
    def __init__(self, program, ptype: ProgType, *, unprivileged: bool = False, log: Log, mem_size: int | None = None,
                 strict: bool = True):
        self.program = program
        self.strict = strict        # also the kernel's refusals that are not about safety
        self.insns = program.insns
        self.specs = program.specs
        self.ptype = ptype
        self.priv = not unprivileged
        self.log = log
        self.level = log.level
        self.mem_size = mem_size
        self.helpers = program.runtime.helpers
        self.maps = list(program.obj.map_list)
        self.btf = getattr(program.obj, "btf", None)
        self.cfg = cfgmod.analyse(self.insns, self.specs, self.helpers)
        # raw programs: safety by invariants (loops widened, termination not proven)
        self.invariant = ptype.name == "raw"
        self.terminates = True
        self.prune = self.cfg.prune_points
        self.force = self.cfg.force_checkpoints
        self.visited: dict[int, _Visited] = {}
        self.processed = 0
        self.compared = 0
        self.pc = 0                           # the instruction being checked
        self.jmps = 0
        self.prev_jmps = 0
        self.prev_processed = 0
        self.states = 0
        self.pending: list[tuple[State, int, int]] = []
        self.peak_pending = 0
        self.stack_depth: dict[int, int] = {}
        # facts
        self.f_access: dict[int, Access] = {}
        self.f_ranges: dict[int, dict[int, tuple[int, int]]] = {}
        self.f_nonnull: dict[int, frozenset[int] | None] = {}
        self.f_visited = bytearray(len(self.insns))
        self.ctx_size = 0
        self.spin_lock_offsets: dict[int, int | None] = {}
        self.handlers = {
            "alu": self.do_alu, "end": self.do_end, "jcond": self.do_jcond, "ja": self.do_ja,
            "ldx": self.do_ldx, "st": self.do_st, "stx": self.do_stx, "atomic": self.do_atomic,
            "lddw": self.do_lddw, "ldabs": self.do_ldabs, "ldind": self.do_ldabs, "call": self.do_call,
            "callx": self.do_callx, "exit": self.do_exit,
        }
        self.handler_at: list | None = None
        self.prune_at = b""

    # ================================================================== driver

    def fail(self, message: str, pc: int | None = None) -> None:
        raise VerifyError(message, pc)

    def run(self) -> Result:
        st = self.initial_state()
        while True:
            self.explore(st)
            if not self.pending:
                break
            st, pos, frm = self.pending.pop()
            if self.level == 1:
                self.log.reset(pos)
            if self.level:
                self.log.add(f"from {frm} to {st.pc}: {state_text(st)}")
        over = cfgmod.max_stack_depth(self.cfg.subprogs, self.stack_depth)
        if over is not None:
            total, chain = over
            self.fail(f"combined stack size of {len(chain)} calls is {total}. Too large", chain[-1])
        facts = Facts(
            accesses=self.f_access,
            ranges={pc: regs for pc, regs in self.f_ranges.items() if regs},
            nonnull={pc: regs for pc, regs in self.f_nonnull.items() if regs},
            visited=frozenset(pc for pc, seen in enumerate(self.f_visited) if seen),
            ctx_size=self.ctx_size,
            terminates=self.terminates,
        )
        return Result(self.processed, facts, self.states, self.peak_pending, dict(self.stack_depth))

    def initial_state(self) -> State:
        st = State()
        f = Frame(0, 0)
        st.frames.append(f)
        f.regs[10] = new(STACK, reg_loc(0, 10), base=0)
        if self.ptype.ctx is None:           # raw memory: r1 = memory, r2 = its length
            f.regs[1] = new(MEM, reg_loc(0, 1), base=MemInfo("raw", self.mem_size))
            if self.mem_size is not None:
                f.regs[2] = _const(self.mem_size, reg_loc(0, 2))
            else:
                r2 = new(SCALAR, reg_loc(0, 2))
                bd.set_urange(r2, 0, M32)
                f.regs[2] = r2
        else:
            f.regs[1] = new(CTX, reg_loc(0, 1))
        return st

    def explore(self, st: State) -> None:
        """Follow one path until it ends (exit, pruned, impossible)."""
        specs, insns = self.specs, self.insns
        if self.handler_at is None:            # decoded once: each slot's handler and prune flag
            self.handler_at = [self.handlers[s.kind] if s is not None else None for s in specs]
            self.prune_at = bytes(pc in self.prune for pc in range(len(specs)))
        handler_at, prune_at = self.handler_at, self.prune_at
        visited = self.f_visited
        level = self.level
        while True:
            pc = st.pc
            if prune_at[pc] and self.is_state_visited(st, pc):
                if level:
                    self.log.add(f"{pc}: safe")
                self.end_path(st)
                return
            self.processed += 1
            if self.processed > BUDGET:
                self.fail(f"BPF program is too large. Processed {self.processed} insn", pc)
            visited[pc] = 1
            self.pc = pc
            if level:
                at = self.log.insn(pc)
                ended = handler_at[pc](st, pc, insns[pc], specs[pc])
                if level >= 2:
                    self.log.lines[at] += "  ; " + state_text(st)
            else:
                ended = handler_at[pc](st, pc, insns[pc], specs[pc])
            if ended:
                self.end_path(st)
                return

    def push(self, st: State, from_pc: int) -> None:
        if st.parent is not None:
            st.parent.branches += 1
        self.pending.append((st, self.log.mark(), from_pc))
        if len(self.pending) > self.peak_pending:
            self.peak_pending = len(self.pending)
        if len(self.pending) > MAX_PENDING:
            self.fail(f"The sequence of {len(self.pending)} jumps is too complex.", from_pc)

    def end_path(self, st: State) -> None:
        cp = st.parent
        while cp is not None:
            cp.branches -= 1
            if cp.branches > 0:
                break
            self.complete(cp)
            cp = cp.parent

    def complete(self, cp: Checkpoint) -> None:
        cp.done = True                 # (its checks are compiled when it is first compared)
        v = self.visited[cp.pc]
        bucket = v.open.get(cp.hash)
        if bucket is not None:
            try:
                bucket.remove(cp)
                v.open_count -= 1
            except ValueError:
                pass
            if not bucket:
                del v.open[cp.hash]
        v.done.append(cp)

    # ================================================================== pruning

    def is_state_visited(self, st: State, pc: int) -> bool:
        """True when an explored checkpoint at ``pc`` covers ``st``; may add a checkpoint."""
        if self.invariant:
            return self.visit_invariant(st, pc)
        v = self.visited.get(pc)
        force = pc in self.force
        add = force or (self.jmps - self.prev_jmps >= 2 and self.processed - self.prev_processed >= 8)
        h = None
        if v is not None:
            if v.open_count:
                h = exact_hash(st.frames, st.refs, st.lock)
                if force:                  # a callback-calling helper: compare with running iterations
                    for bucket in v.open.values():
                        for cp in bucket:
                            if self.states_equal(cp, st, RANGE_WITHIN):
                                # cp's marks are not final yet: the checkpoints of this
                                # iteration must compare everything from now on
                                anc = st.parent
                                while anc is not None and anc is not cp:
                                    anc.read = anc.precise = -1
                                    anc = anc.parent
                                self.hit(cp, st)
                                return True
                else:
                    for cp in v.open.get(h, ()):
                        if cp.callback_depth == st.callback_depth and self.states_equal(cp, st, EXACT):
                            self.fail(f"infinite loop detected at insn {pc}", pc)
                if not force and self.jmps - self.prev_jmps < LOOP_JMPS and self.processed - self.prev_processed < LOOP_INSNS:
                    add = False
            done = v.done
            i = len(done) - 1
            frames = st.frames
            nframes = len(frames)
            while i >= 0:                  # the newest first, as the kernel's list
                cp = done[i]
                q = cp.quick
                if q is None:
                    same = self.done_equal(cp, st)
                elif len(cp.frames) != nframes:
                    same = False
                else:                      # its first check, a precise constant, inline
                    c = frames[q[0]].regs[q[1]]
                    same = c.tm == 0 and c.tv == q[2] and c.type is SCALAR and self.done_equal(cp, st)
                if same:
                    self.hit(cp, st)
                    return True
                if add:
                    cp.misses += 1
                    if cp.misses > cp.hits * 3 + 3:
                        del done[i]
                i -= 1
        if add:
            self.checkpoint(st, pc, h if h is not None else exact_hash(st.frames, st.refs, st.lock))
        return False

    def checkpoint(self, st: State, pc: int, h: int) -> None:
        """Remember ``st`` at ``pc``; the path goes on as the checkpoint's only branch."""
        v = self.visited.get(pc)
        if v is None:
            v = self.visited[pc] = _Visited()
        cp = Checkpoint(st, pc)
        cp.hash = h
        v.open.setdefault(h, []).append(cp)
        v.open_count += 1
        st.parent = cp
        self.states += 1
        self.prev_jmps = self.jmps
        self.prev_processed = self.processed

    def visit_invariant(self, st: State, pc: int) -> bool:
        """Raw programs: a state is pruned by any checkpoint (even one still being explored,
        i.e. a loop) that contains it, comparing everything; revisiting a loop head widens
        the state so loops converge. Sound for memory safety (the explored states are
        closed under every instruction), silent on termination."""
        v = self.visited.get(pc)
        latest = None
        if v is not None:
            for bucket in v.open.values():
                for cp in bucket:
                    if self.states_equal(cp, st, RANGE_WITHIN):
                        self.terminates = False
                        # cp's marks are not final (its exploration goes on): every
                        # checkpoint of this path reads everything from now on
                        anc = st.parent
                        while anc is not None:
                            anc.read = -1
                            anc = anc.parent
                        return True
                    if len(cp.frames) == len(st.frames) and (latest is None or cp.seq > latest.seq):
                        latest = cp
            for cp in v.done:
                # a complete checkpoint's read marks are final: compare only what its
                # exploration read (every scalar by its whole range: no precision here)
                if self.states_equal(cp, st, LIVE):
                    self.hit(cp, st)
                    return True
            if latest is not None and v.open_count >= WIDEN_AFTER:
                self.widen(st, latest)
        add = (latest is not None or pc in self.force
               or (self.jmps - self.prev_jmps >= 2 and self.processed - self.prev_processed >= 8))
        if add:
            self.checkpoint(st, pc, 0)
        return False

    def widen(self, st: State, cp: Checkpoint) -> None:
        """Join the current state with an earlier visit of the same loop head, sending every
        bound that moved to its extreme (classic widening; finite height, so loops converge)."""
        for fo, fc in zip(cp.frames, st.frames):
            for i in range(10):
                o, c = fo.regs[i], fc.regs[i]
                w = _widen_reg(o, c)
                if w is not None:
                    fc.regs[i] = w
            for spi in set(fo.stack) | set(fc.stack):
                o = fo.stack.get(spi, EMPTY_SLOT)
                c = fc.stack.get(spi)
                if c is None:
                    continue
                if o.types == c.types and o.subs == () and c.subs == () and o.reg is not None and c.reg is not None:
                    w = _widen_reg(o.reg, c.reg)
                    if w is not None:
                        fc.stack[spi] = c.with_reg(w)
                    continue
                if o.types == c.types and o.reg is c.reg and o.subs == c.subs:
                    continue
                types = "".join(a if a == b else INVALID if INVALID in (a, b) else MISC
                                for a, b in zip(o.types, c.types))
                types = types.replace(SPILL, MISC).replace(SUB, MISC)
                fc.stack[spi] = Slot(types, None, c.seq, c.loc)

    def hit(self, cp: Checkpoint, st: State) -> None:
        """``st`` is pruned by ``cp``: what cp's exploration read or needed precisely, the
        current path needs too (propagate_liveness and propagate_precision)."""
        cp.hits += 1
        mark = self.mark_read_value
        for value in self.locations(st, cp.read | cp.precise):
            mark(st, value)
        if cp.precise:
            for value in self.locations(st, cp.precise):
                if isinstance(value, Reg):
                    self.mark_precise(st, value)
                else:
                    for r in ((value.reg,) if value.reg is not None else ()) + tuple(sub[2] for sub in value.subs):
                        self.mark_precise(st, r)

    def locations(self, st: State, bits: int) -> list:
        """The values (Regs and Slots) at the locations of ``bits`` (-1: every location)."""
        out = []
        if not bits:
            return out
        for fno, f in enumerate(st.frames):
            chunk = (bits >> (fno * 128)) & _FRAME_BITS
            if not chunk:
                continue
            rb = chunk & 0x7FF
            if rb:
                regs = f.regs
                while rb:
                    low = rb & -rb
                    r = regs[low.bit_length() - 1]
                    rb ^= low
                    if r.type is not NOT_INIT:
                        out.append(r)
            sb = chunk >> 16
            if sb:
                for spi, slot in f.stack.items():
                    if sb >> spi & 1:
                        out.append(slot)
        return out

    def states_equal(self, old: Checkpoint, cur: State, mode: int) -> bool:
        self.compared += 1
        if self.compared > COMPARE_BUDGET:
            self.fail(f"BPF program is too complex: {COMPARE_BUDGET} state comparisons "
                      f"after {self.processed} insns", getattr(cur, "pc", None))
        if len(old.frames) != len(cur.frames):
            return False
        if (old.lock is None) != (cur.lock is None):
            return False
        if old.lock is not None and (old.lock.map is not cur.lock.map or old.lock.off != cur.lock.off):
            return False
        if len(old.refs) != len(cur.refs):
            return False
        idmap = IdMap()
        for (a, (ka, _)), (b, (kb, _)) in zip(sorted(old.refs.items()), sorted(cur.refs.items())):
            if ka != kb or not idmap.check(a, b):
                return False
        if old.lock is not None and not idmap.check(old.lock.id, cur.lock.id):
            return False
        read, precise = old.read, old.precise
        always_precise = not self.priv or mode != NOT_EXACT
        safe = _invariant_regsafe if self.invariant else regsafe
        for fo, fc in zip(old.frames, cur.frames):
            if fo.callsite != fc.callsite or fo.entry != fc.entry:
                return False
            base = fo.frameno * 128
            oregs, cregs = fo.regs, fc.regs
            for i in range(10):
                o = oregs[i]
                c = cregs[i]
                if o is c:
                    continue
                if mode == EXACT:
                    if not regs_exact(o, c, idmap):
                        return False
                    continue
                if (mode == NOT_EXACT or mode == LIVE) and not (read >> (base + i)) & 1:
                    continue
                if o.type is NOT_INIT and mode == RANGE_WITHIN and c.type is not NOT_INIT and not self.invariant:
                    return False
                if not safe(o, c, idmap, always_precise or bool((precise >> (base + i)) & 1)):
                    return False
            if not self.stack_safe(fo, fc, idmap, mode, read, precise, always_precise, safe):
                return False
        return True

    def stack_safe(self, fo: Frame, fc: Frame, idmap: IdMap, mode: int, read: int, precise: int,
                   always_precise: bool, regsafe=regsafe) -> bool:
        base = fo.frameno * 128 + 16
        ostack, cstack = fo.stack, fc.stack
        if mode == EXACT:
            for spi in set(ostack) | set(cstack):
                o = ostack.get(spi, EMPTY_SLOT)
                c = cstack.get(spi, EMPTY_SLOT)
                if o.types != c.types or (o.reg is None) != (c.reg is None) or len(o.subs) != len(c.subs):
                    return False
                if o.reg is not None and not regs_exact(o.reg, c.reg, idmap):
                    return False
                for (ok, on, oreg), (ck, cn, creg) in zip(sorted(o.subs, key=_subkey), sorted(c.subs, key=_subkey)):
                    if ok != ck or on != cn or not regs_exact(oreg, creg, idmap):
                        return False
            return True
        for spi, o in ostack.items():
            c = cstack.get(spi, EMPTY_SLOT)
            if o is c:
                continue
            loc = base + spi
            if (mode == NOT_EXACT or mode == LIVE) and not (read >> loc) & 1:
                continue
            if not slot_safe(o, c, idmap, always_precise or bool((precise >> loc) & 1), regsafe):
                return False
        return True

    def compile_checks(self, cp: Checkpoint) -> None:
        """What pruning against a complete checkpoint compares: only what it read, and
        scalars by type alone unless they were precise (its marks are final now)."""
        regs, slots = [], []
        read, precise = cp.read, cp.precise
        for fi, fo in enumerate(cp.frames):
            base = fo.frameno * 128
            for i in range(10):
                o = fo.regs[i]
                if o.type is NOT_INIT or not (read >> (base + i)) & 1:
                    continue
                prec = not self.priv or bool((precise >> (base + i)) & 1)
                regs.append((fi, i, o, prec, o.type is SCALAR and not prec))
            for spi, o in fo.stack.items():
                loc = base + 16 + spi
                if (read >> loc) & 1 and o.types != "????????":
                    slots.append((fi, spi, o, not self.priv or bool((precise >> loc) & 1)))
        # the checks most likely to fail first: known constants, then ranges, then the rest
        regs.sort(key=lambda c: 0 if c[3] and c[2].type is SCALAR and c[2].tm == 0 else
                  1 if c[3] and c[2].type is SCALAR else 3 if c[4] else 2)
        cp.checks = (regs, slots)
        if regs and regs[0][3] and regs[0][2].type is SCALAR and regs[0][2].tm == 0:
            cp.quick = (regs[0][0], regs[0][1], regs[0][2].tv)

    def done_equal(self, old: Checkpoint, cur: State) -> bool:
        """states_equal(old, cur, NOT_EXACT) for a complete checkpoint, from its checks."""
        frames = cur.frames
        if len(old.frames) != len(frames) or old.lock is not cur.lock and (
                (old.lock is None) != (cur.lock is None)):
            return False
        for fo, fc in zip(old.frames, frames):
            if fo.callsite != fc.callsite or fo.entry != fc.entry:
                return False
        if old.checks is None:
            self.compile_checks(old)
        regs, slots = old.checks
        idmap = None
        for fi, i, o, prec, type_only in regs:
            c = frames[fi].regs[i]
            if c is o:
                continue
            if type_only:
                if c.type is not SCALAR:
                    return False
                continue
            if o.tm == 0 and o.type is SCALAR and (c.tm != 0 or c.tv != o.tv or c.type is not SCALAR):
                return False
            if idmap is None:
                idmap = IdMap()
            if not regsafe(o, c, idmap, prec):
                return False
        for fi, spi, o, prec in slots:
            c = frames[fi].stack.get(spi, EMPTY_SLOT)
            if c is o:
                continue
            if idmap is None:
                idmap = IdMap()
            if not slot_safe(o, c, idmap, prec, regsafe):
                return False
        if old.refs or cur.refs or old.lock is not None:
            return self.states_equal(old, cur, NOT_EXACT)
        return True

    # ================================================================== liveness and precision

    def mark_read_value(self, st: State, value) -> None:
        if value.loc < 0:
            return
        cp = st.parent
        seq = value.seq
        bit = 1 << value.loc
        while cp is not None and cp.seq > seq:
            if cp.read & bit:
                return
            cp.read |= bit
            cp = cp.parent

    def rd(self, st: State, regno: int) -> Reg:
        """A register an instruction reads (check_reg_arg SRC_OP)."""
        r = st.frames[-1].regs[regno]
        if r.type is NOT_INIT:
            self.fail(f"R{regno} !read_ok", self.pc)
        cp = st.parent
        if cp is not None and cp.seq > r.seq:
            bit = 1 << r.loc
            seq = r.seq
            while cp is not None and cp.seq > seq:
                if cp.read & bit:
                    break
                cp.read |= bit
                cp = cp.parent
        return r

    def mark_precise(self, st: State, value: Reg) -> None:
        """``value``'s exact range matters here: mark it and the values it was computed
        from in the checkpoints where they lived (the kernel's mark_chain_precision)."""
        if not self.priv or value.type is not SCALAR or self.invariant:
            return
        top = st.parent
        if top is None:
            return
        # (value, ceiling, a checkpoint of the path at or above the first one older than
        # the ceiling: the walk down the path starts there, not at the top again, so a
        # long path of checkpoints is not walked once per value)
        work = [(value, INF, top)]
        while work:
            v, ceil, cp = work.pop()
            while cp is not None and cp.seq >= ceil:
                cp = cp.parent
            first = cp
            if v.loc >= 0:
                bit = 1 << v.loc
                seq = v.seq
                while cp is not None and cp.seq > seq:
                    if cp.precise & bit:
                        break
                    cp.precise |= bit
                    cp.read |= bit
                    cp = cp.parent
            # the values v came from lived before v: on every path through v the same
            # checkpoints held them, so they need marking once
            if not v.pdone:
                v.pdone = True
                born = v.born
                start = first if born < ceil else top
                for p in v.parents:
                    if p.type is SCALAR:
                        work.append((p, born, start))

    # ================================================================== facts

    def note_access(self, pc: int, region: str, proven: bool, size: int) -> None:
        a = self.f_access.get(pc)
        if a is None:
            self.f_access[pc] = Access(region, proven, size)
        else:
            if a.region != region:
                a.region = "mixed"
            a.proven = a.proven and proven

    def note_ranges(self, pc: int, regs: list[Reg], regnos: tuple[int, ...]) -> None:
        d = self.f_ranges.get(pc)
        if d is None:
            d = self.f_ranges[pc] = {}
            for n in regnos:
                r = regs[n]
                if r.type is SCALAR:
                    d[n] = (r.umin, r.umax)
            return
        for n in regnos:
            old = d.get(n)
            r = regs[n]
            if r.type is not SCALAR:
                if old is not None:
                    del d[n]
                continue
            if old is None:
                continue
            if r.umin < old[0] or r.umax > old[1]:
                d[n] = (min(old[0], r.umin), max(old[1], r.umax))

    def note_nonnull(self, pc: int, st: State, regno: int) -> None:
        prev = self.f_nonnull.get(pc)
        if prev is not None and not prev:
            return                             # NULL on some path already: stays so
        r = st.frames[-1].regs[regno]
        nonnull = (r.is_pointer and not r.null and r.type is not PKT_END
                   and not (r.type is MEM and r.base.size is None))       # raw memory may be absent (0)
        if not nonnull:
            self.f_nonnull[pc] = frozenset()
        elif prev is None:
            self.f_nonnull[pc] = frozenset((regno,))

    # ================================================================== ALU

    def do_alu(self, st: State, pc: int, insn, spec) -> bool:
        f = st.frames[-1]
        regs = f.regs
        dst = insn.dst
        loc = f.frameno * 128 + dst
        op = spec.op
        alu32 = spec.width == 32
        x = insn.opcode & 0x08 == isa.SRC_X
        st.pc = pc + 1
        if op == "mov" or op == "movsx":
            if not x:
                regs[dst] = _const(insn.imm & M32 if alu32 else insn.imm, loc)
                return False
            src = self.rd(st, insn.src)
            self.note_ranges(pc, regs, (insn.src,))
            regs[dst] = self.mov_value(st, insn, spec, src, loc)
            return False
        d = self.rd(st, dst)
        if op == "neg":
            if d.type is not SCALAR:
                if not self.priv:
                    self.fail(f"R{dst} pointer arithmetic prohibited", pc)
                regs[dst] = _unknown(loc)
                return False
            r = d.clone(loc)
            r.id = 0
            r.addc = False
            r.off = 0
            if r.tm == 0 or (alu32 and r.tm & M32 == 0):
                bd.mark_known(r, (-r.tv) & (M32 if alu32 else M64))
            else:
                bd.mark_unknown(r)
            regs[dst] = r
            return False
        if x:
            s = self.rd(st, insn.src)
        else:
            imm = insn.imm
            if op in ("div", "mod", "sdiv", "smod") and imm == 0 and self.strict:
                self.fail("div by zero", pc)
            if op in ("lsh", "rsh", "arsh") and not 0 <= imm < spec.width:
                if self.strict:
                    self.fail(f"invalid shift {imm}", pc)
                imm &= spec.width - 1             # what every engine does (the ISA masks the count)
            s = _immediate(imm)
        self.note_ranges(pc, regs, (dst, insn.src) if x else (dst,))
        if d.type is not SCALAR or s.type is not SCALAR:
            regs[dst] = self.pointer_alu(st, pc, insn, op, alu32, d, s, loc)
            return False
        r = d.clone(loc)
        r.parents = (d, s) if x else (d,)
        bd.alu(op, r, s, alu32)
        if not bd.valid(r):
            bd.mark_unknown(r)
        # linked scalars: r1 = r2; r1 += K keeps the link with the delta K
        if (self.priv and op == "add" and not alu32 and d.id and s.tm == 0 and not (x and insn.src == dst)):
            val = s.tv
            if d.addc or val > S32_MAX:
                r.id, r.addc, r.off = 0, False, 0
            else:
                r.addc, r.off = True, val
        else:
            r.id, r.addc, r.off = 0, False, 0
        regs[dst] = r
        return False

    def mov_value(self, st: State, insn, spec, src: Reg, loc: int) -> Reg:
        if spec.width == 64 and spec.op == "mov":
            if src.type is SCALAR and not src.id and src.tm != 0:
                src = self.with_new_id(st, insn.src, src)
            r = src.clone(loc)
            return r
        if src.type is not SCALAR:
            if not self.priv:
                what = "sign-extension part of" if spec.op == "movsx" and spec.width == 64 else "partial copy of"
                self.fail(f"R{insn.src} {what} pointer", self.pc)
            return _unknown(loc)
        if spec.op == "movsx":
            bits = spec.sx_bits
            no_sext = src.umax < (1 << (bits - 1))
            if no_sext and not src.id and src.tm != 0:
                src = self.with_new_id(st, insn.src, src)
            r = src.clone(loc)
            if not no_sext:
                r.id = 0
            r.addc, r.off = False, 0
            if spec.width == 64:
                bd.coerce_to_size_sx(r, bits // 8)
            else:
                bd.coerce_subreg_to_size_sx(r, bits // 8)
                bd.zext_32_to_64(r)
                bd.sync(r)
            return r
        # w1 = w2: a 32-bit copy keeps the link only if the value fits
        fits = src.umax <= M32
        if fits and not src.id and src.tm != 0:
            src = self.with_new_id(st, insn.src, src)
        r = src.clone(loc)
        if not fits:
            r.id = 0
        r.addc, r.off = (src.addc, src.off) if fits else (False, 0)
        bd.zext_32_to_64(r)
        bd.sync(r)
        return r

    def with_new_id(self, st: State, regno: int, r: Reg) -> Reg:
        v = r.variant()
        v.id = st.new_id()
        st.frames[-1].regs[regno] = v
        return v

    def pointer_alu(self, st: State, pc: int, insn, op: str, alu32: bool, d: Reg, s: Reg, loc: int) -> Reg:
        dst = insn.dst
        x = insn.opcode & 0x08 == isa.SRC_X
        if d.type is not SCALAR and s.type is not SCALAR:
            if op == "sub" and self.priv:
                return _unknown(loc)
            self.fail(f"R{dst} pointer {ALU_TEXT[op]} pointer prohibited", pc)
        if d.type is SCALAR:                    # scalar += pointer
            self.mark_precise(st, d)
            return self.adjust_pointer(st, pc, insn, op, alu32, s, d, loc, reversed_=True)
        if x:
            self.mark_precise(st, s)
        return self.adjust_pointer(st, pc, insn, op, alu32, d, s, loc)

    def adjust_pointer(self, st: State, pc: int, insn, op: str, alu32: bool, ptr: Reg, off: Reg, loc: int,
                       reversed_: bool = False) -> Reg:
        dst = insn.dst
        known = off.tm == 0
        if (known and (off.smin != off.smax or off.umin != off.umax)) or off.smin > off.smax or off.umin > off.umax:
            return _unknown(loc)
        if alu32:
            if op == "sub" and self.priv:
                return _unknown(loc)
            self.fail(f"R{dst} 32-bit pointer arithmetic prohibited", pc)
        if ptr.null:
            self.fail(f"R{dst} pointer arithmetic on {ptr.type_name()} prohibited, null-check it first", pc)
        t = ptr.type
        if t is MAP_PTR:
            if not (known and off.smin == 0 and op == "add"):
                self.fail(f"R{dst} pointer arithmetic on {ptr.type_name()} prohibited", pc)
        elif t not in (CTX, MAP_VALUE, MAP_KEY, STACK, PKT, PKT_META, MEM, FUNC):
            self.fail(f"R{dst} pointer arithmetic on {ptr.type_name()} prohibited", pc)
        if op in ("and", "or", "xor"):
            self.fail(f"R{dst} bitwise operator {ALU_TEXT[op]} on pointer prohibited", pc)
        if op not in ("add", "sub"):
            self.fail(f"R{dst} pointer arithmetic with {ALU_TEXT[op]} operator prohibited", pc)
        unchecked = t is MEM and ptr.base.size is None     # raw memory: every access is checked at run time
        if not unchecked:
            self.sane_offset(off, ptr, pc)
            self.sane_offset(ptr, ptr, pc)
        r = ptr.clone(loc)
        r.parents = ()
        if op == "add":
            if known and -(1 << 31) <= ptr.off + off.smin < (1 << 31):
                r.off = ptr.off + off.smin
            else:
                _add_bounds(r, ptr, off)
                r.off = ptr.off
                if t in PACKET_TYPES:
                    r.id = st.new_id()
                    r.rng = 0
        else:
            if reversed_:
                self.fail(f"R{dst} tried to subtract pointer from scalar", pc)
            if t is STACK:
                self.fail(f"R{dst} subtraction from stack pointer prohibited", pc)
            if known and -(1 << 31) <= ptr.off - off.smin < (1 << 31):
                r.off = ptr.off - off.smin
            else:
                _sub_bounds(r, ptr, off)
                r.off = ptr.off
                if t in PACKET_TYPES:
                    r.id = st.new_id()
                    if off.smin < 0:
                        r.rng = 0
        bd.mark_unbounded32(r)
        bd.sync(r)
        if not unchecked:
            self.sane_offset(r, ptr, pc)
        if not self.priv:
            if r.type is STACK:
                if r.tm != 0:
                    self.fail(f"R{dst} variable stack access prohibited for !root, var_off={tn.text((r.tv, r.tm))} "
                              f"off={r.off}", pc)
                total = r.off + bd.s64(r.tv)
                if total >= 0 or total < -STACK_SIZE:
                    self.fail(f"R{dst} stack pointer arithmetic goes out of range, prohibited for !root; "
                              f"off={total}", pc)
            elif r.type is MAP_VALUE:
                if not self.region_ok(r, r.off, 1, r.base.value_size, False):
                    self.fail(f"R{dst} pointer arithmetic of map value goes out of range, prohibited for !root", pc)
        return r

    def sane_offset(self, reg: Reg, ptr: Reg, pc: int) -> None:
        name = ptr.type_name()
        if reg.tm == 0:
            val = bd.s64(reg.tv)
            if val >= MAX_VAR_OFF or val <= -MAX_VAR_OFF:
                self.fail(f"math between {name} pointer and {val} is not allowed", pc)
        if reg.off >= MAX_VAR_OFF or reg.off <= -MAX_VAR_OFF:
            self.fail(f"{name} pointer offset {reg.off} is not allowed", pc)
        if reg.smin == bd.S64_MIN:
            self.fail(f"math between {name} pointer and register with unbounded min value is not allowed", pc)
        if reg.smin >= MAX_VAR_OFF or reg.smin <= -MAX_VAR_OFF:
            self.fail(f"value {reg.smin} makes {name} pointer be out of bounds", pc)

    def do_end(self, st: State, pc: int, insn, spec) -> bool:
        f = st.frames[-1]
        d = self.rd(st, insn.dst)
        loc = f.frameno * 128 + insn.dst
        st.pc = pc + 1
        self.note_ranges(pc, f.regs, (insn.dst,))
        if d.type is not SCALAR:
            if not self.priv:
                self.fail(f"R{insn.dst} pointer arithmetic prohibited", pc)
            f.regs[insn.dst] = _unknown(loc)
            return False
        bits = spec.width
        r = d.clone(loc)
        r.id, r.addc, r.off = 0, False, 0
        if spec.op == "le":
            if bits < 64:
                bd.coerce_to_size(r, bits // 8)
        elif r.tm == 0:
            nbytes = bits // 8
            v = int.from_bytes((r.tv & ((1 << bits) - 1)).to_bytes(nbytes, "little"), "big")
            bd.mark_known(r, v)
        else:
            bd.mark_unknown(r)
            if bits < 64:
                bd.set_urange(r, 0, (1 << bits) - 1)
        f.regs[insn.dst] = r
        return False

    # ================================================================== jumps

    def do_ja(self, st: State, pc: int, insn, spec) -> bool:
        st.pc = pc + 1 + (insn.imm if insn.opcode == isa.OP_JA32 else insn.off)
        self.jmps += 1
        return False

    def do_jcond(self, st: State, pc: int, insn, spec) -> bool:
        self.jmps += 1
        f = st.frames[-1]
        regs = f.regs
        x = insn.opcode & 0x08 == isa.SRC_X
        d = self.rd(st, insn.dst)
        s = self.rd(st, insn.src) if x else _immediate(insn.imm)
        op = spec.op
        jmp32 = spec.width == 32
        target = pc + 1 + insn.off
        self.note_ranges(pc, regs, (insn.dst, insn.src) if x else (insn.dst,))
        if not self.priv and x and s.is_pointer and not (d.type in PACKET_TYPES or d.type is PKT_END) :
            self.fail(f"R{insn.src} pointer comparison prohibited", pc)
        pred = self.branch_taken(d, s, op, jmp32)
        if pred >= 0:
            if d.type is SCALAR:
                self.mark_precise(st, d)
            if x and s.type is SCALAR:
                self.mark_precise(st, s)
            st.pc = target if pred == 1 else pc + 1
            return False
        other = st.copy()
        other.pc = target
        st.pc = pc + 1
        this_ok = other_ok = True
        oregs = other.frames[-1].regs
        if d.type is SCALAR and s.type is SCALAR and not (x and insn.src == insn.dst):
            other_ok = self.refine(other, oregs, insn, x, d, s, op, jmp32)
            this_ok = self.refine(st, regs, insn, x, d, s, bd.NEGATE[op], jmp32)
        elif not jmp32 and x and d.is_pointer and s.is_pointer:
            # a == b with b not null: a is not null on the equal side
            eq_regs = oregs if op == "jeq" else regs if op == "jne" else None
            if eq_regs is not None:
                if _not_null(d) and s.null:
                    eq_regs[insn.src] = _nonnull(s)
                if _not_null(s) and d.null:
                    eq_regs[insn.dst] = _nonnull(d)
        if not jmp32 and not x and insn.imm == 0 and op in ("jeq", "jne") and d.null:
            self.mark_ptr_or_null(st, d, op == "jne")
            self.mark_ptr_or_null(other, d, op == "jeq")
        elif not self.match_packet_pointers(insn, op, jmp32, x, d, s, st, other) and d.is_pointer and not self.priv:
            self.fail(f"R{insn.dst} pointer comparison prohibited", pc)
        if other_ok:
            self.push(other, pc)
        return not this_ok

    def branch_taken(self, d: Reg, s: Reg, op: str, jmp32: bool) -> int:
        dp, sp = d.type in PACKET_TYPES or d.type is PKT_END, s.type in PACKET_TYPES or s.type is PKT_END
        if dp and sp and not jmp32:
            return _pkt_branch_taken(d, s, op)
        if d.type is not SCALAR or s.type is not SCALAR:
            if jmp32:
                return -1
            if s.type is not SCALAR or s.tm != 0:
                d, s = s, d
                op = bd.FLIP[op]
            if s.type is not SCALAR or s.tm != 0 or s.tv != 0:
                return -1
            if not _not_null(d):
                return -1
            return 0 if op == "jeq" else 1 if op == "jne" else -1
        return bd.branch_taken(d, s, op, jmp32)

    def refine(self, st: State, regs: list[Reg], insn, x: bool, d: Reg, s: Reg, op: str, jmp32: bool) -> bool:
        """Narrow dst (and src) on one side of a jump; False if that side cannot happen."""
        d2 = d.variant((s,) if x else ())
        s2 = s.variant((d,)) if x else s.clone(-1)
        if not bd.refine_sync(d2, s2, op, jmp32, x):
            return False
        regs[insn.dst] = d2
        if x:
            regs[insn.src] = s2
        if x and s2.id:
            self.sync_linked(st, s2)
        if d2.id:
            self.sync_linked(st, d2)
        return True

    def sync_linked(self, st: State, known: Reg) -> None:
        """Every scalar sharing ``known``'s id learns its new range (sync_linked_regs)."""
        kid = known.id
        for f in st.frames:
            regs = f.regs
            for i in range(10):
                r = regs[i]
                if r is not known and r.type is SCALAR and r.id == kid:
                    regs[i] = self._linked_copy(r, known)
            for spi, slot in list(f.stack.items()):
                r = slot.reg
                if r is not None and r.type is SCALAR and r.id == kid and slot.types[0] == SPILL:
                    f.stack[spi] = slot.with_reg(self._linked_copy(r, known))

    def _linked_copy(self, r: Reg, known: Reg) -> Reg:
        v = r.variant((known,))
        if (not r.addc and not known.addc) or r.off == known.off:
            bd.copy_into(v, known)
        else:
            bd.copy_into(v, known)
            delta = _const(bd.s32(r.off) - bd.s32(known.off), -1)
            bd._add(v, delta)
            bd.sync(v)
        return v

    def mark_ptr_or_null(self, st: State, reg: Reg, is_null: bool) -> None:
        """After ``if (p == NULL)``: p and its copies are 0 on one side, valid on the other."""
        pid = reg.id
        if is_null and reg.ref and reg.ref in st.refs:
            del st.refs[reg.ref]               # reserve failed: nothing to release
        for f in st.frames:
            regs = f.regs
            for i in range(11):
                r = regs[i]
                if r.null and r.id == pid:
                    regs[i] = self._null_result(r, is_null)
            for spi, slot in list(f.stack.items()):
                r = slot.reg
                if r is not None and r.null and r.id == pid:
                    f.stack[spi] = slot.with_reg(self._null_result(r, is_null))

    def _null_result(self, r: Reg, is_null: bool) -> Reg:
        v = r.variant()
        if is_null:
            v.type, v.null, v.id, v.ref, v.base, v.off = SCALAR, False, 0, 0, None, 0
            bd.mark_known(v, 0)
        else:
            v.null = False
            if not (v.type is MAP_VALUE and self.spin_lock_offset(v.base) is not None):
                v.id = 0
        return v

    def match_packet_pointers(self, insn, op: str, jmp32: bool, x: bool, d: Reg, s: Reg, this: State,
                              other: State) -> bool:
        """try_match_pkt_pointers: ``pkt' op pkt_end`` (or ``meta' op pkt``) proves bytes on
        one side (find_good_pkt_pointers) and says how far past the end on the other."""
        if not x or jmp32 or op not in _PKT_CMP:
            return False

        def init_pkt(r: Reg) -> bool:
            return r.type is PKT and r.off == 0 and r.tm == 0 and r.tv == 0

        if (d.type is PKT and s.type is PKT_END) or (d.type is PKT_META and init_pkt(s)):
            ptr, regno, first = d, insn.dst, True
        elif (d.type is PKT_END and s.type is PKT) or (init_pkt(d) and s.type is PKT_META):
            ptr, regno, first = s, insn.src, False
        else:
            return False
        good_taken, right_open, beyond = _PKT_CMP[op][0 if first else 1]
        good, bad = (other, this) if good_taken else (this, other)
        self.good_packet(good, ptr, right_open)
        self.mark_pkt_end(bad, regno, beyond)
        return True

    def good_packet(self, st: State, ptr: Reg, right_open: bool) -> None:
        """find_good_pkt_pointers: every packet pointer with ptr's id may access up to ptr.off."""
        if ptr.off < 0 or (ptr.off == 0 and right_open):
            return
        if ptr.umax > MAX_PACKET_OFF or ptr.umax + ptr.off > MAX_PACKET_OFF:
            return
        new_range = ptr.off + (1 if right_open else 0)
        pid, ptype = ptr.id, ptr.type
        for f in st.frames:
            regs = f.regs
            for i in range(11):
                r = regs[i]
                if r.type is ptype and r.id == pid and r.rng < new_range:
                    v = r.variant()
                    v.rng = new_range
                    regs[i] = v
            for spi, slot in list(f.stack.items()):
                r = slot.reg
                if r is not None and r.type is ptype and r.id == pid and r.rng < new_range:
                    v = r.variant()
                    v.rng = new_range
                    f.stack[spi] = slot.with_reg(v)

    def mark_pkt_end(self, st: State, regno: int, beyond: bool) -> None:
        """On the side where the packet pointer is at or past the end, remember it."""
        regs = st.frames[-1].regs
        r = regs[regno]
        if r.type is not PKT:
            return
        v = r.variant()
        v.rng = BEYOND_PKT_END if beyond else AT_PKT_END
        regs[regno] = v

    # ================================================================== memory

    def do_ldx(self, st: State, pc: int, insn, spec) -> bool:
        ptr = self.rd(st, insn.src)
        st.pc = pc + 1
        self.note_nonnull(pc, st, insn.src)
        value = self.mem_access(st, pc, insn.src, ptr, insn.off, spec.width, False, None, insn.dst,
                                spec.op == "ldxs")
        st.frames[-1].regs[insn.dst] = value
        return False

    def do_stx(self, st: State, pc: int, insn, spec) -> bool:
        value = self.rd(st, insn.src)
        ptr = self.rd(st, insn.dst)
        st.pc = pc + 1
        self.note_nonnull(pc, st, insn.dst)
        self.note_ranges(pc, st.frames[-1].regs, (insn.src,))
        self.mem_access(st, pc, insn.dst, ptr, insn.off, spec.width, True, value, None, False)
        return False

    def do_st(self, st: State, pc: int, insn, spec) -> bool:
        ptr = self.rd(st, insn.dst)
        st.pc = pc + 1
        self.note_nonnull(pc, st, insn.dst)
        self.mem_access(st, pc, insn.dst, ptr, insn.off, spec.width, True, None, None, False, st_imm=insn.imm)
        return False

    def do_atomic(self, st: State, pc: int, insn, spec) -> bool:
        value = self.rd(st, insn.src)
        ptr = self.rd(st, insn.dst)
        st.pc = pc + 1
        self.note_nonnull(pc, st, insn.dst)
        op = spec.op
        if op == "cmpxchg":
            r0 = self.rd(st, 0)
            if r0.is_pointer and not self.priv:
                self.fail("R0 leaks addr into mem", pc)
        if value.is_pointer and not self.priv:
            self.fail(f"R{insn.src} leaks addr into mem", pc)
        if ptr.type is CTX or ptr.type in PACKET_TYPES or ptr.type is PKT_END:
            self.fail(f"BPF_ATOMIC stores into R{insn.dst} {ptr.type_name()} is not allowed", pc)
        size = spec.width
        self.mem_access(st, pc, insn.dst, ptr, insn.off, size, False, None, None, False, strict=True)
        fetch = op.startswith("fetch") or op in ("xchg", "cmpxchg")
        if fetch:
            load_reg = 0 if op == "cmpxchg" else insn.src
            loaded = self.mem_access(st, pc, insn.dst, st.frames[-1].regs[insn.dst], insn.off, size, False, None,
                                     load_reg, False, strict=True)
        self.mem_access(st, pc, insn.dst, st.frames[-1].regs[insn.dst], insn.off, size, True, None, None, False,
                        strict=True, atomic_value=value)
        if fetch:
            st.frames[-1].regs[load_reg] = loaded
        return False

    def check_alignment(self, st: State, regno: int, reg: Reg, off: int, size: int, strict: bool) -> None:
        if size == 1:
            return
        t = reg.type
        if t is STACK:
            strict, what = True, "stack "
        elif t in PACKET_TYPES:
            if not strict:
                return
            vv, vm = tn.add((reg.tv, reg.tm), tn.const(2 + reg.off + off))
            if not tn.is_aligned((vv, vm), size):
                self.fail(f"misaligned packet access off 2+{tn.text((reg.tv, reg.tm))}+{reg.off}+{off} size {size}",
                          self.pc)
            return
        else:
            what = {MAP_VALUE: "value ", MAP_KEY: "key ", CTX: "context "}.get(t, "")
        if not strict:
            return
        vv, vm = tn.add((reg.tv, reg.tm), tn.const(reg.off + off))
        if not tn.is_aligned((vv, vm), size):
            self.fail(f"misaligned {what}access off {tn.text((reg.tv, reg.tm))}+{reg.off}+{off} size {size}", self.pc)

    def mem_access(self, st: State, pc: int, regno: int, reg: Reg, off: int, size: int, write: bool,
                   value: Reg | None, dst: int | None, ldsx: bool, st_imm: int | None = None,
                   strict: bool = False, atomic_value: Reg | None = None) -> Reg | None:
        """check_mem_access: a load (dst: the register loaded; None for no value) or store."""
        self.check_alignment(st, regno, reg, off, size, strict)
        t = reg.type
        f = st.frames[-1]
        loc = f.frameno * 128 + dst if dst is not None else -1
        result: Reg | None = None
        total = off + reg.off
        if reg.null:
            self.fail(f"R{regno} invalid mem access '{reg.type_name()}'", pc)
        if t is STACK:
            result = self.stack_access(st, pc, regno, reg, total, size, write, value, loc, st_imm)
            self.note_access(pc, "stack", True, size)
        elif t is MAP_VALUE:
            m = reg.base
            if write and value is not None and value.is_pointer and not self.priv:
                self.fail(f"R{value_regno(value)} leaks addr into map", pc)
            self.map_access_type(regno, m, total, size, write, pc)
            self.region_access(regno, reg, total, size, m.value_size, False, pc)
            self.no_lock_overlap(m, reg, total, size, pc)
            self.note_access(pc, "map_value", True, size)
            if dst is not None:
                result = _unknown(loc)
        elif t is MAP_KEY:
            if write:
                self.fail(f"write to change key R{regno} not allowed", pc)
            self.region_access(regno, reg, total, size, reg.base.key_size, False, pc)
            self.note_access(pc, "map_key", True, size)
            if dst is not None:
                result = _unknown(loc)
        elif t is MEM:
            info: MemInfo = reg.base
            if write and info.rdonly:
                self.fail(f"R{regno} cannot write into {reg.type_name()}", pc)
            if write and value is not None and value.is_pointer and not self.priv:
                self.fail(f"R{value_regno(value)} leaks addr into mem", pc)
            if info.size is None:
                self.note_access(pc, info.kind, False, size)
            else:
                self.region_access(regno, reg, total, size, info.size, False, pc)
                self.note_access(pc, info.kind if info.kind != "mem" else "mem", True, size)
            if dst is not None:
                result = _unknown(loc)
        elif t is CTX:
            result = self.ctx_access(st, pc, regno, reg, total, size, write, value, loc if dst is not None else None,
                                     ldsx)
        elif t in PACKET_TYPES:
            if write and not self.ptype.packet_write:
                self.fail("cannot write into packet", pc)
            if write and value is not None and value.is_pointer and not self.priv:
                self.fail(f"R{value_regno(value)} leaks addr into packet", pc)
            self.packet_access(regno, reg, total, size, False, pc)
            self.note_access(pc, "packet", True, size)
            if dst is not None:
                result = _unknown(loc)
        else:
            self.fail(f"R{regno} invalid mem access '{reg.type_name()}'", pc)
        if result is not None and result.type is SCALAR and size < 8:
            if ldsx:
                bd.coerce_to_size_sx(result, size)
            else:
                bd.coerce_to_size(result, size)
        return result

    def map_access_type(self, regno: int, m, off: int, size: int, write: bool, pc: int) -> None:
        from jitbpf.runtime.maps import BPF_F_RDONLY_PROG
        if write and m.map_flags & BPF_F_RDONLY_PROG:
            self.fail(f"write into map forbidden, value_size={m.value_size} off={off} size={size}", pc)
        if not write and m.map_flags & 0x100:          # BPF_F_WRONLY_PROG
            self.fail(f"read from map forbidden, value_size={m.value_size} off={off} size={size}", pc)

    def region_ok(self, reg: Reg, off: int, size: int, mem_size: int, zero_ok: bool) -> bool:
        if reg.smin < 0 and (reg.smin == bd.S64_MIN or not -(1 << 31) <= off + reg.smin < (1 << 31)
                             or reg.smin + off < 0):
            return False
        lo = reg.smin + off
        if not (lo >= 0 and (size > 0 or (size == 0 and zero_ok)) and lo + size <= mem_size):
            return False
        if reg.umax >= MAX_VAR_OFF:
            return False
        hi = reg.umax + off
        return hi >= 0 and hi + size <= mem_size

    def region_access(self, regno: int, reg: Reg, off: int, size: int, mem_size: int, zero_ok: bool, pc: int) -> None:
        """check_mem_region_access: [off, off + size) with every value of the variable part."""
        what = {MAP_VALUE: "map value, value_size", MAP_KEY: "map key, key_size"}.get(reg.type, "memory, mem_size")
        if reg.smin < 0 and (reg.smin == bd.S64_MIN or not -(1 << 31) <= off + reg.smin < (1 << 31)
                             or reg.smin + off < 0):
            self.fail(f"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.", pc)
        lo = reg.smin + off
        if not (lo >= 0 and (size > 0 or (size == 0 and zero_ok)) and lo + size <= mem_size):
            self.fail(f"invalid access to {what}={mem_size} off={lo} size={size}; "
                      f"R{regno} min value is outside of the allowed memory range", pc)
        if reg.umax >= MAX_VAR_OFF:
            self.fail(f"R{regno} unbounded memory access, make sure to bounds check any such access", pc)
        hi = reg.umax + off
        if not (hi + size <= mem_size):
            self.fail(f"invalid access to {what}={mem_size} off={hi} size={size}; "
                      f"R{regno} max value is outside of the allowed memory range", pc)

    def packet_access(self, regno: int, reg: Reg, off: int, size: int, zero_ok: bool, pc: int) -> None:
        if reg.smin < 0:
            self.fail(f"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.", pc)
        rng = reg.rng
        if rng < 0 or not (off >= 0 and (size > 0 or (size == 0 and zero_ok)) and off + size <= rng):
            self.fail(f"invalid access to packet, off={off} size={size}, R{regno}(id={reg.id},off={reg.off},"
                      f"r={max(rng, 0)}); R{regno} offset is outside of the packet", pc)

    def ctx_access(self, st: State, pc: int, regno: int, reg: Reg, off: int, size: int, write: bool,
                   value: Reg | None, loc: int | None, ldsx: bool) -> Reg | None:
        if reg.off:
            self.fail(f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed", pc)
        if reg.tm != 0 or reg.tv != 0:
            self.fail(f"variable ctx access var_off={tn.text((reg.tv, reg.tm))} disallowed", pc)
        if write and value is not None and value.is_pointer and not self.priv:
            self.fail(f"R{value_regno(value)} leaks addr into ctx", pc)
        kind = self.ptype.ctx(off, size, write, ldsx)
        if kind is None:
            self.fail(f"invalid bpf_context access off={off} size={size}", pc)
        self.ctx_size = max(self.ctx_size, off + size)
        self.note_access(pc, "ctx", self.ptype.ctx_size is not None, size)
        if loc is None:
            return None
        if kind is SCALAR:
            return _unknown(loc)
        return new(kind, loc)

    def no_lock_overlap(self, m, reg: Reg, off: int, size: int, pc: int) -> None:
        lock = self.spin_lock_offset(m)
        if lock is None:
            return
        lo, hi = reg.smin + off, reg.umax + off + size
        if lo < lock + 4 and lock < hi:
            self.fail("bpf_spin_lock cannot be accessed directly by load/store", pc)

    def spin_lock_offset(self, m) -> int | None:
        """Where the map value's struct bpf_spin_lock is (from BTF), or None."""
        key = id(m)
        if key in self.spin_lock_offsets:
            return self.spin_lock_offsets[key]
        found = None
        btf = self.btf
        type_id = getattr(m, "btf_value_type", 0)
        if btf is not None and type_id:
            try:
                found = _find_member(btf, type_id, "bpf_spin_lock", 0)
            except Exception:       # damaged BTF: no lock
                found = None
        self.spin_lock_offsets[key] = found
        return found

    # -- the stack

    def stack_bounds(self, pc: int, regno: int, reg: Reg, off: int, size: int, what: str) -> tuple[int, int]:
        """[min, max) of the bytes accessed, or an error (check_stack_access_within_bounds)."""
        if reg.tm == 0:
            lo = bd.s64(reg.tv) + off
            hi = lo + size
        else:
            if reg.smax >= MAX_VAR_OFF or reg.smin <= -MAX_VAR_OFF:
                self.fail(f"invalid unbounded variable-offset{what} stack R{regno}", pc)
            lo = reg.smin + off
            hi = reg.smax + off + size
        if lo < -STACK_SIZE or lo > -1 or hi > 0 or size < 0:
            if reg.tm == 0:
                self.fail(f"invalid{what} stack R{regno} off={off} size={size}", pc)
            self.fail(f"invalid variable-offset{what} stack R{regno} var_off={tn.text((reg.tv, reg.tm))} "
                      f"off={off} size={size}", pc)
        return lo, hi

    def frame_of(self, st: State, reg: Reg) -> Frame:
        return st.frames[reg.base]

    def touch_stack(self, frame: Frame, lo: int) -> None:
        if -lo > frame.depth:
            frame.depth = -lo
            if -lo > self.stack_depth.get(frame.entry, 0):
                self.stack_depth[frame.entry] = -lo

    def stack_access(self, st: State, pc: int, regno: int, reg: Reg, off: int, size: int, write: bool,
                     value: Reg | None, loc: int, st_imm: int | None) -> Reg | None:
        frame = self.frame_of(st, reg)
        lo, hi = self.stack_bounds(pc, regno, reg, off, size, " write to" if write else " read from")
        self.touch_stack(frame, lo)
        if write:
            if reg.tm == 0:
                self.stack_write(st, frame, lo, size, value, st_imm, pc)
            else:
                self.stack_write_var(st, frame, lo, hi, value, st_imm, pc)
            return None
        if loc < 0:                            # atomic: the bytes must be readable
            self.stack_read_range(st, frame, lo, hi, regno, reg, pc, "")
            return None
        if reg.tm == 0:
            return self.stack_read(st, frame, lo, size, loc, pc)
        zero = self.stack_read_range(st, frame, lo, hi, regno, reg, pc, "")
        return _const(0, loc) if zero else _unknown(loc)

    def stack_write(self, st: State, frame: Frame, off: int, size: int, value: Reg | None, st_imm: int | None,
                    pc: int) -> None:
        spi = (-off - 1) // 8
        k = off + 8 * (spi + 1)
        sloc = frame.frameno * 128 + 16 + spi
        old = frame.stack.get(spi)
        cur = st.frames[-1]
        aligned = k % size == 0
        if (not self.priv and old is not None and old.types[0] == SPILL and old.reg is not None
                and old.reg.type is not SCALAR and size != 8):
            self.fail("attempt to corrupt spilled pointer on stack", pc)
        spilled = None
        if value is not None and aligned and value.type is SCALAR and self.priv:
            fits = value.umax.bit_length() <= 8 * size
            src_regno = value.loc % 128 if value.loc // 128 == cur.frameno and value.loc % 128 < 11 else None
            if fits and not value.id and value.tm != 0 and src_regno is not None and k == 0 \
                    and cur.regs[src_regno] is value:
                value = self.with_new_id(st, src_regno, value)
            spilled = value.clone(sloc)
            if not fits or k:
                spilled.id = 0
        elif value is None and aligned and st_imm is not None and self.priv:
            spilled = _const(st_imm, sloc)
        elif value is not None and value.is_pointer:
            if size != 8:
                self.fail("invalid size of register spill", pc)
            if frame is not cur and value.type is STACK:
                self.fail("cannot spill pointers to stack into stack frame of the caller", pc)
            frame.stack[spi] = Slot(SPILL * 8, value.clone(sloc), next_seq(), sloc)
            return
        if size == 8:
            if spilled is not None:
                frame.stack[spi] = Slot(SPILL * 8, spilled, next_seq(), sloc)
                return
        types, reg, subs = _overwrite(old, k, size)
        seq = next_seq() if size == 8 or old is None else old.seq
        if spilled is not None:
            if k == 0:
                types[:size] = SPILL * size
                reg = spilled
            else:
                types[k:k + size] = SUB * size
                subs = subs + ((k, size, spilled),)
            frame.stack[spi] = Slot("".join(types), reg, seq, sloc, subs)
            return
        zero = (value is not None and value.type is SCALAR and value.tm == 0 and value.tv == 0) or \
               (value is None and st_imm == 0)
        if zero and value is not None:
            self.mark_precise(st, value)
        types[k:k + size] = (ZERO if zero else MISC) * size
        frame.stack[spi] = Slot("".join(types), reg, seq, sloc, subs)

    def stack_write_var(self, st: State, frame: Frame, lo: int, hi: int, value: Reg | None, st_imm: int | None,
                        pc: int) -> None:
        """A store at a variable offset: every byte it may hit becomes data (never a
        spill); bytes never written before stay uninitialised (reads are refused)."""
        writing_zero = (value is not None and value.type is SCALAR and value.tm == 0 and value.tv == 0) or \
                       (value is None and st_imm == 0)
        if value is not None and value.is_pointer and not self.priv:
            self.fail(f"spilled ptr in range of var-offset stack write; insn {pc}, ptr off: {lo}", pc)
        for spi in range((-hi) // 8, (-lo - 1) // 8 + 1):
            old = frame.stack.get(spi)
            if old is None:
                continue
            base = -8 * (spi + 1)
            if old.types[0] == SPILL and not self.priv and old.reg.type is not SCALAR:
                self.fail(f"spilled ptr in range of var-offset stack write; insn {pc}, ptr off: {base}", pc)
            if writing_zero and old.types == SPILL * 8 and old.reg.type is SCALAR and old.reg.tm == 0 \
                    and old.reg.tv == 0:
                continue
            k0, k1 = max(lo - base, 0), min(hi - base, 8)
            if old.reg is None and not old.subs:
                seg = old.types[k0:k1]
                if SPILL not in seg and SUB not in seg and (writing_zero or ZERO not in seg):
                    continue               # data stays data: the slot is unchanged
            types, reg, subs = _overwrite(old, k0, k1 - k0)
            for k in range(k0, k1):
                t = types[k]
                if t != INVALID:
                    types[k] = ZERO if writing_zero and t == ZERO else MISC
            frame.stack[spi] = Slot("".join(types), reg, old.seq, old.loc, subs)

    def stack_read(self, st: State, frame: Frame, off: int, size: int, loc: int, pc: int) -> Reg:
        spi = (-off - 1) // 8
        k = off + 8 * (spi + 1)
        slot = frame.stack.get(spi, EMPTY_SLOT)
        if slot is not EMPTY_SLOT:
            self.mark_read_value(st, slot)
        types = slot.types
        if k == 0 and types[0] == SPILL:
            sp = slot.reg
            spill_size = slot.spill_size
            if size == 8 and spill_size == 8:
                return sp.clone(loc)
            if sp.type is not SCALAR:
                self.fail("invalid size of register fill", pc)
            if size <= spill_size:
                r = sp.clone(loc)
                if sp.umax.bit_length() > size * 8:
                    r.id = 0
                return r
        elif types[k] == SUB:
            for sk, ssize, sp in slot.subs:
                if sk == k and size <= ssize:
                    r = sp.clone(loc)
                    r.id = 0
                    return r
        spills = zeros = 0
        for i in range(k, k + size):
            t = types[i]
            if t == SPILL:
                spills += 1
            elif t == ZERO:
                zeros += 1
            elif t != MISC and t != SUB:
                self.fail(f"invalid read from stack off {off}+{i - k} size {size}", pc)
        if spills and slot.reg is not None and slot.reg.type is not SCALAR and not self.priv:
            self.fail(f"leaking pointer from stack off {off}", pc)
        if spills == size and slot.reg is not None and slot.reg.tm == 0 and slot.reg.tv == 0:
            return _const(0, loc, (slot.reg,))
        if zeros == size:
            return _const(0, loc)
        return _unknown(loc)

    def stack_read_range(self, st: State, frame: Frame, lo: int, hi: int, regno: int, reg: Reg, pc: int,
                         what: str, clobber: bool = False) -> bool:
        """Every byte of [lo, hi) is initialised (check_stack_range_initialized); True when
        all are zero. ``clobber``: a helper may write them (spills become data)."""
        all_zero = True
        stack = frame.stack
        addr = lo
        while addr < hi:                   # one slot at a time
            spi = (-addr - 1) // 8
            k = addr + 8 * (spi + 1)
            end = min(8, k + hi - addr)
            slot = stack.get(spi, EMPTY_SLOT)
            seg = slot.types[k:end]
            if INVALID in seg or (SPILL in seg and slot.reg.type is not SCALAR and not self.priv):
                for i in range(k, end):    # the first byte that may not be read
                    t = seg[i - k]
                    if t == INVALID or t == SPILL and slot.reg.type is not SCALAR and not self.priv:
                        bad = addr + i - k - lo
                        if reg.tm == 0:
                            self.fail(f"invalid{what} read from stack R{regno} off {lo}+{bad} size {hi - lo}", pc)
                        self.fail(f"invalid{what} read from stack R{regno} var_off {tn.text((reg.tv, reg.tm))}+{bad} "
                                  f"size {hi - lo}", pc)
            if all_zero:
                if MISC in seg or SUB in seg:
                    all_zero = False
                elif SPILL in seg:
                    sr = slot.reg
                    all_zero = sr.type is SCALAR and sr.tm == 0 and sr.tv == 0
            if slot is not EMPTY_SLOT:
                self.mark_read_value(st, slot)
            addr += end - k
        if clobber:
            self.stack_write_range(frame, lo, hi, keep_invalid=True)
        return all_zero

    def stack_write_range(self, frame: Frame, lo: int, hi: int, keep_invalid: bool = False) -> None:
        """A helper filled [lo, hi): the bytes are data now (spills there are gone)."""
        for spi in range((-hi) // 8, (-lo - 1) // 8 + 1):
            old = frame.stack.get(spi)
            base = -8 * (spi + 1)
            k0, k1 = max(lo - base, 0), min(hi - base, 8)
            types, reg, subs = _overwrite(old, k0, k1 - k0)
            for k in range(k0, k1):
                if not (keep_invalid and types[k] == INVALID):
                    types[k] = MISC
            full = k0 == 0 and k1 == 8
            frame.stack[spi] = Slot("".join(types), reg, next_seq() if full or old is None else old.seq,
                                    frame.frameno * 128 + 16 + spi, subs)

    # ================================================================== lddw, ld_abs

    def do_lddw(self, st: State, pc: int, insn, spec) -> bool:
        f = st.frames[-1]
        loc = f.frameno * 128 + insn.dst
        st.pc = pc + 2
        src = insn.src
        if src == Pseudo.IMM64:
            f.regs[insn.dst] = _const(insn.imm64, loc)
            return False
        if src == Pseudo.FUNC:
            target = isa.jump_target(insn, pc)
            if target == 0:
                self.fail("callback function cannot be the main program", pc)
            f.regs[insn.dst] = new(FUNC, loc, base=target)
            return False
        if src == Pseudo.BTF_ID:
            self.fail("pseudo btf_id lddw (kernel variables) is not supported", pc)
        if not 0 <= insn.imm < len(self.maps):
            self.fail(f"fd {insn.imm} is not pointing to valid bpf_map", pc)
        m = self.maps[insn.imm]
        if src in (Pseudo.MAP_FD, Pseudo.MAP_IDX):
            f.regs[insn.dst] = new(MAP_PTR, loc, base=m)
            return False
        off = insn.next_imm
        if m.type_name != "array":
            self.fail(f"direct value access on {m.type_name} map type is not allowed", pc)
        if not 0 <= off < m.value_size:
            self.fail(f"invalid access to map value pointer, value_size={m.value_size} off={off}", pc)
        f.regs[insn.dst] = new(MAP_VALUE, loc, base=m, off=off)
        return False

    def do_ldabs(self, st: State, pc: int, insn, spec) -> bool:
        if not self.ptype.ld_abs:
            self.fail("BPF_LD_[ABS|IND] instructions not allowed for this program type", pc)
        if st.refs:
            self.fail("BPF_LD_[ABS|IND] cannot be mixed with socket references", pc)
        if st.lock is not None:
            self.fail("BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region", pc)
        if any(fr.callback is not None for fr in st.frames):
            self.fail("cannot use BPF_LD_[ABS|IND] within callback", pc)
        r6 = self.rd(st, 6)
        if spec.kind == "ldind":
            self.rd(st, insn.src)
        if r6.type is not CTX:
            self.fail("at the time of BPF_LD_ABS|IND R6 != pointer to skb", pc)
        f = st.frames[-1]
        for i in range(1, 6):
            f.regs[i] = NOT_INIT_REG
        r0 = new(SCALAR, f.frameno * 128)
        bd.set_urange(r0, 0, (1 << (8 * spec.width)) - 1)
        f.regs[0] = r0
        st.pc = pc + 1
        return False

    # ================================================================== calls

    def do_call(self, st: State, pc: int, insn, spec) -> bool:
        if insn.src == isa.CALL_LOCAL:
            if st.lock is not None:
                self.fail("function calls are not allowed while holding a lock", pc)
            return self.local_call(st, pc, isa.jump_target(insn, pc))
        if insn.src == isa.CALL_KFUNC:
            if st.lock is not None:
                self.fail("function calls are not allowed while holding a lock", pc)
            name = self.program.kfuncs.get(pc)
            if name is None:
                self.fail(f"kernel function with BTF id {insn.imm} is not known", pc)
            proto = kfunc_prototype(name, self.helpers, self.btf)
            if proto is None:
                self.fail(f"kernel function {name} has no prototype (register it or declare it with BTF)", pc)
            return self.helper_call(st, pc, proto)
        return self.call_helper_id(st, pc, insn.imm)

    def call_helper_id(self, st: State, pc: int, hid: int) -> bool:
        h = self.helpers.by_id.get(hid)
        if h is None:
            self.fail(f"invalid func unknown#{hid}", pc)
        if st.lock is not None and h.name != "spin_unlock":
            self.fail("function calls are not allowed while holding a lock", pc)
        if h.prog_types is not None and self.ptype.name not in h.prog_types:
            self.fail(f"program of this type cannot use helper bpf_{h.name}#{hid}", pc)
        return self.helper_call(st, pc, helper_prototype(h))

    def do_callx(self, st: State, pc: int, insn, spec) -> bool:
        r = self.rd(st, insn.dst)
        if r.type is FUNC and not r.off and r.tm == 0 and r.tv == 0:
            if st.lock is not None:
                self.fail("function calls are not allowed while holding a lock", pc)
            return self.local_call(st, pc, r.base)
        if r.type is SCALAR and r.tm == 0:
            return self.call_helper_id(st, pc, bd.s64(r.tv))
        self.fail(f"callx R{insn.dst}: the target is not a known function ({describe(r)})", pc)

    def local_call(self, st: State, pc: int, target: int, callback: Callback | None = None,
                   args: list[Reg] | None = None) -> bool:
        if len(st.frames) >= isa.MAX_CALL_DEPTH:
            self.fail(f"the call stack of {len(st.frames) + 1} frames is too deep", pc)
        caller = st.frames[-1]
        n = len(st.frames)
        callee = Frame(n, target, pc, callback)
        regs = caller.regs
        if args is None:
            for i in range(1, 6):
                r = regs[i]
                if r.type is not NOT_INIT:
                    callee.regs[i] = r.clone(n * 128 + i)
        else:
            for i, r in enumerate(args, start=1):
                if r is not None:
                    callee.regs[i] = r.clone(n * 128 + i)
        callee.regs[10] = new(STACK, n * 128 + 10, base=n)
        if callback is None:
            for i in range(0, 6):
                regs[i] = NOT_INIT_REG
        st.frames.append(callee)
        st.pc = target
        if self.level:
            self.log.add(f"caller:\n  {state_text_frame(caller)}\ncallee:\n  {state_text_frame(callee)}")
        return False

    def do_exit(self, st: State, pc: int, insn, spec) -> bool:
        f = st.frames[-1]
        if st.lock is not None:
            self.fail("bpf_spin_unlock is missing", pc)
        if len(st.frames) > 1:
            return self.function_exit(st, pc)
        for rid, (kind, at) in sorted(st.refs.items()):
            self.fail(f"Unreleased reference id={rid} alloc_insn={at}", pc)
        r0 = self.rd(st, 0)
        if r0.is_pointer and not self.priv:
            self.fail("R0 leaks addr as return value", pc)
        rr = self.ptype.ret_range
        if rr is not None:
            if r0.type is not SCALAR:
                self.fail(f"At program exit the register R0 is not a known value ({r0.type_name()})", pc)
            self.mark_precise(st, r0)
            if not (rr[0] <= r0.smin and r0.smax <= rr[1]):
                self.fail(f"At program exit the register R0 has {_range_text(r0)} should have been in "
                          f"[{rr[0]}, {rr[1]}]", pc)
        self.note_ranges(pc, f.regs, (0,))
        return True

    def function_exit(self, st: State, pc: int) -> bool:
        callee = st.frames[-1]
        r0 = callee.regs[0]
        if callee.callback is not None:
            self.rd(st, 0)
        elif r0.type is not NOT_INIT:
            self.mark_read_value(st, r0)
        if r0.type is STACK:
            self.fail("cannot return stack pointer to the caller", pc)
        cb = callee.callback
        st.frames.pop()
        caller = st.frames[-1]
        if cb is not None:
            if r0.type is not SCALAR:
                self.fail("R0 not a scalar value", pc)
            st.frames.append(callee)
            self.mark_precise(st, r0)
            st.frames.pop()
            lo, hi = cb.ret_range
            if not (lo <= r0.smin and r0.smax <= hi):
                self.fail(f"At callback return the register R0 has {_range_text(r0)} should have been in "
                          f"[{lo}, {hi}]", pc)
            st.callback_depth += 1
            st.pc = callee.callsite               # the helper runs the callback again (or returns)
            self.widen_after_callback(st)
        else:
            caller.regs[0] = r0.clone(caller.frameno * 128) if r0.type is not NOT_INIT else NOT_INIT_REG
            st.pc = callee.callsite + 1
        # pointers into the finished frame's stack die with it
        dead = callee.frameno
        for f in st.frames:
            for i in range(11):
                r = f.regs[i]
                if r.type is STACK and r.base >= dead:
                    f.regs[i] = NOT_INIT_REG
        if self.level:
            self.log.add(f"returning from callee to caller at {st.pc}: {state_text_frame(caller)}")
        return False

    def widen_after_callback(self, st: State) -> None:
        """After a callback iteration, values that changed and were never needed exactly
        become unknown, so repeated iterations converge (widen_imprecise_scalars)."""
        v = self.visited.get(st.pc)
        if v is None:
            return
        prev = None
        for bucket in v.open.values():
            for cp in bucket:
                if len(cp.frames) == len(st.frames):
                    prev = cp
        if prev is None:
            return
        for fo, fc in zip(prev.frames, st.frames):
            base = fo.frameno * 128
            for i in range(10):
                o, c = fo.regs[i], fc.regs[i]
                if o.type is SCALAR and c.type is SCALAR and not (prev.precise >> (base + i)) & 1 \
                        and o.bounds_key() != c.bounds_key():
                    w = c.variant()
                    bd.mark_unknown(w)
                    w.id = 0
                    fc.regs[i] = w
            for spi, slot in list(fc.stack.items()):
                os_ = fo.stack.get(spi)
                if os_ is None or os_.reg is None or slot.reg is None or slot.types != SPILL * 8:
                    continue
                o, c = os_.reg, slot.reg
                if o.type is SCALAR and c.type is SCALAR and not (prev.precise >> (base + 16 + spi)) & 1 \
                        and o.bounds_key() != c.bounds_key():
                    w = c.variant()
                    bd.mark_unknown(w)
                    w.id = 0
                    fc.stack[spi] = slot.with_reg(w)

    # -- helpers and kfuncs

    def helper_call(self, st: State, pc: int, proto: Prototype) -> bool:
        f = st.frames[-1]
        regs = f.regs
        meta = _Meta()
        for i, kind in enumerate(proto.args):
            self.check_arg(st, pc, proto, i + 1, kind, meta)
        if meta.map is not None and not map_allows(meta.map.type_name, proto.name, proto.maps):
            self.fail(f"cannot pass map_type {meta.map.map_type} into func bpf_{proto.name}#{proto.id}", pc)
        if proto.name == "tail_call" and st.refs:
            self.fail("tail_call would lead to reference leak", pc)
        if proto.name == "spin_lock":
            self.spin_lock(st, pc, meta)
        elif proto.name == "spin_unlock":
            self.spin_unlock(st, pc, meta)
        # the helper wrote into memory it was given (raw mode)
        for regno, size in meta.writes:
            r = regs[regno]
            if r.type is STACK:
                frame = self.frame_of(st, r)
                lo = bd.s64(r.tv) + r.off
                self.stack_write_range(frame, lo, lo + size)
        if meta.release is not None:
            self.release(st, pc, meta.release)
        callback = None
        if proto.callback:
            callback = self.callback_state(st, pc, proto, meta)
        loc0 = f.frameno * 128
        for i in range(1, 6):
            regs[i] = NOT_INIT_REG
        ret = proto.ret
        if ret == "void":
            regs[0] = NOT_INIT_REG
        elif ret == "ptr_to_map_value_or_null":
            # an array lookup with a known key in range cannot fail (as Linux decides since 6.13)
            known = (meta.key is not None and meta.map.type_name in ("array", "percpu_array")
                     and proto.name == "map_lookup_elem" and meta.key[0] < meta.map.max_entries)
            if known and meta.key[1] is not None:
                self.mark_precise(st, meta.key[1])
            keep_id = not known or self.spin_lock_offset(meta.map) is not None     # the lock's identity
            regs[0] = new(MAP_VALUE, loc0, base=meta.map, null=not known, id=st.new_id() if keep_id else 0)
        elif ret == "ptr_to_alloc_mem_or_null":
            rid = st.new_id()
            regs[0] = new(MEM, loc0, base=MemInfo("ringbuf", meta.alloc_size), null=True, id=rid, ref=rid)
            st.refs[rid] = ("ringbuf", pc)
        elif ret == "ptr_to_btf_mem_or_null":
            regs[0] = new(MEM, loc0, base=MemInfo("btf", proto.ret_size, name=proto.ret_name), null=True,
                          id=st.new_id())
        else:
            r0 = _unknown(loc0)
            if proto.name == "get_smp_processor_id":       # the refinements Linux makes (do_refine_retval_range)
                bd.set_urange(r0, 0, max(0, getattr(self.program.runtime, "num_cpus", 4) - 1))
            elif proto.name.endswith("_str") and proto.name.startswith("probe_read") and meta.size_max is not None:
                r0.smax = r0.s32max = min(meta.size_max, bd.S32_MAX)
                r0.smin = r0.s32min = -4095
                bd.sync(r0)
            regs[0] = r0
        if proto.changes_packet:
            self.clear_packet_pointers(st)
        if callback is not None:
            self.push(callback, pc)
        st.pc = pc + 1
        return False

    def check_arg(self, st: State, pc: int, proto: Prototype, regno: int, kind: str, meta: "_Meta") -> None:
        r = self.rd(st, regno)
        t = r.type
        if kind == "anything":
            if r.is_pointer and not self.priv:
                self.fail(f"R{regno} leaks addr into helper function", pc)
            if t is STACK and proto.name.startswith("probe_read") and meta.size_max:
                # Linux lets root copy stack it never wrote; here verified code never sees
                # such bytes (batch runs do not clear the stack between runs).
                self.helper_mem(st, pc, regno, r, meta.size_max, write=False, zero_ok=False, raw=False,
                                meta=meta, clobber=False)
            return
        nullable = kind.endswith("_or_null")
        base_kind = kind[:-8] if nullable else kind
        if nullable and r.is_null_const():
            self.mark_precise(st, r)
            meta.last_ptr = (regno, None)
            return
        if base_kind == "const_map_ptr":
            self.expect(r, regno, (MAP_PTR,), pc)
            meta.map = r.base
        elif base_kind in ("ptr_to_map_key", "ptr_to_map_value", "ptr_to_uninit_map_value"):
            self.expect(r, regno, (STACK, PKT, PKT_META, MAP_KEY, MAP_VALUE), pc, ctx_ok=True)
            if meta.map is None:
                self.fail(f"invalid map_ptr to access map->{'key' if 'key' in base_kind else 'value'}", pc)
            size = meta.map.key_size if base_kind == "ptr_to_map_key" else meta.map.value_size
            raw = base_kind == "ptr_to_uninit_map_value"
            self.helper_mem(st, pc, regno, r, size, write=raw, zero_ok=False, raw=raw, meta=meta, clobber=False)
            if base_kind == "ptr_to_map_key" and r.type is STACK and r.tm == 0:
                meta.key = self.constant_key(st, r, size)
        elif base_kind in ("ptr_to_mem", "ptr_to_uninit_mem"):
            self.expect(r, regno, (STACK, PKT, PKT_META, MAP_KEY, MAP_VALUE, MEM), pc, ctx_ok=True)
            meta.last_ptr = (regno, base_kind == "ptr_to_uninit_mem")
            if proto.fixed_sizes.get(regno):
                self.helper_mem(st, pc, regno, r, proto.fixed_sizes[regno], write=base_kind == "ptr_to_uninit_mem",
                                zero_ok=False, raw=base_kind == "ptr_to_uninit_mem", meta=meta)
                meta.last_ptr = None
        elif base_kind in ("const_size", "const_size_or_zero"):
            zero_ok = base_kind == "const_size_or_zero"
            if t is not SCALAR:
                self.fail(f"R{regno} type={r.type_name()} expected=scalar", pc)
            if meta.last_ptr is None:
                self.fail(f"R{regno} size argument without a memory argument before it", pc)
            mreg, raw = meta.last_ptr
            meta.last_ptr = None
            if r.smin < 0:
                self.fail(f"R{regno} min value is negative, either use unsigned or 'var &= const'", pc)
            if r.umin == 0 and not zero_ok:
                self.fail(f"R{regno} invalid zero-sized read: u64=[{r.umin},{r.umax}]", pc)
            if r.umax >= MAX_VAR_SIZ:
                self.fail(f"R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'", pc)
            meta.size_max = r.umax
            if mreg is not None:
                ptr = st.frames[-1].regs[mreg]
                self.helper_mem(st, pc, mreg, ptr, r.umax, write=bool(raw), zero_ok=zero_ok,
                                raw=bool(raw) and r.tm == 0, meta=meta)
            elif r.umax != 0:
                pass                        # NULL buffer with a size: the helper must cope (csum_diff)
            self.mark_precise(st, r)
        elif base_kind == "const_alloc_size":
            if t is not SCALAR or r.tm != 0:
                self.fail(f"R{regno} is not a known constant'", pc)
            meta.alloc_size = r.tv
            self.mark_precise(st, r)
        elif base_kind == "ptr_to_ctx":
            if t is MEM and r.base.kind == "raw" and self.ptype.ctx is None:
                pass                        # a raw program's memory stands for its context
            else:
                self.expect(r, regno, (CTX,), pc)
            if r.off:
                self.fail(f"dereference of modified ctx ptr R{regno} off={r.off} disallowed", pc)
            if r.tm != 0 or r.tv != 0:
                self.fail(f"variable ctx access var_off={tn.text((r.tv, r.tm))} disallowed", pc)
        elif base_kind == "ptr_to_func":
            self.expect(r, regno, (FUNC,), pc)
            meta.func = r.base
        elif base_kind == "ptr_to_stack":
            self.expect(r, regno, (STACK,), pc)
            meta.ctx_arg = r
        elif base_kind == "ptr_to_alloc_mem":
            if not (t is MEM and r.base.kind == "ringbuf") or r.null:
                self.fail(f"R{regno} type={r.type_name()} expected=ringbuf_mem", pc)
            if not r.ref:
                self.fail(f"R{regno} must be referenced when passed to release function", pc)
            if r.off or r.tm != 0 or r.tv != 0:
                self.fail(f"R{regno} must have zero offset when passed to release func", pc)
            meta.release = r.ref
        elif base_kind == "ptr_to_spin_lock":
            self.expect(r, regno, (MAP_VALUE,), pc)
            meta.lock_reg = (regno, r)
        elif base_kind == "ptr_to_const_str":
            self.expect(r, regno, (MAP_VALUE,), pc)
            self.const_str(r, regno, pc)
        elif base_kind == "ptr_to_btf_mem":
            self.expect(r, regno, (STACK, MAP_VALUE, MEM, PKT, PKT_META, MAP_KEY), pc)
            self.helper_mem(st, pc, regno, r, proto.fixed_sizes.get(regno, 0), write=True, zero_ok=True, raw=False,
                            meta=meta)
        else:
            self.fail(f"helper bpf_{proto.name}: argument kind '{kind}' is not understood by the verifier", pc)
        if r.null and t is not SCALAR:
            self.fail(f"R{regno} type={r.type_name()} expected={_expected_text(base_kind)}", pc)

    def expect(self, r: Reg, regno: int, types: tuple, pc: int, ctx_ok: bool = False) -> None:
        """check_reg_type. ``ctx_ok``: a memory argument, which a syscall program's context
        may be (jitbpf's syscall contexts are plain bytes, as the kernel engine runs them)."""
        if r.type in types and not r.null:
            return
        if ctx_ok and r.type is CTX and self.ptype.name == "syscall":
            return
        names = ", ".join(t for t in types)
        self.fail(f"R{regno} type={r.type_name()} expected={names}", pc)

    def helper_mem(self, st: State, pc: int, regno: int, r: Reg, size: int, *, write: bool, zero_ok: bool,
                   raw: bool, meta: "_Meta", clobber: bool = True) -> None:
        """check_helper_mem_access: the helper touches [r, r + size); ``clobber``: it may
        write there (map keys and values it only reads keep what the stack held)."""
        t = r.type
        if t in PACKET_TYPES:
            self.packet_access(regno, r, r.off, size, zero_ok, pc)
        elif t is MAP_KEY:
            if write:
                self.fail(f"R{regno} cannot write into {r.type_name()}", pc)
            self.region_access(regno, r, r.off, size, r.base.key_size, zero_ok, pc)
        elif t is MAP_VALUE:
            self.map_access_type(regno, r.base, r.off, size, write, pc)
            self.region_access(regno, r, r.off, size, r.base.value_size, zero_ok, pc)
            self.no_lock_overlap(r.base, r, r.off, size, pc)
        elif t is MEM:
            if r.base.rdonly and write:
                self.fail(f"R{regno} cannot write into {r.type_name()}", pc)
            if r.base.size is not None:
                self.region_access(regno, r, r.off, size, r.base.size, zero_ok, pc)
        elif t is CTX:
            if r.tm != 0:
                self.fail(f"variable ctx access var_off={tn.text((r.tv, r.tm))} disallowed", pc)
            if size:
                end = r.off + bd.s64(r.tv) + size
                if r.off + bd.s64(r.tv) < 0 or self.ptype.ctx(end - 1, 1, write, False) is None:
                    self.fail(f"invalid bpf_context access off={end - 1} size=1", pc)
                self.ctx_size = max(self.ctx_size, end)
        elif t is STACK:
            if size == 0 and zero_ok:
                return
            if size == 0:
                self.fail("invalid zero-sized read", pc)
            frame = self.frame_of(st, r)
            lo, hi = self.stack_bounds(pc, regno, r, r.off, size, " indirect access to")
            if r.tm != 0 and not self.priv:
                self.fail(f"R{regno} indirect variable offset stack access prohibited for !root, "
                          f"var_off={tn.text((r.tv, r.tm))}", pc)
            self.touch_stack(frame, lo)
            if raw and r.tm == 0:
                meta.writes.append((regno, size))
            else:
                self.stack_read_range(st, frame, lo, hi, regno, r, pc, " indirect", clobber=clobber)
        elif r.is_null_const() and zero_ok and size == 0:
            return
        else:
            self.fail(f"R{regno} type={r.type_name()} expected=fp", pc)

    def constant_key(self, st: State, r: Reg, size: int) -> tuple[int, Reg | None] | None:
        """The key a stack pointer points to, when the verifier knows it: (value, the
        spilled value it comes from, or None for zero bytes)."""
        frame = self.frame_of(st, r)
        off = r.off + bd.s64(r.tv)
        spi = (-off - 1) // 8
        k = off + 8 * (spi + 1)
        if k + size > 8:
            return None
        slot = frame.stack.get(spi)
        if slot is None:
            return None
        zero = [t == ZERO for t in slot.types]
        for sk, ssize, sreg in ((0, slot.spill_size, slot.reg),) + tuple(slot.subs):
            if sreg is not None and sreg.type is SCALAR and sreg.tm == 0 and sreg.tv == 0:
                zero[sk:sk + ssize] = [True] * ssize
        if all(zero[k:k + size]):
            return 0, None
        # as Linux: a scalar spilled at the key's address, exactly key-sized
        if k == 0 and slot.types[0] == SPILL and slot.spill_size == size and slot.reg.type is SCALAR \
                and slot.reg.tm == 0:
            return slot.reg.tv, slot.reg
        return None

    def const_str(self, r: Reg, regno: int, pc: int) -> None:
        from jitbpf.runtime.maps import BPF_F_RDONLY_PROG
        m = r.base
        if not m.map_flags & BPF_F_RDONLY_PROG:
            self.fail(f"R{regno} does not point to a readonly map'", pc)
        if r.tm != 0:
            self.fail(f"R{regno} is not a constant address'", pc)
        off = r.off + bd.s64(r.tv)
        data = bytes(getattr(m, "initial", None) or b"")
        if not 0 <= off < m.value_size:
            self.fail(f"invalid access to map value, value_size={m.value_size} off={off} size=1", pc)
        if data and b"\0" not in data[off:m.value_size]:
            self.fail("string is not zero-terminated", pc)

    def spin_lock(self, st: State, pc: int, meta: "_Meta") -> None:
        regno, r = meta.lock_reg
        off = self.lock_offset(regno, r, pc)
        if st.lock is not None:
            self.fail("Locking two bpf_spin_locks are not allowed", pc)
        st.lock = Lock(r.base, r.id, off, pc)

    def spin_unlock(self, st: State, pc: int, meta: "_Meta") -> None:
        regno, r = meta.lock_reg
        off = self.lock_offset(regno, r, pc)
        if st.lock is None:
            self.fail("bpf_spin_unlock without taking a lock", pc)
        if st.lock.map is not r.base or st.lock.id != r.id or st.lock.off != off:
            self.fail("bpf_spin_unlock of different lock", pc)
        st.lock = None

    def lock_offset(self, regno: int, r: Reg, pc: int) -> int:
        if r.tm != 0:
            self.fail(f"R{regno} doesn't have constant offset. bpf_spin_lock has to be at the constant offset", pc)
        m = r.base
        if self.ptype.tracing:
            self.fail("tracing progs cannot use bpf_spin_lock yet", pc)
        if self.btf is None or not getattr(m, "btf_value_type", 0):
            self.fail(f"map '{m.name}' has to have BTF in order to use bpf_spin_lock", pc)
        lock = self.spin_lock_offset(m)
        if lock is None:
            self.fail(f"map '{m.name}' has no valid bpf_spin_lock", pc)
        off = r.off + bd.s64(r.tv)
        if off != lock:
            self.fail(f"off {off} doesn't point to 'struct bpf_spin_lock' that is at {lock}", pc)
        return off

    def release(self, st: State, pc: int, rid: int) -> None:
        if rid not in st.refs:
            self.fail("R1 must be referenced when passed to release function", pc)
        del st.refs[rid]
        for f in st.frames:
            for i in range(11):
                r = f.regs[i]
                if r.ref == rid:
                    f.regs[i] = NOT_INIT_REG if not self.priv else _unknown(r.loc)
            for spi, slot in list(f.stack.items()):
                if slot.reg is not None and slot.reg.ref == rid:
                    f.stack[spi] = slot.with_reg(_unknown(slot.loc))

    def clear_packet_pointers(self, st: State) -> None:
        for f in st.frames:
            for i in range(11):
                r = f.regs[i]
                if r.type in PACKET_TYPES or r.type is PKT_END:
                    f.regs[i] = _unknown(r.loc)
            for spi, slot in list(f.stack.items()):
                r = slot.reg
                if r is not None and (r.type in PACKET_TYPES or r.type is PKT_END):
                    f.stack[spi] = slot.with_reg(_unknown(slot.loc))

    def callback_state(self, st: State, pc: int, proto: Prototype, meta: "_Meta") -> State:
        """The state entering the callback (pushed; the current path goes on as if the
        helper did not call it)."""
        cb = st.copy()
        n = len(cb.frames)
        args: list[Reg | None] = []
        for what in proto.callback:
            if what == "index":
                r = new(SCALAR, -1)
                bd.set_urange(r, 0, M32)
                args.append(r)
            elif what == "map":
                args.append(new(MAP_PTR, -1, base=meta.map))
            elif what == "map_key":
                args.append(new(MAP_KEY, -1, base=meta.map))
            elif what == "map_value":
                args.append(new(MAP_VALUE, -1, base=meta.map))
            elif what == "ctx":
                args.append(meta.ctx_arg if meta.ctx_arg is not None else _const(0, -1))
            else:
                args.append(None)
        if meta.func is None:
            self.fail(f"bpf_{proto.name}: no callback function", pc)
        if n >= isa.MAX_CALL_DEPTH:
            self.fail(f"the call stack of {n + 1} frames is too deep", pc)
        self.local_call(cb, pc, meta.func, Callback(proto.name, pc), args)
        return cb


# ====================================================================== small pieces

class _Meta:
    __slots__ = ("map", "last_ptr", "writes", "alloc_size", "release", "func", "ctx_arg", "lock_reg", "key", "size_max")

    def __init__(self) -> None:
        self.key = None
        self.size_max = None
        self.map = None
        self.last_ptr = None
        self.writes: list[tuple[int, int]] = []
        self.alloc_size = 0
        self.release = None
        self.func = None
        self.ctx_arg = None
        self.lock_reg = None


#: op -> for (pkt' op end, end op pkt'): (proof on the taken side, right-open range, past the end)
_PKT_CMP = {
    "jgt": ((False, False, True), (True, True, False)),
    "jlt": ((True, True, False), (False, False, True)),
    "jge": ((False, True, False), (True, False, True)),
    "jle": ((True, False, True), (False, True, False)),
}
_ZERO = new(SCALAR, -1)
_FRAME_BITS = (1 << 128) - 1           # one frame's locations: r0-r10 (bits 0-10), slots (16-79)


def _invariant_regsafe(old: Reg, cur: Reg, idmap: IdMap, precise: bool) -> bool:
    """regsafe for raw programs' invariant mode: raw memory pointers are all alike (their
    accesses are checked at run time), other pointers compare their whole offset range."""
    if old.type is NOT_INIT:
        return True
    if old.type is not cur.type or old.null != cur.null:
        return False
    t = old.type
    if t is MEM and old.base.size is None:
        return cur.base.size is None
    if t in (MAP_VALUE, MAP_KEY, MEM, STACK) and old.off != cur.off and old.base == cur.base:
        shifted = cur.clone(-1)
        _add_bounds(shifted, cur, _const(cur.off - old.off, -1))
        bd.mark_unbounded32(shifted)
        bd.sync(shifted)
        o32 = old.clone(-1)
        bd.mark_unbounded32(o32)
        return bd.within(o32, shifted) and idmap.check(old.id, cur.id)
    return regsafe(old, cur, idmap, True)


def _widen_bound(old_lo: int, old_hi: int, lo: int, hi: int, low: int, high: int) -> tuple[int, int]:
    return (old_lo if lo >= old_lo else low), (old_hi if hi <= old_hi else high)


def _widen_reg(o: Reg, c: Reg) -> Reg | None:
    """``c`` widened against ``o`` (None: nothing to widen or not comparable)."""
    if o.type is not c.type or o.type is NOT_INIT or o.null != c.null:
        return None
    if o.type is not SCALAR and o.base != c.base:
        return None
    if o.off == c.off and o.bounds_key() == c.bounds_key():
        return None
    w = c.variant()
    if o.type is not SCALAR and o.off != c.off:          # a pointer that moved: the move is variable
        _add_bounds(w, c, _const(c.off - o.off, -1))
        w.off = o.off
        bd.mark_unbounded32(w)
        bd.sync(w)
        c = w
    w.umin, w.umax = _widen_bound(o.umin, o.umax, c.umin, c.umax, 0, M64)
    w.smin, w.smax = _widen_bound(o.smin, o.smax, c.smin, c.smax, bd.S64_MIN, bd.S64_MAX)
    w.u32min, w.u32max = _widen_bound(o.u32min, o.u32max, c.u32min, c.u32max, 0, M32)
    w.s32min, w.s32max = _widen_bound(o.s32min, o.s32max, c.s32min, c.s32max, bd.S32_MIN, bd.S32_MAX)
    diff = (o.tv ^ c.tv) | o.tm | c.tm
    if diff:
        low = diff & -diff
        mask = ~(low - 1) & M64
        w.tv, w.tm = c.tv & ~mask, mask
    w.id = 0
    bd.sync(w)
    if not bd.valid(w):
        bd.mark_unknown(w)
    return w


def slot_safe(o: Slot, c: Slot, idmap: IdMap, is_precise: bool, regsafe=regsafe) -> bool:
    """stacksafe for one slot the explored state read (the kernel's rules, with
    uninitialised bytes never readable)."""
    ot = o.types
    if ot == "????????":
        return True
    if SUB in ot:
        if c.types != ot or len(c.subs) != len(o.subs):
            return False
        for (ok, on, oreg), (ck, cn, creg) in zip(sorted(o.subs, key=_subkey), sorted(c.subs, key=_subkey)):
            if ok != ck or on != cn or not regsafe(oreg, creg, idmap, is_precise):
                return False
        return SPILL not in ot or regsafe(o.reg, c.reg, idmap, is_precise)
    if SPILL in ot:
        oreg = o.reg
        if ot == "rrrrrrrr" and oreg.type is SCALAR and SPILL not in c.types:
            # an explored 64-bit scalar spill vs plain data now: an unknown value
            if INVALID in c.types:
                return False
            if not is_precise:
                return True
            if c.types == "00000000":
                return (oreg.tm == 0 and oreg.tv == 0) or bd.within(oreg, _ZERO)
            return bd.is_unknown(oreg)
        return c.types == ot and c.reg is not None and regsafe(oreg, c.reg, idmap, is_precise)
    ct = c.types
    if SPILL in ct and c.reg.type is not SCALAR:
        return False
    for a, b in zip(ot, ct):
        if a == INVALID:
            continue
        if a == MISC:
            if b == INVALID:
                return False
            continue
        if a != b:                  # ZERO needs ZERO (or a spilled zero)
            if not (b == SPILL and c.reg is not None and c.reg.type is SCALAR and c.reg.tm == 0
                    and c.reg.tv == 0):
                return False
    return True


def _subkey(sub: tuple) -> tuple[int, int]:
    return sub[0], sub[1]


def _overwrite(old: Slot | None, k: int, size: int) -> tuple[list[str], Reg | None, tuple]:
    """A slot's bytes, register spill and sub-spills once [k, k + size) is overwritten:
    spills overlapping those bytes are gone (their other bytes become data)."""
    if old is None:
        return [INVALID] * 8, None, ()
    types = list(old.types)
    reg = old.reg
    if reg is not None and types[0] == SPILL:
        n = old.spill_size
        if k < n:
            reg = None
            for i in range(8):
                if types[i] == SPILL:
                    types[i] = MISC
    subs = []
    for sk, ssize, sr in old.subs:
        if sk < k + size and k < sk + ssize:
            for i in range(sk, sk + ssize):
                types[i] = MISC
        else:
            subs.append((sk, ssize, sr))
    return types, reg, tuple(subs)


def value_regno(value: Reg) -> int:
    return value.loc % 128 if value.loc >= 0 else 0


_const = const
_unknown = unknown
#: immediate operands (read-only, never stored: no location, never a parent)
_IMMEDIATES: dict[int, Reg] = {}


def _immediate(v: int) -> Reg:
    r = _IMMEDIATES.get(v)
    if r is None:
        if len(_IMMEDIATES) >= 4096:
            _IMMEDIATES.clear()
        r = _IMMEDIATES[v] = const(v, -1)
    return r


def _not_null(r: Reg) -> bool:
    return not r.null and r.type in (MAP_VALUE, MAP_KEY, MEM)


def _nonnull(r: Reg) -> Reg:
    v = r.variant()
    v.null = False
    return v


def _add_bounds(r: Reg, ptr: Reg, off: Reg) -> None:
    s1, s2 = ptr.smin + off.smin, ptr.smax + off.smax
    r.smin, r.smax = (s1, s2) if bd.S64_MIN <= s1 and s2 <= bd.S64_MAX else (bd.S64_MIN, bd.S64_MAX)
    u1, u2 = ptr.umin + off.umin, ptr.umax + off.umax
    r.umin, r.umax = (u1, u2) if u2 <= M64 else (0, M64)
    r.tv, r.tm = tn.add((ptr.tv, ptr.tm), (off.tv, off.tm))


def _sub_bounds(r: Reg, ptr: Reg, off: Reg) -> None:
    s1, s2 = ptr.smin - off.smax, ptr.smax - off.smin
    r.smin, r.smax = (s1, s2) if bd.S64_MIN <= s1 and s2 <= bd.S64_MAX else (bd.S64_MIN, bd.S64_MAX)
    if ptr.umin < off.umax:
        r.umin, r.umax = 0, M64
    else:
        r.umin, r.umax = ptr.umin - off.umax, ptr.umax - off.umin
    r.tv, r.tm = tn.sub((ptr.tv, ptr.tm), (off.tv, off.tm))


def _pkt_branch_taken(d: Reg, s: Reg, op: str) -> int:
    if s.type is PKT_END:
        pkt = d
    elif d.type is PKT_END:
        pkt = s
        op = bd.FLIP[op]
    else:
        return -1
    if pkt.rng >= 0:
        return -1
    if op in ("jle", "jgt"):
        if pkt.rng == BEYOND_PKT_END:
            return 1 if op == "jgt" else 0
    elif op in ("jlt", "jge"):
        if pkt.rng in (BEYOND_PKT_END, AT_PKT_END):
            return 1 if op == "jge" else 0
    return -1


def _range_text(r: Reg) -> str:
    if r.tm == 0:
        return f"R0={bd.s64(r.tv)}"
    if bd.is_unknown(r):
        return "unknown scalar value"
    return f"smin={r.smin} smax={r.smax}"


def _expected_text(kind: str) -> str:
    return {"const_map_ptr": "map_ptr", "ptr_to_ctx": "ctx", "ptr_to_func": "func", "ptr_to_stack": "fp",
            "ptr_to_spin_lock": "map_value", "ptr_to_const_str": "map_value"}.get(
        kind, "fp, pkt, pkt_meta, map_key, map_value, mem")


def _find_member(btf, type_id: int, struct_name: str, base: int) -> int | None:
    t = btf.resolve(type_id)
    if t.kind in ("struct", "union"):
        if t.name == struct_name:
            return base
        for name, mtype, bit_off, _ in t.members:
            found = _find_member(btf, mtype, struct_name, base + bit_off // 8)
            if found is not None:
                return found
    elif t.kind == "datasec":
        for var_type, off, _ in t.members:
            v = btf.get(var_type)
            found = _find_member(btf, v.type if v.kind == "var" else var_type, struct_name, base + off)
            if found is not None:
                return found
    return None


def state_text_frame(f: Frame) -> str:
    from .state import frame_text
    return frame_text(f)
