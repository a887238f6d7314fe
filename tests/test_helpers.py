"""Helpers with Linux semantics, called directly (rt.call_helper) and from programs."""

from __future__ import annotations

import struct

import pytest

import jitbpf
from jitbpf.runtime import HostBuffer, Region, Runtime
from jitbpf.runtime import maps as M
from jitbpf.runtime.bprintf import FormatError, bprintf
from jitbpf.runtime.helpers import DEFAULT

from conftest import load_fixture

MASK64 = 2**64 - 1
EINVAL, ENOENT, E2BIG, EFAULT, ERANGE = 22, 2, 7, 14, 34


def neg(errno: int) -> int:
    return -errno & MASK64


def scratch(rt: Runtime, data: bytes = b"", size: int | None = None) -> HostBuffer:
    buf = HostBuffer(size if size is not None else len(data), data)
    rt.memory.add(Region.of("scratch", buf))
    return buf


ISSUE_HELPERS = """map_lookup_elem map_update_elem map_delete_elem map_push_elem map_pop_elem map_peek_elem
probe_read probe_read_kernel probe_read_user probe_read_str probe_read_kernel_str probe_read_user_str
ktime_get_ns ktime_get_boot_ns jiffies64 get_prandom_u32 trace_printk get_smp_processor_id
get_numa_node_id get_current_pid_tgid get_current_uid_gid get_current_comm tail_call ringbuf_output
ringbuf_reserve ringbuf_submit ringbuf_discard ringbuf_query spin_lock spin_unlock loop
for_each_map_elem snprintf strncmp xdp_adjust_head xdp_adjust_tail csum_diff""".split()
LINUX_IDS = {"map_lookup_elem": 1, "trace_printk": 6, "tail_call": 12, "csum_diff": 28, "xdp_adjust_head": 44,
             "spin_lock": 93, "ringbuf_output": 130, "for_each_map_elem": 164, "snprintf": 165, "loop": 181,
             "strncmp": 182}


def test_every_helper_of_the_issue_is_registered_by_linux_id():
    for name in ISSUE_HELPERS:
        h = DEFAULT.lookup(name)
        assert h.symbol == "bpf_" + name
    for name, id in LINUX_IDS.items():
        assert DEFAULT.get(id).name == name


# ----------------------------------------------------------------------------- printf

@pytest.mark.parametrize("fmt, args, out", [
    ("%d %i %u", [2**32 - 5, 7, 2**32 - 1], "-5 7 4294967295"),
    ("%ld %lu %lld", [MASK64, MASK64, 2**63], f"-1 {MASK64} {-2**63}"),
    ("%x %lx %llX", [0xDEADBEEF12, 0xDEADBEEF12, 255], "adbeef12 deadbeef12 FF"),
    ("[%5d|%-5d|%05d|%+d|% d]", [42, 42, -42, 3, 3], "[   42|42   |-0042|+3| 3]"),
    ("%c%c %% done", [ord("o"), ord("k")], "ok % done"),
    ("%px", [0x1234], "0000000000001234"),
    ("%pKs end", [0x10], "0000000000000010s end"),
])
def test_bprintf_formats(fmt, args, out):
    assert bprintf(fmt.encode(), args, None) == out


def test_bprintf_strings_and_addresses():
    rt = Runtime()
    s = scratch(rt, b"world\0junk")
    ip = scratch(rt, bytes([192, 168, 1, 20]))
    assert bprintf(b"hello %s, %pI4 %pi4", [s.address, ip.address, ip.address], rt.memory) == \
        "hello world, 192.168.1.20 192.168.001.020"
    assert bprintf(b"%s", [8], rt.memory) == "(efault)"


@pytest.mark.parametrize("fmt, args", [("%n", [1]), ("%d %d", [1]), ("%.3d", [1]), ("100%", [])])
def test_bprintf_rejects(fmt, args):
    with pytest.raises(FormatError):
        bprintf(fmt.encode(), args, None)


def test_trace_printk_and_snprintf():
    rt = Runtime()
    fmt = scratch(rt, b"n=%d s=%s\n\0")
    s = scratch(rt, b"abc\0")
    assert rt.call_helper(6, fmt.address, fmt.size, 2**32 - 2, s.address) == len("n=-2 s=abc\n")
    assert rt.trace_lines == ["n=-2 s=abc"]
    assert rt.call_helper(6, fmt.address, 3, 1, 2) == neg(EINVAL)          # format not NUL-terminated
    out = scratch(rt, size=8)
    data = scratch(rt, struct.pack("<2Q", 12345, s.address))
    sfmt = scratch(rt, b"%d-%s!\0")
    assert rt.call_helper(165, out.address, 8, sfmt.address, data.address, 16) == len("12345-abc!") + 1
    assert out.bytes() == b"12345-a\0"                                     # truncated, NUL-terminated
    assert rt.call_helper(165, out.address, 8, sfmt.address, data.address, 12) == neg(EINVAL)
    assert rt.call_helper(165, out.address, 8, sfmt.address, data.address, 8) == neg(EINVAL)


# ----------------------------------------------------------------------------- memory and strings

def test_probe_read_and_str():
    rt = Runtime()
    src = scratch(rt, b"hello, world\0")
    dst = scratch(rt, b"\xff" * 8)
    assert rt.call_helper(113, dst.address, 4, src.address) == 0 and dst.bytes()[:4] == b"hell"
    # address 16 is not a kernel address: x86_64 Linux refuses it with -ERANGE (6.18, the kernel engine)
    assert rt.call_helper(113, dst.address, 4, 16) == neg(ERANGE) and dst.bytes()[:4] == bytes(4)
    dst.view[:] = b"\xff" * 8
    assert rt.call_helper(115, dst.address, 8, src.address) == 8 and dst.bytes() == b"hello, \0"
    assert rt.call_helper(115, dst.address, 8, src.address + 10) == 3 and dst.bytes()[:3] == b"ld\0"
    assert rt.call_helper(115, dst.address, 8, 16) == neg(ERANGE) and dst.bytes() == bytes(8)
    unterminated = scratch(rt, b"abc")
    assert rt.call_helper(115, dst.address, 8, unterminated.address) == neg(EFAULT)
    with pytest.raises(jitbpf.BpfRuntimeError, match="out-of-bounds write of 4 bytes at 0x10"):
        rt.call_helper(113, 16, 4, src.address)                            # the destination is checked


def test_strncmp_and_csum_diff():
    rt = Runtime()
    a = scratch(rt, b"abcdef")
    b = scratch(rt, b"abd\0")
    c = scratch(rt, b"abc\0")
    assert rt.call_helper(182, a.address, 3, c.address) == 0
    assert rt.call_helper(182, a.address, 3, b.address) == MASK64                # 'c' < 'd': -1
    assert rt.call_helper(182, a.address, 6, c.address) == 1                     # 'd' > NUL
    words = bytes(range(1, 41))
    buf = scratch(rt, words)
    fold = lambda x: x if x <= 0xFFFF else fold((x & 0xFFFF) + (x >> 16))    # noqa: E731
    # the RFC 1071 sum of the same bytes (little-endian words), folded to 16 bits, not inverted
    assert rt.call_helper(28, 0, 0, buf.address, 40, 0) == fold(sum(struct.unpack("<20H", words)))
    assert rt.call_helper(28, 0, 0, 0, 0, 0x12345) == fold(0x12345)
    # any size since Linux 6.13: removing bytes 01 02 03 (words 0x0201, 0x0003) leaves ~0x0204
    assert rt.call_helper(28, buf.address, 3, 0, 0, 0) == ~0x0204 & 0xFFFF
    # csum_diff(old, new) applied to the checksum of old gives the checksum of new
    old, new = scratch(rt, b"\x01\x02\x03\x04"), scratch(rt, b"\x05\x06\x07\x08")
    seed = fold(sum(struct.unpack("<2H", old.bytes())))
    assert rt.call_helper(28, old.address, 4, new.address, 4, seed) == fold(sum(struct.unpack("<2H", new.bytes())))
    pulled = rt.call_helper(28, old.address, 4, 0, 0, seed)                 # removing old leaves 0
    assert pulled in (0, 0xFFFF)


# ----------------------------------------------------------------------------- maps from programs

def test_map_helpers_from_a_program():
    obj = jitbpf.assemble("""
        mov %r6, %r1
        stw [%r10-4], 2
        lddw %r1, map_fd(0)
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, miss
        ldxdw %r1, [%r6]
        stxdw [%r0], %r1
        mov %r0, 1
        exit
    miss:
        mov %r0, 0
        exit
    """)
    arr = M.create(obj.runtime, "arr", "array", 4, 8, 3)
    obj.add_map(arr)
    res = obj.program().compile().run((0x55AA).to_bytes(8, "little"))
    assert res.r0 == 1 and int.from_bytes(arr[2], "little") == 0x55AA


def test_push_pop_peek_and_errors():
    rt = Runtime()
    q = M.create(rt, "q", "queue", 0, 4, 2)
    h = M.create(rt, "h", "hash", 4, 4, 2)
    v = scratch(rt, struct.pack("<I", 7))
    out = scratch(rt, size=4)
    assert rt.call_helper(87, q.address, v.address, 0) == 0
    assert rt.call_helper(89, q.address, out.address) == 0 and out.bytes() == v.bytes()
    assert rt.call_helper(88, q.address, out.address) == 0
    assert rt.call_helper(88, q.address, out.address) == neg(ENOENT)
    assert rt.call_helper(87, h.address, v.address, 0) == neg(EINVAL)
    assert rt.call_helper(2, h.address, v.address, v.address, 9) == neg(EINVAL)
    with pytest.raises(jitbpf.BpfRuntimeError, match="not a map"):
        rt.call_helper(1, v.address, v.address)


def test_ringbuf_helpers():
    rt = Runtime()
    rb = M.create(rt, "rb", "ringbuf", 0, 0, 4096)
    data = scratch(rt, b"payload!")
    assert rt.call_helper(130, rb.address, data.address, 8, 0) == 0
    rec = rt.call_helper(131, rb.address, 16, 0)
    assert rec and rt.call_helper(131, rb.address, 16, 1) == 0            # flags must be 0
    rt.memory.write(rec, b"x" * 16)
    assert rt.call_helper(134, rb.address, 0) == 16 + 24                    # both records, with headers
    rt.call_helper(133, rec, 0)                                             # discard
    assert rb.drain() == [b"payload!"]
    big = scratch(rt, size=4096)
    assert rt.call_helper(130, rb.address, big.address, 4096, 0) == neg(11)   # cannot fit: -EAGAIN


def test_loop_and_for_each_in_a_program():
    obj = jitbpf.assemble("""
        mov %r6, %r1
        mov %r1, 5
        lddw %r2, func(cb)
        mov %r3, %r6
        mov %r4, 0
        call 181
        stxdw [%r6+8], %r0
        lddw %r1, map_fd(0)
        lddw %r2, func(each)
        mov %r3, %r6
        mov %r4, 0
        call 164
        stxdw [%r6+16], %r0
        mov %r1, 1000000000
        lddw %r2, func(cb)
        mov %r3, %r6
        mov %r4, 0
        call 181
        exit
    cb:
        ldxdw %r3, [%r2]
        add %r3, %r1
        stxdw [%r2], %r3
        mov %r0, 0
        jne %r1, 3, done
        mov %r0, 1
    done:
        exit
    each:
        ldxdw %r0, [%r4+24]
        ldxw %r5, [%r2]
        add %r0, %r5
        ldxdw %r5, [%r3]
        add %r0, %r5
        stxdw [%r4+24], %r0
        mov %r0, 0
        exit
    """)
    arr = M.create(obj.runtime, "arr", "array", 4, 8, 3)
    obj.add_map(arr)
    arr.update_batch({0: 10, 1: 20, 2: 30})
    res = obj.program().compile().run(bytes(32))
    acc, looped, visited, keys_and_values = struct.unpack("<4Q", res.memory)
    assert (acc, looped) == (0 + 1 + 2 + 3, 4)           # i = 0..3, the callback stops at 3
    assert (visited, keys_and_values) == (3, 0 + 1 + 2 + 10 + 20 + 30)
    assert res.r0 == neg(E2BIG)


def test_spin_lock_misuse_is_an_error():
    rt = Runtime()
    lock = scratch(rt, size=4)
    assert rt.call_helper(93, lock.address) == 0
    with pytest.raises(jitbpf.BpfRuntimeError, match="already held"):
        rt.call_helper(93, lock.address)
    assert rt.call_helper(94, lock.address) == 0
    with pytest.raises(jitbpf.BpfRuntimeError, match="not held"):
        rt.call_helper(94, lock.address)


def test_time_random_task():
    rt = Runtime(seed=7)
    rt.fixed_clock_ns = 12_000_000_000
    assert rt.call_helper(5) == rt.call_helper(125) == 12_000_000_000
    assert rt.call_helper(118) == 12 * 250                 # HZ = 250
    import random
    r = random.Random(7)
    assert [rt.call_helper(7) for _ in range(3)] == [r.getrandbits(32) for _ in range(3)]
    rt.cpu = 3
    assert rt.call_helper(8) == 3 and rt.call_helper(42) == 0
    comm = scratch(rt, b"\xff" * 4)
    rt.call_helper(16, comm.address, 4)
    assert comm.bytes() == b"jit\0"


def test_user_helpers_and_kfuncs_by_name():
    obj = jitbpf.assemble("mov %r1, 20\ncall 9000\nmov %r1, %r0\ncall kfunc 1\nexit")
    obj.runtime.helpers.register(9000, "double", lambda rt, a, *_: 2 * a)
    obj.runtime.helpers.register_kfunc("plus_one", lambda rt, a, *_: a + 1)
    obj.program().kfuncs[3] = "plus_one"
    assert obj.program().compile().run().r0 == 41
    assert obj.runtime.helpers.lookup("bpf_double").symbol == "bpf_double"
    assert obj.runtime.helpers.lookup("plus_one").id >= 1 << 20
    assert "double" not in DEFAULT.by_name                  # registries are per runtime


def test_tail_call_needs_a_prog_array():
    obj = jitbpf.assemble("lddw %r2, map_fd(0)\nmov %r3, 0\ncall 12\nexit")
    obj.add_map(M.create(obj.runtime, "h", "hash", 4, 4, 1))
    with pytest.raises(jitbpf.BpfRuntimeError, match="not a prog_array"):
        obj.program().compile().run()


def test_tail_call_targets_are_compiled_with_the_callers_options():
    obj = load_fixture("tail_calls")
    fn = obj.program("entry").compile("interp", budget=12_345)
    assert fn.run(ctx=struct.pack("<II", 0, 5)).r0 == 12
    targets = [compiled for key, compiled in obj.runtime.compiled.items() if key[0].name == "double_it"]
    assert len(targets) == 1
    assert targets[0].given == {"budget": 12_345}
    assert targets[0].executable.budget == 12_345
