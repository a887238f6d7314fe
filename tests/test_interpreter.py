"""Reference semantics at the boundaries, with expected values worked out by hand."""

from __future__ import annotations

import pytest

import jitbpf
from jitbpf import BpfRuntimeError

from conftest import run_asm

INT64_MIN = 0x8000_0000_0000_0000
M64 = 0xFFFF_FFFF_FFFF_FFFF

# (program, expected r0). Each expected value is written out by hand from RFC 9669.
SEMANTICS = [
    # division and modulo by zero
    ("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1", 0),
    ("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1", 7),
    ("mov %r0, -7\nmov %r1, 0\nmod32 %r0, %r1", 0xFFFFFFF9),          # 32-bit mod by 0 zero-extends
    ("mov %r0, -7\nmov %r1, 0\nsmod %r0, %r1", M64 - 6),
    ("mov %r0, -7\nmov %r1, 0\nsdiv %r0, %r1", 0),
    ("mov %r0, -7\nmov %r1, 0\ndiv32 %r0, %r1", 0),
    # INT_MIN / -1
    ("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1", INT64_MIN),
    ("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1", 0),
    ("lddw %r0, 0x8000000000000000\nsdiv %r0, -1", INT64_MIN),
    ("mov32 %r0, 0x80000000\nmov %r1, -1\nsdiv32 %r0, %r1", 0x80000000),
    ("mov32 %r0, 0x80000000\nsmod32 %r0, -1", 0),
    # truncation toward zero (Python's // floors)
    ("mov %r0, -7\nsdiv %r0, 2", M64 - 2),                 # -3
    ("mov %r0, -7\nsmod %r0, 2", M64),                     # -1
    ("mov %r0, 7\nsmod %r0, -2", 1),
    ("mov %r0, -7\nsmod32 %r0, 2", 0xFFFFFFFF),
    ("mov %r0, 7\nsdiv32 %r0, -2", 0xFFFFFFFD),
    # unsigned division treats the divisor as unsigned
    ("mov %r0, 7\ndiv %r0, -1", 0),                        # imm sign-extended to 2**64-1
    ("mov %r0, -1\ndiv32 %r0, -1", 1),
    # shift counts are masked
    ("mov %r0, 1\nlsh %r0, 63", INT64_MIN),
    ("mov %r0, 1\nmov %r1, 64\nlsh %r0, %r1", 1),
    ("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1", 2),
    ("mov %r0, 1\nmov %r1, 32\nlsh32 %r0, %r1", 1),
    ("mov %r0, 1\nlsh32 %r0, 31", 0x80000000),
    ("mov32 %r0, 0x80000000\nmov %r1, 33\narsh32 %r0, %r1", 0xC0000000),
    ("lddw %r0, 0x8000000000000000\narsh %r0, 63", M64),
    ("lddw %r0, 0x8000000000000000\nrsh %r0, 63", 1),
    ("mov %r0, -1\nrsh32 %r0, 31", 1),
    # ALU32 zero-extends, ALU64 immediates sign-extend
    ("mov %r0, -1\nadd32 %r0, 1", 0),
    ("mov %r0, -1\nmov32 %r0, %r0", 0xFFFFFFFF),
    ("mov %r0, 0x7fffffff\nadd32 %r0, 1", 0x80000000),
    ("mov %r0, 0x80000000", 0xFFFFFFFF80000000),
    ("mov32 %r0, 0x80000000", 0x80000000),
    ("mov %r0, 0\nadd %r0, -1", M64),
    ("mov %r0, 0\nor %r0, 0x80000000", 0xFFFFFFFF80000000),
    ("mov %r0, -1\nneg32 %r0", 1),
    ("lddw %r0, 0x8000000000000000\nneg %r0", INT64_MIN),
    ("mov32 %r0, 0x80000000\nneg32 %r0", 0x80000000),
    ("lddw %r0, 0xffffffff00000002\nmul32 %r0, 3", 6),
    # byte swaps
    ("lddw %r0, 0x1122334455667788\nle16 %r0", 0x7788),
    ("lddw %r0, 0x1122334455667788\nle32 %r0", 0x55667788),
    ("lddw %r0, 0x1122334455667788\nle64 %r0", 0x1122334455667788),
    ("lddw %r0, 0x1122334455667788\nbe16 %r0", 0x8877),
    ("lddw %r0, 0x1122334455667788\nbe32 %r0", 0x88776655),
    ("lddw %r0, 0x1122334455667788\nbswap64 %r0", 0x8877665544332211),
    ("lddw %r0, 0x1122334455667788\nbswap32 %r0", 0x88776655),
    # movsx
    ("mov %r1, 0x80\nmovsx864 %r0, %r1", 0xFFFFFFFFFFFFFF80),
    ("mov %r1, 0x80\nmovsx832 %r0, %r1", 0xFFFFFF80),
    ("mov %r1, 0x7fff\nmovsx1664 %r0, %r1", 0x7FFF),
    ("mov32 %r1, 0x80000000\nmovsx3264 %r0, %r1", 0xFFFFFFFF80000000),
    ("lddw %r1, 0x1234567880000000\nmovsx3264 %r0, %r1", 0xFFFFFFFF80000000),
    # jumps: 64-bit immediates sign-extend, JMP32 looks at the low half only
    ("mov %r0, 0\nmov %r1, -1\njeq %r1, -1, +1\nexit\nmov %r0, 1", 1),
    ("mov %r0, 0\nmov32 %r1, -1\njeq %r1, -1, +1\nexit\nmov %r0, 1", 0),
    ("mov %r0, 0\nlddw %r1, 0x1ffffffff\njeq32 %r1, -1, +1\nexit\nmov %r0, 1", 1),
    ("mov %r0, 0\nmov %r1, -1\njsgt %r1, 0, +1\nexit\nmov %r0, 1", 0),
    ("mov %r0, 0\nmov %r1, -1\njgt %r1, 0, +1\nexit\nmov %r0, 1", 1),
    ("mov %r0, 0\nmov32 %r1, 0x80000000\njslt32 %r1, 0, +1\nexit\nmov %r0, 1", 1),
    ("mov %r0, 0\nmov32 %r1, 0x80000000\njslt %r1, 0, +1\nexit\nmov %r0, 1", 0),
    ("mov %r0, 0\nmov %r1, 6\njset %r1, 4, +1\nexit\nmov %r0, 1", 1),
    ("mov %r0, 0\nja32 +1\nexit\nmov %r0, 9", 9),
]


@pytest.mark.parametrize("text,expected", SEMANTICS, ids=[s[0].replace("\n", "; ") for s in SEMANTICS])
def test_semantics(text, expected):
    assert run_asm(text + "\nexit").r0 == expected


MEMORY = bytes(range(0x80, 0x90))


@pytest.mark.parametrize("text,expected", [
    ("ldxb %r0, [%r1]", 0x80),
    ("ldxsb %r0, [%r1]", 0xFFFFFFFFFFFFFF80),
    ("ldxsh %r0, [%r1+2]", 0xFFFFFFFFFFFF8382),
    ("ldxsw %r0, [%r1+4]", 0xFFFFFFFF87868584),
    ("ldxdw %r0, [%r1+8]", 0x8F8E8D8C8B8A8988),
    ("stw [%r1], -2\nldxdw %r0, [%r1]", 0x87868584FFFFFFFE),
    ("stdw [%r1], -2\nldxdw %r0, [%r1]", M64 - 1),
    ("stb [%r1], 0x1ff\nldxb %r0, [%r1]", 0xFF),
    ("mov %r2, 0x1234\nstxh [%r1+1], %r2\nldxw %r0, [%r1]", 0x83123480),
])
def test_memory_access(text, expected):
    assert run_asm(text + "\nexit", MEMORY).r0 == expected


ATOMICS = [
    # (instruction, initial memory word, src, expected memory, expected src after = r0)
    ("lock add [%r1], %r2", 0x10, 3, 0x13, 3),
    ("lock fetch add [%r1], %r2", 0x10, 3, 0x13, 0x10),
    ("lock fetch or [%r1], %r2", 0x10, 3, 0x13, 0x10),
    ("lock fetch and [%r1], %r2", 0x12, 3, 0x02, 0x12),
    ("lock fetch xor [%r1], %r2", 0x12, 3, 0x11, 0x12),
    ("lock xchg [%r1], %r2", 0x12, 3, 0x03, 0x12),
]


@pytest.mark.parametrize("text,mem0,src,mem_after,src_after", ATOMICS)
def test_atomics(text, mem0, src, mem_after, src_after):
    res = run_asm(f"mov %r2, {src}\n{text}\nmov %r0, %r2\nexit", mem0.to_bytes(8, "little"))
    assert int.from_bytes(res.memory, "little") == mem_after
    assert res.r0 == src_after


def test_atomic32_fetch_zero_extends_and_leaves_upper_half():
    mem = (0xAAAAAAAA_FFFFFFFF).to_bytes(8, "little")
    res = run_asm("mov %r2, 1\nlock fetch add32 [%r1], %r2\nmov %r0, %r2\nexit", mem)
    assert res.r0 == 0xFFFFFFFF
    assert int.from_bytes(res.memory, "little") == 0xAAAAAAAA_00000000


@pytest.mark.parametrize("r0,expect_swap", [(5, True), (6, False)])
def test_cmpxchg(r0, expect_swap):
    res = run_asm(f"mov %r0, {r0}\nmov %r2, 9\nlock cmpxchg [%r1], %r2\nexit", (5).to_bytes(8, "little"))
    assert res.r0 == 5                       # always the old value
    assert int.from_bytes(res.memory, "little") == (9 if expect_swap else 5)


def test_cmpxchg32_compares_low_half_of_r0():
    res = run_asm("lddw %r0, 0xffffffff00000005\nmov %r2, 9\nlock cmpxchg32 [%r1], %r2\nexit",
                  (5).to_bytes(8, "little"))
    assert res.r0 == 5 and int.from_bytes(res.memory, "little") == 9


def test_out_of_bounds_read_is_a_clear_error():
    with pytest.raises(BpfRuntimeError) as err:
        run_asm("ldxw %r0, [%r1+14]\nexit", MEMORY)
    assert err.value.pc == 0
    assert "out-of-bounds read of 4 bytes" in str(err.value)


def test_null_and_wild_pointers():
    with pytest.raises(BpfRuntimeError, match="out-of-bounds write"):
        run_asm("mov %r1, 0\nstb [%r1], 1\nexit")
    with pytest.raises(BpfRuntimeError, match="instruction 2"):     # lddw takes slots 0 and 1
        run_asm("lddw %r1, 0xdeadbeef\nldxb %r0, [%r1]\nexit")


def test_stack_bounds():
    assert run_asm("stdw [%r10-512], 7\nldxdw %r0, [%r10-512]\nexit").r0 == 7
    with pytest.raises(BpfRuntimeError, match="out-of-bounds read of 1 byte") as err:
        run_asm("ldxb %r0, [%r10]\nexit")
    assert err.value.pc == 0


def test_no_budget_means_no_ticks():
    prog = jitbpf.assemble("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 10, loop\nexit").program()
    compiled = prog.compile("interp", budget=None)
    assert compiled.prepared.insns == prog.insns                 # nothing inserted
    assert compiled.run().r0 == 10


# Calls, helpers, callx, LD_ABS/LD_IND and unwinding are tested on every engine, the
# interpreter included, in test_engines.py.

def test_call_depth_limit_without_a_base_case():
    recursive = "mov %r0, 0\ncall local f\nexit\nf:\nadd %r0, 1\ncall local f\nexit"
    with pytest.raises(BpfRuntimeError, match="call depth exceeds 8 frames") as err:
        run_asm(recursive)
    assert err.value.pc == 4


def test_helper_clock_is_the_runtime_clock():
    obj = jitbpf.assemble("call 5\nexit")
    obj.runtime.fixed_clock_ns = 123456789
    assert obj.program().compile().run().r0 == 123456789
