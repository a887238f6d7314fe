"""CompiledProgram.run_many: many inputs (and repeats) per call, on every engine.

Expected values come from Python arithmetic on the inputs, an independent classic BPF
interpreter (jitbpf.cbpf.interp) or a count of the packets by their headers, never from
the code that runs the batch.
"""

from __future__ import annotations

import struct
from collections import Counter

import pytest

import jitbpf
from jitbpf.runtime import Runtime

from conftest import ROOT, in_threads

ENGINES = [e for e in jitbpf.available_engines() if e != "kernel"]
KERNEL = ["kernel"] if "kernel" in jitbpf.available_engines() else []

# r0 = 3 * mem[0] + len, and mem[1] counts the runs over this memory.
COUNTING = """
ldxb r3, [r1]
mul r3, 3
add r3, r2
ldxb r4, [r1+1]
add r4, 1
stxb [r1+1], r4
mov r0, r3
exit
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_run_many_returns_every_inputs_r0(engine):
    fn = jitbpf.assemble(COUNTING).program().compile(engine)
    inputs = [bytes([i, 0]) + bytes(i % 5) for i in range(70)]      # more than one native chunk
    assert fn.run_many(inputs) == [3 * i + 2 + i % 5 for i in range(70)]


@pytest.mark.parametrize("engine", ENGINES)
def test_repeats_share_the_inputs_context(engine):
    """Like BPF_PROG_TEST_RUN's repeat: set up once, run n times (mem[1] counts them)."""
    rt = Runtime()
    seen = []
    rt.helpers.register(1000, "seen", lambda rt, a, *_: seen.append(rt.memory.load(a + 1, 1)) or 0)
    fn = jitbpf.assemble("mov r6, r1\n" + COUNTING.replace("mov r0, r3\nexit", "mov r1, r6\ncall 1000\nmov r0, r3\nexit"),
                         runtime=rt).program().compile(engine, verify=False)     # (r3 survives the call here)
    assert fn.run_many([bytes([1, 0]), bytes([2, 0])], repeat=4) == [3 + 2, 6 + 2]
    assert seen == [1, 2, 3, 4, 1, 2, 3, 4]


@pytest.mark.parametrize("engine", ENGINES)
def test_budget_is_per_run_and_errors_stop_the_batch(engine):
    loop = "mov r0, 0\nmov r2, 20\nl:\nadd r0, 1\nsub r2, 1\njne r2, 0, l\nldxb r3, [r1]\njeq r3, 9, bad\nexit\nbad:\nldxdw r0, [r3]\nexit"
    fn = jitbpf.assemble(loop).program().compile(engine, budget=100, verify=False)
    assert fn.run_many([b"\0"] * 5, repeat=10) == [20] * 5           # 500 runs x ~60 ticks > one budget
    with pytest.raises(jitbpf.BpfRuntimeError) as e:
        fn.run_many([b"\0", b"\x09", b"\0"])
    assert e.value.pc == 8
    assert fn.run_many([b"\0"]) == [20]                               # nothing left pending


@pytest.mark.parametrize("engine", ENGINES)
def test_helper_errors_and_exits_inside_a_batch(engine):
    rt = Runtime()
    calls = []

    def helper(rt, a, *_):
        calls.append(a)
        if a == 7:
            raise jitbpf.BpfRuntimeError("seven")
        if a == 5:
            rt.end_program(555)
        return a * 10
    rt.helpers.register(1000, "h", helper)
    fn = jitbpf.assemble("ldxb r1, [r1]\ncall 1000\nexit", runtime=rt).program().compile(engine)
    assert fn.run_many([bytes([i]) for i in (1, 5, 2)], repeat=2) == [10, 555, 20]
    assert calls == [1, 1, 5, 5, 2, 2]
    with pytest.raises(jitbpf.BpfRuntimeError, match="seven"):
        fn.run_many([bytes([i]) for i in (1, 7, 2)])
    assert calls[-2:] == [1, 7] and not rt.unwinding


def _packets() -> list[bytes]:
    eth = lambda proto: bytes(12) + struct.pack(">H", proto)
    ip = lambda proto, src: bytes([0x45, 0, 0, 20, 0, 0, 0, 0, 64, proto, 0, 0]) + src + bytes(4)
    out = []
    for i in range(40):
        if i % 4 == 0:
            out.append(eth(0x86DD) + bytes(40))
        else:
            out.append(eth(0x0800) + ip((6, 17, 1)[i % 3], bytes([192, 168, 0, 1 + i % 2])) + bytes(i))
    return out


@pytest.mark.parametrize("engine", ENGINES + KERNEL)
def test_xdp_stats_over_a_batch_counts_every_packet(engine):
    obj = jitbpf.load(str(ROOT / "jitbpf" / "examples" / "xdp_stats.bpf.o"))
    packets = _packets()
    verdicts = obj.program("xdp_stats").compile(engine).run_many(packets, repeat=2)
    want, want_verdicts = Counter(), []
    for p in packets:
        proto = struct.unpack(">H", p[12:14])[0]
        key = p[14 + 9] if proto == 0x0800 else 0x10000 + proto
        want[key] += 1
        want_verdicts.append(1 if proto == 0x0800 and p[14 + 12:14 + 16] == bytes([192, 168, 0, 1]) else 2)
    assert verdicts == want_verdicts
    got = {struct.unpack("<I", k)[0]: struct.unpack("<QQ", v) for k, v in obj.maps["stats"].items()}
    assert {k: v[0] for k, v in got.items()} == {k: 2 * n for k, n in want.items()}
    assert sum(v[1] for v in got.values()) == 2 * sum(len(p) for p in packets)


@pytest.mark.parametrize("engine", ["llvm", "direct", "interp"])
def test_classic_filters_run_in_batch(engine):
    """cbpf.run_filter is run_many over filter records ("ip and tcp" as tcpdump -dd
    prints it); the expected verdicts from the packets' headers."""
    from jitbpf import cbpf
    flt = cbpf.parse_text("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 3, 0x00000800 },\n{ 0x30, 0, 0, 0x00000017 },\n"
                          "{ 0x15, 0, 1, 0x00000006 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },")
    packets = _packets()
    got = cbpf.run_filter(flt.program().compile(engine), [cbpf.record(p) for p in packets])
    assert got == [262144 if p[12:14] == b"\x08\x00" and p[23] == 6 else 0 for p in packets]
    assert 0 < got.count(0) < len(got)


# run_records: records back to back (a 16-byte header whose u32 at byte 8 is the length
# of what follows, as in a pcap file's body), r1 = the record, r2 = its whole length.

def _records(payloads: list[bytes]) -> bytes:
    return b"".join(struct.pack("=IIII", i, 0, len(p), len(p)) + p for i, p in enumerate(payloads))


# r0 = record length * 1000 + the first payload byte (0 when there is none); the program
# then writes 0xee over that byte, which no later run and not the caller may see.
FIRST_BYTE = """
mov r0, r2
mul r0, 1000
jlt r2, 17, out
ldxb r3, [r1+16]
add r0, r3
mov r3, 0xee
stxb [r1+16], r3
out:
exit
"""


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("verify", [True, False])
def test_run_records_runs_each_record_on_its_own(engine, verify):
    payloads = [bytes([i]) * (i % 7) for i in range(200)]
    data = _records(payloads)
    fn = jitbpf.assemble(FIRST_BYTE).program().compile(engine, verify=verify)
    want = [(16 + len(p)) * 1000 + (p[0] if p else 0) for p in payloads]
    assert fn.run_records(data) == want
    assert fn.run_records(data) == want                  # the writes went to a private copy
    assert data == _records(payloads)
    assert fn.run_records(b"") == []


@pytest.mark.parametrize("engine", ENGINES)
def test_run_records_bounds_each_access_by_its_record(engine):
    """A read one byte past the record is out of bounds even with more records after it."""
    fn = jitbpf.assemble("ldxb r0, [r1+17]\nexit").program().compile(engine, verify=False)
    assert fn.run_records(_records([b"ab", b"cd"])) == [ord("b"), ord("d")]
    with pytest.raises(jitbpf.BpfRuntimeError, match="out-of-bounds") as e:
        fn.run_records(_records([b"ab", b"c", b"de"]))
    assert e.value.pc == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_run_records_refuses_a_record_that_overruns_the_buffer(engine):
    fn = jitbpf.assemble("mov r0, r2\nexit").program().compile(engine)
    good = _records([b"x" * 5])
    for bad, at in ((good + good[:10], 21), (good[:-1], 0), (good + struct.pack("=IIII", 0, 0, 1 << 31, 0), 21)):
        with pytest.raises(jitbpf.BpfRuntimeError, match=f"record at byte {at} of {len(bad)} overruns"):
            fn.run_records(bad)
    assert fn.run_records(good * 3) == [21] * 3


@pytest.mark.parametrize("engine", ENGINES)
def test_run_records_with_helpers_and_budgets(engine):
    """A program that calls helpers runs record by record (run_many); a budget applies
    to each run; a run's error stops the walk."""
    rt = Runtime()
    seen = []
    rt.helpers.register(1000, "seen", lambda rt, a, *_: seen.append(a) or a * 2)
    fn = jitbpf.assemble("mov r1, r2\ncall 1000\nexit", runtime=rt).program().compile(engine)
    assert fn.run_records(_records([b"", b"abc"])) == [32, 38] and seen == [16, 19]
    loop = "mov r0, 0\nl:\nadd r0, 1\njlt r0, r2, l\nexit"
    fn = jitbpf.assemble(loop).program().compile(engine, budget=100, verify=False)
    assert fn.run_records(_records([b"", b"x" * 40])) == [16, 56]
    with pytest.raises(jitbpf.BpfRuntimeError, match="budget"):
        fn.run_records(_records([b"", b"x" * 200, b""]))


def test_run_records_takes_raw_programs_only():
    obj = jitbpf.load(str(ROOT / "jitbpf" / "examples" / "xdp_stats.bpf.o"))
    with pytest.raises(jitbpf.BpfEngineError, match="raw-memory programs, not xdp"):
        obj.program("xdp_stats").compile("interp").run_records(_records([b""]))


# Threads: one compiled program, four threads, shared maps. Each run adds 1 with an
# atomic add to an array element (looked up inline) and to a hash element (the native
# runtime or the helper), and a non-atomic counter in the run's own memory. (Not interp:
# an Interpreter has one BPF stack, not one per thread.)
THREADED = """
mov %r6, %r1
stw [%r10-4], 0
lddw %r1, map_fd(0)
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, out
mov %r1, 1
lock add64 [%r0], %r1
lddw %r1, map_fd(1)
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, out
mov %r1, 1
lock add64 [%r0], %r1
ldxdw %r1, [%r6]
add %r1, 1
stxdw [%r6], %r1
out:
mov %r0, %r1
exit
"""


@pytest.mark.parametrize("engine", ["llvm", "direct", "llvm-arm64"])
def test_four_threads_share_maps_and_atomics_add_up(engine):
    from jitbpf.runtime import maps as M
    obj = jitbpf.assemble(THREADED)
    arr, table = M.create(obj.runtime, "arr", "array", 4, 8, 1), M.create(obj.runtime, "h", "hash", 4, 8, 4)
    obj.add_map(arr)
    obj.add_map(table)
    table.update(0, 0)
    fn = obj.program().compile(engine, bounds_check=False, verify=False)
    runs = 20 if engine == "llvm-arm64" else 2000
    out = {}

    def work(t: int) -> None:
        out[t] = fn.run_many([bytes(8)] * 4, repeat=runs // 4)
    assert not in_threads(work)
    assert out == {t: [runs // 4] * 4 for t in range(4)}        # each thread's own memory
    assert int.from_bytes(arr[0], "little") == 4 * runs
    assert int.from_bytes(table[0], "little") == 4 * runs


# bpf_probe_read_kernel_str copies "hi\0" into a 16-byte stack buffer the program never
# wrote; Linux (and so the verifier) counts all 16 bytes written, so the program may read
# the 8 the helper left alone. Unwritten stack reads as zero on every engine, in every run.
PARTIAL_WRITE = """
mov r1, 0x6968
stxdw [r10-32], r1
stxdw [r10-24], r1
mov r1, r10
add r1, -16
mov r2, 16
mov r3, r10
add r3, -32
call 115
ldxdw r0, [r10-8]
mov r1, -1
stxdw [r10-8], r1
exit
"""


@pytest.mark.parametrize("engine", ["llvm", "direct"])
def test_partly_written_buffers_keep_the_stack_cleared(engine):
    from jitbpf.pipeline import reads_own_stack
    prog = jitbpf.assemble(PARTIAL_WRITE).program()
    assert not reads_own_stack(prog)
    assert reads_own_stack(jitbpf.assemble(COUNTING).program())
    fn = prog.compile(engine, stack_fill=0xAB)          # not proven: the fill does not apply
    assert fn.run(b"").r0 == 0
    assert fn.run_many([b""] * 3) == [0, 0, 0]         # the -1 a run leaves is cleared for the next
