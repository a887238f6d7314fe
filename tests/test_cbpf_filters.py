"""Filter expressions compiled by libpcap, run over generated traffic: the return
value for every packet equals libpcap's own pcap_offline_filter, in the classic
interpreter and in the translated eBPF on every engine (the kernel's included
where bpf(2) works and its verifier accepts the translation)."""

from __future__ import annotations

import pytest

from jitbpf import cbpf
from jitbpf.cbpf import libpcap
from jitbpf.cbpf.translate import record
from jitbpf.engines import available_engines

from cbpf_traffic import traffic

pytestmark = pytest.mark.skipif(not libpcap.available(), reason="libpcap (libpcap0.8) is not installed")

EXPRESSIONS = [
    "tcp", "udp", "icmp", "arp", "rarp", "ip", "not ip", "ip6", "vlan",
    "tcp port 80", "udp port 53", "port 22 or port 443", "tcp dst port 443", "portrange 1000-1010",
    "host 10.0.0.3", "src host 10.0.0.1", "dst host 192.168.1.7 or dst host 8.8.8.8",
    "net 10.0.0.0/8 and not host 10.0.0.5", "dst net 192.168.0.0/16", "src net 172.16.0.0/12",
    "vlan 100", "vlan and tcp", "vlan 300 and vlan 7 and udp",
    "ip6 and tcp", "ip6 and udp port 53", "ip6 host 2001:db8::1", "icmp6",
    "ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0", "ip[6:2] & 0x3fff = 0 and udp",
    "len > 100", "len <= 64", "greater 200", "less 60",
    "ip[8] < 64", "ip[0] & 0xf > 5", "udp[8:4] = 0xdeadbeef", "ip proto 47",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "icmp[icmptype] == icmp-echo",
    "ether broadcast", "ether host 00:11:22:33:44:55", "ether proto 0x88cc",
    "ip[2:2] - ((ip[0] & 0xf) << 2) > 40", "ip[8] / 3 > 20", "ip[8] % 7 = 1", "ip[8] * 3 > 100",
    "ip[1] ^ 0xff = 0xff", "ip[8] >> 2 = 16", "tcp[0:2] << 1 > 2000", "-ip[8] < 0xffffffc0",
    "tcp and (port 80 or port 8080) and not src net 192.168.0.0/16",
]
#: A few compiled without libpcap's optimiser: they use the scratch memory M[] and X far more.
UNOPTIMIZED = ["tcp port 80", "ip[2:2] - ((ip[0] & 0xf) << 2) > 40", "vlan and tcp", "ip6 and udp port 53"]
#: The unicorn engines emulate every instruction: a handful of expressions and packets there.
EMULATED_EXPRESSIONS = ["tcp port 80", "vlan 100", "ip6 and udp port 53", "ip[6:2] & 0x1fff != 0",
                        "len > 100", "ip[8] / 3 > 20", "ip[8] >> 2 = 16"]

PACKETS = traffic()
CASES = [(e, True) for e in EXPRESSIONS] + [(e, False) for e in UNOPTIMIZED]


def _expected(insns) -> list[int]:
    oracle = libpcap.OfflineFilter(insns)
    return [oracle(data, wirelen) for data, wirelen in PACKETS]


@pytest.fixture(scope="module")
def compiled_cases():
    """expression -> (Filter, libpcap's return value per packet)."""
    out = {}
    for expr, optimize in CASES:
        flt = cbpf.compile(expr, optimize=optimize)
        out[(expr, optimize)] = (flt, _expected(list(flt.insns)))
    return out


def test_the_traffic_exercises_every_expression(compiled_cases):
    """Each expression matches some packets and rejects others, so equality means something."""
    for (expr, _), (_, expected) in compiled_cases.items():
        matched = sum(1 for r in expected if r)
        assert 0 < matched < len(PACKETS), expr


@pytest.mark.parametrize("expr,optimize", CASES)
def test_interpreter_matches_libpcap(compiled_cases, expr, optimize):
    flt, expected = compiled_cases[(expr, optimize)]
    assert [flt.run(data, wirelen) for data, wirelen in PACKETS] == expected


NATIVE = [e for e in available_engines() if e in ("interp", "llvm", "direct", "kernel")]
EMULATED = [e for e in available_engines() if e not in NATIVE and e != "kernel"]


@pytest.mark.parametrize("engine", NATIVE)
def test_translated_filters_match_libpcap(compiled_cases, engine):
    for (expr, _), (flt, expected) in compiled_cases.items():
        fn = flt.program().compile(engine)
        got = cbpf.run_filter(fn, [record(data, wirelen) for data, wirelen in PACKETS])
        assert got == expected, f"{engine}: {expr}"
        arr = cbpf.run_filter(fn, [record(data, wirelen) for data, wirelen in PACKETS], as_array=True)
        assert arr.typecode == "Q" and arr.tolist() == expected, f"{engine} as_array: {expr}"


@pytest.mark.parametrize("engine", EMULATED)
def test_translated_filters_match_libpcap_emulated(compiled_cases, engine):
    sample = PACKETS[::9]
    for expr in EMULATED_EXPRESSIONS:
        flt, expected = compiled_cases[(expr, True)]
        fn = flt.program().compile(engine)
        got = cbpf.run_filter(fn, [record(data, wirelen) for data, wirelen in sample])
        assert got == expected[::9], f"{engine}: {expr}"


def test_snaplen_is_the_return_value():
    flt = cbpf.compile("tcp", snaplen=96)
    data, wirelen = next(p for p in PACKETS if libpcap.OfflineFilter(list(flt.insns))(*p))
    fn = flt.program().compile("llvm")
    assert fn.run(record(data, wirelen)).r0 == flt.run(data, wirelen) == 96


def test_compile_errors_are_one_line():
    with pytest.raises(libpcap.LibpcapError, match=r"^filter expression 'tcp port': .*syntax error"):
        cbpf.compile("tcp port")
    with pytest.raises(libpcap.LibpcapError, match="unknown link type"):
        libpcap.linktype("NOT_A_LINK_TYPE")


def test_libpcap_loops_are_rejected_as_the_kernel_does():
    """protochain compiles to a backward jump: libpcap interprets it, Linux refuses it."""
    with pytest.raises(cbpf.BpfValidationError, match=r"^instruction \d+: ja \d+: jumps backwards"):
        cbpf.compile("ip6 protochain 6")
