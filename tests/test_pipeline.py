"""The compilation pipeline: engine options in one place, the layering rule, images that
are relocatable (saved, then loaded at another address in a fresh runtime)."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest

import jitbpf
from jitbpf import BpfEngineError, pipeline
from jitbpf.engines import available_engines
from jitbpf.targets import HOST_ARCH

from conftest import ROOT, cli, load_fixture

COMPILED = [e for e in available_engines() if e not in ("interp", "kernel")]


# ----------------------------------------------------------------------------- the verify stage

def _checks(prepared) -> int:
    return sum(1 for insn in prepared.insns if insn.opcode & ~0x18 == jitbpf.isa.OP_CHECK)


@pytest.mark.parametrize("engine", COMPILED)
def test_generated_code_is_verified_by_default(engine):
    """A read of an unset register: refused before code exists on generated-code engines
    (with the way to run it anyway); the interpreter, which checks everything itself, and
    verify=False run it (r1..r5 hold the arguments, 0 here)."""
    prog = jitbpf.assemble("mov %r0, %r7\nexit").program()
    with pytest.raises(jitbpf.BpfVerifierError, match=r"instruction 0: R7 !read_ok \(verify=False, or --no-verify, runs it") as err:
        prog.compile(engine)
    assert err.value.pc == 0
    assert prog.compile("interp").run().r0 == 0
    assert prog.compile(engine, verify=False).run().r0 == 0


@pytest.mark.parametrize("engine", ["llvm", "direct"])
def test_what_the_verifier_proves_is_not_checked_again(engine):
    """A stack pointer spilled and filled (the passes lose track of it, the verifier does
    not) and a store at r10-16 plus a variable 0..7 next to a load from r1's memory (whose
    size is the caller's, so never proven): verified 0 and 1 run-time checks remain,
    unverified the passes keep 2 each."""
    spilled = jitbpf.assemble("mov %r2, %r10\nadd %r2, -16\nstxdw [%r10-8], %r2\nldxdw %r4, [%r10-8]\n"
                              "stdw [%r4+0], 5\nldxdw %r0, [%r4+0]\nexit").program()
    variable = jitbpf.assemble("stdw [%r10-16], 0\nldxb %r2, [%r1+0]\nand %r2, 7\nmov %r3, %r10\nadd %r3, -16\n"
                               "add %r3, %r2\nstb [%r3+0], 1\nldxb %r0, [%r10-16]\nexit").program()
    for prog, verified in ((spilled, 0), (variable, 1)):
        assert _checks(pipeline.prepare(prog, engine)) == verified
        assert _checks(pipeline.prepare(prog, engine, verify=False)) == 2
    assert spilled.compile(engine).run().r0 == 5
    assert variable.compile(engine).run(b"\x00").r0 == 1 and variable.compile(engine).run(b"\x01").r0 == 0


def test_the_pipeline_verifies_without_the_kernels_non_safety_refusals():
    """A shift by 70 (the ISA masks it to 6) and a division by a constant zero (0): the
    kernel refuses both though they are safe; the pipeline runs them, `verify` refuses."""
    prog = jitbpf.assemble("mov %r0, 3\nlsh %r0, 70\nmov %r1, 9\ndiv %r1, 0\nadd %r0, %r1\nexit").program()
    assert prog.compile("direct").run().r0 == 3 << 6
    with pytest.raises(jitbpf.BpfVerifierError, match="invalid shift 70"):
        jitbpf.verifier.verify(prog)


def test_a_verdict_is_reused_until_the_program_changes():
    prog = jitbpf.assemble("mov %r0, 1\nexit").program()
    prog.compile("llvm")
    first = prog.__dict__["_verdict"]
    prog.compile("direct")
    assert prog.__dict__["_verdict"] is first
    prog.insns[0] = jitbpf.isa.Insn(0xB7, 0, imm=2)              # mov r0, 2
    assert prog.compile("direct").run().r0 == 2
    assert prog.__dict__["_verdict"] is not first


# ----------------------------------------------------------------------------- options

def test_an_option_an_engine_does_not_take_is_an_error_naming_it():
    prog = jitbpf.assemble("mov %r0, 1\nexit").program()
    with pytest.raises(BpfEngineError, match="engine 'direct': option 'opt' does not apply to it"):
        prog.compile("direct", opt=3)
    with pytest.raises(BpfEngineError, match="engine 'interp': option 'turbo' is unknown"):
        prog.compile("interp", turbo=True)
    with pytest.raises(BpfEngineError, match=r"engine 'llvm': option budget=-1: expected 0\.\."):
        prog.compile("llvm", budget=-1)
    with pytest.raises(BpfEngineError, match="engine 'kernel': option 'blind' does not apply"):
        pipeline.resolve_options(jitbpf.targets.parse_engine("kernel"), {"blind": True})
    with pytest.raises(BpfEngineError, match="max_instructions' does not apply"):
        prog.compile("direct", max_instructions=5)    # an emulator option, and direct runs natively here


def test_option_text_is_converted_per_option():
    spec = jitbpf.targets.parse_engine("llvm")
    given = dict(pipeline.parse_option_text(t) for t in ("blind=1", "bounds-check=true", "opt=3", "budget=none"))
    options = pipeline.resolve_options(spec, given)
    assert (options.blind, options.bounds_check, options.opt, options.budget) == (True, True, 3, None)
    with pytest.raises(BpfEngineError, match="expected name=value"):
        pipeline.parse_option_text("blind")
    with pytest.raises(BpfEngineError, match="expected a boolean"):
        pipeline.resolve_options(spec, {"blind": "maybe"})


def test_cli_passes_engine_options_everywhere(tmp_path):
    source = tmp_path / "prog.asm"
    source.write_text("mov %r0, 0x1234\nexit\n")
    run = cli("run", str(source), "--engine", "direct", "-X", "blind=1", "-X", "bounds_check=1", "--check")
    assert run.returncode == 0 and "r0 = 4660" in run.stdout, run.stderr
    passes = cli("disasm", str(source), "--passes", "--engine", "llvm", "-X", "blind=1")
    assert passes.returncode == 0, passes.stderr
    text = passes.stdout
    assert "tick" in text and "%ax" in text and "0x1234" not in text       # the constant is blinded
    bad = cli("run", str(source), "--engine", "direct", "-X", "opt=2")
    assert bad.returncode == 2 and "option 'opt' does not apply" in bad.stderr
    plugin = cli("plugin", "--engine", "llvm", "-X", "opt=0", stdin="b7 00 00 00 07 00 00 00 95 00 00 00 00 00 00 00")
    assert plugin.returncode == 0 and plugin.stdout.strip() == "7", plugin.stderr


# ----------------------------------------------------------------------------- layering

def _imports(path: Path, package: str) -> set[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return out


def _modules(folder: str, package: str) -> dict[str, set[str]]:
    result = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT / folder).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        name = ".".join([package, *parts])
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        result[name] = _imports(path, pkg)
    return result


REGISTRY = ("jitbpf.pipeline", "jitbpf.engines", "jitbpf.cli")


def test_layering():
    """backends and the verifier never import the engine registry (the pipeline calls
    them); the instruction set and the target names import nothing of ours but errors;
    analyses and passes import no backend."""
    backends = _modules("backends", "jitbpf.backends")
    verifier = _modules("verifier", "jitbpf.verifier")
    core = _modules("jitbpf", "jitbpf")
    assert backends and core
    for name, imports in {**backends, **verifier}.items():
        bad = {i for i in imports if i.startswith(REGISTRY)}
        assert not bad, f"{name} imports {bad}"
    for leaf in ("jitbpf.isa", "jitbpf.targets"):
        assert {i for i in core[leaf] if i.startswith("jitbpf")} <= {"jitbpf.errors", "jitbpf.errors.BpfEngineError",
                                                                      "jitbpf.errors.BpfValidationError"}, leaf
    for name, imports in core.items():
        if name.startswith(("jitbpf.analysis", "jitbpf.passes")):
            assert not {i for i in imports if i.startswith(("jitbpf.backends", *REGISTRY))}, name


def test_every_package_is_installed():
    """pyproject lists the packages explicitly (backends/ and verifier/ install under the
    jitbpf namespace): a new package folder must be listed there too."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in (("jitbpf", "jitbpf"), ("backends", "jitbpf.backends"), ("verifier", "jitbpf.verifier")):
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    assert found == listed


# ----------------------------------------------------------------------------- relocatable images

def _frame(dport: int) -> bytes:
    """Ethernet + IPv4 + TCP to dport (what xdp_parse counts)."""
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    tcp = struct.pack(">HHIIBBHHH", 1234, dport, 0, 0, 0x50, 0x02, 1024, 0, 0)
    return eth + ip + tcp


RELOCATED = [e for e in COMPILED if e.split("@")[0] in ("llvm", "direct", "llvm-arm64", "direct-arm64")]


@pytest.mark.parametrize("engine", RELOCATED)
def test_saved_image_runs_at_another_address_in_a_fresh_runtime(engine):
    """The image of a clang program with maps and global data, saved to bytes, then
    loaded into a fresh object (other map addresses, another code address): the same
    verdicts and maps as the interpreter over that fresh object."""
    original = load_fixture("xdp_parse")             # kept alive: its maps keep their addresses
    before = {name: m.contents() for name, m in original.maps.items()}
    saved = pipeline.save_image(original.program("xdp_parse"), engine)
    fresh, reference = load_fixture("xdp_parse"), load_fixture("xdp_parse")
    assert {m.address for m in fresh.maps.values()}.isdisjoint(m.address for m in original.maps.values())
    compiled = pipeline.load_saved(saved, fresh.program("xdp_parse"))
    interp = reference.program("xdp_parse").compile("interp")
    for port in (80, 443, 22, 80):
        frame = _frame(port)
        assert compiled.run(packet=frame).r0 == interp.run(packet=frame).r0
    for name in reference.maps:
        assert fresh.maps[name].contents() == reference.maps[name].contents(), name
    assert {name: m.contents() for name, m in original.maps.items()} == before
    assert any(fresh.maps[name].contents() != before[name] for name in before)     # the runs counted


def test_saved_images_refuse_what_they_cannot_run():
    prog = load_fixture("xdp_parse").program("xdp_parse")
    saved = pipeline.save_image(prog, "direct-arm64")
    with pytest.raises(BpfEngineError, match="arm64 image cannot run on engine 'direct'"):
        pipeline.load_saved(saved, prog, "direct" if HOST_ARCH == "x86_64" else "direct-x86_64@unicorn")
    with pytest.raises(BpfEngineError, match="needs maps this object lacks"):
        pipeline.load_saved(saved, jitbpf.assemble("exit").program())
    for damaged in (saved[:40], b"nonsense", saved[:-1], saved.replace(b'"arch": "arm64"', b'"arch": "mips!"')):
        with pytest.raises(BpfEngineError, match="cannot read the image"):
            pipeline.load_saved(damaged, prog)


def test_a_refusal_is_kept_with_the_program_like_an_acceptance(monkeypatch):
    """Every engine asks the verifier the same question: a refused program is verified once."""
    import jitbpf.verifier as verifier_package
    calls = []
    real = verifier_package.verify
    monkeypatch.setattr(verifier_package, "verify", lambda *a, **k: calls.append(1) or real(*a, **k))
    prog = jitbpf.assemble("ldxdw r0, [r10-8]\nexit").program()
    for engine in ("llvm", "direct", "llvm"):
        with pytest.raises(jitbpf.BpfVerifierError, match="invalid read from stack"):
            prog.compile(engine)
    assert len(calls) == 1
    assert prog.compile("direct", verify=False).run(b"").r0 == 0 and len(calls) == 1
