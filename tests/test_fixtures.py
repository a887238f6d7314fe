"""Every clang fixture (tests/fixtures/*.bpf.o) on every engine.

Each case runs with ``check=True`` (so every engine other than interp is compared
with interp on r0, the memory after the run and every map) and then checks the
outcome against values computed here in Python, independently of jitbpf.
The objects are the committed ones: no clang needed.
"""

from __future__ import annotations

import random
import socket
import struct
from collections import OrderedDict

import pytest

import jitbpf
from jitbpf.runtime import Task

from conftest import FIXTURES, load_fixture as load

ENGINES = [e for e in jitbpf.available_engines() if e != "kernel"]
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX = 0, 1, 2, 3
TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
ENOENT, E2BIG, EFAULT, EEXIST, EINVAL, ERANGE = 2, 7, 14, 17, 22, 34

#: (fixture, engine) -> reason, for engine bugs that are not the runtime's (strict xfail).
KNOWN_ENGINE_BUGS: dict[tuple[str, str], str] = {}


def run(obj, engine, program=None, **kw) -> jitbpf.Result:
    return obj.program(program).compile(engine).run(check=True, **kw)


def u64(b: bytes, i: int = 0) -> int:
    return int.from_bytes(b[8 * i:8 * i + 8], "little")


def s64(b: bytes, i: int = 0) -> int:
    return int.from_bytes(b[8 * i:8 * i + 8], "little", signed=True)


def s32(x: int) -> int:
    x &= 0xFFFF_FFFF
    return x - (1 << 32) if x >> 31 else x


def value(m, key) -> int:
    v = m.lookup(key)
    return None if v is None else int.from_bytes(v, "little")


# ----------------------------------------------------------------------------- packets

def checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def ipv4(proto: int, payload: bytes, ttl: int = 64, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, 0, 20 + len(options) + len(payload), 1, 0, ttl, proto, 0,
                      socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")) + options
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def eth(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return MAC_A + MAC_B + struct.pack("!H", ethertype) + payload


def tcp(dport: int, flags: int, sport: int = 40000) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 1024, 0, 0)


def udp(dport: int, payload: bytes = b"hello", sport: int = 5353) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


SYN, ACK = 0x02, 0x10


def frames(engine, packets):
    """The packets an engine can be given: BPF_PROG_TEST_RUN refuses XDP frames shorter
    than an Ethernet header, so the kernel engine runs the others only."""
    return [p for p in packets if engine != "kernel" or len(p) >= 14]


# ----------------------------------------------------------------------------- cases

def case_xdp_parse(engine):
    """Verdicts and counters from an independent parse of each packet."""
    packets = frames(engine, [eth(ipv4(6, tcp(80, SYN))), eth(ipv4(6, tcp(80, ACK))), eth(ipv4(6, tcp(23, ACK))),
               eth(ipv4(17, udp(53))), eth(b"\x00" * 28, 0x0806), eth(b"")[:10],
               eth(ipv4(6, tcp(443, SYN), options=b"\x01\x01\x01\x00")), eth(ipv4(6, tcp(80, SYN))[:30])])
    obj = load("xdp_parse")
    protos: dict[int, int] = {}
    ports: dict[int, int] = {}
    for pkt in packets:
        want, out = XDP_PASS, pkt
        if len(pkt) < 14:
            want = XDP_DROP
        elif pkt[12:14] == b"\x08\x00":
            ihl = pkt[14] & 15
            proto = pkt[23]
            protos[proto] = protos.get(proto, 0) + 1
            l4 = 14 + 4 * ihl
            if proto == 6:
                if len(pkt) < l4 + 20:
                    want = XDP_DROP
                else:
                    port = int.from_bytes(pkt[l4 + 2:l4 + 4], "big")
                    ports[port] = ports.get(port, 0) + 1
                    flags = pkt[l4 + 13]
                    if port == 23:
                        want = XDP_DROP
                    elif port == 80 and flags & SYN and not flags & ACK:
                        want, out = XDP_TX, pkt[6:12] + pkt[0:6] + pkt[12:]
        res = run(obj, engine, packet=pkt)
        assert (res.r0, res.memory) == (want, out), pkt.hex()
    counts = obj.maps["proto_count"]
    assert {i: value(counts, i) for i in range(256) if value(counts, i)} == protos
    assert {int.from_bytes(k, "little"): int.from_bytes(v, "little")
            for k, v in obj.maps["tcp_ports"].items()} == ports


def case_hash_ops(engine):
    for base in (0, 1000):
        obj = load("hash_ops")
        res = run(obj, engine, ctx=struct.pack("<I", base))
        results = obj.maps[".bss"].lookup(0)
        assert [s64(results, i) for i in range(12)] == [0, -EEXIST, -ENOENT, 0, 12, -ENOENT, 0, -E2BIG, 0, 0,
                                                         0xDEAD, -EINVAL]
        assert s32(res.r0) == -EEXIST - ENOENT
        table = {int.from_bytes(k, "little"): u64(v) for k, v in obj.maps["table"].items()}
        assert table == {base + 1: 12, base + 2: 20, base + 4: 140, base + 5: 50}


def case_hash_stable(engine):
    """The kernel's answer (issue 13): the old pointer still reads 111, aliases a new
    lookup, and a write through it is the element's value."""
    obj = load("hash_stable")
    res = run(obj, engine, ctx=bytes(8))
    results = obj.maps[".bss"].lookup(0)
    assert [s64(results, i) for i in range(3)] == [111, 1, 112]
    assert res.r0 == 0
    table = {int.from_bytes(k, "little"): u64(v) for k, v in obj.maps["table"].items()}
    assert table == {108: 112, 204: 0}


def case_percpu(engine):
    obj = load("percpu")
    rt = obj.runtime
    per_cpu = [0] * rt.num_cpus
    for cpu, add in ((0, 5), (1, 7), (0, 1)):      # CPUs 0 and 1: the kernel engine needs real ones
        rt.cpu = cpu
        res = run(obj, engine, ctx=struct.pack("<IIQ", add, 99, 0))
        per_cpu[cpu] += add
        assert res.r0 == sum(per_cpu)
        assert struct.unpack("<IIQ", res.memory) == (add, cpu, sum(per_cpu))
    assert [u64(v) for v in obj.maps["pcpu_arr"].lookup_percpu(1)] == per_cpu
    hashed = obj.maps["pcpu_hash"]
    for cpu in (0, 1):
        want = [per_cpu[cpu] if c == cpu else 0 for c in range(rt.num_cpus)]
        assert [int.from_bytes(v, "little") for v in hashed.lookup_percpu(cpu)] == want
    assert len(hashed) == 2


def case_lru(engine):
    for touch in (1, 3):
        obj = load("lru")
        keys = [1, 2, 3, 4, 5]
        res = run(obj, engine, ctx=struct.pack("<6I", *keys, touch))
        model: OrderedDict[int, int] = OrderedDict()
        for i, k in enumerate(keys):
            if i == 3:
                model.move_to_end(touch)
            if len(model) == 3 and k not in model:
                model.popitem(last=False)
            model[k] = 10 * k
        assert res.r0 == 5
        assert {int.from_bytes(k, "little"): int.from_bytes(v, "little")
                for k, v in obj.maps["recent"].items()} == dict(model)


def case_lpm(engine):
    routes = {("10.0.0.0", 8): 1, ("10.1.0.0", 16): 2, ("10.1.2.0", 24): 3, ("192.168.0.0", 16): 4}

    def best(addr: str) -> int:
        a = int.from_bytes(socket.inet_aton(addr), "big")
        match = [(plen, rid) for (net, plen), rid in routes.items()
                 if a >> (32 - plen) == int.from_bytes(socket.inet_aton(net), "big") >> (32 - plen)]
        return max(match)[1] if match else 0

    addrs = ["10.1.2.3", "10.1.9.9", "10.200.0.1", "8.8.8.8"]
    obj = load("lpm")
    res = run(obj, engine, ctx=b"".join(socket.inet_aton(a) for a in addrs) + bytes(16))
    assert res.r0 == 0
    assert list(struct.unpack("<4I", res.memory[16:])) == [best(a) for a in addrs]
    del routes[("10.1.2.0", 24)]
    trie = obj.maps["routes"]
    assert {(k[0], socket.inet_ntoa(k[4:])): int.from_bytes(v, "little") for k, v in trie.items()} == \
        {(plen, net): rid for (net, plen), rid in routes.items()}
    assert value(trie, bytes([32, 0, 0, 0]) + socket.inet_aton("10.1.2.3")) == 2


def case_queue_stack(engine):
    obj = load("queue_stack")
    res = run(obj, engine, ctx=bytes(48))
    push_full = struct.unpack("<2q", res.memory[:16])
    fifo_out, lifo_out = struct.unpack("<3I", res.memory[16:28]), struct.unpack("<3I", res.memory[28:40])
    assert push_full == (-E2BIG, 0)
    assert fifo_out == (2, 3, 4)            # 1 was dropped by the BPF_EXIST push of 4
    assert lifo_out == (4, 3, 2)
    assert struct.unpack("<q", res.memory[40:48])[0] == -ENOENT
    assert obj.maps["fifo"].items() == [(b"", (4).to_bytes(4, "little"))]
    assert len(obj.maps["lifo"]) == 0


def case_ringbuf(engine):
    obj = load("ringbuf")
    rb = obj.maps["events"]
    record = 24                                   # 16-byte event + 8-byte header, 8-aligned
    res = run(obj, engine, ctx=struct.pack("<I", 5))
    assert res.r0 == 6 * record
    events = [struct.unpack("<II8s", r) for r in rb.drain()]
    assert events == [(i, i * i, b"reserve\0") for i in (0, 2, 4)] + [(1000, 0, b"output\0\0")]
    fits = 4096 // record                         # records until the ring is full
    got = []
    for _ in range(3):
        got.append(s32(run(obj, engine, ctx=struct.pack("<I", 64)).r0))
    assert got[:2] == [65 * record, 130 * record] and got[2] == -1
    third = fits - 130                            # reserves that still fit in the third run
    expected = 2 * ([(i, i * i) for i in range(0, 64, 2)] + [(1000, 0)]) + [(i, i * i) for i in range(0, third, 2)]
    assert [struct.unpack("<II", r[:8]) for r in rb.drain()] == expected
    res = run(obj, engine, ctx=struct.pack("<I", 64))   # wraps around the end of the ring
    assert res.r0 == 65 * record
    assert [struct.unpack("<II", r[:8]) for r in rb.drain()] == [(i, i * i) for i in range(0, 64, 2)] + [(1000, 0)]


def case_bloom(engine):
    obj = load("bloom")
    probes = [7, 14, 98, 5, 50, 1]
    added = set(range(0, 100, 7))
    res = run(obj, engine, ctx=struct.pack("<6I", *probes) + bytes(24))
    found = struct.unpack("<6i", res.memory[24:])
    assert found == tuple(0 if p in added else -ENOENT for p in probes)
    assert res.r0 == sum(p in added for p in probes)
    assert all(v in obj.maps["seen"] for v in added)


def case_tail_calls(engine):
    obj = load("tail_calls")
    res = run(obj, engine, "entry", ctx=struct.pack("<II", 0, 5))
    assert (res.r0, res.memory) == (12, struct.pack("<II", 0, 12))
    res = run(obj, engine, "entry", ctx=struct.pack("<II", 1, 5))
    assert (s32(res.r0), res.memory) == (-1, struct.pack("<II", 1, 6))
    res = run(obj, engine, "entry", ctx=struct.pack("<II", 2, 5))
    assert res.r0 == 33                           # Linux MAX_TAIL_CALL_CNT
    assert int.from_bytes(obj.maps[".bss"].lookup(0)[:4], "little") == 33


def case_globals(engine):
    squares = [i * i for i in range(8)]
    for scale in (3, 5):
        obj = load("globals")
        m, off, size = obj.variables["scale"]
        if scale != 3:
            m.view[off:off + size] = scale.to_bytes(4, "little")     # like a skeleton's rodata
        counter, hits, stats = 100, 0, [7] * 4
        for index in (3, 10):
            i = index & 7
            counter += squares[i] * scale
            hits += 1
            stats[i & 3] += 1
            res = run(obj, engine, ctx=struct.pack("<I", index))
            message = f"{i}^2={squares[i]}, counter {counter:05d}"
            assert res.trace == [f"index {i} square {squares[i]}", f"counter={counter} hits={hits} name=jit"]
            assert res.r0 == len(message) + 1
            mm, moff, _ = obj.variables["message"]
            assert bytes(mm.view[moff:moff + len(message) + 1]) == message.encode() + b"\0"
        for name, want in (("counter", counter), ("hits", hits)):
            vm, voff, vsize = obj.variables[name]
            assert int.from_bytes(vm.view[voff:voff + vsize], "little") == want
        assert list(struct.unpack("<4I", obj.maps[".data.stats"].lookup(0))) == stats


def case_subprogs(engine):
    def fill(seed):
        return [seed + i for i in range(8)]

    for x in (5, 12):
        sq = x * x
        level4 = fill(x + 1)[0] + fill(x + 1)[7] + 1
        out = [sq, x + sq + 2 * x, 4 * x, level4 * 2 + sq, fill(x)[3]]
        obj = load("subprogs")
        res = run(obj, engine, ctx=struct.pack("<6I", x, *[0] * 5))
        assert list(struct.unpack("<5I", res.memory[4:])) == out
        assert res.r0 == out[0] + out[4]


def case_loops(engine):
    for n, start in ((10, 27), (30, 97)):
        s = 0
        for i in range(min(n, 100)):
            s = (s ^ i) + i * i
        x, steps = start, 0
        while x != 1 and steps < 150:
            x = 3 * x + 1 if x & 1 else x // 2
            steps += 1
        looped = n + 1 if n < 20 else 20
        cb_sum = sum(3 * i for i in range(min(n, 20)))
        arr_sum = sum((k + 1) * (k + 1) for k in range(8))
        hash_sum = sum(10 * k * (k + 1) for k in range(0, 8, 2))
        obj = load("loops")
        res = run(obj, engine, ctx=struct.pack("<II7Q", n, start, *[0] * 7))
        assert struct.unpack("<7Q", res.memory[8:]) == (s, steps, looped, cb_sum, arr_sum, hash_sum, 12)


def case_spinlock(engine):
    obj = load("spinlock")
    count = total = 0
    per_key: dict[int, tuple[int, int]] = {}
    for amount in (5, 6, 9):
        count, total = count + 1, total + amount
        c, t = per_key.get(amount & 3, (0, 0))
        per_key[amount & 3] = (c + 1, t + amount)
        assert run(obj, engine, ctx=struct.pack("<I", amount)).r0 == count
    assert struct.unpack("<IIQQ", obj.maps["locked"].lookup(0)) == (0, 0, count, total)
    assert {int.from_bytes(k, "little"): struct.unpack("<IIQQ", v)[2:]
            for k, v in obj.maps["locked_hash"].items()} == per_key


def case_atomics(engine):
    a = 10
    obj = load("atomics")
    res = run(obj, engine, ctx=struct.pack("<9Q", a, *[0] * 8))
    g64, g32, old = 100 + a, 0xF0, []
    old.append(g64); g64 += 1                          # noqa: E702
    old.append(g32); g32 |= 0x0F                       # noqa: E702
    old.append(g32); g32 &= 0x3C                       # noqa: E702
    old.append(g64); g64 ^= 0xFF                       # noqa: E702
    old.append(g32); g32 = 77                          # noqa: E702
    old.append(g64)                                    # cmpxchg(0 -> 5) fails
    old.append(g64); g64 = 9                           # noqa: E702
    cell = a | 0x1000
    old.append(cell); cell ^= 1                        # noqa: E702
    assert list(struct.unpack("<8Q", res.memory[8:])) == old
    assert res.r0 == g32
    m, off, _ = obj.variables["g64"]
    assert u64(bytes(m.view[off:off + 8])) == g64
    m, off, _ = obj.variables["g32"]
    assert int.from_bytes(m.view[off:off + 4], "little") == g32
    assert u64(obj.maps["cell"].lookup(0)) == cell


def case_cpuv4(engine):
    def tdiv(x, y):
        q = abs(x) // abs(y)
        return q if (x < 0) == (y < 0) else -q

    def bswap(v, n):
        return int.from_bytes((v & ((1 << 8 * n) - 1)).to_bytes(n, "little"), "big")

    obj = load("cpuv4")
    insns = obj.program().insns
    assert any(i.opcode == 0x3F and i.off == 1 for i in insns)                  # sdiv
    assert {0x91, 0xD7} <= {i.opcode for i in insns}                            # ldsxb, bswap
    for a, b, c, d in ((-17, 5, -7, 2), (1 << 40, -3, 100, -7), (-(1 << 63), -1, -(1 << 31), -1)):
        res = run(obj, engine, ctx=struct.pack("<qqiibxhi10q", a, b, c, d, -3, -300, -70000, *[0] * 10))
        out = list(struct.unpack("<10q", res.memory[32:]))
        q64 = tdiv(a, b) if (a, b) != (-(1 << 63), -1) else a
        q32 = tdiv(c, d) if (c, d) != (-(1 << 31), -1) else c
        want = [s64(q64.to_bytes(9, "little", signed=True)[:8]), a - b * q64 if (a, b) != (-(1 << 63), -1) else 0,
                q32, c - d * q32 if (c, d) != (-(1 << 31), -1) else 0, -3, -300, -70000,
                s64(((a & 0xFF) - (256 if a & 0x80 else 0)).to_bytes(8, "little", signed=True)),
                s64(bswap(a, 8).to_bytes(8, "little")), (bswap(c, 4) + bswap(d, 2)) & 0xFFFF_FFFF]
        assert out == want
        assert s32(res.r0) == s32(out[0] + out[2])


def case_tc_skb(engine):
    obj = load("tc_skb")
    seen = {1: 0, 2: 0, 3: 0}
    cases = [(eth(ipv4(17, udp(53))), TC_ACT_REDIRECT, 1), (eth(ipv4(17, udp(99))), TC_ACT_OK, 1),
             (eth(ipv4(6, tcp(80, SYN))), TC_ACT_OK, 2), (eth(ipv4(1, b"ping" * 4)), TC_ACT_OK, 3),
             (eth(ipv4(17, udp(53), ttl=1)), TC_ACT_SHOT, None), (eth(b"\x00" * 28, 0x0806), TC_ACT_OK, None)]
    for pkt, verdict, key in cases:
        res = run(obj, engine, packet=pkt)
        assert res.r0 == verdict
        if key is None:
            assert res.memory == pkt
            continue
        seen[key] += len(pkt)
        hdr = res.memory[14:34]
        assert hdr[8] == pkt[22] - 1 and checksum(hdr) == 0                  # TTL - 1, valid checksum
        assert res.memory[:22] + res.memory[23:24] + res.memory[34:] == pkt[:22] + pkt[23:24] + pkt[34:]
    assert {k: u64(obj.maps["bytes_seen"].lookup(k)) for k in (1, 2, 3)} == seen


def case_socket_filter(engine):
    obj = load("socket_filter")
    for pkt, keep in ((eth(ipv4(17, udp(53))), "all"), (eth(ipv4(17, udp(54))), 0),
                      (eth(ipv4(6, tcp(22, ACK))), 64), (eth(ipv4(1, b"x" * 8)), 0)):
        res = run(obj, engine, packet=pkt)
        assert res.r0 == (len(pkt) - 14 if keep == "all" else keep)
        assert res.memory == pkt


def case_helpers_misc(engine):
    obj = load("helpers_misc")
    rt = obj.runtime
    rt.task = Task(pid=1234, tgid=1200, uid=1000, gid=100, comm=b"tester")
    rt.fixed_clock_ns = 5_000_000_000
    rt.rng = random.Random(42)
    words = [1, 2, 3, 0xFFFF_FFFF]
    ctx = b"jitbpf".ljust(16, b"\0") + struct.pack("<4I", *words) + bytes(176 - 32)
    res = run(obj, engine, ctx=ctx)
    mem = res.memory
    expect_rng = random.Random(42)
    csum = sum(int.from_bytes(struct.pack("<4I", *words)[i:i + 2], "little") for i in range(0, 16, 2))
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)                 # 16-bit one's complement sum
    assert struct.unpack("<3q", mem[32:56]) == (0, -1, 1)
    assert struct.unpack("<I", mem[56:60])[0] == csum
    assert struct.unpack("<3q", mem[64:88]) == (0, -ERANGE, 7)      # (void *)16: not a kernel address
    assert mem[88:96] == b"jitbpf\0\0" and mem[96:112] == b"tester".ljust(16, b"\0")
    assert struct.unpack("<8Q", mem[112:176]) == (
        1200 << 32 | 1234, 100 << 32 | 1000, 5_000_000_000, 5_000_000_000, 5_000_000_000 // 4_000_000,
        expect_rng.getrandbits(32), expect_rng.getrandbits(32), 0)
    assert res.r0 == 0                       # the faulting probe_read zeroed its buffer


def case_legacy_maps(engine):
    obj = load("legacy_maps")
    assert [(m.name, m.type_name, m.key_size, m.value_size, m.max_entries) for m in obj.map_list] == \
        [("legacy_counts", "array", 4, 8, 4), ("legacy_hash", "hash", 8, 4, 16)]
    key = 0x1122334455667788
    for n in (1, 2):
        assert run(obj, engine, ctx=struct.pack("<IxxxxQ", 5, key)).r0 == n
    assert value(obj.maps["legacy_counts"], 1) == 2
    assert value(obj.maps["legacy_hash"], key) == 2001


def case_multi_prog(engine):
    obj = load("multi_prog")
    assert {p.name: p.prog_type for p in obj.programs.values()} == {
        "xdp_pass_all": "xdp", "xdp_drop_small": "xdp", "kprobe_open": "kprobe", "tp_openat": "tracepoint",
        "raw_enter": "raw_tracepoint"}
    assert run(obj, engine, "xdp_pass_all", packet=bytes(64)).r0 == XDP_PASS
    assert run(obj, engine, "xdp_drop_small", packet=bytes(40)).r0 == XDP_DROP
    assert run(obj, engine, "xdp_drop_small", packet=bytes(100)).r0 == XDP_PASS
    regs = [0] * 21
    regs[13] = 77                                  # rsi in x86_64 struct pt_regs
    assert run(obj, engine, "kprobe_open", ctx=struct.pack("<21Q", *regs)).r0 == 0
    assert run(obj, engine, "tp_openat", ctx=struct.pack("<Qq4Q", 0, 257, 0, 0, 0x241, 0)).r0 == 257
    assert run(obj, engine, "raw_enter", ctx=struct.pack("<2Q", 0, 9)).r0 == 1
    assert [value(obj.maps["calls"], i) for i in range(5)] == [1, 2, 77, 0x241, 9]


def case_kfunc(engine):
    obj = load("kfunc")
    assert obj.program().kfuncs and set(obj.program().kfuncs.values()) == {"jitbpf_mix"}
    obj.runtime.helpers.register_kfunc("jitbpf_mix", lambda rt, a, b, *_: (a * 31 + b) & (2**64 - 1))
    a, b = 7, 1 << 40
    res = run(obj, engine, ctx=struct.pack("<3Q", a, b, 0))
    assert u64(res.memory, 2) == (a * 31 + b + b * 31 + 1) & (2**64 - 1)


def case_xdp_adjust(engine):
    obj = load("xdp_adjust")
    pkt = eth(ipv4(17, udp(7, b"payload!")))
    res = run(obj, engine, packet=pkt)
    assert (res.r0, res.memory) == (XDP_TX, b"TAG!" + pkt[:-2])
    for short in frames(engine, [bytes(range(10))]):
        res = run(obj, engine, packet=short)      # trimming would leave less than an Ethernet header
        assert (res.r0, res.memory) == (XDP_ABORTED, b"TAG!" + short)


CASES = {name[5:]: f for name, f in sorted(globals().items()) if name.startswith("case_")}


def _params():
    for name in CASES:
        for engine in ENGINES:
            reason = KNOWN_ENGINE_BUGS.get((name, engine))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(name, engine, id=f"{name}-{engine}", marks=marks)


@pytest.mark.parametrize("fixture, engine", list(_params()))
def test_fixture(fixture, engine):
    CASES[fixture](engine)


def test_every_fixture_has_a_case():
    sources = {p.name.removesuffix(".bpf.c") for p in FIXTURES.glob("*.bpf.c")}
    assert sources == set(CASES)
    assert len(sources) >= 15
    for name in sources:
        assert (FIXTURES / f"{name}.bpf.o").is_file(), f"{name}.bpf.o is not built (make fixtures)"
