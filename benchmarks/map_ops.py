"""ns per map operation by map type and engine, side by side with the kernel in one run.

Per map type, an XDP program makes OPS map calls in a loop; the same loop without the
call is the baseline. Each engine runs both in batch (``run_many(repeat=R)``: one
native call, or BPF_PROG_TEST_RUN with repeat for the kernel), timed with the thread's
CPU clock; ns per operation = (program - baseline) / OPS, median of ROUNDS rounds
(engines interleaved per round). Our engines run each program twice: with default
options (verified; the verifier proves every access, so no run-time checks and the
native runtime) and unchecked (verify=False, bounds_check=False, no budget).

    .venv/bin/python benchmarks/map_ops.py [--ops N] [ENGINE ...]     (default: 64, llvm direct kernel)

(Array lookups cost well under a nanosecond on every engine: --ops 1024 measures them
above the timer's noise.)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jitbpf  # noqa: E402
from jitbpf.runtime import maps  # noqa: E402

OPS, ROUNDS = 64, 5
PACKET = bytes(64)
# r6 counts; the key at fp-16 (fp-16..-9: u32 prefixlen + u32 address for lpm); the
# value at fp-24. {op} is the map call (or nothing); r7 counts non-zero results.
LOOP = """
    mov %r6, 0
    mov %r7, 0
    stdw [%r10-24], 5
    stdw [%r10-16], 0
    stw [%r10-16], {key}
    stw [%r10-12], 0x0100000a
loop:
    lddw %r1, map_fd(0)
    mov %r2, %r10
    add %r2, -16
    mov %r3, %r10
    add %r3, -24
    mov %r4, 0
    {op}
    jeq %r0, 0, next
    add %r7, 1
next:
    add %r6, 1
    jlt %r6, {n}, loop
    mov %r0, 2
    exit
"""
#: type -> (key size, value size, key, the calls of one operation, ops per iteration)
CASES = {
    "array": (4, 8, 1, "call 1", 1),
    "percpu_array": (4, 8, 1, "call 1", 1),
    "hash lookup": (4, 8, 1, "call 1", 1),
    "hash update": (4, 8, 1, "call 2", 1),
    "hash upd+delete": (4, 8, 1, "call 2\nlddw %r1, map_fd(0)\nmov %r2, %r10\nadd %r2, -16\ncall 3", 2),
    "lru_hash": (4, 8, 1, "call 1", 1),
    "lpm_trie": (8, 8, 32, "call 1", 1),
    "queue push+pop": (0, 8, 0, "mov %r2, %r3\nmov %r3, 0\ncall 87\nlddw %r1, map_fd(0)\nmov %r2, %r10\nadd %r2, -24\ncall 88", 2),
}


def program(case: str, with_op: bool):
    key_size, value_size, key, op, _ = CASES[case]
    obj = jitbpf.assemble(LOOP.format(op=op if with_op else "mov %r0, 0", n=OPS, key=key))
    kind = case.split()[0]
    flags = maps.BPF_F_NO_PREALLOC if kind == "lpm_trie" else 0
    m = maps.create(obj.runtime, "m", kind, key_size, value_size, 16, flags)
    obj.add_map(m)
    if kind in ("hash", "lru_hash", "lpm_trie"):
        m.update((1).to_bytes(4, "little") if kind != "lpm_trie" else (32).to_bytes(4, "little") + bytes([10, 0, 0, 1]), 5)
    prog = obj.program()
    prog.prog_type = "xdp"
    return prog


MODES = {"default": {}, "unchecked": {"verify": False, "bounds_check": False, "budget": None}}


def timer(engine: str, mode: str | None, prog):
    fn = prog.compile(engine, **({} if engine == "kernel" else MODES[mode]))
    assert fn.run(packet=PACKET).r0 == 2

    def run(repeat: int) -> float:
        c = time.thread_time_ns()
        fn.run_many([PACKET], repeat=repeat)
        return (time.thread_time_ns() - c) / repeat
    return run


def main(engines: list[str]) -> None:
    engines = [e for e in engines if e in jitbpf.available_engines()]
    columns = [(e, m) for m in MODES for e in engines if e != "kernel"] + [("kernel", None)] * ("kernel" in engines)
    names = {c: c[0] if c[1] is None else f"{c[0]}/{c[1][:5]}" for c in columns}
    print(f"ns per map operation ({OPS} per run, median of {ROUNDS} rounds; thread CPU time)")
    print(f"{'operation':16s}" + "".join(f"{names[c]:>13s}" for c in columns) +
          "".join(f"{names[c] + '/k':>15s}" for c in columns if c[0] != "kernel" and "kernel" in engines))
    for case in CASES:
        per = CASES[case][4]
        timers = {}
        for c in columns:
            try:
                timers[c] = (timer(*c, program(case, True)), timer(*c, program(case, False)))
            except jitbpf.BpfError as err:
                print(f"  {case} on {names[c]}: {err}".splitlines()[0])
        repeat = {c: 2000 if c[0] in ("kernel", "llvm", "direct") else 20 for c in timers}
        samples: dict = {c: [] for c in timers}
        for _ in range(ROUNDS):
            for c, (with_op, without) in timers.items():
                samples[c].append((with_op(repeat[c]) - without(repeat[c])) / (OPS * per))
        ns = {c: statistics.median(v) for c, v in samples.items()}
        kernel = ns.get(("kernel", None))
        line = f"{case:16s}" + "".join(f"{ns[c]:13.1f}" if c in ns else f"{'-':>13s}" for c in columns)
        if kernel is not None:
            line += "".join(f"{ns[c] / max(kernel, 0.1):15.2f}" for c in columns if c[0] != "kernel" and c in ns)
        print(line, flush=True)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--ops"]:
        OPS, argv = int(argv[1]), argv[2:]
    main(argv or ["llvm", "direct", "kernel"])
