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


def kernel_verdict(program, prog_type: str | None = None, log_level: int = 0) -> KernelVerdict:
    """Load ``program`` into the host kernel as ``prog_type`` (default: its own)."""
    from jitbpf.kernel.engine import map_references
    from jitbpf.kernel.objects import KernelMaps
    ptype = resolve(prog_type or program.prog_type)
    kname = ptype.kernel_name if ptype is not None and ptype.kernel_name else "xdp"
    maps = KernelMaps.of(program.obj)
    insns = map_references(program.insns)
    func_info = maps.btf.func_info(program, lambda entry: entry)
    options = sc.LoadOptions(name=program.name[:15], fd_array=maps.fds,
                             license=getattr(program.obj, "license", "") or "GPL",
                             btf_fd=maps.btf.fd if func_info else 0, func_info=func_info,
                             func_info_rec_size=8 if func_info else 0,
                             prog_flags=BPF_F_SLEEPABLE if kname == "syscall" else 0)
    code = isa.encode(insns)
    try:
        if log_level:
            fd, log = sc.load_with_log(code, kname, options, log_level)
        else:
            fd, log = sc.load_program(code, kname, options), ""
    except sc.KernelVerifierError as e:
        return KernelVerdict(False, e.message.removeprefix("the kernel verifier rejects the program: "), e.log, e.pc)
    import os
    os.close(fd)
    return KernelVerdict(True, "", log)
