"""BPF-to-BPF passes: what every engine needs done once, before any backend lowers code.

Like the kernel's fixups before its JITs, each pass takes a Program and returns one
(``Program.derive``: new slots, each knowing the slot it came from), and each is tested
alone. The order is fixed:

0. ``inline_maps``: array-map lookups inlined (code without bounds checks only, which
   includes verified code whose every access is proven: see pipeline.prepare_compilation);
1. ``bounds_check``: a ``check`` before each access not safe by construction;
2. ``budget``: a ``tick`` at every loop head and function entry;
3. ``blind``: constant blinding through the scratch register AX (last, so the
   passes before it and the backends' analyses see the program's own constants);
4. resolution of helper and kfunc calls (``Program.helpers``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .blind import blind
from .bounds import bounds_check, needs_checks
from .budget import budget_ticks
from .inline_maps import inline_array_lookups
from .resolve import resolve_calls
from .rewrite import rewrite

__all__ = ["PassOptions", "run_passes", "rewrite", "blind", "bounds_check", "needs_checks", "budget_ticks",
           "resolve_calls", "inline_array_lookups"]


@dataclass(frozen=True)
class PassOptions:
    bounds_check: bool = False
    ticks: bool = True                    # insert budget ticks
    blind: bool = False
    proven: frozenset[int] = frozenset()  # slots whose accesses the verifier proved in bounds
    inline_maps: bool = True              # inline array-map lookups (without bounds_check)


def run_passes(program, options: PassOptions):
    """The program as the backends see it (always a derived Program, with ``helpers``)."""
    if options.inline_maps and not options.bounds_check:
        program = inline_array_lookups(program)
    if options.bounds_check:
        program = bounds_check(program, options.proven)
    if options.ticks:
        program = budget_ticks(program)
    if options.blind:
        program = blind(program)
    return resolve_calls(program)
