"""Shared test fixtures: where the conformance suite lives, and small run helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import jitbpf

ROOT = Path(__file__).resolve().parent.parent
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
