"""Conformance tests the Linux verifier refuses to load, with the message it gives
(the end of its complaint). ``jitbpf conformance --engine kernel`` counts a test
that fails with exactly its listed message as skipped, and tests/test_kernel.py
checks that every other test passes and that each of these still fails this way."""

from __future__ import annotations

#: test name -> the kernel verifier's message
CONFORMANCE_REJECTIONS: dict[str, str] = {
    # RFC 9669 masks shift counts; Linux rejects an immediate count outside 0..width-1.
    "arsh32-imm-high": "invalid shift 48",
    "arsh32-imm-neg": "invalid shift -16",
    "arsh64-imm-high": "invalid shift 124",
    "arsh64-imm-neg": "invalid shift -4",
    "lsh32-imm-high": "invalid shift 60",
    "lsh32-imm-neg": "invalid shift -4",
    "lsh64-imm-high": "invalid shift 68",
    "lsh64-imm-neg": "invalid shift -60",
    "rsh32-imm-high": "invalid shift 40",
    "rsh32-imm-neg": "invalid shift -24",
    "rsh64-imm-high": "invalid shift 68",
    "rsh64-imm-neg": "invalid shift -60",
    # Linux has no callx (BPF_JMP | BPF_CALL | BPF_X).
    "callx": "unknown opcode 8d",
}


def is_known_rejection(test: str, detail: str) -> bool:
    """Whether a failed conformance outcome is the kernel's listed refusal of ``test``."""
    message = CONFORMANCE_REJECTIONS.get(test)
    return message is not None and detail.endswith(f"the kernel verifier rejects the program: {message}")
