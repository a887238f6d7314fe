"""The host kernel's verifier as an oracle: load a program unchanged with BPF_PROG_LOAD
(its maps as kernel maps, its BTF and func_info when it has them) and report whether
the kernel accepts it, with the kernel's own complaint.

Unlike the ``kernel`` engine, nothing is wrapped: the program is loaded as the kernel
program type that matches ours (``progtypes.ProgType.kernel_name``), so the verdicts
compare the two verifiers on the same rules. Raw programs have no kernel type; they
are loaded as XDP programs only when asked to (``as_type``).
"""

from __future__ import annotations

from dataclasses import dataclass

from jitbpf import isa
from jitbpf.kernel import syscall as sc

from .progtypes import resolve

BPF_F_SLEEPABLE = 1 << 4


@dataclass
class KernelVerdict:
    accepted: bool
    message: str
    log: str
    pc: int | None = None


def available() -> bool:
    return sc.kernel_available()


def _prepare(program, prog_type: str | None):
    """(code, kernel type, load options, maps) to load ``program`` as ``prog_type``."""
    from jitbpf.kernel.engine import map_references
    from jitbpf.kernel.objects import KernelMaps
    ptype = resolve(prog_type or program.prog_type)
    kname = ptype.kernel_name if ptype is not None and ptype.kernel_name else "xdp"
    maps = KernelMaps.of(program.obj)
    insns = map_references(program.insns)
    func_info = maps.btf.func_info(program, lambda entry: entry)
    options = sc.LoadOptions(name=program.name[:15], fd_array=maps.fds,
                             license=getattr(program.obj, "license", "") or "GPL",
                             btf_fd=maps.btf.program_fd(program) if func_info else 0, func_info=func_info,
                             func_info_rec_size=8 if func_info else 0,
                             prog_flags=BPF_F_SLEEPABLE if kname == "syscall" else 0)
    return isa.encode(insns), kname, options, maps


def kernel_verdict(program, prog_type: str | None = None) -> KernelVerdict:
    """Load ``program`` into the host kernel as ``prog_type`` (default: its own)."""
    code, kname, options, _maps = _prepare(program, prog_type)
    return load(code, kname, options)


def kernel_processed(program, prog_type: str | None = None) -> int | None:
    """The host kernel's processed-instruction count for ``program`` (its own statistics,
    log level 4), or None when the kernel rejects it."""
    import os
    import re
    code, kname, options, _maps = _prepare(program, prog_type)
    try:
        fd, log = sc.load_with_log(code, kname, options, 4)
    except sc.KernelVerifierError:
        return None
    os.close(fd)
    m = re.search(r"processed (\d+) insns", log)
    return int(m.group(1)) if m else None


LOG_SIZE = 1 << 18          # the tail of the log is enough for the complaint


def load(code: bytes, kernel_type: str, options) -> KernelVerdict:
    """BPF_PROG_LOAD without a log, then (rejected) once more with a bounded log: the
    kernel keeps the log's end, where its complaint is, however long the log would be
    (sc.load_program grows the buffer to the whole log, which can be gigabytes)."""
    import ctypes
    import errno
    import os
    try:
        fd = sc._prog_load(code, kernel_type, options, 0, None)
    except OSError as first:
        if first.errno == errno.EPERM:
            raise sc.KernelUnavailable(f"loading a program: {first.strerror}") from None
        buf = ctypes.create_string_buffer(LOG_SIZE)
        try:
            fd = sc._prog_load(code, kernel_type, options, 1, buf)
        except OSError:
            text = buf.value.decode(errors="replace")
            return KernelVerdict(False, sc._last_line(text) or first.strerror or "rejected", text, sc._failing_pc(text))
        os.close(fd)
        return KernelVerdict(False, "rejected without a log, accepted with one", "")
    os.close(fd)
    return KernelVerdict(True, "", "")


def engine_verdict(program, mem_len: int = 64) -> KernelVerdict:
    """The kernel's verdict on ``program`` the way the ``kernel`` engine runs it: raw,
    syscall and tracing programs wrapped as XDP programs whose r1 is a map value of
    ``mem_len`` bytes (see jitbpf/kernel/engine.py), the others natively."""
    from jitbpf.errors import BpfEngineError
    from jitbpf.kernel.engine import KernelProgram

    class Probe(KernelProgram):
        verdict = KernelVerdict(False, "not loaded", "")

        def _prog_load(self, spliced, options) -> int:          # the engine's loading, with a bounded log
            self.verdict = load(isa.encode(spliced.insns), self.kernel_type, options)
            if not self.verdict.accepted:
                raise sc.KernelVerifierError(self.verdict.message, self.verdict.log, self.verdict.pc)
            return -1

    try:
        probe = Probe(program)
        probe.load(mem_len, (mem_len if program.prog_type == "raw" else 0, 0, 0, 0))
    except sc.KernelVerifierError:
        pass
    except BpfEngineError as e:
        return KernelVerdict(False, f"kernel engine: {e.message}", "")
    return probe.verdict
