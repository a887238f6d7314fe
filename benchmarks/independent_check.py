"""Does `jitbpf bench` measure what an independent measurement measures? (issue 16)

For a few benchmark programs, each side's ns per run is measured twice:

- by the harness (``jitbpf.bench``: its C driver loop and CLOCK_THREAD_CPUTIME_ID, the
  kernel's own figure for BPF_PROG_TEST_RUN);
- independently, by the operating system's accounting of a separate process
  (``perf stat -e task-clock``, or the process's rusage where perf is missing), as the
  slope between a short and a long run, so start-up, compiling and loading cancel out:
  * gcc: a small standalone C program (its own main, packet buffer below 4 GiB and loop;
    nothing of jitbpf) that dlopens the program's C build made with the harness's
    command line: the same code bytes at the same alignment (a hot loop that crosses a
    64-byte boundary or not makes 1.7x on this machine's checksum, so another link of
    the same source would measure another layout, not the harness);
  * llvm, direct: a child process that compiles the program and runs one batch;
  * kernel: a child process that runs one BPF_PROG_TEST_RUN with repeat = N.

Both are repeated (``--repeats``, interleaved: a harness process, then the external
measurements) and their medians compared: on a shared machine a single process can be
20% off (load, and code and data placement differ per process). The two medians must
agree within +-25%.

    python benchmarks/independent_check.py [--programs loop,checksum,...] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jitbpf.bench import harness, suite  # noqa: E402
from jitbpf.bench.native import Driver  # noqa: E402
from jitbpf.bench.run import C_COMPILERS  # noqa: E402
from jitbpf.engines import available_engines  # noqa: E402

MAIN = r"""
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/bpf.h>

int main(int argc, char **argv)
{
    static unsigned char packet[65536];
    FILE *f = fopen(argv[1], "rb");
    size_t len = fread(packet, 1, sizeof(packet), f);
    fclose(f);
    unsigned char *low = mmap(NULL, 1 << 17, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    memcpy(low + 256, packet, len);
    struct xdp_md ctx = {0};
    ctx.data = ctx.data_meta = (uint32_t)(uintptr_t)(low + 256);
    ctx.data_end = ctx.data + (uint32_t)len;
    ctx.ingress_ifindex = 1;
    void *lib = dlopen(argv[4], RTLD_NOW);
    uint64_t (*fn)(struct xdp_md *) = lib ? (uint64_t (*)(struct xdp_md *))dlsym(lib, argv[5]) : 0;
    if (!fn)
        return 2;
    long n = atol(argv[2]);
    uint64_t expect = strtoull(argv[3], 0, 0), bad = 0;
    for (long i = 0; i < n; i++)
        bad += fn(&ctx) != expect;
    printf("%llu\n", (unsigned long long)bad);
    return bad != 0;
}
"""


def cpu_seconds(cmd: list[str]) -> float:
    """CPU time of a process: perf stat's task-clock, else its rusage."""
    if shutil.which("perf"):
        done = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", *cmd], capture_output=True, text=True)
        if done.returncode == 0:
            for line in done.stderr.splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[2].startswith("task-clock"):
                    return float(fields[0]) / 1e3           # msec
        elif "task-clock" not in done.stderr:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stdout.strip()} {done.stderr.strip()[-300:]}")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(cmd)} failed (status {status})")
    return usage.ru_utime + usage.ru_stime


def slope_ns(make_cmd, ns_guess: float, seconds: float) -> float:
    """ns per run from the CPU time of a long run minus a short one."""
    long_n = max(1000, int(seconds * 1e9 / max(ns_guess, 1)))
    short_n = long_n // 10
    return (cpu_seconds(make_cmd(long_n)) - cpu_seconds(make_cmd(short_n))) * 1e9 / (long_n - short_n)


def harness_ns(names: list[str], engines: list[str]) -> dict[tuple[str, str], float]:
    """(program, side) -> median ns per run of one `jitbpf bench` process."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([sys.executable, "-m", "jitbpf", "bench", *names, "--engines", ",".join(engines),
                        "--native", "gcc", "--rounds", "3", "--compile-repeats", "0", "--json", f.name, "--quiet"],
                       check=True)
        report = json.loads(Path(f.name).read_text())
    return {(name, side): ns for name, row in report["summary"]["programs"].items() for side, ns in row["ns"].items()}


def child(program: str, engine: str, n: int) -> int:
    """One batch of n runs on one engine, checked (run by the parent under perf stat)."""
    import jitbpf
    from jitbpf.runtime import context
    bp = suite.programs([program])[0]
    prog = jitbpf.load(str(bp.object)).program(bp.function)
    compiled = prog.compile(engine, **harness.engine_options(engine))
    make_inv = (lambda: context.xdp(bp.packet()))
    side = (harness.kernel_side(compiled, make_inv) if engine == "kernel" else
            harness.engine_side(engine, compiled, make_inv, Driver(C_COMPILERS["gcc"]), engine))
    expected = side.run_once()
    t = side.batch(n, expected)
    return 1 if t.mismatches else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--programs", default="loop,checksum,sieve,switch,memcpy,parse,straight")
    p.add_argument("--seconds", type=float, default=0.5, help="CPU seconds of the long run per side")
    p.add_argument("--repeats", type=int, default=3, help="harness processes and external measurements per side")
    p.add_argument("--child", nargs=3, metavar=("PROG", "ENGINE", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    engines = [e for e in ("llvm", "direct", "kernel") if e in available_engines()]
    names = args.programs.split(",")
    ours: dict[tuple[str, str], list[float]] = {}
    theirs: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        exe, main_c = Path(tmp) / "loop", Path(tmp) / "main.c"
        main_c.write_text(MAIN)
        subprocess.run(["gcc", "-O2", str(main_c), "-o", str(exe), "-ldl"], check=True)
        commands = {}
        for bp in suite.programs(names):
            packet = Path(tmp) / f"{bp.name}.packet"
            packet.write_bytes(bp.packet())
            shared = Path(tmp) / f"{bp.name}.so"
            subprocess.run(["gcc", "-I", str(bp.source.parent), *C_COMPILERS["gcc"].flags, "-fPIC", "-shared",
                            "-o", str(shared), str(bp.source)], check=True)
            expected = harness.c_side("gcc", C_COMPILERS["gcc"], bp.source, bp.function, bp.packet(),
                                      Driver(C_COMPILERS["gcc"])).run_once()
            commands[bp.name, "gcc"] = (lambda n, shared=shared, packet=packet, expected=expected, f=bp.function:
                                        [str(exe), str(packet), str(n), hex(expected), str(shared), f])
            for side in engines:
                commands[bp.name, side] = (lambda n, name=bp.name, side=side:
                                           [sys.executable, __file__, "--child", name, side, str(n)])
        for _ in range(args.repeats):
            for key, ns in harness_ns(names, engines).items():
                ours.setdefault(key, []).append(ns)
            for key, make in commands.items():
                theirs.setdefault(key, []).append(slope_ns(make, statistics.median(ours[key]), args.seconds))
    worst = 0.0
    print(f"{'program':<10} {'side':<7} {'harness ns':>11} {'external ns':>12} {'ratio':>6}   (medians of {args.repeats})")
    for (name, side), values in theirs.items():
        mine, external = statistics.median(ours[name, side]), statistics.median(values)
        ratio = mine / external
        worst = max(worst, abs(ratio - 1))
        print(f"{name:<10} {side:<7} {mine:>11.1f} {external:>12.1f} {ratio:>6.2f}")
    verdict = "agree" if worst <= 0.25 else "DISAGREE"
    print(f"harness / independent measurement: worst deviation {worst:.0%} ({verdict} within +-25%)")
    return 0 if worst <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
