"""Capture files for ``jitbpf filter``: pcap (both byte orders, micro- or
nanosecond timestamps, any link type) and pcapng (section, interface, enhanced,
simple and obsolete packet blocks; several interfaces with their own link types),
read into :class:`Packet` records, and pcap written back.

Our own reader rather than dpkt's because a filter needs what dpkt's readers do
not return: the wire length of every packet (``len``, ``greater``, ``less``) and
the link type of each pcapng interface. jitbpf/pcap.py (Ethernet pcap only,
for ``jitbpf run --pcap``) stays as it is.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import BpfError

_PCAP_MAGIC = {0xA1B2C3D4: 1_000, 0xA1B23C4D: 1}         # ns per timestamp unit
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D


class CaptureError(BpfError):
    """A capture file we cannot read or write."""


@dataclass(frozen=True, slots=True)
class Packet:
    data: bytes           # the captured bytes
    wirelen: int          # the packet's length on the wire (>= len(data) in sane files)
    ts_ns: int = 0        # timestamp, nanoseconds since the epoch
    linktype: int = 1


@dataclass
class Capture:
    packets: list[Packet]
    nanoseconds: bool = False     # the file's timestamps had sub-microsecond resolution
    snaplen: int = 262144

    @property
    def linktypes(self) -> list[int]:
        return sorted({p.linktype for p in self.packets})


def read(path: str | Path) -> Capture:
    data = Path(path).read_bytes()
    if len(data) < 4:
        raise CaptureError(f"{path}: too short for a capture file")
    try:
        if struct.unpack_from("<I", data)[0] == _PCAPNG_SHB:
            return _read_pcapng(data)
        return _read_pcap(data)
    except CaptureError as e:
        raise CaptureError(f"{path}: {e.message}") from None
    except struct.error:
        raise CaptureError(f"{path}: truncated") from None


def _read_pcap(data: bytes) -> Capture:
    for order in "<>":
        unit = _PCAP_MAGIC.get(struct.unpack_from(order + "I", data)[0])
        if unit is not None:
            break
    else:
        raise CaptureError("not a pcap or pcapng file")
    if len(data) < 24:
        raise CaptureError("truncated pcap header")
    snaplen, linktype = struct.unpack_from(order + "II", data, 16)
    linktype &= 0x0FFF_FFFF
    record = struct.Struct(order + "IIII")
    packets, pos = [], 24
    while pos < len(data):
        if pos + 16 > len(data):
            raise CaptureError(f"truncated record header at offset {pos}")
        sec, frac, incl, orig = record.unpack_from(data, pos)
        if pos + 16 + incl > len(data):
            raise CaptureError(f"truncated packet at offset {pos} ({incl} bytes announced)")
        packets.append(Packet(data[pos + 16:pos + 16 + incl], orig, sec * 1_000_000_000 + frac * unit, linktype))
        pos += 16 + incl
    return Capture(packets, unit == 1, snaplen)


def _read_pcapng(data: bytes) -> Capture:
    packets: list[Packet] = []
    interfaces: list[tuple[int, int, int]] = []      # (linktype, snaplen, ns per unit)
    order, pos, fine = "<", 0, False
    while pos < len(data):
        if pos + 12 > len(data):
            raise CaptureError(f"truncated block at offset {pos}")
        kind = struct.unpack_from(order + "I", data, pos)[0]
        if kind == _PCAPNG_SHB:
            bom = struct.unpack_from("<I", data, pos + 8)[0]
            order = "<" if bom == _PCAPNG_BOM else ">" if bom == 0x4D3C2B1A else ""
            if not order:
                raise CaptureError(f"bad pcapng byte-order magic at offset {pos}")
            interfaces = []                          # interface ids are per section
        length = struct.unpack_from(order + "I", data, pos + 4)[0]
        if length < 12 or length % 4 or pos + length > len(data):
            raise CaptureError(f"bad block length {length} at offset {pos}")
        body = data[pos + 8:pos + length - 4]
        if kind == 1:                                # interface description
            linktype, _, snaplen = struct.unpack_from(order + "HHI", body)
            unit = _tsresol(body[8:], order)
            fine |= unit < 1000
            interfaces.append((linktype, snaplen, unit))
        elif kind == 3:                              # simple packet: interface 0, no timestamp
            (orig,) = struct.unpack_from(order + "I", body)
            linktype, snaplen, _ = _interface(interfaces, 0, pos)
            packets.append(Packet(body[4:4 + min(orig, snaplen or orig)], orig, 0, linktype))
        elif kind in _PACKET_BLOCKS:                 # enhanced (and obsolete) packet
            iface, hi, lo, incl, orig = struct.unpack_from(order + _PACKET_BLOCKS[kind], body)
            linktype, _, unit = _interface(interfaces, iface, pos)
            if 20 + incl > len(body):
                raise CaptureError(f"truncated packet at offset {pos}")
            packets.append(Packet(body[20:20 + incl], orig, (hi << 32 | lo) * unit, linktype))
        pos += length
    return Capture(packets, fine, max((i[1] for i in interfaces), default=0) or 262144)


#: pcapng packet blocks with a 20-byte header: interface, timestamp high/low, captured, original length.
_PACKET_BLOCKS = {6: "IIIII", 2: "HxxIIII"}


def _interface(interfaces: list[tuple[int, int, int]], index: int, pos: int) -> tuple[int, int, int]:
    if index >= len(interfaces):
        raise CaptureError(f"packet of undeclared interface {index} at offset {pos}")
    return interfaces[index]


def _tsresol(options: bytes, order: str) -> int:
    """Nanoseconds per timestamp unit from an interface's if_tsresol option (default 10^-6 s)."""
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = options[pos + 4]
            seconds = 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
            return max(1, round(seconds * 1e9))
        pos += 4 + (length + 3) // 4 * 4
    return 1_000


def write_pcap(path: str | Path, packets: list[Packet], snaplen: int = 262144, nanoseconds: bool = False) -> None:
    """A classic pcap in host byte order; every packet must share one link type."""
    kinds = sorted({p.linktype for p in packets})
    if len(kinds) > 1:
        raise CaptureError(f"{path}: packets of link types {', '.join(map(str, kinds))}; a pcap file holds one")
    linktype = kinds[0] if kinds else 1
    unit = 1 if nanoseconds else 1_000
    out = [struct.pack("=IHHiIII", 0xA1B23C4D if nanoseconds else 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for p in packets:
        sec, frac = divmod(p.ts_ns, 1_000_000_000)
        out.append(struct.pack("=IIII", sec, frac // unit, len(p.data), p.wirelen))
        out.append(p.data)
    try:
        Path(path).write_bytes(b"".join(out))
    except OSError as e:
        raise CaptureError(f"{path}: {e.strerror}") from None
