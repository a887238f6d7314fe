"""Minimised cases found by ``jitbpf fuzz`` (tests/regressions/), on every engine.

``.data`` files are bpf_conformance tests (run with check=True: memory as interp);
``.json`` files are cases with maps, with the expected r0, memory and maps recorded
from the oracle that was right (the kernel, for runtime bugs). tests/regressions/pending/
holds reproducers of bugs not fixed yet; it is not collected here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jitbpf.conformance import load_test, run_test
from jitbpf.engines import available_engines
from jitbpf.fuzz.generate import Case
from jitbpf.fuzz.minimize import json_map
from jitbpf.fuzz.oracle import parse_config, run_config
from jitbpf.pipeline import VERIFY_HINT

DIR = Path(__file__).resolve().parent / "regressions"
ENGINES = [e for e in available_engines() if e != "kernel"]
DATA = sorted(DIR.glob("*.data"))
CASES = sorted(DIR.glob("*.json"))


def test_regressions_exist():
    assert DATA and CASES


@pytest.mark.parametrize("layer", ["default", "unverified"])
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path", DATA, ids=lambda p: p.stem)
def test_data_regression(path, engine, layer):
    """Unverified, as the fuzzer ran them (raw programs, outside the verifier's rules
    at times); with default options the verifier may refuse one, never answer wrong."""
    options = {"verify": False} if layer == "unverified" else {}
    outcome = run_test(load_test(path), engine, check=engine != "interp", **options)
    if layer == "default" and not outcome.passed:
        assert outcome.detail.endswith(VERIFY_HINT), outcome.detail
    else:
        assert outcome.passed, outcome.detail


@pytest.mark.parametrize("engine", ENGINES + (["kernel"] if "kernel" in available_engines() else []))
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_regression(path, engine):
    record = json.loads(path.read_text())
    case = Case.from_json(record)
    expected = record["expected"]
    got = run_config(case, parse_config(engine))
    assert not got.rejected, got.message
    assert got.error is None, got.message
    assert got.r0 == expected["r0"]
    assert (got.memory.hex() if got.memory is not None else None) == expected["memory"]
    assert [json_map(m) for m in got.maps] == expected["maps"]
