"""The verifier against the host kernel's (bpf(2), skipped where it is not allowed):
the corpus' kernel directives hold, and on generated programs the two agree on at
least 95% of verdicts with every disagreement of an explained class
(verifier/differential.py EXPLAINED, verifier/README.md). The full 5,000-program run
is ``python -m jitbpf.verifier.differential``."""

from __future__ import annotations

import pytest

from jitbpf.kernel import syscall as sc

from conftest import ROOT

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not sc.kernel_available(), reason=str(sc.availability()))]


def test_corpus_kernel_directives_hold():
    from jitbpf.verifier.corpus import load_corpus
    from jitbpf.verifier.differential import compare
    wrong = []
    for case in load_corpus(ROOT / "tests/verifier"):
        if case.kernel == "none" or case.name == "struct-unbounded-loop":   # (the budget: slow, tested apart)
            continue
        ours, kernel = compare(case.load(), case.prog_type or None)
        assert ours is not None, case.name
        if (kernel is None) != (case.kernel == "accept"):
            wrong.append((case.name, case.kernel, kernel))
    assert not wrong


def test_generated_programs_agree():
    from jitbpf.verifier.differential import explain, generated
    valid, mutated = generated(seed=7, count=300)
    for tally in (valid, mutated):
        assert tally.total > 100
        assert tally.agreement >= 0.95
        for who, counter in (("ours", tally.ours_only), ("kernel", tally.kernel_only)):
            unexplained = [k for k in counter if explain(who, k) is None]
            assert not unexplained, (who, unexplained)
    assert valid.agree_accept > 0.8 * valid.total      # valid by construction, for both


def test_fixture_disagreements_are_explained():
    from jitbpf.verifier.differential import explain, fixtures
    t = fixtures(native=False)
    assert not t.ours_only                             # we accept every fixture
    assert all(explain("kernel", k) for k in t.kernel_only), list(t.kernel_only)
