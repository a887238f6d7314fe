"""Capture files (pcap, pcapng) and the ``jitbpf filter`` / ``jitbpf cbpf disasm``
commands, checked against libpcap's pcap_offline_filter and tcpdump."""

from __future__ import annotations

import shutil
import struct
import subprocess

import dpkt
import pytest

from jitbpf.cbpf import capture, libpcap
from jitbpf.cbpf.capture import CaptureError, Packet

from cbpf_traffic import traffic
from conftest import cli

needs_libpcap = pytest.mark.skipif(not libpcap.available(), reason="libpcap (libpcap0.8) is not installed")
PACKETS = traffic()


def _write_dpkt_pcap(path, packets, nano=False):
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, nano=nano)
        for i, (data, _) in enumerate(packets):
            w.writepkt(data, ts=1_700_000_000 + i / 8)
    return [data for data, _ in packets]


def _block(kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _pcapng(interfaces: list[int], packets: list[tuple[int, bytes, int]]) -> bytes:
    """A pcapng section written by hand: interfaces by link type, then (interface, data, wire length)."""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype in interfaces:
        tsresol = struct.pack("<HHB3x", 9, 1, 9)                           # nanoseconds
        out += _block(1, struct.pack("<HHI", linktype, 0, 0) + tsresol + bytes(4))
    for i, (iface, data, wirelen) in enumerate(packets):
        ts = 1_000_000_000 * (i + 1) + 5
        out += _block(6, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFF_FFFF, len(data), wirelen) + data)
    return out


def test_pcap_read_with_wire_lengths(tmp_path):
    path = tmp_path / "t.pcap"
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=96, linktype=101)
        w.writepkt(b"\x45" * 40, ts=3.5)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 24 + 12, 1500)                               # orig_len: the packet was longer
    path.write_bytes(bytes(raw))
    cap = capture.read(path)
    assert cap.packets == [Packet(b"\x45" * 40, 1500, 3_500_000_000, 101)] and cap.snaplen == 96


def test_big_endian_and_nanosecond_pcaps(tmp_path):
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    record = struct.pack(">IIII", 7, 123, 3, 60) + b"abc"
    (tmp_path / "be.pcap").write_bytes(header + record)
    cap = capture.read(tmp_path / "be.pcap")
    assert cap.packets == [Packet(b"abc", 60, 7_000_000_123, 1)] and cap.nanoseconds


def test_pcapng_from_dpkt(tmp_path):
    path = tmp_path / "t.pcapng"
    with open(path, "wb") as f:
        w = dpkt.pcapng.Writer(f)
        for i, (data, _) in enumerate(PACKETS[:20]):
            w.writepkt(data, ts=100 + i)
    cap = capture.read(path)
    assert [p.data for p in cap.packets] == [d for d, _ in PACKETS[:20]]
    assert [p.ts_ns for p in cap.packets] == [(100 + i) * 1_000_000_000 for i in range(20)]


def test_pcapng_with_two_link_types(tmp_path):
    ip_packet = PACKETS[0][0][14:]
    data = _pcapng([1, 101], [(0, PACKETS[0][0], 2000), (1, ip_packet, len(ip_packet)), (0, PACKETS[1][0], 70)])
    (tmp_path / "two.pcapng").write_bytes(data)
    cap = capture.read(tmp_path / "two.pcapng")
    assert [(p.linktype, p.wirelen) for p in cap.packets] == [(1, 2000), (101, len(ip_packet)), (1, 70)]
    assert cap.packets[1].ts_ns == 2_000_000_005 and cap.nanoseconds


@pytest.mark.parametrize("data,message", [
    (b"\x00\x01", "too short for a capture file"),
    (b"\x00" * 24, "not a pcap or pcapng file"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + b"\0" * 8, "truncated record header at offset 24"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + struct.pack("<IIII", 0, 0, 50, 50) + b"x",
     "truncated packet at offset 24"),
    (_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + _block(6, bytes(20)),
     "packet of undeclared interface 0"),
    (_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))[:-4] + b"\xff\xff", "bad block length"),
])
def test_damaged_captures(tmp_path, data, message):
    path = tmp_path / "bad.pcap"
    path.write_bytes(data)
    with pytest.raises(CaptureError, match=message):
        capture.read(path)


# --------------------------------------------------------------------------- the commands


def _offline_matches(expr: str, packets, linktype: int = 1) -> list[int]:
    oracle = libpcap.OfflineFilter(libpcap.compile_expr(expr, linktype))
    return [i for i, (data, wirelen) in enumerate(packets) if oracle(data, wirelen)]


@needs_libpcap
@pytest.mark.parametrize("engine", ["llvm", "direct"])
def test_filter_count_and_write(tmp_path, engine):
    frames = _write_dpkt_pcap(tmp_path / "in.pcap", PACKETS)
    expr = "tcp and (port 80 or port 443)"
    expected = _offline_matches(expr, [(f, len(f)) for f in frames])
    assert 0 < len(expected) < len(frames)
    result = cli("filter", "tcp", "and", "(port", "80", "or", "port", "443)", str(tmp_path / "in.pcap"),
                 "--engine", engine, "--count", "-w", str(tmp_path / "out.pcap"), "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{len(expected)}\n"
    written = capture.read(tmp_path / "out.pcap")
    assert [p.data for p in written.packets] == [frames[i] for i in expected]
    assert [p.ts_ns for p in written.packets] == [1_700_000_000 * 10**9 + i * 125_000_000 for i in expected]


@needs_libpcap
def test_filter_summary_on_pcapng_and_truncation_by_return_value(tmp_path):
    ip_packet = PACKETS[0][0][14:]
    (tmp_path / "two.pcapng").write_bytes(
        _pcapng([1, 101], [(0, PACKETS[0][0], len(PACKETS[0][0])), (1, ip_packet, len(ip_packet)),
                           (0, PACKETS[1][0], len(PACKETS[1][0]))]))
    both_ip = _offline_matches("ip", [PACKETS[0]]) + _offline_matches("ip", [(ip_packet, len(ip_packet))], 12)
    assert both_ip == [0, 0]                                   # the expression compiled per link type
    result = cli("filter", "ip", str(tmp_path / "two.pcapng"), "--engine", "direct")
    assert result.returncode == 0, result.stderr
    expected = 2 + len(_offline_matches("ip", [PACKETS[1]]))
    assert result.stdout == f"{expected} of 3 packets matched (direct)\n"
    # a classic program returning 20: the written packets are cut to 20 bytes, wire lengths kept
    (tmp_path / "snap20.ddd").write_text("1\n6 0 0 20\n")
    frames = _write_dpkt_pcap(tmp_path / "in.pcap", PACKETS[:5])
    result = cli("filter", "--cbpf", str(tmp_path / "snap20.ddd"), str(tmp_path / "in.pcap"), "-w",
                 str(tmp_path / "cut.pcap"))
    assert result.returncode == 0, result.stderr
    assert [(p.data, p.wirelen) for p in capture.read(tmp_path / "cut.pcap").packets] == \
        [(f[:20], len(f)) for f in frames]


@pytest.mark.parametrize("args,code,message", [
    (["filter", "tcp port", "CAP"], 2, r"^error: filter expression 'tcp port': .*syntax error\n$"),
    (["filter", "CAP"], 2, r"^error: no filter expression"),
    (["filter", "tcp", "CAP", "--cbpf", "PROG"], 2, r"^error: give either a filter expression or --cbpf"),
    (["filter", "tcp", "missing.pcap"], 2, r"^error: .*missing.pcap"),
    (["filter", "tcp", "CAP", "--engine", "nope"], 2, r"^error: unknown engine 'nope'"),
    (["filter", "--cbpf", "CAP", "CAP"], 2, r"^error: .*c.pcap: \d+ bytes is not a whole number of 8-byte"),
    (["filter", "--cbpf", "BADPROG", "CAP"], 2, r"^error: .*bad.ddd: instruction 0: ld #0x1: the last instruction"),
    (["cbpf", "disasm"], 2, r"^error: no filter expression"),
    (["cbpf", "disasm", "--cbpf", "PROG", "--format", "dd", "tcp"], 2, r"^error: give either"),
    (["cbpf", "disasm", "ip", "-y", "NO_SUCH_DLT"], 2, r"^error: unknown link type 'NO_SUCH_DLT'\n$"),
])
def test_errors_are_one_line(tmp_path, args, code, message):
    if not libpcap.available() and "--cbpf" not in args:
        pytest.skip("libpcap (libpcap0.8) is not installed")
    _write_dpkt_pcap(tmp_path / "c.pcap", PACKETS[:3])
    (tmp_path / "p.ddd").write_text("1\n6 0 0 1\n")
    (tmp_path / "bad.ddd").write_text("1\n0 0 0 1\n")
    files = {"CAP": "c.pcap", "PROG": "p.ddd", "BADPROG": "bad.ddd"}
    args = [str(tmp_path / files[a]) if a in files else a for a in args]
    result = cli(*args)
    assert result.returncode == code
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert __import__("re").match(message, result.stderr), result.stderr


@needs_libpcap
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_disasm_formats(tmp_path):
    expr = "udp port 53 or ip6"
    for fmt, flag in (("d", "-d"), ("dd", "-dd"), ("ddd", "-ddd")):
        ours = cli("cbpf", "disasm", *expr.split(), "--format", fmt)
        theirs = subprocess.run(["tcpdump", flag, "-y", "EN10MB", expr], capture_output=True, text=True)
        assert ours.returncode == 0 and ours.stdout == theirs.stdout
    (tmp_path / "p.dd").write_text(cli("cbpf", "disasm", expr, "--format", "dd").stdout)
    listing = cli("cbpf", "disasm", "--cbpf", str(tmp_path / "p.dd"))
    assert listing.stdout == subprocess.run(["tcpdump", "-d", "-y", "EN10MB", expr], capture_output=True,
                                            text=True).stdout
    ebpf = cli("cbpf", "disasm", "--cbpf", str(tmp_path / "p.dd"), "--format", "ebpf")
    assert ebpf.returncode == 0 and "ldxh %r0, [%r1+28]" in ebpf.stdout and "be16 %r0" in ebpf.stdout
    raw = cli("cbpf", "disasm", "ip", "-y", "RAW")             # another link type: no Ethernet header
    assert raw.stdout == subprocess.run(["tcpdump", "-d", "-y", "RAW", "ip"], capture_output=True, text=True).stdout
