"""Shrink a failing case (delta debugging over instructions, then operands, memory and
map entries) and write it as a regression file.

A candidate keeps failing when the same config still differs from the reference in
the same fields, the reference itself still runs without an error it did not have
before (a removed store must not turn the program into one that reads out of bounds
natively), and two reference runs on two runtimes agree (a removed load must not let
a pointer into the output). Instructions are removed with every jump, call and function
pointer re-aimed at the next instruction that stays.

Regression files (``tests/regressions/``, run on every engine by
``tests/test_regressions.py``): a program without maps is a bpf_conformance ``.data``
file (``-- raw`` words, ``-- mem``, ``-- result``; the disassembly in comments); one
with maps is a ``.json`` case with the expected r0, memory and maps.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .. import isa
from ..disasm import disassemble_text
from ..errors import BpfError
from ..isa import Insn
from .generate import Case
from .oracle import Config, Outcome, compare, run_config

Predicate = Callable[[Case], bool]


def units(insns: list[Insn]) -> list[int]:
    """The slots that start an instruction (an lddw's second slot is not one)."""
    return [pc for pc in range(len(insns)) if pc == 0 or not insns[pc - 1].is_lddw]


def shrink(case: Case, drop: set[int]) -> Case | None:
    """``case`` without the instructions at ``drop`` (its kept slots renumbered)."""
    insns = without(case.insns, drop)
    if insns is None:
        return None
    starts = units(case.insns)
    new_index, pos = {}, 0
    for pc in starts:
        new_index[pc] = pos
        if pc not in drop:
            pos += 2 if case.insns[pc].is_lddw else 1
    keep = frozenset(new_index[pc] for pc in case.keep if pc in new_index and pc not in drop)
    return replace(case, insns=insns, keep=keep, mutable={}, scalars={})


def without(insns: list[Insn], drop: set[int]) -> list[Insn] | None:
    """``insns`` minus the instructions starting at the slots in ``drop``, jumps re-aimed
    at the next instruction kept; None when the result does not validate."""
    starts = units(insns)
    kept = [pc for pc in starts if pc not in drop]
    if not kept:
        return None
    new_index: dict[int, int] = {}
    pos = 0
    for pc in starts:
        new_index[pc] = pos
        if pc not in drop:
            pos += 2 if insns[pc].is_lddw else 1
    end = pos
    out: list[Insn] = []
    for pc in kept:
        insn = insns[pc]
        target = isa.jump_target(insn, pc)
        if target is not None:
            new = next((new_index[t] for t in starts if t >= target and t not in drop), end)
            rel = new - len(out) - 1
            if insn.opcode == isa.OP_JA32 or insn.opcode == isa.OP_CALL or insn.is_lddw:
                insn = replace(insn, imm=rel)
            elif -(1 << 15) <= rel < (1 << 15):
                insn = replace(insn, off=rel)
            else:
                return None
        out.extend(isa.to_slots([insn]))
    try:
        isa.validate(out)
    except BpfError:
        return None
    return out


def failing(case: Case, config: Config, reference: Config, what: list[str],
            runner: Callable[[Case, Config], Outcome] = run_config) -> Predicate:
    """The predicate: ``config`` still differs from ``reference`` in the fields ``what``
    (``runner`` runs one case on one config: run_config, or a stand-in in tests)."""
    def still_fails(candidate: Case) -> bool:
        ref = runner(candidate, reference)
        if ref.error is not None and (original_ref.error is None or ref.error != original_ref.error):
            return False
        if runner(candidate, reference).fields() != ref.fields():
            return False                 # a pointer reached the output: it differs by runtime, not by bug
        out = runner(candidate, config)
        if out.rejected:
            return False
        mismatch = compare(ref, out)
        return mismatch is not None and set(mismatch.what) == set(what)
    original_ref = runner(case, reference)
    return still_fails


def ddmin_instructions(case: Case, predicate: Predicate, budget: int = 2000) -> Case:
    """Remove as many instructions as the predicate allows (ddmin, then one at a time)."""
    tries = 0
    chunks = 2
    while tries < budget:
        starts = [pc for pc in units(case.insns) if pc not in case.keep]
        if len(starts) <= 1:
            break
        size = max(1, len(starts) // chunks)
        progress = False
        for i in range(0, len(starts), size):
            tries += 1
            candidate = shrink(case, set(starts[i:i + size]))
            if candidate is not None and predicate(candidate):
                case = candidate
                chunks = max(2, chunks - 1)
                progress = True
                break
        if not progress:
            if size == 1:
                break
            chunks = min(len(starts), chunks * 2)
    return case


def simplify_operands(case: Case, predicate: Predicate) -> Case:
    """Immediates towards 0 and 1, one instruction at a time."""
    for pc in units(case.insns):
        insn = case.insns[pc]
        if insn.is_lddw or isa.jump_target(insn, pc) is not None or insn.opcode == isa.OP_CALL:
            continue
        for imm in (0, 1):
            if insn.imm == imm or (isa.info(insn) and "imm" not in isa.info(insn).fields):
                continue
            candidate = list(case.insns)
            candidate[pc] = replace(insn, imm=imm)
            try:
                isa.validate(candidate)
            except BpfError:
                continue
            if predicate(replace(case, insns=candidate)):
                case = replace(case, insns=candidate)
                break
    return case


def simplify_data(case: Case, predicate: Predicate) -> Case:
    """Map entries dropped, maps emptied of entries, memory zeroed where it does not matter."""
    for i, spec in enumerate(case.maps):
        for j in range(len(spec.entries) - 1, -1, -1):
            entries = spec.entries[:j] + spec.entries[j + 1:]
            maps = list(case.maps)
            maps[i] = replace(spec, entries=entries)
            if predicate(replace(case, maps=maps)):
                case = replace(case, maps=maps)
                spec = maps[i]
    if case.mem:
        mem = bytearray(case.mem)
        for start in range(0, len(mem), 8):
            if not any(mem[start:start + 8]):
                continue
            trial = bytearray(mem)
            trial[start:start + 8] = bytes(len(trial[start:start + 8]))
            if predicate(replace(case, mem=bytes(trial))):
                mem = trial
        case = replace(case, mem=bytes(mem))
    return case


def minimize(case: Case, config: Config, reference: Config, what: list[str],
             runner: Callable[[Case, Config], Outcome] = run_config) -> Case:
    predicate = failing(case, config, reference, what, runner)
    if not predicate(case):
        return case                      # flaky or already fixed: keep it whole
    case = ddmin_instructions(case, predicate)
    case = simplify_operands(case, predicate)
    case = simplify_data(case, predicate)
    return ddmin_instructions(case, predicate, budget=200)


# --------------------------------------------------------------------------- regression files

def write_regression(case: Case, expected: Outcome, directory: str | Path, name: str,
                     note: str = "") -> Path:
    """``case`` as a regression file whose expected outcome is ``expected`` (the engine
    that was right: interp for a JIT bug, the kernel for a runtime bug)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    listing = disassemble_text(case.insns, "asm", labels=False)
    if not case.maps and expected.error is None:
        path = directory / f"{name}.data"
        words = [int.from_bytes(case.insns[pc].encode()[:8], "little") for pc in range(len(case.insns))]
        lines = [f"# {line}" for line in note.splitlines()]
        lines += [f"# found by jitbpf fuzz: seed {case.seed}, index {case.index} ({case.level})", "#"]
        lines += [f"#   {line}" for line in listing.splitlines()]
        lines += ["-- raw"] + [f"0x{w:016x}" for w in words]
        if case.mem is not None:
            lines += ["-- mem"] + [" ".join(f"{b:02x}" for b in case.mem[i:i + 16])
                                   for i in range(0, len(case.mem), 16)]
        lines += ["-- result", f"0x{expected.r0:x}"]
        path.write_text("\n".join(lines) + "\n")
        return path
    path = directory / f"{name}.json"
    record = case.to_json()
    record["note"] = note
    record["listing"] = listing.splitlines()
    record["expected"] = {"r0": expected.r0, "memory": None if expected.memory is None else expected.memory.hex(),
                          "maps": [json_map(m) for m in expected.maps or []],
                          "error": list(expected.error) if expected.error else None}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def json_map(contents) -> object:
    """Map contents (dict of bytes, bytes, or a list) as JSON."""
    if isinstance(contents, dict):
        return {k.hex() if isinstance(k, bytes) else str(k): json_map(v) for k, v in contents.items()}
    if isinstance(contents, (bytes, bytearray)):
        return bytes(contents).hex()
    if isinstance(contents, (list, tuple)):
        return [json_map(v) for v in contents]
    return contents
