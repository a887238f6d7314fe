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


def pytest_report_header(config) -> list[str]:
    """One visible line when the bpf_conformance suite is missing (its tests are then not
    collected: ~6,500 items); CI sets JITBPF_REQUIRE_CONFORMANCE=1 and fails instead."""
    if CONFORMANCE_TESTS.is_dir():
        return [f"bpf_conformance suite: {CONFORMANCE_TESTS}"]
    if os.environ.get("JITBPF_REQUIRE_CONFORMANCE") == "1":
        raise pytest.UsageError(f"the bpf_conformance suite is required but missing at {CONFORMANCE_TESTS}")
    return [f"WARNING: bpf_conformance suite not found at {CONFORMANCE_TESTS}: its tests are not collected "
            "(put ../shared beside the checkout or set JITBPF_SHARED)"]


def pytest_collection_modifyitems(config, items) -> None:
    """Markers from the engine a test runs on: ``unicorn`` (emulated engines), ``kernel``;
    and ``slow`` for the option variants of the conformance suite on emulated engines."""
    for item in items:
        params = getattr(item, "callspec", None)
        engine = params.params.get("engine") if params else None
        if not isinstance(engine, str):
            continue
        if engine == "kernel":
            item.add_marker(pytest.mark.kernel)
        elif "arm64" in engine or "@unicorn" in engine:
            item.add_marker(pytest.mark.unicorn)
            if params.params.get("variant", "plain") != "plain":
                item.add_marker(pytest.mark.slow)


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


def in_threads(work, n: int = 4, timeout: float = 120) -> list[BaseException]:
    """Run ``work(t)`` for t in range(n) in n threads at once; the errors they raised."""
    import threading
    errors: list[BaseException] = []

    def guarded(t: int) -> None:
        try:
            work(t)
        except BaseException as e:          # noqa: BLE001 - returned to the test
            errors.append(e)
    threads = [threading.Thread(target=guarded, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return errors


def load_fixture(name: str) -> jitbpf.Object:
    """tests/fixtures/NAME.bpf.o (the committed clang object)."""
    return jitbpf.load(str(FIXTURES / f"{name}.bpf.o"))


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """The jitbpf command in a subprocess (for the CLI's own tests), ``stdin`` as its input."""
    return subprocess.run([sys.executable, "-m", "jitbpf", *args], input=stdin, capture_output=True, text=True,
                          timeout=120)
