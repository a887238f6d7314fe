"""The linker and both executors on hand-written LLVM IR (independent of the BPF backends)."""

from __future__ import annotations

import llvmlite.binding as llvm
import pytest

import jitbpf
from jitbpf.backends import abi
from jitbpf.backends.exec.emulated import EmulatedCode
from jitbpf.backends.link import Section, Reloc, link, link_elf
from jitbpf.backends.exec.native import NativeCode
from jitbpf.targets import HOST_ARCH
from jitbpf.runtime import HostBuffer, Region, Runtime

TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "arm64": "aarch64-unknown-linux-gnu"}

# entry(r1, r2, r3, ..., rs): calls helper 1000 (r1 + r2) then a local function, reads a
# constant table through r3 & 3, dispatches through a switch (a jump table), and
# returns early when the run state's unwind cell (its first word) is set after the call.
IR = """
declare i64 @bpf_add(i64, i64, i64, i64, i64, ptr)
@table = internal constant [4 x i64] [i64 100, i64 200, i64 300, i64 400]
define internal i64 @twice(i64 %a) noinline {
  %r = shl i64 %a, 1
  ret i64 %r
}
define i64 @bpf_entry(i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 %r5, ptr %rs) {
entry:
  %h = call i64 @bpf_add(i64 %r1, i64 %r2, i64 0, i64 0, i64 0, ptr %rs)
  %u = load volatile i64, ptr %rs
  %stop = icmp ne i64 %u, 0
  br i1 %stop, label %out, label %go
out:
  ret i64 0
go:
  %t = call i64 @twice(i64 %h)
  %i = and i64 %r3, 3
  %p = getelementptr [4 x i64], ptr @table, i64 0, i64 %i
  %v = load i64, ptr %p
  %s = add i64 %t, %v
  switch i64 %r4, label %d [ i64 0, label %a  i64 1, label %b  i64 2, label %c  i64 3, label %e ]
a: ret i64 %s
b: %s1 = add i64 %s, 1
   ret i64 %s1
c: %s2 = add i64 %s, 2
   ret i64 %s2
e: %s3 = add i64 %s, 3
   ret i64 %s3
d: ret i64 7
}
"""


def compile_ir(arch: str, ir: str = IR) -> bytes:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    module = llvm.parse_assembly(ir)
    module.triple = TRIPLES[arch]
    tm = llvm.Target.from_triple(TRIPLES[arch]).create_target_machine(opt=2, reloc="pic", codemodel="small")
    return tm.emit_object(module)


def runtime_with_add() -> Runtime:
    rt = Runtime()
    rt.helpers.register(1000, "add", lambda rt, a, b, *_: a + b)
    return rt


EXECUTORS = [("x86_64", EmulatedCode), ("arm64", EmulatedCode)]
if HOST_ARCH in TRIPLES:
    EXECUTORS.append((HOST_ARCH, NativeCode))


@pytest.mark.parametrize("arch,executor", EXECUTORS, ids=lambda x: getattr(x, "__name__", x))
def test_linked_object_runs(arch, executor):
    code = executor(link_elf(compile_ir(arch)), runtime_with_add())
    for r4, extra in ((0, 0), (1, 1), (2, 2), (3, 3)):
        assert code(5, 6, 2, r4) == 2 * (5 + 6) + 300 + extra
    assert code(1, 1, 7, 9) == 7


@pytest.mark.parametrize("arch,executor", EXECUTORS, ids=lambda x: getattr(x, "__name__", x))
def test_helper_errors_unwind_and_reraise(arch, executor):
    rt = Runtime()

    def broken(rt, *args):
        raise jitbpf.BpfRuntimeError("helper exploded")
    rt.helpers.register(1000, "add", broken)
    code = executor(link_elf(compile_ir(arch)), rt)
    with pytest.raises(jitbpf.BpfRuntimeError, match="helper exploded"):
        code(1, 2, 3, 0)
    assert not rt.unwinding


@pytest.mark.parametrize("arch,executor", EXECUTORS, ids=lambda x: getattr(x, "__name__", x))
def test_helper_can_end_program(arch, executor):
    rt = Runtime()
    rt.helpers.register(1000, "add", lambda rt, *a: rt.end_program(77) or 0)
    assert executor(link_elf(compile_ir(arch)), rt)(1, 2, 3, 0) == 77


def test_unknown_helper_symbol_is_a_clear_error():
    with pytest.raises(jitbpf.BpfEngineError, match="neither a helper nor a kfunc"):
        EmulatedCode(link_elf(compile_ir("x86_64")), Runtime())


MEMORY_IR = """
define i64 @bpf_entry(i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 %r5, ptr %rs) {
  %p = inttoptr i64 %r1 to ptr
  %v = load i64, ptr %p, align 1
  %q = getelementptr i8, ptr %p, i64 8
  store i64 %v, ptr %q, align 1
  ret i64 %v
}
"""


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_emulator_shares_host_memory_and_reports_faults(arch):
    rt = Runtime()
    code = EmulatedCode(link_elf(compile_ir(arch, MEMORY_IR)), rt)
    buf = HostBuffer(16, (0x1122334455667788).to_bytes(8, "little"))
    with rt.mapped(Region.of("mem", buf)):
        assert code(buf.address) == 0x1122334455667788
    assert buf.bytes()[8:] == buf.bytes()[:8]
    with pytest.raises(jitbpf.BpfRuntimeError, match="unmapped memory at 0x10"):
        code(0x10)
    ro = HostBuffer(16)
    with rt.mapped(Region.of("ro", ro, writable=False)):
        with pytest.raises(jitbpf.BpfRuntimeError, match=f"write to read-only memory at {ro.address + 8:#x}"):
            code(ro.address)


def test_link_stubs_reach_far_helpers_and_symbols():
    """A hand-built x86_64 image: call rel32 to an external goes through a stub."""
    text = bytes.fromhex("e800000000") + bytes.fromhex("c3")     # call ext; ret
    image = link("x86_64", [Section(".text", text, executable=True)], {abi.ENTRY: (".text", 0)},
                 [Reloc(".text", 1, "plt32", "bpf_add", -4)])
    assert image.externals == ["bpf_add"]
    blob = image.load(0x1000, lambda name: 0x7F00_0000_0000)
    stub = image.symbols["__stub$bpf_add"]
    rel = int.from_bytes(blob[1:5], "little", signed=True)
    assert 0x1000 + 5 + rel == 0x1000 + stub
    assert int.from_bytes(blob[stub + 8:stub + 16], "little") == 0x7F00_0000_0000


@pytest.mark.skipif(not __import__("jitbpf.backends.exec.faultguard").backends.exec.faultguard.available(),
                    reason="fault guard exists for x86_64 Linux hosts only")
@pytest.mark.parametrize("address", [0x10, 0xFFFF_8000_0000_0000, 0x7FFF_FFFF_F000])
def test_native_faults_become_errors(address):
    rt = Runtime()
    code = NativeCode(link_elf(compile_ir(HOST_ARCH, MEMORY_IR)), rt)
    with pytest.raises(jitbpf.BpfRuntimeError, match="native code faulted"):
        code(address)
    buf = HostBuffer(16, (42).to_bytes(8, "little"))      # and the executor still works afterwards
    with rt.mapped(Region.of("mem", buf)):
        assert code(buf.address) == 42


@pytest.mark.skipif(not __import__("jitbpf.backends.exec.faultguard").backends.exec.faultguard.available(),
                    reason="fault guard exists for x86_64 Linux hosts only")
def test_fault_inside_callback_propagates():
    """A fault in a BPF callback run from a helper surfaces as the run's error."""
    rt = Runtime()
    inner = NativeCode(link_elf(compile_ir(HOST_ARCH, MEMORY_IR)), rt)
    rt.helpers.register(1000, "add", lambda rt, a, b, *_: inner(0x20))
    code = NativeCode(link_elf(compile_ir(HOST_ARCH)), rt)
    with pytest.raises(jitbpf.BpfRuntimeError, match="faulted"):
        code(1, 2, 0, 0)
    assert code.guard is not None and not rt.unwinding


@pytest.mark.skipif(not __import__("jitbpf.backends.exec.faultguard").backends.exec.faultguard.available(),
                    reason="fault guard exists for x86_64 Linux hosts only")
def test_native_fault_names_the_bpf_instruction():
    obj = jitbpf.assemble("mov %r0, 1\nlddw %r1, 0x10\nldxdw %r0, [%r1]\nexit")
    with pytest.raises(jitbpf.BpfRuntimeError) as err:
        obj.program().compile("direct", bounds_check=False, verify=False).run()     # unchecked: the guard catches it
    assert err.value.pc == 3 and "accessing 0x10" in str(err.value)
