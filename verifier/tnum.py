"""Tristate numbers: what is known about each bit of a 64-bit value.

A tnum is a pair ``(value, mask)`` of unsigned 64-bit ints: a bit set in ``mask`` is
unknown, otherwise it equals the bit of ``value`` (``value & mask == 0`` always).
The operations over-approximate: the result describes every value the operation can
produce from values the operands describe (the kernel's kernel/bpf/tnum.c semantics,
including its multiplication algorithm from "Sound, Precise, and Fast Abstract
Interpretation with Tristate Numbers", Vishwanathan et al., CGO 2022).
"""

from __future__ import annotations

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
UNKNOWN = (0, M64)


def const(v: int) -> tuple[int, int]:
    return (v & M64, 0)


def range_(lo: int, hi: int) -> tuple[int, int]:
    """The smallest tnum holding every value of the unsigned range [lo, hi]."""
    bits = (lo ^ hi).bit_length()
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return (lo & ~delta & M64, delta)


def lshift(a, shift: int):
    return ((a[0] << shift) & M64, (a[1] << shift) & M64)


def rshift(a, shift: int):
    return (a[0] >> shift, a[1] >> shift)


def _sx(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) & 1 else x


def arshift(a, shift: int, bits: int):
    """Arithmetic shift of the low ``bits`` (32 or 64) bits; the result is zero-extended."""
    mask = (1 << bits) - 1
    return ((_sx(a[0] & mask, bits) >> shift) & mask, (_sx(a[1] & mask, bits) >> shift) & mask)


def add(a, b):
    sm = (a[1] + b[1]) & M64
    sv = (a[0] + b[0]) & M64
    chi = ((sm + sv) & M64) ^ sv
    mu = chi | a[1] | b[1]
    return (sv & ~mu & M64, mu)


def sub(a, b):
    dv = (a[0] - b[0]) & M64
    alpha = (dv + a[1]) & M64
    beta = (dv - b[1]) & M64
    mu = (alpha ^ beta) | a[1] | b[1]
    return (dv & ~mu & M64, mu)


def and_(a, b):
    alpha = a[0] | a[1]
    beta = b[0] | b[1]
    v = a[0] & b[0]
    return (v, alpha & beta & ~v & M64)


def or_(a, b):
    v = a[0] | b[0]
    return (v, (a[1] | b[1]) & ~v & M64)


def xor(a, b):
    mu = a[1] | b[1]
    return ((a[0] ^ b[0]) & ~mu & M64, mu)


def mul(a, b):
    if not a[1] and not b[1]:
        return ((a[0] * b[0]) & M64, 0)
    if bin(b[0] | b[1]).count("1") < bin(a[0] | a[1]).count("1"):
        a, b = b, a                   # iterate over the operand with fewer possible one bits
    acc_v = (a[0] * b[0]) & M64
    acc_m = (0, 0)
    av, am = a
    bv, bm = b
    while av or am:
        low = (av | am) & -(av | am)
        if low != 1:                  # skip a run of known zero bits at once
            shift = low.bit_length() - 1
            av, am = av >> shift, am >> shift
            bv, bm = (bv << shift) & M64, (bm << shift) & M64
        if av & 1:
            acc_m = add(acc_m, (0, bm))
        elif am & 1:
            acc_m = add(acc_m, (0, bv | bm))
        av, am = av >> 1, am >> 1
        bv, bm = (bv << 1) & M64, (bm << 1) & M64
    return add((acc_v, 0), acc_m)


def overlap(a, b) -> bool:
    mu = ~a[1] & ~b[1]
    return (a[0] & mu) == (b[0] & mu)


def intersect(a, b):
    """Bits known in either (where they disagree the result has a known 1)."""
    v = a[0] | b[0]
    mu = a[1] & b[1]
    return (v & ~mu & M64, mu)


def cast(a, size: int):
    """The low ``size`` bytes."""
    m = (1 << (size * 8)) - 1
    return (a[0] & m, a[1] & m)


def is_aligned(a, size: int) -> bool:
    return not size or not ((a[0] | a[1]) & (size - 1))


def contains(a, b) -> bool:
    """Whether every value of ``b`` is a value of ``a`` (the kernel's tnum_in)."""
    if b[1] & ~a[1]:
        return False
    return a[0] == b[0] & ~a[1]


def subreg(a):
    return (a[0] & M32, a[1] & M32)


def clear_subreg(a):
    return (a[0] & ~M32 & M64, a[1] & ~M32 & M64)


def with_subreg(reg, sub):
    return or_(clear_subreg(reg), subreg(sub))


def is_const(a) -> bool:
    return a[1] == 0


def text(a) -> str:
    """The kernel's log notation: ``(0x0; 0xff)``."""
    return f"({a[0]:#x}; {a[1]:#x})"
