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
"""

from __future__ import annotations

from jitbpf.errors import BpfEngineError
from jitbpf.runtime import Runtime

ENTRY = "bpf_entry"
UNWIND = "jitbpf_unwind"
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


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


def helper_for_symbol(rt: Runtime, name: str):
    """The Helper a call symbol names (``bpf_map_lookup_elem``, or a kfunc's own name)."""
    try:
        return rt.helpers.lookup(name)
    except BpfEngineError:
        raise BpfEngineError(f"generated code calls '{name}', which is neither a helper nor a kfunc") from None
