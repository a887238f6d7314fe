"""The contract between generated code and the runtime, shared by every backend and executor.

- Every BPF function becomes a native function ``u64 f(u64 r1, u64 r2, u64 r3, u64 r4, u64 r5)``
  (SysV on x86_64, AAPCS64 on arm64). The program's entry is the symbol ``ENTRY``;
  subprograms are ``function_symbol(slot)``.
- Helpers are called as the same C signature through the external symbol ``bpf_<name>``
  (kfuncs through their own name); the executor binds it.
- After every helper call, generated code loads the 8-byte cell at external symbol
  ``UNWIND`` and, if it is non-zero, returns at once (from every frame): a helper has
  ended the program (bpf_tail_call) or failed; the executor then calls
  ``Runtime.finish_unwind``.
- Pointers are host addresses in every executor (unicorn maps host pages at the same
  guest addresses), so map handles, value addresses and context pointers are plain constants.
- Runtime calls generated code may make besides helpers, with the helper signature:
  ``TRAP(code, pc, value)`` reports a run-time error (``TRAPS[code]``; pc -1 = none) and
  sets the unwind cell; ``LOAD_PACKET(ctx, offset, size, pc)`` is LD_ABS/LD_IND with the
  interpreter's semantics (big-endian; out of bounds ends the program with r0 = 0).
"""

from __future__ import annotations

from jitbpf.errors import BpfEngineError, BpfRuntimeError
from jitbpf.isa import MAX_CALL_DEPTH, to_s64
from jitbpf.runtime import Helper, Runtime

ENTRY = "bpf_entry"
UNWIND = "jitbpf_unwind"
TRAP = "jitbpf_trap"
LOAD_PACKET = "jitbpf_load_packet"
MASK64 = 0xFFFF_FFFF_FFFF_FFFF

TRAP_CALLX, TRAP_DEPTH, TRAP_BUDGET = range(1, 4)
TRAPS = {
    TRAP_CALLX: "callx to 0x{value:x}: neither a helper id nor a function",
    TRAP_DEPTH: f"call depth exceeds {MAX_CALL_DEPTH} frames",
    TRAP_BUDGET: "loop budget of {value} back-edges exceeded",
}


def function_symbol(slot: int) -> str:
    """Native symbol of the BPF function starting at instruction slot ``slot``."""
    return ENTRY if slot == 0 else f"bpf_fn_{slot}"


def helper_symbol(rt: Runtime, helper_id: int) -> str:
    return rt.helpers.get(helper_id).symbol


def runtime_symbol(rt: Runtime, name: str) -> int | None:
    """Address of a runtime data symbol, or None if ``name`` is not one (helpers are
    bound by each executor, which has its own way to call into Python)."""
    if name == UNWIND:
        return rt.unwind_address
    return None


def _trap(rt: Runtime, code: int, pc: int, value: int, *_: int) -> int:
    message = TRAPS.get(code, "unknown trap {value}").format(value=value)
    rt.fail_program(BpfRuntimeError(message, pc=None if pc == MASK64 else pc))
    return 0


def _load_packet(rt: Runtime, ctx: int, offset: int, size: int, pc: int, *_: int) -> int:
    data, length = rt.skb_window(ctx, pc)
    offset = to_s64(offset)
    if not 0 <= offset <= length - size:
        rt.end_program(0)
        return 0
    return int.from_bytes(rt.memory.read(data + offset, size, pc), "big")


#: Runtime calls by symbol (not helpers: no id, not reachable through callx).
RUNTIME_CALLS = {TRAP: Helper(-1, TRAP, _trap), LOAD_PACKET: Helper(-2, LOAD_PACKET, _load_packet)}


def helper_for_symbol(rt: Runtime, name: str):
    """The Helper a call symbol names (``bpf_map_lookup_elem``, or a kfunc's own name)."""
    if name in RUNTIME_CALLS:
        return RUNTIME_CALLS[name]
    try:
        return rt.helpers.lookup(name)
    except BpfEngineError:
        raise BpfEngineError(f"generated code calls '{name}', which is neither a helper nor a kfunc") from None
