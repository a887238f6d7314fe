"""Contexts a program runs with, like BPF_PROG_TEST_RUN: what r1.. hold and which
memory is mapped for the run. Every engine receives the same Invocation, so the
input memory after the run can be compared across engines."""

from __future__ import annotations

from dataclasses import dataclass, field

from .memory import HostBuffer, Region


@dataclass
class Invocation:
    args: tuple[int, ...]                     # r1, r2, ... at entry
    regions: list[Region] = field(default_factory=list)   # mapped during the run
    memory: HostBuffer | None = None          # the caller's memory, read back afterwards
    ctx: HostBuffer | None = None             # the context struct, if any

    def memory_after(self) -> bytes | None:
        return self.memory.bytes() if self.memory is not None else None


def raw_memory(data: bytes | None) -> Invocation:
    """uBPF / bpf_conformance style: r1 = a writable copy of ``data`` (0 if None), r2 = its length."""
    if data is None:
        return Invocation((0, 0))
    buf = HostBuffer(len(data), data)
    return Invocation((buf.address if data else 0, len(data)), [Region.of("mem", buf)], buf)
