"""The helper registry: Linux helper ids -> Python implementations.

A helper is ``func(rt, r1, r2, r3, r4, r5) -> int`` where ``rt`` is the
:class:`~jitbpf.runtime.Runtime` of the running program (memory, maps, trace
output, clocks). Every engine calls the same functions: the interpreter
directly, native code through a ctypes callback, unicorn through a stub whose
hook runs the function. Results are taken modulo 2**64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import BpfEngineError, BpfRuntimeError
from ..isa import MASK32, MASK64, to_s32
from .maps import E2BIG, EAGAIN, EFAULT, EINVAL, ENOENT, ERANGE, ProgArrayMap

HelperFunc = Callable[..., int]
KFUNC_ID_BASE = 1 << 20        # ids given to kfuncs registered by name


@dataclass(frozen=True)
class Helper:
    """A helper and its prototype. ``args``/``ret`` are the kinds of the kernel's
    ARG_*/RET_* (a ``const_size*`` argument is the size of the buffer before it, as in
    Linux); ``prog_types`` the program types that may call it (None: every type),
    ``maps`` the map types its map argument may be (None: any), ``callback`` the
    arguments the ``ptr_to_func`` argument is called with ("index": the iteration,
    "map"/"map_key"/"map_value": the map and one element, "ctx": the helper's
    ``ptr_to_stack_or_null`` argument), ``changes_packet`` whether it moves the packet
    (packet pointers must be reloaded after it)."""

    id: int
    name: str                         # the Linux name without the bpf_ prefix
    func: HelperFunc
    args: tuple[str, ...] = ()        # argument kinds, for documentation and the verifier
    ret: str = "integer"
    prog_types: frozenset[str] | None = None
    maps: frozenset[str] | None = None
    callback: tuple[str, ...] = ()
    changes_packet: bool = False
    native: str | None = None         # the native runtime's symbol for it (jitbpf.runtime.native)

    @property
    def symbol(self) -> str:
        """The external symbol native code calls (``bpf_ktime_get_ns``)."""
        return "bpf_" + self.name


class HelperRegistry:
    """Helpers by id and by name; users add their own (and kfuncs, by name) from Python."""

    def __init__(self, helpers: list[Helper] | None = None):
        self.by_id: dict[int, Helper] = {}
        self.by_name: dict[str, Helper] = {}
        for h in helpers or ():
            self.add(h)

    def add(self, helper: Helper) -> Helper:
        self.by_id[helper.id] = helper
        self.by_name[helper.name] = helper
        return helper

    def register(self, id: int, name: str, func: HelperFunc | None = None, *,
                 args: tuple[str, ...] = (), ret: str = "integer", **prototype):
        """Register ``func`` as helper ``id``; usable as a decorator when func is omitted.
        ``prototype``: the other :class:`Helper` fields (prog_types, maps, ...)."""
        name = name.removeprefix("bpf_")
        if func is None:
            return lambda f: self.add(Helper(id, name, f, args, ret, **prototype)).func
        return self.add(Helper(id, name, func, args, ret, **prototype))

    def register_kfunc(self, name: str, func: HelperFunc | None = None, *, args: tuple[str, ...] = (),
                       ret: str = "integer", **prototype):
        """Register a kfunc (called by name from BPF, ``extern ... __ksym``); it gets a
        private id above every Linux helper id. Usable as a decorator."""
        existing = self.by_name.get(name.removeprefix("bpf_"))
        id = existing.id if existing is not None else max([KFUNC_ID_BASE - 1, *self.by_id]) + 1
        return self.register(id, name, func, args=args, ret=ret, **prototype)

    def get(self, id: int) -> Helper:
        helper = self.by_id.get(id)
        if helper is None:
            raise BpfEngineError(f"unknown helper {id}")
        return helper

    def lookup(self, name: str) -> Helper:
        helper = self.by_name.get(name.removeprefix("bpf_"))
        if helper is None:
            raise BpfEngineError(f"unknown helper or kfunc '{name}'")
        return helper

    def copy(self) -> "HelperRegistry":
        return HelperRegistry(list(self.by_id.values()))

    def __contains__(self, id: int) -> bool:
        return id in self.by_id

    def __iter__(self):
        return iter(sorted(self.by_id.values(), key=lambda h: h.id))


DEFAULT = HelperRegistry()
MAX_TAIL_CALLS = 33          # Linux MAX_TAIL_CALL_CNT
MAX_LOOPS = 1 << 23          # bpf_loop's limit
HZ = 250                     # for bpf_jiffies64


def helper(id: int, name: str, args: tuple[str, ...] = (), ret: str = "integer", **prototype):
    """Register the decorated function in DEFAULT as Linux helper ``id``."""
    return DEFAULT.register(id, name, args=args, ret=ret, **prototype)


#: Program types by the helpers Linux gives them (see Helper.prog_types). Raw and
#: syscall programs run only in jitbpf, which has every helper, so they may call any.
ANYWHERE = frozenset({"raw", "syscall"})
TRACING = frozenset({"kprobe", "tracepoint", "raw_tracepoint", "perf_event", "tracing", "lsm"}) | ANYWHERE
SKB = frozenset({"tc", "socket", "cgroup_skb", "sk_skb", "lwt", "flow_dissector"}) | ANYWHERE
XDP = frozenset({"xdp"}) | ANYWHERE
PERCPU_MAPS = frozenset({"percpu_array", "percpu_hash", "lru_percpu_hash"})
ITERABLE_MAPS = frozenset({"hash", "lru_hash", "array", "percpu_array", "percpu_hash", "lru_percpu_hash"})


def _err(errno: int) -> int:
    return -errno & MASK64


# ------------------------------------------------------------------ maps

@helper(1, "map_lookup_elem", ("const_map_ptr", "ptr_to_map_key"), "ptr_to_map_value_or_null",
        native="jitbpf_rt_map_lookup_elem")
def map_lookup_elem(rt, map_, key, *_):
    m = rt.map_at(map_)
    return m._lookup(rt.memory.read(key, m.key_size), rt.cpu)


@helper(2, "map_update_elem", ("const_map_ptr", "ptr_to_map_key", "ptr_to_map_value", "anything"),
        native="jitbpf_rt_map_update_elem")
def map_update_elem(rt, map_, key, value, flags, _):
    m = rt.map_at(map_)
    k = rt.memory.read(key, m.key_size)              # b"" for keyless maps, whatever the pointer
    return m._update(k, rt.memory.read(value, m.value_size), flags, rt.cpu if m.percpu else None) & MASK64


@helper(3, "map_delete_elem", ("const_map_ptr", "ptr_to_map_key"), native="jitbpf_rt_map_delete_elem")
def map_delete_elem(rt, map_, key, *_):
    m = rt.map_at(map_)
    return m._delete(rt.memory.read(key, m.key_size)) & MASK64


@helper(195, "map_lookup_percpu_elem", ("const_map_ptr", "ptr_to_map_key", "anything"),
        "ptr_to_map_value_or_null", maps=PERCPU_MAPS)
def map_lookup_percpu_elem(rt, map_, key, cpu, *_):
    m = rt.map_at(map_)
    if not m.percpu or cpu >= m.ncpus:
        return 0
    return m._lookup(rt.memory.read(key, m.key_size), cpu)


@helper(87, "map_push_elem", ("const_map_ptr", "ptr_to_map_value", "anything"),
        maps=frozenset({"queue", "stack", "bloom_filter"}))
def map_push_elem(rt, map_, value, flags, *_):
    m = rt.map_at(map_)
    if not hasattr(m, "_push"):
        return _err(EINVAL)
    return m._push(rt.memory.read(value, m.value_size), flags) & MASK64


def _take(rt, map_, value, remove):
    m = rt.map_at(map_)
    if not hasattr(m, "_take"):
        return _err(EINVAL)
    v = m._take(remove)
    if v is None:                                # Linux zeroes the value of an empty pop/peek
        rt.memory.write(value, bytes(m.value_size))
        return _err(ENOENT)
    rt.memory.write(value, v)
    return 0


@helper(88, "map_pop_elem", ("const_map_ptr", "ptr_to_uninit_map_value"), maps=frozenset({"queue", "stack"}))
def map_pop_elem(rt, map_, value, *_):
    return _take(rt, map_, value, True)


@helper(89, "map_peek_elem", ("const_map_ptr", "ptr_to_uninit_map_value"),
        maps=frozenset({"queue", "stack", "bloom_filter"}))
def map_peek_elem(rt, map_, value, *_):
    m = rt.map_at(map_)
    if hasattr(m, "_peek"):                      # bloom filter: is the value (maybe) present?
        return m._peek(rt.memory.read(value, m.value_size)) & MASK64
    return _take(rt, map_, value, False)


@helper(164, "for_each_map_elem", ("const_map_ptr", "ptr_to_func", "ptr_to_stack_or_null", "anything"),
        maps=ITERABLE_MAPS, callback=("map", "map_key", "map_value", "ctx"))
def for_each_map_elem(rt, map_, callback, ctx, flags, _):
    if flags:
        return _err(EINVAL)
    m = rt.map_at(map_)
    return m.for_each(lambda k, v: rt.invoke(callback, map_, k, v, ctx) or rt.unwinding, rt.cpu)


@helper(12, "tail_call", ("ptr_to_ctx", "const_map_ptr", "anything"), maps=frozenset({"prog_array"}))
def tail_call(rt, ctx, map_, index, *_):
    """Never returns on success: ends the caller, and CompiledProgram.invoke then runs the
    target on the same engine with r1 = ctx (a trampoline, so the native stack does not
    grow and no compiled program is re-entered). Fails (returns, the caller goes on) for
    an empty slot or after 33 tail calls in one run, as Linux does."""
    m = rt.map_at(map_)
    if not isinstance(m, ProgArrayMap):
        raise BpfRuntimeError(f"bpf_tail_call: map '{m.name}' is a {m.type_name}, not a prog_array")
    run = rt.run
    if run.engine is None:
        raise BpfRuntimeError("bpf_tail_call outside CompiledProgram.invoke")
    target = m.program_at(index)
    if target is None or run.tail_calls >= MAX_TAIL_CALLS:
        return _err(ENOENT)
    run.tail_calls += 1
    run.pending_tail_call = (target, ctx)
    rt.end_program(0)
    return 0


# ------------------------------------------------------------------ ring buffer

@helper(131, "ringbuf_reserve", ("const_map_ptr", "const_alloc_size", "anything"), "ptr_to_alloc_mem_or_null",
        maps=frozenset({"ringbuf"}))
def ringbuf_reserve(rt, map_, size, flags, *_):
    m = rt.map_at(map_)
    return 0 if flags or not hasattr(m, "reserve") else m.reserve(size)


def _ringbuf_of(rt, address):
    for m in rt.maps.values():
        if hasattr(m, "contains_record") and m.contains_record(address):
            return m
    raise BpfRuntimeError(f"0x{address:x} is not a ring buffer record")


@helper(132, "ringbuf_submit", ("ptr_to_alloc_mem", "anything"), "void")
def ringbuf_submit(rt, data, *_):
    _ringbuf_of(rt, data).commit(data, False)
    return 0


@helper(133, "ringbuf_discard", ("ptr_to_alloc_mem", "anything"), "void")
def ringbuf_discard(rt, data, *_):
    _ringbuf_of(rt, data).commit(data, True)
    return 0


@helper(130, "ringbuf_output", ("const_map_ptr", "ptr_to_mem", "const_size", "anything"),
        maps=frozenset({"ringbuf"}))
def ringbuf_output(rt, map_, data, size, flags, _):
    m = rt.map_at(map_)
    payload = rt.memory.read(data, size)
    record = m.reserve(size) if hasattr(m, "reserve") else 0
    if not record:
        return _err(EAGAIN)
    rt.memory.write(record, payload)
    m.commit(record, False)
    return 0


@helper(134, "ringbuf_query", ("const_map_ptr", "anything"), maps=frozenset({"ringbuf"}))
def ringbuf_query(rt, map_, flags, *_):
    m = rt.map_at(map_)
    return m.query(flags) if hasattr(m, "query") else 0


# ------------------------------------------------------------------ memory and strings

def _probe_read_user(rt, dst, size, src, *_):
    try:
        data = rt.memory.read(src, size & MASK32)
    except BpfRuntimeError:
        rt.memory.write(dst, bytes(size & MASK32))
        return _err(EFAULT)
    rt.memory.write(dst, data)
    return 0


def _probe_read_user_str(rt, dst, size, src, *_):
    size &= MASK32
    if size == 0:
        return 0
    try:
        s = rt.memory.read_cstr(src, size - 1)
        if len(s) < size - 1 and rt.memory.read(src + len(s), 1) != b"\0":
            raise BpfRuntimeError("string runs off its region")
    except BpfRuntimeError:
        rt.memory.write(dst, bytes(size))
        return _err(EFAULT)
    rt.memory.write(dst, s + b"\0")
    return len(s) + 1


#: x86_64 Linux: kernel addresses start here; copy_from_kernel_nofault refuses anything
#: lower (user space, non-canonical) with -ERANGE before touching it.
KERNEL_HALF = 0xFFFF_8000_0000_0000


def _kernel_source_errno(rt, src: int) -> int:
    """The error Linux gives for a source address we cannot read: -ERANGE for an address
    that is not a kernel one (x86_64), -EFAULT for a kernel address that faults; our
    regions are what the program's kernel memory is."""
    if rt.memory.find(src, 0) is not None or src >= KERNEL_HALF:
        return _err(EFAULT)
    return _err(ERANGE)


def _probe_read_kernel(rt, dst, size, src, *_):
    """Linux's copy_from_kernel_nofault: forward, in 8-byte chunks and then 4, 2, 1, each
    loaded after the previous one is stored (so an overlapping copy is not a memmove);
    on an error the destination is zeroed."""
    size &= MASK32
    if rt.memory.find(src, size) is None:
        if size == 0 and src >= KERNEL_HALF:
            return 0                             # nothing to read: no fault
        rt.memory.write(dst, bytes(size))
        return _kernel_source_errno(rt, src)
    done = 0
    for chunk in (8, 4, 2, 1):
        while size - done >= chunk:
            rt.memory.write(dst + done, rt.memory.read(src + done, chunk))
            done += chunk
    return 0


def _probe_read_kernel_str(rt, dst, size, src, *_):
    """Linux's strncpy_from_kernel_nofault: byte by byte, forward, until a NUL or
    ``size`` bytes (the last then replaced by a NUL); returns the bytes written."""
    size &= MASK32
    if size == 0:
        return 0
    if rt.memory.find(src, 0) is None and src < KERNEL_HALF:
        rt.memory.write(dst, bytes(size))
        return _err(ERANGE)
    for k in range(size):
        try:
            byte = rt.memory.read(src + k, 1)
        except BpfRuntimeError:
            rt.memory.write(dst, bytes(size))
            return _err(EFAULT)
        rt.memory.write(dst + k, byte)
        if byte == b"\0":
            return k + 1
    rt.memory.write(dst + size - 1, b"\0")
    return size


_PROBE_ARGS = ("ptr_to_uninit_mem", "const_size", "anything")
for _id, _name, _func in ((4, "probe_read", _probe_read_kernel), (112, "probe_read_user", _probe_read_user),
                          (113, "probe_read_kernel", _probe_read_kernel), (45, "probe_read_str", _probe_read_kernel_str),
                          (114, "probe_read_user_str", _probe_read_user_str),
                          (115, "probe_read_kernel_str", _probe_read_kernel_str)):
    DEFAULT.register(_id, _name, _func, args=_PROBE_ARGS, prog_types=TRACING if _id in (4, 45) else None)


@helper(182, "strncmp", ("ptr_to_mem", "const_size", "ptr_to_const_str"))
def strncmp(rt, s1, s1_sz, s2, *_):
    a = rt.memory.read(s1, s1_sz & MASK32)
    b = rt.memory.read_cstr(s2, len(a) + 1) + b"\0"
    for c1, c2 in zip(a, b):
        if c1 != c2:
            return 1 if c1 > c2 else MASK64
        if not c1:
            break
    return 0


def _csum_partial(data: bytes, seed: int) -> int:
    """32-bit one's complement sum of little-endian words (csum_partial on x86_64)."""
    total = seed & MASK32
    for i in range(0, len(data), 4):
        total += int.from_bytes(data[i:i + 4], "little")
    while total >> 32:
        total = (total & MASK32) + (total >> 32)
    return total


def _csum_add(a: int, b: int) -> int:
    s = a + b
    return (s & MASK32) + (s >> 32)


@helper(28, "csum_diff", ("ptr_to_mem_or_null", "const_size_or_zero", "ptr_to_mem_or_null",
                          "const_size_or_zero", "anything"), prog_types=XDP | SKB - {"socket", "cgroup_skb"})
def csum_diff(rt, from_, from_size, to, to_size, seed):
    """seed + sum(to) - sum(from) in one's complement, folded to 16 bits (not inverted):
    what Linux returns since 6.13, the same on every architecture, for any sizes (the
    multiple-of-4 and 512-byte limits are gone there: csum_partial takes any length)."""
    from_size &= MASK32
    to_size &= MASK32
    old, new = rt.memory.read(from_, from_size), rt.memory.read(to, to_size)
    if from_size and to_size:
        total = _csum_add(_csum_partial(new, seed), ~_csum_partial(old, 0) & MASK32)
    elif to_size:
        total = _csum_partial(new, seed)
    elif from_size:
        total = ~_csum_partial(old, ~seed) & MASK32
    else:
        total = seed & MASK32
    total = (total & 0xFFFF) + (total >> 16)
    return (total & 0xFFFF) + (total >> 16)


# ------------------------------------------------------------------ output

def _sized_format(rt, address, size):
    """A format given with its size (which counts the NUL), as trace_printk takes it."""
    raw = rt.memory.read(address, size & MASK32)
    return raw.split(b"\0", 1)[0] if b"\0" in raw else None


def _format(rt, fmt, args):
    from .bprintf import FormatError, bprintf
    if fmt is None or args is None:
        return None
    try:
        return bprintf(fmt, args, rt.memory)
    except FormatError:
        return None


def _trace(rt, text):
    if text is None:
        return _err(EINVAL)
    rt.trace_lines.extend(text.removesuffix("\n").split("\n"))
    return len(text.encode("latin-1"))


def _u64_array(rt, data, data_len):
    if data_len & 7 or data_len > 8 * 12:
        return None
    raw = rt.memory.read(data, data_len)
    return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]


@helper(6, "trace_printk", ("ptr_to_mem", "const_size"))
def trace_printk(rt, fmt, fmt_size, a1, a2, a3):
    return _trace(rt, _format(rt, _sized_format(rt, fmt, fmt_size), [a1, a2, a3]))


@helper(177, "trace_vprintk", ("ptr_to_mem", "const_size", "ptr_to_mem_or_null", "const_size_or_zero"))
def trace_vprintk(rt, fmt, fmt_size, data, data_len, _):
    return _trace(rt, _format(rt, _sized_format(rt, fmt, fmt_size), _u64_array(rt, data, data_len)))


@helper(165, "snprintf", ("ptr_to_mem_or_null", "const_size_or_zero", "ptr_to_const_str", "ptr_to_mem_or_null",
                          "const_size_or_zero"))
def snprintf(rt, out, out_size, fmt, data, data_len):
    text = _format(rt, rt.memory.read_cstr(fmt, 1 << 16), _u64_array(rt, data, data_len))
    if text is None:
        return _err(EINVAL)
    encoded = text.encode("latin-1")
    out_size &= MASK32
    if out_size:
        rt.memory.write(out, encoded[:out_size - 1] + b"\0")
    return len(encoded) + 1


# ------------------------------------------------------------------ callbacks

@helper(181, "loop", ("anything", "ptr_to_func", "ptr_to_stack_or_null", "anything"), callback=("index", "ctx"))
def loop(rt, nr_loops, callback, ctx, flags, _):
    if flags:
        return _err(EINVAL)
    nr_loops &= MASK32
    if nr_loops > MAX_LOOPS:
        return _err(E2BIG)
    for i in range(nr_loops):
        if rt.invoke(callback, i, ctx) & MASK64:
            return i + 1
        if rt.unwinding:
            return 0
    return nr_loops


# ------------------------------------------------------------------ locks

def _lock(rt, address, take):
    held = rt.memory.load(address, 4)
    if held == take:
        what = "already held (deadlock)" if take else "not held"
        raise BpfRuntimeError(f"bpf_spin_{'lock' if take else 'unlock'}: the lock at 0x{address:x} is {what}")
    rt.memory.store(address, 4, take)
    return 0


@helper(93, "spin_lock", ("ptr_to_spin_lock",), "void")
def spin_lock(rt, lock, *_):
    return _lock(rt, lock, 1)


@helper(94, "spin_unlock", ("ptr_to_spin_lock",), "void")
def spin_unlock(rt, lock, *_):
    return _lock(rt, lock, 0)


# ------------------------------------------------------------------ time, randomness, task

for _id, _name in ((5, "ktime_get_ns"), (125, "ktime_get_boot_ns"), (160, "ktime_get_coarse_ns"),
                   (208, "ktime_get_tai_ns")):
    DEFAULT.register(_id, _name, lambda rt, *_: rt.clock_ns())


@helper(118, "jiffies64")
def jiffies64(rt, *_):
    return rt.clock_ns() // (1_000_000_000 // HZ)


@helper(7, "get_prandom_u32")
def get_prandom_u32(rt, *_):
    return rt.rng.getrandbits(32)


@helper(8, "get_smp_processor_id")
def get_smp_processor_id(rt, *_):
    return rt.cpu


@helper(42, "get_numa_node_id")
def get_numa_node_id(rt, *_):
    return 0


@helper(14, "get_current_pid_tgid")
def get_current_pid_tgid(rt, *_):
    return (rt.task.tgid << 32) | rt.task.pid


@helper(15, "get_current_uid_gid", prog_types=TRACING)
def get_current_uid_gid(rt, *_):
    return (rt.task.gid << 32) | rt.task.uid


@helper(16, "get_current_comm", ("ptr_to_uninit_mem", "const_size"), prog_types=TRACING)
def get_current_comm(rt, buf, size, *_):
    size &= MASK32
    if size:
        rt.memory.write(buf, rt.task.comm[:size - 1].ljust(size, b"\0"))
    return 0


# ------------------------------------------------------------------ packets

def _frame(rt, ctx, what):
    frame = rt.contexts.get(ctx)
    if frame is None or not hasattr(frame, what):
        raise BpfRuntimeError(f"bpf_{what} needs the program's context in r1")
    return frame


@helper(44, "xdp_adjust_head", ("ptr_to_ctx", "anything"), prog_types=XDP, changes_packet=True)
def xdp_adjust_head(rt, ctx, delta, *_):
    return _frame(rt, ctx, "xdp_adjust_head").xdp_adjust_head(to_s32(delta)) & MASK64


@helper(54, "xdp_adjust_meta", ("ptr_to_ctx", "anything"), prog_types=XDP, changes_packet=True)
def xdp_adjust_meta(rt, ctx, delta, *_):
    return _frame(rt, ctx, "xdp_adjust_meta").xdp_adjust_meta(to_s32(delta)) & MASK64


@helper(65, "xdp_adjust_tail", ("ptr_to_ctx", "anything"), prog_types=XDP, changes_packet=True)
def xdp_adjust_tail(rt, ctx, delta, *_):
    return _frame(rt, ctx, "xdp_adjust_tail").xdp_adjust_tail(to_s32(delta)) & MASK64


@helper(26, "skb_load_bytes", ("ptr_to_ctx", "anything", "ptr_to_uninit_mem", "const_size"), prog_types=SKB)
def skb_load_bytes(rt, skb, offset, to, length, _):
    data, size = rt.skb_window(skb)
    offset &= MASK32
    if length == 0 or offset + length > size:
        rt.memory.write(to, bytes(length & MASK32))
        return _err(EFAULT)
    rt.memory.write(to, rt.memory.read(data + offset, length))
    return 0


@helper(9, "skb_store_bytes", ("ptr_to_ctx", "anything", "ptr_to_mem", "const_size", "anything"),
        prog_types=frozenset({"tc", "lwt", "sk_skb"}) | ANYWHERE, changes_packet=True)
def skb_store_bytes(rt, skb, offset, src, length, flags):
    data, size = rt.skb_window(skb)
    offset &= MASK32
    if flags & ~3:
        return _err(EINVAL)
    if offset + length > size:
        return _err(EFAULT)
    rt.memory.write(data + offset, rt.memory.read(src, length))
    return 0


def default_registry() -> HelperRegistry:
    """A fresh registry holding every built-in helper."""
    return DEFAULT.copy()
