"""The host kernel as an engine and oracle, through bpf(2) with ctypes (no libbpf).

- :mod:`.syscall`: maps, BTF, program load with the verifier log, object info,
  BPF_PROG_TEST_RUN, and the availability probe (``kernel_available()``);
- :mod:`.engine`: the ``kernel`` engine (how programs are wrapped and run);
- :mod:`.objects`, :mod:`.btfload`: an object's maps, global data and BTF in kernel terms;
- :mod:`.rewrite`: inserting instructions with jumps kept on target;
- :mod:`.listing`: the kernel's xlated and JITed code, for ``jitbpf disasm --engine kernel``.
"""

from .engine import KernelEngine, KernelProgram, make_engine
from .syscall import KernelError, KernelUnavailable, KernelVerifierError, availability, kernel_available

__all__ = ["make_engine", "KernelEngine", "KernelProgram", "KernelError", "KernelUnavailable",
           "KernelVerifierError", "availability", "kernel_available"]
