"""The contract between generated code and the runtime, shared by every backend and executor.

- Every BPF function becomes a native function ``u64 f(u64 r1, ..., u64 r5, struct run *rs)``
  (SysV on x86_64: rs in r9; AAPCS64 on arm64: rs in x5). The program's entry is the
  symbol ``ENTRY``; subprograms are ``function_symbol(slot)``. ``rs`` is the run state of
  the calling thread (layout below); every call between BPF functions passes it on.
- Helpers are called with the same signature through the external symbol ``bpf_<name>``
  (kfuncs through their own name); the executor binds it. Runtime calls (below) too.
- After every helper call, generated code tests ``rs->unwind`` and, if it is non-zero,
  returns at once (from every frame): a helper has ended the program (bpf_tail_call) or
  failed; the executor then calls ``Runtime.finish_unwind``.
- No absolute address is baked into code: maps are the symbols ``map:NAME`` (the handle)
  and ``mapvalue:NAME`` (+ the byte offset: global data), bound when the image is loaded;
  run state comes in ``rs``. So an image can be saved and loaded anywhere.
- Pointers are host addresses in every executor (unicorn maps host pages at the same
  guest addresses).
- A ``tick`` that finds the budget spent stores its slot in ``rs->spent``, sets
  ``rs->unwind`` and returns: no call into Python, which matters for Ctrl-C.
- Runtime calls generated code may make besides helpers, with the helper signature:
  ``TRAP(code, pc, value)`` reports a run-time error (``TRAPS[code]``; pc -1 = none) and
  sets the unwind cell; ``LOAD_PACKET(ctx, offset, size, pc)`` is LD_ABS/LD_IND with the
  interpreter's semantics (big-endian; out of bounds ends the program with r0 = 0);
  ``CHECK(address, info)`` is the slow path of a bounds check (info = pc << 8 |
  size << 1 | write): it accepts the access or fails the run with the interpreter's error.
- Run state: one page per thread and loaded image (fields ``RUN_*`` below), in memory
  no BPF pointer may reach (it is never a region of the runtime's address space).
"""

from __future__ import annotations

from jitbpf.errors import BpfEngineError, BpfRuntimeError
from jitbpf.isa import MAX_CALL_DEPTH, to_s64
from jitbpf.runtime import Helper, Runtime

ENTRY = "bpf_entry"
TRAP = "jitbpf_trap"
LOAD_PACKET = "jitbpf_load_packet"
CHECK = "jitbpf_check_access"
MASK64 = 0xFFFF_FFFF_FFFF_FFFF

#: Run state fields (byte offsets).
RUN_UNWIND = 0        # u64: non-zero = leave every frame now
RUN_DEPTH = 8         # u64: BPF frames in use (where a call chain can exceed MAX_CALL_DEPTH)
RUN_BUDGET = 16       # i64: budget ticks left; below zero the tick traps
RUN_STACK_TOP = 24    # u64: the top of the BPF stack: frame 0's r10
RUN_SP = 32           # u64: the floor of the live BPF stack: r10 - 512 of the deepest frame in use
                      #   (a bounds check accepts [RUN_SP, RUN_STACK_TOP) before the region table)
RUN_STOP = 40         # u64: why the budget was cut short (STOP_*)
RUN_SPENT = 48        # u64: 1 + the slot of the tick that found the budget spent (0: none); the
                      #   code then unwinds without calling Python (see backends/exec/watchdog.py)
RUN_CPU = 56          # u64: the CPU the run is on (Runtime.cpu, for the native runtime's per-CPU maps)
RUN_REGS = 64         # u64[11]: registers passed between a caller and its callee (LLVM)
RUN_COUNT = 160       # u64: entries in the region table (bounds checks)
RUN_TABLE = 168       # (u64 start, u64 end, u64 writable)[]: the regions of the run but the stack
TABLE_ENTRY = 24
RUN_SIZE = 4096
TABLE_ENTRIES = (RUN_SIZE - RUN_TABLE) // TABLE_ENTRY
STOP_NONE, STOP_INTERRUPT, STOP_TIMEOUT = 0, 1, 2
#: The budget of a run without one (``budget=None``): ticks still count, so a run can be cut short.
UNLIMITED = 1 << 62

TRAP_CALLX, TRAP_DEPTH = range(1, 3)
TRAPS = {
    TRAP_CALLX: "callx to 0x{value:x}: neither a helper id nor a function",
    TRAP_DEPTH: f"call depth exceeds {MAX_CALL_DEPTH} frames",
}


def function_symbol(slot: int) -> str:
    """Native symbol of the BPF function starting at instruction slot ``slot``."""
    return ENTRY if slot == 0 else f"bpf_fn_{slot}"


def _trap(rt: Runtime, code: int, pc: int, value: int, *_: int) -> int:
    pc = None if pc == MASK64 else pc
    rt.fail_program(BpfRuntimeError(TRAPS.get(code, "unknown trap {value}").format(value=value), pc=pc))
    return 0


def _load_packet(rt: Runtime, ctx: int, offset: int, size: int, pc: int, *_: int) -> int:
    data, length = rt.skb_window(ctx, pc)
    offset = to_s64(offset)
    if not 0 <= offset <= length - size:
        rt.end_program(0)
        return 0
    return int.from_bytes(rt.memory.read(data + offset, size, pc), "big")


def _check(rt: Runtime, address: int, info: int, *_: int) -> int:
    """An access missed the region table taken at the start of the run: accept it if a
    region registered since covers it, else fail with the interpreter's error."""
    try:
        rt.memory.access(address, (info >> 1) & 0x7F, bool(info & 1), info >> 8)
    except BpfRuntimeError as e:
        rt.fail_program(e)
    return 0


#: Runtime calls by symbol (not helpers: no id, not reachable through callx).
RUNTIME_CALLS = {TRAP: Helper(-1, TRAP, _trap), LOAD_PACKET: Helper(-2, LOAD_PACKET, _load_packet),
                 CHECK: Helper(-3, CHECK, _check)}


def helper_for_symbol(rt: Runtime, name: str):
    """The Helper a call symbol names (``bpf_map_lookup_elem``, or a kfunc's own name)."""
    if name in RUNTIME_CALLS:
        return RUNTIME_CALLS[name]
    try:
        return rt.helpers.lookup(name)
    except BpfEngineError:
        raise BpfEngineError(f"generated code calls '{name}', which is neither a helper nor a kfunc") from None


def data_symbol(rt: Runtime, name: str) -> int | None:
    """Address of a data symbol generated code refers to (maps), or None if ``name`` is
    not one (helpers are bound by each executor, which has its own way to call into Python)."""
    kind, _, map_name = name.partition(":")
    if kind not in ("map", "mapvalue"):
        return None
    m = rt.maps.get(map_name)
    if m is None:
        raise BpfEngineError(f"the image refers to map '{map_name}', which this runtime does not have")
    return m.address if kind == "map" else m.value_address(0)
