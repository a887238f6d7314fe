"""Scalar ranges: signed and unsigned 64- and 32-bit bounds plus a tnum, kept in sync.

Every function works in place on an object with the ten attributes of
:class:`Bounds` (registers in :mod:`verifier.state` have them too, since a pointer's
variable offset is tracked the same way), the way the kernel's verifier works on
``struct bpf_reg_state``:

- ``umin..umax`` (u64), ``smin..smax`` (s64), ``u32min..u32max``, ``s32min..s32max``
  and the tnum ``(tv, tm)``: every value the register can hold lies in all of them;
- :func:`sync` makes them agree (bounds from the tnum, signed from unsigned across the
  sign boundary when it is not crossed, 32-bit from 64-bit and back, the tnum from the
  bounds) -- the kernel's reg_bounds_sync();
- :func:`alu` is the transfer function of every ALU operation on two scalars,
  :func:`branch_taken` decides a conditional jump when the ranges allow it and
  :func:`refine` narrows both operands on each side of a jump, for every condition in
  both widths.

Values are Python ints: unsigned fields in [0, 2**64) (or 2**32), signed fields in
[-2**63, 2**63) (or 2**31). Results are sound for every concrete value
(tests/test_verifier_bounds.py checks that by brute force).
"""

from __future__ import annotations

from . import tnum as tn

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
U16_MAX = 0xFFFF


def s64(x: int) -> int:
    x &= M64
    return x - (1 << 64) if x >> 63 else x


def s32(x: int) -> int:
    x &= M32
    return x - (1 << 32) if x >> 31 else x


FIELDS = ("umin", "umax", "smin", "smax", "u32min", "u32max", "s32min", "s32max", "tv", "tm")


class Bounds:
    """A bare scalar range (the verifier's registers carry the same ten fields)."""

    __slots__ = FIELDS

    def __init__(self) -> None:
        mark_unknown(self)

    def __repr__(self) -> str:
        return text(self)

    def copy(self) -> "Bounds":
        b = Bounds.__new__(Bounds)
        copy_into(b, self)
        return b


def copy_into(dst, src) -> None:
    dst.umin, dst.umax, dst.smin, dst.smax = src.umin, src.umax, src.smin, src.smax
    dst.u32min, dst.u32max, dst.s32min, dst.s32max = src.u32min, src.u32max, src.s32min, src.s32max
    dst.tv, dst.tm = src.tv, src.tm


def key(r) -> tuple:
    return (r.umin, r.umax, r.smin, r.smax, r.u32min, r.u32max, r.s32min, r.s32max, r.tv, r.tm)


# ----------------------------------------------------------------------------- constructors

def mark_known(r, v: int) -> None:
    v &= M64
    r.tv, r.tm = v, 0
    r.umin = r.umax = v
    r.smin = r.smax = s64(v)
    r.u32min = r.u32max = v & M32
    r.s32min = r.s32max = s32(v)


def mark_known32(r, v: int) -> None:
    """The low 32 bits are ``v`` (the upper part is kept)."""
    v &= M32
    r.tv, r.tm = (r.tv & ~M32 & M64) | v, r.tm & ~M32 & M64
    r.u32min = r.u32max = v
    r.s32min = r.s32max = s32(v)


def mark_unbounded64(r) -> None:
    r.umin, r.umax, r.smin, r.smax = 0, M64, S64_MIN, S64_MAX


def mark_unbounded32(r) -> None:
    r.u32min, r.u32max, r.s32min, r.s32max = 0, M32, S32_MIN, S32_MAX


def mark_unknown(r) -> None:
    r.tv, r.tm = 0, M64
    r.umin, r.umax, r.smin, r.smax = 0, M64, S64_MIN, S64_MAX
    r.u32min, r.u32max, r.s32min, r.s32max = 0, M32, S32_MIN, S32_MAX


_UNKNOWN_KEY = (0, M64, S64_MIN, S64_MAX, 0, M32, S32_MIN, S32_MAX, 0, M64)


def set_urange(r, lo: int, hi: int) -> None:
    """An unknown value in the unsigned range [lo, hi]."""
    mark_unknown(r)
    r.umin, r.umax = lo, hi
    sync(r)


def is_const(r) -> bool:
    return r.tm == 0


def is_const32(r) -> bool:
    return r.tm & M32 == 0


def is_unknown(r) -> bool:
    return (r.tm == M64 and r.umin == 0 and r.umax == M64 and r.smin == S64_MIN and r.smax == S64_MAX
            and r.u32min == 0 and r.u32max == M32 and r.s32min == S32_MIN and r.s32max == S32_MAX)


# ----------------------------------------------------------------------------- sync

def update_bounds(r) -> None:
    """Bounds learned from the tnum (the kernel's __update_reg_bounds)."""
    tv, tm = r.tv, r.tm
    v32, m32 = tv & M32, tm & M32
    lo = s32(v32 | (m32 & 0x8000_0000))
    hi = s32(v32 | (m32 & 0x7FFF_FFFF))
    if lo > r.s32min:
        r.s32min = lo
    if hi < r.s32max:
        r.s32max = hi
    if v32 > r.u32min:
        r.u32min = v32
    if v32 | m32 < r.u32max:
        r.u32max = v32 | m32
    lo = s64(tv | (tm & (1 << 63)))
    hi = s64(tv | (tm & S64_MAX))
    if lo > r.smin:
        r.smin = lo
    if hi < r.smax:
        r.smax = hi
    if tv > r.umin:
        r.umin = tv
    if tv | tm < r.umax:
        r.umax = tv | tm


def _deduce32(r) -> None:
    umin, umax, smin, smax = r.umin, r.umax, r.smin, r.smax
    u32min, u32max, s32min, s32max = r.u32min, r.u32max, r.s32min, r.s32max
    if umin >> 32 == umax >> 32:
        u32min = max(u32min, umin & M32)
        u32max = min(u32max, umax & M32)
        if s32(umin) <= s32(umax):
            s32min = max(s32min, s32(umin))
            s32max = min(s32max, s32(umax))
    if smin >> 32 == smax >> 32:
        if smin & M32 <= smax & M32:
            u32min = max(u32min, smin & M32)
            u32max = min(u32max, smax & M32)
        if s32(smin) <= s32(smax):
            s32min = max(s32min, s32(smin))
            s32max = min(s32max, s32(smax))
    # the upper halves are two consecutive numbers and the low halves cross from negative to positive
    if ((umin >> 32) + 1) & M32 == (umax >> 32) & M32 and s32(umin) < 0 <= s32(umax):
        s32min = max(s32min, s32(umin))
        s32max = min(s32max, s32(umax))
    if ((smin >> 32) + 1) & M32 == (smax >> 32) & M32 and s32(smin) < 0 <= s32(smax):
        s32min = max(s32min, s32(smin))
        s32max = min(s32max, s32(smax))
    if s32(u32min) <= s32(u32max):
        s32min = max(s32min, s32(u32min))
        s32max = min(s32max, s32(u32max))
    if s32min & M32 <= s32max & M32:
        u32min = max(u32min, s32min & M32)
        u32max = min(u32max, s32max & M32)
    elif u32max < s32min & M32:
        s32min = s32(u32min)
        u32max = min(u32max, s32max & M32)
    elif s32max & M32 < u32min:
        s32max = s32(u32max)
        u32min = max(u32min, s32min & M32)
    r.u32min, r.u32max, r.s32min, r.s32max = u32min, u32max, s32min, s32max


def _deduce64(r) -> None:
    umin, umax, smin, smax = r.umin, r.umax, r.smin, r.smax
    if s64(umin) <= s64(umax):
        smin = max(smin, s64(umin))
        smax = min(smax, s64(umax))
    if smin & M64 <= smax & M64:
        umin = max(umin, smin & M64)
        umax = min(umax, smax & M64)
    elif umax < smin & M64:
        # the unsigned range meets only the non-negative part of the signed range
        smin = s64(umin)
        umax = min(umax, smax & M64)
    elif smax & M64 < umin:
        smax = s64(umax)
        umin = max(umin, smin & M64)
    r.umin, r.umax, r.smin, r.smax = umin, umax, smin, smax


def _deduce_mixed(r) -> None:
    """64-bit bounds tightened with the 32-bit ones (their low halves)."""
    hi_umin, hi_umax = r.umin & ~M32, r.umax & ~M32
    r.umin = max(r.umin, hi_umin | r.u32min)
    r.umax = min(r.umax, hi_umax | r.u32max)
    hi_smin, hi_smax = r.smin & ~M32, r.smax & ~M32
    r.smin = max(r.smin, hi_smin | r.u32min)
    r.smax = min(r.smax, hi_smax | r.u32max)
    lo, hi = r.s32min & M32, r.s32max & M32
    if lo <= hi:
        r.umin = max(r.umin, (r.umin & ~M32) | lo)
        r.umax = min(r.umax, (r.umax & ~M32) | hi)
        r.smin = max(r.smin, (r.smin & ~M32) | lo)
        r.smax = min(r.smax, (r.smax & ~M32) | hi)
    if r.s32min >= 0 and r.smin >= S32_MIN and r.smax <= S32_MAX:
        r.smin = r.umin = r.s32min
        r.smax = r.umax = r.s32max
        r.tv, r.tm = tn.intersect((r.tv, r.tm), tn.range_(r.smin & M64, r.smax & M64))


def _bound_offset(r) -> None:
    """Bits learned from the unsigned bounds."""
    t64 = tn.intersect((r.tv, r.tm), tn.range_(r.umin, r.umax))
    t32 = tn.intersect(tn.subreg(t64), tn.range_(r.u32min, r.u32max))
    r.tv, r.tm = tn.or_(tn.clear_subreg(t64), t32)


def _sync_slow(r) -> None:
    update_bounds(r)
    for _ in range(3):
        before = (r.umin, r.umax, r.smin, r.smax, r.u32min, r.u32max, r.s32min, r.s32max, r.tv, r.tm)
        _deduce32(r)
        _deduce64(r)
        _deduce_mixed(r)
        if before == (r.umin, r.umax, r.smin, r.smax, r.u32min, r.u32max, r.s32min, r.s32max, r.tv, r.tm):
            break
    _bound_offset(r)
    update_bounds(r)


#: sync, alu and refine are pure functions of the ten fields, and a program's exploration
#: meets the same few hundred ranges again and again (switch.bpf.o: 252,700 syncs of 788
#: distinct inputs), so their results are remembered; cleared when they grow too large.
_SYNC_CACHE: dict[tuple, tuple] = {}
_ALU_CACHE: dict[tuple, tuple] = {}
_REFINE_CACHE: dict[tuple, tuple | None] = {}
CACHE_LIMIT = 1 << 16


def sync(r) -> None:
    """Make the five views of the value agree (the kernel's reg_bounds_sync)."""
    if r.tm == 0:                       # a constant: everything follows, or nothing can hold
        if contains_value(r, r.tv):
            mark_known(r, r.tv)
        else:
            r.umin, r.umax = 1, 0
        return
    k = (r.umin, r.umax, r.smin, r.smax, r.u32min, r.u32max, r.s32min, r.s32max, r.tv, r.tm)
    out = _SYNC_CACHE.get(k)
    if out is None:
        if k == _UNKNOWN_KEY:
            return                      # nothing known: nothing to learn
        _sync_slow(r)
        out = (r.umin, r.umax, r.smin, r.smax, r.u32min, r.u32max, r.s32min, r.s32max, r.tv, r.tm)
        if len(_SYNC_CACHE) >= CACHE_LIMIT:
            _SYNC_CACHE.clear()
        _SYNC_CACHE[k] = out
        return
    r.umin, r.umax, r.smin, r.smax, r.u32min, r.u32max, r.s32min, r.s32max, r.tv, r.tm = out


def valid(r) -> bool:
    """False when the bounds are contradictory (a path that cannot happen)."""
    return r.umin <= r.umax and r.smin <= r.smax and r.u32min <= r.u32max and r.s32min <= r.s32max


def assign_32_into_64(r) -> None:
    r.umin, r.umax = r.u32min, r.u32max
    if 0 <= r.s32min and 0 <= r.s32max:
        r.smin, r.smax = r.s32min, r.s32max
    else:
        r.smin, r.smax = 0, M32


def zext_32_to_64(r) -> None:
    r.tv, r.tm = r.tv & M32, r.tm & M32
    assign_32_into_64(r)


def coerce_to_size(r, size: int) -> None:
    """Zero-extending truncation to ``size`` bytes (narrow loads, ``(u8)x``)."""
    mask = (1 << (size * 8)) - 1
    r.tv, r.tm = r.tv & mask, r.tm & mask
    if r.umin & ~mask == r.umax & ~mask:
        r.umin &= mask
        r.umax &= mask
    else:
        r.umin, r.umax = 0, mask
    r.smin, r.smax = r.umin, r.umax
    if size < 4:
        mark_unbounded32(r)
    sync(r)


def _sx(x: int, bits: int) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def coerce_to_size_sx(r, size: int) -> None:
    """Sign-extending truncation to ``size`` bytes, result 64-bit (ldsx, movsx)."""
    bits = size * 8
    if r.tm == 0:
        mark_known(r, _sx(r.tv, bits))
        return
    if (r.smax & M64) >> bits == (r.smin & M64) >> bits:
        a, b = _sx(r.smax, bits), _sx(r.smin, bits)
        lo, hi = min(a, b), max(a, b)
        if (lo >= 0) == (hi >= 0):
            r.smin = r.s32min = lo
            r.smax = r.s32max = hi
            r.umin = lo & M64
            r.umax = hi & M64
            r.u32min, r.u32max = lo & M32, hi & M32
            r.tv, r.tm = tn.range_(lo & M64, hi & M64)
            return
    lim = 1 << (bits - 1)
    r.smin = r.s32min = -lim
    r.smax = r.s32max = lim - 1
    r.umin = r.u32min = 0
    r.umax, r.u32max = M64, M32
    r.tv, r.tm = tn.UNKNOWN


def coerce_subreg_to_size_sx(r, size: int) -> None:
    """Sign extension of the low ``size`` bytes into the 32-bit subregister (movsx32)."""
    bits = size * 8
    if r.tm == 0:
        v = _sx(r.tv, bits)
        r.tv, r.tm = v & M64, 0
        r.s32min = r.s32max = s32(v)
        r.u32min = r.u32max = v & M32
        return
    if (r.s32max & M32) >> bits == (r.s32min & M32) >> bits:
        a, b = _sx(r.s32max, bits), _sx(r.s32min, bits)
        lo, hi = min(a, b), max(a, b)
        if (lo >= 0) == (hi >= 0):
            r.s32min, r.s32max = lo, hi
            r.u32min, r.u32max = lo & M32, hi & M32
            r.tv, r.tm = tn.subreg(tn.range_(lo & M64, hi & M64))
            return
    lim = 1 << (bits - 1)
    r.s32min, r.s32max = -lim, lim - 1
    r.u32min, r.u32max = 0, M32
    r.tv, r.tm = 0, M32


# ----------------------------------------------------------------------------- ALU

def _add(dst, src) -> None:
    s1, s2 = dst.s32min + src.s32min, dst.s32max + src.s32max
    if S32_MIN <= s1 <= S32_MAX and S32_MIN <= s2 <= S32_MAX:
        dst.s32min, dst.s32max = s1, s2
    else:
        dst.s32min, dst.s32max = S32_MIN, S32_MAX
    u1, u2 = dst.u32min + src.u32min, dst.u32max + src.u32max
    if u1 <= M32 and u2 <= M32:
        dst.u32min, dst.u32max = u1, u2
    else:
        dst.u32min, dst.u32max = 0, M32
    s1, s2 = dst.smin + src.smin, dst.smax + src.smax
    if S64_MIN <= s1 <= S64_MAX and S64_MIN <= s2 <= S64_MAX:
        dst.smin, dst.smax = s1, s2
    else:
        dst.smin, dst.smax = S64_MIN, S64_MAX
    u1, u2 = dst.umin + src.umin, dst.umax + src.umax
    if u1 <= M64 and u2 <= M64:
        dst.umin, dst.umax = u1, u2
    else:
        dst.umin, dst.umax = 0, M64
    dst.tv, dst.tm = tn.add((dst.tv, dst.tm), (src.tv, src.tm))


def _sub(dst, src) -> None:
    s1, s2 = dst.s32min - src.s32max, dst.s32max - src.s32min
    if S32_MIN <= s1 <= S32_MAX and S32_MIN <= s2 <= S32_MAX:
        dst.s32min, dst.s32max = s1, s2
    else:
        dst.s32min, dst.s32max = S32_MIN, S32_MAX
    if dst.u32min < src.u32max:
        dst.u32min, dst.u32max = 0, M32
    else:
        dst.u32min, dst.u32max = dst.u32min - src.u32max, dst.u32max - src.u32min
    s1, s2 = dst.smin - src.smax, dst.smax - src.smin
    if S64_MIN <= s1 <= S64_MAX and S64_MIN <= s2 <= S64_MAX:
        dst.smin, dst.smax = s1, s2
    else:
        dst.smin, dst.smax = S64_MIN, S64_MAX
    if dst.umin < src.umax:
        dst.umin, dst.umax = 0, M64
    else:
        dst.umin, dst.umax = dst.umin - src.umax, dst.umax - src.umin
    dst.tv, dst.tm = tn.sub((dst.tv, dst.tm), (src.tv, src.tm))


def _mul(dst, src) -> None:
    dst.tv, dst.tm = tn.mul((dst.tv, dst.tm), (src.tv, src.tm))
    if src.s32min < 0 or dst.s32min < 0 or src.u32max > U16_MAX or dst.u32max > U16_MAX:
        mark_unbounded32(dst)
    else:
        dst.u32min *= src.u32min
        dst.u32max *= src.u32max
        if dst.u32max > S32_MAX:
            dst.s32min, dst.s32max = S32_MIN, S32_MAX
        else:
            dst.s32min, dst.s32max = dst.u32min, dst.u32max
    if src.smin < 0 or dst.smin < 0 or src.umax > M32 or dst.umax > M32:
        mark_unbounded64(dst)
    else:
        dst.umin *= src.umin
        dst.umax *= src.umax
        if dst.umax > S64_MAX:
            dst.smin, dst.smax = S64_MIN, S64_MAX
        else:
            dst.smin, dst.smax = dst.umin, dst.umax


def _signed_from_unsigned32(dst) -> None:
    if s32(dst.u32min) <= s32(dst.u32max):
        dst.s32min, dst.s32max = s32(dst.u32min), s32(dst.u32max)
    else:
        dst.s32min, dst.s32max = S32_MIN, S32_MAX


def _signed_from_unsigned64(dst) -> None:
    if s64(dst.umin) <= s64(dst.umax):
        dst.smin, dst.smax = s64(dst.umin), s64(dst.umax)
    else:
        dst.smin, dst.smax = S64_MIN, S64_MAX


def _bitwise(op: str, dst, src) -> None:
    a, b = (dst.tv, dst.tm), (src.tv, src.tm)
    dst.tv, dst.tm = tn.and_(a, b) if op == "and" else tn.or_(a, b) if op == "or" else tn.xor(a, b)
    src_const, dst_const = src.tm == 0, dst.tm == 0           # dst: the result's tnum, as in the kernel
    src32_const, dst32_const = src.tm & M32 == 0, dst.tm & M32 == 0
    v32, m32 = dst.tv & M32, dst.tm & M32
    if src32_const and dst32_const:
        dst.u32min = dst.u32max = v32
        dst.s32min = dst.s32max = s32(v32)
    else:
        if op == "and":
            dst.u32min, dst.u32max = v32, min(dst.u32max, src.u32max)
        elif op == "or":
            dst.u32min, dst.u32max = max(dst.u32min, src.u32min), v32 | m32
        else:
            dst.u32min, dst.u32max = v32, v32 | m32
        _signed_from_unsigned32(dst)
    if src_const and dst_const:
        mark_known(dst, dst.tv)
        return
    if op == "and":
        dst.umin, dst.umax = dst.tv, min(dst.umax, src.umax)
    elif op == "or":
        dst.umin, dst.umax = max(dst.umin, src.umin), dst.tv | dst.tm
    else:
        dst.umin, dst.umax = dst.tv, dst.tv | dst.tm
    _signed_from_unsigned64(dst)
    update_bounds(dst)


def _lsh32_bounds(dst, lo: int, hi: int) -> None:
    dst.s32min, dst.s32max = S32_MIN, S32_MAX
    if hi > 31 or dst.u32max > 1 << (31 - hi):
        dst.u32min, dst.u32max = 0, M32
    else:
        dst.u32min <<= lo
        dst.u32max <<= hi


def _lsh(dst, src, alu32: bool) -> None:
    lo, hi = (src.u32min, src.u32max) if alu32 else (src.umin, src.umax)
    if alu32:
        sub = (dst.tv & M32, dst.tm & M32)
        _lsh32_bounds(dst, lo, hi)
        dst.tv, dst.tm = tn.subreg(tn.lshift(sub, lo))
        mark_unbounded64(dst)
        update_bounds(dst)
        return
    if lo == 32 and hi == 32:
        dst.smax, dst.smin = dst.s32max << 32, dst.s32min << 32
    else:
        dst.smin, dst.smax = S64_MIN, S64_MAX
    if dst.umax > 1 << (63 - hi):
        dst.umin, dst.umax = 0, M64
    else:
        dst.umin = (dst.umin << lo) & M64
        dst.umax = (dst.umax << hi) & M64
    _lsh32_bounds(dst, lo, hi)
    dst.tv, dst.tm = tn.lshift((dst.tv, dst.tm), lo)
    update_bounds(dst)


def _rsh(dst, src, alu32: bool) -> None:
    if alu32:
        lo, hi = src.u32min, src.u32max
        dst.s32min, dst.s32max = S32_MIN, S32_MAX
        dst.tv, dst.tm = tn.rshift((dst.tv & M32, dst.tm & M32), lo)
        dst.u32min >>= hi
        dst.u32max >>= lo
        mark_unbounded64(dst)
        update_bounds(dst)
        return
    lo, hi = src.umin, src.umax
    dst.smin, dst.smax = S64_MIN, S64_MAX
    dst.tv, dst.tm = tn.rshift((dst.tv, dst.tm), lo)
    dst.umin >>= hi
    dst.umax >>= lo
    mark_unbounded32(dst)
    update_bounds(dst)


def _arsh(dst, src, alu32: bool) -> None:
    if alu32:
        k = src.u32min
        dst.s32min >>= k
        dst.s32max >>= k
        dst.tv, dst.tm = tn.arshift((dst.tv & M32, dst.tm & M32), k, 32)
        dst.u32min, dst.u32max = 0, M32
        mark_unbounded64(dst)
        update_bounds(dst)
        return
    k = src.umin
    dst.smin >>= k
    dst.smax >>= k
    dst.tv, dst.tm = tn.arshift((dst.tv, dst.tm), k, 64)
    dst.umin, dst.umax = 0, M64
    mark_unbounded32(dst)
    update_bounds(dst)


def fold(op: str, a: int, b: int, width: int) -> int:
    """The concrete result of an ALU operation (BPF semantics: x/0 = 0, x%0 = x)."""
    mask = M64 if width == 64 else M32
    a &= mask
    b &= mask
    bits = width
    if op == "add":
        r = a + b
    elif op == "sub":
        r = a - b
    elif op == "mul":
        r = a * b
    elif op == "div":
        r = a // b if b else 0
    elif op == "mod":
        r = a % b if b else a
    elif op == "sdiv" or op == "smod":
        sa, sb = _sx(a, bits), _sx(b, bits)
        if sb == 0:
            r = 0 if op == "sdiv" else a
        else:
            q = abs(sa) // abs(sb)
            if (sa < 0) != (sb < 0):
                q = -q
            r = q if op == "sdiv" else sa - q * sb
    elif op == "or":
        r = a | b
    elif op == "and":
        r = a & b
    elif op == "xor":
        r = a ^ b
    elif op == "lsh":
        r = a << (b & (bits - 1))
    elif op == "rsh":
        r = a >> (b & (bits - 1))
    elif op == "arsh":
        r = _sx(a, bits) >> (b & (bits - 1))
    else:
        raise ValueError(op)
    return r & mask


_SHIFTS = frozenset(("lsh", "rsh", "arsh"))


def alu(op: str, dst, src, alu32: bool) -> None:
    """``dst = dst op src`` on two scalars (dst's bounds are replaced in place).

    Shifts need a known in-range count to say anything; div, mod (unless both operands
    are known) and unknown operations give an unknown value, as in the kernel.
    """
    if dst.tm == 0 and src.tm == 0 and op not in _SHIFTS:
        mark_known(dst, fold(op, dst.tv, src.tv, 32 if alu32 else 64))
        return
    k = (op, alu32, dst.umin, dst.umax, dst.smin, dst.smax, dst.u32min, dst.u32max, dst.s32min, dst.s32max,
         dst.tv, dst.tm, src.umin, src.umax, src.smin, src.smax, src.u32min, src.u32max, src.s32min, src.s32max,
         src.tv, src.tm)
    out = _ALU_CACHE.get(k)
    if out is not None:
        (dst.umin, dst.umax, dst.smin, dst.smax, dst.u32min, dst.u32max, dst.s32min, dst.s32max, dst.tv,
         dst.tm) = out
        return
    _alu(op, dst, src, alu32)
    if len(_ALU_CACHE) >= CACHE_LIMIT:
        _ALU_CACHE.clear()
    _ALU_CACHE[k] = (dst.umin, dst.umax, dst.smin, dst.smax, dst.u32min, dst.u32max, dst.s32min, dst.s32max,
                     dst.tv, dst.tm)


def _alu(op: str, dst, src, alu32: bool) -> None:
    width = 32 if alu32 else 64
    if op in ("lsh", "rsh", "arsh"):
        known = (src.tm & M32 == 0 and src.s32min == src.s32max and src.u32min == src.u32max) if alu32 \
            else (src.tm == 0 and src.smin == src.smax and src.umin == src.umax)
        if not known or src.umax >= width:
            mark_unknown(dst)
            return
    if dst.tm == 0 and src.tm == 0:
        mark_known(dst, fold(op, dst.tv, src.tv, width))
        return
    if (op == "add" or op == "sub" or op == "xor") and not alu32 and (is_unknown(dst) or is_unknown(src)):
        mark_unknown(dst)               # anything plus, minus or xor a wholly unknown value
        return
    if alu32 and dst.tm & M32 == 0 and src.tm & M32 == 0:
        mark_known(dst, fold(op, dst.tv, src.tv, 32))
        return
    if op == "add":
        _add(dst, src)
    elif op == "sub":
        _sub(dst, src)
    elif op == "mul":
        _mul(dst, src)
    elif op in ("and", "or", "xor"):
        _bitwise(op, dst, src)
    elif op == "lsh":
        _lsh(dst, src, alu32)
    elif op == "rsh":
        _rsh(dst, src, alu32)
    elif op == "arsh":
        _arsh(dst, src, alu32)
    else:                               # div, mod, sdiv, smod on unknown values
        mark_unknown(dst)
        return
    if alu32:
        zext_32_to_64(dst)
    sync(dst)


# ----------------------------------------------------------------------------- conditions

#: a op b  <=>  b FLIP[op] a
FLIP = {"jeq": "jeq", "jne": "jne", "jset": "jset", "jge": "jle", "jgt": "jlt", "jle": "jge", "jlt": "jgt",
        "jsge": "jsle", "jsgt": "jslt", "jsle": "jsge", "jslt": "jsgt"}
#: not (a op b)  <=>  a NEGATE[op] b ("jnset": no bit of b set in a)
NEGATE = {"jeq": "jne", "jne": "jeq", "jset": "jnset", "jnset": "jset", "jge": "jlt", "jgt": "jle",
          "jle": "jgt", "jlt": "jge", "jsge": "jslt", "jsgt": "jsle", "jsle": "jsgt", "jslt": "jsge"}


def _view(r, jmp32: bool):
    if jmp32:
        return (r.tv & M32, r.tm & M32), r.u32min, r.u32max, r.s32min, r.s32max
    return (r.tv, r.tm), r.umin, r.umax, r.smin, r.smax


def branch_taken(r1, r2, op: str, jmp32: bool) -> int:
    """1 if ``r1 op r2`` holds for every value, 0 if for none, -1 if it depends."""
    t1, umin1, umax1, smin1, smax1 = _view(r1, jmp32)
    t2, umin2, umax2, smin2, smax2 = _view(r2, jmp32)
    if op in ("jeq", "jne"):
        yes = 1 if op == "jeq" else 0
        if t1[1] == 0 and t2[1] == 0:
            return yes if t1[0] == t2[0] else 1 - yes
        if (not tn.overlap(t1, t2) or umin1 > umax2 or umax1 < umin2 or smin1 > smax2 or smax1 < smin2
                or (not jmp32 and (r1.u32min > r2.u32max or r1.u32max < r2.u32min
                                   or r1.s32min > r2.s32max or r1.s32max < r2.s32min))):
            return 1 - yes
        return -1
    if op == "jset":
        if t2[1] != 0:
            t1, t2 = t2, t1
        if t2[1] != 0:
            return -1
        if t1[0] & ~t1[1] & t2[0]:
            return 1
        if not (t1[0] | t1[1]) & t2[0]:
            return 0
        return -1
    if op == "jgt":
        return 1 if umin1 > umax2 else 0 if umax1 <= umin2 else -1
    if op == "jsgt":
        return 1 if smin1 > smax2 else 0 if smax1 <= smin2 else -1
    if op == "jlt":
        return 1 if umax1 < umin2 else 0 if umin1 >= umax2 else -1
    if op == "jslt":
        return 1 if smax1 < smin2 else 0 if smin1 >= smax2 else -1
    if op == "jge":
        return 1 if umin1 >= umax2 else 0 if umax1 < umin2 else -1
    if op == "jsge":
        return 1 if smin1 >= smax2 else 0 if smax1 < smin2 else -1
    if op == "jle":
        return 1 if umax1 <= umin2 else 0 if umin1 > umax2 else -1
    if op == "jsle":
        return 1 if smax1 <= smin2 else 0 if smin1 > smax2 else -1
    raise ValueError(op)


def _const_view(r, jmp32: bool):
    if jmp32:
        return r.tv & M32 if r.tm & M32 == 0 else None
    return r.tv if r.tm == 0 else None


def refine_sync(r1, r2, op: str, jmp32: bool, sync2: bool) -> bool:
    """:func:`refine`, then :func:`sync` of r1 if it changed and of r2 if ``sync2``;
    False when the result is contradictory (that side of the jump cannot happen)."""
    k = (op, jmp32, sync2, r1.umin, r1.umax, r1.smin, r1.smax, r1.u32min, r1.u32max, r1.s32min, r1.s32max,
         r1.tv, r1.tm, r2.umin, r2.umax, r2.smin, r2.smax, r2.u32min, r2.u32max, r2.s32min, r2.s32max,
         r2.tv, r2.tm)
    out = _REFINE_CACHE.get(k)
    if out is None:
        before = k[3:13]
        refine(r1, r2, op, jmp32)
        if (r1.umin, r1.umax, r1.smin, r1.smax, r1.u32min, r1.u32max, r1.s32min, r1.s32max, r1.tv,
                r1.tm) != before:
            sync(r1)
        if sync2:
            sync(r2)
        out = (r1.umin, r1.umax, r1.smin, r1.smax, r1.u32min, r1.u32max, r1.s32min, r1.s32max, r1.tv, r1.tm,
               r2.umin, r2.umax, r2.smin, r2.smax, r2.u32min, r2.u32max, r2.s32min, r2.s32max, r2.tv, r2.tm,
               valid(r1) and valid(r2))
        if len(_REFINE_CACHE) >= CACHE_LIMIT:
            _REFINE_CACHE.clear()
        _REFINE_CACHE[k] = out
        return out[20]
    (r1.umin, r1.umax, r1.smin, r1.smax, r1.u32min, r1.u32max, r1.s32min, r1.s32max, r1.tv, r1.tm,
     r2.umin, r2.umax, r2.smin, r2.smax, r2.u32min, r2.u32max, r2.s32min, r2.s32max, r2.tv, r2.tm) = out[:20]
    return out[20]


def refine(r1, r2, op: str, jmp32: bool) -> None:
    """Narrow r1 and r2 (in place) knowing that ``r1 op r2`` holds; call :func:`sync` after."""
    if op in ("jge", "jgt", "jsge", "jsgt"):
        op = FLIP[op]
        r1, r2 = r2, r1
    if op == "jeq":
        if jmp32:
            r1.u32min = r2.u32min = max(r1.u32min, r2.u32min)
            r1.u32max = r2.u32max = min(r1.u32max, r2.u32max)
            r1.s32min = r2.s32min = max(r1.s32min, r2.s32min)
            r1.s32max = r2.s32max = min(r1.s32max, r2.s32max)
            t = tn.intersect((r1.tv & M32, r1.tm & M32), (r2.tv & M32, r2.tm & M32))
            r1.tv, r1.tm = tn.with_subreg((r1.tv, r1.tm), t)
            r2.tv, r2.tm = tn.with_subreg((r2.tv, r2.tm), t)
        else:
            r1.umin = r2.umin = max(r1.umin, r2.umin)
            r1.umax = r2.umax = min(r1.umax, r2.umax)
            r1.smin = r2.smin = max(r1.smin, r2.smin)
            r1.smax = r2.smax = min(r1.smax, r2.smax)
            r1.tv, r1.tm = r2.tv, r2.tm = tn.intersect((r1.tv, r1.tm), (r2.tv, r2.tm))
        return
    if op in ("jne", "jset", "jnset"):
        if _const_view(r2, jmp32) is None:
            r1, r2 = r2, r1
        val = _const_view(r2, jmp32)
        if val is None:
            return
        if op == "jne":
            if jmp32:
                if r1.u32min == val:
                    r1.u32min += 1
                if r1.u32max == val:
                    r1.u32max -= 1
                if r1.s32min == s32(val):
                    r1.s32min += 1
                if r1.s32max == s32(val):
                    r1.s32max -= 1
            else:
                if r1.umin == val:
                    r1.umin += 1
                if r1.umax == val:
                    r1.umax -= 1
                if r1.smin == s64(val):
                    r1.smin += 1
                if r1.smax == s64(val):
                    r1.smax -= 1
        elif op == "jset":
            if val and not val & (val - 1):            # one bit: it is set
                if jmp32:
                    r1.tv, r1.tm = tn.with_subreg((r1.tv, r1.tm), tn.or_((r1.tv & M32, r1.tm & M32), (val, 0)))
                else:
                    r1.tv, r1.tm = tn.or_((r1.tv, r1.tm), (val, 0))
        else:                                          # no bit of val is set
            mark_unbounded64(r1)
            mark_unbounded32(r1)
            if jmp32:
                t = tn.and_((r1.tv & M32, r1.tm & M32), (~val & M32, 0))
                r1.tv, r1.tm = tn.with_subreg((r1.tv, r1.tm), t)
            else:
                r1.tv, r1.tm = tn.and_((r1.tv, r1.tm), (~val & M64, 0))
        return
    if op == "jle":
        if jmp32:
            r1.u32max = min(r1.u32max, r2.u32max)
            r2.u32min = max(r1.u32min, r2.u32min)
        else:
            r1.umax = min(r1.umax, r2.umax)
            r2.umin = max(r1.umin, r2.umin)
    elif op == "jlt":
        if jmp32:
            r1.u32max = min(r1.u32max, r2.u32max - 1)
            r2.u32min = max(r1.u32min + 1, r2.u32min)
        else:
            r1.umax = min(r1.umax, r2.umax - 1)
            r2.umin = max(r1.umin + 1, r2.umin)
    elif op == "jsle":
        if jmp32:
            r1.s32max = min(r1.s32max, r2.s32max)
            r2.s32min = max(r1.s32min, r2.s32min)
        else:
            r1.smax = min(r1.smax, r2.smax)
            r2.smin = max(r1.smin, r2.smin)
    elif op == "jslt":
        if jmp32:
            r1.s32max = min(r1.s32max, r2.s32max - 1)
            r2.s32min = max(r1.s32min + 1, r2.s32min)
        else:
            r1.smax = min(r1.smax, r2.smax - 1)
            r2.smin = max(r1.smin + 1, r2.smin)


# ----------------------------------------------------------------------------- comparisons and text

def within(old, cur) -> bool:
    """Whether every value ``cur`` allows, ``old`` allows too (range_within and tnum_in)."""
    return (old.umin <= cur.umin and cur.umax <= old.umax and old.smin <= cur.smin and cur.smax <= old.smax
            and old.u32min <= cur.u32min and cur.u32max <= old.u32max and old.s32min <= cur.s32min
            and cur.s32max <= old.s32max and tn.contains((old.tv, old.tm), (cur.tv, cur.tm)))


def contains_value(r, v: int) -> bool:
    """Whether the concrete 64-bit value ``v`` is allowed by every view."""
    v &= M64
    lo = v & M32
    return (r.umin <= v <= r.umax and r.smin <= s64(v) <= r.smax and r.u32min <= lo <= r.u32max
            and r.s32min <= s32(lo) <= r.s32max and (v & ~r.tm) == r.tv)


def text(r) -> str:
    """Bounds the way the kernel logs them (only what adds information)."""
    if r.tm == 0:
        return str(s64(r.tv))
    parts = []
    if r.smin != S64_MIN and r.smin != r.umin:
        parts.append(f"smin={r.smin}")
    if r.smax != S64_MAX and r.smax != r.umax:
        parts.append(f"smax={r.smax}")
    if r.umin:
        parts.append(f"umin={r.umin}")
    if r.umax != M64:
        parts.append(f"umax={r.umax}")
    if r.s32min != S32_MIN and r.s32min != r.u32min:
        parts.append(f"smin32={r.s32min}")
    if r.s32max != S32_MAX and r.s32max != r.u32max:
        parts.append(f"smax32={r.s32max}")
    if r.u32min:
        parts.append(f"umin32={r.u32min}")
    if r.u32max != M32 and r.u32max != r.umax:
        parts.append(f"umax32={r.u32max}")
    if r.tm != M64:
        parts.append(f"var_off={tn.text((r.tv, r.tm))}")
    return ",".join(parts)
