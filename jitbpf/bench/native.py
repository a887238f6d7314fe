"""Native code for the harness, built with the host's C compilers at bench time.

- the *driver*: ``run_batch(struct batch *)`` calls a function pointer N times with
  the same six arguments (r1..r5 and the run state; C functions ignore the sixth), counts results that differ from the expected one, and reads
  CLOCK_THREAD_CPUTIME_ID and CLOCK_MONOTONIC around the whole loop (never inside it).
  Every native side, generated code and C alike, is timed by this one loop;
- the *C baselines*: a benchmark program's BPF C source built for the host with its shim
  header (``benchmarks/programs/bench.h``) by gcc or clang, as a shared object.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BpfEngineError

DRIVER_SOURCE = r"""
#include <stdint.h>
#include <time.h>

typedef uint64_t u64;
typedef u64 (*entry_fn)(u64, u64, u64, u64, u64, u64);

struct batch {
    u64 entry, args[6], n, expect;   /* in: r1..r5 and the run state */
    u64 last, mismatches, cpu_ns, wall_ns;   /* out */
};

static u64 now(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (u64)t.tv_sec * 1000000000u + (u64)t.tv_nsec;
}

u64 run_batch(struct batch *b)
{
    entry_fn f = (entry_fn)b->entry;
    u64 a1 = b->args[0], a2 = b->args[1], a3 = b->args[2], a4 = b->args[3], a5 = b->args[4], rs = b->args[5];
    u64 n = b->n, expect = b->expect, bad = 0, r = 0;
    u64 wall = now(CLOCK_MONOTONIC), cpu = now(CLOCK_THREAD_CPUTIME_ID);
    for (u64 i = 0; i < n; i++) {
        r = f(a1, a2, a3, a4, a5, rs);
        bad += r != expect;
    }
    b->cpu_ns = now(CLOCK_THREAD_CPUTIME_ID) - cpu;
    b->wall_ns = now(CLOCK_MONOTONIC) - wall;
    b->last = r;
    b->mismatches = bad;
    return r;
}
"""


class BatchStruct(ctypes.Structure):
    _fields_ = [("entry", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6), ("n", ctypes.c_uint64),
                ("expect", ctypes.c_uint64), ("last", ctypes.c_uint64), ("mismatches", ctypes.c_uint64),
                ("cpu_ns", ctypes.c_uint64), ("wall_ns", ctypes.c_uint64)]


@dataclass
class Timing:
    """One timed batch: ``n`` runs, the last result, how many results were wrong."""
    n: int
    cpu_ns: int
    wall_ns: int
    last: int
    mismatches: int
    kernel_own_ns: float | None = None  # kernel: BPF_PROG_TEST_RUN's own figure per run


@dataclass(frozen=True)
class Compiler:
    """A host C compiler and its flags, e.g. gcc -O2 -march=x86-64."""
    label: str
    command: str
    flags: tuple[str, ...]

    @property
    def path(self) -> str | None:
        return shutil.which(self.command)

    def version(self) -> str:
        out = subprocess.run([self.path, "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else self.command


_workdir = tempfile.TemporaryDirectory(prefix="jitbpf-bench-")
_built: dict[tuple, ctypes.CDLL] = {}


def build_shared(compiler: Compiler, source: str | Path, include: Path | None = None) -> ctypes.CDLL:
    """``source`` (text or a file) built by ``compiler`` into a shared object, loaded."""
    text = source.read_text() if isinstance(source, Path) else source
    key = (compiler, text, str(include))
    if key in _built:
        return _built[key]
    if compiler.path is None:
        raise BpfEngineError(f"{compiler.command} not found: cannot build {compiler.label}")
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    out = Path(_workdir.name) / f"{digest}.so"
    src = source if isinstance(source, Path) else Path(_workdir.name) / f"{digest}.c"
    if not isinstance(source, Path):
        src.write_text(text)
    cmd = [compiler.path, *compiler.flags, "-fPIC", "-shared", "-o", str(out), str(src)]
    if include is not None:
        cmd[1:1] = ["-I", str(include)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise BpfEngineError(f"{compiler.label}: building {src.name} failed: {first}")
    _built[key] = lib = ctypes.CDLL(str(out))
    return lib


class Driver:
    """The native batch loop (built once per process with the first C compiler found)."""

    def __init__(self, compiler: Compiler):
        lib = build_shared(Compiler("driver", compiler.command, ("-O2",)), DRIVER_SOURCE)
        self.function = ctypes.cast(lib.run_batch, ctypes.c_void_p).value
        self._call = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(self.function)

    def prepare(self, entry: int, args: tuple, n: int, expect: int) -> BatchStruct:
        b = BatchStruct()
        b.entry, b.n, b.expect = entry, n, expect & 0xFFFF_FFFF_FFFF_FFFF
        for i, a in enumerate(tuple(args)[:6]):
            b.args[i] = a & 0xFFFF_FFFF_FFFF_FFFF
        return b

    def run(self, entry: int, args: tuple, n: int, expect: int, call=None) -> Timing:
        """N calls of ``entry(*args)`` timed inside the loop; ``call(function, args)``
        is how the engine calls native code (default: plain ctypes)."""
        b = self.prepare(entry, args, n, expect)
        if call is None:
            self._call(ctypes.addressof(b))
        else:
            call(self.function, (ctypes.addressof(b),))
        return Timing(n, b.cpu_ns, b.wall_ns, b.last, b.mismatches)
