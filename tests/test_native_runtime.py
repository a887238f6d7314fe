"""The native runtime (jitbpf.runtime.native): map lookups in native code over the
documented layouts, checked against a plain dict of what was stored."""

from __future__ import annotations

import random

import pytest

import jitbpf
from jitbpf.runtime import maps as M
from jitbpf.runtime import native

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
NATIVE = [e for e in ("llvm", "direct") if e in jitbpf.available_engines()]


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
    lru, fn = compiled("lru_hash", 4, 2, engine)
    lru.update(1, 10)
    lru.update(2, 20)
    assert fn.run_many([(1).to_bytes(4, "little")]) == [10]     # the Python helper: key 1 is now recent
    lru.update(3, 30)
    assert sorted(int.from_bytes(k, "little") for k in lru.keys()) == [1, 3]


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
