"""The bpf_conformance suite on every available engine, and the plugin protocol."""

from __future__ import annotations

import pytest

from jitbpf import BpfError
from jitbpf.conformance import load_test, run_test
from jitbpf.engines import available_engines

from conftest import CONFORMANCE_NEGATIVE, CONFORMANCE_TESTS, cli, conformance_files, needs_conformance

TESTS = conformance_files(CONFORMANCE_TESTS)


@needs_conformance()
def test_suite_is_complete():
    assert len(TESTS) == 313


#: Every engine of this build but the kernel (which has its own test, with the programs
#: Linux refuses listed in jitbpf/kernel/known.py), each plain and with the passes that
#: rewrite programs: constant blinding and bounds checks.
ENGINES = [e for e in available_engines() if e != "kernel"]
VARIANTS = {"plain": {}, "blind": {"blind": True}, "bounds_check": {"bounds_check": True}}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.stem)
def test_conformance(path, engine, variant):
    outcome = run_test(load_test(path), engine, **VARIANTS[variant])
    assert outcome.passed, outcome.detail


@pytest.mark.parametrize("path", conformance_files(CONFORMANCE_NEGATIVE), ids=lambda p: p.stem)
def test_negative_files_never_pass(path):
    """Every negative program is rejected (or, for the two deliberately wrong expected
    results, produces the true value and so does not match)."""
    try:
        test = load_test(path)
    except BpfError as e:           # an unknown section is itself a rejection
        assert "unknown section" in str(e)
        return
    outcome = run_test(test, "interp")
    if test.error is not None:
        assert outcome.passed == (path.stem in ("invalid_lock", "invalid_lock2", "invalid_register")
                                  or path.stem.startswith("unused-")), outcome.detail
    else:
        assert not outcome.passed, outcome.detail


def test_plugin_protocol():
    # ldxw r0, [r1+0]; exit  with memory 44 33 22 11
    res = cli("plugin", "44 33 22 11", stdin="61 10 00 00 00 00 00 00 95 00 00 00 00 00 00 00\n")
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.strip(), 16) == 0x11223344


def test_plugin_reports_errors():
    res = cli("plugin", stdin="07 00 01 00 01 00 00 00 95 00 00 00 00 00 00 00\n")
    assert res.returncode != 0
    assert "unused off field" in res.stderr


def test_plugin_unknown_engine():
    res = cli("plugin", "--engine", "nope", stdin="95 00 00 00 00 00 00 00\n")
    assert res.returncode != 0 and "unknown engine 'nope'" in res.stderr


@needs_conformance()
def test_conformance_command_summary_line():
    res = cli("conformance", str(CONFORMANCE_TESTS), "--engine", "interp")
    assert res.returncode == 0, res.stdout[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "313 passed, 0 failed, 0 skipped"


def test_conformance_command_unknown_engine():
    res = cli("conformance", str(CONFORMANCE_TESTS), "--engine", "bogus")
    assert res.returncode == 2 and "unknown engine 'bogus'" in res.stderr
    assert res.stdout.count("FAIL") == 0


def test_available_engines_start_with_interp():
    assert available_engines()[0] == "interp"
