"""Classic programs from text and bytes: ``tcpdump -dd`` (a C array of
``{ code, jt, jf, k }``), ``tcpdump -ddd`` (the count, then ``code jt jf k`` per
line; the comma-separated one-line form of iptables' ``xt_bpf`` and ``bpf_asm``
is read too) and raw ``struct sock_filter`` bytes in host byte order.

Errors are BpfLoadError naming the line (text) or the length (bytes).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import BpfLoadError
from .isa import INSN_SIZE, MASK32, Insn, decode

_NUMBER = r"\s*(0[xX][0-9a-fA-F]+|\d+)\s*"
_C_INSN = re.compile(r"\{" + ",".join([_NUMBER] * 4) + r",?\s*\}")
_LIMITS = (("code", 0xFFFF), ("jt", 0xFF), ("jf", 0xFF), ("k", MASK32))


def _insn(values: list[str], where: str) -> Insn:
    numbers = [int(v, 0) for v in values]
    for (name, limit), value in zip(_LIMITS, numbers):
        if value > limit:
            raise BpfLoadError(f"{where}: {name} {value} does not fit (at most {limit})")
    return Insn(*numbers)


def parse_c_array(text: str) -> list[Insn]:
    """``tcpdump -dd`` output (or any C initialiser of struct sock_filter)."""
    insns = []
    for lineno, line in enumerate(text.splitlines(), 1):
        found = list(_C_INSN.finditer(line))
        rest = _C_INSN.sub("", line)
        if "{" in rest and not re.search(r"=\s*\{|^\s*\{\s*$", rest):
            raise BpfLoadError(f"line {lineno}: not a {{ code, jt, jf, k }} instruction: {line.strip()!r}")
        insns += [_insn(list(m.groups()), f"line {lineno}") for m in found]
    if not insns:
        raise BpfLoadError("no { code, jt, jf, k } instructions found")
    return insns


def parse_decimal(text: str) -> list[Insn]:
    """``tcpdump -ddd`` output: the instruction count, then four numbers per instruction."""
    lines = [line for line in re.split(r"[\n,]", text) if line.strip()]
    if not lines:
        raise BpfLoadError("empty program text")
    head = lines[0].split()
    if len(head) != 1 or not head[0].isdigit():
        raise BpfLoadError(f"line 1: expected the instruction count, got {lines[0].strip()!r}")
    count = int(head[0])
    insns = []
    for lineno, line in enumerate(lines[1:], 2):
        fields = line.split()
        if len(fields) != 4 or not all(f.isdigit() for f in fields):
            raise BpfLoadError(f"line {lineno}: expected 'code jt jf k' as decimal numbers, got {line.strip()!r}")
        insns.append(_insn(fields, f"line {lineno}"))
    if count != len(insns):
        raise BpfLoadError(f"line 1: the count says {count} instructions, {len(insns)} follow")
    return insns


def parse_text(text: str) -> list[Insn]:
    """Either text format, told apart by its braces."""
    return parse_c_array(text) if "{" in text else parse_decimal(text)


def parse_bytes(data: bytes) -> list[Insn]:
    """Raw ``struct sock_filter`` array."""
    if not data or len(data) % INSN_SIZE:
        raise BpfLoadError(f"{len(data)} bytes is not a whole number of 8-byte sock_filter instructions")
    return decode(data)


def load(path: str | Path) -> list[Insn]:
    """A program file in any of the three forms: text if it is ASCII without NUL bytes."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = None
    try:
        return parse_text(text) if text is not None and "\0" not in text else parse_bytes(data)
    except BpfLoadError as e:
        raise BpfLoadError(f"{path}: {e.message}") from None
