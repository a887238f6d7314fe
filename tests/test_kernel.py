"""The host kernel as an engine and oracle: the bpf(2) layer, the ``kernel`` engine
on raw-memory programs and the conformance suite, verifier logs through our API,
and clang objects run in the kernel and in ``interp`` side by side.

Everything that needs bpf(2) skips where it is not permitted.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings

import jitbpf
from jitbpf import isa
from jitbpf.conformance import load_test, run_test
from jitbpf.kernel import syscall as sc
from jitbpf.kernel.known import CONFORMANCE_REJECTIONS as KNOWN, is_known_rejection

from conftest import CONFORMANCE_TESTS, conformance_files, needs_conformance, run_asm
from strategies import ALU_JMP, valid_program
from test_fixtures import CASES as FIXTURE_CASES     # inputs and independently computed results

needs_kernel = pytest.mark.skipif(not sc.kernel_available(), reason=str(sc.availability()))


def u32(x: int) -> bytes:
    return x.to_bytes(4, "little")


# --------------------------------------------------------------------------- availability

def test_unavailable_kernel_is_a_clear_error(monkeypatch):
    """Where bpf(2) is not allowed, the engine is not offered and asking for it says why."""
    monkeypatch.setenv("JITBPF_KERNEL", "0")
    sc.availability.cache_clear()
    try:
        assert "kernel" not in jitbpf.available_engines()
        assert "interp" in jitbpf.available_engines()
        with pytest.raises(jitbpf.BpfEngineError, match=r"bpf\(2\) not permitted"):
            jitbpf.assemble("mov %r0, 1\nexit").program().compile("kernel")
    finally:
        monkeypatch.delenv("JITBPF_KERNEL")
        sc.availability.cache_clear()


@needs_kernel
def test_kernel_is_listed_where_bpf_works():
    assert "kernel" in jitbpf.available_engines()


# --------------------------------------------------------------------------- the bpf(2) layer

@needs_kernel
def test_array_map_syscalls_and_mmap():
    m = sc.create_map("array", 4, 12, 3, sc.F_MMAPABLE, "t_array")
    try:
        assert m.lookup(u32(1)) == bytes(12)                 # arrays are zero-filled
        m.update(u32(1), b"hello, world")
        assert m.lookup(u32(1)) == b"hello, world"
        assert m.lookup(u32(3)) is None                      # past max_entries
        assert list(m.keys()) == [u32(0), u32(1), u32(2)]
        # the mmap'ed values are 8-byte aligned: element 1 starts at 16
        assert bytes(m.view[16:28]) == b"hello, world"
        m.view[32:36] = b"\x01\x02\x03\x04"
        assert m.lookup(u32(2))[:4] == b"\x01\x02\x03\x04"
        with pytest.raises(sc.KernelError, match="delete from map 't_array'"):
            m.delete(u32(0))                                  # array elements cannot be deleted
    finally:
        m.close()


@needs_kernel
def test_hash_map_syscalls():
    m = sc.create_map("hash", 8, 4, 4, 0, "t_hash")
    try:
        assert m.next_key(None) is None
        for k in (5, 6, 7):
            m.update(struct.pack("<Q", k), u32(k * 100))
        assert sorted(m.items()) == [(struct.pack("<Q", k), u32(k * 100)) for k in (5, 6, 7)]
        assert m.delete(struct.pack("<Q", 6)) and not m.delete(struct.pack("<Q", 6))
        with pytest.raises(sc.KernelError, match="File exists"):
            m.update(struct.pack("<Q", 5), u32(1), sc.NOEXIST)
        m.update(struct.pack("<Q", 8), u32(1))
        m.update(struct.pack("<Q", 9), u32(1))                # 4 entries: full
        with pytest.raises(sc.KernelError, match="E2BIG"):
            m.update(struct.pack("<Q", 10), u32(1))
    finally:
        m.close()


def _code(text: str) -> bytes:
    from jitbpf.asm import assemble_bytes
    return assemble_bytes(text)


@needs_kernel
def test_prog_load_info_and_test_run_with_repeat():
    code = _code("mov %r0, 7\nadd %r0, 35\nexit")
    fd = sc.load_program(code, "socket_filter", sc.LoadOptions(name="t_info"))
    try:
        info = sc.prog_info(fd)
        assert info.xlated == code                         # nothing for the kernel to rewrite here
        assert info.name == "t_info" and info.type == sc.PROG_TYPES["socket_filter"]
        assert info.jited and sum(info.jited_func_lens) == len(info.jited) and len(info.jited_ksyms) == 1
        run = sc.test_run(fd, bytes(14), repeat=50, data_out_size=0)
        assert run.retval == 42 and run.duration_ns >= 0
        assert sc.prog_info(fd).run_cnt in (0, 50)         # counted only with bpf_stats_enabled
    finally:
        os.close(fd)


@needs_kernel
def test_rejected_program_shows_the_verifier_log():
    with pytest.raises(sc.KernelVerifierError) as err:
        sc.load_program(_code("exit"), "socket_filter")
    assert "R0 !read_ok" in err.value.log and "0: (95) exit" in err.value.log
    assert err.value.pc == 0 and str(err.value).endswith("R0 !read_ok")


@needs_kernel
def test_load_with_log_grows_the_buffer(monkeypatch):
    monkeypatch.setattr(sc, "LOG_START", 64)               # far too small for this log
    text = "\n".join(["mov %r0, 1"] * 40 + ["exit"])
    fd, log = sc.load_with_log(_code(text), "socket_filter", log_level=2)
    os.close(fd)
    assert len(log) > 64 and "processed 41 insns" in log


@needs_kernel
def test_btf_load_accepts_valid_and_rejects_garbage():
    # the smallest valid BTF: header, one type (int, 32 bits, signed), strings "\0int\0"
    strings = b"\0int\0"
    types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    os.close(sc.load_btf(header + types + strings))
    with pytest.raises(sc.KernelVerifierError, match="BTF"):
        sc.load_btf(header[:8] + bytes(40))


# --------------------------------------------------------------------------- the engine, raw memory

@needs_kernel
def test_full_64bit_r0_and_memory_come_back():
    text = """
        lddw %r0, 0x123456789abcdef0
        stb [%r1+2], 0x7f
        ldxb %r3, [%r1]
        add %r3, %r2
        stxb [%r1+3], %r3
        exit
    """
    res = run_asm(text, bytes([5, 0, 0, 0]), engine="kernel")
    assert res.r0 == 0x123456789ABCDEF0
    assert res.memory == bytes([5, 0, 0x7F, 5 + 4])


@needs_kernel
def test_only_exits_of_the_main_function_are_wrapped():
    """The callee's exit returns to main; main's exit gives the 64-bit r0."""
    text = """
        mov %r6, 3
        call local double
        lsh %r0, 32
        add %r0, %r6
        exit
    double:
        mov %r0, %r1
        lddw %r0, 0x100000000
        exit
    """
    assert run_asm(text, engine="kernel").r0 == (0x100000000 << 32 | 3) & isa.MASK64


@needs_kernel
def test_helper_ktime_and_repeat():
    text = "call 5\nmov %r6, %r0\ncall 5\nsub %r0, %r6\nexit"
    fn = jitbpf.assemble(text).program().compile("kernel", repeat=10)
    assert fn.run().r0 < 1 << 63                     # the second reading is not before the first
    assert fn.executable.last_run.duration_ns >= 0


@needs_kernel
def test_one_kernel_program_per_memory_length():
    fn = jitbpf.assemble("ldxb %r0, [%r1]\nadd %r0, %r2\nexit").program().compile("kernel")
    assert fn.run(b"\x10").r0 == 0x11
    assert fn.run(b"\x20\x00\x00").r0 == 0x23
    assert fn.run(b"\x30").r0 == 0x31
    assert sorted(mem_len for mem_len, _args in fn.executable.loads) == [1, 3]


@needs_kernel
def test_out_of_bounds_access_is_rejected_with_our_instruction_index():
    """The memory map is exactly as long as the memory, so the verifier catches the
    overrun; the error names the program's own instruction, not the wrapped one."""
    fn = jitbpf.assemble("mov %r0, 0\nldxw %r0, [%r1+2]\nexit").program().compile("kernel")
    assert fn.run(bytes(6)).r0 == 0
    with pytest.raises(jitbpf.BpfVerifierError) as err:
        fn.run(bytes(5))
    assert err.value.pc == 1
    assert "invalid access to map value" in err.value.message
    assert "off=2 size=4" in err.value.log


@needs_kernel
def test_cfg_errors_name_our_instruction():
    with pytest.raises(jitbpf.BpfVerifierError, match="unreachable insn") as err:
        jitbpf.assemble("mov %r0, 0\nexit\nmov %r0, 1\nexit").program().compile("kernel").run()
    assert err.value.pc == 2


@needs_kernel
def test_programs_and_maps_release_their_fds():
    import gc

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))
    run_asm("mov %r0, 1\nexit", engine="kernel")
    gc.collect()
    before = open_fds()
    for n in range(20):
        assert run_asm("ldxb %r0, [%r1]\nexit", bytes([n]), engine="kernel").r0 == n
    gc.collect()
    assert open_fds() <= before + 2


@needs_kernel
def test_check_mode_compares_with_interp():
    res = jitbpf.assemble("ldxdw %r0, [%r1]\nexit").program().compile("kernel").run(bytes(range(8)), check=True)
    assert res.r0 == 0x0706050403020100


# --------------------------------------------------------------------------- conformance

@needs_kernel
@pytest.mark.parametrize("path", conformance_files(CONFORMANCE_TESTS), ids=lambda p: p.stem)
def test_conformance_kernel(path):
    """Every conformance test passes in the kernel, or is a listed rejection that the
    kernel verifier still refuses with the listed message."""
    outcome = run_test(load_test(path), "kernel")
    if path.stem in KNOWN:
        assert not outcome.passed, f"{path.stem} passes now: remove it from jitbpf/kernel/known.py"
        assert is_known_rejection(path.stem, outcome.detail), outcome.detail
    else:
        assert outcome.passed, outcome.detail


@needs_kernel
def test_conformance_command_counts_known_rejections_as_skipped(capsys):
    from jitbpf.cli import main
    if len(conformance_files(CONFORMANCE_TESTS)) != 313:
        pytest.skip("the conformance suite is not complete here")
    assert main(["conformance", str(CONFORMANCE_TESTS), "--engine", "kernel"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"{313 - len(KNOWN)} passed, 0 failed, {len(KNOWN)} skipped"


@needs_conformance()
def test_known_rejections_name_real_tests():
    assert set(KNOWN) <= {p.stem for p in conformance_files(CONFORMANCE_TESTS)}


@needs_kernel
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_program(max_len=10, kinds=ALU_JMP, forward_only=True))
def test_random_programs_agree_with_interp(insns):
    """Terminating ALU/jump programs: where the kernel verifier accepts them, the
    kernel's JIT computes the interpreter's r0 (r10 left out: stack addresses differ)."""
    assume(all(isa.FP not in (i.dst, i.src) for i in insns if not i.is_lddw))
    prog = jitbpf.from_insns(insns).program()
    expected = prog.compile("interp").run().r0
    try:
        got = prog.compile("kernel").run().r0
    except jitbpf.BpfVerifierError as e:
        assume(not any(m in e.message for m in ("invalid shift", "div by zero", "unreachable insn")))
        raise
    assert got == expected


# --------------------------------------------------------------------------- disasm --engine kernel

@needs_kernel
def test_cli_disasm_shows_xlated_and_jited_code(tmp_path, capsys):
    from jitbpf.cli import main
    src = tmp_path / "prog.asm"
    src.write_text("mov %r6, %r1\ncall local f\ncall 5\nexit\nf:\nldxb %r0, [%r1]\nexit\n")
    assert main(["disasm", "--engine", "kernel", "--mem-size", "4", str(src)]) == 0
    out = capsys.readouterr().out
    xlated = out[out.index("xlated"):out.index("jited")]
    # 11 prologue slots, 6 program slots, and main's one exit grown to 4 slots
    assert xlated.splitlines()[0].startswith(f"xlated ({11 + 6 - 1 + 4} slots")
    assert "bpf_ktime_get_ns" in xlated
    target = xlated.split("call local ")[1].split()[0]           # the callee's label...
    assert f"{target}:\n" in xlated and "ldxb %r0, [%r1]" in xlated.split(f"{target}:\n")[1]
    jited = out[out.index("jited"):]
    assert "function 0 at 0x" in jited and "function 1 at 0x" in jited
    from jitbpf.targets import HOST_ARCH
    assert ("push" if HOST_ARCH == "x86_64" else "stp") in jited  # a real native prologue


# --------------------------------------------------------------------------- object maps and contexts

def _object(text: str, prog_type: str = "raw"):
    from jitbpf.asm import assemble
    obj = jitbpf.Object()
    obj.add_program("prog", assemble(text), prog_type=prog_type)
    return obj


def _map(obj, name: str, *args, **kw):
    from jitbpf.runtime import maps
    m = maps.create(obj.runtime, name, *args, **kw)
    obj.map_list.append(m)
    return m


@needs_kernel
def test_hash_and_array_maps_follow_the_runtime():
    obj = _object("""
        stw [%r10-4], 1
        lddw %r1, map_fd(0)
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, miss
        ldxdw %r3, [%r0]
        add %r3, 5
        stxdw [%r0], %r3
        lddw %r1, map_value(1, 8)
        ldxdw %r4, [%r1]
        add %r4, %r3
        stxdw [%r1], %r4
        lddw %r0, 0x1122334455667788
        exit
    miss:
        mov %r0, 99
        exit
    """)
    h = _map(obj, "h", "hash", 4, 8, 16)
    a = _map(obj, "a", "array", 4, 16, 1)
    h.update(1, 10)
    fn = obj.program().compile("kernel")
    assert fn.run(check=True).r0 == 0x1122334455667788     # interp agrees on r0 and both maps
    assert h.items() == [(u32(1), (15).to_bytes(8, "little"))]
    assert a.lookup(0) == bytes(8) + (15).to_bytes(8, "little")
    fn.run()                                                 # the kernel starts from our state
    assert h.lookup(1) == (20).to_bytes(8, "little")
    assert a.lookup(0)[8:] == (35).to_bytes(8, "little")
    h.delete(1)                                              # and sees our changes
    assert fn.run().r0 == 99 and h.items() == []


@needs_kernel
def test_percpu_array_runs_on_the_runtime_cpu():
    obj = _object("""
        call 8
        mov %r6, %r0
        stw [%r10-4], 0
        lddw %r1, map_fd(0)
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        ldxw %r1, [%r0]
        add %r1, 7
        stxw [%r0], %r1
    out:
        mov %r0, %r6
        exit
    """)
    m = _map(obj, "pc", "percpu_array", 4, 4, 1)
    fn = obj.program().compile("kernel")
    counts = [0] * obj.runtime.num_cpus
    for cpu in sorted(os.sched_getaffinity(0) & {0, 1}):
        obj.runtime.cpu = cpu
        assert fn.run(check=True).r0 == cpu
        counts[cpu] += 7
        assert m.lookup_percpu(0) == [u32(n) for n in counts]
    obj.runtime.cpu = obj.runtime.num_cpus + 64                 # a CPU this machine does not have
    with pytest.raises(jitbpf.BpfEngineError, match="cannot run on CPU"):
        fn.run()


@needs_kernel
def test_queue_drained_and_refilled():
    obj = _object("""
        lddw %r1, map_fd(0)
        mov %r2, %r10
        add %r2, -8
        call 88
        ldxdw %r6, [%r10-8]
        add %r6, 100
        stxdw [%r10-8], %r6
        lddw %r1, map_fd(0)
        mov %r2, %r10
        add %r2, -8
        mov %r3, 0
        call 87
        mov %r0, %r6
        exit
    """)
    q = _map(obj, "q", "queue", 0, 8, 4)
    for v in (1, 2, 3):
        q.push(v)
    assert obj.program().compile("kernel").run(check=True).r0 == 101
    assert [int.from_bytes(v, "little") for _, v in q.items()] == [2, 3, 101]


@needs_kernel
def test_ringbuf_records_come_back():
    obj = _object("""
        lddw %r6, 0xabcdef0123
        stxdw [%r10-8], %r6
        lddw %r1, map_fd(0)
        mov %r2, %r10
        add %r2, -8
        mov %r3, 8
        mov %r4, 0
        call 130
        exit
    """)
    rb = _map(obj, "rb", "ringbuf", 0, 0, 4096)
    assert obj.program().compile("kernel").run(check=True).r0 == 0
    assert rb.drain() == [(0xABCDEF0123).to_bytes(8, "little")]


@needs_kernel
def test_tail_call_into_a_prog_array_gives_the_callee_r0():
    from jitbpf.asm import assemble
    obj = _object("""
        lddw %r2, map_fd(0)
        mov %r3, 0
        call 12
        mov %r0, 1
        exit
    """, prog_type="xdp")
    callee = obj.add_program("callee", assemble("lddw %r0, 0x500000002\nexit"), prog_type="xdp")
    pa = _map(obj, "jumps", "prog_array", 4, 4, 2)
    pa.update(0, callee)
    fn = obj.program("prog").compile("kernel")
    assert fn.run(packet=bytes(64), check=True).r0 == 0x500000002
    pa.delete(0)
    assert fn.run(packet=bytes(64), check=True).r0 == 1


@needs_kernel
def test_xdp_packet_and_adjust_head():
    obj = _object("""
        mov %r6, %r1
        ldxw %r2, [%r6+0]
        ldxw %r3, [%r6+4]
        mov %r4, %r2
        add %r4, 16
        jgt %r4, %r3, drop
        ldxb %r5, [%r2+0]
        add %r5, 1
        stxb [%r2+2], %r5
        mov %r1, %r6
        mov %r2, 2
        call 44
        mov %r0, 2
        exit
    drop:
        mov %r0, 1
        exit
    """, prog_type="xdp")
    packet = bytes(range(40, 80))
    res = obj.program().compile("kernel").run(packet=packet, check=True)
    assert res.r0 == 2                                      # XDP_PASS
    assert res.memory == bytes([41]) + packet[3:]          # byte 2 = 40 + 1, after 2 bytes dropped


@needs_kernel
def test_tc_program_sees_skb_fields_and_sets_mark():
    obj = _object("""
        ldxw %r2, [%r1+0]
        stxw [%r1+8], %r2
        ldxw %r3, [%r1+76]
        ldxw %r4, [%r1+80]
        mov %r0, %r3
        add %r0, 14
        jgt %r0, %r4, out
        ldxb %r0, [%r3+13]
        lsh %r0, 32
        add %r0, %r2
    out:
        exit
    """, prog_type="tc")
    packet = bytes(12) + b"\x08\x00" + bytes(50)
    fn = obj.program().compile("kernel")
    res = fn.run(packet=packet, check=True)
    assert res.r0 == (0x00 << 32) + len(packet)             # ethertype's low byte, skb->len
    packet = bytes(12) + b"\x86\xdd" + bytes(40)
    assert fn.run(packet=packet, check=True).r0 == (0xDD << 32) + len(packet)
    with pytest.raises(jitbpf.BpfEngineError, match="IPv6 packet of at least 54 bytes"):
        fn.run(packet=packet[:40])                          # the kernel refuses a cut IPv6 header


@needs_kernel
def test_syscall_program_writes_its_context():
    obj = _object("""
        ldxdw %r2, [%r1+0]
        ldxdw %r3, [%r1+8]
        add %r2, %r3
        stxdw [%r1+16], %r2
        mov %r0, %r2
        exit
    """, prog_type="syscall")
    ctx = struct.pack("<QQQ", 5, 1 << 40, 0)
    res = obj.program().compile("kernel").run(ctx=ctx, check=True)
    assert res.r0 == 5 + (1 << 40)
    assert res.memory == struct.pack("<QQQ", 5, 1 << 40, 5 + (1 << 40))


def test_programs_the_kernel_cannot_run_are_refused():
    if not sc.kernel_available():
        pytest.skip(str(sc.availability()))
    obj = _object("mov %r0, 0\nexit", prog_type="tracing")
    with pytest.raises(jitbpf.BpfEngineError, match="cannot test-run tracing programs"):
        obj.program().compile("kernel")


# --------------------------------------------------------------------------- clang objects

CLANG = "clang-19"
OBJECT_SOURCE = r"""
typedef unsigned char __u8;
typedef unsigned int __u32;
typedef unsigned long long __u64;
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
struct xdp_md { __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
struct __sk_buff { __u32 len, pkt_type, mark; };
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_loop)(__u32 n, void *callback, void *ctx, __u64 flags) = (void *)181;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;

struct { __uint(type, 1); __uint(max_entries, 64); __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
struct { __uint(type, 6); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64); } pcpu SEC(".maps");
struct { __uint(type, 27); __uint(max_entries, 4096); } events SEC(".maps");

const volatile __u32 factor = 3;
__u64 total = 7;
__u64 last_len;

static __attribute__((noinline)) __u64 mix(__u64 x) { return x * factor + 1; }
static long add_cb(__u32 i, void *ctx) { *(__u64 *)ctx += i; return 0; }

SEC("xdp") int count_packets(struct xdp_md *ctx)
{
    __u8 *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 14 > end)
        return 0;
    __u32 key = data[12], z = 0;
    __u64 one = 1, acc = 0, *v = bpf_map_lookup_elem(&counts, &key);
    if (v) __sync_fetch_and_add(v, 1);
    else bpf_map_update_elem(&counts, &key, &one, 0);
    __u64 *p = bpf_map_lookup_elem(&pcpu, &z);
    if (p) *p += 2;
    bpf_loop(5, add_cb, &acc, 0);
    total = mix(total) + acc;
    last_len = end - data;
    data[0] = (__u8)total;
    __u64 *e = bpf_ringbuf_reserve(&events, 8, 0);
    if (e) { *e = total; bpf_ringbuf_submit(e, 0); }
    return key == 8 ? 2 : 1;
}

SEC("tc") int tc_mark(struct __sk_buff *skb) { skb->mark = skb->len * factor; return skb->len > 60; }

SEC("kprobe/do_nanosleep") int kp(unsigned long *regs) { total += regs[14]; return 0; }

SEC("syscall") int sys(__u64 *args) { args[1] = args[0] * factor; return (int)args[0]; }

char _license[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def clang_object(tmp_path_factory):
    import shutil
    import subprocess
    if shutil.which(CLANG) is None:
        pytest.skip(f"{CLANG} not installed")
    d = tmp_path_factory.mktemp("kobj")
    (d / "prog.c").write_text(OBJECT_SOURCE)
    subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-c", str(d / "prog.c"), "-o", str(d / "prog.o")],
                   check=True, capture_output=True)
    return d / "prog.o"


@needs_kernel
def test_clang_object_runs_in_the_kernel_as_in_interp(clang_object):
    """Maps, percpu, ring buffer, bpf_loop callback, bpf-to-bpf call, .rodata/.data/.bss:
    every checked run compares r0, the packet and every map with interp."""
    obj = jitbpf.load(str(clang_object))
    packet = bytes(12) + b"\x08\x00" + bytes(50)
    fn = obj.program("count_packets").compile("kernel")
    total = 7
    for n in (1, 2):
        res = fn.run(packet=packet, check=True)
        total = total * 3 + 1 + (0 + 1 + 2 + 3 + 4)
        assert res.r0 == 2 and res.memory[0] == total & 0xFF
        assert obj.maps["counts"].lookup(8) == n.to_bytes(8, "little")
        assert obj.maps[".data"].lookup(0) == total.to_bytes(8, "little")
        assert obj.maps[".bss"].lookup(0) == len(packet).to_bytes(8, "little")
        assert obj.maps["pcpu"].lookup_percpu(0)[obj.runtime.cpu] == (2 * n).to_bytes(8, "little")
    assert obj.maps["events"].drain() == [(7 * 3 + 11).to_bytes(8, "little"), total.to_bytes(8, "little")]
    assert obj.program("tc_mark").compile("kernel").run(packet=packet, check=True).r0 == 1
    regs = bytes(112) + struct.pack("<Q", 1000) + bytes(56)
    assert obj.program("kp").compile("kernel").run(ctx=regs, check=True).r0 == 0
    assert obj.maps[".data"].lookup(0) == (total + 1000).to_bytes(8, "little")
    res = obj.program("sys").compile("kernel").run(ctx=struct.pack("<QQ", 14, 0), check=True)
    assert res.r0 == 14 and res.memory == struct.pack("<QQ", 14, 42)


# --------------------------------------------------------------------------- the ELF fixtures

#: Fixtures the kernel engine cannot run (or not like interp), with the error that says so.
KERNEL_FIXTURE_GAPS: dict[str, tuple[type, str | None]] = {
    "bloom": (jitbpf.BpfEngineError, "bloom_filter.*another hash"),
    "kfunc": (jitbpf.BpfEngineError, r"kfunc calls \(jitbpf_mix\)"),
    "tail_calls": (jitbpf.BpfEngineError, "tail calls need programs that run on their own context"),
    # the verifier gives up on the long loop (6.18: "The sequence of 8193 jumps is too
    # complex"); the wording differs between kernel versions, the rejection does not
    "loops": (jitbpf.BpfVerifierError, None),
    # comm, clocks and random numbers differ by nature (probe_read_kernel of address 16
    # is -ERANGE on both sides now)
    "helpers_misc": (jitbpf.BpfMismatchError, "memory after the run differs"),
    # bpf_printk lines go to the kernel's trace buffer, not Result.trace (which stays empty)
    "globals": (AssertionError, r"assert \[\] == \['index"),
}
if 1 not in os.sched_getaffinity(0):                 # the case runs on the runtime's CPU 1
    KERNEL_FIXTURE_GAPS["percpu"] = (jitbpf.BpfEngineError, "cannot run on CPU 1")


@needs_kernel
@pytest.mark.parametrize("name", sorted(FIXTURE_CASES))
def test_fixture_on_kernel(name):
    """Each fixture's own case (check=True against interp, then values computed in
    Python) passes on the kernel, or fails exactly as listed above."""
    case = FIXTURE_CASES[name]
    if name not in KERNEL_FIXTURE_GAPS:
        case("kernel")
        return
    error, pattern = KERNEL_FIXTURE_GAPS[name]
    with pytest.raises(error, match=pattern):
        case("kernel")


def test_fixture_gaps_name_real_fixtures():
    assert set(KERNEL_FIXTURE_GAPS) <= set(FIXTURE_CASES)
