"""The validator (the kernel's bpf_check_classic rules): every rejection with its
message, and acceptance of what the kernel accepts."""

from __future__ import annotations

import pytest

from jitbpf.cbpf import Filter
from jitbpf.cbpf.check import validate
from jitbpf.cbpf.isa import BPF_MAXINSNS, SKF_AD_OFF, SKF_NET_OFF, Insn
from jitbpf.errors import BpfValidationError

RET0 = Insn(0x06)
RET_A = Insn(0x16)

REJECTED = [
    ([], None, r"^empty program"),
    ([Insn(0x0E), RET0], 0, r"^instruction 0: opcode 0x0e is not a classic BPF instruction$"),
    ([Insn(0x18), RET0], 0, r"^instruction 0: opcode 0x18 is not"),              # an eBPF lddw
    ([Insn(0x34, k=0), RET0], 0, r"^instruction 0: div #0: division by the constant 0$"),
    ([Insn(0x94, k=0), RET0], 0, r"^instruction 0: mod #0: division by the constant 0$"),
    ([Insn(0x64, k=32), RET0], 0, r"^instruction 0: lsh #32: shift by 32 \(must be below 32\)$"),
    ([Insn(0x74, k=0xFFFF_FFFF), RET0], 0, r"^instruction 0: rsh #-1: shift by 4294967295"),
    ([Insn(0x02, k=16), RET0], 0, r"^instruction 0: st M\[16\]: scratch word M\[16\] does not exist"),
    ([Insn(0x61, k=99), RET0], 0, r"^instruction 0: ldx M\[99\]: scratch word M\[99\] does not exist"),
    ([Insn(0x05, k=1), RET0], 0, r"^instruction 0: ja 2: jump target 2 is past the last instruction \(1\)$"),
    ([RET0, Insn(0x05, k=0xFFFF_FFFE), RET0], 1, r"^instruction 1: ja 0: jumps backwards"),
    ([Insn(0x15, 1, 0, 7), RET0], 0, r"^instruction 0: jeq #0x7 jt 2 jf 1: jt target 2 is past the last"),
    ([Insn(0x1D, 0, 9), RET0], 0, r"^instruction 0: jeq x jt 1 jf 10: jf target 10 is past the last"),
    ([Insn(0x30, k=SKF_AD_OFF + 4), RET0], 0,
     r"^instruction 0: ldb \[type\]: Linux ancillary load SKF_AD_OFF\+4 \(type\) reads socket metadata"),
    ([Insn(0x20, k=SKF_AD_OFF + 200), RET0], 0, r"^instruction 0: ld \[-3896\]: unknown Linux ancillary load"),
    ([Insn(0x00, k=1)], 0, r"^instruction 0: ld #0x1: the last instruction must be a ret$"),
    ([Insn(0x60, k=3), RET_A], 0, r"^instruction 0: ld M\[3\]: reads M\[3\] before every path to it stores M\[3\]$"),
    # stored on one path only: the kernel's pass ANDs the jump targets
    ([Insn(0x15, 0, 1, 5), Insn(0x02, k=2), Insn(0x60, k=2), RET_A], 2, r"reads M\[2\] before every path"),
    ([Insn(0x0F), RET0], 0, r"opcode 0x0f is not"),                               # ret x does not exist
    ([Insn(0x10000), RET0], 0, r"^instruction 0: fields out of range"),
]


@pytest.mark.parametrize("insns,pc,message", REJECTED)
def test_rejections(insns, pc, message):
    with pytest.raises(BpfValidationError, match=message) as info:
        validate(insns)
    assert info.value.pc == pc
    assert "\n" not in str(info.value)


def test_accepted_programs():
    stored_on_both_paths = [Insn(0x15, 0, 2, 5), Insn(0x02, k=2), Insn(0x05, k=1), Insn(0x03, k=2),
                            Insn(0x60, k=2), RET_A]
    validate(stored_on_both_paths)
    validate([Insn(0x20, k=SKF_NET_OFF), RET_A])        # accepted (libpcap semantics: out of bounds)
    validate([Insn(0x64, k=31), Insn(0x34, k=0xFFFF_FFFF), Insn(0x81), Insn(0x05, k=0), RET0])
    validate([Insn(0x15, 255, 255)] + [RET0] * 256)     # the farthest conditional jump


def test_length_limit_is_the_kernels_unless_lifted():
    long = [Insn(0x00, k=1)] * BPF_MAXINSNS + [RET_A]
    with pytest.raises(BpfValidationError, match=r"^4097 instructions, more than the limit of 4096"):
        validate(long)
    validate(long, max_insns=None)
    assert len(Filter(long).insns) == 4097                      # Filter lifts it: libpcap writes longer programs
    with pytest.raises(BpfValidationError, match="more than the limit"):
        Filter(long, max_insns=BPF_MAXINSNS)
