"""Classic programs as text and bytes: the parsers on real ``tcpdump -dd`` and
``-ddd`` output, the disassembler against ``tcpdump -d`` and libpcap's own
bpf_image for every opcode, and the parsers' errors."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest

from jitbpf import cbpf
from jitbpf.cbpf import disasm, libpcap, parse
from jitbpf.cbpf.isa import ANCILLARY, OPCODES, SKF_AD_OFF, Insn, encode
from jitbpf.errors import BpfLoadError

needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
needs_libpcap = pytest.mark.skipif(not libpcap.available(), reason="libpcap (libpcap0.8) is not installed")

EXPRESSIONS = ["tcp port 80", "vlan and ip", "ip[8] < 64", "len > 100", "ip6 and tcp",
               "tcp[tcpflags] & tcp-syn != 0", "ether[0] & 1 = 0 and ip[2:2] - ((ip[0]&0xf)<<2) > 40",
               "ip[1] << 2 >> 1 | 3 = -ip[2]", "host 10.0.0.1 or net 192.168.0.0/16", "udp portrange 1-1000",
               "ip[8] * 3 / 7 % 5 ^ 1 = 2", ""]


def _tcpdump(flag: str, expr: str) -> str:
    return subprocess.run(["tcpdump", flag, "-y", "EN10MB", expr], capture_output=True, text=True,
                          check=True, timeout=60).stdout


@needs_tcpdump
@needs_libpcap
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_tcpdump_dd_and_ddd_parse_to_what_libpcap_compiles(expr):
    expected = libpcap.compile_expr(expr)
    assert parse.parse_text(_tcpdump("-dd", expr)) == expected
    assert parse.parse_text(_tcpdump("-ddd", expr)) == expected


@needs_tcpdump
@needs_libpcap
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_listing_is_tcpdump_d(expr):
    assert disasm.listing(libpcap.compile_expr(expr)) == _tcpdump("-d", expr)
    assert cbpf.compile(expr).disassemble("dd") == _tcpdump("-dd", expr)
    assert cbpf.compile(expr).disassemble("ddd") == _tcpdump("-ddd", expr)


def _bpf_image():
    lib = libpcap.library()
    lib.bpf_image.restype = ctypes.c_char_p
    lib.bpf_image.argtypes = [ctypes.POINTER(libpcap._BpfInsn), ctypes.c_int]
    return lambda insn, pc: lib.bpf_image(ctypes.byref(libpcap._BpfInsn(insn.code, insn.jt, insn.jf, insn.k)),
                                          pc).decode()


@needs_libpcap
def test_every_opcode_prints_as_libpcap_bpf_image():
    image = _bpf_image()
    ks = [0, 1, 9, 0x1234, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFF0, SKF_AD_OFF + 4, SKF_AD_OFF + 64]
    codes = [c for c in OPCODES if c != 0x81] + [0x0E, 0x18, 0xFF, 0x81 | 0x100]       # and some unknown ones
    checked = 0
    for code in codes:
        for k in ks:
            for pc, jt, jf in ((0, 0, 0), (7, 3, 250)):
                insn = Insn(code, jt, jf, k)
                assert disasm.image(insn, pc) == image(insn, pc), hex(code)
                checked += 1
    assert checked == len(codes) * len(ks) * 2
    assert set(ANCILLARY.values()) <= {disasm.operand(Insn(0x20, k=SKF_AD_OFF + o), 0)[1:-1] for o in ANCILLARY}


def test_ldx_len_has_a_name():
    """libpcap 1.10 prints 'unimp 0x81' for LDX|W|LEN; we print it as ld does."""
    assert disasm.image(Insn(0x81), 3) == "(003) ldx      #pktlen"


PROGRAM = [Insn(0x28, 0, 0, 12), Insn(0x15, 0, 3, 0x800), Insn(0x30, 0, 0, 23), Insn(0x15, 0, 1, 6),
           Insn(0x06, 0, 0, 0xFFFF_FFFF), Insn(0x06)]


def test_round_trips():
    assert parse.parse_text(disasm.c_array(PROGRAM)) == PROGRAM
    assert parse.parse_text(disasm.decimal(PROGRAM)) == PROGRAM
    assert parse.parse_bytes(encode(PROGRAM)) == PROGRAM
    # the one-line comma form of iptables' xt_bpf / bpf_asm
    assert parse.parse_text("6,40 0 0 12,21 0 3 2048,48 0 0 23,21 0 1 6,6 0 0 4294967295,6 0 0 0") == PROGRAM
    c_source = "struct sock_filter code[] = {\n" + disasm.c_array(PROGRAM) + "};\n"
    assert parse.parse_text(c_source) == PROGRAM


def test_load_tells_the_forms_apart(tmp_path):
    for name, data in (("p.dd", disasm.c_array(PROGRAM).encode()), ("p.ddd", disasm.decimal(PROGRAM).encode()),
                       ("p.bin", encode(PROGRAM))):
        (tmp_path / name).write_bytes(data)
        assert list(cbpf.load(str(tmp_path / name)).insns) == PROGRAM


@pytest.mark.parametrize("text,message", [
    ("", "empty program text"),
    ("x 1 2 3", r"line 1: expected the instruction count"),
    ("2\n6 0 0 0\n", r"line 1: the count says 2 instructions, 1 follow"),
    ("1\n6 0 0\n", r"line 2: expected 'code jt jf k'"),
    ("1\n6 0 256 0\n", r"line 2: jf 256 does not fit \(at most 255\)"),
    ("1\n6 0 0 4294967296\n", r"line 2: k 4294967296 does not fit"),
    ("{ 0x6, 0, 0 },\n", r"line 1: not a \{ code, jt, jf, k \} instruction"),
    ("{ 0x6, 0, 0, 0 },\n{ 0x10000, 0, 0, 0 },\n", r"line 2: code 65536 does not fit"),
])
def test_parse_errors(text, message):
    with pytest.raises(BpfLoadError, match=message):
        parse.parse_text(text)


def test_bytes_errors(tmp_path):
    with pytest.raises(BpfLoadError, match="^12 bytes is not a whole number of 8-byte"):
        parse.parse_bytes(bytes(12))
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(12))
    with pytest.raises(BpfLoadError, match=f"^{path}: 12 bytes"):
        cbpf.load(str(path))
