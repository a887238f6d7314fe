"""The jitbpf command's own behaviour (other tests use the Python API)."""

from __future__ import annotations

from conftest import ROOT, cli

FIB = ROOT / "jitbpf" / "examples" / "fib.asm"


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def test_run_example():
    res = cli("run", str(FIB), "--mem-hex", "00" * 20)
    assert res.returncode == 0, res.stderr
    assert f"r0 = {fib(20)} " in res.stdout


def test_run_refuses_what_the_verifier_refuses_unless_told(tmp_path):
    source = tmp_path / "unset.asm"
    source.write_text("mov %r0, %r7\nexit\n")              # r7 is never set
    res = cli("run", str(source), "--engine", "direct")
    assert res.returncode != 0 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "error: instruction 0: R7 !read_ok (verify=False, or --no-verify, runs it anyway, bounds-checked)"]
    res = cli("run", str(source), "--engine", "direct", "--no-verify")
    assert res.returncode == 0, res.stderr
    assert "r0 = 0 " in res.stdout


def test_asm_then_run_bytes(tmp_path):
    out = tmp_path / "fib.bin"
    assert cli("asm", str(FIB), "-o", str(out)).returncode == 0
    res = cli("run", str(out), "--mem-hex", "00" * 12)
    assert res.returncode == 0, res.stderr
    assert f"r0 = {fib(12)} " in res.stdout


def test_disasm_styles():
    res = cli("disasm", str(FIB), "--style", "kernel")
    assert res.returncode == 0 and "if r2 == 0 goto L9" in res.stdout, res.stderr
    res = cli("disasm", str(FIB), "--offsets")
    assert res.returncode == 0 and "jeq %r2, 0, +6" in res.stdout, res.stderr


def test_errors_are_messages_not_tracebacks(tmp_path):
    bad = tmp_path / "bad.asm"
    bad.write_text("mov %r0, 1\nbogus %r1\nexit\n")
    res = cli("run", str(bad))
    assert res.returncode == 2
    assert "line 2: unknown mnemonic 'bogus'" in res.stderr
    assert "Traceback" not in res.stderr
    res = cli("run", str(tmp_path / "missing.bin"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
