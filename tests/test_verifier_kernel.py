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


BENCHMARKS = sorted((ROOT / "benchmarks/programs").glob("*.bpf.o"))
SLOW = {"switch.bpf.o", "parse.bpf.o", "sieve.bpf.o"}         # 100,000+ instructions


@pytest.mark.parametrize("path", [pytest.param(p, marks=[pytest.mark.slow] if p.name in SLOW else [], id=p.name)
                                  for p in BENCHMARKS])
def test_benchmark_processed_counts_are_of_the_kernels_order(path):
    """The benchmark programs load into the kernel as they are (XDP); our exploration
    processes a number of instructions of the same order as the kernel's own count
    (pruning as effective, within a factor 4 either way)."""
    import jitbpf
    from jitbpf import verifier
    from jitbpf.verifier.kernel import kernel_processed
    prog = jitbpf.load(str(path)).program()
    theirs = kernel_processed(prog)
    assert theirs is not None, "the kernel rejects it"
    ours = verifier.verify(prog).processed
    assert theirs / 4 <= ours <= theirs * 4 + 100, (ours, theirs)
