"""The eBPF instruction set (RFC 9669, plus cpu v4 and callx) as data.

This module is the single source of truth for opcodes: the assembler, the
disassembler, the interpreter's dispatch, the validator and every backend read
the tables below. It imports nothing of ours.

An instruction is eight little-endian bytes::

    opcode:8  dst:4  src:4  off:16 (signed)  imm:32 (signed)

``lddw`` takes two slots; the second slot holds the upper 32 bits of the
constant in its imm field. A program is a list of :class:`Insn`, one per slot,
so that jump offsets index the list directly; the first slot of an ``lddw``
carries the second slot's imm as ``next_imm``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from .errors import BpfValidationError

MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
INSN_SIZE = 8
STACK_SIZE = 512          # bytes of stack per BPF frame
MAX_CALL_DEPTH = 8        # frames, including the program's own
FP = 10                   # the read-only frame pointer register
AX = 11                   # the passes' scratch register (the kernel's BPF_REG_AX): never in user bytecode
NUM_REGS = 12             # r0-r10 and AX


class Cls(IntEnum):
    LD = 0
    LDX = 1
    ST = 2
    STX = 3
    ALU = 4
    JMP = 5
    JMP32 = 6
    ALU64 = 7


class Mode(IntEnum):
    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


class Size(IntEnum):
    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18


SIZE_BYTES = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}
SIZE_SUFFIX = {Size.B: "b", Size.H: "h", Size.W: "w", Size.DW: "dw"}
SRC_K = 0x00
SRC_X = 0x08

#: ALU operation codes (opcode & 0xf0) -> name.
ALU_CODES = {
    0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or", 0x50: "and",
    0x60: "lsh", 0x70: "rsh", 0x80: "neg", 0x90: "mod", 0xA0: "xor", 0xB0: "mov",
    0xC0: "arsh", 0xD0: "end",
}
#: Jump operation codes (opcode & 0xf0) -> name; conditional ones compare dst with src/imm.
JMP_CODES = {
    0x00: "ja", 0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset", 0x50: "jne",
    0x60: "jsgt", 0x70: "jsge", 0x80: "call", 0x90: "exit", 0xA0: "jlt", 0xB0: "jle",
    0xC0: "jslt", 0xD0: "jsle",
}
CONDITIONS = ("jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt", "jsle")
SIGNED_CONDITIONS = frozenset({"jsgt", "jsge", "jslt", "jsle"})

#: Atomic operations, keyed by the imm field of a STX|ATOMIC instruction.
ATOMIC_FETCH = 0x01
ATOMIC_OPS = {
    0x00: "add", 0x40: "or", 0x50: "and", 0xA0: "xor",
    0x01: "fetch add", 0x41: "fetch or", 0x51: "fetch and", 0xA1: "fetch xor",
    0xE1: "xchg", 0xF1: "cmpxchg",
}

#: Pseudo sources of ``lddw`` (the src field) and their assembler spelling.
class Pseudo(IntEnum):
    IMM64 = 0           # a plain 64-bit constant
    MAP_FD = 1          # imm = map fd (the map's index for us)
    MAP_VALUE = 2       # imm = map fd, next_imm = byte offset into its value
    BTF_ID = 3          # imm = BTF id of a kernel variable, next_imm = BTF object fd
    FUNC = 4            # imm = instruction offset of a BPF function (a callback)
    MAP_IDX = 5         # imm = index into the program's map array
    MAP_IDX_VALUE = 6   # imm = map index, next_imm = byte offset


PSEUDO_NAMES = {
    Pseudo.MAP_FD: "map_fd", Pseudo.MAP_VALUE: "map_value", Pseudo.BTF_ID: "btf_id",
    Pseudo.FUNC: "func", Pseudo.MAP_IDX: "map_idx", Pseudo.MAP_IDX_VALUE: "map_idx_value",
}
#: Pseudo sources whose second slot's imm must be zero.
PSEUDO_NO_HIGH = frozenset({Pseudo.MAP_FD, Pseudo.FUNC, Pseudo.MAP_IDX})

#: Call flavours (the src field of JMP|CALL|K).
CALL_HELPER = 0
CALL_LOCAL = 1        # BPF_PSEUDO_CALL: imm is an instruction offset
CALL_KFUNC = 2        # BPF_PSEUDO_KFUNC_CALL: imm is a BTF id

#: Opcodes that are not built from the tables above by composition.
OP_LDDW = Cls.LD | Mode.IMM | Size.DW            # 0x18
OP_CALL = Cls.JMP | 0x80                         # 0x85
OP_CALLX = Cls.JMP | 0x80 | SRC_X                # 0x8d
OP_EXIT = Cls.JMP | 0x90                         # 0x95
OP_JA = Cls.JMP | 0x00                           # 0x05
OP_JA32 = Cls.JMP32 | 0x00                       # 0x06 (gotol: offset in imm)
#: Internal instructions, inserted by jitbpf.passes and never valid in user bytecode
#: (LD-class modes that eBPF leaves unused):
OP_CHECK = Cls.LD | 0xE0        # | size: [dst + off] must be accessible for a size-byte access
                                #   (imm = 1: for writing); bounds_check=True
OP_TICK = Cls.LD | 0xA0         # spends one unit of the run's budget (loop heads, function entries)


@dataclass(frozen=True, slots=True)
class Insn:
    """One 8-byte instruction slot (the first slot of an lddw also holds next_imm)."""

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0          # signed 16-bit
    imm: int = 0          # signed 32-bit
    next_imm: int = 0     # signed 32-bit: the second slot's imm, only for lddw

    @property
    def cls(self) -> Cls:
        return Cls(self.opcode & 0x07)

    @property
    def code(self) -> int:
        return self.opcode & 0xF0

    @property
    def source(self) -> int:
        return self.opcode & 0x08

    @property
    def mode(self) -> int:
        return self.opcode & 0xE0

    @property
    def size(self) -> int:
        return self.opcode & 0x18

    @property
    def is_lddw(self) -> bool:
        return self.opcode == OP_LDDW

    @property
    def imm64(self) -> int:
        """The unsigned 64-bit constant of an lddw."""
        return ((self.next_imm & MASK32) << 32) | (self.imm & MASK32)

    def encode(self) -> bytes:
        regs = (self.src << 4) | self.dst
        first = struct.pack("<BBhi", self.opcode, regs, self.off, self.imm)
        if self.is_lddw:
            return first + struct.pack("<BBhi", 0, 0, 0, self.next_imm)
        return first


ALU_OPCODES = {name: code for code, name in ALU_CODES.items()}


def alu(op: str, dst: int, src: int | None = None, imm: int = 0, width: int = 64) -> Insn:
    """``op dst, src`` (register form) or ``op dst, imm`` as one instruction."""
    cls = Cls.ALU64 if width == 64 else Cls.ALU
    if src is None:
        return Insn(cls | ALU_OPCODES[op] | SRC_K, dst, 0, 0, to_s32(imm))
    return Insn(cls | ALU_OPCODES[op] | SRC_X, dst, src)


def lddw(dst: int, value: int, src: int = Pseudo.IMM64) -> list[Insn]:
    """The two slots of ``lddw dst, value`` (value taken modulo 2**64)."""
    value &= MASK64
    return to_slots([Insn(OP_LDDW, dst, src, 0, to_s32(value & MASK32), to_s32(value >> 32))])


# --------------------------------------------------------------------------- numbers

def external_calls(insns: list[Insn]) -> list[Insn]:
    """The calls that leave the program: helpers (src 0) and kfuncs, not bpf-to-bpf calls."""
    return [i for i in insns if i.opcode == OP_CALL and i.src != CALL_LOCAL]


def to_s32(x: int) -> int:
    x &= MASK32
    return x - (1 << 32) if x & 0x8000_0000 else x


def to_s64(x: int) -> int:
    x &= MASK64
    return x - (1 << 64) if x >> 63 else x


def sign_extend(x: int, bits: int) -> int:
    """Interpret the low ``bits`` bits of x as a signed number."""
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


# --------------------------------------------------------------------------- decode / encode

def decode(code: bytes) -> list[Insn]:
    """Split bytecode into slots. Raises BpfValidationError on a ragged length or a cut lddw."""
    if len(code) % INSN_SIZE:
        raise BpfValidationError(f"program length {len(code)} is not a multiple of 8")
    raw = [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), INSN_SIZE)]
    insns: list[Insn] = []
    for i, (opcode, regs, off, imm) in enumerate(raw):
        next_imm = 0
        if opcode == OP_LDDW:
            if i + 1 >= len(raw):
                raise BpfValidationError("lddw is missing its second slot", pc=i)
            next_imm = raw[i + 1][3]
        insns.append(Insn(opcode, regs & 0x0F, regs >> 4, off, imm, next_imm))
    return insns


def encode(insns: list[Insn]) -> bytes:
    """Inverse of decode: every slot as stored (an lddw's second slot is its own Insn)."""
    out = bytearray()
    for insn in insns:
        out += struct.pack("<BBhi", insn.opcode, (insn.src << 4) | insn.dst, insn.off, insn.imm)
    return bytes(out)


def to_slots(program: list[Insn]) -> list[Insn]:
    """Expand a list where each lddw is one Insn (as a writer thinks of it) into slots."""
    slots: list[Insn] = []
    for insn in program:
        slots.append(insn)
        if insn.is_lddw:
            slots.append(Insn(0, 0, 0, 0, insn.next_imm))
    return slots


# --------------------------------------------------------------------------- the opcode table

@dataclass(frozen=True, slots=True)
class OpInfo:
    """What one opcode (with its discriminating field, if any) means.

    ``kind`` selects the semantics family; ``op`` the operation within it;
    ``width`` is the operand width in bits for ALU/JMP and the access size in
    bytes for memory instructions. ``fields`` lists the fields the instruction
    uses; every other field must be zero.
    """

    name: str             # mnemonic in the bpf_conformance assembler dialect
    kind: str             # alu, end, jcond, ja, call, callx, exit, ldx, st, stx, atomic, lddw, ldabs, ldind
    op: str
    width: int
    fields: frozenset[str]
    signed: bool = False  # movsx/ldsx/sdiv/smod and signed jump conditions
    sx_bits: int = 0      # movsx source width
    internal: bool = False  # only passes insert it (see OP_CHECK, OP_TICK)


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


class _TableBuilder:
    """Collects (opcode, discriminator) -> OpInfo and which field discriminates each opcode."""

    def __init__(self) -> None:
        self.ops: dict[tuple[int, int | None], OpInfo] = {}
        self.discriminator: dict[int, str | None] = {}

    def add(self, opcode: int, spec: OpInfo, by: str | None = None, value: int | None = None) -> None:
        assert self.discriminator.setdefault(opcode, by) == by, hex(opcode)
        assert (opcode, value) not in self.ops, hex(opcode)
        self.ops[(opcode, value)] = spec


def _build_table() -> _TableBuilder:
    t = _TableBuilder()
    for cls, width, suffix in ((Cls.ALU64, 64, ""), (Cls.ALU, 32, "32")):
        for code, op in ALU_CODES.items():
            if op == "end":
                continue
            for source in (SRC_K, SRC_X):
                opcode = cls | code | source
                operand = "src" if source == SRC_X else "imm"
                if op == "neg":
                    if source == SRC_K:
                        t.add(opcode, OpInfo(op + suffix, "alu", op, width, _f("dst")))
                elif op in ("div", "mod"):
                    t.add(opcode, OpInfo(op + suffix, "alu", op, width, _f("dst", operand)), "off", 0)
                    t.add(opcode, OpInfo("s" + op + suffix, "alu", "s" + op, width,
                                         _f("dst", operand, "off"), signed=True), "off", 1)
                elif op == "mov" and source == SRC_X:
                    t.add(opcode, OpInfo(op + suffix, "alu", op, width, _f("dst", "src")), "off", 0)
                    for bits in ((8, 16) if width == 32 else (8, 16, 32)):
                        t.add(opcode, OpInfo(f"movsx{bits}{width}", "alu", "movsx", width,
                                             _f("dst", "src", "off"), signed=True, sx_bits=bits),
                              "off", bits)
                else:
                    t.add(opcode, OpInfo(op + suffix, "alu", op, width, _f("dst", operand)))
    for bits in (16, 32, 64):
        t.add(Cls.ALU | 0xD0 | SRC_K, OpInfo(f"le{bits}", "end", "le", bits, _f("dst", "imm")), "imm", bits)
        t.add(Cls.ALU | 0xD0 | SRC_X, OpInfo(f"be{bits}", "end", "be", bits, _f("dst", "imm")), "imm", bits)
        t.add(Cls.ALU64 | 0xD0 | SRC_K, OpInfo(f"bswap{bits}", "end", "bswap", bits, _f("dst", "imm")),
              "imm", bits)

    for cls, width, suffix in ((Cls.JMP, 64, ""), (Cls.JMP32, 32, "32")):
        for code, op in JMP_CODES.items():
            if op in CONDITIONS:
                signed = op in SIGNED_CONDITIONS
                t.add(cls | code | SRC_K,
                      OpInfo(op + suffix, "jcond", op, width, _f("dst", "imm", "off"), signed=signed))
                t.add(cls | code | SRC_X,
                      OpInfo(op + suffix, "jcond", op, width, _f("dst", "src", "off"), signed=signed))
    t.add(OP_JA, OpInfo("ja", "ja", "ja", 64, _f("off")))
    t.add(OP_JA32, OpInfo("ja32", "ja", "ja", 32, _f("imm")))
    t.add(OP_CALL, OpInfo("call", "call", "call", 64, _f("src", "imm")))
    t.add(OP_CALLX, OpInfo("callx", "callx", "callx", 64, _f("dst")))
    t.add(OP_EXIT, OpInfo("exit", "exit", "exit", 64, _f()))

    for size, nbytes in SIZE_BYTES.items():
        sfx = SIZE_SUFFIX[size]
        t.add(Cls.LDX | Mode.MEM | size, OpInfo("ldx" + sfx, "ldx", "ldx", nbytes, _f("dst", "src", "off")))
        t.add(Cls.ST | Mode.MEM | size, OpInfo("st" + sfx, "st", "st", nbytes, _f("dst", "off", "imm")))
        t.add(Cls.STX | Mode.MEM | size, OpInfo("stx" + sfx, "stx", "stx", nbytes, _f("dst", "src", "off")))
        if size != Size.DW:
            t.add(Cls.LDX | Mode.MEMSX | size,
                  OpInfo("ldxs" + sfx, "ldx", "ldxs", nbytes, _f("dst", "src", "off"), signed=True))
            t.add(Cls.LD | Mode.ABS | size, OpInfo("ldabs" + sfx, "ldabs", "ldabs", nbytes, _f("imm")))
            t.add(Cls.LD | Mode.IND | size, OpInfo("ldind" + sfx, "ldind", "ldind", nbytes, _f("src", "imm")))
    for size, suffix in ((Size.W, "32"), (Size.DW, "")):
        for imm, op in ATOMIC_OPS.items():
            t.add(Cls.STX | Mode.ATOMIC | size,
                  OpInfo(f"lock {op}{suffix}", "atomic", op.replace("fetch ", "fetch_"), SIZE_BYTES[size],
                         _f("dst", "src", "off", "imm")), "imm", imm)
    t.add(OP_LDDW, OpInfo("lddw", "lddw", "lddw", 64, _f("dst", "src", "imm")))
    for size, nbytes in SIZE_BYTES.items():
        t.add(OP_CHECK | size, OpInfo("check" + SIZE_SUFFIX[size], "check", "check", nbytes, _f("dst", "off", "imm"),
                                      internal=True))
    t.add(OP_TICK, OpInfo("tick", "tick", "tick", 64, _f(), internal=True))
    return t


_TABLE = _build_table()
#: (opcode, discriminator value or None) -> OpInfo: every valid instruction form.
OPCODES: dict[tuple[int, int | None], OpInfo] = _TABLE.ops
#: opcode -> the field that selects the operation ("off", "imm") or None.
DISCRIMINATOR: dict[int, str | None] = _TABLE.discriminator

#: Kinds of instruction that write their dst register (so dst may not be r10).
_WRITES_DST = frozenset({"alu", "end", "ldx", "lddw"})
#: Atomic operations that write the old value to their src register (cmpxchg writes r0).
_WRITES_SRC = frozenset({"fetch_add", "fetch_or", "fetch_and", "fetch_xor", "xchg"})


def info(insn: Insn) -> OpInfo | None:
    """The OpInfo of an instruction, or None if the opcode (with its discriminator) is unknown."""
    disc_field = DISCRIMINATOR.get(insn.opcode, "missing")
    if disc_field == "missing":
        return None
    disc = None if disc_field is None else getattr(insn, disc_field)
    return OPCODES.get((insn.opcode, disc))


# --------------------------------------------------------------------------- validation

def jump_target(insn: Insn, pc: int) -> int | None:
    """The slot a jump or local call at ``pc`` goes to, or None for other instructions."""
    if insn.opcode == OP_JA32:
        return pc + 1 + insn.imm
    if insn.opcode == OP_CALL and insn.src == CALL_LOCAL:
        return pc + 1 + insn.imm
    if insn.is_lddw and insn.src == Pseudo.FUNC:
        return pc + 1 + insn.imm
    cls = insn.opcode & 0x07
    if cls in (Cls.JMP, Cls.JMP32) and insn.code not in (0x80, 0x90):
        return pc + 1 + insn.off
    return None


def check_insn(insn: Insn, pc: int, internal: bool = False) -> OpInfo:
    """Validate the fields of one instruction; returns its OpInfo. ``internal`` admits
    what only passes may write: the internal instructions and the AX register."""
    spec = info(insn)
    if spec is not None and spec.internal and not internal:
        spec = None
    if spec is None:
        disc = DISCRIMINATOR.get(insn.opcode, "missing")
        if disc in ("off", "imm"):
            forms = sorted((v, o.name) for (op, v), o in OPCODES.items() if op == insn.opcode)
            allowed = ", ".join(f"{v} ({name})" for v, name in forms)
            raise BpfValidationError(
                f"opcode 0x{insn.opcode:02x} has an invalid {disc} field {getattr(insn, disc)} "
                f"(allowed: {allowed})", pc=pc)
        raise BpfValidationError(f"unknown opcode 0x{insn.opcode:02x}", pc=pc)
    for field in ("dst", "src", "off", "imm"):
        if field not in spec.fields and getattr(insn, field) != 0:
            raise BpfValidationError(
                f"{spec.name} (opcode 0x{insn.opcode:02x}) has a non-zero unused {field} field "
                f"({getattr(insn, field)})", pc=pc)
    register_fields = ("dst",) if spec.kind in ("call", "lddw") else ("dst", "src")
    for reg in register_fields:
        if getattr(insn, reg) > (AX if internal else FP):
            raise BpfValidationError(f"{spec.name}: invalid {reg} register r{getattr(insn, reg)}", pc=pc)
    if insn.dst == FP and spec.kind in _WRITES_DST:
        raise BpfValidationError(f"{spec.name} writes to the read-only frame pointer r10", pc=pc)
    if insn.src == FP and spec.kind == "atomic" and spec.op in _WRITES_SRC:
        raise BpfValidationError(f"{spec.name} writes the old value to its src, the read-only frame pointer r10",
                                 pc=pc)
    if spec.kind == "end" and insn.imm not in (16, 32, 64):
        raise BpfValidationError(f"{spec.name}: byte-swap width must be 16, 32 or 64", pc=pc)
    if spec.kind == "call" and insn.src not in (CALL_HELPER, CALL_LOCAL, CALL_KFUNC):
        raise BpfValidationError(f"call: invalid src field {insn.src}", pc=pc)
    if spec.kind == "lddw":
        if insn.src not in tuple(Pseudo):
            raise BpfValidationError(f"lddw: invalid pseudo source {insn.src}", pc=pc)
        if insn.src in PSEUDO_NO_HIGH and insn.next_imm != 0:
            raise BpfValidationError(
                f"lddw {PSEUDO_NAMES[Pseudo(insn.src)]}: non-zero imm in the second slot", pc=pc)
    return spec


def validate(insns: list[Insn], internal: bool = False) -> list[OpInfo | None]:
    """Check every field of every slot and every jump. Returns the OpInfo per slot
    (None for the second slot of an lddw). Raises BpfValidationError naming the slot.
    ``internal``: a program written by passes (see check_insn)."""
    n = len(insns)
    if n == 0:
        raise BpfValidationError("empty program")
    specs: list[OpInfo | None] = [None] * n
    second_slot = [False] * n
    pc = 0
    while pc < n:
        insn = insns[pc]
        specs[pc] = check_insn(insn, pc, internal)
        if insn.is_lddw:
            if pc + 1 >= n:
                raise BpfValidationError("lddw is missing its second slot", pc=pc)
            tail = insns[pc + 1]
            if (tail.opcode, tail.dst, tail.src, tail.off) != (0, 0, 0, 0):
                raise BpfValidationError("second slot of lddw must have zero opcode, registers and offset",
                                         pc=pc + 1)
            if tail.imm != insn.next_imm:
                raise BpfValidationError("lddw next_imm disagrees with its second slot", pc=pc + 1)
            second_slot[pc + 1] = True
            pc += 2
        else:
            pc += 1
    for pc, insn in enumerate(insns):
        if second_slot[pc]:
            continue
        target = jump_target(insn, pc)
        if target is None:
            continue
        what = "call" if insn.opcode == OP_CALL else "function pointer" if insn.is_lddw else "jump"
        if not 0 <= target < n:
            raise BpfValidationError(f"{what} target {target} is outside the program (0..{n - 1})", pc=pc)
        if second_slot[target]:
            raise BpfValidationError(f"{what} target {target} is the middle of an lddw", pc=pc)
    last = specs[n - 1] if not second_slot[n - 1] else specs[n - 2]
    if last is None or last.kind not in ("exit", "ja"):
        raise BpfValidationError("the last instruction must be exit or an unconditional jump", pc=n - 1)
    return specs
