"""Helper and kfunc prototypes as the verifier checks them.

Helpers come from the runtime's registry (:class:`jitbpf.runtime.helpers.Helper`: the
one table the runtime and the verifier share). A kfunc's prototype comes from the
registry when it was registered with ``args``, else from the object's BTF declaration
(``extern ... __ksym``): integer parameters are ``anything``, pointer parameters point
to memory of the pointee's size (a ``void *`` followed by a parameter named ``*__sz``
is a buffer and its size), a pointer result is BTF-typed memory that may be NULL.

Map compatibility (the kernel's check_map_func_compatibility) is two-sided: a helper
may accept only some map types (``Helper.maps``), and some map types accept only
their own helpers (``MAP_ONLY`` below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: map types that only their own helpers may take
MAP_ONLY = {
    "prog_array": frozenset({"tail_call"}),
    "ringbuf": frozenset({"ringbuf_output", "ringbuf_reserve", "ringbuf_query"}),
    "queue": frozenset({"map_peek_elem", "map_pop_elem", "map_push_elem"}),
    "stack": frozenset({"map_peek_elem", "map_pop_elem", "map_push_elem"}),
    "bloom_filter": frozenset({"map_peek_elem", "map_push_elem"}),
    "perf_event_array": frozenset({"perf_event_output", "perf_event_read", "perf_event_read_value"}),
    "stack_trace": frozenset({"get_stackid"}),
    "user_ringbuf": frozenset({"user_ringbuf_drain"}),
}


@dataclass(frozen=True)
class Prototype:
    id: int
    name: str
    args: tuple[str, ...]
    ret: str
    maps: frozenset[str] | None = None
    callback: tuple[str, ...] = ()
    changes_packet: bool = False
    fixed_sizes: dict[int, int] = field(default_factory=dict)   # register -> bytes a pointer argument covers
    ret_size: int = 0
    ret_name: str = ""


_cache: dict[int, tuple[object, Prototype]] = {}


def helper_prototype(h) -> Prototype:
    hit = _cache.get(id(h))
    if hit is not None and hit[0] is h:
        return hit[1]
    proto = Prototype(h.id, h.name, tuple(h.args), h.ret, h.maps, tuple(h.callback), h.changes_packet)
    _cache[id(h)] = (h, proto)
    return proto


def map_allows(map_type: str, helper: str, helper_maps: frozenset[str] | None) -> bool:
    if helper_maps is not None and map_type not in helper_maps:
        return False
    only = MAP_ONLY.get(map_type)
    return only is None or helper in only


def kfunc_prototype(name: str, helpers, btf) -> Prototype | None:
    h = helpers.by_name.get(name.removeprefix("bpf_")) if helpers is not None else None
    if h is not None and h.args:
        return helper_prototype(h)
    if btf is None:
        return None
    fn = btf.find(name, "func")
    if fn is None:
        return None
    proto_t = btf.resolve(fn.type)
    if proto_t.kind != "func_proto":
        return None
    params = proto_t.members
    args: list[str] = []
    sizes: dict[int, int] = {}
    i = 0
    while i < len(params):
        pname, ptype = params[i]
        t = btf.resolve(ptype)
        regno = len(args) + 1
        if t.kind == "ptr":
            target = btf.resolve(t.type) if t.type else None
            nxt = params[i + 1][0] if i + 1 < len(params) else ""
            if nxt.endswith("__sz"):
                args += ["ptr_to_mem", "const_size"]
                i += 2
                continue
            args.append("ptr_to_btf_mem")
            sizes[regno] = btf.size_of(target.id) if target is not None and target.kind != "fwd" else 0
        else:
            args.append("anything")
        i += 1
    ret_t = btf.resolve(proto_t.type) if proto_t.type else None
    ret, ret_size, ret_name = "integer", 0, ""
    if ret_t is None:
        ret = "void"
    elif ret_t.kind == "ptr":
        ret = "ptr_to_btf_mem_or_null"
        pointee = btf.resolve(ret_t.type) if ret_t.type else None
        if pointee is not None and pointee.kind not in ("fwd",):
            ret_size = btf.size_of(pointee.id)
            ret_name = pointee.name
    hid = h.id if h is not None else -1
    return Prototype(hid, name, tuple(args), ret, fixed_sizes=sizes, ret_size=ret_size, ret_name=ret_name)
