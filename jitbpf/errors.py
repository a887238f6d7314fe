"""Exceptions. Every failure a user can cause is a BpfError subclass carrying,
where it applies, the instruction index (``pc``) it is about."""

from __future__ import annotations


class BpfError(Exception):
    """Base class of every jitbpf error."""

    at_source = False      # pc names a slot of the program as loaded (not of a pass's rewrite)

    def __init__(self, message: str, pc: int | None = None, line: str | None = None):
        self.message = message
        self.pc = pc
        self.line = line     # source location ("file.c:12") where BTF line info exists
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.pc is not None:
            where.append(f"instruction {self.pc}")
        if self.line:
            where.append(self.line)
        return f"{', '.join(where)}: {self.message}" if where else self.message


class BpfAsmError(BpfError):
    """The assembler text is malformed (the line number is in ``line``)."""

    def _render(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class BpfValidationError(BpfError):
    """The bytecode breaks an encoding rule of the instruction set."""


class BpfLoadError(BpfError):
    """An object file or its sections, relocations, maps or BTF cannot be loaded."""


class BpfVerifierError(BpfError):
    """The static verifier rejects the program."""


class BpfRuntimeError(BpfError):
    """The program did something invalid while running (bad memory access, budget, ...)."""


class BpfEngineError(BpfError):
    """An engine is unknown, unavailable here, or cannot compile this program."""


class BpfMismatchError(BpfError):
    """A cross-checked run differs from the reference interpreter."""
