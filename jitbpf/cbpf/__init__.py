"""Classic BPF: tcpdump/libpcap filters, validated with the kernel's rules,
interpreted with libpcap's semantics, disassembled as ``tcpdump -d`` does and
translated to eBPF so that every jitbpf engine runs them.

    from jitbpf import cbpf
    flt = cbpf.compile("tcp port 80")            # pcap_compile through libpcap
    flt = cbpf.load("prog.txt")                  # tcpdump -dd / -ddd text or sock_filter bytes
    flt.run(packet)                              # the reference interpreter: bytes to keep, 0 = drop
    fn = flt.program().compile("llvm")           # eBPF over a filter record (see translate)
    cbpf.run_filter(fn, [cbpf.record(packet)])   # the same, JIT-compiled
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..errors import BpfValidationError
from ..program import Program
from . import disasm, interp, parse
from .check import validate
from .isa import BPF_MAXINSNS, Insn
from .libpcap import DEFAULT_SNAPLEN, DLT_EN10MB, LibpcapError
from .run import run_filter
from .translate import record, to_ebpf

__all__ = ["Filter", "Insn", "compile", "load", "parse_text", "from_bytes", "validate", "record", "to_ebpf",
           "run_filter", "LibpcapError", "BpfValidationError", "BPF_MAXINSNS"]


@dataclass(frozen=True)
class Filter:
    """A validated classic program. The kernel's rules apply except its length
    limit (``max_insns=None`` by default): libpcap writes longer programs and
    every engine runs them; pass ``max_insns=BPF_MAXINSNS`` to enforce it."""

    insns: tuple[Insn, ...]
    max_insns: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "insns", tuple(self.insns))
        validate(list(self.insns), self.max_insns)

    def run(self, packet: bytes, wirelen: int | None = None) -> int:
        """The reference interpreter's return value for one packet."""
        return interp.run(list(self.insns), packet, wirelen)

    @cached_property
    def _program(self) -> Program:
        return to_ebpf(list(self.insns), max_insns=None)

    def program(self) -> Program:
        """The translated eBPF program (raw memory: one filter record)."""
        return self._program

    def disassemble(self, style: str = "d") -> str:
        """``tcpdump -d`` (``d``), ``-dd`` (``dd``) or ``-ddd`` (``ddd``) text."""
        return {"d": disasm.listing, "dd": disasm.c_array, "ddd": disasm.decimal}[style](list(self.insns))


def compile(expr: str, linktype: int = DLT_EN10MB, snaplen: int = DEFAULT_SNAPLEN, optimize: bool = True) -> Filter:
    """A filter expression compiled by libpcap's pcap_compile."""
    from .libpcap import compile_expr
    return Filter(compile_expr(expr, linktype, snaplen, optimize))


def load(path: str) -> Filter:
    """A program file (tcpdump -dd or -ddd text, or sock_filter bytes); errors name the file."""
    try:
        return Filter(parse.load(path))
    except BpfValidationError as e:
        error = BpfValidationError(f"{path}: {e}")
        error.pc = e.pc
        raise error from None


def parse_text(text: str) -> Filter:
    return Filter(parse.parse_text(text))


def from_bytes(data: bytes) -> Filter:
    return Filter(parse.parse_bytes(data))
