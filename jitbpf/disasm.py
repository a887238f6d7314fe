"""Disassembler: instruction slots back to text, the inverse of asm.

Two styles: ``asm`` (the bpf_conformance dialect; ``assemble(disassemble(x))``
gives back x bit for bit) and ``kernel`` (the syntax of the kernel verifier log
and llvm-objdump: ``r0 = *(u32 *)(r1 + 4)``), for reading only.
"""

from __future__ import annotations

from . import isa
from .isa import Insn, OpInfo

_KERNEL_ALU = {
    "add": "+=", "sub": "-=", "mul": "*=", "div": "/=", "sdiv": "s/=", "or": "|=", "and": "&=",
    "lsh": "<<=", "rsh": ">>=", "mod": "%=", "smod": "s%=", "xor": "^=", "mov": "=", "arsh": "s>>=",
}
_KERNEL_COND = {
    "jeq": "==", "jgt": ">", "jge": ">=", "jset": "&", "jne": "!=", "jsgt": "s>", "jsge": "s>=",
    "jlt": "<", "jle": "<=", "jslt": "s<", "jsle": "s<=",
}
_KERNEL_ATOMIC = {"add": "+=", "or": "|=", "and": "&=", "xor": "^="}


#: Register names in the assembler style (AX only appears in programs written by passes).
_R = [f"%r{n}" for n in range(11)] + ["%ax"]


def format_imm(value: int) -> str:
    """Small numbers in decimal, large ones as the unsigned hex of their 32-bit pattern."""
    return str(value) if -4096 < value < 4096 else f"0x{value & isa.MASK32:x}"


def _offset(off: int) -> str:
    return f"+{off}" if off >= 0 else str(off)


def _mem(reg: int, off: int) -> str:
    return f"[{_R[reg]}{_offset(off)}]" if off else f"[{_R[reg]}]"


def _kmem(reg: int, off: int) -> str:
    return f"r{reg} {'+' if off >= 0 else '-'} {abs(off)}"


def _target(insn: Insn, pc: int, labels: dict[int, str] | None) -> str:
    """Where a jump, local call or function pointer goes: its label, or else its +N offset."""
    target = isa.jump_target(insn, pc)
    if labels is not None:
        return labels[target]
    return _offset(target - (pc + 1))


def _asm(insn: Insn, spec: OpInfo, pc: int, labels: dict[int, str] | None) -> str:
    k = spec.kind
    if k == "alu":
        if spec.op == "neg":
            return f"{spec.name} {_R[insn.dst]}"
        src = f"{_R[insn.src]}" if insn.source == isa.SRC_X else format_imm(insn.imm)
        return f"{spec.name} {_R[insn.dst]}, {src}"
    if k == "end":
        return f"{spec.name} {_R[insn.dst]}"
    if k == "jcond":
        src = f"{_R[insn.src]}" if insn.source == isa.SRC_X else format_imm(insn.imm)
        return f"{spec.name} {_R[insn.dst]}, {src}, {_target(insn, pc, labels)}"
    if k == "ja":
        return f"{spec.name} {_target(insn, pc, labels)}"
    if k == "call":
        if insn.src == isa.CALL_LOCAL:
            return f"call local {_target(insn, pc, labels)}"
        if insn.src == isa.CALL_KFUNC:
            return f"call runtime {insn.imm}"
        return f"call {insn.imm}"
    if k == "callx":
        return f"call {_R[insn.dst]}"
    if k == "exit":
        return "exit"
    if k == "ldx":
        return f"{spec.name} {_R[insn.dst]}, {_mem(insn.src, insn.off)}"
    if k == "st":
        return f"{spec.name} {_mem(insn.dst, insn.off)}, {format_imm(insn.imm)}"
    if k in ("stx", "atomic"):
        return f"{spec.name} {_mem(insn.dst, insn.off)}, {_R[insn.src]}"
    if k == "lddw":
        if insn.src == isa.Pseudo.IMM64:
            return f"lddw {_R[insn.dst]}, 0x{insn.imm64:x}"
        name = isa.PSEUDO_NAMES[isa.Pseudo(insn.src)]
        if insn.src == isa.Pseudo.FUNC:
            return f"lddw {_R[insn.dst]}, func({_target(insn, pc, labels)})"
        high = f", {format_imm(insn.next_imm)}" if insn.next_imm else ""
        return f"lddw {_R[insn.dst]}, {name}({format_imm(insn.imm)}{high})"
    if k == "ldabs":
        return f"{spec.name} {format_imm(insn.imm)}"
    if k == "ldind":
        return f"{spec.name} {_R[insn.src]}, {format_imm(insn.imm)}"
    if k == "check":
        return f"{spec.name} {_mem(insn.dst, insn.off)}{', write' if insn.imm else ''}"
    if k == "tick":
        return "tick"
    raise AssertionError(k)


def _kernel(insn: Insn, spec: OpInfo, pc: int, labels: dict[int, str] | None) -> str:
    k = spec.kind
    w = "w" if spec.width == 32 and k in ("alu", "jcond") else "r"
    d = f"{w}{insn.dst}"
    src = f"{w}{insn.src}" if insn.source == isa.SRC_X else str(insn.imm)
    ctype = spec.width * 8               # memory kinds: the access size in bits
    if k == "alu":
        if spec.op == "neg":
            return f"{d} = -{d}"
        if spec.op == "movsx":
            return f"{d} = (s{spec.sx_bits}){w}{insn.src}"
        return f"{d} {_KERNEL_ALU[spec.op]} {src}"
    if k == "end":
        return f"r{insn.dst} = {spec.op}{spec.width} r{insn.dst}"
    if k == "jcond":
        return f"if {d} {_KERNEL_COND[spec.op]} {src} goto {_target(insn, pc, labels)}"
    if k == "ja":
        return ("goto " if spec.width == 64 else "gotol ") + _target(insn, pc, labels)
    if k == "call":
        if insn.src == isa.CALL_LOCAL:
            return f"call {'pc' if labels is None else ''}{_target(insn, pc, labels)}"
        return f"call {'kfunc ' if insn.src == isa.CALL_KFUNC else ''}{insn.imm}"
    if k == "callx":
        return f"callx r{insn.dst}"
    if k == "exit":
        return "exit"
    if k == "ldx":
        sign = "s" if spec.signed else "u"
        return f"r{insn.dst} = *({sign}{ctype} *)({_kmem(insn.src, insn.off)})"
    if k == "st":
        return f"*(u{ctype} *)({_kmem(insn.dst, insn.off)}) = {insn.imm}"
    if k == "stx":
        return f"*(u{ctype} *)({_kmem(insn.dst, insn.off)}) = r{insn.src}"
    if k == "atomic":
        v = "w" if spec.width == 4 else "r"
        addr = _kmem(insn.dst, insn.off)
        if spec.op in _KERNEL_ATOMIC:
            return f"lock *(u{ctype} *)({addr}) {_KERNEL_ATOMIC[spec.op]} {v}{insn.src}"
        if spec.op == "xchg":
            return f"{v}{insn.src} = xchg{'32' if v == 'w' else ''}_{ctype}({addr}, {v}{insn.src})"
        if spec.op == "cmpxchg":
            return f"{v}0 = cmpxchg{'32' if v == 'w' else ''}_{ctype}({addr}, {v}0, {v}{insn.src})"
        return f"{v}{insn.src} = atomic_{spec.op}((u{ctype} *)({addr}), {v}{insn.src})"
    if k == "lddw":
        if insn.src == isa.Pseudo.IMM64:
            return f"r{insn.dst} = 0x{insn.imm64:x} ll"
        name = isa.PSEUDO_NAMES[isa.Pseudo(insn.src)]
        if insn.src == isa.Pseudo.FUNC:
            return f"r{insn.dst} = {name}({_target(insn, pc, labels)}) ll"
        high = f", {insn.next_imm}" if insn.next_imm else ""
        return f"r{insn.dst} = {name}({insn.imm}{high}) ll"
    if k == "ldabs":
        return f"r0 = *(u{ctype} *)skb[{insn.imm}]"
    if k == "ldind":
        return f"r0 = *(u{ctype} *)skb[r{insn.src} + {insn.imm}]"
    if k in ("check", "tick"):
        return _asm(insn, spec, pc, labels)
    raise AssertionError(k)


def branch_labels(insns: list[Insn]) -> dict[int, str]:
    """A label name for every slot some instruction jumps or calls to."""
    targets = sorted({t for pc, insn in enumerate(insns)
                      if (t := isa.jump_target(insn, pc)) is not None and 0 <= t < len(insns)})
    return {t: f"L{t}" for t in targets}


def disassemble(insns: list[Insn], style: str = "asm", labels: bool = False) -> list[tuple[int, str]]:
    """(slot index, text) per instruction; lddw second slots are skipped. With
    ``labels`` a ``Lnn:`` line (index -1) precedes every branch target."""
    if style not in ("asm", "kernel"):
        raise ValueError(f"unknown disassembly style {style!r} (asm or kernel)")
    fmt = _asm if style == "asm" else _kernel
    names = branch_labels(insns) if labels else None
    out: list[tuple[int, str]] = []
    pc = 0
    while pc < len(insns):
        insn = insns[pc]
        if names and pc in names:
            out.append((-1, f"{names[pc]}:"))
        spec = isa.info(insn)
        out.append((pc, fmt(insn, spec, pc, names) if spec else f".byte-code 0x{insn.opcode:02x} (invalid)"))
        pc += 2 if insn.is_lddw else 1
    return out


def disassemble_text(insns: list[Insn], style: str = "asm", labels: bool = False) -> str:
    return "\n".join(text for _, text in disassemble(insns, style, labels)) + "\n"
