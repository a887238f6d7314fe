"""Running a translated filter over many packets: the one place that does it."""

from __future__ import annotations

from typing import Sequence, Union

from ..engines import CompiledProgram
from ..runtime.memory import RecordBuffer


def run_filter(compiled: CompiledProgram, records: Union[Sequence[bytes], bytes, RecordBuffer],
               as_array: bool = False):
    """The filter's return value for every filter record (see jitbpf.cbpf.translate):
    a list of records, or records back to back in one buffer (a little-endian pcap
    file's body is one; a RecordBuffer holds them in our memory for several filters).
    Native engines walk the records in native code (``CompiledProgram.run_records``);
    ``as_array`` returns an array('Q') instead of a list (no Python int per packet)."""
    if isinstance(records, RecordBuffer):
        return compiled.run_records(records, as_array=as_array)
    data = records if isinstance(records, (bytes, bytearray, memoryview)) else b"".join(records)
    return compiled.run_records(bytes(data), as_array=as_array)
