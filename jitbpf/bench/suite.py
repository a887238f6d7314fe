"""The benchmark programs (``benchmarks/programs/*.bpf.c`` with their committed ``.o``)
and the packets they read.

A program's source says everything about it: its first comment block describes it, a
``// packet: KIND BYTES`` line names its input (an Ethernet/IPv4/TCP frame whose payload
is ``BYTES`` of ``random`` bytes or of NUL-padded 16-byte ``words``), and the one
function in section ``xdp`` is the benchmark, built for BPF (the ``.o``) and for the
host (the C baselines) from the same text.
"""

from __future__ import annotations

import random
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import BpfError

PROGRAMS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "programs"
SHIM = "bench.h"
#: Words of the ``words`` payload: families sharing prefixes, so comparisons run on.
VOCABULARY = ["alpha", "alphabet", "alphanumeric", "alpine", "beta", "betamax", "between", "gamma",
              "gammon", "gamut", "delta", "deltoid", "epsilon", "epsilons", "zeta", "zetabyte",
              "theta", "thetas", "iota", "iotas", "kappa", "kappas", "lambda", "lambdas"]
WORD = 16
HEADERS = 66          # Ethernet 14 + IPv4 20 + TCP 20 + 12 bytes of options (bench.h: PAYLOAD)


@dataclass(frozen=True)
class BenchProgram:
    name: str             # the file stem: loop, sieve, ...
    source: Path
    object: Path
    function: str         # the C function (the BPF program's name)
    description: str
    packet_kind: str
    payload: int

    def packet(self) -> bytes:
        return build_packet(self.packet_kind, self.payload, self.name)


def suite_dir() -> Path:
    if not PROGRAMS_DIR.is_dir():
        raise BpfError(f"benchmark programs not found at {PROGRAMS_DIR} (a source checkout has them); "
                       "time your own program with: jitbpf bench PROG.o --mem FILE")
    return PROGRAMS_DIR


def parse_source(source: Path) -> BenchProgram:
    text = source.read_text()
    packet = re.search(r"^// packet: (random|words) (\d+)$", text, re.M)
    function = re.search(r"^BENCH\((\w+)\)", text, re.M)
    comment = re.search(r"/\*(.*?)\*/", text, re.S)
    if not (packet and function and comment):
        raise BpfError(f"{source}: a benchmark program needs a '// packet: KIND BYTES' line, "
                       "a comment and one BENCH(name) function")
    description = " ".join(line.strip(" *") for line in comment.group(1).splitlines()).strip()
    name = source.name.removesuffix(".bpf.c")
    return BenchProgram(name, source, source.with_name(name + ".bpf.o"), function.group(1), description,
                        packet.group(1), int(packet.group(2)))


def programs(names: list[str] | None = None) -> list[BenchProgram]:
    """The suite in name order, or the named programs of it."""
    found = {p.name: p for p in map(parse_source, sorted(suite_dir().glob("*.bpf.c")))}
    if not names:
        return list(found.values())
    unknown = [n for n in names if n not in found]
    if unknown:
        raise BpfError(f"no benchmark program {', '.join(unknown)} (have: {', '.join(found)})")
    return [found[n] for n in names]


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def payload_bytes(kind: str, size: int, rng: random.Random) -> bytes:
    if kind == "random":
        return rng.randbytes(size)
    slots = size // WORD
    dictionary = rng.sample(VOCABULARY, 8)
    words = dictionary + [rng.choice(VOCABULARY) for _ in range(slots - 8)]
    return b"".join(w.encode().ljust(WORD, b"\0") for w in words).ljust(size, b"\0")


def build_packet(kind: str, size: int, seed: str) -> bytes:
    """Ethernet / IPv4 / TCP (options: MSS, SACK permitted, window scale) and a payload;
    the same bytes for the same program on every run and machine."""
    rng = random.Random(zlib.crc32(seed.encode()))
    payload = payload_bytes(kind, size, rng)
    options = bytes([2, 4, 0x05, 0xB4, 4, 2, 1, 3, 3, 7, 1, 1])
    tcp = struct.pack("!HHIIBBHHH", 40000, 443, rng.getrandbits(32), rng.getrandbits(32),
                      (20 + len(options)) // 4 << 4, 0x18, 65535, 0, 0) + options
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, rng.getrandbits(16), 0x4000, 64, 6, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    frame = eth + ip + tcp + payload
    assert len(eth + ip + tcp) == HEADERS
    return frame
