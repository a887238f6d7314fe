"""Interpreter speed: executed BPF instructions per second on loop-heavy programs.

Prints one line per program and the overall rate. Not a test: run it with
``make bench`` (or ``python benchmarks/interp_speed.py``).
"""

from __future__ import annotations

import time

import jitbpf

# Sum of i*i mod 7 over a counted loop: ALU, compare and branch.
ALU_LOOP = """
    mov %r0, 0
    mov %r1, 0
loop:
    mov %r2, %r1
    mul %r2, %r1
    mod %r2, 7
    add %r0, %r2
    add %r1, 1
    jlt %r1, 20000, loop
    exit
"""

# A byte checksum over the input memory: loads, shifts, xor.
MEMORY_LOOP = """
    mov %r0, 0
    mov %r3, 0
loop:
    mov %r4, %r1
    add %r4, %r3
    ldxb %r5, [%r4]
    lsh %r0, 1
    xor %r0, %r5
    and %r0, 0xffff
    add %r3, 1
    jlt %r3, %r2, loop
    exit
"""


def measure(name: str, text: str, mem: bytes | None = None, repeat: int = 3) -> tuple[int, float]:
    fn = jitbpf.assemble(text).program().compile("interp", budget=10_000_000)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn.run(mem)
        best = min(best, time.perf_counter() - start)
    steps = fn.executable.steps
    print(f"{name:12} {steps:>9} insns  {best * 1e3:8.1f} ms  {steps / best / 1e6:6.2f} M insns/s")
    return steps, best


def main() -> None:
    total_steps = total_time = 0.0
    for name, text, mem in (("alu-loop", ALU_LOOP, None), ("memory-loop", MEMORY_LOOP, bytes(range(256)) * 64)):
        steps, seconds = measure(name, text, mem)
        total_steps += steps
        total_time += seconds
    print(f"{'overall':12} {int(total_steps):>9} insns  {total_time * 1e3:8.1f} ms  "
          f"{total_steps / total_time / 1e6:6.2f} M insns/s")


if __name__ == "__main__":
    main()
