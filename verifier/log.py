"""The verifier log, kernel-like.

- level 0: only the complaint and the statistics line;
- level 1: the path that failed (instructions of paths that ended well are dropped,
  as the kernel does with BPF_LOG_LEVEL1), with the state at each branch resumed;
- level 2: every processed instruction with the registers it leaves.

Instruction lines look like the kernel's: ``12: (bf) r6 = r1``, preceded by
``; file.c:34`` when BTF line info names a new source line.
"""

from __future__ import annotations

from jitbpf.disasm import disassemble


class Log:
    def __init__(self, level: int, program):
        self.level = level
        self.lines: list[str] = []
        self.program = program
        self._text: dict[int, str] | None = None
        self._last_line: str | None = None

    def text_of(self, pc: int) -> str:
        if self._text is None:
            self._text = dict(disassemble(self.program.insns, "kernel"))
        return self._text.get(pc, "?")

    def insn(self, pc: int, state_text: str | None = None) -> int:
        """Log the instruction at ``pc``; returns its line's index."""
        src = self.program.line_info.get(pc)
        if src is not None and src != self._last_line:
            self.lines.append(f"; {src}")
            self._last_line = src
        op = self.program.insns[pc].opcode
        line = f"{pc}: ({op:02x}) {self.text_of(pc)}"
        if state_text:
            line += f"  ; {state_text}"
        self.lines.append(line)
        return len(self.lines) - 1

    def add(self, line: str) -> None:
        self.lines.append(line)

    def mark(self) -> int:
        return len(self.lines)

    def reset(self, pos: int) -> None:
        del self.lines[pos:]
        self._last_line = None

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")
