"""Program types: what r1 is at entry, which context fields a program may read or write
(the kernel's ``*_is_valid_access`` in net/core/filter.c and kernel/trace/bpf_trace.c),
what it may return, and which special instructions it may use.

The rule for ``raw`` programs (uBPF style, the way every jitbpf engine runs them):
r1 points to the caller's memory and r2 holds its length. The length is only known at
run time, so accesses through r1 are allowed at any offset but are *not* proven in
bounds: engines keep their run-time checks for them (``Facts.accesses`` says so). With
``verify(..., mem_size=N)`` r1 is N bytes and r2 the constant N, and accesses are
proven like map values. ``syscall`` and tracing contexts are bytes the caller passes:
field rules as in Linux, sized at run time (``Facts.ctx_size`` is how many bytes the
program reads, so an engine can check the size once at entry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .state import PKT, PKT_END, PKT_META, SCALAR

#: Linux program type names (bpftool / libbpf) -> ours.
ALIASES = {
    "sched_cls": "tc", "sched_act": "tc", "classifier": "tc", "action": "tc", "tcx": "tc",
    "socket_filter": "socket", "raw_tp": "raw_tracepoint", "tp": "tracepoint", "kretprobe": "kprobe",
    "uprobe": "kprobe", "fentry": "tracing", "fexit": "tracing", "lwt_in": "lwt", "lwt_out": "lwt",
    "lwt_xmit": "lwt", "perf": "perf_event",
}

# __sk_buff fields: name -> (offset, size)
SKB_FIELDS = {
    "len": (0, 4), "pkt_type": (4, 4), "mark": (8, 4), "queue_mapping": (12, 4), "protocol": (16, 4),
    "vlan_present": (20, 4), "vlan_tci": (24, 4), "vlan_proto": (28, 4), "priority": (32, 4),
    "ingress_ifindex": (36, 4), "ifindex": (40, 4), "tc_index": (44, 4), "cb": (48, 20), "hash": (68, 4),
    "tc_classid": (72, 4), "data": (76, 4), "data_end": (80, 4), "napi_id": (84, 4), "family": (88, 4),
    "remote_ip4": (92, 4), "local_ip4": (96, 4), "remote_ip6": (100, 16), "local_ip6": (116, 16),
    "remote_port": (132, 4), "local_port": (136, 4), "data_meta": (140, 4), "flow_keys": (144, 8),
    "tstamp": (152, 8), "wire_len": (160, 4), "gso_segs": (164, 4), "sk": (168, 8), "gso_size": (176, 4),
    "tstamp_type": (180, 1), "hwtstamp": (184, 8),
}
SK_BUFF_SIZE = 192
XDP_MD_SIZE = 24
PT_REGS_SIZE = 168            # x86_64 struct pt_regs
PERF_EVENT_DATA_SIZE = 184    # struct bpf_perf_event_data: regs, sample_period, addr


def _field_at(off: int) -> str | None:
    """The __sk_buff field whose bytes include ``off`` ("family..local_port" merged)."""
    for name, (start, size) in SKB_FIELDS.items():
        if start <= off < start + size:
            return name
    return None


_SK_RANGE = ("family", "remote_ip4", "local_ip4", "remote_ip6", "local_ip6", "remote_port", "local_port")


@dataclass(frozen=True)
class SkbRules:
    """How one socket-buffer program type restricts the common __sk_buff rules."""

    deny: frozenset[str]
    write: frozenset[str]
    packet: dict[str, str] = field(default_factory=dict)


def _names(*names: str) -> frozenset[str]:
    out = set()
    for n in names:
        out.update(_SK_RANGE if n == "sk_fields" else (n,))
    return frozenset(out)


_PKT = {"data": PKT, "data_meta": PKT_META, "data_end": PKT_END}
SKB_RULES = {
    "socket": SkbRules(_names("tc_classid", "data", "data_meta", "data_end", "sk_fields", "tstamp", "wire_len",
                              "hwtstamp"), _names("cb")),
    "tc": SkbRules(_names("sk_fields"), _names("mark", "tc_index", "priority", "tc_classid", "cb", "tstamp",
                                               "queue_mapping"), _PKT),
    "cgroup_skb": SkbRules(_names("tc_classid", "data_meta", "wire_len"), _names("mark", "priority", "cb", "tstamp"),
                           {"data": PKT, "data_end": PKT_END}),
    "lwt": SkbRules(_names("tc_classid", "sk_fields", "data_meta", "tstamp", "wire_len", "hwtstamp"),
                    _names("mark", "priority", "cb"), {"data": PKT, "data_end": PKT_END}),
    "sk_skb": SkbRules(_names("tc_classid", "data_meta", "tstamp", "wire_len", "hwtstamp", "mark"),
                       _names("tc_index", "priority"), {"data": PKT, "data_end": PKT_END}),
}


def _skb_common(off: int, size: int, write: bool, ldsx: bool) -> bool:
    """bpf_skb_is_valid_access: the rules every socket-buffer type shares."""
    if off < 0 or off >= SK_BUFF_SIZE or off % size:
        return False
    name = _field_at(off)
    if name == "cb":
        return off + size <= 68
    if name in ("data", "data_meta", "data_end"):
        return not ldsx and size == 4
    if name in ("remote_ip6", "local_ip6", "remote_ip4", "local_ip4"):
        return size == 4
    if name == "flow_keys" or name == "tstamp_type" or name is None:   # None: the padding
        return False
    if name == "hwtstamp":
        return not write and size == 8
    if name == "tstamp":
        return size == 8
    if name == "sk":
        return not write and size == 8
    if write:
        return size == 4
    return size <= 4 and not size & (size - 1)


def skb_access(prog_type: str, off: int, size: int, write: bool, ldsx: bool) -> str | None:
    rules = SKB_RULES[prog_type]
    name = _field_at(off)
    if prog_type == "tc" and name == "tstamp_type" and off == 180:
        return SCALAR if size == 1 and not write else None
    if name in rules.deny:
        return None
    if write and name not in rules.write:
        return None
    if not _skb_common(off, size, write, ldsx):
        return None
    return rules.packet.get(name, SCALAR) if not write else SCALAR


def flow_dissector_access(off: int, size: int, write: bool, ldsx: bool) -> str | None:
    if off < 0 or off >= SK_BUFF_SIZE or off % size or write:
        return None
    name = _field_at(off)
    if name in ("data", "data_end"):
        return None if ldsx or size != 4 else _PKT[name]
    return None       # flow_keys (a pointer we do not model) and everything else


def xdp_access(off: int, size: int, write: bool, ldsx: bool) -> str | None:
    if off == 20 or write:                       # egress_ifindex (devmap programs only); no writes
        return None
    if off < 0 or off >= XDP_MD_SIZE or off % size or size != 4:
        return None
    if off in (0, 4, 8):
        return None if ldsx else (PKT, PKT_END, PKT_META)[off // 4]
    return SCALAR


def kprobe_access(off: int, size: int, write: bool, ldsx: bool) -> str | None:
    if off < 0 or off >= PT_REGS_SIZE or write or off % size or off + size > PT_REGS_SIZE:
        return None
    return SCALAR


def tracepoint_access(off: int, size: int, write: bool, ldsx: bool) -> str | None:
    if off < 8 or off >= 2048 or write or off % size:
        return None
    return SCALAR


def raw_tracepoint_access(off: int, size: int, write: bool, ldsx: bool) -> str | None:
    if off < 0 or off >= 8 * 12 or write or off % size:
        return None
    return SCALAR


def perf_event_access(off: int, size: int, write: bool, ldsx: bool) -> str | None:
    if off < 0 or off >= PERF_EVENT_DATA_SIZE or write or off % size:
        return None
    if off >= PT_REGS_SIZE:                      # sample_period, addr: narrow loads allowed
        return SCALAR if size <= 8 and not size & (size - 1) else None
    return SCALAR if size == 8 else None


def syscall_access(off: int, size: int, write: bool, ldsx: bool) -> str | None:
    if off < 0 or off >= 0xFFFF or off % size:
        return None
    return SCALAR


Access = Callable[[int, int, bool, bool], "str | None"]


@dataclass(frozen=True)
class ProgType:
    """What the verifier needs to know about one program type."""

    name: str
    ctx: Access | None               # None: r1 is raw memory, not a context
    ctx_size: int | None             # bytes of context, None when the caller decides
    packet_write: bool = False       # direct packet writes allowed
    ld_abs: bool = False             # LD_ABS / LD_IND allowed (r6 = skb)
    ret_range: tuple[int, int] | None = None
    tracing: bool = False            # bpf_spin_lock maps are refused (Linux: "tracing progs ...")
    kernel_name: str = ""            # for BPF_PROG_LOAD


def _skb(name: str, write: bool, ld_abs: bool, kernel: str, ret=None) -> ProgType:
    return ProgType(name, lambda o, s, w, x: skb_access(name, o, s, w, x), SK_BUFF_SIZE, write, ld_abs, ret,
                    kernel_name=kernel)


PROG_TYPES: dict[str, ProgType] = {
    "raw": ProgType("raw", None, None),
    "xdp": ProgType("xdp", xdp_access, XDP_MD_SIZE, packet_write=True, kernel_name="xdp"),
    "socket": _skb("socket", False, True, "socket_filter"),
    "tc": _skb("tc", True, True, "sched_cls"),
    "cgroup_skb": _skb("cgroup_skb", False, False, "cgroup_skb", (0, 1)),
    "lwt": _skb("lwt", False, False, "lwt_in"),
    "sk_skb": _skb("sk_skb", True, False, "sk_skb"),
    "flow_dissector": ProgType("flow_dissector", flow_dissector_access, SK_BUFF_SIZE, kernel_name="flow_dissector"),
    "syscall": ProgType("syscall", syscall_access, None, kernel_name="syscall"),
    "kprobe": ProgType("kprobe", kprobe_access, None, tracing=True, kernel_name="kprobe"),
    "tracepoint": ProgType("tracepoint", tracepoint_access, None, tracing=True, kernel_name="tracepoint"),
    "raw_tracepoint": ProgType("raw_tracepoint", raw_tracepoint_access, None, tracing=True,
                               kernel_name="raw_tracepoint"),
    "perf_event": ProgType("perf_event", perf_event_access, None, tracing=True, kernel_name="perf_event"),
    "tracing": ProgType("tracing", raw_tracepoint_access, None, tracing=True, kernel_name="tracing"),
    "lsm": ProgType("lsm", raw_tracepoint_access, None, tracing=True, kernel_name="lsm"),
}


def resolve(name: str) -> ProgType | None:
    name = ALIASES.get(name, name)
    return PROG_TYPES.get(name)
