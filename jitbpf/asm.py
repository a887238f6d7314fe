"""Assembler for the bpf_conformance dialect, driven by the opcode table in isa.

Syntax, one instruction or ``label:`` per line, ``#`` starts a comment::

    mov32 %r0, 1              add %r1, %r2          movsx1664 %r1, %r2    neg %r3
    le16 %r0   be64 %r0   bswap32 %r0 (alias swap32)
    ldxw %r0, [%r1+4]         ldxsb %r0, [%r10-1]   stdw [%r10-8], 7      stxb [%r1], %r2
    lock add [%r10-8], %r1    lock fetch or32 [%r1+4], %r2   lock xchg / cmpxchg
    lddw %r0, 0x1122334455667788      lddw %r1, map_value(3, 16)    lddw %r2, func(label)
    ldabsw 12                 ldindh %r2, 14
    ja label   ja32 +5   jeq %r1, 3, +2   jsgt32 %r1, %r2, label
    call 5   call local label   call runtime 77 (kfunc)   call %r2 (callx)   exit

Numbers: decimal must fit the field as a signed number; hex may also use the
unsigned range of the field (``0xffffffff`` is the imm -1, ``2147483648`` is an
error). Jump targets are ``+N``/``-N`` slot offsets or labels; an undefined label
``exit`` means the program's final ``exit`` instruction, as in the conformance suite.
"""

from __future__ import annotations

import re
from dataclasses import replace

from . import isa
from .errors import BpfAsmError
from .isa import Insn

_MEM_OPERAND = re.compile(r"^\[\s*(%?r\d+)\s*(?:([+-])\s*(\w+)\s*)?\]$")
_NAME = r"[A-Za-z_.$][\w.$]*"
_LABEL = re.compile(rf"^({_NAME})\s*:\s*(.*)$")
_PSEUDO_OPERAND = re.compile(r"^(\w+)\s*\(\s*([^,()]+?)\s*(?:,\s*([^,()]+?)\s*)?\)$")
_PSEUDO_BY_NAME = {v: k for k, v in isa.PSEUDO_NAMES.items()}
_ATOMIC_BY_NAME = {v: k for k, v in isa.ATOMIC_OPS.items()}
_BYTESWAP_ALIASES = {"swap16": "bswap16", "swap32": "bswap32", "swap64": "bswap64"}

# Mnemonic -> (opcode, discriminator value), inverted from the opcode table for the
# register/immediate forms; memory, jump and call forms are parsed by shape below.
_ALU_FORMS: dict[str, dict[str, tuple[int, int | None]]] = {}
for (_opcode, _disc), _spec in isa.OPCODES.items():
    if _spec.kind in ("alu", "end", "jcond") and not _spec.internal:
        form = "x" if _opcode & isa.SRC_X and _spec.kind != "end" else "k"
        _ALU_FORMS.setdefault(_spec.name, {})[form] = (_opcode, _disc)
        if _spec.kind == "alu" and _spec.width == 64 and _spec.op != "movsx":
            _ALU_FORMS.setdefault(_spec.name + "64", {})[form] = (_opcode, _disc)
del _opcode, _disc, _spec


def parse_int(text: str, bits: int, what: str = "immediate") -> int:
    """Parse a decimal or hex number that must fit a ``bits``-wide field.

    Returns the value as a signed ``bits``-bit number (hex may use the unsigned range).
    """
    t = text.strip()
    neg = t.startswith("-")
    body = t[1:] if neg or t.startswith("+") else t
    try:
        if body.lower().startswith("0x"):
            value, limit = int(body, 16), 1 << bits
        else:
            if not body.isdigit():
                raise ValueError
            value, limit = int(body, 10), 1 << (bits - 1)
    except ValueError:
        raise BpfAsmError(f"invalid {what} '{text}'") from None
    if neg:
        if value > 1 << (bits - 1):
            raise BpfAsmError(f"{what} {text} does not fit in {bits} bits")
        return -value
    if value >= limit:
        raise BpfAsmError(f"{what} {text} does not fit in {bits} bits")
    return isa.sign_extend(value, bits)


def parse_register(text: str) -> int:
    m = re.fullmatch(r"%?r(\d+)", text.strip())
    if not m or int(m.group(1)) > isa.FP:
        raise BpfAsmError(f"Invalid register '{text.strip()}'")
    return int(m.group(1))


def _is_register(text: str) -> bool:
    return bool(re.fullmatch(r"%r\d+|r\d+", text.strip()))


def parse_mem(text: str) -> tuple[int, int]:
    """``[%rN+off]`` -> (register, offset)."""
    m = _MEM_OPERAND.match(text.strip())
    if not m:
        raise BpfAsmError(f"invalid memory operand '{text.strip()}' (expected [%rN+off])")
    reg = parse_register(m.group(1))
    off = 0
    if m.group(3) is not None:
        off = parse_int(m.group(2) + m.group(3), 16, "offset")
    return reg, off


def _split_operands(text: str) -> list[str]:
    """Comma-separated operands; commas inside (...) or [...] do not split."""
    if not text.strip():
        return []
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


class _Assembler:
    def __init__(self) -> None:
        self.program: list[Insn] = []      # one Insn per instruction (lddw = one)
        self.slot_of: list[int] = []       # slot index of each instruction
        self.fixups: list[tuple[int, str, str, int]] = []   # (insn index, field, label, line)
        self.labels: dict[str, int] = {}   # label -> slot index
        self.slots = 0

    def emit(self, insn: Insn) -> None:
        self.program.append(insn)
        self.slot_of.append(self.slots)
        self.slots += 2 if insn.is_lddw else 1

    def target(self, text: str, field: str, bits: int, lineno: int) -> int:
        text = text.strip()
        if text[:1] in "+-" and text[1:2].isdigit():
            return parse_int(text, bits, "jump offset")
        if not re.fullmatch(_NAME, text):
            raise BpfAsmError(f"invalid jump target '{text}'")
        self.fixups.append((len(self.program), field, text, lineno))
        return 0

    def resolve(self) -> list[Insn]:
        if "exit" not in self.labels and self.program and self.program[-1].opcode == isa.OP_EXIT:
            self.labels["exit"] = self.slot_of[-1]     # the dialect's implicit label: the final exit
        for index, field, label, lineno in self.fixups:
            if label not in self.labels:
                raise BpfAsmError(f"undefined label '{label}'", line=str(lineno))
            offset = self.labels[label] - (self.slot_of[index] + 1)
            if field == "off" and not -0x8000 <= offset < 0x8000:
                raise BpfAsmError(f"jump to '{label}' is out of 16-bit range", line=str(lineno))
            self.program[index] = replace(self.program[index], **{field: offset})
        return isa.to_slots(self.program)

    # ---------------------------------------------------------------- one line
    def line(self, text: str, lineno: int) -> None:
        m = _LABEL.match(text)
        if m:
            label = m.group(1)
            if label in self.labels:
                raise BpfAsmError(f"duplicate label '{label}'")
            self.labels[label] = self.slots
            if m.group(2).strip():
                self.line(m.group(2), lineno)
            return
        mnemonic, _, rest = text.strip().partition(" ")
        mnemonic = mnemonic.lower()
        if mnemonic == "lock":
            return self.lock(rest)
        if mnemonic == "call":
            return self.call(rest, lineno)
        operands = _split_operands(rest)
        handler = _SHAPES.get(mnemonic)
        if handler is not None:
            return handler(self, mnemonic, operands, lineno)
        mnemonic = _BYTESWAP_ALIASES.get(mnemonic, mnemonic)
        if mnemonic in _ALU_FORMS:
            return self.alu(mnemonic, operands, lineno)
        raise BpfAsmError(f"unknown mnemonic '{mnemonic}'")

    @staticmethod
    def _count(mnemonic: str, operands: list[str], n: int) -> None:
        if len(operands) != n:
            raise BpfAsmError(f"{mnemonic} takes {n} operand{'s' if n != 1 else ''}, got {len(operands)}")

    def alu(self, mnemonic: str, operands: list[str], lineno: int) -> None:
        forms = _ALU_FORMS[mnemonic]
        spec = isa.OPCODES[next(iter(forms.values()))]
        if spec.kind == "jcond":
            self._count(mnemonic, operands, 3)
            dst = parse_register(operands[0])
            off = self.target(operands[2], "off", 16, lineno)
            if _is_register(operands[1]):
                opcode, _ = forms["x"]
                return self.emit(Insn(opcode, dst, parse_register(operands[1]), off))
            opcode, _ = forms["k"]
            return self.emit(Insn(opcode, dst, 0, off, parse_int(operands[1], 32)))
        if spec.kind == "end" or spec.op == "neg":
            self._count(mnemonic, operands, 1)
            opcode, disc = forms["k"]
            return self.emit(Insn(opcode, parse_register(operands[0]), imm=disc or 0))
        self._count(mnemonic, operands, 2)
        dst = parse_register(operands[0])
        if _is_register(operands[1]) and "x" in forms:
            opcode, disc = forms["x"]
            return self.emit(Insn(opcode, dst, parse_register(operands[1]), disc or 0))
        if "k" not in forms:
            raise BpfAsmError(f"{mnemonic} takes a register source")
        opcode, disc = forms["k"]
        return self.emit(Insn(opcode, dst, 0, disc or 0, parse_int(operands[1], 32)))

    def memory(self, mnemonic: str, operands: list[str], lineno: int) -> None:
        self._count(mnemonic, operands, 2)
        kind, opcode = _MEMORY_FORMS[mnemonic]
        if kind == "ldx":
            src, off = parse_mem(operands[1])
            return self.emit(Insn(opcode, parse_register(operands[0]), src, off))
        dst, off = parse_mem(operands[0])
        if kind == "st":
            return self.emit(Insn(opcode, dst, 0, off, parse_int(operands[1], 32)))
        return self.emit(Insn(opcode, dst, parse_register(operands[1]), off))

    def lock(self, rest: str) -> None:
        head, _, tail = rest.partition("[")
        words = head.split()
        operands = [o.strip() for o in ("[" + tail).split(",")] if tail else []
        if not words or len(operands) != 2 or len(words) > 2:
            raise BpfAsmError("Invalid number of operands for lock")
        fetch = words[0] == "fetch"
        if fetch != (len(words) == 2):
            raise BpfAsmError(f"invalid atomic operation '{head.strip()}'")
        op = words[-1]
        size = isa.Size.W if op.endswith("32") else isa.Size.DW
        op = op[:-2] if op.endswith("32") else op.removesuffix("64")
        name = ("fetch " if fetch else "") + op
        if name not in _ATOMIC_BY_NAME:
            raise BpfAsmError(f"invalid atomic operation '{head.strip()}'")
        dst, off = parse_mem(operands[0])
        self.emit(Insn(isa.Cls.STX | isa.Mode.ATOMIC | size, dst, parse_register(operands[1]), off,
                       _ATOMIC_BY_NAME[name]))

    def call(self, rest: str, lineno: int) -> None:
        words = rest.split()
        if len(words) == 1 and _is_register(words[0]):
            return self.emit(Insn(isa.OP_CALLX, parse_register(words[0])))
        if len(words) == 1:
            return self.emit(Insn(isa.OP_CALL, 0, isa.CALL_HELPER, 0, parse_int(words[0], 32, "helper id")))
        if len(words) == 2 and words[0] == "local":
            return self.emit(Insn(isa.OP_CALL, 0, isa.CALL_LOCAL, 0, self.target(words[1], "imm", 32, lineno)))
        if len(words) == 2 and words[0] in ("helper", "runtime", "kfunc"):
            src = isa.CALL_HELPER if words[0] == "helper" else isa.CALL_KFUNC
            return self.emit(Insn(isa.OP_CALL, 0, src, 0, parse_int(words[1], 32, "call id")))
        raise BpfAsmError("call takes N, local TARGET, runtime N or a register")

    def lddw(self, mnemonic: str, operands: list[str], lineno: int) -> None:
        self._count(mnemonic, operands, 2)
        dst = parse_register(operands[0])
        m = _PSEUDO_OPERAND.match(operands[1]) if "(" in operands[1] else None
        if m is None:
            value = parse_int(operands[1], 64, "64-bit immediate")
            return self.emit(isa.lddw(dst, value)[0])
        kind = _PSEUDO_BY_NAME.get(m.group(1))
        if kind is None:
            raise BpfAsmError(f"unknown lddw pseudo source '{m.group(1)}'")
        if kind == isa.Pseudo.FUNC:
            if m.group(3) is not None:
                raise BpfAsmError("func() takes one target")
            imm = self.target(m.group(2), "imm", 32, lineno)
            return self.emit(Insn(isa.OP_LDDW, dst, kind, 0, imm, 0))
        high = parse_int(m.group(3), 32) if m.group(3) is not None else 0
        self.emit(Insn(isa.OP_LDDW, dst, kind, 0, parse_int(m.group(2), 32), high))

    def packet(self, mnemonic: str, operands: list[str], lineno: int) -> None:
        kind, opcode = _MEMORY_FORMS[mnemonic]
        if kind == "ldabs":
            self._count(mnemonic, operands, 1)
            return self.emit(Insn(opcode, imm=parse_int(operands[0], 32)))
        self._count(mnemonic, operands, 2)
        self.emit(Insn(opcode, 0, parse_register(operands[0]), 0, parse_int(operands[1], 32)))

    def jump_always(self, mnemonic: str, operands: list[str], lineno: int) -> None:
        self._count(mnemonic, operands, 1)
        if mnemonic == "ja":
            return self.emit(Insn(isa.OP_JA, off=self.target(operands[0], "off", 16, lineno)))
        self.emit(Insn(isa.OP_JA32, imm=self.target(operands[0], "imm", 32, lineno)))

    def exit(self, mnemonic: str, operands: list[str], lineno: int) -> None:
        self._count(mnemonic, operands, 0)
        self.emit(Insn(isa.OP_EXIT))


# Mnemonic -> (kind, opcode) of the memory and packet-access forms, from the opcode table.
_MEMORY_FORMS: dict[str, tuple[str, int]] = {
    spec.name: (spec.kind, opcode) for (opcode, _), spec in isa.OPCODES.items()
    if spec.kind in ("ldx", "st", "stx", "ldabs", "ldind")}

_SHAPES = {name: _Assembler.packet if kind in ("ldabs", "ldind") else _Assembler.memory
           for name, (kind, _) in _MEMORY_FORMS.items()}
_SHAPES.update({"lddw": _Assembler.lddw, "ja": _Assembler.jump_always, "ja32": _Assembler.jump_always,
                "exit": _Assembler.exit})


def assemble(text: str) -> list[isa.Insn]:
    """Assemble program text into instruction slots. Raises BpfAsmError with the line number."""
    asm = _Assembler()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            asm.line(line, lineno)
        except BpfAsmError as e:
            if e.line is None:
                raise BpfAsmError(e.message, line=str(lineno)) from None
            raise
    return asm.resolve()


def assemble_bytes(text: str) -> bytes:
    return isa.encode(assemble(text))
