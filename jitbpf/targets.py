"""Engine names, architectures and executors: the leaf every layer may import.

An engine is ``BACKEND[-ARCH][@EXECUTOR]`` (see ARCHITECTURE.md): ``interp``, ``llvm``,
``llvm-arm64``, ``llvm-x86_64@unicorn``, ``direct``, ``direct-arm64``,
``direct-x86_64@unicorn``, ``kernel``. The architecture defaults to the host's, the
executor to native for the host architecture and unicorn otherwise. This module
imports nothing of ours but the errors, so backends, executors and the verifier can
use it without reaching up into the engine registry.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from .errors import BpfEngineError

ARCH_ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}
HOST_ARCH = ARCH_ALIASES.get(platform.machine().lower(), platform.machine().lower())
ARCHES = ("x86_64", "arm64")
EXECUTORS = ("native", "unicorn")
#: Backends without an architecture (they run the bytecode itself).
ARCHLESS = frozenset({"interp", "kernel"})
BACKEND_NAMES = ("interp", "llvm", "direct", "kernel")

#: The engines every command offers, in the order "all" runs them.
ENGINE_NAMES = ["interp", "llvm", "llvm-arm64", "llvm-x86_64@unicorn",
                "direct", "direct-arm64", "direct-x86_64@unicorn", "kernel"]

#: LLVM target triples and ELF machine numbers per architecture.
TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "arm64": "aarch64-unknown-linux-gnu"}
ELF_MACHINES = {"x86_64": 62, "arm64": 183}


@dataclass(frozen=True)
class EngineSpec:
    backend: str
    arch: str
    executor: str

    @property
    def name(self) -> str:
        return canonical_name(self)

    @property
    def native(self) -> bool:
        """Generated code runs in this process (not emulated, not the interpreter or kernel)."""
        return self.backend not in ARCHLESS and self.executor == "native"


def default_executor(arch: str) -> str:
    return "native" if arch == HOST_ARCH else "unicorn"


def parse_engine(name: str) -> EngineSpec:
    """Split an engine name, filling in the defaults; a clear error for anything unknown."""
    base, _, executor = name.partition("@")
    backend, _, arch = base.partition("-")
    arch = ARCH_ALIASES.get(arch, arch) or HOST_ARCH
    if backend not in BACKEND_NAMES:
        raise BpfEngineError(f"unknown engine '{name}' (known: {', '.join(ENGINE_NAMES)})")
    if arch not in ARCHES:
        raise BpfEngineError(f"unknown architecture '{arch}' in engine '{name}' (x86_64 or arm64)")
    executor = executor or default_executor(arch)
    if executor not in EXECUTORS:
        raise BpfEngineError(f"unknown executor '{executor}' in engine '{name}' (native or unicorn)")
    if executor == "native" and arch != HOST_ARCH:
        raise BpfEngineError(f"engine '{name}': {arch} code cannot run natively on this {HOST_ARCH} host")
    return EngineSpec(backend, arch, executor)


def canonical_name(spec: EngineSpec) -> str:
    if spec.backend in ARCHLESS:
        return spec.backend
    name = spec.backend if spec.arch == HOST_ARCH else f"{spec.backend}-{spec.arch}"
    return name if spec.executor == default_executor(spec.arch) else f"{name}@{spec.executor}"
