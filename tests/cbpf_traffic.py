"""Test traffic for the classic-BPF tests, built with dpkt: Ethernet frames of
every kind the filter expressions look at (IPv4 TCP/UDP/ICMP over several
hosts, nets and ports, fragments, IP options, TTLs, VLAN and QinQ tags, IPv6
with and without extension headers, ARP, broadcast, runts and truncated
captures), as (captured bytes, wire length) pairs. Deterministic."""

from __future__ import annotations

import random
import socket

import dpkt

MAC_A = bytes.fromhex("001122334455")
MAC_B = bytes.fromhex("02000000000b")
BROADCAST = b"\xff" * 6


def _eth(payload, ethertype: int, src: bytes = MAC_A, dst: bytes = MAC_B) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(src=src, dst=dst, type=ethertype, data=payload))


def _vlan(frame: bytes, vid: int, tpid: int = 0x8100) -> bytes:
    """Insert an 802.1Q (or QinQ 0x88a8) tag after the MAC addresses."""
    return frame[:12] + tpid.to_bytes(2, "big") + (vid & 0xFFF).to_bytes(2, "big") + frame[12:]


def _ip4(src: str, dst: str, proto: int, payload, ttl: int = 64, frag: int = 0, opts: bytes = b"") -> "dpkt.ip.IP":
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=ttl, _flags_offset=frag,
                    id=0x1234, data=payload)
    if opts:
        ip.opts = opts
        ip.hl = 5 + len(opts) // 4
    return ip


def _ip6(src: str, dst: str, nxt: int, payload: bytes, hop_by_hop: bool = False) -> bytes:
    body = bytes(payload)
    if hop_by_hop:                              # an 8-byte hop-by-hop header with PadN
        body = bytes([nxt, 0, 1, 4, 0, 0, 0, 0]) + body
        nxt = 0
    header = (bytes([0x60, 0, 0, 0]) + len(body).to_bytes(2, "big") + bytes([nxt, 64])
              + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst))
    return header + body


def _tcp(sport: int, dport: int, flags: int = dpkt.tcp.TH_SYN, data: bytes = b"") -> "dpkt.tcp.TCP":
    return dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=1, data=data)


def _udp(sport: int, dport: int, data: bytes = b"") -> "dpkt.udp.UDP":
    return dpkt.udp.UDP(sport=sport, dport=dport, data=data)


def _icmp(kind: int) -> "dpkt.icmp.ICMP":
    return dpkt.icmp.ICMP(type=kind, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=2, data=b"ping"))


def traffic(seed: int = 17) -> list[tuple[bytes, int]]:
    """(captured bytes, wire length) for ~120 frames; a few truncated captures."""
    rng = random.Random(seed)
    hosts = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "192.168.1.7", "192.168.2.9", "172.16.0.1", "8.8.8.8"]
    ports = [22, 53, 80, 443, 1000, 1005, 1010, 8080, 31337]
    frames: list[bytes] = []
    for i in range(48):
        src, dst = rng.choice(hosts), rng.choice(hosts)
        sport, dport = rng.choice(ports), rng.choice(ports)
        ttl = rng.choice([1, 32, 63, 64, 128, 255])
        flags = rng.choice([dpkt.tcp.TH_SYN, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN])
        payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 4, 20, 120])))
        kind = i % 4
        if kind == 0:
            l4, proto = _tcp(sport, dport, flags, payload), 6
        elif kind == 1:
            l4, proto = _udp(sport, dport, payload), 17
        elif kind == 2:
            l4, proto = _icmp(rng.choice([0, 8, 3])), 1
        else:
            l4, proto = _tcp(sport, dport, flags), 6
        opts = b"\x01\x01\x01\x00" if i % 7 == 0 else b""           # NOPs + EOL: header length 6
        frag = [0, 0, 0, dpkt.ip.IP_MF, 185, dpkt.ip.IP_DF][i % 6]
        frames.append(_eth(_ip4(src, dst, proto, l4, ttl, frag, opts), 0x0800,
                           dst=BROADCAST if i % 11 == 0 else MAC_B))
    udp_magic = _udp(5000, 53, b"\xde\xad\xbe\xef" + b"x" * 8)
    frames.append(_eth(_ip4("10.0.0.1", "10.0.0.2", 17, udp_magic), 0x0800))
    frames.append(_eth(_ip4("10.0.0.9", "10.0.0.2", 47, b"\x00" * 24), 0x0800))      # GRE
    for i, vid in enumerate([100, 100, 200, 4095]):
        inner = _eth(_ip4(hosts[i], hosts[i + 1], 6, _tcp(1000 + i, 80)), 0x0800)
        frames.append(_vlan(inner, vid))
    frames.append(_vlan(_vlan(_eth(_ip4("10.0.0.1", "10.0.0.3", 17, _udp(53, 53)), 0x0800), 7), 300, 0x88A8))
    frames.append(_vlan(_eth(_ip6("2001:db8::1", "2001:db8::2", 6, bytes(_tcp(1000, 80))), 0x86DD), 100))
    v6 = ["2001:db8::1", "2001:db8::2", "fe80::1", "ff02::1"]
    for i in range(16):
        src, dst = v6[i % 4], v6[(i + 1) % 4]
        if i % 3 == 0:
            nxt, l4 = 6, bytes(_tcp(rng.choice(ports), rng.choice(ports)))
        elif i % 3 == 1:
            nxt, l4 = 17, bytes(_udp(rng.choice(ports), 53))
        else:
            nxt, l4 = 58, bytes([128, 0, 0, 0, 0, 1, 0, 1])                       # ICMPv6 echo
        frames.append(_eth(_ip6(src, dst, nxt, l4, hop_by_hop=i % 4 == 3), 0x86DD))
    arp = dpkt.arp.ARP(sha=MAC_A, spa=socket.inet_aton("10.0.0.1"), tha=b"\0" * 6, tpa=socket.inet_aton("10.0.0.2"))
    frames.append(_eth(arp, 0x0806, dst=BROADCAST))
    frames.append(_eth(b"\x02\x00" + b"\0" * 40, 0x88CC))                             # LLDP
    frames.append(_eth(b"\0" * 46, 0x8035))                                           # RARP
    packets = [(f, len(f)) for f in frames]
    for f in frames[:10]:                                                             # truncated captures
        cut = rng.choice([14, 20, 30, 38, 50])
        packets.append((f[:cut], len(f)))
    packets += [(b"", 60), (b"\x01\x02\x03", 3), (MAC_B + MAC_A, 14), (frames[0], len(frames[0]) + 1000)]
    return packets
