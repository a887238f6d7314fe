"""Classic BPF filters: packets per second of our llvm and direct engines against
libpcap's pcap_offline_filter, side by side in one run, and the end-to-end compile
time of a 1,000-host filter expression.

Method. A synthetic capture of N packets (default 1,000,000: IPv4 TCP/UDP over
200 hosts and a few ports, IPv6, ARP) is held in memory. libpcap is timed by a
small C driver compiled here with gcc -O2 and linked with the system libpcap: it
reads the capture into memory, then calls pcap_offline_filter over every packet
in a loop (a ctypes loop would time Python, not libpcap), best of R rounds of
process CPU time. Our side holds the same packets as filter records back to back
(the layout of a pcap file's body) and runs the translated filter through
jitbpf.cbpf.run_filter, the one function every "filter many packets" path uses:
native code walks the records (CompiledProgram.run_records); like libpcap's
driver, the records are read into (our) memory before the timing starts. Results
are checked against libpcap's before they are timed.

    .venv/bin/python benchmarks/cbpf_speed.py [--packets N] [--rounds R] [--hosts H]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jitbpf import cbpf                                   # noqa: E402
from jitbpf.cbpf import libpcap                           # noqa: E402
from jitbpf.cbpf.translate import record                 # noqa: E402
from jitbpf.engines import CompiledProgram               # noqa: E402
from jitbpf.errors import BpfError                       # noqa: E402
from jitbpf.runtime.memory import RecordBuffer          # noqa: E402

HOSTS50 = " or ".join(f"host 10.0.0.{i}" for i in range(1, 51))
FILTERS = [("tcp", "tcp"), ("tcp port 80", "tcp port 80"), ("50-host list", HOSTS50)]
ENGINES = ["llvm", "direct"]

DRIVER = r"""
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {       /* driver CAPTURE PROGRAM.ddd ROUNDS */
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) { fprintf(stderr, "%s\n", err); return 1; }
    size_t n = 0, cap = 1 << 16;
    struct pcap_pkthdr *hdrs = malloc(cap * sizeof *hdrs);
    u_char **data = malloc(cap * sizeof *data);
    struct pcap_pkthdr *h; const u_char *d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        if (n == cap) { cap *= 2; hdrs = realloc(hdrs, cap * sizeof *hdrs); data = realloc(data, cap * sizeof *data); }
        hdrs[n] = *h;
        data[n] = malloc(h->caplen);
        memcpy(data[n], d, h->caplen);
        n++;
    }
    FILE *f = fopen(argv[2], "r");
    unsigned count;
    if (!f || fscanf(f, "%u", &count) != 1) { fprintf(stderr, "bad program file\n"); return 1; }
    struct bpf_insn *insns = calloc(count, sizeof *insns);
    for (unsigned i = 0; i < count; i++) {
        unsigned code, jt, jf, k;
        if (fscanf(f, "%u %u %u %u", &code, &jt, &jf, &k) != 4) { fprintf(stderr, "bad program file\n"); return 1; }
        insns[i].code = code; insns[i].jt = jt; insns[i].jf = jf; insns[i].k = k;
    }
    struct bpf_program prog = { count, insns };
    int rounds = atoi(argv[3]);
    double best = 1e30;
    size_t matches = 0;
    for (int r = 0; r < rounds; r++) {
        size_t m = 0;
        double t0 = cpu_seconds();
        for (size_t i = 0; i < n; i++)
            m += pcap_offline_filter(&prog, &hdrs[i], data[i]) != 0;
        double t = cpu_seconds() - t0;
        if (t < best) best = t;
        matches = m;
    }
    printf("%zu %zu %.9f\n", n, matches, best);
    return 0;
}
"""


def synthesize(n: int, seed: int = 1) -> list[bytes]:
    """n Ethernet frames cycling over 4,096 templates built with struct (no checksums:
    filters do not read them)."""
    rng = random.Random(seed)
    templates = []
    for i in range(4096):
        src, dst = (socket.inet_aton(f"10.0.0.{rng.randint(1, 200)}") for _ in range(2))
        kind = rng.random()
        if kind < 0.06:
            templates.append(b"\xff" * 6 + bytes(6) + b"\x08\x06" + bytes(8) + bytes(6) + src + bytes(6) + dst)
            continue
        if kind < 0.16:                                   # IPv6 TCP
            tcp = struct.pack(">HHIIBBHHH", rng.choice([80, 443, 5000]), rng.randint(1024, 65535), 0, 0, 0x50,
                              2, 65535, 0, 0)
            ip6 = struct.pack(">IHBB", 0x6000_0000, len(tcp), 6, 64) + bytes(15) + b"\x01" + bytes(15) + b"\x02"
            templates.append(bytes(12) + b"\x86\xdd" + ip6 + tcp)
            continue
        proto = 6 if kind < 0.75 else 17
        sport, dport = rng.randint(1024, 65535), rng.choice([80, 80, 443, 22, 53, 8080, rng.randint(1, 65535)])
        if rng.random() < 0.5:
            sport, dport = dport, sport
        l4 = (struct.pack(">HHIIBBHHH", sport, dport, 0, 0, 0x50, 0x10, 65535, 0, 0) if proto == 6
              else struct.pack(">HHHH", sport, dport, 8 + 20, 0) + bytes(20))
        payload = bytes(rng.choice([0, 0, 64, 512]))
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4) + len(payload), i, 0x4000, 64, proto, 0, src, dst)
        templates.append(bytes(12) + b"\x08\x00" + ip + l4 + payload)
    return [templates[i % len(templates)] for i in range(n)]


def write_pcap(path: Path, frames: list[bytes]) -> None:
    out = [struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for i, f in enumerate(frames):
        out.append(struct.pack("=IIII", i // 1000, i % 1000, len(f), len(f)))
        out.append(f)
    path.write_bytes(b"".join(out))


def build_driver(workdir: Path) -> Path | None:
    if shutil.which("gcc") is None:
        return None
    (workdir / "driver.c").write_text(DRIVER)
    exe = workdir / "driver"
    result = subprocess.run(["gcc", "-O2", "-o", str(exe), str(workdir / "driver.c"), "-lpcap"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"(gcc could not build the libpcap driver: {result.stderr.strip().splitlines()[-1]})")
        return None
    return exe


def time_libpcap(driver: Path, capture: Path, flt: cbpf.Filter, workdir: Path, rounds: int) -> tuple[int, float]:
    """(matches, seconds per packet) of pcap_offline_filter over the whole capture."""
    (workdir / "prog.ddd").write_text(flt.disassemble("ddd"))
    out = subprocess.run([str(driver), str(capture), str(workdir / "prog.ddd"), str(rounds)],
                         capture_output=True, text=True, check=True).stdout.split()
    n, matches, seconds = int(out[0]), int(out[1]), float(out[2])
    return matches, seconds / n


def time_ours(fn: CompiledProgram, records: RecordBuffer, count: int, rounds: int) -> tuple[list[int], float]:
    """run_filter over the records held in our memory, best of ``rounds``; the results come
    back as one array (no Python int per packet) and are compared outside the timing."""
    best, results = float("inf"), None
    for _ in range(rounds):
        start = time.process_time()
        results = cbpf.run_filter(fn, records, as_array=True)
        best = min(best, time.process_time() - start)
    return results.tolist(), best / count


def compile_times(hosts: int) -> None:
    expr = " or ".join(f"host 10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}" for i in range(hosts))
    print(f"\nCompile time of a {hosts}-host expression ('host A or host B or ...'), process CPU seconds:")
    for optimize in (True, False):
        t0 = time.process_time()
        flt = cbpf.compile(expr, optimize=optimize)
        t1 = time.process_time()
        prog = flt.program()
        t2 = time.process_time()
        stages = [f"pcap_compile {t1 - t0:.2f}", f"translate {t2 - t1:.2f}"]
        totals = []
        for engine in ENGINES:
            for verify in (True, False):
                label = engine if verify else f"{engine} unverified"
                t3 = time.process_time()
                try:
                    prog.compile(engine, verify=verify, **({"cache": False} if engine == "llvm" else {}))
                except BpfError as e:
                    stages.append(f"{label}: {e}")
                    continue
                dt = time.process_time() - t3
                stages.append(f"{label} {dt:.2f}")
                totals.append(f"{label} {t2 - t0 + dt:.2f}")
        label = "optimised (pcap_compile optimize=1)" if optimize else "unoptimised (optimize=0, tcpdump -O)"
        print(f"  {label}: {len(flt.insns)} classic -> {len(prog.insns)} eBPF instructions")
        print(f"    stages: {', '.join(stages)}; end to end: {', '.join(totals)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=1000, help="hosts in the compile-time expression (0: skip)")
    args = ap.parse_args()
    if not libpcap.available():
        print("libpcap (libpcap0.8) is not installed: nothing to compare against")
        return 1
    frames = synthesize(args.packets)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        driver = build_driver(workdir)
        capture = workdir / "capture.pcap"
        if driver is not None:
            write_pcap(capture, frames)
        records = [record(f) for f in frames]
        held = RecordBuffer(b"".join(records))           # read once, as libpcap's driver does
        path = "records back to back, walked by native code (CompiledProgram.run_records)"
        print(f"{args.packets:,} packets in memory; libpcap: pcap_offline_filter in a C loop "
              f"(gcc -O2), all packets; ours: {path}. Best of {args.rounds} rounds, process CPU time.\n")
        header = f"{'filter':<14} {'insns':>5} {'matched':>8} {'libpcap pps':>12}"
        for engine in ENGINES:
            header += f" {engine + ' pps':>12} {'x libpcap':>10}"
        print(header)
        for name, expr in FILTERS:
            flt = cbpf.compile(expr)
            oracle = libpcap.OfflineFilter(list(flt.insns))
            expected = [oracle(f, len(f)) for f in frames]
            if driver is not None:
                matches, pcap_spp = time_libpcap(driver, capture, flt, workdir, args.rounds)
                row = f"{name:<14} {len(flt.insns):>5} {matches:>8} {1 / pcap_spp:>12,.0f}"
            else:
                pcap_spp, row = None, f"{name:<14} {len(flt.insns):>5} {'?':>8} {'(no gcc)':>12}"
            for engine in ENGINES:
                fn = flt.program().compile(engine)
                got = cbpf.run_filter(fn, records[:1000])
                if got != expected[:1000]:
                    print(f"{name}: {engine} disagrees with libpcap; not timed")
                    return 1
                results, spp = time_ours(fn, held, len(records), args.rounds)
                if results != expected:
                    print(f"{name}: {engine} disagrees with libpcap; not timed")
                    return 1
                ratio = f"{pcap_spp / spp:>10.2f}" if pcap_spp else f"{'':>10}"
                row += f" {1 / spp:>12,.0f} {ratio}"
            print(row)
    if args.hosts:
        compile_times(args.hosts)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
