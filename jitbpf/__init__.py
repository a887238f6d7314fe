"""jitbpf: a userspace eBPF toolchain whose heart is a JIT compiler.

    import jitbpf
    obj = jitbpf.assemble("mov %r0, 42\nexit")     # or jitbpf.from_bytes(code)
    fn = obj.program().compile(engine="interp")
    fn.run().r0                                      # 42
"""

from .errors import (BpfAsmError, BpfEngineError, BpfError, BpfLoadError, BpfMismatchError,
                     BpfRuntimeError, BpfValidationError, BpfVerifierError)
from .engines import Result, available_engines
from .program import Object, Program, assemble, from_bytes, from_insns, load

__version__ = "0.1.0"

__all__ = ["load", "assemble", "from_bytes", "from_insns", "Object", "Program", "Result", "available_engines",
           "BpfError", "BpfAsmError", "BpfValidationError", "BpfLoadError", "BpfVerifierError",
           "BpfRuntimeError", "BpfEngineError", "BpfMismatchError"]
