"""``tcpdump -d`` listings, and the ``-dd`` / ``-ddd`` forms, of classic programs.

Lines are libpcap's ``bpf_image`` to the byte (``(%03d) %-8s %s``, conditional
jumps with ``jt``/``jf`` as absolute instruction numbers), so a listing can be
diffed against tcpdump's. Two differences, both where libpcap prints nothing
useful: ``ldx #pktlen`` for LDX|LEN (libpcap 1.10: ``unimp 0x81``), and
ancillary names for every load width as libpcap does on Linux. Unknown opcodes
print as ``unimp 0x..`` like libpcap, so the disassembler never fails.
"""

from __future__ import annotations

from .isa import ANCILLARY, OPCODES, SKF_AD_OFF, Insn, Mode, to_s32


def operand(insn: Insn, pc: int) -> str:
    spec = OPCODES.get(insn.code)
    if spec is None:
        return f"0x{insn.code:x}"
    if spec.mode == Mode.ABS and insn.k >= SKF_AD_OFF and insn.k - SKF_AD_OFF in ANCILLARY:
        return f"[{ANCILLARY[insn.k - SKF_AD_OFF]}]"
    return spec.operand.format(k=insn.k, sk=to_s32(insn.k), x=f"0x{insn.k:x}",
                               target=to_s32(pc + 1 + insn.k))


def image(insn: Insn, pc: int) -> str:
    """One listing line, as libpcap's bpf_image(insn, pc)."""
    spec = OPCODES.get(insn.code)
    name = spec.name if spec is not None else "unimp"
    text = operand(insn, pc)
    if spec is not None and spec.kind == "jcond":
        return f"({pc:03d}) {name:<8} {text:<16} jt {pc + 1 + insn.jt}\tjf {pc + 1 + insn.jf}"
    return f"({pc:03d}) {name:<8} {text}"


def short(insn: Insn, pc: int) -> str:
    """The instruction without its number and padding, for error messages."""
    line = image(insn, pc).split(") ", 1)[1]
    return " ".join(line.split())


def listing(insns: list[Insn]) -> str:
    """``tcpdump -d``."""
    return "".join(image(insn, pc) + "\n" for pc, insn in enumerate(insns))


def c_array(insns: list[Insn]) -> str:
    """``tcpdump -dd``: a C array initialiser of struct sock_filter."""
    return "".join(f"{{ 0x{i.code:x}, {i.jt}, {i.jf}, 0x{i.k:08x} }},\n" for i in insns)


def decimal(insns: list[Insn]) -> str:
    """``tcpdump -ddd``: the count, then one ``code jt jf k`` line per instruction."""
    return f"{len(insns)}\n" + "".join(f"{i.code} {i.jt} {i.jf} {i.k}\n" for i in insns)
