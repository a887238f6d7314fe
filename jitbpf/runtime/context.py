"""Contexts a program runs with, like BPF_PROG_TEST_RUN: what r1.. hold and which
memory is mapped for the run. Every engine receives the same Invocation, so the
input memory after the run can be compared across engines.

- raw memory (uBPF style): r1 = a copy of the bytes, r2 = their length;
- XDP: r1 = a ``struct xdp_md`` over a packet buffer with Linux's 256 bytes of
  headroom; ``data``/``data_end``/``data_meta`` are u32 fields in the UAPI, so the
  packet buffer lives below 4 GiB and a u32 load of ``ctx->data`` *is* the pointer
  in every engine (the kernel's verifier rewrites those loads; we need not);
- ``__sk_buff`` (tc, socket filters, cgroup_skb ...): the common fields, the
  packet below 4 GiB; as in BPF_PROG_TEST_RUN the packet starts with an Ethernet
  header, which tc programs see and socket filters do not;
- syscall: r1 = a writable copy of arbitrary bytes (or 0 without bytes);
- tracing (kprobe, tracepoint, raw_tp, perf_event ...): r1 = a read-only copy of a
  struct the caller supplies.
"""

from __future__ import annotations

import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..errors import BpfRuntimeError
from .maps import EACCES, EINVAL
from .memory import HostBuffer, Region

XDP_HEADROOM = 256            # XDP_PACKET_HEADROOM
XDP_FRAME_SIZE = 40           # sizeof(struct xdp_frame), kept free at the start of the headroom
SKB_SHARED_INFO = 320         # tailroom Linux reserves after the frame
XDP_MD_SIZE = 24
SK_BUFF_SIZE = 192
ETH_HLEN = 14
XDP_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
TC_ACTIONS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
              3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
              7: "TC_ACT_REDIRECT"}
#: __sk_buff field offsets (UAPI)
SKB = {"len": 0, "pkt_type": 4, "mark": 8, "queue_mapping": 12, "protocol": 16, "vlan_present": 20,
       "vlan_tci": 24, "vlan_proto": 28, "priority": 32, "ingress_ifindex": 36, "ifindex": 40,
       "tc_index": 44, "cb": 48, "hash": 68, "tc_classid": 72, "data": 76, "data_end": 80, "napi_id": 84,
       "family": 88, "data_meta": 140, "tstamp": 152, "wire_len": 160, "gso_segs": 164, "gso_size": 176}

#: program type -> context kind
CONTEXT_KINDS = {"raw": "raw", "xdp": "xdp", "syscall": "syscall"}
for _t in ("tc", "socket", "cgroup_skb", "sk_skb", "lwt", "flow_dissector"):
    CONTEXT_KINDS[_t] = "skb"


def context_kind(prog_type: str) -> str:
    return CONTEXT_KINDS.get(prog_type, "struct")


@dataclass
class Invocation:
    args: tuple[int, ...]                     # r1, r2, ... at entry
    regions: list[Region] = field(default_factory=list)   # mapped during the run
    memory: HostBuffer | None = None          # the caller's memory, read back afterwards
    ctx: HostBuffer | None = None             # the context struct, if any
    output: Callable[[], bytes] | None = None  # what memory_after returns, when not `memory`
    skb_packets: dict[int, tuple[int, int]] = field(default_factory=dict)   # for LD_ABS/LD_IND
    contexts: dict[int, Any] = field(default_factory=dict)   # ctx address -> frame (xdp helpers)
    kind: str = "raw"

    def memory_after(self) -> bytes | None:
        if self.output is not None:
            return self.output()
        return self.memory.bytes() if self.memory is not None else None

    @contextmanager
    def active(self, rt) -> Iterator[None]:
        """Map the regions and register the packet windows and frames for one run."""
        with rt.mapped(*self.regions):
            rt.skb_packets.update(self.skb_packets)
            rt.contexts.update(self.contexts)
            try:
                yield
            finally:
                for a in self.skb_packets:
                    rt.skb_packets.pop(a, None)
                for a in self.contexts:
                    rt.contexts.pop(a, None)

    def snapshot(self) -> list[bytes]:
        """The bytes of every region (a cross-check reruns from the same state)."""
        return [bytes(r.view) for r in self.regions]

    def restore(self, state: list[bytes]) -> None:
        for r, data in zip(self.regions, state):
            r.view[:] = data


def raw_memory(data: bytes | None) -> Invocation:
    """uBPF / bpf_conformance style: r1 = a writable copy of ``data`` (0 if None), r2 = its length."""
    if data is None:
        return Invocation((0, 0))
    buf = HostBuffer(len(data), data)
    return Invocation((buf.address if data else 0, len(data)), [Region.of("mem", buf)], buf)


def syscall(data: bytes | None) -> Invocation:
    """BPF_PROG_TYPE_SYSCALL: r1 = a writable copy of the context bytes (0 without any)."""
    if not data:
        return Invocation((0,), kind="syscall")
    buf = HostBuffer(len(data), data)
    return Invocation((buf.address,), [Region.of("ctx", buf)], buf, buf, kind="syscall")


def struct_context(data: bytes | None, name: str = "ctx") -> Invocation:
    """kprobe/tracepoint/raw_tp style: r1 = a read-only copy of a struct the caller supplies."""
    data = data or bytes(8)
    buf = HostBuffer(len(data), data)
    return Invocation((buf.address,), [Region.of(name, buf, writable=False)], buf, buf, kind="struct")


class XdpFrame:
    """The packet buffer behind an xdp_md: headroom, packet, room to grow, tailroom.

    The xdp_md in ``ctx`` is the truth for data/data_end/data_meta (programs cannot
    write those fields); the bpf_xdp_adjust_* helpers move them with Linux's checks.
    """

    def __init__(self, packet: bytes, ctx_in: bytes | None = None):
        size = max(4096, XDP_HEADROOM + len(packet) + SKB_SHARED_INFO)
        self.buffer = HostBuffer(size, low=True)
        self.hard_start = self.buffer.address
        self.hard_end = self.hard_start + size - SKB_SHARED_INFO
        data = self.hard_start + XDP_HEADROOM
        self.buffer.view[XDP_HEADROOM:XDP_HEADROOM + len(packet)] = packet
        self.ctx = HostBuffer(XDP_MD_SIZE)
        fields = bytearray(XDP_MD_SIZE)
        struct.pack_into("<III", fields, 12, 1, 0, 0)           # ingress_ifindex = lo, queue 0
        if ctx_in:
            fields[12:XDP_MD_SIZE] = bytes(ctx_in[12:XDP_MD_SIZE]).ljust(12, b"\0")
        struct.pack_into("<III", fields, 0, data, data + len(packet), data)
        self.ctx.view[:] = fields

    def pointers(self) -> tuple[int, int, int]:
        """(data, data_end, data_meta) as the program sees them now."""
        return struct.unpack_from("<III", self.ctx.view, 0)

    def _set(self, data: int, end: int, meta: int) -> None:
        struct.pack_into("<III", self.ctx.view, 0, data, end, meta)

    def _move(self, dst: int, src: int, n: int) -> None:
        a, b = src - self.hard_start, dst - self.hard_start
        self.buffer.view[b:b + n] = bytes(self.buffer.view[a:a + n])

    def xdp_adjust_head(self, delta: int) -> int:
        data, end, meta = self.pointers()
        metalen = data - meta
        new = data + delta
        if new < self.hard_start + XDP_FRAME_SIZE + metalen or new > end - ETH_HLEN:
            return -EINVAL
        if metalen:
            self._move(meta + delta, meta, metalen)
        self._set(new, end, meta + delta)
        return 0

    def xdp_adjust_meta(self, delta: int) -> int:
        data, end, meta = self.pointers()
        new = meta + delta
        if new < self.hard_start + XDP_FRAME_SIZE or new > data:
            return -EINVAL
        if (data - new) & 3 or data - new > 32:
            return -EACCES
        self._set(data, end, new)
        return 0

    def xdp_adjust_tail(self, delta: int) -> int:
        data, end, meta = self.pointers()
        new = end + delta
        if new > self.hard_end or new < data + ETH_HLEN:
            return -EINVAL
        if delta > 0:
            off = end - self.hard_start
            self.buffer.view[off:off + delta] = bytes(delta)
        self._set(data, new, meta)
        return 0

    def packet(self) -> bytes:
        data, end, _ = self.pointers()
        return bytes(self.buffer.view[data - self.hard_start:end - self.hard_start])


def xdp(packet: bytes, ctx_in: bytes | None = None) -> Invocation:
    """BPF_PROG_TYPE_XDP: r1 = xdp_md; memory_after() is the packet from data to data_end."""
    frame = XdpFrame(packet, ctx_in)
    regions = [Region.of("xdp_md", frame.ctx), Region.of("packet", frame.buffer)]
    return Invocation((frame.ctx.address,), regions, None, frame.ctx, frame.packet,
                      contexts={frame.ctx.address: frame}, kind="xdp")


def _u32(buf: bytes | bytearray, offset: int) -> int:
    return int.from_bytes(buf[offset:offset + 4], "little")


def skb(packet: bytes, ctx_in: bytes | None = None, l2: bool = True) -> Invocation:
    """A ``__sk_buff`` over ``packet`` (which starts with an Ethernet header). ``l2``:
    data starts at the Ethernet header (tc); otherwise after it (socket filters)."""
    if len(packet) < ETH_HLEN:
        raise BpfRuntimeError(f"a socket-buffer packet needs at least {ETH_HLEN} bytes (an Ethernet header)")
    buf = HostBuffer(XDP_HEADROOM + len(packet) + SKB_SHARED_INFO, low=True)
    start = buf.address + XDP_HEADROOM
    buf.view[XDP_HEADROOM:XDP_HEADROOM + len(packet)] = packet
    data = start if l2 else start + ETH_HLEN
    length = start + len(packet) - data
    ctx = HostBuffer(SK_BUFF_SIZE)
    fields = bytearray(bytes(ctx_in or b"")[:SK_BUFF_SIZE].ljust(SK_BUFF_SIZE, b"\0"))
    for name, value in (("len", length), ("protocol", int.from_bytes(packet[12:14], "little")),
                        ("ifindex", _u32(fields, SKB["ifindex"]) or 1),
                        ("ingress_ifindex", _u32(fields, SKB["ingress_ifindex"]) or 1),
                        ("data", data), ("data_end", data + length), ("data_meta", data)):
        struct.pack_into("<I", fields, SKB[name], value)
    if not _u32(fields, SKB["wire_len"]):
        struct.pack_into("<I", fields, SKB["wire_len"], len(packet))
    ctx.view[:] = fields
    regions = [Region.of("__sk_buff", ctx), Region.of("packet", buf)]
    return Invocation((ctx.address,), regions, None, ctx,
                      lambda: bytes(buf.view[XDP_HEADROOM:XDP_HEADROOM + len(packet)]),
                      skb_packets={ctx.address: (data, length)}, kind="skb")


def for_program(prog_type: str, mem: bytes | None = None, packet: bytes | None = None,
                ctx: bytes | None = None) -> Invocation:
    """The invocation a program of ``prog_type`` runs with (``mem`` stands for the
    packet of packet programs and for the context bytes of the others)."""
    kind = context_kind(prog_type)
    if kind == "raw":
        if packet is not None or ctx is not None:
            raise BpfRuntimeError("a raw program takes mem=..., not packet= or ctx=")
        return raw_memory(mem)
    if kind in ("xdp", "skb"):
        data = packet if packet is not None else mem
        if data is None:
            raise BpfRuntimeError(f"a {prog_type} program needs a packet (packet=...)")
        return xdp(data, ctx) if kind == "xdp" else skb(data, ctx, l2=prog_type == "tc")
    if packet is not None:
        raise BpfRuntimeError(f"a {prog_type} program has no packet; pass its context as ctx=...")
    data = ctx if ctx is not None else mem
    return syscall(data) if kind == "syscall" else struct_context(data)
