"""Program generators at three levels, every case reproducible from ``(seed, index)``.

- ``raw``: random bytes, half of the slots drawn from the opcode table with random
  fields (so some of them validate), the rest noise;
- ``valid``: structurally valid programs that stay inside the rules the kernel
  verifier enforces: registers written before they are read, memory accessed only
  inside the stack, the input memory and map values (after the lookup's null
  check), forward jumps and bounded loops (a counter with a constant bound),
  bpf-to-bpf calls, ``bpf_loop`` callbacks, helper calls with sane arguments,
  atomics, every ALU/JMP/JMP32 form of :data:`jitbpf.isa.OPCODES`, lddw, and maps
  of several types. The epilogue stores every scalar register and the stack into an
  output area at the end of the input memory, so a wrong value anywhere shows;
- ``mutant``: a valid program with a few semantic mutations of the slots the
  generator marked as safe to change (ALU operations and operands, conditions of
  forward jumps, access sizes), so the mutant stays valid.

Instruction forms come from :data:`jitbpf.isa.OPCODES` (one source of truth);
immediates are biased to the edges. No value that depends on where memory lives
(a pointer) ever reaches a register the epilogue stores: each engine runs on its own
runtime, at its own addresses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from .. import isa
from ..isa import Cls, Insn, Mode, Pseudo, Size

LEVELS = ("raw", "valid", "mutant")

EDGE32 = (0, 1, -1, 2, -2, 0x7FFFFFFF, -0x80000000, 0x7FFFFFFE, -0x7FFFFFFF, 31, 32, 63, 64,
          0x80, 0xFF, 0x7F, 0x8000, 0xFFFF, 0x7FFF, 0x10000, 3, 7, 8, 16)
EDGE64 = (0, 1, isa.MASK64, 1 << 63, (1 << 63) - 1, 0xFFFF_FFFF, 0x8000_0000, 0x7FFF_FFFF,
          0x1_0000_0000, 0xFFFF_FFFF_0000_0000, 0xFFFF_FFFF_8000_0000, 0x0000_0000_FFFF_FFFF,
          0x8000_0000_0000_0001, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, 2, 0xFF, 0x80)
SHIFTS = (0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 127, -1)
EDGE16 = (0, 1, -1, 0x7FFF, -0x8000, 2, -2, 8, -8)

#: Instruction forms of the opcode table by kind.
FORMS: dict[str, list[tuple[int, int | None]]] = {}
for _key, _spec in sorted(isa.OPCODES.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
    FORMS.setdefault(_spec.kind, []).append(_key)
ALU_FORMS = FORMS["alu"] + FORMS["end"]
JCOND_FORMS = FORMS["jcond"]
LDX_FORMS = FORMS["ldx"]
ST_FORMS = FORMS["st"]
STX_FORMS = FORMS["stx"]
ATOMIC_FORMS = FORMS["atomic"]

STACK = 64             # bytes of stack each generated function uses, below its r10
CALLEE_STACK = 32
MAX_FUNCS = 4


def make_insn(form: tuple[int, int | None], dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> Insn:
    """An instruction of ``form`` (opcode, discriminator) with the fields it uses."""
    opcode, disc = form
    spec = isa.OPCODES[form]
    f = {"dst": dst, "src": src, "off": off, "imm": imm}
    for name in ("dst", "src", "off", "imm"):
        if name not in spec.fields:
            f[name] = 0
    if disc is not None:
        f[isa.DISCRIMINATOR[opcode]] = disc
    return Insn(opcode, f["dst"], f["src"], f["off"], f["imm"])


@dataclass
class MapSpec:
    """A map of a case: created afresh (same contents) in every engine's runtime."""

    name: str
    type: str
    key_size: int
    value_size: int
    max_entries: int
    entries: list[tuple[bytes, bytes]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "key_size": self.key_size, "value_size": self.value_size,
                "max_entries": self.max_entries, "entries": [[k.hex(), v.hex()] for k, v in self.entries]}

    @classmethod
    def from_json(cls, d: dict) -> "MapSpec":
        return cls(d["name"], d["type"], d["key_size"], d["value_size"], d["max_entries"],
                   [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in d["entries"]])


@dataclass
class Case:
    """One generated program with its input memory and maps."""

    insns: list[Insn]
    mem: bytes | None
    maps: list[MapSpec] = field(default_factory=list)
    level: str = "valid"
    seed: int = 0
    index: int = 0
    #: slot -> what a mutation may change there ("alu", "jcond", "mem"); absent: leave it.
    mutable: dict[int, str] = field(default_factory=dict)
    #: slot -> registers holding scalars before it (operands a mutation may pick).
    scalars: dict[int, frozenset[int]] = field(default_factory=dict)
    kernel_safe: bool = True     # generated to pass the kernel verifier
    #: slots that write the stack before anything reads it: a minimiser keeps them, or
    #: reads of unwritten stack (leftovers, on the kernel) would stand in for the bug.
    keep: frozenset[int] = frozenset()

    @property
    def code(self) -> bytes:
        return isa.encode(self.insns)

    def to_json(self) -> dict:
        return {"level": self.level, "seed": self.seed, "index": self.index, "code": self.code.hex(),
                "mem": None if self.mem is None else self.mem.hex(), "maps": [m.to_json() for m in self.maps]}

    @classmethod
    def from_json(cls, d: dict) -> "Case":
        mem = d.get("mem")
        return cls(isa.decode(bytes.fromhex(d["code"])), None if mem is None else bytes.fromhex(mem),
                   [MapSpec.from_json(m) for m in d.get("maps", [])], d.get("level", "valid"),
                   d.get("seed", 0), d.get("index", 0))


def rng_for(seed: int, index: int, salt: str = "") -> random.Random:
    """The random stream of case ``index`` of campaign ``seed`` (string seeds hash stably)."""
    return random.Random(f"jitbpf-fuzz:{seed}:{index}:{salt}")


def generate(seed: int, index: int, level: str | None = None) -> Case:
    """Case ``index`` of campaign ``seed``; the level is drawn unless given."""
    rng = rng_for(seed, index)
    if level is None:
        level = rng.choices(LEVELS, (1, 6, 3))[0]
    if level == "raw":
        case = raw_case(rng)
    elif level == "valid":
        case = ProgramBuilder(rng).build()
    elif level == "mutant":
        case = mutate(ProgramBuilder(rng).build(), rng)
    else:
        raise ValueError(f"unknown level {level!r} (known: {', '.join(LEVELS)})")
    case.level, case.seed, case.index = level, seed, index
    return case


# --------------------------------------------------------------------------- numbers

def imm32(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.choice(EDGE32)
    if r < 0.8:
        return rng.randint(-64, 64)
    return rng.randint(-(1 << 31), (1 << 31) - 1)


def imm64(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.choice(EDGE64)
    if r < 0.7:
        return isa.to_s32(imm32(rng)) & isa.MASK64
    return rng.getrandbits(64)


def data_bytes(rng: random.Random, n: int) -> bytes:
    """Memory contents: edge values as words, with some random bytes."""
    out = bytearray()
    while len(out) < n:
        if rng.random() < 0.5:
            out += rng.choice(EDGE64).to_bytes(8, "little")
        else:
            out += rng.getrandbits(64).to_bytes(8, "little")
    return bytes(out[:n])


# --------------------------------------------------------------------------- level 1: raw bytes

def raw_insn(rng: random.Random) -> list[Insn]:
    """A random instruction of the table (fields random, registers in range), as slots."""
    form = rng.choice(sorted(isa.OPCODES, key=lambda k: (k[0], k[1] or 0)))
    spec = isa.OPCODES[form]
    insn = make_insn(form, rng.randint(0, 10), rng.randint(0, 10),
                     rng.choice(EDGE16) if rng.random() < 0.5 else rng.randint(-8, 8), imm32(rng))
    if spec.kind == "lddw":
        return isa.lddw(rng.randint(0, 9), imm64(rng))
    if spec.kind == "call":
        insn = replace(insn, src=isa.CALL_HELPER, imm=rng.choice((5, 7, 8, 1, 2, 3, 28, 113, 181, 1000)))
    return [insn]


def raw_case(rng: random.Random) -> Case:
    slots: list[Insn] = []
    for _ in range(rng.randint(1, 24)):
        if rng.random() < 0.8:
            slots += raw_insn(rng)
        else:
            slots.append(Insn(rng.getrandbits(8), rng.getrandbits(4), rng.getrandbits(4),
                              isa.sign_extend(rng.getrandbits(16), 16), isa.to_s32(rng.getrandbits(32))))
    if rng.random() < 0.9:
        slots.append(Insn(isa.OP_EXIT))
    mem = data_bytes(rng, rng.choice((0, 8, 16, 64))) if rng.random() < 0.9 else None
    return Case(slots, mem, level="raw", kernel_safe=False)


# --------------------------------------------------------------------------- level 2: valid programs

@dataclass(frozen=True)
class Ptr:
    """A register holding a pointer: accessible bytes [lo, hi) relative to it."""

    region: str
    lo: int
    hi: int


SCALAR = "scalar"


class Func:
    """One BPF function being generated: its slots and the pending jump/call fixups."""

    def __init__(self, name: str, stack: int, callback: bool = False):
        self.name = name
        self.stack = stack
        self.callback = callback
        self.slots: list[Insn] = []
        self.calls: list[tuple[int, str]] = []          # (slot, callee) for calls and lddw func
        self.mutable: dict[int, str] = {}
        self.scalars: dict[int, frozenset[int]] = {}
        self.keep: set[int] = set()


class ProgramBuilder:
    """Generates one valid program (see the module docstring)."""

    def __init__(self, rng: random.Random, kernel_safe: bool | None = None):
        self.rng = rng
        self.kernel_safe = rng.random() < 0.85 if kernel_safe is None else kernel_safe
        self.mem_in = rng.choice((8, 16, 32, 64, 64, 128, 256, 600))
        self.out = self.mem_in
        self.out_size = 8 * 10 + STACK
        self.maps = self._maps()
        self.funcs: list[Func] = []
        self.pending: list[tuple[Func, str, int]] = []    # functions still to generate
        self.budget = rng.randint(4, 32)                   # statements in main

    # ---------------------------------------------------------------- maps
    def _maps(self) -> list[MapSpec]:
        rng = self.rng
        out = []
        for i in range(rng.choice((0, 0, 1, 2, 3))):
            kind = rng.choice(("array", "hash", "percpu_array", "lru_hash", "percpu_hash", "queue", "stack"))
            vsize = rng.choice((4, 8, 12, 16, 24, 32, 64))
            if kind in ("queue", "stack"):
                spec = MapSpec(f"m{i}", kind, 0, vsize, rng.choice((1, 2, 4, 8)))
                spec.entries = [(b"", data_bytes(rng, vsize)) for _ in range(rng.randint(0, spec.max_entries))]
            elif kind in ("array", "percpu_array"):
                spec = MapSpec(f"m{i}", kind, 4, vsize, rng.choice((1, 2, 4, 8)))
                spec.entries = [(k.to_bytes(4, "little"), data_bytes(rng, vsize))
                                for k in range(spec.max_entries) if rng.random() < 0.7]
            else:
                ksize = rng.choice((4, 8))
                spec = MapSpec(f"m{i}", kind, ksize, vsize, rng.choice((4, 8, 16, 64)))
                keys = sorted({rng.randint(0, 5) for _ in range(rng.randint(0, 4))})
                spec.entries = [(k.to_bytes(ksize, "little"), data_bytes(rng, vsize))
                                for k in keys[:spec.max_entries]]
            out.append(spec)
        return out

    # ---------------------------------------------------------------- assembly
    def build(self) -> Case:
        main = self._function("main", STACK, callback=False, main=True)
        del main
        while self.pending:
            f, kind, nargs = self.pending.pop(0)
            self._body_of(f, kind, nargs)
        layout, slots, mutable, scalars, keep = {}, [], {}, {}, set()
        for f in self.funcs:
            layout[f.name] = len(slots)
            keep.update(len(slots) + pc for pc in f.keep)
            for pc, tag in f.mutable.items():
                mutable[len(slots) + pc] = tag
            for pc, regs in f.scalars.items():
                scalars[len(slots) + pc] = regs
            slots += f.slots
        for f in self.funcs:
            base = layout[f.name]
            for pc, callee in f.calls:
                at = base + pc
                slots[at] = replace(slots[at], imm=layout[callee] - at - 1)
        mem = data_bytes(self.rng, self.mem_in) + bytes(self.out_size)
        return Case(slots, mem, self.maps, "valid", mutable=mutable, scalars=scalars,
                    kernel_safe=self.kernel_safe, keep=frozenset(keep))

    def _function(self, name: str, stack: int, callback: bool, main: bool = False, nargs: int = 0) -> Func:
        f = Func(name, stack, callback)
        self.funcs.append(f)
        if main:
            self._body_of(f, "main", 0)
        else:
            self.pending.append((f, "callback" if callback else "callee", nargs))
        return f

    # ---------------------------------------------------------------- per-function state
    def _body_of(self, f: Func, kind: str, nargs: int) -> None:
        self.f = f
        self.regs: dict[int, object] = {10: Ptr("stack", -f.stack, 0)}
        self.fixed: dict[int, object] = {10: "fixed"}     # registers a statement may not change
        self.depth = 0
        self.loops = 0
        if kind == "main":
            self.regs[1] = Ptr("mem", 0, self.mem_in)
            self.regs[2] = SCALAR
            self.emit(Insn(Cls.ALU64 | 0xB0 | isa.SRC_X, 9, 1))              # r9 = mem
            self.regs[9] = Ptr("mem", 0, self.mem_in)
            self.fixed[9] = "fixed"
        else:
            for r, arg in zip(range(1, 6), f.args):
                self.regs[r] = arg
        self._init_stack()
        self._init_registers()
        budget = self.budget if kind == "main" else self.rng.randint(2, 10)
        self.block(budget)
        if kind == "main":
            self._epilogue()
        else:
            self._return(kind == "callback")

    def emit(self, insn: Insn | list[Insn], tag: str | None = None) -> int:
        pc = len(self.f.slots)
        slots = insn if isinstance(insn, list) else isa.to_slots([insn])
        if tag is not None:
            self.f.mutable[pc] = tag
        self.f.scalars[pc] = frozenset(self.scalar_regs())
        self.f.slots.extend(slots)
        return pc

    def scalar_regs(self) -> list[int]:
        return sorted(r for r, k in self.regs.items() if k == SCALAR)

    def writable(self, kind: object = SCALAR) -> list[int]:
        """Registers a statement may write a value of ``kind`` into."""
        out = []
        for r in range(10):
            fixed = self.fixed.get(r)
            if fixed is None or fixed == kind:
                out.append(r)
        return out

    def pick_scalar(self) -> int | None:
        regs = self.scalar_regs()
        return self.rng.choice(regs) if regs else None

    def _init_stack(self) -> None:
        """Every 8-byte slot of the frame's area written (a callee frame starts with
        whatever the engine left there, and the kernel refuses reads of unwritten slots)."""
        rng = self.rng
        for off in range(-self.f.stack, 0, 8):
            if rng.random() < 0.5:
                self.f.keep.add(self.emit(make_insn(self._st_form(Size.DW), 10, off=off, imm=imm32(rng))))
            else:
                self.f.keep.add(self.emit(isa.lddw(0, imm64(rng))))
                self.f.keep.add(self.emit(make_insn(self._stx_form(Size.DW), 10, 0, off)))

    def _init_registers(self) -> None:
        rng = self.rng
        for r in range(9):
            if r in self.regs or self.fixed.get(r):
                continue
            if rng.random() < 0.2:
                continue
            self._set_scalar(r)

    def _has_mem(self) -> bool:
        """Whether r9 is the input memory (in main; callees get it only as an argument)."""
        p = self.regs.get(9)
        return isinstance(p, Ptr) and p.region == "mem"

    def _set_scalar(self, r: int) -> None:
        rng = self.rng
        x = rng.random()
        if x < 0.4:
            self.emit(isa.lddw(r, imm64(rng)))
        elif x < 0.7 or not self._has_mem():
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), r, imm=imm32(rng)), "alu")
        else:
            size = rng.choice((1, 2, 4, 8))
            off = rng.randrange(0, self.mem_in - 8 + 1)      # room for a mutation to 8 bytes
            self.emit(make_insn(self._ldx_form(size), r, 9, off), "mem")
        self.regs[r] = SCALAR

    # ---------------------------------------------------------------- forms
    @staticmethod
    def _ldx_form(size: int, signed: bool = False) -> tuple[int, None]:
        sz = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}[size]
        return (Cls.LDX | (Mode.MEMSX if signed else Mode.MEM) | sz, None)

    @staticmethod
    def _st_form(size: int) -> tuple[int, None]:
        return (Cls.ST | Mode.MEM | size, None)

    @staticmethod
    def _stx_form(size: int) -> tuple[int, None]:
        return (Cls.STX | Mode.MEM | size, None)

    # ---------------------------------------------------------------- statements
    def block(self, n: int) -> None:
        for _ in range(n):
            self.statement()

    def statement(self) -> None:
        rng = self.rng
        choices = [(self.s_alu, 30), (self.s_load, 10), (self.s_store, 10), (self.s_atomic, 5),
                   (self.s_lddw, 3), (self.s_if, 8 if self.depth < 3 else 0),
                   (self.s_if_else, 4 if self.depth < 3 else 0),
                   (self.s_loop, 4 if self.loops < 2 and self.depth < 3 else 0),
                   (self.s_call, 3 if len(self.funcs) < MAX_FUNCS and self.f.name == "main" else 0),
                   (self.s_helper, 8), (self.s_map, 6 if self.maps else 0), (self.s_var_access, 3)]
        funcs, weights = zip(*choices)
        rng.choices(funcs, weights)[0]()

    def s_alu(self) -> None:
        rng = self.rng
        if not self.scalar_regs():
            self._set_scalar(rng.choice(self.writable()))
            return
        form = rng.choice(ALU_FORMS)
        spec = isa.OPCODES[form]
        reads_dst = spec.op not in ("mov", "movsx")
        dst_choices = self.scalar_regs() if reads_dst else self.writable()
        dst_choices = [r for r in dst_choices if r in self.writable()]
        if not dst_choices:
            return
        dst = rng.choice(dst_choices)
        src = self.pick_scalar() if "src" in spec.fields else 0
        imm = imm32(rng)
        if spec.op in ("lsh", "rsh", "arsh"):
            imm = rng.choice(SHIFTS)
            if self.kernel_safe:
                imm %= spec.width
        if spec.op in ("div", "mod", "sdiv", "smod") and self.kernel_safe and imm == 0:
            imm = rng.choice((1, -1, 3))
        self.emit(make_insn(form, dst, src, 0, imm), "alu")
        self.regs[dst] = SCALAR

    def _access(self, size: int) -> tuple[int, int] | None:
        """(base register, offset) of a ``size``-byte access inside some region; offsets
        leave room for an 8-byte access, so a mutation of the size stays inside."""
        rng = self.rng
        bases = [(r, p) for r, p in self.regs.items() if isinstance(p, Ptr) and p.hi - p.lo >= 8]
        if not bases:
            return None
        r, p = rng.choice(bases)
        off = rng.randrange(p.lo, p.hi - 8 + 1)
        if p.region == "stack" or rng.random() < 0.5:      # the kernel wants stack accesses aligned
            off -= (off - p.lo) % size
        return r, off

    def _mem_tag(self, base: int, off: int) -> str | None:
        """'mem' when any access size is fine at base+off (a mutation may change it)."""
        p = self.regs[base]
        return "mem" if p.region != "stack" or (off - p.lo) % 8 == 0 else None

    def s_load(self) -> None:
        rng = self.rng
        form = rng.choice(LDX_FORMS)
        spec = isa.OPCODES[form]
        where = self._access(spec.width)
        targets = self.writable()
        if where is None or not targets:
            return
        dst = rng.choice(targets)
        self.emit(make_insn(form, dst, where[0], where[1]), self._mem_tag(*where))
        self.regs[dst] = SCALAR

    def s_store(self) -> None:
        rng = self.rng
        if rng.random() < 0.5 or not self.scalar_regs():
            form = rng.choice(ST_FORMS)
            where = self._access(isa.OPCODES[form].width)
            if where is not None:
                self.emit(make_insn(form, where[0], 0, where[1], imm32(rng)), self._mem_tag(*where))
            return
        form = rng.choice(STX_FORMS)
        where = self._access(isa.OPCODES[form].width)
        if where is not None:
            self.emit(make_insn(form, where[0], self.pick_scalar(), where[1]), self._mem_tag(*where))

    def s_atomic(self) -> None:
        rng = self.rng
        form = rng.choice(ATOMIC_FORMS)
        spec = isa.OPCODES[form]
        where = self._access(spec.width)
        src = self.pick_scalar()
        if where is None or src is None:
            return
        base, off = where
        p = self.regs[base]
        off -= (off - p.lo) % spec.width        # aligned (regions start 8-aligned)
        if spec.op == "cmpxchg" and self.regs.get(0) != SCALAR:
            return
        writes_src = spec.op.startswith("fetch") or spec.op == "xchg"
        if writes_src and src not in self.writable():
            return
        if spec.op == "cmpxchg" and 0 not in self.writable():
            return
        self.emit(make_insn(form, base, src, off), None)
        if spec.op == "cmpxchg":
            self.regs[0] = SCALAR

    def s_lddw(self) -> None:
        targets = self.writable()
        if targets:
            r = self.rng.choice(targets)
            self.emit(isa.lddw(r, imm64(self.rng)))
            self.regs[r] = SCALAR

    def _condition(self) -> Insn | None:
        rng = self.rng
        dst = self.pick_scalar()
        if dst is None:
            return None
        form = rng.choice(JCOND_FORMS)
        src = self.pick_scalar() if "src" in isa.OPCODES[form].fields else 0
        return make_insn(form, dst, src, 0, imm32(rng))

    def _join(self, *states: dict) -> dict:
        """The register state after paths meet: what every path agrees on."""
        out = {}
        for r, k in states[0].items():
            if all(s.get(r) == k for s in states[1:]):
                out[r] = k
        return out

    def s_if(self, with_else: bool = False) -> None:
        """A forward conditional jump over a block (and, with an else, a ja or gotol over another)."""
        cond = self._condition()
        if cond is None:
            return
        at = self.emit(cond, "jcond")
        before = dict(self.regs)
        self.depth += 1
        self.block(self.rng.randint(1, 4 if with_else else 5))
        other = before
        if with_else:
            other = self.regs
            skip = self.emit(Insn(isa.OP_JA32 if self.rng.random() < 0.3 else isa.OP_JA))
            self._patch(at, len(self.f.slots))
            self.regs = dict(before)
            self.block(self.rng.randint(1, 4))
            self._patch(skip, len(self.f.slots))
        else:
            self._patch(at, len(self.f.slots))
        self.depth -= 1
        self.regs = self._join(other, self.regs)

    def s_if_else(self) -> None:
        self.s_if(with_else=True)

    def _patch(self, at: int, target: int) -> None:
        insn = self.f.slots[at]
        rel = target - at - 1
        self.f.slots[at] = replace(insn, imm=rel) if insn.opcode == isa.OP_JA32 else replace(insn, off=rel)

    def s_loop(self) -> None:
        rng = self.rng
        counters = [r for r in self.writable() if r != 0 and not isinstance(self.regs.get(r), Ptr)]
        if not counters:
            return
        c = rng.choice(counters)
        bound = rng.randint(1, 5)
        wide = rng.random() < 0.5
        self.emit(make_insn(((Cls.ALU64 if wide else Cls.ALU) | 0xB0 | isa.SRC_K, None), c, imm=0))
        self.regs[c] = SCALAR
        if c > 5 and rng.random() < 0.5:            # forget r0-r5, so the body may call
            for r in range(6):
                self.regs.pop(r, None)
        entry = dict(self.regs)
        saved_fixed = dict(self.fixed)
        self.fixed[c] = "fixed"
        for r, k in entry.items():              # kinds stay what they were at the loop head
            self.fixed.setdefault(r, "fixed" if isinstance(k, Ptr) else k)
        top = len(self.f.slots)
        self.loops += 1
        self.depth += 1
        self.block(rng.randint(1, 4))
        self.depth -= 1
        self.loops -= 1
        self.fixed = saved_fixed
        cls = Cls.ALU64 if wide else Cls.ALU
        self.emit(make_insn((cls | 0x00 | isa.SRC_K, None), c, imm=1))
        op = rng.choice((0xA0, 0x50)) if bound else 0xA0     # jlt / jne
        jcls = Cls.JMP if rng.random() < 0.5 else Cls.JMP32
        at = self.emit(make_insn((jcls | op | isa.SRC_K, None), c, 0, 0, bound))
        self._patch(at, top)
        self.regs = self._join(entry, self.regs)

    def s_var_access(self) -> None:
        """An access through a pointer plus a bounded variable offset (scalar & mask)."""
        rng = self.rng
        bases = [(r, p) for r, p in self.regs.items() if isinstance(p, Ptr) and p.lo == 0 and p.hi >= 16]
        idx = self.pick_scalar()
        tmp = [r for r in range(1, 10) if r not in self.fixed and self.regs.get(r) is None]   # will hold a pointer
        if not bases or idx is None or len(tmp) < 1:
            return
        base, p = rng.choice(bases)
        t = rng.choice(tmp)
        size = rng.choice((1, 2, 4, 8))
        mask = (1 << (max(8, p.hi - 8).bit_length() - 1)) - 1
        if p.region == "stack":
            mask &= ~(size - 1)                  # aligned, as the kernel wants on the stack
        self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), t, idx))
        self.emit(make_insn((Cls.ALU64 | 0x50 | isa.SRC_K, None), t, imm=mask))
        self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_X, None), t, base))
        if rng.random() < 0.6:
            targets = [r for r in self.writable() if r != t]
            dst = rng.choice(targets) if targets else None
            if dst is not None:
                self.emit(make_insn(self._ldx_form(size, rng.random() < 0.3 and size < 8), dst, t, 0))
                self.regs[dst] = SCALAR
        else:
            src = self.pick_scalar()
            self.emit(make_insn(self._stx_form({1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}[size]), t, src, 0))
        self.regs.pop(t, None)                   # a pointer: never stored by the epilogue

    # ---------------------------------------------------------------- calls
    def _clobber_call(self) -> None:
        for r in range(1, 6):
            self.regs.pop(r, None)
        self.regs[0] = SCALAR

    def _can_call(self) -> bool:
        """Calls write r0 and clobber r1-r5: not where a loop needs their kinds kept."""
        return all(r not in self.fixed for r in range(6))

    def _stack_arg(self, size: int) -> int | None:
        """An offset from r10 with ``size`` initialised bytes above it, or None."""
        if size > self.f.stack:
            return None
        return -((self.rng.randrange(size, self.f.stack + 1) + 7) & ~7)       # 8-aligned, as the kernel wants

    def s_call(self) -> None:
        """A bpf-to-bpf call with scalar or stack-pointer arguments."""
        rng = self.rng
        if not self._can_call():
            return
        nargs = rng.randint(0, 5)
        args = []
        for r in range(1, nargs + 1):
            if rng.random() < 0.3:
                off = self._stack_arg(8)
                self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), r, 10))
                self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), r, imm=off))
                args.append(Ptr("stack", 0, -off))
            else:
                self._set_scalar(r)
                args.append(SCALAR)
        callee = self._function(f"f{len(self.funcs)}", CALLEE_STACK, callback=False, nargs=nargs)
        callee.args = args
        at = self.emit(Insn(isa.OP_CALL, 0, isa.CALL_LOCAL))
        self.f.calls.append((at, callee.name))
        self._clobber_call()

    def _return(self, callback: bool) -> None:
        if self.regs.get(0) != SCALAR:
            self._set_scalar(0)
        if callback:
            self.emit(make_insn((Cls.ALU64 | 0x50 | isa.SRC_K, None), 0, imm=1))   # callbacks return 0 or 1
        self.emit(Insn(isa.OP_EXIT))

    def s_helper(self) -> None:
        rng = self.rng
        if not self._can_call():
            return
        kind = rng.choice(("ktime", "prandom", "cpu", "numa", "pid", "csum_diff", "csum_diff", "probe_read",
                           "probe_read", "probe_read_str", "loop", "loop", "jiffies"))
        getattr(self, "h_" + kind)()
        self._clobber_args()

    def _clobber_args(self) -> None:
        """r1-r5 after a helper statement (also one given up half way): unknown."""
        for r in range(1, 6):
            self.regs.pop(r, None)

    def _call_helper(self, helper_id: int, result: str = SCALAR) -> None:
        self.emit(Insn(isa.OP_CALL, 0, isa.CALL_HELPER, 0, helper_id))
        self._clobber_call()
        if result != SCALAR:
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), 0, imm=imm32(rng=self.rng)))

    def h_ktime(self) -> None:
        self._call_helper(self.rng.choice((5, 125)), "opaque")      # the time: overwritten

    def h_jiffies(self) -> None:
        self._call_helper(118, "opaque")

    def h_prandom(self) -> None:
        self._call_helper(7, SCALAR if not self.kernel_safe else "opaque")

    def h_cpu(self) -> None:
        self._call_helper(8)

    def h_numa(self) -> None:
        self._call_helper(42)

    def h_pid(self) -> None:
        self._call_helper(14, "opaque" if self.rng.choice((0, 1)) else SCALAR)

    def _mem_arg(self, reg: int, size: int, allow_null: bool = False) -> bool:
        """r<reg> = a pointer to ``size`` readable bytes (stack or input memory)."""
        rng = self.rng
        if allow_null and rng.random() < 0.1:
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), reg, imm=0))
            return size == 0
        choices = []
        if size <= self.f.stack:
            choices.append("stack")
        if self._has_mem() and size <= self.mem_in:
            choices.append("mem")
        if not choices:
            return False
        if rng.choice(choices) == "stack":
            off = self._stack_arg(max(size, 1))
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), reg, 10))
            self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), reg, imm=off))
        else:
            off = rng.randrange(0, self.mem_in - size + 1)
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), reg, 9))
            self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), reg, imm=off))
        return True

    def _size_arg(self, reg: int, size: int) -> None:
        self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), reg, imm=size))

    def h_csum_diff(self) -> None:
        rng = self.rng
        sizes = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 32, 64, 128, 256, 260, 300, 512)
        from_size, to_size = rng.choice(sizes), rng.choice(sizes)
        if not self._mem_arg(1, from_size, allow_null=from_size == 0):
            return
        self._size_arg(2, from_size)
        if not self._mem_arg(3, to_size, allow_null=to_size == 0):
            return
        self._size_arg(4, to_size)
        self.emit(isa.lddw(5, imm64(rng)) if rng.random() < 0.5 else
                  [make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), 5, imm=imm32(rng))])
        self._call_helper(28)

    def h_probe_read(self) -> None:
        """bpf_probe_read_kernel from the stack or memory into the stack (possibly overlapping)."""
        rng = self.rng
        size = rng.choice((0, 1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 24, 31, 32))
        if size > self.f.stack:
            return
        dst = self._stack_arg(max(size, 1))
        self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 1, 10))
        self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), 1, imm=dst))
        self._size_arg(2, size)
        if rng.random() < 0.6:                         # near the destination: overlaps
            src = max(-self.f.stack, min(-size, dst + rng.randint(-12, 12))) if size else dst
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 3, 10))
            self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), 3, imm=src))
        elif rng.random() < 0.8:
            if not self._mem_arg(3, size):
                return
        else:
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), 3, imm=rng.choice((0, 1, 4096))))
        self._call_helper(rng.choice((113, 113, 4)) if not self.kernel_safe else 113)

    def h_probe_read_str(self) -> None:
        rng = self.rng
        size = rng.choice((1, 2, 4, 8, 9, 16, 24))
        if size > self.f.stack:
            return
        dst = self._stack_arg(size)
        self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 1, 10))
        self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), 1, imm=dst))
        self._size_arg(2, size)
        if not self._mem_arg(3, size):
            return
        self._call_helper(115)

    def h_loop(self) -> None:
        """bpf_loop with a generated callback and the caller's stack as its context."""
        rng = self.rng
        if len(self.funcs) >= MAX_FUNCS or self.f.name != "main":
            return
        nr = rng.choice((0, 1, 2, 3, 5, (1 << 23) + 1, 0x1_0000_0002, -1))
        self.emit(isa.lddw(1, nr) if nr < 0 or nr > 0x7FFFFFFF else
                  [make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), 1, imm=nr)])
        cb = self._function(f"f{len(self.funcs)}", CALLEE_STACK, callback=True, nargs=2)
        at = self.emit(isa.to_slots([Insn(isa.OP_LDDW, 2, Pseudo.FUNC)]))
        self.f.calls.append((at, cb.name))
        ctx_size = 0
        if rng.random() < 0.8:
            ctx_size = rng.choice((8, 16, 32))
            off = self._stack_arg(ctx_size)
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 3, 10))
            self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), 3, imm=off))
            ctx_size = -off
        else:
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), 3, imm=0))
        self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), 4, imm=0 if rng.random() < 0.95 else 1))
        cb.args = [SCALAR, Ptr("stack", 0, ctx_size) if ctx_size else SCALAR]
        self._call_helper(181)

    # ---------------------------------------------------------------- maps
    def _key_on_stack(self, spec: MapSpec, need: int) -> int | None:
        """Write a key of spec.key_size at some r10 offset; returns the offset."""
        rng = self.rng
        off = self._stack_arg(max(need, 8))
        if off is None:
            return None
        key = rng.choice((0, 1, 2, 3, 4, 5, 0, 1, rng.randint(0, 1 << 31), -1))
        self.emit(make_insn(self._st_form(Size.DW if spec.key_size == 8 else Size.W), 10, off=off, imm=key))
        return off

    def s_map(self) -> None:
        rng = self.rng
        if not self._can_call():
            return
        index = rng.randrange(len(self.maps))
        spec = self.maps[index]
        queue = spec.type in ("queue", "stack")
        op = rng.choice(("push", "pop", "peek") if queue else ("lookup", "lookup", "lookup", "update", "delete"))
        handle = isa.to_slots([Insn(isa.OP_LDDW, 1, Pseudo.MAP_IDX, 0, index)])
        if op == "lookup":
            off = self._key_on_stack(spec, spec.key_size)
            if off is None:
                return
            self.emit(handle)
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 2, 10))
            self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), 2, imm=off))
            self._call_helper(1)
            self.regs.pop(0)                      # a pointer or NULL
            at = self.emit(make_insn((Cls.JMP | 0x10 | isa.SRC_K, None), 0, 0, 0, 0))     # jeq r0, 0
            before = dict(self.regs)
            holders = [r for r in (6, 7, 8) if r not in self.fixed]
            holder = rng.choice(holders) if holders and rng.random() < 0.5 else 0
            if holder:
                self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), holder, 0))
            self.regs[holder] = Ptr("value", 0, spec.value_size)
            self.depth += 1
            for _ in range(rng.randint(1, 4)):
                self._value_access(holder, spec.value_size)
            self.block(rng.randint(0, 2))
            self.depth -= 1
            self._patch(at, len(self.f.slots))
            self.regs = self._join(before, self.regs)
        elif op in ("update", "push"):
            key_off = self._key_on_stack(spec, spec.key_size) if spec.key_size else None
            if spec.key_size and key_off is None:
                return
            voff = self._stack_arg(spec.value_size)
            if voff is None:
                return
            self.emit(handle)
            if spec.key_size:
                self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 2, 10))
                self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), 2, imm=key_off))
                value_reg, flags_reg = 3, 4
            else:
                value_reg, flags_reg = 2, 3
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), value_reg, 10))
            self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), value_reg, imm=voff))
            flags = rng.choice((0, 0, 1, 2, 3, 4) if not queue else (0, 0, 2, 1))
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), flags_reg, imm=flags))
            self._call_helper(2 if not queue else 87)
        elif op == "delete":
            off = self._key_on_stack(spec, spec.key_size)
            if off is None:
                return
            self.emit(handle)
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 2, 10))
            self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), 2, imm=off))
            self._call_helper(3)
        else:
            voff = self._stack_arg(spec.value_size)
            if voff is None:
                return
            self.emit(handle)
            self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 2, 10))
            self.emit(make_insn((Cls.ALU64 | 0x00 | isa.SRC_K, None), 2, imm=voff))
            self._call_helper(88 if op == "pop" else 89)
        self._clobber_args()

    def _value_access(self, reg: int, size: int) -> None:
        """A load, store or atomic inside a map value (any size that fits)."""
        rng = self.rng
        fits = [n for n in (1, 2, 4, 8) if n <= size]
        n = rng.choice(fits)
        off = rng.randrange(0, size - n + 1)
        off -= off % n if rng.random() < 0.7 else 0
        sz = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}[n]
        x = rng.random()
        src = self.pick_scalar()
        if x < 0.4:
            targets = [r for r in self.writable() if r != reg]
            if targets:
                dst = rng.choice(targets)
                self.emit(make_insn(self._ldx_form(n, n < 8 and rng.random() < 0.3), dst, reg, off))
                self.regs[dst] = SCALAR
        elif x < 0.7 or src is None:
            self.emit(make_insn(self._st_form(sz), reg, 0, off, imm32(rng)))
        elif x < 0.85 or n < 4:
            self.emit(make_insn(self._stx_form(sz), reg, src, off))
        else:
            off -= off % n
            form = rng.choice([f for f in ATOMIC_FORMS if isa.OPCODES[f].width == n
                               and isa.OPCODES[f].op not in ("cmpxchg",)])
            op = isa.OPCODES[form].op
            if (op.startswith("fetch") or op == "xchg") and src not in self.writable():
                return
            self.emit(make_insn(form, reg, src, off))

    # ---------------------------------------------------------------- the end of main
    def _epilogue(self) -> None:
        """Every scalar register and the stack into the output area, then r0 = a scalar."""
        rng = self.rng
        for r in self.scalar_regs():
            if r <= 8:
                self.emit(make_insn(self._stx_form(Size.DW), 9, r, self.out + 8 * r))
        final = self.regs.get(0) == SCALAR
        keep = 0 if final else None
        tmp = next((r for r in range(1, 9) if r in self.writable()), None)
        for off in range(-self.f.stack, 0, 8):
            self.emit(make_insn(self._ldx_form(8), tmp, 10, off))
            self.emit(make_insn(self._stx_form(Size.DW), 9, tmp, self.out + 80 + self.f.stack + off))
        if keep is None:
            scalars = [r for r in self.scalar_regs() if r != tmp]
            if scalars and rng.random() < 0.7:
                self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_X, 0), 0, rng.choice(scalars)))
            else:
                self.emit(make_insn((Cls.ALU64 | 0xB0 | isa.SRC_K, None), 0, imm=imm32(rng)))
        self.emit(Insn(isa.OP_EXIT))


# --------------------------------------------------------------------------- level 3: mutations

def mutate(case: Case, rng: random.Random, count: int | None = None) -> Case:
    """A few semantic mutations of the slots ``case.mutable`` marks; the result stays valid."""
    insns = list(case.insns)
    spots = sorted(case.mutable)
    if not spots:
        return replace(case, level="mutant")
    for _ in range(count or rng.randint(1, 4)):
        pc = rng.choice(spots)
        tag = case.mutable[pc]
        insn = insns[pc]
        scalars = sorted(case.scalars.get(pc, ()))
        if tag == "alu" and not insn.is_lddw:
            insns[pc] = _mutate_alu(insn, scalars, rng, case.kernel_safe)
        elif tag == "jcond":
            form = rng.choice(JCOND_FORMS)
            spec = isa.OPCODES[form]
            src = rng.choice(scalars) if scalars and "src" in spec.fields else 0
            imm = imm32(rng) if rng.random() < 0.5 else insn.imm
            insns[pc] = make_insn(form, insn.dst, src, insn.off, imm)
        elif tag == "mem":
            spec = isa.info(insn)
            forms = [f for f in LDX_FORMS] if spec.kind == "ldx" else \
                [f for f in (ST_FORMS if spec.kind == "st" else STX_FORMS)]
            form = rng.choice(forms)
            insns[pc] = make_insn(form, insn.dst, insn.src, insn.off, imm32(rng) if spec.kind == "st" else 0)
    return replace(case, insns=insns, level="mutant")


def _mutate_alu(insn: Insn, scalars: list[int], rng: random.Random, kernel_safe: bool) -> Insn:
    """Another ALU form on the same destination, operands drawn from the scalars."""
    spec = isa.info(insn)
    form = rng.choice(ALU_FORMS)
    new = isa.OPCODES[form]
    reads_dst = new.op not in ("mov", "movsx")
    if reads_dst and insn.dst not in scalars:
        form = (Cls.ALU64 | 0xB0 | isa.SRC_K, None)
        new = isa.OPCODES[form]
    src = rng.choice(scalars) if scalars and "src" in new.fields else 0
    if "src" in new.fields and not scalars:
        return insn
    imm = imm32(rng) if rng.random() < 0.7 else insn.imm
    if new.op in ("lsh", "rsh", "arsh"):
        imm = rng.choice(SHIFTS)
        if kernel_safe:
            imm %= new.width
    if new.op in ("div", "mod", "sdiv", "smod") and imm == 0 and kernel_safe:
        imm = 7
    del spec
    return make_insn(form, insn.dst, src, 0, imm)

