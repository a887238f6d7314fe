"""The runtime's maps against the plain-Python reference model (tests/map_model.py): a
hypothesis state machine of updates, deletes and lookups. Lookups are made by a compiled
program, updates and deletes by the program or by the Python API (drawn), so native
code, the native runtime, the inline pass and the Python map code all meet the same
bytes and are compared with the model."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import jitbpf

from map_model import ArrayModel, HashModel
from test_native_runtime import OP_DELETE, OP_LOOKUP, OP_UPDATE, map_ops_program, op_input

KEYS = st.integers(0, 9)
VALUES = st.integers(0, 2**63 - 1)
FLAGS = st.sampled_from([0, 1, 2, 3, 4, 1 << 32])
BY_PROGRAM = st.booleans()
MAX_ENTRIES = 6


def machine(kind: str, engine: str, options: dict):
    class MapMachine(RuleBasedStateMachine):
        @initialize()
        def create(self):
            self.map, prog = map_ops_program(kind, 4, MAX_ENTRIES)
            self.fn = prog.compile(engine, **options)
            self.model = ArrayModel(MAX_ENTRIES) if kind == "array" else HashModel(MAX_ENTRIES, kind == "lru_hash")

        def program(self, *args) -> int:
            r0 = self.fn.run(packet=op_input(*args)).r0
            return r0 - (1 << 64) if r0 >> 63 else r0

        @rule(key=KEYS, value=VALUES, flags=FLAGS, by_program=BY_PROGRAM)
        def update(self, key, value, flags, by_program):
            if by_program:
                got = self.program(OP_UPDATE, key, value, flags)
            else:
                got = self.map._update(key.to_bytes(4, "little"), value.to_bytes(8, "little"), flags)
            assert got == self.model.update(key, value, flags)

        @rule(key=KEYS, by_program=BY_PROGRAM)
        def delete(self, key, by_program):
            got = self.program(OP_DELETE, key) if by_program else self.map._delete(key.to_bytes(4, "little"))
            assert got == self.model.delete(key)

        @rule(key=KEYS)
        def lookup(self, key):
            want = self.model.lookup(key)
            assert self.program(OP_LOOKUP, key) == (-1 if want is None else want)

        @rule(key=st.one_of(st.none(), KEYS))
        def next_key(self, key):
            """Linux: a missing key (or none) gives the first key; the chain visits each once."""
            k = None if key is None else key.to_bytes(4, "little")
            got = self.map._next_key(k)
            if kind == "array":
                want = self.model.next_key(key)
                assert got == (None if want is None else want.to_bytes(4, "little"))
                return
            if key not in self.model.items:
                assert got == self.map._next_key(None)
            seen, k = [], self.map._next_key(None)
            while k is not None:
                seen.append(int.from_bytes(k, "little"))
                k = self.map._next_key(k)
            assert sorted(seen) == sorted(self.model.items)

        @invariant()
        def same_contents(self):
            if hasattr(self, "map"):
                got = {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in self.map.items()}
                assert got == self.model.contents()

    return MapMachine


ENGINES = [e for e in ("llvm", "direct", "interp") if e in jitbpf.available_engines()]


#: default options (verified; every access proven, so unchecked native code and the
#: native runtime) and code compiled unchecked without the verifier
OPTIONS = {"default": {}, "unchecked": {"bounds_check": False, "verify": False}}


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["array", "hash", "lru_hash"])
def test_maps_follow_the_reference_model(kind, engine, options):
    test = machine(kind, engine, OPTIONS[options]).TestCase
    test.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)
    test("runTest").runTest()
