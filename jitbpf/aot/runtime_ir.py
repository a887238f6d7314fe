"""The native runtime of a compiled object, generated as LLVM IR (no C compiler, no libc).

One module per object holds what the programs' code refers to besides itself (the IR
library is :mod:`.runtime_lib`; this module adds the maps and the per-program glue):

- map storage: per map a header ``map:NAME`` (the handle BPF code passes to helpers) and
  its storage (``mapvalue:NAME`` for arrays, which global data reaches directly);
- the helpers of maps (lookup/update/delete, percpu lookup, push/pop/peek, for_each,
  ring buffers), tail calls, ``bpf_xdp_adjust_head/meta/tail``, ``bpf_skb_load_bytes``,
  LD_ABS/LD_IND, with the helper ABI of :mod:`backends.abi`, and the C API (``C_API_FUNCTIONS``);
- the runtime calls ``jitbpf_trap`` and ``jitbpf_check_access`` (a failed bounds check);
- per program a core ``jitbpf_core$NAME(ctx, size, 0, 0, 0, rs)`` that fills the run state
  (budget, BPF stack, the region table of bounds checks), converts the context, calls the
  program and the targets of its tail calls, and the exported C entry ``NAME(ctx, ctx_size)``
  calling it with a static run state.

Map header (``HEADER_FIELDS``, all u64). Semantics are jitbpf/runtime/maps.py's (the
interpreter's, which are Linux's), with this object's own layouts:

- array / percpu_array: element i at ``storage + i * stride``, cpu c's value ``c *
  value_stride`` further (stride = ncpus x value_stride; programs run on cpu 0);
- hash / percpu_hash / lru_hash / lru_percpu_hash: maps.py's storage byte for byte (its
  module docstring: the index, the pool of elements with 16 bytes of state, free and LRU
  links before the key); the header's ``count``, ``tombstones``, ``free``, ``fresh``,
  ``lru_head`` and ``lru_tail`` are maps.py's header fields of those names, so slots,
  elements, iteration and LRU order are maps.py's;
- queue / stack: a ring of max_entries values from ``head`` (the oldest), ``count`` of them;
- bloom_filter: ``slots`` bits, ``aux`` hash functions (FNV-1a seeded with the function's number);
- lpm_trie: max_entries slots (u64 used, the key masked to its prefix, the value), scanned;
- ringbuf: max_entries bytes and their mirror, ``clock`` = producer and ``head`` = consumer
  positions, records with the kernel's 8-byte header;
- prog_array: max_entries u64 entry addresses of programs of the object (0: empty).

Errors are negative errnos as in Linux. A run that fails (bounds check, trap, budget) leaves
a code in ``jitbpf_last_error`` (``ERRORS``); the static run state makes the C entries
non-reentrant (one thread at a time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..backends import abi
from ..runtime.context import SK_BUFF_SIZE, SKB, SKB_SHARED_INFO, XDP_FRAME_SIZE, XDP_MD_SIZE
from ..runtime.helpers import MAX_LOOPS, MAX_TAIL_CALLS
from ..runtime.maps import E_KEY
from . import runtime_lib

#: map kinds (the header's type)
ARRAY, HASH, QUEUE, STACK, BLOOM, LPM, RINGBUF, PROG_ARRAY = range(1, 9)
KINDS = {"array": ARRAY, "percpu_array": ARRAY, "hash": HASH, "percpu_hash": HASH, "lru_hash": HASH,
         "lru_percpu_hash": HASH, "queue": QUEUE, "stack": STACK, "bloom_filter": BLOOM, "lpm_trie": LPM,
         "ringbuf": RINGBUF, "prog_array": PROG_ARRAY}
HEADER_FIELDS = ("type", "key_size", "value_size", "max_entries", "count", "storage", "stride", "slots",
                 "value_offset", "readonly", "ncpus", "value_stride", "user_value_size", "clock", "head", "aux",
                 "lru", "bytes", "percpu", "pool", "tombstones", "free", "fresh", "lru_head", "lru_tail")
NUM_CPUS = 4              # runtime.Runtime's default: the per-CPU maps' CPUs
XDP_HEADROOM = 256
MAX_PACKET = 65536
STACK_BYTES = 4096
ETH_HLEN = 14
FRAME_BYTES = XDP_HEADROOM + MAX_PACKET + SKB_SHARED_INFO
E_ACCESS, E_BUDGET, E_CONTEXT, E_HIGH = 10, 11, 12, 13
#: jitbpf_last_error codes
ERRORS = {abi.TRAP_CALLX: "callx to 0x{value:x}: neither a helper id nor a function",
          abi.TRAP_DEPTH: "call depth exceeds 8 frames",
          E_ACCESS: "out-of-bounds access at 0x{value:x}",
          E_BUDGET: "the run budget is spent",
          E_CONTEXT: "bad context (ctx_size too small, packet over 65536 bytes or metadata over 216)",
          E_HIGH: "the packet buffer is above 4 GiB (link the object with -no-pie)"}
XDP_MD_FIELDS = ("data", "data_end", "data_meta")   # pointers, then u32 ingress_ifindex, rx_queue_index, egress_ifindex
JITBPF_XDP_MD_SIZE = 40
JITBPF_SKB_MD_SIZE = 16 + SK_BUFF_SIZE               # data, data_end, then a struct __sk_buff

#: what ``$name`` stands for in the IR library
SUBST = {**{f: str(i) for i, f in enumerate(HEADER_FIELDS)},
         **{k: str(v) for k, v in (("ARRAY", ARRAY), ("HASH", HASH), ("QUEUE", QUEUE), ("STACK", STACK),
                                    ("BLOOM", BLOOM), ("LPM", LPM), ("RINGBUF", RINGBUF),
                                    ("PROG_ARRAY", PROG_ARRAY))},
         **{f"SKB_{k}": str(v) for k, v in SKB.items()},
         "MAX_TAIL_CALLS": str(MAX_TAIL_CALLS), "MAX_LOOPS": str(MAX_LOOPS), "STACK_BYTES": str(STACK_BYTES),
         "E_ACCESS": str(E_ACCESS),
         "E_BUDGET": str(E_BUDGET), "E_CONTEXT": str(E_CONTEXT), "E_HIGH": str(E_HIGH),
         "XDP_HEADROOM": str(XDP_HEADROOM), "MAX_PACKET": str(MAX_PACKET),
         "MAX_META": str(XDP_HEADROOM - XDP_FRAME_SIZE),
         "XDP_FRAME_SIZE": str(XDP_FRAME_SIZE), "ETH_HLEN": str(ETH_HLEN), "SKB_SHARED_INFO": str(SKB_SHARED_INFO),
         "FRAME_OVERHEAD": str(XDP_HEADROOM + SKB_SHARED_INFO), "FRAME_BYTES": str(FRAME_BYTES),
         "XDP_MD_SIZE": str(XDP_MD_SIZE), "JITBPF_XDP_MD_SIZE": str(JITBPF_XDP_MD_SIZE),
         "JITBPF_SKB_MD_SIZE": str(JITBPF_SKB_MD_SIZE), "SK_BUFF_SIZE": str(SK_BUFF_SIZE),
         **{k: str(getattr(abi, k)) for k in ("RUN_UNWIND", "RUN_DEPTH", "RUN_BUDGET", "RUN_STACK_TOP", "RUN_SP",
                                               "RUN_STOP", "RUN_SPENT", "RUN_COUNT", "RUN_TABLE", "TABLE_ENTRY")}}


KIND_NAMES = {ARRAY: "ARRAY", HASH: "HASH", QUEUE: "QUEUE", STACK: "STACK", BLOOM: "BLOOM", LPM: "LPM",
              RINGBUF: "RINGBUF", PROG_ARRAY: "PROG_ARRAY"}


def library(kinds: set[int] | None = None, helpers: set[str] | None = None, lru: bool = True) -> str:
    """The IR library with its ``$names`` filled in. Only what an object uses is kept: the
    map operations of its ``kinds`` (the other switch cases go, so LLVM drops their code),
    LRU eviction if it has ``lru`` maps, and the BPF helpers its programs call (the others
    become internal, hence dead)."""
    text = runtime_lib.LIBRARY.replace("$HAS_LRU", str(int(lru)))
    if kinds is not None:
        absent = "|".join(KIND_NAMES[k] for k in KIND_NAMES if k not in kinds)
        if absent:
            text = re.sub(rf"i64 \$({absent}), label %\w+\s*", "", text)
    if helpers is not None:
        text = re.sub(r"define dso_local i64 @(bpf_\w+|jitbpf_load_packet)\(",
                      lambda m: m.group(0) if m.group(1) in helpers else f"define internal i64 @{m.group(1)}(", text)
    return re.sub(r"\$([A-Za-z_]+)", lambda m: SUBST[m.group(1)], text)


#: the helpers the library defines (a program's other helpers are the host's)
NATIVE_HELPERS = tuple(sorted(set(re.findall(r"define dso_local i64 @(bpf_\w+)\(", runtime_lib.LIBRARY))))


def _round8(n: int) -> int:
    return (n + 7) & ~7


@dataclass
class MapSpec:
    name: str
    type_name: str                    # the Linux map type
    key_size: int
    value_size: int
    max_entries: int
    readonly: bool = False
    percpu: bool = False
    lru: bool = False
    cpus: int = NUM_CPUS              # of a per-CPU map (the compiled object's runtime's)
    aux: int = 0                      # bloom_filter: hash functions; lpm_trie: the key's data bits
    initial: bytes | None = None      # the storage's bytes when compiled (None: zeroes)
    count: int = 0                    # elements in it
    clock: int = 0                    # ringbuf: the producer
    head: int = 0                     # ringbuf: the consumer
    tombstones: int = 0               # hash: its index's deleted markers,
    free: int = 0                     # 1 + the last freed element (0: none),
    fresh: int = 0                    # the elements ever used,
    lru_head: int = 0                 # the LRU list's ends (1 + element number)
    lru_tail: int = 0
    programs: dict[int, str] = field(default_factory=dict)   # prog_array: slot -> entry symbol

    @property
    def kind(self) -> int:
        return KINDS[self.type_name]

    @property
    def ncpus(self) -> int:
        return self.cpus if self.percpu else 1

    @property
    def value_stride(self) -> int:
        return _round8(self.value_size)

    @property
    def user_value_size(self) -> int:
        """What the C API's value holds: the value, or every CPU's (each padded to 8)."""
        return self.ncpus * self.value_stride if self.percpu else self.value_size

    @property
    def value_offset(self) -> int:
        if self.kind == HASH:             # maps.py's E_KEY: state, free and LRU links first
            return E_KEY + _round8(self.key_size)
        return 8 + _round8(self.key_size) if self.kind == LPM else 0

    @property
    def stride(self) -> int:
        kind = self.kind
        if kind == HASH:                  # fixed fields, key, values (maps.py's stride)
            return self.value_offset + self.ncpus * self.value_stride
        if kind == LPM:
            return self.value_offset + self.value_stride
        if kind == PROG_ARRAY:
            return 8
        if kind in (BLOOM, RINGBUF):
            return 1
        return self.ncpus * self.value_stride

    @property
    def slots(self) -> int:
        if self.kind == HASH:
            n = 8
            while n < 2 * self.max_entries:
                n *= 2
            return n
        if self.kind == BLOOM:
            n = 1
            while n < max(64, self.max_entries * self.aux * 7 // 5):
                n *= 2
            return n
        return 0 if self.kind == RINGBUF else self.max_entries

    @property
    def pool(self) -> int:
        """A hash map's elements start after its index (u32 per slot)."""
        return _round8(4 * self.slots) if self.kind == HASH else 0

    @property
    def storage_size(self) -> int:
        if self.kind == HASH:
            return self.pool + self.max_entries * self.stride
        if self.kind == BLOOM:
            return self.slots // 8
        if self.kind == RINGBUF:
            return 2 * self.max_entries
        return self.slots * self.stride

    @property
    def storage_symbol(self) -> str:
        return f"mapvalue:{self.name}" if self.kind == ARRAY else f"jitbpf_storage:{self.name}"

    def header(self) -> dict[str, int | None]:
        """The header's fields (None: the storage pointer)."""
        return {"type": self.kind, "key_size": self.key_size, "value_size": self.value_size,
                "max_entries": self.max_entries, "count": self.count, "storage": None, "stride": self.stride,
                "slots": self.slots, "value_offset": self.value_offset, "readonly": int(self.readonly),
                "ncpus": self.ncpus, "value_stride": self.value_stride, "user_value_size": self.user_value_size,
                "clock": self.clock, "head": self.head, "aux": self.aux, "lru": int(self.lru),
                "bytes": self.storage_size, "percpu": int(self.percpu), "pool": self.pool,
                "tombstones": self.tombstones, "free": self.free, "fresh": self.fresh,
                "lru_head": self.lru_head, "lru_tail": self.lru_tail}

    def manifest(self) -> dict:
        return {"name": self.name, "type": self.type_name, "key_size": self.key_size,
                "value_size": self.value_size, "max_entries": self.max_entries, "readonly": self.readonly,
                "percpu": self.percpu, "ncpus": self.ncpus, "slots": self.slots, "stride": self.stride,
                "value_offset": self.value_offset, "storage": self.storage_symbol, "header": f"map:{self.name}",
                **({"programs": {str(k): v for k, v in sorted(self.programs.items())}} if self.programs else {})}


@dataclass
class EntrySpec:
    name: str              # exported C symbol
    entry: str             # the program's native entry symbol
    context: str           # raw, xdp, syscall, struct, tc, skb (other __sk_buff programs)
    budget: int


def _q(name: str) -> str:
    return '"' + name.replace("\\", "\\5C").replace('"', "\\22") + '"'


def _bytes_init(data: bytes) -> str:
    if not any(data):
        return "zeroinitializer"
    return 'c"' + "".join(f"\\{b:02X}" for b in data) + '"'


HEADER_TYPE = "{" + ", ".join("ptr" if f == "storage" else "i64" for f in HEADER_FIELDS) + "}"


def _storage_init(m: MapSpec) -> str:
    if m.kind == PROG_ARRAY:
        slots = [f"ptr @{_q(m.programs[i])}" if i in m.programs else "ptr null" for i in range(m.max_entries)]
        return f"[{m.max_entries} x ptr] [{', '.join(slots)}], align 16"
    data = (m.initial or b"")[:m.storage_size].ljust(m.storage_size, b"\0")
    return f"[{m.storage_size} x i8] {_bytes_init(data)}, align 16"


def _maps_ir(maps: list[MapSpec]) -> list[str]:
    out = [f"declare i64 @{_q(s)}(i64, i64, i64, i64, i64, ptr)"
           for s in sorted({s for m in maps for s in m.programs.values()})]
    for i, m in enumerate(maps):
        storage = _q(m.storage_symbol)
        out.append(f"@{storage} = dso_local global {_storage_init(m)}")
        init = ", ".join(f"ptr @{storage}" if v is None else f"i64 {v}" for v in m.header().values())
        out.append(f"@{_q('map:' + m.name)} = dso_local global {HEADER_TYPE} {{{init}}}, align 8")
        name = m.name.encode() + b"\0"
        out.append(f"@jitbpf_map_name.{i} = private constant [{len(name)} x i8] {_bytes_init(name)}")
    names = ", ".join(f"ptr @jitbpf_map_name.{i}" for i in range(len(maps)))
    headers = ", ".join(f"ptr @{_q('map:' + m.name)}" for m in maps)
    out.append(f"@jitbpf_map_count = dso_local global i64 {len(maps)}")
    out.append(f"@jitbpf_map_names = dso_local global [{len(maps)} x ptr] [{names}]")
    out.append(f"@jitbpf_map_headers = dso_local global [{len(maps)} x ptr] [{headers}]")
    return out


#: context kinds whose programs get a __sk_buff (the C side's struct jitbpf_skb_md), and
#: whether their data starts at the Ethernet header (tc) or after it (socket filters)
SKB_CONTEXTS = {"tc": True, "skb": False}


def _core_ir(e: EntrySpec, index: int) -> list[str]:
    """The core of one program: the run's start, the context, the run, its end."""
    core, entry = _q(f"jitbpf_core${e.name}"), _q(e.entry)
    frame, ctx = f"@jitbpf_frame.{index}", f"@jitbpf_ctx.{index}"
    lines = []
    if e.context == "xdp":
        lines += [f"{frame} = internal global [{FRAME_BYTES} x i8] zeroinitializer, align 64",
                  f"{ctx} = internal global [4 x i64] zeroinitializer, align 8"]
        enter = f"call i64 @rt_xdp_enter(i64 %ctx, i64 %size, ptr {frame}, ptr {ctx}, ptr %rs)"
        leave = f"call void @rt_xdp_leave(i64 %ctx, ptr {frame}, ptr {ctx})"
    elif e.context in SKB_CONTEXTS:
        lines += [f"{frame} = internal global [{FRAME_BYTES} x i8] zeroinitializer, align 64",
                  f"{ctx} = internal global [{SK_BUFF_SIZE} x i8] zeroinitializer, align 8"]
        l2 = int(SKB_CONTEXTS[e.context])
        enter = f"call i64 @rt_skb_enter(i64 %ctx, i64 %size, ptr {frame}, ptr {ctx}, i1 {l2}, ptr %rs)"
        leave = f"call void @rt_skb_leave(i64 %ctx, i64 %size, ptr {frame}, ptr {ctx})"
    else:
        enter = leave = None
    lines += [f"define dso_local i64 @{core}(i64 %ctx, i64 %size, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {{",
              "entry:",
              f"  call void @rt_begin(ptr %rs, i64 {e.budget})"]
    if enter is None:
        writable = int(e.context in ("raw", "syscall"))
        r2 = "%size" if e.context == "raw" else "0"
        lines += ["  %cend = add i64 %ctx, %size",
                  f"  call void @rt_region(ptr %rs, i64 %ctx, i64 %cend, i64 {writable})",
                  f"  %r0 = call i64 @rt_run(ptr @{entry}, i64 %ctx, i64 {r2}, i64 {e.budget}, ptr %rs)"]
    else:
        lines += [f"  %arg = {enter}",
                  "  %failed = icmp eq i64 %arg, 0",
                  "  br i1 %failed, label %fail, label %run",
                  "fail:",
                  "  ret i64 0",
                  "run:",
                  f"  %r0 = call i64 @rt_run(ptr @{entry}, i64 %arg, i64 0, i64 {e.budget}, ptr %rs)",
                  f"  {leave}"]
    lines += ["  %r = call i64 @rt_finish(ptr %rs, i64 %r0)", "  ret i64 %r", "}"]
    return lines


#: the C API functions that find a map by name (-EINVAL if there is none): name -> (their
#: parameters after the name, the runtime call that does the work, their result type)
C_API_FUNCTIONS = {
    "jitbpf_map_lookup": ("ptr %key, ptr %value", "rt_c_lookup(ptr %h, ptr %key, ptr %value)", "i32"),
    "jitbpf_map_update": ("ptr %key, ptr %value, i64 %flags", "rt_c_update(ptr %h, ptr %key, ptr %value, i64 %flags)",
                          "i32"),
    "jitbpf_map_delete": ("ptr %key", "rt_delete(ptr %h, ptr %key)", "i32"),
    "jitbpf_map_next_key": ("ptr %key, ptr %next", "rt_next_key(ptr %h, ptr %key, ptr %next)", "i32"),
    "jitbpf_map_push": ("ptr %value, i64 %flags", "rt_push(ptr %h, ptr %value, i64 %flags)", "i32"),
    "jitbpf_map_pop": ("ptr %value", "rt_take(ptr %h, ptr %value, i1 1)", "i32"),
    "jitbpf_map_peek": ("ptr %value", "rt_take(ptr %h, ptr %value, i1 0)", "i32"),
    "jitbpf_ringbuf_consume": ("ptr %out, i64 %size", "rt_c_consume(ptr %h, ptr %out, i64 %size)", "i64"),
}
#: C API functions only objects with maps of these kinds have
C_API_KINDS = {"jitbpf_map_push": {QUEUE, STACK, BLOOM}, "jitbpf_map_pop": {QUEUE, STACK},
               "jitbpf_map_peek": {QUEUE, STACK, BLOOM}, "jitbpf_ringbuf_consume": {RINGBUF}}


def c_api(kinds: set[int]) -> list[str]:
    """The C API functions of an object whose maps are of ``kinds``."""
    return [n for n in C_API_FUNCTIONS if n not in C_API_KINDS or C_API_KINDS[n] & kinds]


def _c_api_ir(kinds: set[int]) -> list[str]:
    lines = []
    for name in c_api(kinds):
        params, call, ret = C_API_FUNCTIONS[name]
        result = ["  %r32 = trunc i64 %r to i32", "  ret i32 %r32"] if ret == "i32" else ["  ret i64 %r"]
        lines += [f"define dso_local {ret} @{name}(ptr %name, {params}) #0 {{", "entry:",
                  "  %h = call ptr @rt_map_named(ptr %name)",
                  "  %nomap = icmp eq ptr %h, null",
                  "  br i1 %nomap, label %einval, label %go",
                  "go:",
                  f"  %r = call i64 @{call}", *result,
                  "einval:",
                  f"  ret {ret} -22", "}"]
    return lines


def module_text(entries: list[EntrySpec], maps: list[MapSpec], bpftime: bool = False,
                helpers: set[str] | None = None) -> str:
    """The runtime module for these programs and maps (``helpers``: the ones they call;
    None: every helper of the library)."""
    kinds = {m.kind for m in maps}
    lines = [library(kinds, helpers, any(m.lru for m in maps)), *_c_api_ir(kinds), *_maps_ir(maps)]
    declared = {s for m in maps for s in m.programs.values()}
    for i, e in enumerate(entries):
        if e.entry not in declared:
            lines.append(f"declare i64 @{_q(e.entry)}(i64, i64, i64, i64, i64, ptr)")
        lines += _core_ir(e, i)
        core = _q(f"jitbpf_core${e.name}")
        if bpftime:
            lines += ["define dso_local i32 @bpf_main(ptr %ctx, i64 %size) #0 {",
                      "  %c = ptrtoint ptr %ctx to i64",
                      f"  %r = call i64 @{core}(i64 %c, i64 %size, i64 0, i64 0, i64 0, ptr @jitbpf_rs)",
                      "  %r32 = trunc i64 %r to i32", "  ret i32 %r32", "}"]
        else:
            lines += [f"define dso_local i64 @{_q(e.name)}(ptr %ctx, i64 %size) #0 {{",
                      "  %c = ptrtoint ptr %ctx to i64",
                      f"  %r = call i64 @{core}(i64 %c, i64 %size, i64 0, i64 0, i64 0, ptr @jitbpf_rs)",
                      "  ret i64 %r", "}"]
    return "\n".join(line for line in lines if line) + "\n"
