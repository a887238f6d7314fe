"""Ahead-of-time compilation (jitbpf.aot, jitbpf compile): objects and blobs for both arches
and backends equal interp on the original bytecode; the C host example links and runs them;
damaged objects and blobs are one clear error.

Expected values come from interp on the original program (fresh object, same input) or are
computed here; never from the compiled code.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import jitbpf
from jitbpf import aot
from jitbpf.errors import BpfEngineError, BpfLoadError, BpfRuntimeError
from jitbpf.aot.loader import map_picture
from jitbpf.runtime.maps import H_COUNT, BpfMapError

from conftest import FIXTURES, ROOT, cli
from test_fixtures import eth, ipv4, tcp, udp

ARCHS = ["x86_64", "arm64"]
BACKENDS = ["llvm", "direct"]
PACKET = eth(ipv4(6, tcp(80, 0x02)))
MEM = bytes(range(64))
EXAMPLE = ROOT / "jitbpf" / "examples" / "xdp_stats.bpf.o"
PCAP = ROOT / "jitbpf" / "examples" / "traffic.pcap"

#: kfuncs the fixtures call, defined by the host: registered on interp's runtime and given
#: to the loaded object (which leaves them undefined)
KFUNCS = {"jitbpf_mix": lambda rt, a, b, *_: (a * 31 + b) & (2**64 - 1)}


def _with_kfuncs(obj):
    for name, func in KFUNCS.items():
        obj.runtime.helpers.register_kfunc(name, func)
    return obj


def _host_helpers():
    from jitbpf.runtime.helpers import default_registry
    registry = default_registry()
    for name, func in KFUNCS.items():
        registry.register_kfunc(name, func)
    return registry


def _programs():
    for path in sorted(FIXTURES.glob("*.bpf.o")):
        for name in jitbpf.load(path).programs:
            yield path, name


PROGRAMS = list(_programs())


def _inputs(context: str) -> dict:
    return {"xdp": {"packet": PACKET}, "tc": {"packet": PACKET}, "skb": {"packet": PACKET},
            "raw": {"mem": MEM}}.get(context, {"ctx": MEM})


def _outcome(run):
    try:
        r = run()
    except BpfRuntimeError as e:
        return ("error", type(e).__name__)
    return ("ok", r.r0, r.memory, r.trace)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path,name", PROGRAMS, ids=[f"{p.stem.split('.')[0]}-{n}" for p, n in PROGRAMS])
def test_fixture_equals_interp(path, name, arch, backend):
    obj = jitbpf.load(path)
    compiled = aot.compile_programs(obj, [name], arch, backend)
    raw = (arch == "arm64") == (backend == "llvm")           # half the cases through the raw format
    args = compiled.raw() if raw else (compiled.elf(), None)
    loaded = aot.load_compiled(*args, helpers=_host_helpers())
    reference = _with_kfuncs(jitbpf.load(path))
    kw = _inputs(compiled.manifest["programs"][0]["context"])
    for _ in range(2):                                         # maps carry over between runs
        got = _outcome(lambda: loaded.run(name, **kw))
        expected = _outcome(lambda: reference.program(name).compile("interp").run(**kw))
        assert got == expected
    for m in reference.map_list:
        assert map_picture(loaded.maps[m.name]) == map_picture(m), m.name


def _equals_interp(path: Path, name: str, inputs: list[dict], arch: str, backend: str, setup=None) -> list:
    """Runs of every input, compiled and on interp (one object each, maps carrying over, both
    objects first given to ``setup``): equal."""
    setup = setup or (lambda obj: obj)
    loaded = aot.load_compiled(aot.compile_programs(setup(jitbpf.load(path)), None, arch, backend).elf())
    reference = setup(jitbpf.load(path))
    results = []
    for kw in inputs:
        got = _outcome(lambda: loaded.run(name, **kw))
        assert got == _outcome(lambda: reference.program(name).compile("interp").run(**kw)), kw
        results.append(got)
    for m in reference.map_list:
        assert map_picture(loaded.maps[m.name]) == map_picture(m), m.name
    return results


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_tail_calls_by_slot(arch, backend):
    """slot 0: double_it ((5 + 1) * 2), 1: empty (entry goes on: (u32)-1), 2: self_loop until the
    33-tail-call limit (1 + 33 runs), 9: past the array (-1)."""
    runs = _equals_interp(FIXTURES / "tail_calls.bpf.o", "entry",
                          [{"ctx": struct.pack("<II", slot, 5)} for slot in (0, 1, 2, 9, 0)], arch, backend)
    assert [r[1] for r in runs] == [12, 2**32 - 1, 33, 2**32 - 1, 12]           # int -1: a 32-bit mov


def _filled(obj):
    """Maps that hold elements when compiled (maps.py's Python API)."""
    u32 = lambda v: struct.pack("<I", v)
    for name, fill in (("recent", lambda m: [m.update(u32(k), u32(k)) for k in (9, 1, 8)]),
                       ("fifo", lambda m: m.push(u32(7))), ("lifo", lambda m: [m.push(u32(v)) for v in (5, 6)]),
                       ("routes", lambda m: m.update(struct.pack("<I4s", 8, bytes((10, 0, 0, 0))), u32(99))),
                       ("seen", lambda m: m.push(u32(1))), ("events", lambda m: m.reserve(8) and None)):
        if name in obj.maps:
            fill(obj.maps[name])
    return obj


@pytest.mark.parametrize("arch", ARCHS)
def test_maps_holding_elements_when_compiled(arch):
    for fixture, ctx in (("lru", struct.pack("<6I", 1, 2, 3, 4, 5, 8)), ("queue_stack", bytes(48)),
                         ("lpm", struct.pack("<4I", 0x0000000A, 0x0101000A, 0x0302010A, 0x0000A8C0) + bytes(16)),
                         ("bloom", struct.pack("<6I", 1, 2, 7, 14, 15, 99) + bytes(24)),
                         ("ringbuf", struct.pack("<I", 3))):
        runs = _equals_interp(FIXTURES / f"{fixture}.bpf.o", fixture, [{"ctx": ctx}] * 2, arch, "direct", _filled)
        assert all(r[0] == "ok" for r in runs), fixture


@pytest.mark.parametrize("arch", ARCHS)
def test_loops_stopping_early(arch):
    """bpf_loop's callback stops at ctx->n (bpf_loop returns n + 1), Collatz from ctx->start."""
    runs = _equals_interp(FIXTURES / "loops.bpf.o", "loops", [{"ctx": struct.pack("<II", n, 27) + bytes(56)}
                                                               for n in (0, 5, 19, 25)], arch, "llvm")
    looped = [struct.unpack_from("<Q", r[2], 24)[0] for r in runs]
    assert looped == [1, 6, 20, 20] and struct.unpack_from("<Q", runs[0][2], 16)[0] == 111    # steps of 27


CSUM_DIFF = """
mov %r6, %r1
ldxw %r2, [%r6+0]
mov %r3, %r6
add %r3, 64
ldxw %r4, [%r6+4]
ldxw %r5, [%r6+8]
add %r1, 16
call 28
exit
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_csum_diff_equals_interp(arch):
    """bpf_csum_diff in the object against helpers.py: sizes 0 to 40 (odd ones too), seeds
    with carries; mem = from_size, to_size, seed, then from (48 bytes) and to (64)."""
    import random
    compiled = aot.compile_programs(jitbpf.assemble(CSUM_DIFF), None, arch, "direct", verify=False)
    assert "bpf_csum_diff" not in compiled.manifest["helpers"]                 # the object's own
    loaded = aot.load_compiled(compiled.elf())
    fn = jitbpf.assemble(CSUM_DIFF).program().compile("interp", verify=False)
    rng = random.Random(15)
    for _ in range(200):
        sizes = rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 20, 40]), rng.choice([0, 1, 3, 4, 6, 8, 13, 40])
        seed = rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, rng.getrandbits(32)])
        mem = struct.pack("<IIII", *sizes, seed, 0) + rng.randbytes(112)
        assert loaded.run(mem=mem).r0 == fn.run(mem).r0, (sizes, seed)


FOR_EACH_THEN_INSERT = """
lddw %r1, map_fd(0)
lddw %r2, func(cb)
mov %r3, 0
mov %r4, 0
call 164
mov %r6, %r0
stw [%r10-4], 4
stdw [%r10-16], 40
lddw %r1, map_fd(0)
mov %r2, %r10
add %r2, -4
mov %r3, %r10
add %r3, -16
mov %r4, 0
call 2
mov %r0, %r6
exit
cb:
mov %r0, 0
exit
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_for_each_over_hash_kinds(arch):
    """bpf_for_each_map_elem over full (percpu, LRU) hashes, then an insert: the visits, and
    which element an LRU map evicts (for_each's lookups touch every element, in iteration order)."""
    from jitbpf.runtime import maps

    def build(kind):
        obj = jitbpf.assemble(FOR_EACH_THEN_INSERT)
        obj.add_map(maps.create(obj.runtime, "m", kind, 4, 8, 3))
        for k in (3, 1, 2):
            obj.maps["m"].update(k, k * 10)
        return obj
    for kind in ("lru_hash", "lru_percpu_hash", "percpu_hash", "hash"):
        loaded = aot.load_compiled(aot.compile_programs(build(kind), None, arch, "direct", verify=False).elf())
        reference = build(kind)
        got = _outcome(lambda: loaded.run(mem=bytes(8)))
        assert got == _outcome(lambda: reference.program().compile("interp", verify=False).run(bytes(8)))
        assert got[1] == 3 and map_picture(loaded.maps["m"]) == map_picture(reference.maps["m"]), kind
        assert len(reference.maps["m"]) == 3 and (struct.pack("<I", 4) in reference.maps["m"]) == ("lru" in kind)


@pytest.mark.parametrize("cpus", [1, 2])
def test_percpu_maps_of_other_cpu_counts(cpus):
    """The object's per-CPU maps have the CPUs of the runtime it was compiled from."""
    from jitbpf.runtime import Runtime
    path = FIXTURES / "percpu.bpf.o"
    loaded = aot.load_compiled(aot.compile_programs(jitbpf.load(path, runtime=Runtime(num_cpus=cpus)), None,
                                                    "x86_64", "direct").elf())
    reference = jitbpf.load(path, runtime=Runtime(num_cpus=cpus))
    ctx = struct.pack("<IIQ", 5, 0, 0)
    for i in range(2):
        got = _outcome(lambda: loaded.run(ctx=ctx))
        assert got == _outcome(lambda: reference.program().compile("interp").run(ctx=ctx)) and got[1] == 5 * (i + 1)
    for m in reference.map_list:
        assert map_picture(loaded.maps[m.name]) == map_picture(m)
    assert f"#define JITBPF_NUM_CPUS {cpus}" in aot.compile_programs(jitbpf.load(path, runtime=Runtime(num_cpus=cpus)),
                                                                        None, "x86_64").header()


@pytest.mark.parametrize("arch", ARCHS)
def test_an_error_in_a_tail_called_program_names_its_instruction(arch):
    from jitbpf.asm import assemble
    from jitbpf.runtime import maps

    def build():
        obj = jitbpf.assemble("mov %r4, 0\nloop:\nadd %r4, 1\njlt %r4, 3, loop\nlddw %r2, map_fd(0)\nmov %r3, 1\n"
                              "call 12\nmov %r0, 7\nexit", name="first")
        obj.add_program("second", assemble("mov %r0, 1\nmov %r0, 2\nldxw %r0, [%r1+64]\nexit"))
        obj.add_map(maps.create(obj.runtime, "jump", "prog_array", 4, 4, 4))
        obj.maps["jump"].update(1, obj.program("second"))
        return obj
    compiled = aot.compile_programs(build(), None, arch, "direct", verify=False, budget=1000)   # ticks: shifted slots
    first, second = (p["origin"] for p in compiled.manifest["programs"])
    assert first != second[:len(first)]
    loaded = aot.load_compiled(compiled.elf())
    with pytest.raises(BpfRuntimeError, match="out-of-bounds") as ours:
        loaded.run("first", mem=bytes(8))
    with pytest.raises(BpfRuntimeError, match="out-of-bounds") as theirs:
        build().program("first").compile("interp", verify=False, budget=1000).run(bytes(8))
    assert ours.value.pc == theirs.value.pc == 2                # second's instruction 2


@pytest.mark.parametrize("arch", ARCHS)
def test_each_tail_called_program_has_the_budget(arch):
    """interp gives every program of a tail-call chain the whole budget: 1 + 33 runs of self_loop
    pass with a budget of 5 (a few ticks each) and fail with none."""
    path = FIXTURES / "tail_calls.bpf.o"
    for budget in (5, 0):
        loaded = aot.load_compiled(aot.compile_programs(jitbpf.load(path), None, arch, "direct", budget=budget).elf())
        got = _outcome(lambda: loaded.run("self_loop", ctx=bytes(8)))
        assert got == _outcome(lambda: jitbpf.load(path).program("self_loop").compile("interp", budget=budget).run(
            ctx=bytes(8)))
        assert got[:2] == (("ok", 34) if budget else ("error", "BpfRuntimeError"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_packet_contexts_over_more_packets(arch, backend):
    """tc: UDP to 53 (bpf_skb_load_bytes, TC_ACT_REDIRECT), other UDP, TTL 1 (shot), ARP;
    socket filter: UDP to 53 (LD_IND), TCP, a packet too short for LD_ABS (r0 = 0);
    xdp_adjust: a 10-byte frame (its tail cannot shrink: aborted)."""
    udp53, udp80, ttl1 = eth(ipv4(17, udp(53))), eth(ipv4(17, udp(80))), eth(ipv4(17, udp(53), ttl=1))
    arp = eth(bytes(28), 0x0806)
    tc = _equals_interp(FIXTURES / "tc_skb.bpf.o", "tc_skb",
                        [{"packet": p} for p in (udp53, udp80, ttl1, arp, PACKET)], arch, backend)
    assert [r[1] for r in tc] == [7, 0, 2, 0, 0]
    sock = _equals_interp(FIXTURES / "socket_filter.bpf.o", "socket_filter",
                          [{"packet": p} for p in (udp53, PACKET, eth(b"\x45"))], arch, backend)
    assert [r[1] for r in sock] == [len(udp53) - 14, 64, 0]
    xdp = _equals_interp(FIXTURES / "xdp_adjust.bpf.o", "xdp_adjust", [{"packet": PACKET}, {"packet": bytes(10)},
                                                                         {"packet": PACKET}], arch, backend)
    assert [r[1] for r in xdp] == [3, 0, 3] and xdp[0][2][:4] == b"TAG!"


def _errno(op) -> int:
    """maps.py's answer as the C API gives it: 0 or -errno."""
    try:
        op()
    except BpfMapError as e:
        return -e.errno
    return 0


def _chain(next_key) -> list[bytes]:
    keys, k = [], next_key(None)
    while k is not None and len(keys) < 100:
        keys.append(k)
        k = next_key(k)
    return keys


@pytest.mark.parametrize("arch", ARCHS)
def test_c_api_equals_maps_py(arch):
    """The object's C API (called from Python: natively, or in unicorn) against maps.py on
    the same operations: return codes, values, iteration order, LRU eviction, per-CPU values,
    queue and stack order, bloom answers, LPM matches and order."""
    u32 = lambda v: struct.pack("<I", v)
    for fixture, name, ops in (
            ("lru", "recent", [("update", u32(k), u32(k * 10), f) for k, f in
                               ((1, 0), (2, 0), (3, 1), (1, 1), (4, 2), (4, 0), (2, 0), (5, 0), (6, 0))]
             + [("delete", u32(2)), ("delete", u32(9)), ("lookup", u32(4)), ("lookup", u32(1)), ("update", u32(7), u32(0), 3)]),
            ("percpu", "pcpu_arr", [("update", u32(1), bytes(range(32)), 0), ("lookup", u32(1)), ("update", u32(2), bytes(32), 0),
                                    ("update", u32(0), bytes(32), 1)]),
            ("percpu", "pcpu_hash", [("update", u32(3), bytes(range(32)), 0), ("update", u32(3), bytes(32), 1),
                                     ("lookup", u32(3)), ("delete", u32(3)), ("lookup", u32(3))]),
            ("lpm", "routes", [("update", struct.pack("<I4s", plen, bytes(a)), u32(i), 0) for i, (plen, a) in
                               enumerate(((8, (10, 0, 0, 0)), (16, (10, 1, 0, 0)), (24, (10, 1, 2, 0)), (0, (0, 0, 0, 0)),
                                          (12, (10, 16, 99, 99)), (33, (1, 2, 3, 4))))]
             + [("lookup", struct.pack("<I4s", 32, bytes(a))) for a in ((10, 1, 2, 3), (10, 1, 9, 9), (10, 17, 0, 0), (11, 0, 0, 0))]
             + [("delete", struct.pack("<I4s", 16, bytes((10, 1, 7, 7)))), ("delete", struct.pack("<I4s", 16, bytes(4))),
                ("lookup", struct.pack("<I4s", 32, bytes((10, 1, 9, 9))))])):
        loaded = aot.load_compiled(aot.compile_programs(jitbpf.load(FIXTURES / f"{fixture}.bpf.o"), None, arch,
                                                        "direct").elf())
        ours, theirs = loaded.maps[name], jitbpf.load(FIXTURES / f"{fixture}.bpf.o").maps[name]
        for op, *args in ops:
            if op == "update":
                assert ours.update(*args) == _errno(lambda: theirs.update(*args)), (name, op, args)
            elif op == "delete":
                assert ours.delete(*args) == _errno(lambda: theirs.delete(*args)), (name, op, args)
            else:
                assert ours.lookup(*args) == theirs.lookup(*args), (name, op, args)
            assert map_picture(ours) == map_picture(theirs), (name, op, args)
        assert _chain(ours.next_key) == _chain(theirs.get_next_key), name


@pytest.mark.parametrize("arch", ARCHS)
def test_hash_churn_keeps_maps_py_order(arch):
    """Random updates and deletes through the C API and maps.py's API on hash, LRU and per-CPU
    hashes: the same results, the same iteration order, the same index bytes (deleted
    markers, rebuilds and the free elements' reuse included)."""
    import random
    rng = random.Random(7)
    for fixture, name in (("hash_ops", "table"), ("lru", "recent"), ("percpu", "pcpu_hash")):
        loaded = aot.load_compiled(aot.compile_programs(jitbpf.load(FIXTURES / f"{fixture}.bpf.o"), None, arch,
                                                        "direct").elf())
        ours, theirs = loaded.maps[name], jitbpf.load(FIXTURES / f"{fixture}.bpf.o").maps[name]
        size = ours._field("user_value_size")
        for step in range(300):
            key = struct.pack("<I", rng.randrange(3 * theirs.max_entries))
            if rng.random() < 0.4:
                assert ours.delete(key) == _errno(lambda: theirs.delete(key)), (name, step)
            else:
                value, flags = rng.randbytes(size), rng.choice((0, 0, 1, 2))
                assert ours.update(key, value, flags) == _errno(lambda: theirs.update(key, value, flags)), (name, step)
            if step % 25 == 0:
                assert _chain(ours.next_key) == _chain(theirs.get_next_key), (name, step)
        storage = ours._field("bytes")                  # index and elements: maps.py's layout
        assert ctypes.string_at(ours._field("storage"), storage) == bytes(theirs.view[:storage]), name
        fields = struct.unpack_from("<7I", theirs.buffer.view, H_COUNT)   # count .. lru_tail
        assert [ours._field(f) for f in ("count", "tombstones", "free", "fresh")] == list(fields[:4]), name
        assert [ours._field(f) for f in ("lru_head", "lru_tail")] == list(fields[5:]), name
        assert map_picture(ours) == map_picture(theirs)


def _hash_ops(seed: int, max_entries: int, size: int, steps: int) -> list[tuple]:
    """Random deletes and updates (all flags) over 3 x max_entries keys."""
    import random
    rng = random.Random(seed)
    ops = []
    for _ in range(steps):
        key = struct.pack("<I", rng.randrange(3 * max_entries))
        ops.append(("delete", key) if rng.random() < 0.4 else ("update", key, rng.randbytes(size),
                                                               rng.choice((0, 0, 1, 2))))
    return ops


def _churned(fixture: str, name: str):
    """The fixture with map ``name`` churned through maps.py's API, ending with a delete."""
    obj = jitbpf.load(FIXTURES / f"{fixture}.bpf.o")
    m = obj.maps[name]
    size = m.ncpus * m.value_stride if m.percpu else m.value_size    # the C API's value
    for op, key, *rest in _hash_ops(3, m.max_entries, size, 120):
        try:
            m.update(key, *rest) if op == "update" else m.delete(key)
        except BpfMapError:
            pass
    m.delete(m.keys()[0])                       # a free list for the object to go on with
    return obj


@pytest.mark.parametrize("arch", ARCHS)
def test_hash_state_when_compiled_carries_over(arch):
    """Hash, LRU and per-CPU hashes churned through maps.py before compiling (deleted markers,
    a free list, a changed LRU order), then churned further in the object and in maps.py: the
    same results, storage bytes and header fields (count, tombstones, free, fresh, LRU ends)."""
    for fixture, name in (("hash_ops", "table"), ("lru", "recent"), ("percpu", "pcpu_hash")):
        theirs = _churned(fixture, name).maps[name]
        assert bytes(theirs.buffer.view[H_COUNT + 8:H_COUNT + 12]) != bytes(4), name
        ours = aot.load_compiled(aot.compile_programs(_churned(fixture, name), None, arch, "direct").elf()).maps[name]
        for step, (op, *args) in enumerate(_hash_ops(4, theirs.max_entries, ours._field("user_value_size"), 150)):
            if op == "update":
                assert ours.update(*args) == _errno(lambda: theirs.update(*args)), (name, step)
            else:
                assert ours.delete(*args) == _errno(lambda: theirs.delete(*args)), (name, step)
        storage = ours._field("bytes")
        assert ctypes.string_at(ours._field("storage"), storage) == bytes(theirs.view[:storage]), name
        fields = struct.unpack_from("<7I", theirs.buffer.view, H_COUNT)
        assert [ours._field(f) for f in ("count", "tombstones", "free", "fresh")] == list(fields[:4]), name
        assert [ours._field(f) for f in ("lru_head", "lru_tail")] == list(fields[5:]), name
        assert _chain(ours.next_key) == _chain(theirs.get_next_key), name


@pytest.mark.parametrize("arch", ARCHS)
def test_c_api_queues_bloom_ringbuf(arch):
    def load(fixture):
        return aot.load_compiled(aot.compile_programs(jitbpf.load(FIXTURES / f"{fixture}.bpf.o"), None, arch,
                                                      "direct").elf()), jitbpf.load(FIXTURES / f"{fixture}.bpf.o")
    loaded, reference = load("queue_stack")
    for name in ("fifo", "lifo"):
        ours, theirs = loaded.maps[name], reference.maps[name]
        for v, flags in ((1, 0), (2, 0), (3, 0), (4, 0), (4, 2), (5, 1)):
            assert ours.push(struct.pack("<I", v), flags) == _errno(lambda: theirs.push(struct.pack("<I", v), flags))
        assert ours.items() == theirs.items()
        assert ours.peek() == (0, theirs.peek())
        for _ in range(4):
            want = theirs.pop()
            assert ours.pop() == ((0, want) if want is not None else (-2, bytes(4)))
        assert ours.update(b"", struct.pack("<I", 8)) == 0 and ours.items() == [(b"", struct.pack("<I", 8))]
        assert ours.lookup(b"") is None and ours.delete(b"") == -22
    loaded, reference = load("bloom")
    ours, theirs = loaded.maps["seen"], reference.maps["seen"]
    for v in range(0, 100, 7):
        assert ours.push(struct.pack("<I", v)) == 0
        theirs.push(struct.pack("<I", v))
    assert ours.push(struct.pack("<I", 1), 2) == -22
    with pytest.raises(BpfLoadError, match="no jitbpf_map_pop"):
        ours.pop()                                          # bloom filters have no pop
    for v in range(200):
        assert (ours.peek(struct.pack("<I", v))[0] == 0) == (struct.pack("<I", v) in theirs), v
    loaded, reference = load("ringbuf")
    ctx = struct.pack("<I", 5)
    assert loaded.run(ctx=ctx).r0 == reference.program().compile("interp").run(ctx=ctx).r0
    records = reference.maps["events"].drain()
    assert len(records) == 4                                  # events 0, 2, 4 and the output one
    with pytest.raises(BpfRuntimeError, match="-28"):
        loaded.maps["events"].consume(8)                     # too small: -ENOSPC, left in place
    assert [loaded.maps["events"].consume() for _ in range(5)] == [*records, None]
    assert loaded.maps["events"].items() == []
    for n in (40, 50, 60, 30):                             # the producer passes the end: records wrap
        ctx = struct.pack("<I", n)
        assert loaded.run(ctx=ctx).r0 == reference.program().compile("interp").run(ctx=ctx).r0
        assert map_picture(loaded.maps["events"]) == map_picture(reference.maps["events"])
        assert list(iter(loaded.maps["events"].consume, None)) == reference.maps["events"].drain()
    assert loaded.maps["events"]._field("clock") == reference.maps["events"].producer > 4096


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_example_over_the_pcap(arch, backend):
    from jitbpf.pcap import read_pcap
    loaded = aot.load_compiled(aot.compile_programs(jitbpf.load(EXAMPLE), None, arch, backend).elf())
    reference = jitbpf.load(EXAMPLE)
    fn = reference.program().compile("interp")
    for pkt in read_pcap(PCAP):
        got, expected = loaded.run(packet=pkt), fn.run(packet=pkt)
        assert (got.r0, got.memory, got.trace) == (expected.r0, expected.memory, expected.trace)
    assert loaded.maps["stats"].items() == sorted(reference.maps["stats"].items())
    assert len(loaded.maps["stats"].items()) == 5


def test_raw_program_values_computed_here():
    obj = jitbpf.assemble("ldxw %r0, [%r1+0]\nmul %r0, 3\nstxw [%r1+4], %r0\nexit")
    for arch in ARCHS:
        loaded = aot.load_compiled(aot.compile_programs(obj, None, arch, "direct").elf())
        r = loaded.run(mem=struct.pack("<II", 14, 0))
        assert r.r0 == 42 and r.memory == struct.pack("<II", 14, 42)


def test_run_errors_name_the_instruction():
    oob = jitbpf.assemble("ldxw %r0, [%r1+64]\nexit")
    loop = jitbpf.assemble("mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit")
    for arch in ARCHS:
        loaded = aot.load_compiled(aot.compile_programs(oob, None, arch).elf())
        with pytest.raises(BpfRuntimeError, match="out-of-bounds access") as e:
            loaded.run(mem=bytes(8))
        assert e.value.pc == 0
        assert loaded.run(mem=bytes(68)).r0 == 0                 # the next run is fine
        loaded = aot.load_compiled(aot.compile_programs(loop, None, arch, "direct", budget=1000, verify=False).elf())
        with pytest.raises(BpfRuntimeError, match="budget"):
            loaded.run(mem=bytes(8))


def test_what_the_runtime_cannot_give_is_one_line():
    """(Every map type of maps.py is in the runtime, with the elements maps hold when compiled.)"""
    for program, words in ((jitbpf.assemble("call 9\nexit"), "bpf_skb_store_bytes changes the context"),
                           (jitbpf.assemble("mov %r6, %r1\nldabsb 0\nexit"), "LD_ABS/LD_IND need a socket-buffer")):
        with pytest.raises(BpfEngineError) as e:
            aot.compile_programs(program, None, "x86_64", "direct", verify=False)
        assert words in str(e.value) and "\n" not in str(e.value)


def _elf_symbols(data: bytes) -> dict[str, int]:
    from jitbpf.backends.link.elfobj import ElfObject
    return {s.name: s.shndx for s in ElfObject(data).symbols() if s.name}


def test_object_exports_and_undefined_helpers():
    compiled = aot.compile_programs(jitbpf.load(EXAMPLE), None, "x86_64")
    symbols = _elf_symbols(compiled.elf())
    for name in ("xdp_stats", "jitbpf_map_lookup", "jitbpf_map_update", "jitbpf_map_delete", "jitbpf_map_next_key"):
        assert symbols[name] != 0
    assert symbols["bpf_trace_printk"] == 0                      # undefined: the host's
    assert "bpf_map_lookup_elem" in symbols and compiled.manifest["helpers"] == ["bpf_trace_printk"]
    header = compiled.header()
    assert "uint64_t xdp_stats(void *ctx, uint64_t ctx_size);" in header
    assert "struct jitbpf_xdp_md {\n    void *data;\n    void *data_end;\n    void *data_meta;" in header


def test_bpftime_abi():
    obj = jitbpf.assemble("mov %r1, 0\nmov %r2, 0\ncall 6\nmov %r0, 7\nexit")     # trace_printk
    compiled = aot.compile_programs(obj, None, "x86_64", abi="bpftime", verify=False)     # (a NULL format string)
    symbols = _elf_symbols(compiled.elf())
    assert symbols["bpf_main"] != 0 and symbols["_bpf_helper_ext_0006"] == 0
    with pytest.raises(BpfEngineError, match="maps"):
        aot.compile_programs(jitbpf.load(EXAMPLE), None, "x86_64", abi="bpftime")


# ----------------------------------------------------------------------------- damage

@pytest.fixture(scope="module")
def example_elf() -> bytes:
    return aot.compile_programs(jitbpf.load(EXAMPLE), None, "x86_64").elf()


@pytest.fixture(scope="module")
def example_raw() -> tuple[bytes, bytes]:
    return aot.compile_programs(jitbpf.load(EXAMPLE), None, "arm64", "direct").raw()


def _one_line_load_error(*args) -> str:
    with pytest.raises(BpfLoadError) as e:
        aot.load_compiled(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_damaged_objects(example_elf):
    for cut in (10, 64, len(example_elf) // 2, len(example_elf) - 1):
        _one_line_load_error(example_elf[:cut])
    wrong = bytearray(example_elf)
    struct.pack_into("<H", wrong, 18, 40)                       # EM_ARM
    assert "neither x86_64 nor aarch64" in _one_line_load_error(bytes(wrong))
    struct.pack_into("<H", wrong, 18, 183)                      # says aarch64, holds x86_64 code
    assert "wrong architecture: the ELF header says arm64, the manifest says x86_64" in _one_line_load_error(bytes(wrong))
    # the first relocation gets a type the linker does not know
    from jitbpf.backends.link.elfobj import ElfObject
    rela = ElfObject(example_elf).by_name[".rela.text"]
    bad = bytearray(example_elf)
    struct.pack_into("<I", bad, rela.offset + 8, 0x7777)
    assert "relocation type" in _one_line_load_error(bytes(bad))
    manifest = ElfObject(example_elf).by_name[".jitbpf"]
    bad = bytearray(example_elf)
    bad[manifest.offset:manifest.offset + 2] = b"{{"
    assert "bad manifest" in _one_line_load_error(bytes(bad))
    assert "a BPF object" in _one_line_load_error((FIXTURES / "xdp_parse.bpf.o").read_bytes())


def test_damaged_blobs(example_raw):
    blob, manifest = example_raw
    assert "truncated" in _one_line_load_error(blob[:-100], manifest)
    assert "bad manifest" in _one_line_load_error(blob, manifest[:-5])
    m = json.loads(manifest)
    for change, words in ((lambda m: m.pop("relocations"), "bad manifest"),
                          (lambda m: m.update(arch="mips"), "unknown architecture"),
                          (lambda m: m["relocations"][0].__setitem__(1, "bogus"), "unknown kind"),
                          (lambda m: m["relocations"][0].__setitem__(0, 1 << 40), "outside"),
                          (lambda m: m["programs"][0].__setitem__("core", "nothing"), "no entry"),
                          (lambda m: m["maps"][0].__setitem__("type", "devmap"), "known type"),
                          (lambda m: m.update(format="other"), "not a jitbpf-aot-1")):
        damaged = json.loads(manifest)
        change(damaged)
        assert words in _one_line_load_error(blob, json.dumps(damaged).encode())
    assert m["programs"][0]["name"] == "xdp_stats"


# ----------------------------------------------------------------------------- CLI

def test_cli_compile_and_run(tmp_path):
    out = tmp_path / "prog.o"
    r = cli("compile", str(EXAMPLE), "--arch", "arm64", "--backend", "direct", "-o", str(out),
            "--header", str(tmp_path / "prog.h"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["bytes"] == out.stat().st_size and summary["programs"] == ["xdp_stats"]
    r = cli("run", str(out), "--pcap", str(PCAP), "--check", "--source", str(EXAMPLE))
    assert r.returncode == 0 and "10 packets [checked against interp]" in r.stdout, r.stderr
    r = cli("compile", str(EXAMPLE), "--format", "raw", "-o", str(tmp_path / "prog.bin"))
    assert r.returncode == 0 and (tmp_path / "prog.bin.json").exists()
    r = cli("run", str(tmp_path / "prog.bin"), "--packet", PACKET.hex(), "--json", "--dump-maps")
    result = json.loads(r.stdout)
    assert result["r0"] == 2 and result["maps"]["stats"] == [["06000000", struct.pack("<QQ", 1, len(PACKET)).hex()]]
    r = cli("run", str(out), "--packet", "zz")
    assert r.returncode == 2 and r.stderr == "error: --packet: 'zz' is not hex bytes\n"
    (tmp_path / "bad.o").write_bytes(out.read_bytes()[:300])
    r = cli("run", str(tmp_path / "bad.o"))
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_cli_runs_skb_and_tail_call_objects(tmp_path):
    for fixture, program, given in (("tc_skb", "tc_skb", ["--packet", eth(ipv4(17, udp(53))).hex()]),
                                    ("tail_calls", "entry", ["--ctx", struct.pack("<II", 0, 20).hex()])):
        out = tmp_path / f"{fixture}.bin"
        r = cli("compile", str(FIXTURES / f"{fixture}.bpf.o"), "--program", program, "--format", "raw", "-o", str(out))
        assert r.returncode == 0, r.stderr
        r = cli("run", str(out), "--program", program, *given, "--check", "--source", str(FIXTURES / f"{fixture}.bpf.o"),
                "--json")
        result = json.loads(r.stdout)
        assert r.returncode == 0 and result["checked"] and not result["mismatches"], r.stdout + r.stderr
        assert result["r0"] == (7 if fixture == "tc_skb" else 42)          # TC_ACT_REDIRECT; (20 + 1) * 2


# ----------------------------------------------------------------------------- the C host

def _host_run(tmp_path, arch: str, cc: str, runner: list[str]) -> str:
    build = tmp_path / arch
    build.mkdir()
    compiled = aot.compile_programs(jitbpf.load(EXAMPLE), None, arch)
    (build / "xdp_stats.o").write_bytes(compiled.elf())
    (build / "xdp_stats.h").write_text(compiled.header())
    subprocess.run([cc, "-O2", "-no-pie", f"-I{build}", "-o", str(build / "host"),
                    str(ROOT / "examples" / "c_host" / "host.c"), str(build / "xdp_stats.o")],
                   check=True, capture_output=True, timeout=120)
    return subprocess.run([*runner, str(build / "host"), str(PCAP)], check=True, capture_output=True, text=True,
                          timeout=120).stdout


def _expected_host_output() -> str:
    from jitbpf.pcap import read_pcap
    obj = jitbpf.load(EXAMPLE)
    fn = obj.program().compile("interp")
    lines = []
    for i, pkt in enumerate(read_pcap(PCAP)):
        r = fn.run(packet=pkt)
        lines += [f"trace: {t}" for t in r.trace] + [f"packet {i}: r0 = {r.r0}"]
    for key, value in sorted(obj.maps["stats"].items()):
        packets, nbytes = struct.unpack("<QQ", value)
        lines.append(f"stats[0x{int.from_bytes(key, 'little'):x}] = {{packets {packets}, bytes {nbytes}}}")
    return "\n".join(lines) + "\n"


def _sorted_maps(text: str) -> list[str]:
    lines = text.splitlines()
    runs = [line for line in lines if not line.startswith("stats[")]
    return runs + sorted(line for line in lines if line.startswith("stats["))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_host_x86_64(tmp_path):
    if jitbpf.targets.HOST_ARCH != "x86_64":
        pytest.skip("an x86_64 host")
    assert _sorted_maps(_host_run(tmp_path, "x86_64", "gcc", [])) == _sorted_maps(_expected_host_output())


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64") is None,
                    reason="needs aarch64-linux-gnu-gcc and qemu-aarch64")
def test_c_host_arm64_under_qemu(tmp_path):
    out = _host_run(tmp_path, "arm64", "aarch64-linux-gnu-gcc", ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"])
    assert _sorted_maps(out) == _sorted_maps(_expected_host_output())


DRAIN_HOST = r"""
#include <inttypes.h>
#include <stdio.h>
#include "prog.h"

/* -DRINGBUF: runs ringbuf (ctx->n = 5) and drains its ring buffer; -DTC: runs tc_skb twice
 * over one packet (the second time with a zeroed __sk_buff given), prints it and a counter;
 * else runs queue_stack, pushes 9 on its stack and pops it empty. */
int main(void)
{
#ifdef RINGBUF
    uint32_t n = 5;
    unsigned char rec[64];
    int64_t len;
    printf("r0 = %" PRIu64 "\n", ringbuf(&n, sizeof n));
    while ((len = jitbpf_ringbuf_consume("events", rec, sizeof rec)) > 0) {
        printf("record");
        for (int64_t i = 0; i < len; i++)
            printf(" %02x", rec[i]);
        printf("\n");
    }
#elif defined(TC)
    unsigned char packet[] = {PACKET};
    uint64_t bytes;
    for (int round = 0; round < 2; round++) {
        struct jitbpf_skb_md md = {packet, packet + sizeof packet, {0}};
        printf("r0 = %" PRIu64 "\n", tc_skb(&md, round ? sizeof md : 16));
    }
    printf("packet");
    for (unsigned i = 0; i < sizeof packet; i++)
        printf(" %02x", packet[i]);
    printf("\n");
    if (jitbpf_map_lookup("bytes_seen", &(uint32_t){1}, &bytes) == 0)
        printf("udp bytes %" PRIu64 "\n", bytes);
#else
    unsigned char args[48] = {0};
    uint32_t v = 9;
    printf("r0 = %" PRIu64 "\n", queue_stack(args, sizeof args));
    printf("push %d\n", jitbpf_map_push("lifo", &v, 0));
    while (jitbpf_map_pop("lifo", &v) == 0)
        printf("pop %u\n", v);
    printf("empty %d\n", jitbpf_map_pop("lifo", &v));
#endif
    printf("error %d\n", jitbpf_last_error(NULL, NULL));
    return 0;
}
"""


TC_PACKET = eth(ipv4(17, udp(53)))


def _drain_expected(fixture: str) -> str:
    """What the host prints, from interp and maps.py on the original object."""
    obj = jitbpf.load(FIXTURES / f"{fixture}.bpf.o")
    if fixture == "tc_skb":
        fn, packet = obj.program().compile("interp"), TC_PACKET
        lines = []
        for _ in range(2):
            r = fn.run(packet=packet)
            lines.append(f"r0 = {r.r0}")
            packet = r.memory
        lines.append("packet " + " ".join(f"{b:02x}" for b in packet))
        lines.append(f"udp bytes {struct.unpack('<Q', obj.maps['bytes_seen'][1])[0]}")
    elif fixture == "ringbuf":
        lines = [f"r0 = {obj.program().compile('interp').run(ctx=struct.pack('<I', 5)).r0}"]
        lines += ["record " + " ".join(f"{b:02x}" for b in r) for r in obj.maps["events"].drain()]
    else:
        lines = [f"r0 = {obj.program().compile('interp').run(ctx=bytes(48)).r0}", "push 0"]
        lifo = obj.maps["lifo"]
        lifo.push(struct.pack("<I", 9))
        while (v := lifo.pop()) is not None:
            lines.append(f"pop {struct.unpack('<I', v)[0]}")
        lines.append("empty -2")
    return "\n".join(lines + ["error 0"]) + "\n"


@pytest.mark.parametrize("arch", ARCHS)
def test_c_host_drains_ringbuf_and_stack_runs_tc(tmp_path, arch):
    cc, runner = ("gcc", []) if arch == "x86_64" else \
        ("aarch64-linux-gnu-gcc", ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"])
    if shutil.which(cc) is None or (runner and shutil.which(runner[0]) is None) or \
            (arch == "x86_64" and jitbpf.targets.HOST_ARCH != "x86_64"):
        pytest.skip(f"needs {cc}" + (f" and {runner[0]}" if runner else "") + " (and an x86_64 host for x86_64)")
    (tmp_path / "host.c").write_text(DRAIN_HOST)
    for fixture in ("ringbuf", "queue_stack", "tc_skb"):
        compiled = aot.compile_programs(jitbpf.load(FIXTURES / f"{fixture}.bpf.o"), None, arch)
        (tmp_path / f"{fixture}.o").write_bytes(compiled.elf())
        (tmp_path / "prog.h").write_text(compiled.header())
        exe = tmp_path / fixture
        flags = {"ringbuf": ["-DRINGBUF"], "tc_skb": ["-DTC", "-DPACKET=" + ",".join(str(b) for b in TC_PACKET)]}
        subprocess.run([cc, "-O2", "-no-pie", f"-I{tmp_path}", *flags.get(fixture, []),
                        "-o", str(exe), str(tmp_path / "host.c"), str(tmp_path / f"{fixture}.o")],
                       check=True, capture_output=True, timeout=120)
        out = subprocess.run([*runner, str(exe)], check=True, capture_output=True, text=True, timeout=120).stdout
        assert out == _drain_expected(fixture), fixture


def test_disasm_native_interleaves_bpf_c_and_native():
    r = cli("disasm", str(EXAMPLE), "--native", "--arch", "arm64", "--backend", "direct")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    c_line = next(i for i, line in enumerate(lines) if line.startswith("    // xdp_stats.bpf.c:24: void *data"))
    bpf = next(i for i, line in enumerate(lines) if i > c_line and line.startswith("    ; "))
    assert any(line.startswith("  ") and "ldr" in line for line in lines[bpf:bpf + 20])


def test_cli_quality(tmp_path):
    for command in ("run", "info", "compile", "disasm", "verify", "conformance", "asm", "plugin", "filter", "fuzz",
                    "bench", "cbpf"):
        r = cli(command, "--help")
        assert r.returncode == 0 and "examples:" in r.stdout, command
    info = json.loads(cli("info", str(EXAMPLE), "--json").stdout)
    assert info["programs"][0]["name"] == "xdp_stats" and info["maps"][0]["name"] == "stats"
    r = cli("run", str(EXAMPLE), "--program", "xdp_stats", "--packet", PACKET.hex(), "--json", "--check")
    assert json.loads(r.stdout)["r0"] == 2
    r = cli("run", str(FIXTURES / "nope.o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = cli("--debug", "run", str(FIXTURES / "nope.o"))
    assert r.returncode != 0 and "Traceback" in r.stderr
    r = cli("run", str(ROOT / "jitbpf" / "examples" / "fib.asm"), "-X", "budget=3", "--mem-hex", "00" * 20)
    assert r.returncode == 1 and r.stderr.count("\n") == 1          # the run failed: budget


def test_conformance_plugin_console_script():
    script = shutil.which("jitbpf-conformance-plugin", path=str(Path(__import__("sys").executable).parent))
    assert script is not None
    program = "b4 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00"              # mov32 r0, 42; exit
    r = subprocess.run([script, "00 11", "--engine", "direct"], input=program, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout == "2a\n"


def test_all_programs_in_one_object():
    path = FIXTURES / "multi_prog.bpf.o"
    compiled = aot.compile_programs(jitbpf.load(path), None, "arm64", "llvm")
    names = [p["name"] for p in compiled.manifest["programs"]]
    assert len(names) == len(jitbpf.load(path).programs) > 1
    symbols = _elf_symbols(compiled.elf())
    assert all(symbols[n] != 0 for n in names)
    loaded = aot.load_compiled(compiled.elf())
    for name, p in zip(names, compiled.manifest["programs"]):
        kw = dict(_inputs(p["context"]), **({"ctx": bytes(256)} if "ctx" in _inputs(p["context"]) else {}))
        expected = _outcome(lambda: jitbpf.load(path).program(name).compile("interp").run(**kw))
        assert _outcome(lambda: loaded.run(name, **kw)) == expected
        assert expected[0] == "ok"
