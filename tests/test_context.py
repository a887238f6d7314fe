"""Program contexts (like BPF_PROG_TEST_RUN): what r1 points to, what the program may
touch, and the XDP headroom/tailroom rules of Linux."""

from __future__ import annotations

import struct

import pytest

import jitbpf
from jitbpf.runtime import Runtime, context

from conftest import load_fixture

EINVAL, EACCES = 22, 13


def fields(inv) -> tuple[int, int, int]:
    return struct.unpack_from("<III", inv.ctx.view, 0)


def test_xdp_md_holds_32_bit_packet_pointers():
    pkt = bytes(range(60))
    inv = context.xdp(pkt)
    data, end, meta = fields(inv)
    assert data < 2**32 and end - data == 60 and meta == data
    assert struct.unpack_from("<I", inv.ctx.view, 12)[0] == 1          # ingress_ifindex: lo
    frame = inv.contexts[inv.args[0]]
    assert data - frame.hard_start == 256                               # XDP_PACKET_HEADROOM
    assert inv.memory_after() == pkt


def test_xdp_adjust_rules():
    inv = context.xdp(bytes(60))
    frame = inv.contexts[inv.args[0]]
    data0, end0, _ = fields(inv)
    assert frame.xdp_adjust_head(-(256 - 40) - 1) == -EINVAL           # into the xdp_frame area
    assert frame.xdp_adjust_head(60 - 13) == -EINVAL                    # less than an Ethernet header left
    assert frame.xdp_adjust_head(-216) == 0 and fields(inv)[0] == data0 - 216
    assert frame.xdp_adjust_head(216) == 0
    assert frame.xdp_adjust_meta(-6) == -EACCES                         # metadata in 4-byte units
    assert frame.xdp_adjust_meta(-36) == -EACCES                        # at most 32 bytes
    assert frame.xdp_adjust_meta(-8) == 0 and fields(inv)[2] == data0 - 8
    frame.buffer.view[256 - 8:256] = b"METADATA"
    assert frame.xdp_adjust_head(-4) == 0                               # the metadata moves along
    data, _, meta = fields(inv)
    assert (data, meta) == (data0 - 4, data0 - 12)
    assert bytes(frame.buffer.view[256 - 12:256 - 4]) == b"METADATA"
    frame.buffer.view[end0 - frame.hard_start:end0 - frame.hard_start + 8] = b"\xff" * 8
    assert frame.xdp_adjust_tail(8) == 0 and inv.memory_after()[-8:] == bytes(8)   # grown bytes are zeroed
    assert frame.xdp_adjust_tail(4096) == -EINVAL
    assert frame.xdp_adjust_tail(-(60 + 4 + 8 - 14) - 1) == -EINVAL
    assert frame.xdp_adjust_tail(-(60 + 4 + 8 - 14)) == 0 and len(inv.memory_after()) == 14


def test_sk_buff_fields_and_layers():
    pkt = bytes(12) + b"\x08\x00" + bytes(46)
    tc = context.skb(pkt, struct.pack("<III", 0, 0, 0xBEEF), l2=True)
    sock = context.skb(pkt, l2=False)
    for inv, length in ((tc, 60), (sock, 46)):
        f = inv.ctx.view
        data, end = struct.unpack_from("<II", f, 76)
        assert struct.unpack_from("<I", f, 0)[0] == length == end - data and data < 2**32
        assert struct.unpack_from("<I", f, 16)[0] == 0x0008                # __be16 ETH_P_IP as stored
        assert inv.skb_packets[inv.args[0]] == (data, length)
        assert inv.memory_after() == pkt
    assert struct.unpack_from("<I", tc.ctx.view, 8)[0] == 0xBEEF          # mark from ctx_in
    with pytest.raises(jitbpf.BpfRuntimeError, match="Ethernet"):
        context.skb(b"short")


def test_packet_windows_exist_only_during_a_run():
    rt = Runtime()
    inv = context.skb(bytes(60))
    with inv.active(rt):
        assert inv.args[0] in rt.skb_packets and rt.memory.find(inv.args[0], 192)
    assert not rt.skb_packets and rt.memory.find(inv.args[0], 192) is None


def test_struct_contexts_are_read_only_and_syscall_ones_writable():
    store = "mov %r2, 7\nstxw [%r1], %r2\nmov %r0, 0\nexit"
    obj = jitbpf.assemble(store)
    obj.program().prog_type = "kprobe"
    with pytest.raises(jitbpf.BpfRuntimeError, match="read-only"):
        obj.program().compile().run(ctx=bytes(8))
    obj.program().prog_type = "syscall"
    assert obj.program().compile().run(ctx=bytes(8)).memory == b"\x07" + bytes(7)
    assert context.syscall(None).args == (0,)


def test_for_program_checks_its_inputs():
    with pytest.raises(jitbpf.BpfRuntimeError, match="needs a packet"):
        context.for_program("xdp")
    with pytest.raises(jitbpf.BpfRuntimeError, match="raw program"):
        context.for_program("raw", packet=b"x")
    with pytest.raises(jitbpf.BpfRuntimeError, match="no packet"):
        context.for_program("syscall", packet=b"x")
    assert context.for_program("tc", mem=bytes(20)).kind == "skb"        # mem stands for the packet


def test_snapshot_restore_of_an_invocation():
    inv = context.xdp(b"abcdefghijklmnop")
    state = inv.snapshot()
    inv.contexts[inv.args[0]].xdp_adjust_head(2)
    inv.restore(state)
    assert inv.memory_after() == b"abcdefghijklmnop"


def test_check_reports_map_differences():
    """A fake engine that writes a map differently from interp is caught by check=True."""
    from jitbpf.engines import CompiledProgram
    from jitbpf.runtime import maps as M
    obj = jitbpf.assemble("mov %r0, 0\nexit")
    m = M.create(obj.runtime, "counts", "hash", 4, 4, 4)
    interp = obj.program().compile()

    def bad(*args):
        m.update(1, 99)
        return 0

    fake = CompiledProgram(obj.program(), "fake", bad, None)
    with pytest.raises(jitbpf.BpfMismatchError, match="map 'counts' differs from interp.*key 01000000"):
        fake.run(check=True)
    assert interp.run(check=True).r0 == 0


def test_runtime_errors_name_the_source_line():
    obj = load_fixture("hash_ops")
    with pytest.raises(jitbpf.BpfRuntimeError) as e:
        obj.program().compile().run(ctx=b"\1")          # ctx->base reads 4 bytes of a 1-byte context
    assert e.value.line == obj.program().source_line(e.value.pc)
    assert e.value.line.startswith("hash_ops.bpf.c:") and e.value.line in str(e.value)
