"""Running a translated filter over many packets: the one place that does it."""

from __future__ import annotations

from typing import Sequence

from ..engines import CompiledProgram


def run_filter(compiled: CompiledProgram, records: Sequence[bytes]) -> list[int]:
    """The filter's return value for every filter record (see jitbpf.cbpf.translate).

    Native engines run the records in batches (``CompiledProgram.run_many``: one
    native call per chunk of records).
    """
    return compiled.run_many(records)
