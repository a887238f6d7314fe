"""The native runtime (jitbpf.runtime.native): map lookups in native code over the
documented layouts, checked against a plain dict of what was stored."""

from __future__ import annotations

import random

import pytest

import jitbpf
from jitbpf.runtime import maps as M
from jitbpf.runtime import native

from conftest import in_threads

MISS = 0xFFFF_FFFF_FFFF_FFFF
# r0 = *(u64 *)lookup(map 0, key = the memory), or -1 when the key is absent.
LOOKUP = """
mov %r6, %r1
lddw %r1, map_fd(0)
mov %r2, %r6
call 1
jeq %r0, 0, miss
ldxdw %r0, [%r0]
exit
miss:
mov %r0, -1
exit
"""
# One map operation on map 0, chosen by an XDP program's packet: the key at 0 (up to 16
# bytes), u64 value at 16, u64 flags at 24, u64 op at 32 (0 lookup: r0 = *(u64 *)value
# or -1, 1 update, 2 delete: r0 = the helper's result). Key and value are copied to the
# stack and the packet is bounds-tested first, so the verifier proves every access.
MAP_OPS = """
ldxw %r6, [%r1+0]
ldxw %r2, [%r1+4]
mov %r3, %r6
add %r3, 40
mov %r0, -3
jgt %r3, %r2, out
ldxdw %r7, [%r6+32]
ldxdw %r1, [%r6+0]
stxdw [%r10-32], %r1
ldxdw %r1, [%r6+8]
stxdw [%r10-24], %r1
ldxdw %r1, [%r6+16]
stxdw [%r10-16], %r1
ldxdw %r4, [%r6+24]
lddw %r1, map_fd(0)
mov %r2, %r10
add %r2, -32
jeq %r7, 1, update
jeq %r7, 2, delete
call 1
mov %r1, %r0
mov %r0, -1
jeq %r1, 0, out
ldxdw %r0, [%r1]
out:
exit
update:
mov %r3, %r10
add %r3, -16
call 2
exit
delete:
call 3
exit
"""
OP_LOOKUP, OP_UPDATE, OP_DELETE = 0, 1, 2
NATIVE = [e for e in ("llvm", "direct") if e in jitbpf.available_engines()]


def op_input(op: int, key: int, value: int = 0, flags: int = 0, key_size: int = 4) -> bytes:
    return key.to_bytes(key_size, "little").ljust(16, b"\0") + value.to_bytes(8, "little") + \
        flags.to_bytes(8, "little") + op.to_bytes(8, "little")


def compiled(kind: str, key_size: int, max_entries: int, engine: str, **options):
    obj = jitbpf.assemble(LOOKUP)
    m = M.create(obj.runtime, "m", kind, key_size, 8, max_entries)
    obj.add_map(m)
    return m, obj.program().compile(engine, **{"bounds_check": False, "verify": False, **options})


@pytest.mark.parametrize("engine", NATIVE + ["interp"])
def test_array_lookup(engine):
    m, fn = compiled("array", 4, 5, engine)
    for i in range(5):
        m.update(i, 7 * i + 1)
    got = fn.run_many([i.to_bytes(4, "little") for i in (0, 4, 5, 1 << 31, 3)])
    assert got == [1, 29, MISS, MISS, 22]


@pytest.mark.parametrize("engine", NATIVE + ["interp"])
@pytest.mark.parametrize("key_size", [1, 4, 6, 13, 16])
def test_hash_lookup_through_deletes_and_reuse(engine, key_size):
    rng = random.Random(key_size)
    m, fn = compiled("hash", key_size, 24, engine)
    model: dict[bytes, int] = {}
    universe = list({rng.randbytes(key_size) for _ in range(60)})
    for step in range(200):                    # many deleted markers: index rebuilds, elements reused
        k = rng.choice(universe)
        if k in model and rng.random() < 0.5:
            m.delete(k)
            del model[k]
        elif k in model or len(model) < 24:
            model[k] = step
            m.update(k, step)
    assert fn.run_many(universe) == [model.get(k, MISS) for k in universe]


@pytest.mark.parametrize("engine", NATIVE)
def test_native_lookup_is_linked_and_other_types_fall_back(engine):
    m, fn = compiled("hash", 4, 8, engine)
    code = fn.executable
    assert code._resolve("bpf_map_lookup_elem") == code.runtime_image.address_of(code.runtime_base, native.LOOKUP)
    obj = jitbpf.assemble(LOOKUP)
    lpm = M.create(obj.runtime, "m", "lpm_trie", 8, 8, 4, M.BPF_F_NO_PREALLOC)
    obj.add_map(lpm)
    lpm.update((16).to_bytes(4, "little") + bytes([10, 1, 0, 0]), 7)
    fn = obj.program().compile(engine, bounds_check=False, verify=False)       # the Python helper
    assert fn.run_many([(32).to_bytes(4, "little") + bytes([10, 1, 2, 3]), (8).to_bytes(4, "little") + bytes(4)]) \
        == [7, MISS]


@pytest.mark.parametrize("engine", NATIVE)
def test_native_lru_lookup_makes_the_key_recent(engine, python_map_calls):
    lru, fn = compiled("lru_hash", 4, 2, engine)
    lru.update(1, 10)
    lru.update(2, 20)
    python_map_calls.clear()
    assert fn.run_many([(1).to_bytes(4, "little"), (5).to_bytes(4, "little")]) == [10, MISS]
    assert python_map_calls == []                  # key 1 is now the most recent, natively
    lru.update(3, 30)
    assert sorted(int.from_bytes(k, "little") for k in lru.keys()) == [1, 3]


@pytest.mark.parametrize("engine", NATIVE + ["interp"])
@pytest.mark.parametrize("kind", ["percpu_hash", "lru_percpu_hash", "hash", "array"])
def test_lookups_read_the_run_cpus_copy_of_per_cpu_maps(engine, kind, python_map_calls):
    """Per-CPU maps: Runtime.cpu's copy; the others: the one value, whatever the CPU."""
    m, fn = compiled(kind, 4, 4, engine)
    m.update(1, [10, 11, 12, 13] if m.percpu else 10)
    m.rt.cpu = 2
    assert fn.run((1).to_bytes(4, "little")).r0 == (12 if m.percpu else 10)
    if engine != "interp":
        assert python_map_calls == ["_update"]


@pytest.mark.parametrize("engine", NATIVE)
def test_bounds_checked_code_and_user_helpers_stay_in_python(engine):
    obj = jitbpf.assemble(LOOKUP)
    obj.add_map(M.create(obj.runtime, "m", "array", 4, 8, 2))
    assert obj.program().compile(engine, bounds_check=True, verify=False).executable.runtime_image is None
    seen = []
    obj.runtime.helpers.register(1, "map_lookup_elem", lambda rt, *a: seen.append(a[1]) or 0)
    fn = obj.program().compile(engine, bounds_check=False, verify=False)
    assert fn.run(b"\1\0\0\0").r0 == MISS and len(seen) == 1


def calls(fn) -> int:
    return sum(1 for spec in fn.prepared.specs if spec is not None and spec.kind == "call")


@pytest.mark.parametrize("engine", NATIVE + ["interp", "llvm-arm64"])
def test_array_lookups_are_inlined_where_r1_is_surely_the_map(engine):
    m, fn = compiled("array", 4, 3, engine)
    assert calls(fn) == 0
    m.update(2, 99)
    assert fn.run_many([(2).to_bytes(4, "little"), (3).to_bytes(4, "little")]) == [99, MISS]
    for kind in ("hash", "percpu_array"):
        assert calls(compiled(kind, 4, 3, engine)[1]) == 1
    branchy = LOOKUP.replace("mov %r2, %r6\n", "mov %r2, %r6\njeq %r6, 0, miss\n").replace(
        "lddw %r1, map_fd(0)\n", "lddw %r1, map_fd(0)\nja +0\n")
    obj = jitbpf.assemble(branchy)
    obj.add_map(M.create(obj.runtime, "m", "array", 4, 8, 3))
    fn = obj.program().compile(engine, bounds_check=False, verify=False)
    assert calls(fn) == 1                       # the lddw is in another block: not sure
    assert calls(compiled("array", 4, 3, engine, bounds_check=True)[1]) == 1


def map_ops_program(kind: str, key_size: int, max_entries: int):
    """(the map, the MAP_OPS XDP program over it)."""
    obj = jitbpf.assemble(MAP_OPS)
    m = M.create(obj.runtime, "m", kind, key_size, 8, max_entries)
    obj.add_map(m)
    prog = obj.program()
    prog.prog_type = "xdp"
    return m, prog


def map_ops(kind: str, key_size: int, max_entries: int, engine: str, **options):
    m, prog = map_ops_program(kind, key_size, max_entries)
    return m, prog.compile(engine, **{"bounds_check": False, "verify": False, **options})


@pytest.fixture
def python_map_calls(monkeypatch):
    """Counts calls of the Python maps' helper-level operations (the native runtime makes none)."""
    seen: list[str] = []
    for cls in (M.HashMap, M.ArrayMap):
        for name in ("_lookup", "_update", "_delete"):
            original = getattr(cls, name)
            monkeypatch.setattr(cls, name, lambda self, *a, _f=original, _n=name: seen.append(_n) or _f(self, *a))
    return seen


def signed(r0: int) -> int:
    return r0 - (1 << 64) if r0 >> 63 else r0


@pytest.mark.parametrize("engine", NATIVE)
@pytest.mark.parametrize("key_size", [1, 4, 6, 13])
def test_native_hash_update_and_delete_against_a_dict(engine, key_size, python_map_calls):
    """Random updates (every flag), deletes and lookups from native code, checked one by
    one against a dict with the kernel's rules, then the Python API reads the same map."""
    rng = random.Random(key_size)
    m, fn = map_ops("hash", key_size, 12, engine)
    model: dict[int, int] = {}
    universe = rng.sample(range(1 << (8 * min(key_size, 3))), 30)
    inputs, want = [], []
    for step in range(400):                    # fills, E2BIG, deleted markers, rebuilds, reuse
        k, op = rng.choice(universe), rng.choice([OP_UPDATE, OP_UPDATE, OP_DELETE, OP_LOOKUP])
        flags = rng.choice([0, 0, 1, 2, 3, 8])
        inputs.append(op_input(op, k, step, flags, key_size))
        if op == OP_LOOKUP:
            want.append(model.get(k, -1))
        elif op == OP_DELETE:
            want.append(0 if model.pop(k, None) is not None else -2)
        elif flags > 2:
            want.append(-22)
        elif flags == 1 and k in model:
            want.append(-17)
        elif flags == 2 and k not in model:
            want.append(-2)
        elif k not in model and len(model) == 12:
            want.append(-7)
        else:
            model[k] = step
            want.append(0)
    got = [signed(r) for r in fn.run_many(inputs)]
    assert got == want
    assert python_map_calls == []
    assert {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in m.items()} == model
    assert len(m) == len(model)
    gone, kept = list(model)[:2]                # the Python API goes on from the native state
    m.delete(gone)
    m.update(kept, 5, M.BPF_EXIST)
    del model[gone]
    model[kept] = 5
    assert {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in m.items()} == model
    assert sorted(int.from_bytes(k, "little") for k in m.keys()) == sorted(model)


@pytest.mark.parametrize("engine", NATIVE)
def test_native_array_update_and_delete(engine, python_map_calls):
    m, fn = map_ops("array", 4, 3, engine)
    got = [signed(r) for r in fn.run_many([op_input(OP_UPDATE, 2, 77), op_input(OP_UPDATE, 3, 1),
                                           op_input(OP_UPDATE, 0, 1, 1), op_input(OP_UPDATE, 0, 1, 3),
                                           op_input(OP_UPDATE, 1, 9, 2), op_input(OP_DELETE, 1)])]
    assert got == [0, -7, -17, -22, 0, -22]
    assert python_map_calls == []
    assert [int.from_bytes(v, "little") for v in m.values()] == [0, 9, 77]
    python_map_calls.clear()
    fn.run(packet=op_input(OP_UPDATE, 0, 1, 4))           # BPF_F_LOCK: the Python helper (it knows the BTF)
    assert python_map_calls == ["_update"]


@pytest.mark.parametrize("engine", NATIVE)
def test_other_map_types_update_through_python(engine):
    m, fn = map_ops("lru_hash", 4, 2, engine)
    assert [fn.run(packet=op_input(OP_UPDATE, k, 10 * k)).r0 for k in (1, 2, 3)] == [0, 0, 0]
    assert sorted(int.from_bytes(k, "little") for k in m.keys()) == [2, 3]
    assert fn.run(packet=op_input(OP_DELETE, 2)).r0 == 0 and len(m) == 1


@pytest.mark.parametrize("engine", NATIVE)
@pytest.mark.parametrize("guarded", [True, False])
def test_threads_update_and_delete_one_hash_map(engine, guarded):
    """Updates and deletes hold the map's lock word: three threads of native code and
    one of the Python API inserting and deleting their own keys at once (no GIL in
    native code) leave exactly their survivors, and the counts agree. (The fault guard
    runs one native call at a time; without it, native runs overlap too.)"""
    m, fn = map_ops("hash", 4, 128, engine)
    if not guarded:
        fn.executable.guard = None
    rounds = 40

    def work(t: int) -> None:
        keys = [t * 1000 + i for i in range(32)]
        for r in range(rounds):
            last = r == rounds - 1
            if t == 3:
                for k in keys:
                    m.update(k, k)
                for k in keys[::2] if last else keys:
                    m.delete(k)
                continue
            inputs = [op_input(OP_UPDATE, k, k) for k in keys] + [op_input(OP_DELETE, k) for k in keys[::2]]
            got = fn.run_many(inputs if last else inputs + [op_input(OP_DELETE, k) for k in keys[1::2]])
            assert set(got) == {0}
    assert not in_threads(work)
    want = {t * 1000 + i for t in range(4) for i in range(1, 32, 2)}
    assert {int.from_bytes(k, "little") for k in m.keys()} == want
    assert len(m) == len(want) == 64
    assert all(int.from_bytes(m[k], "little") == k for k in want)


# r0 = *(u64 *)lookup(map 0, key) or -1, the key a u32 on the stack: {key} (a constant,
# or loaded from the input memory, an access the verifier cannot bound).
STACK_LOOKUP = """
{key}
lddw %r1, map_fd(0)
mov %r2, %r10
add %r2, -4
call 1
mov %r1, %r0
mov %r0, -1
jeq %r1, 0, out
ldxdw %r0, [%r1]
out:
exit
"""


@pytest.mark.parametrize("engine", NATIVE)
def test_verified_code_uses_the_native_runtime_by_default(engine, python_map_calls):
    """Default options (verified, bounds checks where unproven): a program whose every
    access the verifier proved runs unchecked, with the native runtime and inlined array
    lookups; Python's map code is never called."""
    for kind in ("hash", "array"):
        m, prog = map_ops_program(kind, 4, 4)
        fn = prog.compile(engine)
        assert not fn.options.bounds_check and fn.executable.runtime_image is not None
        got = [signed(r) for r in fn.run_many([op_input(OP_UPDATE, 1, 10), op_input(OP_LOOKUP, 1),
                                               op_input(OP_UPDATE, 1, 11, 1), op_input(OP_DELETE, 1),
                                               op_input(OP_UPDATE, 7, 1)])]
        assert got == ([0, 10, -17, 0, 0] if kind == "hash" else [0, 10, -17, -22, -7])     # array: delete EINVAL, key 7 E2BIG
        assert python_map_calls == []
    obj = jitbpf.assemble(STACK_LOOKUP.format(key="stw [%r10-4], 2"))
    arr = M.create(obj.runtime, "m", "array", 4, 8, 3)
    obj.add_map(arr)
    arr.update(2, 42)
    fn = obj.program().compile(engine)
    assert calls(fn) == 0 and fn.run().r0 == 42 and python_map_calls == ["_update"]


@pytest.mark.parametrize("engine", NATIVE)
def test_unproven_accesses_keep_checks_and_python_helpers(engine, python_map_calls):
    """A raw program's input has no size the verifier knows: its load stays checked, so
    the program keeps the region table and calls the Python helper (which checks the key)."""
    obj = jitbpf.assemble(STACK_LOOKUP.format(key="ldxw %r2, [%r1]\nstxw [%r10-4], %r2"))
    m = M.create(obj.runtime, "m", "hash", 4, 8, 3)
    obj.add_map(m)
    m.update(5, 55)
    python_map_calls.clear()
    fn = obj.program().compile(engine)
    assert fn.options.bounds_check and fn.executable.runtime_image is None
    assert fn.run((5).to_bytes(4, "little")).r0 == 55 and python_map_calls == ["_lookup"]


@pytest.mark.parametrize("engine", NATIVE)
def test_native_percpu_array_uses_the_runtime_cpu(engine, python_map_calls):
    """Lookups and updates of a per-CPU array touch the copy of Runtime.cpu (what the
    Python helper does), read back per CPU through the Python API."""
    m, fn = map_ops("percpu_array", 4, 3, engine)
    m.update(1, [10, 11, 12, 13])
    python_map_calls.clear()
    assert fn.executable.runtime_image is not None
    m.rt.cpu = 2
    got = [signed(r) for r in fn.run_many([op_input(OP_LOOKUP, 1), op_input(OP_UPDATE, 1, 99),
                                           op_input(OP_LOOKUP, 1), op_input(OP_UPDATE, 1, 5, 1),
                                           op_input(OP_UPDATE, 3, 5), op_input(OP_DELETE, 1)])]
    m.rt.cpu = 0
    got.append(signed(fn.run(packet=op_input(OP_LOOKUP, 1)).r0))
    assert got == [12, 0, 99, -17, -7, -22, 10]
    assert python_map_calls == []
    assert [int.from_bytes(v, "little") for v in m.lookup_percpu(1)] == [10, 11, 99, 13]


GUARDED = [e for e in NATIVE if __import__("jitbpf.backends.exec.faultguard", fromlist=["x"]).available()]
BAD_POINTER = """
stdw [%r10-8], 1
lddw %r1, map_fd(0)
{r2}
{r3}
mov %r4, 0
call {helper}
exit
"""


@pytest.mark.parametrize("engine", GUARDED)
@pytest.mark.parametrize("helper, bad", [(2, "key"), (2, "value"), (3, "key"), (1, "key")])
def test_a_bad_pointer_in_unchecked_code_faults_before_the_map_lock(engine, helper, bad):
    """Unchecked code passing a wild key or value pointer faults (the guard's error), and
    the map's lock word is free afterwards: the native helpers read key and value before
    they take it, so the map still works."""
    stack = "mov %r{n}, %r10\nadd %r{n}, -8"
    text = BAD_POINTER.format(helper=helper, r2="mov %r2, 16" if bad == "key" else stack.format(n=2),
                              r3="mov %r3, 16" if bad == "value" else stack.format(n=3))
    obj = jitbpf.assemble(text)
    m = M.create(obj.runtime, "m", "lru_hash" if helper == 1 else "hash", 8, 8, 4)
    obj.add_map(m)
    fn = obj.program().compile(engine, bounds_check=False, verify=False)
    with pytest.raises(jitbpf.BpfRuntimeError, match="faulted"):
        fn.run()
    assert bytes(m.buffer.view[M.H_LOCK:M.H_LOCK + 4]) == bytes(4)
    m.update(1, 5)
    assert m[1] == (5).to_bytes(8, "little")
