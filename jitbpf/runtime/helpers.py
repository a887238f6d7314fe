"""The helper registry: Linux helper ids -> Python implementations.

A helper is ``func(rt, r1, r2, r3, r4, r5) -> int`` where ``rt`` is the
:class:`~jitbpf.runtime.Runtime` of the running program (memory, maps, trace
output, clocks). Every engine calls the same functions: the interpreter
directly, native code through a ctypes callback, unicorn through a stub whose
hook runs the function. Results are taken modulo 2**64.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..errors import BpfEngineError

HelperFunc = Callable[..., int]


@dataclass(frozen=True)
class Helper:
    id: int
    name: str                         # the Linux name without the bpf_ prefix
    func: HelperFunc
    args: tuple[str, ...] = ()        # argument kinds, for documentation and the verifier
    ret: str = "integer"

    @property
    def symbol(self) -> str:
        """The external symbol native code calls (``bpf_ktime_get_ns``)."""
        return "bpf_" + self.name


class HelperRegistry:
    """Helpers by id and by name; users add their own (and kfuncs, by name) from Python."""

    def __init__(self, helpers: list[Helper] | None = None):
        self.by_id: dict[int, Helper] = {}
        self.by_name: dict[str, Helper] = {}
        for h in helpers or ():
            self.add(h)

    def add(self, helper: Helper) -> Helper:
        self.by_id[helper.id] = helper
        self.by_name[helper.name] = helper
        return helper

    def register(self, id: int, name: str, func: HelperFunc | None = None, *,
                 args: tuple[str, ...] = (), ret: str = "integer"):
        """Register ``func`` as helper ``id``; usable as a decorator when func is omitted."""
        name = name.removeprefix("bpf_")
        if func is None:
            return lambda f: self.add(Helper(id, name, f, args, ret)).func
        return self.add(Helper(id, name, func, args, ret))

    def get(self, id: int) -> Helper:
        helper = self.by_id.get(id)
        if helper is None:
            raise BpfEngineError(f"unknown helper {id}")
        return helper

    def lookup(self, name: str) -> Helper:
        helper = self.by_name.get(name.removeprefix("bpf_"))
        if helper is None:
            raise BpfEngineError(f"unknown helper or kfunc '{name}'")
        return helper

    def copy(self) -> "HelperRegistry":
        return HelperRegistry(list(self.by_id.values()))

    def __contains__(self, id: int) -> bool:
        return id in self.by_id

    def __iter__(self):
        return iter(sorted(self.by_id.values(), key=lambda h: h.id))


DEFAULT = HelperRegistry()


def _ktime_get_ns(rt, *_args) -> int:
    return rt.clock_ns()


DEFAULT.register(5, "ktime_get_ns", _ktime_get_ns)


def default_registry() -> HelperRegistry:
    """A fresh registry holding every built-in helper."""
    return DEFAULT.copy()


def monotonic_ns() -> int:
    return time.monotonic_ns()
