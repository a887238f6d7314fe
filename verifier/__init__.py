"""The static verifier: kernel-grade checks of a BPF program before it runs natively.

``verify(program)`` explores every path of a :class:`jitbpf.program.Program` on
abstract states (register types, scalar ranges as tnums plus signed/unsigned 64- and
32-bit bounds, stack slots, references, locks) and either returns a :class:`Verdict`
or raises :class:`jitbpf.errors.BpfVerifierError` naming the instruction (and the C
source line where BTF line info exists), with the log in ``.log``.

Modules: ``tnum`` and ``bounds`` (scalar domains), ``state`` (registers, slots, frames,
checkpoints, state equality), ``cfg`` (structure and call graph), ``progtypes``
(contexts and program types), ``prototypes`` (helpers and kfuncs), ``core`` (the path
exploration), ``log``, ``facts`` (what code generation may rely on), ``cli``.
"""

from __future__ import annotations

from dataclasses import dataclass

from jitbpf.errors import BpfVerifierError

from .facts import Access, Facts

__all__ = ["verify", "Verdict", "Facts", "Access", "BpfVerifierError"]


@dataclass
class Verdict:
    """An accepted program: instructions processed, the log, and the facts for backends."""

    processed: int
    log: str
    facts: Facts
    states: int = 0
    stack_depth: dict[int, int] | None = None


def verify(program, *, prog_type: str | None = None, unprivileged: bool = False, log_level: int = 0,
           mem_size: int | None = None, strict: bool = True) -> Verdict:
    """Verify ``program`` (a jitbpf Program) as ``prog_type`` (default: its own).

    ``mem_size``: for raw programs, the exact size of the memory r1 points to (r2 is
    then that constant), so memory accesses are proven instead of checked at run time.
    ``strict``: also refuse what the kernel refuses though it is safe here (shift
    immediates out of range, division by a constant zero: the ISA defines both); the
    compile pipeline verifies with ``strict=False``, ``jitbpf verify`` strictly.
    Raises BpfVerifierError (with ``.log``) when the program is rejected.
    """
    from .core import Verifier, VerifyError
    from .log import Log
    from .progtypes import resolve

    name = prog_type or getattr(program, "prog_type", "raw") or "raw"
    ptype = resolve(name)
    if ptype is None:
        from .progtypes import PROG_TYPES
        raise BpfVerifierError(f"unknown program type '{name}' (known: {', '.join(sorted(PROG_TYPES))})")
    log = Log(log_level, program)
    try:
        v = Verifier(program, ptype, unprivileged=unprivileged, log=log, mem_size=mem_size, strict=strict)
        result = v.run()
    except VerifyError as e:
        log.add(e.message)
        processed = getattr(locals().get("v"), "processed", 0)
        log.add(f"processed {processed} insns")
        line = program.source_line(e.pc) if e.pc is not None else None
        err = BpfVerifierError(e.message, pc=e.pc, line=line)
        err.log = log.text()
        err.processed = processed
        raise err from None
    except RecursionError:
        err = BpfVerifierError("the program is too complex to verify (recursion limit)")
        err.log = log.text()
        err.processed = 0
        raise err from None
    log.add(f"processed {result.processed} insns (limit 1000000) max_states_per_insn 0 total_states "
            f"{result.states} peak_states {result.states} mark_read 0")
    return Verdict(result.processed, log.text(), result.facts, result.states, result.stack_depth)
