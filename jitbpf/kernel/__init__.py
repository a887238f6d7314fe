"""The host kernel as an engine and oracle, through bpf(2) (see engine.py)."""
from .syscall import availability, kernel_available, KernelError, KernelUnavailable, KernelVerifierError
from .engine import make_engine, KernelEngine, KernelProgram
