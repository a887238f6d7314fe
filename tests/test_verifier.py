"""The static verifier: every shipped program is accepted, every corpus program is
rejected with its expected message, the facts and the log say what they should, the
CLI follows issue 12, and pruning is sound (precision and liveness)."""

from __future__ import annotations

import json

import pytest

import jitbpf
from jitbpf import verifier
from jitbpf.kernel.known import CONFORMANCE_REJECTIONS
from jitbpf.verifier.corpus import load_corpus, outcome

from conftest import CONFORMANCE_NEGATIVE, CONFORMANCE_TESTS, ROOT, cli, conformance_files, needs_conformance

OBJECTS = sorted([*ROOT.glob("tests/fixtures/*.bpf.o"), ROOT / "tests/fixtures/elf/text_only.bpf.o",
                  *ROOT.glob("jitbpf/examples/*.bpf.o"), *ROOT.glob("benchmarks/*.bpf.o"),
                  *ROOT.glob("benchmarks/programs/*.bpf.o"),
                  *(p for p in ROOT.glob("tests/verifier/c/*.bpf.o") if p.name != "rejects.bpf.o")])
# the benchmark programs that take the verifier more than a few seconds (100,000+ instructions)
SLOW = {"switch.bpf.o", "parse.bpf.o", "sieve.bpf.o"}
PROGRAMS = [pytest.param(p, name, marks=[pytest.mark.slow] if p.name in SLOW else [], id=f"{p.name}:{name}")
            for p in OBJECTS for name in jitbpf.load(str(p)).programs]
CORPUS = load_corpus(ROOT / "tests/verifier", CONFORMANCE_NEGATIVE)


def asm(text: str, prog_type: str = "xdp", maps=()) -> jitbpf.Program:
    from jitbpf.runtime import Runtime
    from jitbpf.runtime.maps import create
    rt = Runtime()
    obj = jitbpf.assemble(text, runtime=rt)
    for i, (t, k, v, n) in enumerate(maps):
        obj.add_map(create(rt, f"m{i}", t, k, v, n))
    prog = obj.program()
    prog.prog_type = prog_type
    return prog


# --------------------------------------------------------------------------- acceptance

@pytest.mark.parametrize("path,name", PROGRAMS)
def test_shipped_programs_are_accepted(path, name):
    """Every ELF fixture, example and benchmark program (issue 12), within the budget."""
    prog = jitbpf.load(str(path)).program(name)
    v = verifier.verify(prog)
    assert 0 < v.processed < 1_000_000
    assert v.facts.visited


@needs_conformance()
def test_conformance_verdicts_match_the_kernel_engine():
    """Every conformance program the kernel loads is accepted; the ones it refuses are
    refused with the kernel's own message -- except callx, which Linux lacks and we have."""
    from jitbpf.conformance import load_test
    rejected = {}
    for path in conformance_files(CONFORMANCE_TESTS):
        prog = jitbpf.from_insns(load_test(path).program(), path.stem).program()
        try:
            verifier.verify(prog)
        except jitbpf.BpfVerifierError as e:
            rejected[path.stem] = e.message
    expected = {k: v for k, v in CONFORMANCE_REJECTIONS.items() if k != "callx"}
    assert rejected == expected


# --------------------------------------------------------------------------- the rejection corpus

def test_corpus_covers_the_issue():
    names = [c.name for c in CORPUS]
    assert len([c for c in CORPUS if not c.name.startswith("unused-")]) >= 150
    assert {p.stem for p in CONFORMANCE_NEGATIVE.glob("unused-*.data")} <= set(names)
    prefixes = {n.split("-")[0] for n in names}
    for area in ("struct", "reg", "alu", "ptr", "stack", "ctx", "map", "pkt", "leak", "ret", "helper", "ref",
                 "cb", "call", "ldabs", "atomic"):
        assert area in prefixes
    assert any(c.name.startswith("rejects.") and "lock" in c.name for c in CORPUS)


#: The unbounded loop takes the whole 1,000,000-instruction budget: test_budget_is_enforced.
QUICK = [c for c in CORPUS if c.name != "struct-unbounded-loop"]


@pytest.mark.parametrize("case", QUICK, ids=[c.name for c in QUICK])
def test_corpus_program_is_rejected(case):
    rejected, message, pc = outcome(case)
    assert rejected, f"accepted; expected: {case.expect}"
    assert any(alt.strip() in message for alt in case.expect.split(" | ")), message


@pytest.mark.slow
def test_budget_is_enforced():
    case = next(c for c in CORPUS if c.name == "struct-unbounded-loop")
    rejected, message, _ = outcome(case)
    assert rejected and "BPF program is too large. Processed 1000001 insn" in message


# --------------------------------------------------------------------------- soundness of pruning

JOIN = """
    stw [%r10-4], 0
    mov %r2, %r10
    add %r2, -4
    lddw %r1, map_idx(0)
    call 1
    jeq %r0, 0, out
    ldxw %r1, [%r0+0]
    mov %r7, 0
    jeq %r1, 0, join
    mov %r7, {far}
join:
    mov %r8, 1
    mov %r8, 2
    mov %r2, %r0
    add %r2, %r7
    ldxdw %r0, [%r2+0]
out:
    mov %r0, 0
    exit
"""


def test_precision_keeps_paths_that_differ_in_an_index_apart():
    """The path with r7 = 0 is explored first and reaches the join; the one with r7 = 16
    must not be pruned against it, since r7 decides the access (precision)."""
    maps = [("hash", 4, 16, 4)]
    verifier.verify(asm(JOIN.format(far=8), maps=maps))
    with pytest.raises(jitbpf.BpfVerifierError, match="invalid access to map value, value_size=16 off=16 size=8"):
        verifier.verify(asm(JOIN.format(far=16), maps=maps))


def test_dead_values_do_not_block_pruning():
    """Sixteen diamonds whose sides leave different values in a register nobody reads:
    pruning at each join keeps the work linear, not 2**16 paths."""
    body = "".join(f"ldxw %r2, [%r1+12]\njeq %r2, {i}, +2\nmov %r3, {i}\nja +1\nmov %r3, {i + 100}\n"
                   for i in range(16))
    v = verifier.verify(asm("mov %r6, %r1\n" + body + "mov %r0, 2\nexit\n"))
    assert v.processed < 400


def test_liveness_reaches_back_through_calls():
    """The caller's r6 lives across a call and decides an access after it: the two paths
    that reach the call with different r6 must both be explored."""
    text = """
        ldxw %r6, [%r1+12]
        jeq %r6, 0, +2
        mov %r6, 0
        ja +1
        mov %r6, 16
        call local f
        mov %r1, %r10
        add %r1, -8
        add %r1, %r6
        stdw [%r1+0], 0
        mov %r0, 0
        exit
    f:
        mov %r0, 0
        exit
    """
    with pytest.raises(jitbpf.BpfVerifierError, match="invalid write to stack R1 off=8 size=8"):
        verifier.verify(asm(text))
    verifier.verify(asm(text.replace("mov %r6, 16", "mov %r6, -8")))


def raw(text: str) -> jitbpf.Program:
    return jitbpf.assemble(text).program()        # raw: r1 = memory, r2 = its length


RAW_JOIN = """
    mov %r3, 0
    ldxb %r5, [%r1+0]
    jne %r5, 7, join
    mov %r3, {far}
join:
    mov %r4, 1
    mov %r4, 2
    mov %r6, %r10
    add %r6, %r3
    stb [%r6-8], 1
    mov %r0, 0
    exit
"""


def test_raw_programs_prune_by_what_is_read():
    """Raw programs compare a complete checkpoint only where its exploration read: the
    path with r3 = 100 (outside the stack once added to r10) reaches the join after the
    one with r3 = 0 and must not be pruned, since r3 is read after it; r4, written
    before it is read, does not matter (the dead-value diamonds stay linear)."""
    verifier.verify(raw(RAW_JOIN.format(far=-8)))
    with pytest.raises(jitbpf.BpfVerifierError, match="invalid write to stack R6 off=92 size=1"):
        verifier.verify(raw(RAW_JOIN.format(far=100)))
    body = "".join(f"ldxw %r2, [%r1+12]\njeq %r2, {i}, +2\nmov %r3, {i}\nja +1\nmov %r3, {i + 100}\n"
                   for i in range(16))
    assert verifier.verify(raw(body + "mov %r0, 2\nexit\n")).processed < 400


def test_raw_loops_keep_values_read_after_the_loop():
    """A loop pruned against an iteration still being explored: its checkpoints' marks
    are not final, so r3, set to 100 in some iteration and read after the loop, still
    decides the store there (the kernel's checkpoints of such a path read everything)."""
    text = """
        mov %r3, 0
        mov %r4, 0
    loop:
        jge %r4, 3, out
        ldxb %r5, [%r1+0]
        jne %r5, 7, skip
        mov %r3, {far}
    skip:
        add %r4, 1
        ja loop
    out:
        mov %r6, %r10
        add %r6, %r3
        stb [%r6-8], 1
        mov %r0, 0
        exit
    """
    verifier.verify(raw(text.format(far=0)))
    with pytest.raises(jitbpf.BpfVerifierError, match="invalid write to stack R6 off=92 size=1"):
        verifier.verify(raw(text.format(far=100)))


def test_long_classic_filters_verify_in_linear_time():
    """An unoptimised libpcap host list jumps from every host's test to one accept
    label: the comparisons per processed instruction must not grow with its length
    (they did: every state reaching the label stayed a checkpoint, and 200 hosts ran
    into the comparison budget)."""
    from jitbpf import cbpf
    from jitbpf.cbpf import libpcap
    from jitbpf.verifier.core import Verifier
    from jitbpf.verifier.log import Log
    from jitbpf.verifier.progtypes import resolve
    if not libpcap.available():
        pytest.skip("libpcap is not installed")
    per_insn = []
    for hosts in (50, 200):
        expr = " or ".join(f"host 10.0.{i // 250}.{i % 250 + 1}" for i in range(hosts))
        prog = cbpf.compile(expr, optimize=False).program()
        v = Verifier(prog, resolve("raw"), log=Log(0, prog), strict=False)
        result = v.run()
        per_insn.append(v.compared / result.processed)
    assert per_insn[1] < per_insn[0] * 1.5, per_insn


# --------------------------------------------------------------------------- facts

def test_facts_for_a_map_value_and_a_null_check():
    text = """
        stw [%r10-4], 0
        mov %r2, %r10
        add %r2, -4
        lddw %r1, map_idx(0)
        call 1
        jeq %r0, 0, +4
        ldxw %r1, [%r0+4]
        and %r1, 15
        jgt %r1, 8, +0
        mov %r0, 0
        exit
    """
    v = verifier.verify(asm(text, maps=[("hash", 4, 8, 4)]))
    f = v.facts
    assert f.accesses[0].region == "stack" and f.proven(0)
    assert f.accesses[7].region == "map_value" and f.proven(7)
    assert 0 in f.nonnull[7]
    assert f.ranges[9][1] == (0, 15)
    assert 2 not in f.ranges                       # r2 = r10 - 4: a pointer, no scalar range
    assert f.proven_slots == {0, 7}
    assert f.constants[11] == {0: 0}               # the exit returns the constant 0
    assert f.terminates


def test_raw_memory_is_checked_at_run_time_and_loops_need_a_budget():
    prog = jitbpf.assemble("""
        mov %r0, 0
        mov %r3, 0
    loop:
        jge %r3, %r2, done
        mov %r4, %r1
        add %r4, %r3
        ldxb %r5, [%r4+0]
        add %r0, %r5
        add %r3, 1
        ja loop
    done:
        exit
    """).program()
    v = verifier.verify(prog)
    ld = next(pc for pc, a in v.facts.accesses.items())
    assert v.facts.accesses[ld].region == "raw" and not v.facts.accesses[ld].proven
    assert not v.facts.terminates
    sized = verifier.verify(jitbpf.assemble("ldxw %r0, [%r1+4]\nexit").program(), mem_size=8)
    assert sized.facts.accesses[0].proven
    with pytest.raises(jitbpf.BpfVerifierError, match="invalid access to memory, mem_size=4 off=4 size=4"):
        verifier.verify(jitbpf.assemble("ldxw %r0, [%r1+4]\nexit").program(), mem_size=4)


def test_run_time_sized_context_reports_its_size():
    prog = asm("ldxdw %r0, [%r1+16]\nexit", "syscall")
    v = verifier.verify(prog)
    assert v.facts.ctx_size == 24 and not v.facts.accesses[0].proven
    v = verifier.verify(asm("ldxw %r0, [%r1+12]\nexit", "xdp"))
    assert v.facts.accesses[0].proven and v.facts.ctx_size == 16


# --------------------------------------------------------------------------- log and errors

def test_error_names_the_instruction_and_the_source_line():
    obj = jitbpf.load(str(ROOT / "tests/verifier/c/rejects.bpf.o"))
    with pytest.raises(jitbpf.BpfVerifierError) as info:
        verifier.verify(obj.program("pkt_off_by_one"), log_level=1)
    e = info.value
    assert e.pc is not None and e.line.startswith("rejects.bpf.c:")
    assert f"{e.pc}: (" in e.log and "invalid access to packet" in e.log


def test_log_levels():
    text = "ldxw %r2, [%r1+12]\njeq %r2, 0, +2\nmov %r0, 1\nexit\nmov %r0, %r3\nexit\n"
    with pytest.raises(jitbpf.BpfVerifierError) as info:
        verifier.verify(asm(text), log_level=1)
    lines = info.value.log.splitlines()
    assert "2: (b7) r0 = 1" not in lines                 # the path that ended well is dropped
    assert any(ln.startswith("from 1 to 4:") for ln in lines)
    assert lines[-2] == "R3 !read_ok"
    with pytest.raises(jitbpf.BpfVerifierError) as info:
        verifier.verify(asm(text), log_level=2)
    assert any(ln.startswith("2: (b7) r0 = 1") for ln in info.value.log.splitlines())
    with pytest.raises(jitbpf.BpfVerifierError) as info:
        verifier.verify(asm(text))
    assert info.value.log.splitlines()[0] == "R3 !read_ok"


def test_unknown_program_type_is_a_clear_error():
    with pytest.raises(jitbpf.BpfVerifierError, match="unknown program type 'nope'"):
        verifier.verify(asm("mov %r0, 0\nexit"), prog_type="nope")


# --------------------------------------------------------------------------- the CLI

def test_cli_json_lines_and_exit_status(tmp_path):
    r = cli("verify", str(ROOT / "tests/fixtures/multi_prog.bpf.o"), "--all", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["program"] for row in rows] == list(jitbpf.load(str(ROOT / "tests/fixtures/multi_prog.bpf.o")).programs)
    assert all(set(row) == {"program", "section", "verdict", "error", "insn", "processed"} for row in rows)
    assert all(row["verdict"] == "accept" and row["processed"] > 0 for row in rows)

    bad = tmp_path / "bad.asm"
    bad.write_text("mov %r0, %r5\nexit\n")
    r = cli("verify", str(bad), "--type", "xdp", "--json")
    assert r.returncode == 1
    row = json.loads(r.stdout)
    assert (row["verdict"], row["error"], row["insn"]) == ("reject", "R5 !read_ok", 0)

    r = cli("verify", str(bad), "--type", "xdp", "--log-level", "2")
    assert r.returncode == 1 and "0: (bf) r0 = r5" in r.stdout and "rejected at insn 0" in r.stdout

    assert cli("verify", str(tmp_path / "missing.o")).returncode == 2
    assert cli("verify", str(ROOT / "tests/fixtures/multi_prog.bpf.o")).returncode == 2   # which program?
    assert cli("verify", str(bad), "--type", "nonsense").returncode == 2
    junk = tmp_path / "junk.asm"
    junk.write_text("frobnicate %r1\n")
    assert cli("verify", str(junk)).returncode == 2
    r = cli("verify", str(CONFORMANCE_NEGATIVE / "unused-exit-dst.data"), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["verdict"] == "reject"


def test_cli_unprivileged(tmp_path):
    leak = tmp_path / "leak.asm"
    leak.write_text("mov %r0, %r10\nexit\n")
    assert cli("verify", str(leak), "--type", "socket").returncode == 0
    r = cli("verify", str(leak), "--type", "socket", "--unprivileged")
    assert r.returncode == 1 and "R0 leaks addr as return value" in r.stdout


def test_helper_registry_drives_the_prototypes():
    """A helper registered at run time is verified by the prototype it was given."""
    from jitbpf.runtime import Runtime
    rt = Runtime()
    rt.helpers.register(300, "my_fill", lambda rt, *a: 0, args=("ptr_to_uninit_mem", "const_size"))
    ok = jitbpf.assemble("mov %r1, %r10\nadd %r1, -8\nmov %r2, 8\ncall 300\nldxdw %r0, [%r10-8]\nexit",
                         runtime=rt).program()
    verifier.verify(ok, prog_type="xdp")
    big = jitbpf.assemble("mov %r1, %r10\nadd %r1, -8\nmov %r2, 16\ncall 300\nmov %r0, 0\nexit",
                          runtime=rt).program()
    with pytest.raises(jitbpf.BpfVerifierError, match="invalid indirect access to stack R1 off=-8 size=16"):
        verifier.verify(big, prog_type="xdp")


def test_accepted_programs_run_without_faults():
    """Generated programs the verifier accepts never make the interpreter (which checks
    every access against the regions mapped) fail, on random packets and contexts."""
    import random
    from jitbpf.asm import assemble
    from jitbpf.program import Object
    from jitbpf.runtime import Runtime
    from jitbpf.runtime.maps import create
    from jitbpf.verifier import gen
    rt = Runtime()
    obj = Object(rt)
    for i, (t, k, v, n) in enumerate(gen.MAPS):
        obj.add_map(create(rt, f"m{i}", t, k, v, n))
    rng = random.Random(3)
    accepted = 0
    for name, ptype, text, _ in gen.programs(seed=21, count=150):
        try:
            prog = obj.add_program(name, assemble(text), prog_type=ptype)
            verifier.verify(prog)
        except jitbpf.BpfError:
            continue
        accepted += 1
        fn = prog.compile("interp")
        for _ in range(2):
            data = bytes(rng.randrange(256) for _ in range(rng.choice((14, 34, 64, 200))))
            if ptype in ("xdp", "tc", "socket", "cgroup_skb"):
                fn.run(packet=data)
            else:
                fn.run(ctx=data.ljust(200, b"\0"))
    assert accepted > 100


def test_state_comparisons_are_bounded():
    """A mutated raw program (fuzz seed 2027 case 3084) whose widening loop heads gather
    checkpoints faster than they prune: once the verifier hung on it (comparisons grow
    quadratically, processed instructions barely move); now it is refused."""
    import json
    from jitbpf.fuzz.generate import Case
    from jitbpf.fuzz.oracle import instantiate
    case = Case.from_json(json.loads((ROOT / "tests/verifier/cases/compare-budget-2027-3084.json").read_text()))
    _, prog = instantiate(case)
    with pytest.raises(jitbpf.BpfVerifierError, match="too complex: 200000 state comparisons"):
        verifier.verify(prog, strict=False)


def test_a_loop_that_links_fresh_ids_each_time_round_is_pruned():
    """A generated program (fuzz seed 2030 case 400; Linux accepts it, and it returns the
    interpreter's r0 there): a bpf_loop callback spills a value it linked to r0 with a new
    id on every iteration. A one-to-one renaming of ids never matches two iterations, so
    checkpoints piled up until the comparison budget refused it; linked values in the
    current state only narrow the old state's, so they prune."""
    import json
    from jitbpf.fuzz.generate import Case
    from jitbpf.fuzz.oracle import instantiate
    case = Case.from_json(json.loads((ROOT / "tests/verifier/cases/linked-ids-2030-400.json").read_text()))
    _, prog = instantiate(case)
    assert verifier.verify(prog, strict=False).processed < 20_000


def test_scalar_links_of_the_old_state_must_hold_in_the_current_one():
    from jitbpf.verifier.state import IdMap
    m = IdMap()
    assert m.check_scalar(0, 5) and m.check_scalar(0, 5)       # old unlinked: anything
    assert m.check_scalar(7, 5) and m.check_scalar(9, 5)       # the current state may link more
    assert not m.check_scalar(7, 6)                            # old 7's values must stay linked
    m = IdMap()
    assert m.check_scalar(7, 0) and not m.check_scalar(7, 0)   # two unlinked values for one old link
