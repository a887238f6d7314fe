"""Random valid classic programs over random packets: the classic interpreter
against libpcap's bpf_filter (an independent oracle), and the translated eBPF on
interp, llvm and direct against the classic interpreter."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitbpf import cbpf
from jitbpf.cbpf import libpcap
from jitbpf.cbpf.isa import BPF_MEMWORDS, OPCODES, SKF_AD_OFF, Cls, Insn, Mode
from jitbpf.cbpf.translate import record
from jitbpf.engines import available_engines

_CODES = sorted(OPCODES)
_BIG = st.sampled_from([0x7FFF_FFF0, 0x8000_0000, 0xFFFF_0000, SKF_AD_OFF - 4, SKF_AD_OFF - 1])
_EDGES = [0, 1, 2, 7, 14, 31, 32, 33, 63, 64, 0xFF, 0x800, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF]
_U32 = st.one_of(st.sampled_from(_EDGES), st.integers(0, 300), st.integers(0, 0xFFFF_FFFF))


@st.composite
def _insn(draw, pc: int, length: int, code: int | None = None) -> Insn:
    """One instruction (of opcode ``code``, or any) at ``pc`` of a ``length``-long
    body, valid by the kernel's rules."""
    code = draw(st.sampled_from(_CODES)) if code is None else code
    spec = OPCODES[code]
    room = length - pc - 2                       # farthest forward offset that stays before the final ret
    if spec.kind in ("ja", "jcond") and room < 0:
        return Insn(Cls.RET, k=draw(_U32))
    if spec.kind == "ja":
        return Insn(code, k=draw(st.integers(0, room)))
    if spec.kind == "jcond":
        reach = st.integers(0, min(room, 255))
        return Insn(code, draw(reach), draw(reach), draw(_U32))
    if spec.kind in ("st", "stx") or spec.mode == Mode.MEM:
        return Insn(code, k=draw(st.integers(0, BPF_MEMWORDS - 1)))
    if spec.mode in (Mode.ABS, Mode.IND, Mode.MSH):
        return Insn(code, k=draw(st.one_of(st.integers(0, 72), _BIG)))
    if spec.kind == "alu" and spec.src == "k":
        if spec.op in ("lsh", "rsh"):
            return Insn(code, k=draw(st.integers(0, 31)))
        if spec.op in ("div", "mod"):
            return Insn(code, k=draw(st.one_of(st.integers(1, 9), st.integers(1, 0xFFFF_FFFF))))
    return Insn(code, k=draw(_U32))


@st.composite
def programs(draw, max_len: int = 24) -> list[Insn]:
    """A body of random instructions ending in ret, preceded by stores to every
    scratch word it reads (so the kernel's uninitialised-memory rule holds)."""
    length = draw(st.integers(1, max_len))
    body = [draw(_insn(pc, length)) for pc in range(length - 1)]
    body.append(Insn(Cls.RET | draw(st.sampled_from([0x00, 0x10])), k=draw(_U32)))
    return _with_memory(body, draw)


_ALU_CODES = [c for c, s in OPCODES.items() if s.kind == "alu"]
_STRAIGHT = [c for c, s in OPCODES.items() if s.kind not in ("alu", "ja", "jcond", "ret")]


@st.composite
def straight_programs(draw) -> list[Insn]:
    """Straight-line code (ALU operations weighted up, loads of every mode, moves)
    ending in ``ret a``, so every operation reaches the result; X starts at a
    shift-count-like value."""
    codes = draw(st.lists(st.sampled_from(_ALU_CODES * 2 + _STRAIGHT), min_size=1, max_size=12))
    body = [Insn(Cls.LD | Mode.IMM, k=draw(_U32)),
            Insn(Cls.LDX | Mode.IMM, k=draw(st.sampled_from([0, 1, 5, 31, 32, 33, 40, 63, 64, 100, 0xFFFF_FFFF])))]
    body += [draw(_insn(0, 1, code)) for code in codes] + [Insn(Cls.RET | 0x10)]
    return _with_memory(body, draw)


def _with_memory(body: list[Insn], draw) -> list[Insn]:
    read = sorted({i.k for i in body if OPCODES[i.code].mode == Mode.MEM})
    init = []
    for cell in read:
        init += [Insn(Cls.LD | Mode.IMM, k=draw(_U32)), Insn(Cls.ST, k=cell)]
    return init + body


@st.composite
def packet_sets(draw) -> list[tuple[bytes, int]]:
    """One random 80-byte frame cut at every length 0..80 (so every load meets its
    bounds exactly), the wire length a fixed amount above the captured one."""
    data = draw(st.binary(min_size=80, max_size=80))
    extra = draw(st.sampled_from([0, 1, 100, 0xFFFF_0000]))
    return [(data[:n], n + extra) for n in range(81)]


ANY_PROGRAM = st.one_of(programs(), straight_programs())


@pytest.mark.skipif(not libpcap.available(), reason="libpcap (libpcap0.8) is not installed")
@settings(max_examples=400, deadline=None)
@given(ANY_PROGRAM, packet_sets())
def test_interpreter_matches_libpcap_bpf_filter(insns, pkts):
    flt = cbpf.Filter(insns)
    oracle = libpcap.OfflineFilter(insns)
    assert [flt.run(d, w) for d, w in pkts] == [oracle(d, w) for d, w in pkts]


@pytest.mark.parametrize("engine", [e for e in ("interp", "llvm", "direct") if e in available_engines()])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(insns=ANY_PROGRAM, pkts=packet_sets())
def test_translation_matches_interpreter(engine, insns, pkts):
    flt = cbpf.Filter(insns)
    fn = flt.program().compile(engine)
    assert cbpf.run_filter(fn, [record(d, w) for d, w in pkts]) == [flt.run(d, w) for d, w in pkts]
