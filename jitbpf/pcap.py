"""Classic pcap files (the tcpdump format): read packets for ``jitbpf run --pcap``, and
write them (tests, examples). pcapng is not supported; Ethernet link type only."""

from __future__ import annotations

import struct
from pathlib import Path

from .errors import BpfError

LINKTYPE_ETHERNET = 1
_MAGIC = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",          # microseconds
          b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}          # nanoseconds


class PcapError(BpfError):
    """A capture file that is not a classic Ethernet pcap."""


def read_pcap(path: str | Path) -> list[bytes]:
    data = Path(path).read_bytes()
    order = _MAGIC.get(data[:4])
    if order is None:
        kind = "pcapng" if data[:4] == b"\x0a\x0d\x0d\x0a" else "not a pcap file"
        raise PcapError(f"{path}: {kind} (only classic pcap is supported)")
    if len(data) < 24:
        raise PcapError(f"{path}: truncated pcap header")
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFF_FFFF
    if linktype != LINKTYPE_ETHERNET:
        raise PcapError(f"{path}: link type {linktype}, only Ethernet (1) is supported")
    packets, pos = [], 24
    while pos < len(data):
        if pos + 16 > len(data):
            raise PcapError(f"{path}: truncated record header at offset {pos}")
        incl = struct.unpack_from(order + "I", data, pos + 8)[0]
        if pos + 16 + incl > len(data):
            raise PcapError(f"{path}: truncated packet at offset {pos}")
        packets.append(data[pos + 16:pos + 16 + incl])
        pos += 16 + incl
    return packets


def write_pcap(path: str | Path, packets: list[bytes]) -> None:
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
    for i, pkt in enumerate(packets):
        out += struct.pack("<IIII", i, 0, len(pkt), len(pkt)) + pkt
    Path(path).write_bytes(bytes(out))
