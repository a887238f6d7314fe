"""Maps: Linux semantics through the Python API, the storage layout native code relies
on, and cross-check snapshots. Expected values come from plain Python models."""

from __future__ import annotations

import struct
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbpf
from jitbpf.runtime import Runtime
from jitbpf.runtime import maps as M

ANY, NOEXIST, EXIST = 0, 1, 2


def new(kind, key_size=4, value_size=8, max_entries=4, flags=0, extra=0, rt=None):
    return M.create(rt or Runtime(), "m", kind, key_size, value_size, max_entries, flags, extra)


def errno_of(fn, *args):
    with pytest.raises(M.BpfMapError) as e:
        fn(*args)
    return e.value.errno


def fnv1a32(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) % 2**32
    return h


# ----------------------------------------------------------------------------- arrays

def test_array_semantics():
    a = new("array", max_entries=3)
    assert a.lookup(1) == bytes(8)                        # every element exists, zeroed
    a.update(1, 42)
    assert a[1] == (42).to_bytes(8, "little")
    assert errno_of(a.update, 1, 7, NOEXIST) == M.EEXIST
    assert errno_of(a.update, 3, 7) == M.E2BIG
    assert errno_of(a.delete, 1) == M.EINVAL
    assert a.lookup(3) is None
    assert [int.from_bytes(k, "little") for k in a.keys()] == [0, 1, 2]
    assert a.get_next_key(None) == (0).to_bytes(4, "little")
    assert a.get_next_key(2) is None
    assert a.get_next_key(99) == (0).to_bytes(4, "little")


def test_array_storage_is_the_view_and_the_lookup_address():
    rt = Runtime()
    a = new("array", value_size=12, max_entries=3, rt=rt)      # stride 16
    a.view[16:20] = b"\x01\x02\x03\x04"
    assert a.lookup(1)[:4] == b"\x01\x02\x03\x04"
    addr = a._lookup((1).to_bytes(4, "little"))
    assert addr == a.data + 16
    rt.memory.store(addr + 4, 4, 0xAABBCCDD)                   # what JIT code writing through it does
    assert a[1][4:8] == bytes.fromhex("ddccbbaa")
    assert rt.map_at(a.address) is a
    header = struct.unpack_from("<4IQ4I", a.buffer.view, 0)
    assert header == (2, 4, 12, 3, a.data, 16, 0, 1, 0)


def test_percpu_array_values_per_cpu():
    rt = Runtime(num_cpus=3)
    a = new("percpu_array", value_size=4, max_entries=2, rt=rt)
    a.update(1, [1, 2, 3])
    assert a.lookup_percpu(1) == [v.to_bytes(4, "little") for v in (1, 2, 3)]
    assert a.lookup(1) == b"".join(v.to_bytes(8, "little") for v in (1, 2, 3))   # kernel layout
    a.update(0, 9)                                                               # one value: every CPU
    assert a.lookup_percpu(0) == [(9).to_bytes(4, "little")] * 3
    assert a._lookup((1).to_bytes(4, "little"), 2) == a.data + (1 * 3 + 2) * 8


def test_readonly_data_is_not_writable_by_programs():
    rt = Runtime()
    ro = M.create(rt, ".rodata", "array", 4, 8, 1, M.BPF_F_RDONLY_PROG, initial=b"abcdefgh")
    assert rt.memory.read(ro.value_address(2), 3) == b"cde"
    with pytest.raises(jitbpf.BpfRuntimeError, match="read-only"):
        rt.memory.store(ro.value_address(0), 1, 0)
    with pytest.raises(M.BpfMapError):
        ro.value_address(8)


# ----------------------------------------------------------------------------- hash maps

def test_hash_flags_and_errors():
    h = new("hash", max_entries=2)
    h.update(1, 10, NOEXIST)
    assert errno_of(h.update, 1, 11, NOEXIST) == M.EEXIST
    assert errno_of(h.update, 2, 20, EXIST) == M.ENOENT
    h.update(1, 12, EXIST)
    h.update(2, 20)
    assert errno_of(h.update, 3, 30) == M.E2BIG
    h.update(2, 21)                                        # replacing works when full
    assert errno_of(h.delete, 3) == M.ENOENT
    assert errno_of(h.update, 1, 1, 8) == M.EINVAL
    assert {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in h.items()} == {1: 12, 2: 21}


def test_hash_layout_is_an_fnv1a_index_over_preallocated_elements():
    """The contract for native code: the index (u32 at data) has, at the first slot at or
    after fnv1a32(k) & (capacity - 1) whose element's key matches, 1 + the element
    number; the element (state 1, free link, LRU links, key from byte 16, value) is at
    data + elements + e * stride."""
    h = new("hash", key_size=6, value_size=4, max_entries=16)
    keys = [bytes([i, 0, 0, 0, 0, 7]) for i in range(16)]
    for i, k in enumerate(keys):
        h.update(k, i)
    cap, stride = h.capacity, h.stride
    elements = int.from_bytes(h.buffer.view[40:44], "little")
    assert cap & (cap - 1) == 0 and cap >= 32 and stride == 16 + 8 + 8 and elements == 4 * cap
    element = lambda slot: int.from_bytes(h.view[4 * slot:4 * slot + 4], "little")
    for i, k in enumerate(keys):
        slot = fnv1a32(k) & (cap - 1)
        while True:
            e = element(slot)
            assert e != 0, "probe reached an empty slot"
            off = elements + (e - 1) * stride
            if e != 0xFFFFFFFF and bytes(h.view[off + 16:off + 22]) == k:
                break
            slot = (slot + 1) % cap
        assert h.view[off] == 1
        assert int.from_bytes(h.view[off + 24:off + 28], "little") == i
        assert h._lookup(k) == h.data + off + 24


def test_hash_values_never_move_while_their_element_exists():
    """The issue's scenario: Linux keeps a lookup's pointer valid while the key lives."""
    h = new("hash", key_size=4, value_size=8, max_entries=4)
    h.update(100, 0)
    h.update(108, 111)
    p = h._lookup((108).to_bytes(4, "little"))
    h.delete(100)
    for i in range(1000, 1040):          # many deleted markers: the index is rebuilt
        h.update(i, i)
        h.delete(i)
    h.update(204, 0)
    assert int.from_bytes(h.rt.memory.read(p, 8), "little") == 111
    assert h._lookup((108).to_bytes(4, "little")) == p


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "new", "old", "del"]), st.integers(0, 11),
                          st.integers(0, 2**64 - 1)), max_size=120))
def test_hash_matches_a_dict_model(ops):
    h = new("hash", max_entries=6)
    model: dict[int, int] = {}
    for op, k, v in ops:
        if op == "del":
            want = 0 if k in model else -M.ENOENT
            model.pop(k, None)
            assert h._delete(k.to_bytes(4, "little")) == want
            continue
        flags = {"put": ANY, "new": NOEXIST, "old": EXIST}[op]
        if flags == NOEXIST and k in model:
            want = -M.EEXIST
        elif flags == EXIST and k not in model:
            want = -M.ENOENT
        elif k not in model and len(model) == 6:
            want = -M.E2BIG
        else:
            want = 0
            model[k] = v
        assert h._update(k.to_bytes(4, "little"), v.to_bytes(8, "little"), flags) == want
    assert {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in h.items()} == model
    for k in range(12):
        assert (h.lookup(k) is not None) == (k in model)


def test_hash_get_next_key_walks_everything_once():
    h = new("hash", max_entries=8)
    for k in (5, 1, 9, 3):
        h.update(k, k)
    seen, k = [], h.get_next_key()
    while k is not None:
        seen.append(int.from_bytes(k, "little"))
        k = h.get_next_key(k)
    assert sorted(seen) == [1, 3, 5, 9]
    assert h.get_next_key(77) == h.get_next_key(None)       # absent key: start over, like Linux


def test_lru_evicts_least_recently_used():
    h = new("lru_hash", max_entries=3)
    model: OrderedDict[int, int] = OrderedDict()

    def put(k):
        h._update(k.to_bytes(4, "little"), (k * 10).to_bytes(8, "little"), ANY)
        if k not in model and len(model) == 3:
            model.popitem(last=False)
        model[k] = k * 10
        model.move_to_end(k)

    def touch(k):
        h._lookup(k.to_bytes(4, "little"))
        model.move_to_end(k)

    for k in (1, 2, 3):
        put(k)
    touch(1)
    put(4)
    touch(3)
    put(5)
    put(1)
    assert {int.from_bytes(k, "little") for k in h.keys()} == set(model) == {1, 3, 5}


def test_percpu_hash_new_element_only_sets_this_cpu():
    rt = Runtime(num_cpus=2)
    h = new("percpu_hash", value_size=4, rt=rt)
    assert h._update(b"\1\0\0\0", (7).to_bytes(4, "little"), ANY, cpu=1) == 0
    assert h.lookup_percpu(1) == [bytes(4), (7).to_bytes(4, "little")]


# ----------------------------------------------------------------------------- LPM trie

def lpm_key(plen, *octets):
    return struct.pack("<I", plen) + bytes(octets)


def test_lpm_longest_prefix_match():
    t = new("lpm_trie", key_size=8, value_size=4, max_entries=4, flags=M.BPF_F_NO_PREALLOC)
    t.update(lpm_key(8, 10, 0, 0, 0), 1)
    t.update(lpm_key(16, 10, 1, 0, 0), 2)
    t.update(lpm_key(0, 0, 0, 0, 0), 9)
    assert t[lpm_key(32, 10, 1, 7, 7)] == (2).to_bytes(4, "little")
    assert t[lpm_key(32, 10, 2, 7, 7)] == (1).to_bytes(4, "little")
    assert t[lpm_key(32, 11, 0, 0, 0)] == (9).to_bytes(4, "little")
    assert t[lpm_key(12, 10, 1, 7, 7)] == (1).to_bytes(4, "little")     # only 12 bits asked for
    assert errno_of(t.update, lpm_key(8, 10, 9, 9, 9), 5, NOEXIST) == M.EEXIST   # same /8 prefix
    assert errno_of(t.update, lpm_key(33, 1, 2, 3, 4), 5) == M.EINVAL
    t.update(lpm_key(24, 10, 1, 2, 0), 3)
    assert errno_of(t.update, lpm_key(24, 10, 1, 3, 0), 4) == M.ENOSPC
    t.delete(lpm_key(0, 0, 0, 0, 0))
    assert t.lookup(lpm_key(32, 11, 0, 0, 0)) is None
    assert errno_of(t.delete, lpm_key(0, 0, 0, 0, 0)) == M.ENOENT


def test_lpm_iteration_is_trie_post_order():
    t = new("lpm_trie", key_size=5, value_size=4, max_entries=8)
    prefixes = [(0, 0), (1, 0x80), (2, 0x40), (2, 0x00), (8, 0x41), (1, 0x00)]
    for plen, b in prefixes:
        t.update(lpm_key(plen, b), plen)
    # post-order: children (more specific, 0-branch first) before their parent
    bits = lambda plen, b: format(b, "08b")[:plen]          # noqa: E731
    order = sorted(prefixes, key=lambda p: bits(*p) + "2")
    assert [(k[0], k[4]) for k in t.keys()] == order
    assert order[0] == (2, 0x00) and order[-1] == (0, 0)


# ----------------------------------------------------------------------------- queue, stack, bloom

@pytest.mark.parametrize("kind, pop_order", [("queue", [2, 3, 4]), ("stack", [4, 3, 2])])
def test_queue_and_stack(kind, pop_order):
    q = new(kind, key_size=0, value_size=4, max_entries=3)
    for v in (1, 2, 3):
        q.push(v)
    assert errno_of(q.push, 4) == M.E2BIG
    q.push(4, M.BPF_EXIST)                          # drops the oldest element (1)
    assert q.peek() == pop_order[0].to_bytes(4, "little")
    assert [int.from_bytes(v, "little") for _, v in q.items()] == pop_order
    assert [int.from_bytes(q.pop(), "little") for _ in range(3)] == pop_order
    assert q.pop() is None and len(q) == 0


@settings(max_examples=30, deadline=None)
@given(st.sets(st.integers(0, 2**32 - 1), max_size=40))
def test_bloom_filter_has_no_false_negatives(values):
    b = new("bloom_filter", key_size=0, value_size=4, max_entries=40, extra=4)
    for v in values:
        b.push(v)
    assert all(v in b for v in values)
    assert b.nr_hashes == 4
    assert errno_of(b.push, 1, EXIST) == M.EINVAL


# ----------------------------------------------------------------------------- ring buffer

def test_ringbuf_reserve_commit_consume_and_wrap():
    rt = Runtime()
    rb = new("ringbuf", key_size=0, value_size=0, max_entries=4096, rt=rt)
    recs = []
    for i in range(3):
        addr = rb.reserve(100)
        rt.memory.write(addr, bytes([i]) * 100)
        recs.append(addr)
    rb.commit(recs[1], discard=True)
    rb.commit(recs[2], discard=False)
    assert rb.items() == []                         # the first record is still busy
    rb.commit(recs[0], discard=False)
    assert rb.query(0) == 3 * 112 and rb.query(1) == 4096
    got = []
    assert rb.consume(got.append) == 2
    assert got == [bytes([0]) * 100, bytes([2]) * 100]
    assert rb.query(2) == rb.query(3) == 336
    with pytest.raises(jitbpf.BpfRuntimeError, match="already submitted"):
        rb.commit(recs[0], discard=False)
    # fill up to the end so that the next record straddles it
    while rb.producer % 4096 < 4096 - 112:
        a = rb.reserve(100)
        rb.commit(a, False)
    rb.drain()
    a = rb.reserve(200)
    assert a + 200 > rb.data + 4096                 # contiguous through the mirror
    rt.memory.write(a, bytes(range(200)))
    rb.commit(a, False)
    assert rb.drain() == [bytes(range(200))]
    assert rb.reserve(4096) == 0 and rb.reserve(0) == 0


def test_ringbuf_full():
    rb = new("ringbuf", key_size=0, value_size=0, max_entries=4096)
    addrs = [rb.reserve(504) for _ in range(8)]     # 512 bytes per record with its header
    # Linux never lets the producer run size (or more) bytes ahead of the consumer, so
    # a ring of 4096 holds 7 such records, not 8 (__bpf_ringbuf_reserve: > rb->mask).
    assert all(addrs[:7]) and addrs[7] == 0
    for a in addrs[:7]:
        rb.commit(a, False)
    assert len(rb.drain()) == 7
    assert rb.reserve(4096 - 16) != 0          # 4088 bytes pending: just below the size


# ----------------------------------------------------------------------------- prog arrays, batches, errors

def test_prog_array_holds_programs():
    obj = jitbpf.assemble("mov %r0, 1\nexit")
    pa = M.create(obj.runtime, "jt", "prog_array", 4, 4, 2)
    pa[1] = obj.program()
    assert pa.program_at(1) is obj.program() and pa.program_at(0) is None
    assert pa.keys() == [(1).to_bytes(4, "little")]
    with pytest.raises(M.BpfMapError, match="programs"):
        pa[0] = 5
    del pa[1]
    assert pa.program_at(1) is None


def test_batch_operations():
    h = new("hash", max_entries=8)
    assert h.update_batch({k: k * 2 for k in range(5)}) == 5
    first, cursor = h.lookup_batch(count=2)
    rest, end = h.lookup_batch(cursor)
    assert len(first) == 2 and end is None
    assert {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in first + rest} == \
        {k: k * 2 for k in range(5)}
    assert h.delete_batch([0, 1]) == 2
    taken = h.lookup_and_delete_batch()
    assert len(taken) == 3 and len(h) == 0


def test_snapshot_restore_roundtrip():
    h = new("lru_hash", max_entries=3)
    for k in (1, 2, 3):
        h.update(k, k)
    state, before = h.snapshot(), h.contents()
    h.delete(2)
    h.update(7, 7)
    h.update(8, 8)
    h.restore(state)
    assert h.contents() == before
    h.update(9, 9)                                  # evicts the LRU key of the restored state
    assert set(h.contents()) == {(k).to_bytes(4, "little") for k in (2, 3, 9)}


def test_bad_map_definitions_are_clear_errors():
    rt = Runtime()
    with pytest.raises(M.BpfMapError, match="not supported"):
        M.create(rt, "x", "devmap", 4, 4, 4)
    with pytest.raises(M.BpfMapError, match="power-of-2"):
        M.create(rt, "x", "ringbuf", 0, 0, 3000)
    with pytest.raises(M.BpfMapError, match="4-byte keys"):
        M.create(rt, "x", "array", 8, 4, 4)
    with pytest.raises(M.BpfMapError, match="unknown map type"):
        M.create(rt, "x", "nonsense", 4, 4, 4)
    with pytest.raises(M.BpfMapError, match="cannot allocate") as err:     # 2**64 bytes
        M.create(rt, "x", "array", 4, 8, 1 << 61)
    assert err.value.errno == M.ENOMEM
    with pytest.raises(jitbpf.BpfRuntimeError, match="not a map"):
        rt.map_at(0x1234)
    h = new("hash")
    with pytest.raises(M.BpfMapError, match="expected 4"):
        h.update(b"\1\2", 1)
