"""Shared test fixtures: where the conformance suite and the clang fixtures live, and
small helpers to assemble, build, load and run programs (and the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

import jitbpf
from jitbpf.runtime import Runtime

# Property tests draw the same examples on every run (deterministic tests);
# JITBPF_HYPOTHESIS=explore draws new ones, to hunt for bugs.
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("JITBPF_HYPOTHESIS", "deterministic"))

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long test (make test runs it)")
    config.addinivalue_line("markers", "kernel: compares with the host kernel (skips without bpf(2))")
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = Path(os.environ.get("JITBPF_SHARED", ROOT.parent / "shared"))
CONFORMANCE_TESTS = SHARED / "conformance" / "tests"
CONFORMANCE_NEGATIVE = SHARED / "conformance" / "negative"


def conformance_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.data")) if directory.is_dir() else []


def needs_conformance() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not CONFORMANCE_TESTS.is_dir(),
                              reason=f"bpf_conformance suite not found at {CONFORMANCE_TESTS}")


def run_asm(text: str, mem: bytes | None = None, engine: str = "interp", **options) -> jitbpf.Result:
    return jitbpf.assemble(text).program().compile(engine, **options).run(mem)


def build(text: str, engine: str, setup=None, **options):
    """Compile ``text`` for ``engine`` in a fresh runtime that ``setup(rt)`` may extend."""
    rt = Runtime()
    if setup is not None:
        setup(rt)
    return jitbpf.assemble(text, runtime=rt).program().compile(engine, **options)


def load_fixture(name: str) -> jitbpf.Object:
    """tests/fixtures/NAME.bpf.o (the committed clang object)."""
    return jitbpf.load(str(FIXTURES / f"{name}.bpf.o"))


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """The jitbpf command in a subprocess (for the CLI's own tests), ``stdin`` as its input."""
    return subprocess.run([sys.executable, "-m", "jitbpf", *args], input=stdin, capture_output=True, text=True,
                          timeout=120)
