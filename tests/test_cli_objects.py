"""The jitbpf command on clang objects: info, run with packets, pcaps, contexts, maps."""

from __future__ import annotations

import struct

from jitbpf.pcap import read_pcap, write_pcap

from conftest import FIXTURES, cli
from test_fixtures import ACK, SYN, eth, ipv4, tcp, udp

XDP_PARSE = str(FIXTURES / "xdp_parse.bpf.o")


def test_info_lists_programs_maps_sections_and_btf():
    res = cli("info", str(FIXTURES / "multi_prog.bpf.o"))
    assert res.returncode == 0, res.stderr
    for text in ("xdp_drop_small", "tracepoint/syscalls/sys_enter_openat", "raw_tracepoint", "calls",
                 "array (2)", "license: GPL", "BTF:", "line_info"):
        assert text in res.stdout


def test_run_packet_prints_the_verdict_and_maps():
    pkt = eth(ipv4(6, tcp(23, ACK)))
    res = cli("run", XDP_PARSE, "--packet", pkt.hex(), "--dump-maps", "--repeat", "3")
    assert res.returncode == 0, res.stderr
    assert "r0 = 1 XDP_DROP (0x1)" in res.stdout
    assert "3 runs" in res.stdout
    assert "23 (1700)" in res.stdout and "0300000000000000" in res.stdout     # 3 runs counted port 23


def test_run_pcap_counts_verdicts(tmp_path):
    packets = [eth(ipv4(6, tcp(80, SYN))), eth(ipv4(6, tcp(23, ACK))), eth(ipv4(17, udp(53))),
               eth(ipv4(6, tcp(22, ACK))), b"\x00" * 8]
    path = tmp_path / "t.pcap"
    write_pcap(path, packets)
    assert read_pcap(path) == packets
    res = cli("run", XDP_PARSE, "--pcap", str(path), "--check")
    assert res.returncode == 0, res.stderr
    counts = {line.split()[2]: int(line.split()[0]) for line in res.stdout.splitlines() if "XDP_" in line}
    assert counts == {"XDP_TX": 1, "XDP_DROP": 2, "XDP_PASS": 2}
    assert "5 packets [checked against interp]" in res.stdout


def test_run_ctx_and_trace_output():
    res = cli("run", str(FIXTURES / "globals.bpf.o"), "--ctx", struct.pack("<I", 2).hex())
    assert res.returncode == 0, res.stderr
    assert "trace: index 2 square 4" in res.stdout and "trace: counter=112 hits=1 name=jit" in res.stdout


def test_run_errors_are_one_line(tmp_path):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    res = cli("run", XDP_PARSE, "--pcap", str(bad))
    assert res.returncode == 2 and "pcapng" in res.stderr
    res = cli("run", XDP_PARSE)
    assert res.returncode == 1 and "needs a packet" in res.stderr
    res = cli("info", str(FIXTURES / "elf" / "ksym_var.bpf.o"))
    assert res.returncode == 2 and "extern variable 'bpf_prog_active'" in res.stderr
