"""Helper and kfunc resolution, once for every engine: each call slot's Helper.

Helpers are found by their Linux id, kfuncs by the name the object's BTF gives the
call (``Program.kfuncs``); the registry is the runtime's, as it is when the program
is compiled. Backends read ``Program.helpers[pc]`` and never look anything up.
"""

from __future__ import annotations

from dataclasses import replace

from .. import isa
from ..errors import BpfEngineError


def _error(message: str, program, pc: int) -> BpfEngineError:
    error = BpfEngineError(message, pc=program.source_pc(pc))
    error.at_source = True
    return error


def resolve_calls(program):
    registry = program.runtime.helpers
    kfuncs = program.loaded.kfuncs
    resolved = {}
    insns = program.insns
    for pc in [pc for pc, spec in enumerate(program.specs) if spec is not None and spec.kind == "call"]:
        insn = insns[pc]
        if insn.src == isa.CALL_LOCAL:
            continue
        if insn.src == isa.CALL_KFUNC:
            name = kfuncs.get(program.source_pc(pc))
            if name is None:
                raise _error(f"kfunc call to BTF id {insn.imm} has no name (load it from an object with BTF)",
                             program, pc)
            try:
                resolved[pc] = registry.lookup(name)
            except BpfEngineError as e:
                raise _error(e.message, program, pc) from None
        elif insn.imm in registry:
            resolved[pc] = registry.get(insn.imm)
        else:
            raise _error(f"unknown helper {insn.imm}", program, pc)
    out = replace(program, helpers=resolved, source=program.loaded,
                  origin=program.origin if program.origin is not None else list(range(len(program.insns))))
    out.__dict__["functions"] = program.functions
    return out
