"""libFuzzer-compatible entry point (atheris): bytes in, a differential check out.

``TestOneInput(data)`` decodes the bytes deterministically into a structured program:
the first 8 bytes seed the generator (so libFuzzer's mutations of them walk the space
of valid programs), the next byte picks the level, and the rest, when it is a whole
number of instructions, is also run as raw bytecode. Every engine configured in
``JITBPF_FUZZ_ENGINES`` (default interp,llvm,direct) must agree with interp, or the
target raises, which libFuzzer reports as a crash and saves the input.

    python -m jitbpf.fuzz.atheris_target jitbpf/fuzz/corpus -dict=jitbpf/fuzz/corpus/bpf.dict

runs it locally (pip install atheris); on OSS-Fuzz or ClusterFuzz the same file is the
fuzz target (see the README's "Fuzzing at scale").
"""

from __future__ import annotations

import os
import sys

from . import generate as gen
from .oracle import parse_configs, run_case

CONFIGS = parse_configs(os.environ.get("JITBPF_FUZZ_ENGINES", "interp,llvm,direct"))


class Divergence(AssertionError):
    """Two engines disagreed (or the oracle hit an internal error) on this input."""


def case_of(data: bytes) -> gen.Case:
    """The structured case these bytes stand for (deterministic)."""
    seed = int.from_bytes(data[:8].ljust(8, b"\0"), "little")
    level = gen.LEVELS[data[8] % len(gen.LEVELS)] if len(data) > 8 else "valid"
    return gen.generate(seed, 0, level)


def raw_of(data: bytes) -> gen.Case | None:
    """The bytes after the header as raw bytecode, when they can be instructions."""
    code = data[9:]
    if not code or len(code) % 8:
        return None
    from .. import isa
    from ..errors import BpfError
    try:
        insns = isa.decode(code)
    except BpfError:
        return None
    return gen.Case(insns, bytes(64), level="raw", kernel_safe=False)


def TestOneInput(data: bytes) -> None:      # noqa: N802 - libFuzzer's name
    for case in filter(None, (case_of(data), raw_of(data))):
        verdict = run_case(case, CONFIGS, CONFIGS[0])
        problems = [m.detail for m in verdict.unexplained] + [o.message for o in verdict.internal_errors]
        if problems:
            raise Divergence("; ".join(problems)[:2000])


def main(argv: list[str]) -> None:
    import atheris                         # only needed to fuzz, not to import this module
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
