"""The kernel's printf subset for bpf_trace_printk, bpf_trace_vprintk and bpf_snprintf.

Like ``bpf_bprintf_prepare``: ``%%``, ``%c``, ``%s``, ``%d %i %u %x %X`` with
``l``/``ll`` (no length = 32 bits, as the kernel's printf reads an int), the
flags ``0 + - space`` and a width; ``%p``/``%px``/``%pK`` print the address as 16
hex digits, ``%pks``/``%pus`` a string, ``%pI4 %pi4 %pI6 %pi6`` an IP address read
through the pointer. Anything else (precision, ``%n``, too many arguments) is
rejected with :class:`FormatError`, which the helpers turn into ``-EINVAL``.
Text is bytes, shown as latin-1 so that every byte survives.
"""

from __future__ import annotations

import re

from ..errors import BpfRuntimeError

_SPEC = re.compile(rb"%([0+\- ]*)([1-9][0-9]*)?(p[xK]|pks|pus|p[iI][46]|p|ll|l|)([diuxXsc%]?)")
MAX_STRING = 1024


class FormatError(Exception):
    pass


def _pointer_arg(kind: str, value: int, memory) -> str:
    if kind in ("pks", "pus"):
        return _string(value, memory)
    if kind[1:2] in ("i", "I"):
        size = 4 if kind.endswith("4") else 16
        try:
            raw = memory.read(value, size)
        except BpfRuntimeError:
            return "(efault)"
        if size == 4:
            return ".".join((f"{b:03d}" if kind[1:2] == "i" else str(b)) for b in raw)
        groups = [raw[i:i + 2].hex() for i in range(0, 16, 2)]
        return "".join(groups) if kind[1:2] == "i" else ":".join(groups)
    return f"{value & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _string(address: int, memory) -> str:
    try:
        return memory.read_cstr(address, MAX_STRING).decode("latin-1")
    except BpfRuntimeError:
        return "(efault)"


def bprintf(fmt: bytes, args: list[int], memory) -> str:
    """Format ``fmt`` (without its NUL) with u64 ``args``; strings are read from ``memory``."""
    out, pos, used = [], 0, 0
    for m in _SPEC.finditer(fmt):
        out.append(fmt[pos:m.start()].decode("latin-1"))
        pos = m.end()
        flags, width, length, conv = (g.decode() if g else "" for g in m.groups())
        if conv == "%" and not (flags or width or length):
            out.append("%")
            continue
        if length.startswith("p"):
            pos -= len(conv)                 # %p is complete: a following letter is plain text
            conv = ""
        elif not conv or conv == "%":
            raise FormatError(f"unsupported conversion at offset {m.start()}")
        if used >= len(args):
            raise FormatError("more conversions than arguments")
        value = args[used]
        used += 1
        if length.startswith("p"):
            text = _pointer_arg(length, value, memory)
        elif conv == "s":
            text = _string(value, memory)
        elif conv == "c":
            text = chr(value & 0xFF)
        else:
            bits = 64 if length else 32
            value &= (1 << bits) - 1
            if conv in "di" and value >> (bits - 1):
                value -= 1 << bits
            text = format(value, conv if conv in ("x", "X") else "d")
            if "+" in flags and conv in "di" and value >= 0:
                text = "+" + text
            elif " " in flags and conv in "di" and value >= 0:
                text = " " + text
        w = int(width or 0)
        if "-" in flags:
            text = text.ljust(w)
        elif "0" in flags and conv and conv not in "sc":
            sign = text[0] if text[:1] in "+- " else ""
            text = sign + text[len(sign):].rjust(w - len(sign), "0")
        else:
            text = text.rjust(w)
        out.append(text)
    out.append(fmt[pos:].decode("latin-1"))
    return "".join(out)
