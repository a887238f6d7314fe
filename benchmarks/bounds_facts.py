"""What the verifier's facts leave of ``bounds_check=True`` on the benchmark programs:
the run-time checks the bounds pass inserts without facts and with the verifier's
proven accesses (``Verdict.facts.proven_slots`` as ``PassOptions.proven``), and whether
the checked program is then the unchecked one instruction for instruction (its code,
hence its speed, is the unchecked code's on every engine).

    python benchmarks/bounds_facts.py [--quick]     # --quick: without switch, parse, sieve
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jitbpf  # noqa: E402
from jitbpf import isa, verifier  # noqa: E402
from jitbpf.passes.bounds import bounds_check  # noqa: E402

SLOW = {"switch.bpf.o", "parse.bpf.o", "sieve.bpf.o"}
SIZE_BITS = 0x18


def checks(program) -> int:
    return sum(1 for i in program.insns if i.opcode & ~SIZE_BITS == isa.OP_CHECK & ~SIZE_BITS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"{'program':16s} {'insns':>6s} {'accesses':>8s} {'proven':>6s} {'checks':>6s} {'w/ facts':>8s} "
          f"{'= unchecked':>11s} {'verify s':>8s}")
    for path in sorted((HERE / "programs").glob("*.bpf.o")):
        if args.quick and path.name in SLOW:
            continue
        prog = jitbpf.load(str(path)).program()
        start = time.process_time()
        v = verifier.verify(prog)
        spent = time.process_time() - start
        plain, with_facts = bounds_check(prog), bounds_check(prog, v.facts.proven_slots)
        same = list(with_facts.insns) == list(prog.insns)
        print(f"{path.name:16s} {len(prog.insns):6d} {len(v.facts.accesses):8d} {len(v.facts.proven_slots):6d} "
              f"{checks(plain):6d} {checks(with_facts):8d} {'yes' if same else 'no':>11s} {spent:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
