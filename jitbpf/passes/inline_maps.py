"""Inline array-map lookups (the kernel's ``map_gen_lookup`` for arrays).

A ``call bpf_map_lookup_elem`` whose r1 surely holds a plain array map's handle (an
``lddw r1, map`` earlier in the same basic block, r1 not written since) becomes the
lookup itself, over the documented layout (the storage starts HEADER_SIZE bytes after
the handle, element i at ``i * stride``)::

    r0 = *(u32 *)(r2 + 0)
    if r0 >= max_entries goto miss
    r0 *= stride
    r0 += r1
    r0 += HEADER_SIZE
    goto done
    miss: r0 = 0
    done:

r1 and r2 keep their values, as the interpreter's helpers keep them. Like the native
runtime, the pass applies to code without run-time bounds checks (verified, or opted
out): bounds-checked code calls the helper, which checks the key pointer. Only the
default registry's helper is inlined: a user's own map_lookup_elem is called.
"""

from __future__ import annotations

from .. import isa
from ..analysis.flow import FETCHES, ProgramFlow
from ..isa import Insn
from ..runtime import helpers
from ..runtime.maps import HEADER_SIZE, MAP_TYPES
from .rewrite import replace_slots

LOOKUP_ID = 1
_WRITES_DST = frozenset({"alu", "end", "ldx", "lddw"})
_CLOBBERS_ARGS = frozenset({"call", "callx", "ldabs", "ldind"})


def lookup_insns(max_entries: int, stride: int) -> list[Insn]:
    """The inline lookup for an array of ``max_entries`` elements of ``stride`` bytes."""
    from ..asm import assemble
    return assemble(f"""
        ldxw %r0, [%r2]
        jge %r0, {max_entries}, miss
        mul %r0, {stride}
        add %r0, %r1
        add %r0, {HEADER_SIZE}
        ja done
    miss:
        mov %r0, 0
    done:
        exit
    """)[:-1]


def inline_array_lookups(program):
    registry = program.runtime.helpers
    if LOOKUP_ID not in registry or registry.get(LOOKUP_ID).func is not helpers.map_lookup_elem:
        return program
    maps = program.obj.map_list
    insns, specs = program.insns, program.specs
    flow = ProgramFlow(program)
    replacements = {}
    for f in flow.functions:
        for block in f.blocks().values():
            r1 = None                                  # the map index r1 surely holds
            for pc in block:
                spec, insn = specs[pc], insns[pc]
                kind = spec.kind
                if kind == "call" and insn.src == 0 and insn.imm == LOOKUP_ID and r1 is not None:
                    m = maps[r1]
                    if m.map_type == MAP_TYPES["array"] and not m.percpu and 0 < m.max_entries < 1 << 31:
                        replacements[pc] = lookup_insns(m.max_entries, m.stride)
                if kind == "lddw" and insn.dst == 1:
                    pseudo = insn.src in (isa.Pseudo.MAP_FD, isa.Pseudo.MAP_IDX)
                    r1 = insn.imm if pseudo and 0 <= insn.imm < len(maps) else None
                elif kind in _WRITES_DST and insn.dst == 1 or kind in _CLOBBERS_ARGS:
                    r1 = None
                elif kind == "atomic" and (spec.op in FETCHES and insn.src == 1):
                    r1 = None
    return replace_slots(program, replacements)
