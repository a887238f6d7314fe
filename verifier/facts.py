"""What the verifier proves, for code generators (issue 12 item 5).

Plain data, no verifier internals: a backend imports only this module. Every fact
holds on *every* path the verifier explored through the instruction (facts from
different paths are joined), so a backend may rely on them whenever the program was
accepted:

- ``accesses[pc]``: the load, store or atomic at ``pc`` reaches ``region`` (``stack``,
  ``ctx``, ``map_value``, ``map_key``, ``packet``, ``mem``, ``ringbuf``, ``btf``; ``mixed``
  when paths differ) and, when ``proven``, stays inside it: its run-time bounds check
  may be dropped. Raw memory and run-time-sized contexts are never ``proven``.
- ``ranges[pc][reg]``: the unsigned range ``(umin, umax)`` of each scalar register the
  instruction reads (for LLVM range metadata); ``constants[pc][reg]`` when it is one
  known value (constant folding).
- ``nonnull[pc]``: registers holding a pointer that cannot be NULL there (e.g. a map
  lookup result after its NULL check), for LLVM nonnull assumptions.
- ``visited``: the instructions some path reaches (the others are dead code).
- ``ctx_size``: bytes of context the program may touch (max offset + size), so an
  engine can check a run-time-sized context once at entry.
- ``terminates``: every path ends within the instruction budget (always true for an
  accepted program; kept so consumers need not assume it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Access:
    region: str
    proven: bool
    size: int


@dataclass
class Facts:
    accesses: dict[int, Access] = field(default_factory=dict)
    ranges: dict[int, dict[int, tuple[int, int]]] = field(default_factory=dict)
    nonnull: dict[int, frozenset[int]] = field(default_factory=dict)
    visited: frozenset[int] = frozenset()
    ctx_size: int = 0
    terminates: bool = True

    @property
    def constants(self) -> dict[int, dict[int, int]]:
        out: dict[int, dict[int, int]] = {}
        for pc, regs in self.ranges.items():
            known = {r: lo for r, (lo, hi) in regs.items() if lo == hi}
            if known:
                out[pc] = known
        return out

    @property
    def proven_slots(self) -> frozenset[int]:
        """The accesses needing no run-time check (``jitbpf.passes.PassOptions.proven``)."""
        return frozenset(pc for pc, a in self.accesses.items() if a.proven)

    def proven(self, pc: int) -> bool:
        """Whether the memory access at ``pc`` needs no run-time bounds check."""
        a = self.accesses.get(pc)
        return a is not None and a.proven
