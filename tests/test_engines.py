"""Run-time semantics every engine must share with the interpreter, tested once and run on
every engine this build has (the interpreter included, as the baseline): bpf-to-bpf
calls and frames, helpers and what they may do (keep r1-r5, end the program, fail,
call back into BPF), callx, kfuncs, LD_ABS/LD_IND, unaligned memory, compile-time
errors. Backend-specific behaviour (options, listings, encodings) lives in
test_llvm.py and test_direct.py. Expected values are worked out by hand in each test.

Most programs here break the verifier's rules on purpose (recursion, reading r1-r5 after
a call, unknown helpers): what an engine does with them is what ``verify=False`` runs,
so every compile here passes it."""

from __future__ import annotations

import pytest

import jitbpf
from jitbpf.engines import available_engines
from jitbpf.errors import BpfEngineError, BpfRuntimeError
from jitbpf.runtime import HostBuffer, Region, context

import conftest

ENGINES = [e for e in available_engines() if e != "kernel"]
COMPILED = [e for e in ENGINES if e != "interp"]


def build(text, engine, setup=None, **options):
    return conftest.build(text, engine, setup, verify=False, **options)


def run_asm(text, mem=None, engine="interp", **options):
    return conftest.run_asm(text, mem, engine, verify=False, **options)


def _twice(rt, a, *_):
    return 2 * a


# ----------------------------------------------------------------------------- calls and frames

CALLS = """
    mov %r6, 6
    mov %r7, 7
    mov %r1, 3
    stdw [%r10-8], 100
    call local f
    ldxdw %r1, [%r10-8]       # the callee has its own frame
    add %r0, %r1
    add %r0, %r6
    add %r0, %r7
    exit
f:
    mov %r6, 1000             # callee-saved registers come back unchanged
    mov %r7, 1000
    stdw [%r10-8], 5
    mov %r0, %r1
    exit
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_local_calls_preserve_r6_r9_and_frames(engine):
    assert run_asm(CALLS, engine=engine).r0 == 3 + 100 + 6 + 7


@pytest.mark.parametrize("engine", ENGINES)
def test_bpf_to_bpf_calls_share_the_register_file(engine):
    """The callee reads the caller's r6 and r0 before writing them; the caller reads the
    callee's r1 and r5 after the call (one register file in the interpreter):
    r0 = (3 + 7) + 100 + 1000, and r6 is preserved (7)."""
    text = """mov %r6, 7
mov %r0, 3
call local f
add %r0, %r1
add %r0, %r5
add %r0, %r6
exit
f:
add %r0, %r6
mov %r6, 0
mov %r1, 100
mov %r5, 1000
exit"""
    assert build(text, engine).run().r0 == 10 + 100 + 1000 + 7
    callee_sets_r1 = "mov %r1, 1\ncall local f\nmov %r0, %r1\nexit\nf:\nmov %r1, 41\nmov %r0, 0\nexit"
    assert run_asm(callee_sets_r1, engine=engine).r0 == 41


@pytest.mark.parametrize("engine", ENGINES)
def test_each_call_gets_a_fresh_stack_frame(engine):
    """f stores its argument at r10-8 and calls itself; each frame keeps its own slot:
    f(3) = 3 + f(2) = 3 + 2 + f(1) = 6 (f(0) = 0)."""
    text = """mov %r1, 3
call local f
exit
f:
mov %r0, 0
jeq %r1, 0, out
stxdw [%r10-8], %r1
sub %r1, 1
call local f
ldxdw %r1, [%r10-8]
add %r0, %r1
out:
exit"""
    assert build(text, engine).run().r0 == 6


@pytest.mark.parametrize("engine", ENGINES)
def test_call_depth_limit(engine):
    recurse = "mov %r1, {n}\ncall local f\nexit\nf:\nmov %r0, %r1\njeq %r1, 0, out\nsub %r1, 1\ncall local f\nout:\nexit"
    assert build(recurse.format(n=6), engine).run().r0 == 0            # 8 frames: allowed
    with pytest.raises(BpfRuntimeError, match="call depth exceeds 8 frames") as err:
        build(recurse.format(n=7), engine).run()                       # a 9th frame
    # the call at slot 6; the direct JITs check in the callee and name its first slot (README)
    assert err.value.pc == (3 if engine.startswith("direct") else 6)
    fn = build(recurse.format(n=6), engine)                            # a fresh run starts at depth 1
    assert fn.run().r0 == 0 and fn.run().r0 == 0
    # main + 7 nested calls = 8 frames, each with its own 512 bytes at r10 - 512 k
    deep = """
        mov %r0, 0
        mov %r1, 7
        call local f
        exit
    f:
        stxdw [%r10-512], %r1
        add %r0, 1
        sub %r1, 1
        jeq %r1, 0, +1
        call local f
        ldxdw %r2, [%r10-512]
        add %r0, %r2
        exit
    """
    assert run_asm(deep, engine=engine).r0 == 7 + sum(range(1, 8))


@pytest.mark.parametrize("engine", ENGINES)
def test_jumping_or_falling_into_another_function_continues_there(engine):
    """Code a function jumps or falls into runs in the current frame, and its exit
    returns from that frame: f sets r0 = 1 and jumps into g (r0 += 10, exit back to
    main); main adds g's own result (r0 = 10 + 10 when called with r0 = 10)."""
    text = """call local f
mov %r6, %r0
call local g
add %r0, %r6
exit
f:
mov %r0, 1
ja g
g:
add %r0, 10
exit"""
    assert build(text, engine).run().r0 == (1 + 10) + (11 + 10)
    fall = "call local f\nexit\nf:\nmov %r0, 1\ng:\nadd %r0, 2\nexit\nh:\ncall local g\nexit"
    assert build(fall, engine).run().r0 == 3
    text = "mov %r0, 1\ncall local f\nadd %r0, 100\nexit\nf:\njeq %r0, 1, g\nexit\ng:\nmov %r0, 5\nexit"
    assert run_asm(text, engine=engine).r0 == 105
    prog = jitbpf.assemble("mov %r0, 2\ncall local f\nexit\nf:\njeq %r0, 3, +0\ncall local g\ng:\nadd %r0, 1\n"
                           "exit").program()
    assert prog.compile(engine, verify=False).run().r0 == 4          # f: r0 2 -> g via call (3) -> g again (4)


# ----------------------------------------------------------------------------- helpers, callx, kfuncs

@pytest.mark.parametrize("engine", ENGINES)
def test_helpers_keep_r1_to_r5(engine):
    fn = build("mov %r1, 21\nmov %r5, 4\ncall 1000\nadd %r0, %r1\nadd %r0, %r5\nexit", engine,
               lambda rt: rt.helpers.register(1000, "twice", _twice))
    assert fn.run().r0 == 42 + 21 + 4


@pytest.mark.parametrize("engine", ENGINES)
def test_callx_reaches_helpers_and_functions(engine):
    # twice(21) = 42 through callx on a helper id, then f(5) = 6 through a function pointer.
    text = """mov %r1, 21
mov %r2, 1000
call %r2
mov %r6, %r0
lddw %r3, func(f)
mov %r1, 5
call %r3
add %r0, %r6
exit
f:
mov %r0, %r1
add %r0, 1
mov %r6, 0
exit"""
    assert build(text, engine, lambda rt: rt.helpers.register(1000, "twice", _twice)).run().r0 == 48
    with pytest.raises(BpfRuntimeError, match="callx to 0x3e7: neither a helper id nor a function") as err:
        build("mov %r2, 999\ncall %r2\nexit", engine).run()
    assert err.value.pc == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_callbacks_through_rt_invoke(engine):
    """A Python helper calls a BPF function pointer n times: sum of 10 * i for i < 5; and
    one that calls it twice, with 5 and 6."""
    def each(rt, fn, n, *_):
        return sum(rt.invoke(fn, i) for i in range(n))
    text = "lddw %r1, func(cb)\nmov %r2, 5\ncall {id}\nexit\ncb:\nmov %r0, %r1\nmul %r0, 10\nexit"
    assert build(text.format(id=1001), engine, lambda rt: rt.helpers.register(1001, "each", each)).run().r0 == 100
    twice = build(text.format(id=2000), engine, lambda rt: rt.helpers.register(
        2000, "call_twice", lambda rt, fn, arg, *_: rt.invoke(fn, arg) + rt.invoke(fn, arg + 1)))
    assert twice.run().r0 == 50 + 60


@pytest.mark.parametrize("engine", ENGINES)
def test_helper_ends_the_program_from_a_nested_frame(engine):
    text = """
        mov %r6, %r1
        call local f
        stb [%r6], 1          # never runs
        mov %r0, 99
        exit
    f:
        call 3000
        stb [%r6+1], 1        # never runs
        exit
    """
    fn = build(text, engine, lambda rt: rt.helpers.register(3000, "end_now", lambda rt, *_: rt.end_program(1234) or 0))
    for _ in range(2):                               # the unwind state is cleared between runs
        result = fn.run(bytes(2))
        assert (result.r0, result.memory) == (1234, bytes(2))
    assert not fn.program.runtime.unwinding


@pytest.mark.parametrize("engine", ENGINES)
def test_helper_errors_reach_the_caller(engine):
    def broken(rt, *_):
        raise BpfRuntimeError("helper exploded")
    fn = build("call local f\nexit\nf:\ncall 3000\nexit", engine, lambda rt: rt.helpers.register(3000, "broken", broken))
    with pytest.raises(BpfRuntimeError, match="helper exploded"):
        fn.run()
    assert not fn.program.runtime.unwinding


@pytest.mark.parametrize("engine", ENGINES)
def test_kfunc_calls_by_name(engine):
    obj = jitbpf.assemble("mov %r1, 6\nmov %r2, 7\ncall runtime 77\nexit")
    prog = obj.program()
    prog.kfuncs[2] = "my_kfunc"
    obj.runtime.helpers.register(5000, "my_kfunc", lambda rt, a, b, *_: a * b)
    assert prog.compile(engine, verify=False).run().r0 == 42


@pytest.mark.parametrize("engine", ENGINES)
def test_compile_errors_name_the_instruction(engine):
    with pytest.raises(BpfEngineError, match="unknown helper 4242") as err:
        build("mov %r0, 0\ncall 4242\nexit", engine)
    assert err.value.pc == 1
    with pytest.raises(BpfEngineError, match="kfunc call to BTF id 77 has no name") as err:
        build("call runtime 77\nexit", engine)
    assert err.value.pc == 0
    with pytest.raises(BpfEngineError, match="lddw refers to map 3, but the object has 0") as err:
        build("mov %r0, 0\nlddw %r1, map_value(3, 16)\nexit", engine)
    assert err.value.pc == 1


# ----------------------------------------------------------------------------- memory and packets

@pytest.mark.parametrize("engine", ENGINES)
def test_stack_is_zeroed_and_escapes_to_helpers(engine):
    """The helper reads the 8 bytes at r10-16 (77); r10-24 was never written: 0."""
    text = "mov %r1, %r10\nsub %r1, 16\nstdw [%r10-16], 77\ncall 1004\nldxdw %r2, [%r10-24]\nadd %r0, %r2\nexit"
    fn = build(text, engine, lambda rt: rt.helpers.register(1004, "peek", lambda rt, p, *_: rt.memory.load(p, 8)))
    assert fn.run().r0 == 77


@pytest.mark.parametrize("engine", ENGINES)
def test_unaligned_loads_and_stores(engine):
    mem = bytes(range(1, 18))
    res = build("ldxdw %r0, [%r1+1]\nstxdw [%r1+9], %r0\nexit", engine).run(mem, check=engine != "interp")
    assert res.r0 == int.from_bytes(mem[1:9], "little")
    assert res.memory[9:17] == mem[1:9]


@pytest.mark.parametrize("engine", ENGINES)
def test_ld_abs_and_ld_ind(engine):
    """Big-endian loads from the socket buffer registered for r6, r1-r5 unchanged; out of
    bounds (past the end, or a negative offset) ends the program with r0 = 0."""
    packet, ctx = HostBuffer(16, bytes(range(0x10, 0x20))), HostBuffer(8)

    def run(text):
        fn = build(text, engine)
        rt = fn.program.runtime
        rt.skb_packets[ctx.address] = (packet.address, 16)
        with rt.mapped(Region.of("packet", packet), Region.of("ctx", ctx)):
            return fn(ctx.address)
    # ldabsh 2 = 0x1213; ldindw r7 + 4 with r7 = 8 -> bytes 12..15 = 0x1c1d1e1f; r1 unchanged.
    assert run("mov %r6, %r1\nldabsh 2\nmov %r8, %r0\nmov %r7, 8\nldindw %r7, 4\nadd %r0, %r8\n"
               "sub %r1, %r6\nadd %r0, %r1\nexit") == 0x1213 + 0x1C1D1E1F
    assert run("mov %r6, %r1\nmov %r0, 9\nldabsw 13\nmov %r0, 7\nexit") == 0
    assert run("mov %r6, %r1\nmov %r7, -1\nldindb %r7, 0\nmov %r0, 7\nexit") == 0
    mem = context.raw_memory(bytes([1, 2, 3, 4, 5, 6, 7, 8]))
    fn = build("mov %r6, %r1\nldabsh 1\nmov %r7, %r0\nmov %r2, 2\nldindw %r2, 1\nadd %r0, %r7\nadd %r0, %r2\nexit",
               engine)
    fn.program.runtime.skb_packets[mem.args[0]] = (mem.args[0], 8)
    assert fn.invoke(mem) == 0x0203 + 0x04050607 + 2
    with pytest.raises(BpfRuntimeError, match="socket-buffer"):
        run_asm("ldabsb 0\nexit", engine=engine)


# ----------------------------------------------------------------------------- compiled-engine options

@pytest.mark.parametrize("engine", ENGINES)
def test_run_budget(engine):
    """One definition on every engine (jitbpf.passes.budget): a tick per function entry
    and per arrival at a loop head; the error names the loop head."""
    with pytest.raises(BpfRuntimeError, match=r"run budget of 100 exceeded") as err:
        run_asm("mov %r0, 0\nja -1\nexit", engine=engine, budget=100)
    assert err.value.pc == 1
    loop = "mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 10, loop\nexit"     # 1 entry + 10 arrivals at loop
    fn = jitbpf.assemble(loop).program().compile(engine, budget=11, verify=False)
    assert fn.run().r0 == 10 and fn.run().r0 == 10                       # the budget is per run
    with pytest.raises(BpfRuntimeError, match="budget of 10 exceeded") as err:
        run_asm(loop, engine=engine, budget=10)
    assert err.value.pc == 1
    calls = ("mov %r6, 0\nloop:\ncall local f\nadd %r6, 1\njlt %r6, 5, loop\nmov %r0, %r6\nexit\n"
             "f:\nmov %r0, 0\nexit")                                     # 1 + 5 arrivals + 5 calls
    assert run_asm(calls, engine=engine, budget=11).r0 == 5
    with pytest.raises(BpfRuntimeError, match="budget of 10 exceeded") as err:
        run_asm(calls, engine=engine, budget=10)
    assert err.value.pc == 6                                             # f's entry
