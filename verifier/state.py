"""Abstract machine states: registers, stack slots, frames, references, checkpoints.

A :class:`Reg` is what the verifier knows about one register or spilled value: its
type (``SCALAR``, ``CTX``, ``MAP_VALUE`` ...), whether it may be NULL, a fixed offset,
the variable part as :mod:`verifier.bounds` fields, ids (null checks, packet ranges,
linked scalars), a reference id (ringbuf records) and a ``base`` naming the object
(the map, the stack frame, a memory size ...). Regs are never changed once stored:
an instruction makes a new one (``clone``), so states share them freely and forking
a path copies lists of references only.

Every Reg has a home location (``loc``: frame, register or stack slot), the number of
the write that put it there (``seq``; a refined variant keeps it), the number of its own
computation (``born``), and a scalar remembers the values it was computed from
(``parents``). That is how liveness and precision work without the kernel's
per-register parent pointers: a :class:`Checkpoint` is a snapshot taken at a prune
point, and reading a value marks its location as *read* in every checkpoint taken
since the value was created; a value whose exact range decides something (a pointer
offset, a size argument, a branch direction, the return value) is *precise*, which
marks it and, recursively, the values it came from in the checkpoints between their
creation and their use. Pruning compares only what the explored checkpoint read, and
scalars only where they were precise (the kernel's is_state_visited with read and
precision marks).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from . import bounds as bd

# register types (the kernel's names as its log prints them)
NOT_INIT = "not_init"
SCALAR = "scalar"
CTX = "ctx"
MAP_PTR = "map_ptr"
MAP_VALUE = "map_value"
MAP_KEY = "map_key"
STACK = "fp"
PKT = "pkt"
PKT_META = "pkt_meta"
PKT_END = "pkt_end"
MEM = "mem"               # base = MemInfo (size None: sized only at run time)
FUNC = "func"             # base = the callback's entry slot
PACKET_TYPES = frozenset({PKT, PKT_META})

_seq = itertools.count(1)


def next_seq() -> int:
    """A fresh creation number (values and checkpoints are ordered by it)."""
    return next(_seq)


@dataclass(frozen=True)
class MemInfo:
    """What a PTR_TO_MEM points to: ``size`` bytes (None: known at run time only)."""

    kind: str               # "raw" (uBPF memory), "ringbuf", "btf" (kfunc struct), "mem" (helper)
    size: int | None
    rdonly: bool = False
    name: str = ""          # BTF struct name for kfunc memory

    def __str__(self) -> str:
        return {"ringbuf": "ringbuf_mem", "raw": "mem", "btf": f"ptr_{self.name or 'mem'}"}.get(
            self.kind, "rdonly_mem" if self.rdonly else "mem")


class Reg:
    """One abstract value (see the module docstring); treat as immutable once stored."""

    __slots__ = ("type", "null", "off", "umin", "umax", "smin", "smax", "u32min", "u32max", "s32min",
                 "s32max", "tv", "tm", "id", "addc", "ref", "base", "rng", "seq", "born", "loc", "parents", "pdone")

    def clone(self, loc: int) -> "Reg":
        """A copy (for a new home ``loc``), with this value as its parent if it is a scalar."""
        r = Reg.__new__(Reg)
        r.type, r.null, r.off = self.type, self.null, self.off
        r.umin, r.umax, r.smin, r.smax = self.umin, self.umax, self.smin, self.smax
        r.u32min, r.u32max, r.s32min, r.s32max = self.u32min, self.u32max, self.s32min, self.s32max
        r.tv, r.tm = self.tv, self.tm
        r.id, r.addc, r.ref, r.base, r.rng = self.id, self.addc, self.ref, self.base, self.rng
        r.seq = r.born = next(_seq)
        r.loc = loc
        r.parents = (self,) if self.type is SCALAR else ()
        r.pdone = False
        return r

    def variant(self, extra_parents: tuple = ()) -> "Reg":
        """The same location's value, refined (a branch, a new id): same ``seq`` and ``loc``,
        so reads and precision of the variant reach the checkpoints that hold the original."""
        r = self.clone(self.loc)
        r.seq = self.seq               # born (when it was computed) stays the clone's
        r.parents = self.parents + extra_parents
        return r

    # -- queries
    @property
    def is_const(self) -> bool:
        return self.tm == 0

    @property
    def is_pointer(self) -> bool:
        return self.type is not SCALAR and self.type is not NOT_INIT

    def is_null_const(self) -> bool:
        return self.type is SCALAR and self.tm == 0 and self.tv == 0

    def type_name(self) -> str:
        name = str(self.base) if self.type is MEM else self.type
        return name + "_or_null" if self.null else name

    def bounds_key(self) -> tuple:
        return (self.umin, self.umax, self.smin, self.smax, self.u32min, self.u32max, self.s32min,
                self.s32max, self.tv, self.tm)

    def exact_key(self) -> tuple:
        """Everything that makes two values equal (ids compared separately)."""
        return (self.type, self.null, self.off, self.bounds_key(), self.base, self.rng, self.addc)

    def __repr__(self) -> str:
        return f"<Reg {describe(self)}>"


def new(type_: str, loc: int, *, base: Any = None, off: int = 0, null: bool = False, id: int = 0,
        ref: int = 0, rng: int = 0, parents: tuple = ()) -> Reg:
    """A value of ``type_`` with a known-zero variable part (pointers, or the scalar 0)."""
    r = Reg.__new__(Reg)
    r.type, r.null, r.off = type_, null, off
    r.umin = r.umax = r.smin = r.smax = r.u32min = r.u32max = r.s32min = r.s32max = 0
    r.tv = r.tm = 0
    r.id, r.addc, r.ref, r.base, r.rng = id, False, ref, base, rng
    r.seq = r.born = next(_seq)
    r.loc = loc
    r.parents = parents
    r.pdone = False
    return r


def const(v: int, loc: int, parents: tuple = ()) -> Reg:
    """The scalar ``v`` (``new`` then ``bd.mark_known``, in one step: the commonest value)."""
    r = Reg.__new__(Reg)
    r.type, r.null, r.off = SCALAR, False, 0
    v &= bd.M64
    r.umin = r.umax = r.tv = v
    r.tm = 0
    r.smin = r.smax = v - (1 << 64) if v >> 63 else v
    lo = v & bd.M32
    r.u32min = r.u32max = lo
    r.s32min = r.s32max = lo - (1 << 32) if lo >> 31 else lo
    r.id, r.addc, r.ref, r.base, r.rng = 0, False, 0, None, 0
    r.seq = r.born = next(_seq)
    r.loc = loc
    r.parents = parents
    r.pdone = False
    return r


def unknown(loc: int, parents: tuple = ()) -> Reg:
    """A wholly unknown scalar (``new`` then ``bd.mark_unknown``)."""
    r = Reg.__new__(Reg)
    r.type, r.null, r.off = SCALAR, False, 0
    r.umin, r.umax, r.smin, r.smax = 0, bd.M64, bd.S64_MIN, bd.S64_MAX
    r.u32min, r.u32max, r.s32min, r.s32max = 0, bd.M32, bd.S32_MIN, bd.S32_MAX
    r.tv, r.tm = 0, bd.M64
    r.id, r.addc, r.ref, r.base, r.rng = 0, False, 0, None, 0
    r.seq = r.born = next(_seq)
    r.loc = loc
    r.parents = parents
    r.pdone = False
    return r


def scalar_range(lo: int, hi: int, loc: int) -> Reg:
    r = new(SCALAR, loc)
    bd.set_urange(r, lo, hi)
    return r


NOT_INIT_REG = new(NOT_INIT, -1)


# ----------------------------------------------------------------------------- locations

def reg_loc(frameno: int, regno: int) -> int:
    return frameno * 128 + regno


def slot_loc(frameno: int, spi: int) -> int:
    return frameno * 128 + 16 + spi


def loc_text(loc: int) -> str:
    frame, idx = divmod(loc, 128)
    where = f"R{idx}" if idx < 16 else f"fp-{8 * (idx - 16 + 1)}"
    return where if not frame else f"frame{frame}.{where}"


# ----------------------------------------------------------------------------- stack

INVALID, MISC, ZERO, SPILL, SUB = "?", "m", "0", "r", "s"


class Slot:
    """An 8-byte stack slot: the kind of each byte (lowest address first), the spilled
    value when ``types`` starts with ``SPILL`` bytes (the kernel's register spill), the
    narrower scalars stored inside it at other naturally aligned offsets (``subs``:
    ``(byte, size, value)``, their bytes marked ``SUB``; the kernel tracks only spills at
    the slot's start), and (like a Reg) the ``seq`` of the write that started its life at
    ``loc`` (a partial write keeps the old ``seq``)."""

    __slots__ = ("types", "reg", "seq", "loc", "subs")

    def __init__(self, types: str, reg: Reg | None = None, seq: int = 0, loc: int = -1, subs: tuple = ()):
        self.types = types
        self.reg = reg
        self.seq = seq
        self.loc = loc
        self.subs = subs

    def with_reg(self, reg: Reg | None) -> "Slot":
        return Slot(self.types, reg, self.seq, self.loc, self.subs)

    @property
    def is_spill(self) -> bool:
        return self.types[0] == SPILL

    @property
    def spill_size(self) -> int:
        n = 0
        while n < 8 and self.types[n] == SPILL:
            n += 1
        return n

    def text(self) -> str:
        if self.types == SPILL * 8 and self.reg is not None:
            return describe(self.reg)
        return self.types[::-1]

    def __repr__(self) -> str:
        return f"<Slot {self.text()}>"


EMPTY_SLOT = Slot(INVALID * 8)


# ----------------------------------------------------------------------------- frames and states

class Frame:
    """One BPF function activation: r0-r10 and its 512-byte stack."""

    __slots__ = ("regs", "stack", "frameno", "entry", "callsite", "callback", "depth")

    def __init__(self, frameno: int, entry: int, callsite: int = -1, callback: Any = None):
        self.regs: list[Reg] = [NOT_INIT_REG] * 11
        self.stack: dict[int, Slot] = {}
        self.frameno = frameno
        self.entry = entry            # first slot of the function
        self.callsite = callsite      # the call instruction in the caller (-1 for the main frame)
        self.callback = callback      # Callback info when a helper (bpf_loop ...) calls this frame
        self.depth = 0                # deepest stack byte used so far (bytes below r10)

    def copy(self) -> "Frame":
        f = Frame.__new__(Frame)
        f.regs = self.regs.copy()
        f.stack = self.stack.copy()
        f.frameno, f.entry, f.callsite, f.callback, f.depth = (self.frameno, self.entry, self.callsite,
                                                               self.callback, self.depth)
        return f


@dataclass(frozen=True)
class Callback:
    """A frame a helper calls back: where to resume, what it must return."""

    helper: str
    callsite: int
    ret_range: tuple[int, int] = (0, 1)
    iterates: bool = True          # bpf_loop / for_each: the callback may run again


@dataclass
class Lock:
    """A held bpf_spin_lock: the map value (map object and id) and the lock offset."""

    map: Any
    id: int
    off: int
    pc: int


class State:
    """The abstract machine on one path."""

    __slots__ = ("frames", "parent", "refs", "lock", "pc", "ids", "branch_depth", "callback_depth")

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.parent: Checkpoint | None = None
        self.refs: dict[int, tuple[str, int]] = {}     # reference id -> (kind, acquiring pc)
        self.lock: Lock | None = None
        self.pc = 0
        self.ids: list[int] = [0]                       # shared id counter (one per verification)
        self.branch_depth = 0
        self.callback_depth = 0

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    @property
    def curframe(self) -> int:
        return len(self.frames) - 1

    def copy(self) -> "State":
        s = State.__new__(State)
        s.frames = [f.copy() for f in self.frames]
        s.parent = self.parent
        s.refs = dict(self.refs)
        s.lock = self.lock
        s.pc = self.pc
        s.ids = self.ids
        s.branch_depth = self.branch_depth
        s.callback_depth = self.callback_depth
        return s

    def new_id(self) -> int:
        self.ids[0] += 1
        return self.ids[0]

    def all_regs(self):
        """(frame, location, value) of every register and spilled value."""
        for f in self.frames:
            for i, r in enumerate(f.regs):
                yield f, i, r
            for spi, slot in f.stack.items():
                if slot.reg is not None:
                    yield f, 16 + spi, slot.reg


class Checkpoint:
    """A state remembered at a prune point, with the marks its exploration left."""

    __slots__ = ("frames", "refs", "lock", "pc", "seq", "parent", "branches", "read", "precise", "hash",
                 "callback_depth", "hits", "misses", "done", "checks", "quick")

    def __init__(self, state: State, pc: int):
        self.frames = [f.copy() for f in state.frames]
        self.refs = dict(state.refs)
        self.lock = state.lock
        self.pc = pc
        self.seq = next(_seq)
        self.parent = state.parent
        self.branches = 1
        self.read = 0                  # bit per location: read in the explored subtree
        self.precise = 0               # bit per location: its exact value mattered
        self.hash: int | None = None
        self.callback_depth = state.callback_depth
        self.hits = self.misses = 0
        self.done = False
        self.checks = None             # what pruning compares, once the exploration is complete
        self.quick = None              # (frame, register, value): its first check, a precise constant


# ----------------------------------------------------------------------------- equality

def exact_hash(frames: list[Frame], refs: dict, lock) -> int:
    """A hash of part of what an exact comparison compares (the registers and the stack
    layout; equal states have equal hashes), for the infinite-loop check."""
    parts = [len(refs), lock is not None]
    for f in frames:
        # (a NOT_INIT register's fields are all zero: no special case needed)
        parts.append((f.callsite, *[(r.type, r.off, r.tv, r.tm, r.umin, r.umax) for r in f.regs],
                      frozenset([(spi, s.types) for spi, s in f.stack.items()])))
    return hash(tuple(parts))


class IdMap:
    """A consistent renaming of ids between an old and a current state (check_ids)."""

    __slots__ = ("old_to_cur", "cur_to_old", "scalars", "tmp")

    def __init__(self) -> None:
        self.old_to_cur: dict[int, int] = {}
        self.cur_to_old: dict[int, int] = {}
        self.scalars: dict[int, int] = {}        # linked scalar ids, old -> cur
        self.tmp = 1 << 62

    def check(self, old: int, cur: int) -> bool:
        if bool(old) != bool(cur):
            return False
        if not old:
            return True
        mapped = self.old_to_cur.get(old)
        if mapped is not None:
            return mapped == cur
        if cur in self.cur_to_old:
            return False
        self.old_to_cur[old] = cur
        self.cur_to_old[cur] = old
        return True

    def check_scalar(self, old: int, cur: int) -> bool:
        """Scalar ids: values linked in the old state must be linked in the current one
        (old -> cur is a function); the current state may link more, being then only more
        precise, its values among the old state's (Linux asks for a one-to-one renaming,
        which never prunes a loop that links a fresh id each time round). An unlinked
        current value stands for a fresh id of its own."""
        if not old:
            return True
        if not cur:
            self.tmp += 1
            cur = self.tmp
        return self.scalars.setdefault(old, cur) == cur


def regs_exact(old: Reg, cur: Reg, idmap: IdMap) -> bool:
    if old.type is NOT_INIT or cur.type is NOT_INIT:
        return old.type is cur.type
    return (old.exact_key() == cur.exact_key() and idmap.check(old.id, cur.id)
            and idmap.check(old.ref, cur.ref))


def regsafe(old: Reg, cur: Reg, idmap: IdMap, precise: bool) -> bool:
    """Whether every path that was safe from ``old`` is safe from ``cur`` (for a location
    the explored state read); ``precise``: the old scalar's exact range mattered."""
    if old.type is NOT_INIT:
        return True
    if old.type is not cur.type or old.null != cur.null:
        return False
    t = old.type
    if t is SCALAR:
        if not precise:
            return True
        return bd.within(old, cur) and idmap.check_scalar(old.id, cur.id) and old.addc == cur.addc \
            and (not old.addc or old.off == cur.off)
    if t is MAP_VALUE or t is MAP_KEY or t is MEM:
        return (old.base is cur.base and old.off == cur.off and bd.within(old, cur)
                and idmap.check(old.id, cur.id) and idmap.check(old.ref, cur.ref))
    if t is PKT or t is PKT_META:
        # a packet pointer is safe if the old one was checked no further and is based the same way
        return (old.off == cur.off and old.rng <= cur.rng and bd.within(old, cur)
                and idmap.check(old.id, cur.id))
    if t is STACK or t is CTX or t is FUNC or t is MAP_PTR or t is PKT_END:
        return old.exact_key() == cur.exact_key() and idmap.check(old.id, cur.id)
    return regs_exact(old, cur, idmap)


# ----------------------------------------------------------------------------- text

def describe(r: Reg) -> str:
    """The kernel-like log form of a value: ``scalar(umax=255)``, ``map_value(off=4,ks=4,vs=8)``..."""
    t = r.type
    if t is NOT_INIT:
        return "?"
    if t is SCALAR:
        if r.tm == 0:
            return str(bd.s64(r.tv))
        inner = bd.text(r)
        extra = f"id={r.id}" + (f"+{r.off}" if r.addc else "") if r.id else ""
        return f"scalar({','.join(x for x in (extra, inner) if x)})"
    parts = []
    if r.id:
        parts.append(f"id={r.id}")
    if r.ref:
        parts.append(f"ref_obj_id={r.ref}")
    if r.off:
        parts.append(f"off={r.off}")
    if t in PACKET_TYPES:
        parts.append(f"r={r.rng}")
    if t is MAP_VALUE or t is MAP_PTR or t is MAP_KEY:
        m = r.base
        parts.append(f"ks={m.key_size},vs={m.value_size}")
    if t is MEM and r.base.size is not None:
        parts.append(f"sz={r.base.size}")
    if r.tm != 0 or r.tv != 0:
        parts.append(bd.text(r))
    return f"{r.type_name()}({','.join(parts)})"


def frame_text(f: Frame, live_regs: int = 0x7FF) -> str:
    items = []
    for i, r in enumerate(f.regs):
        if r.type is not NOT_INIT and live_regs >> i & 1:
            items.append(f"R{i}={describe(r)}")
    for spi in sorted(f.stack):
        slot = f.stack[spi]
        if slot.types != INVALID * 8:
            items.append(f"fp-{8 * (spi + 1)}={slot.text()}")
    return " ".join(items)


def state_text(state: State) -> str:
    out = []
    for f in state.frames:
        prefix = f"frame{f.frameno}: " if len(state.frames) > 1 else ""
        out.append(prefix + frame_text(f))
    return "; ".join(out)


def is_scalar_unknown(r: Reg) -> bool:
    return r.type is SCALAR and bd.is_unknown(r)


