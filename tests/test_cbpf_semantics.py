"""Every classic opcode on edge values, deterministically: libpcap's
pcap_offline_filter, the classic interpreter and the translated eBPF (interp,
llvm, direct, and the kernel where bpf(2) works) agree on each.

Operands come from the packet (A from bytes 0..3, X from bytes 4..7), so one
compiled program covers every (A, X) pair; each operation is tested twice,
returning its result and then returning 7, which tells "the filter stopped
here with 0" (division by zero, a failed bounds check) from "A became 0"."""

from __future__ import annotations

import itertools
import struct

import pytest

from jitbpf import cbpf
from jitbpf.cbpf import libpcap
from jitbpf.cbpf.isa import OPCODES, Cls, Insn, Mode
from jitbpf.cbpf.translate import record
from jitbpf.engines import available_engines

pytestmark = pytest.mark.skipif(not libpcap.available(), reason="libpcap (libpcap0.8) is not installed")

EDGES = [0, 1, 31, 32, 63, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]
ENGINES = [e for e in available_engines() if e in ("interp", "llvm", "direct", "kernel")]
LOAD_A = Insn(Cls.LD | Mode.ABS, k=0)                      # A = packet[0:4]
LOAD_X = [Insn(Cls.LD | Mode.ABS, k=4), Insn(Cls.MISC)]    # X = packet[4:8] (ld, tax)
RET_A = Insn(Cls.RET | 0x10)
THEN_7 = [Insn(Cls.LD | Mode.IMM, k=7), RET_A]
OPERAND_PACKETS = [struct.pack(">II", a, x) for a, x in itertools.product(EDGES, EDGES)]
FRAME = bytes(range(0x41, 0x41 + 80))


def _check(insns: list[Insn], packets: list[tuple[bytes, int]]) -> None:
    oracle = libpcap.OfflineFilter(insns)
    expected = [oracle(d, w) for d, w in packets]
    flt = cbpf.Filter(insns)
    assert [flt.run(d, w) for d, w in packets] == expected, "interpreter"
    records = [record(d, w) for d, w in packets]
    for engine in ENGINES:
        assert cbpf.run_filter(flt.program().compile(engine), records) == expected, engine


def _variants(op: Insn, result: list[Insn]) -> list[list[Insn]]:
    prefix = LOAD_X + [LOAD_A, op]
    return [prefix + result, prefix + THEN_7]


@pytest.mark.parametrize("code", [c for c, s in OPCODES.items() if s.kind == "alu"],
                         ids=lambda c: f"{OPCODES[c].op}_{OPCODES[c].src}")
def test_alu(code):
    spec = OPCODES[code]
    operands = [0] if spec.src == "x" or spec.op == "neg" else EDGES
    packets = [(p, len(p)) for p in OPERAND_PACKETS]
    for k in operands:
        if spec.src == "k" and ((spec.op in ("div", "mod") and k == 0) or (spec.op in ("lsh", "rsh") and k >= 32)):
            continue                                    # the validator's refusals (tested in test_cbpf_check)
        for insns in _variants(Insn(code, k=k), [RET_A]):
            _check(insns, packets)


@pytest.mark.parametrize("code", [c for c, s in OPCODES.items() if s.kind == "jcond"],
                         ids=lambda c: f"{OPCODES[c].op}_{OPCODES[c].src}")
def test_conditional_jumps(code):
    """Both targets, in both layouts (true target next, false target next)."""
    packets = [(p, len(p)) for p in OPERAND_PACKETS]
    operands = [0] if OPCODES[code].src == "x" else EDGES
    rets = [Insn(Cls.RET, k=1), Insn(Cls.RET, k=2), Insn(Cls.RET, k=3)]
    for k in operands:
        for jt, jf in ((0, 1), (1, 0), (2, 1), (1, 1)):
            _check(LOAD_X + [LOAD_A, Insn(code, jt, jf, k)] + rets, packets)


LOAD_OFFSETS = [0, 1, 12, 13, 14, 60, 76, 77, 78, 79, 80, 0x7FFF_FFFF, 0xFFFF_EFFF]


@pytest.mark.parametrize("code", [c for c, s in OPCODES.items() if s.mode in (Mode.ABS, Mode.IND, Mode.MSH, Mode.LEN)],
                         ids=lambda c: f"{OPCODES[c].name}_{OPCODES[c].mode.name}")
def test_packet_loads(code):
    """Every load with captured lengths just below, at and above where it ends
    (X, for IND, from a small set set by ldx), and LEN with wire lengths above
    the capture."""
    spec = OPCODES[code]
    into_a = [RET_A] if spec.kind == "ld" else [Insn(Cls.MISC | 0x80), RET_A]      # txa
    offsets = {Mode.LEN: [0], Mode.IND: [0, 12, 77, 80, 0x7FFF_FFFF, 0xFFFF_EFFF]}.get(spec.mode, LOAD_OFFSETS)
    xs = [0, 3, 0xFFFF_FFFF] if spec.mode == Mode.IND else [0]
    for k, x in itertools.product(offsets, xs):
        end = x + k + spec.size if spec.mode in (Mode.IND, Mode.ABS, Mode.MSH) else 0
        lengths = sorted({0, len(FRAME)} | {n for n in (end - 1, end, end + 1) if 0 <= n <= len(FRAME)})
        packets = [(FRAME[:n], n + extra) for n in lengths for extra in (0, 9)]
        prefix = [Insn(Cls.LDX | Mode.IMM, k=x), Insn(code, k=k)]
        for tail in (into_a, THEN_7):
            _check(prefix + tail, packets)


def test_scratch_memory_and_moves():
    """Each M[k] keeps its own value; tax/txa/stx/ldx M move what they should."""
    insns = list(LOAD_X)
    for cell in range(16):
        insns += [Insn(Cls.LD | Mode.IMM, k=cell * 0x01010101), Insn(Cls.ST, k=cell)]
    insns += [Insn(Cls.STX, k=5), LOAD_A, Insn(Cls.LDX | Mode.MEM, k=5), Insn(Cls.ALU | 0x0C)]   # A += M[5] (= X)
    for cell in (0, 3, 15):
        insns += [Insn(Cls.LDX | Mode.MEM, k=cell), Insn(Cls.ALU | 0xAC)]                        # A ^= M[cell]
    insns += [Insn(Cls.MISC), Insn(Cls.MISC | 0x80), RET_A]
    _check(insns, [(p, len(p)) for p in OPERAND_PACKETS])


def test_bounds_checks_implied_by_earlier_ones():
    """The translation leaves out a check an earlier one on every path implies:
    loads just inside, at and past an earlier load's end, and after a join where
    only one branch checked, at every captured length."""
    frames = [FRAME, b"\x00" + FRAME[1:]]
    packets = [(f[:n], n) for f in frames for n in range(81)]
    programs = []
    for first, second in itertools.product([(0x28, 20), (0x20, 36), (0x30, 50)], repeat=2):
        end = first[1] + {0x28: 2, 0x20: 4, 0x30: 1}[first[0]]
        for shift in (-2, -1, 0, 1):
            k = end + shift - {0x28: 2, 0x20: 4, 0x30: 1}[second[0]]
            programs.append([Insn(first[0], k=first[1]), Insn(second[0], k=k), RET_A])
    join = [Insn(0x30, k=0), Insn(0x15, 0, 1, 0x41), Insn(0x28, k=60), Insn(0x30, k=30), RET_A]
    skip = [Insn(0x30, k=0), Insn(0x15, 1, 0, 0x41), Insn(0x20, k=70), Insn(0x30, k=69), RET_A]
    for insns in programs + [join, skip]:
        _check(insns, packets)
        _check(insns[:-1] + THEN_7, packets)
