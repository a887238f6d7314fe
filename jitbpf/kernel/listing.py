"""What the kernel made of a program: its xlated instructions (after verification
and rewriting) and its JITed native code, disassembled with capstone."""

from __future__ import annotations

import functools
from dataclasses import replace

from .. import isa
from ..disasm import disassemble
from ..targets import HOST_ARCH
from . import syscall as sc


def normalize_xlated(code: bytes) -> list[isa.Insn]:
    """Decode a dump; the kernel keeps a local call's offset in ``off`` (and the
    subprogram number in ``imm``), and the subprogram of a function pointer in its
    second slot; put them back where our ISA has them."""
    insns = isa.decode(code)
    for pc, insn in enumerate(insns):
        if insn.opcode == isa.OP_CALL and insn.src == isa.CALL_LOCAL and insn.off:
            insns[pc] = replace(insn, imm=insn.off, off=0)
        elif insn.is_lddw and insn.src == isa.Pseudo.FUNC and pc + 1 < len(insns):
            insns[pc] = replace(insn, next_imm=0)
            insns[pc + 1] = replace(insns[pc + 1], imm=0)
    return insns


@functools.cache
def _kallsyms() -> tuple[int, dict[int, str]]:
    """(__bpf_call_base, address -> symbol) from /proc/kallsyms (zeros without root)."""
    base, names = 0, {}
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                addr, kind, name = line.split()[:3]
                if kind in "tTwW":
                    names.setdefault(int(addr, 16), name)
                if name == "__bpf_call_base":
                    base = int(addr, 16)
    except OSError:
        pass
    return base, names


def xlated_text(code: bytes, style: str = "kernel") -> str:
    insns = normalize_xlated(code)
    in_range = all(t is None or 0 <= t < len(insns)
                   for pc, i in enumerate(insns) for t in [isa.jump_target(i, pc)])
    base, names = _kallsyms() if any(i.opcode == isa.OP_CALL and i.src == isa.CALL_HELPER for i in insns) else (0, {})
    lines = []
    for pc, text in disassemble(insns, style, labels=in_range):
        insn = insns[pc] if pc >= 0 else None
        if insn is not None and insn.opcode == isa.OP_CALL and insn.src == isa.CALL_HELPER and base:
            name = names.get((base + insn.imm) & isa.MASK64)
            text += f"    ; {name}" if name else ""
        lines.append(text if pc < 0 else f"{pc:5}: {text}")
    return "\n".join(lines) + "\n"


def jited_text(info: sc.ProgInfo, arch: str = HOST_ARCH) -> str:
    """The native code of every function, at its kernel address."""
    import capstone
    cs = (capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64) if arch == "x86_64"
          else capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM))
    lens = info.jited_func_lens or [len(info.jited)]
    addrs = info.jited_ksyms or [0] * len(lens)
    out, start = [], 0
    for n, (addr, size) in enumerate(zip(addrs, lens)):
        out.append(f"function {n} at 0x{addr:x} ({size} bytes):")
        for i in cs.disasm(info.jited[start:start + size], addr):
            out.append(f"  {i.address:x}: {i.bytes.hex():<24} {i.mnemonic} {i.op_str}".rstrip())
        start += size
    return "\n".join(out) + "\n"


def listing(info: sc.ProgInfo, style: str = "kernel") -> str:
    return (f"xlated ({len(info.xlated) // 8} slots, {info.verified_insns} instructions verified):\n"
            + xlated_text(info.xlated, style)
            + f"jited ({len(info.jited)} bytes):\n" + jited_text(info))
