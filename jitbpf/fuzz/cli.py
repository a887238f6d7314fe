"""``jitbpf fuzz``: a differential campaign in worker processes.

Each job is a subprocess (multiprocessing, spawned) that generates and checks the
cases ``job, job + jobs, ...`` of the campaign and tells the parent which case it
starts and how it ended. A worker that dies (a crash of native code) or stops
answering (a hang) is counted as a crash, the case it was on is saved to the corpus
directory, and a new worker goes on after it. Workers are restarted every
``--restart`` cases, which bounds the memory that compiled programs keep.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ENGINES = "interp,llvm,direct"
DEFAULT_EXTRA = ("llvm-arm64,direct-arm64,llvm-x86_64@unicorn,direct-x86_64@unicorn,"
                 "llvm:opt=0,llvm:opt=3,direct:blind,direct:bounds_check,llvm:stack_fill=171,direct:stack_fill=90")
HANG_SECONDS = 120


def add_parser(sub) -> None:
    """Register ``jitbpf fuzz`` (called once from jitbpf.cli.build_parser)."""
    s = sub.add_parser("fuzz", help="differential fuzzing of every engine against interp (and the kernel)")
    s.add_argument("--engines", default=DEFAULT_ENGINES,
                   help=f"configs checked on every case, ENGINE[:option[=value]]... (e.g. llvm:opt=0, direct:blind, llvm:stack_fill=171) (default "
                        f"{DEFAULT_ENGINES}); the first is the reference")
    s.add_argument("--extra", default=DEFAULT_EXTRA, help="configs checked on every --every-th case "
                                                          "('' for none)")
    s.add_argument("--every", type=int, default=10, help="how often the --extra configs run (default 10)")
    limit = s.add_mutually_exclusive_group()
    limit.add_argument("--iterations", type=int, help="cases to check (default 1000)")
    limit.add_argument("--time", type=float, help="seconds to run")
    s.add_argument("--seed", type=int, default=0, help="campaign seed (case i of seed s is always the same)")
    s.add_argument("--start", type=int, default=0, help="first case index")
    s.add_argument("--jobs", type=int, default=1, help="worker processes")
    s.add_argument("--corpus", default="fuzz-corpus", help="where failing and crashing cases are saved")
    s.add_argument("--level", choices=("raw", "valid", "mutant"), help="one generator level (default: all)")
    s.add_argument("--restart", type=int, default=400, help="cases per worker before it is replaced")
    s.add_argument("--minimize", action="store_true", help="shrink each failing case before saving it")
    s.add_argument("--robustness", action="store_true",
                   help="feed damaged bytes, objects and CLI input to every loader instead")
    s.add_argument("--report", help="write the campaign's counts as JSON here")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=main)


@dataclass
class Totals:
    programs: int = 0
    executions: int = 0
    mismatches: int = 0
    explained: int = 0
    crashes: int = 0
    rejections: Counter = field(default_factory=Counter)
    levels: Counter = field(default_factory=Counter)
    per_config: Counter = field(default_factory=Counter)
    address_dependent: int = 0
    explanations: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)

    def line(self) -> str:
        return (f"programs {self.programs}, executions {self.executions}, mismatches {self.mismatches}, "
                f"crashes {self.crashes}")


# --------------------------------------------------------------------------- the worker

def _worker(conn, seed: int, indices: range, engines: str, extra: str, every: int, level: str | None,
            corpus: str, minimize: bool) -> None:
    """Check the cases of ``indices``, reporting ("start", i) and ("done", i, summary)."""
    os.environ.setdefault("JITBPF_FUZZ_WORKER", "1")
    from .generate import generate
    from .oracle import parse_configs, run_case
    base, more = parse_configs(engines), parse_configs(extra)
    crash_at = int(os.environ.get("JITBPF_FUZZ_CRASH_AT", -1))     # tests: die on this case
    for i in indices:
        conn.send(("start", i))
        if i == crash_at:
            os.abort()
        try:
            case = generate(seed, i, level)
            configs = base + (more if every and i % every == 0 else [])
            verdict = run_case(case, configs, base[0])
        except Exception as e:          # noqa: BLE001 - a bug of the fuzzer or the oracle, reported
            conn.send(("done", i, {"level": "?", "executions": 0, "configs": [], "rejections": [],
                                   "address_dependent": False, "mismatches": [],
                                   "internal": [f"fuzzer: {type(e).__name__}: {e}"]}))
            continue
        summary = {"level": case.level, "executions": verdict.executions,
                   "configs": [o.config for o in verdict.outcomes if not o.rejected],
                   "rejections": [o.message[-80:] for o in verdict.rejections],
                   "address_dependent": verdict.address_dependent,
                   "mismatches": [{"config": m.config, "what": m.what, "detail": m.detail[:600],
                                   "explained": m.explained} for m in verdict.mismatches],
                   "internal": [o.message[:300] for o in verdict.internal_errors]}
        if verdict.unexplained or verdict.internal_errors:
            summary["saved"] = str(_save(case, corpus, "mismatch", summary, minimize, verdict, base[0]))
        conn.send(("done", i, summary))
    conn.send(("exit", None))


def _save(case, corpus: str, kind: str, summary: dict, minimize: bool = False, verdict=None, reference=None):
    from .oracle import parse_config
    out = Path(corpus)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{kind}-{case.seed}-{case.index}.json"
    record = case.to_json()
    record["summary"] = summary
    path.write_text(json.dumps(record, indent=1) + "\n")
    if minimize and verdict is not None and verdict.unexplained:
        from .minimize import minimize as shrink
        from .minimize import write_regression
        m = verdict.unexplained[0]
        small = shrink(case, parse_config(m.config), reference, m.what)
        from .oracle import run_config
        write_regression(small, run_config(small, reference), out, f"min-{case.seed}-{case.index}",
                         note=m.detail[:300])
    return path


# --------------------------------------------------------------------------- the parent

@dataclass
class _Job:
    number: int
    next_index: int
    process: multiprocessing.Process | None = None
    conn: object = None
    current: int | None = None
    since: float = 0.0
    done: int = 0


def main(args: argparse.Namespace) -> int:
    if args.robustness:
        from .robust import main as robustness
        return robustness(args)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = None if args.time is not None else (args.iterations if args.iterations is not None else 1000)
    deadline = time.monotonic() + args.time if args.time is not None else None
    totals = Totals()
    ctx = multiprocessing.get_context("spawn")
    jobs = [_Job(j, args.start + j) for j in range(max(1, args.jobs))]
    end = args.start + total if total is not None else None
    start_time = time.monotonic()

    def spawn(job: _Job) -> None:
        remaining = args.restart
        stop = job.next_index + remaining * len(jobs)
        if end is not None:
            stop = min(stop, end)
        indices = range(job.next_index, stop, len(jobs))
        if not indices:
            job.process = None
            return
        parent, child = ctx.Pipe()
        job.process = ctx.Process(target=_worker, daemon=True,
                                  args=(child, args.seed, indices, args.engines, args.extra, args.every,
                                        args.level, args.corpus, args.minimize))
        job.process.start()
        child.close()
        job.conn, job.current, job.since = parent, None, time.monotonic()

    def crashed(job: _Job, why: str) -> None:
        i = job.current
        totals.crashes += 1
        totals.programs += 1
        from .generate import generate
        try:
            path = _save(generate(args.seed, i, args.level), args.corpus, "crash",
                         {"why": why, "exitcode": job.process.exitcode})
        except Exception as e:          # noqa: BLE001 - the generator itself failed on it
            path = f"(not saved: {type(e).__name__}: {e})"
        totals.failures.append(f"crash: case {i} ({why}), saved to {path}")
        job.next_index = i + len(jobs)

    for job in jobs:
        spawn(job)
    progress = Progress(TextColumn("[bold]fuzz"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[status]}"), disable=args.quiet, transient=False)
    with progress:
        task = progress.add_task("fuzz", total=total, status="")
        while any(j.process is not None for j in jobs):
            if deadline is not None and time.monotonic() > deadline:
                break
            from multiprocessing.connection import wait
            ready = wait([j.conn for j in jobs if j.process is not None], timeout=1.0)
            for job in jobs:
                if job.process is None:
                    continue
                if job.conn in ready:
                    try:
                        msg = job.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is None:
                        job.process.join(5)
                        if job.current is not None:
                            crashed(job, f"worker died (exit code {job.process.exitcode})")
                            progress.advance(task)
                        spawn(job)
                        continue
                    kind = msg[0]
                    if kind == "start":
                        job.current, job.since = msg[1], time.monotonic()
                    elif kind == "done":
                        _account(totals, msg[1], msg[2])
                        job.current = None
                        job.next_index = msg[1] + len(jobs)
                        progress.advance(task)
                    elif kind == "exit":
                        job.process.join(10)
                        spawn(job)
                elif job.current is not None and time.monotonic() - job.since > HANG_SECONDS:
                    job.process.kill()
                    job.process.join(5)
                    crashed(job, f"no answer for {HANG_SECONDS} s (hang)")
                    progress.advance(task)
                    spawn(job)
            progress.update(task, status=f"mismatches {totals.mismatches} crashes {totals.crashes}")
    for job in jobs:
        if job.process is not None:
            job.process.kill()
            job.process.join(5)
    elapsed = time.monotonic() - start_time
    for line in totals.failures[:50]:
        print(line)
    kernel_runs = totals.per_config.get("kernel", 0)
    print(f"seed {args.seed}, {elapsed:.0f} s, {totals.programs / max(elapsed, 1e-9):.1f} programs/s; "
          f"levels {dict(totals.levels)}; runs per config {dict(totals.per_config)}")
    if kernel_runs or totals.rejections:
        print(f"kernel: {kernel_runs} compared, {sum(totals.rejections.values())} rejected by its verifier, "
              f"{totals.explained} explained differences {dict(totals.explanations)}")
    if totals.address_dependent:
        print(f"{totals.address_dependent} address-dependent raw/mutated cases (only crashes counted)")
    print(totals.line())
    if args.report:
        Path(args.report).write_text(json.dumps({
            "seed": args.seed, "seconds": elapsed, "programs": totals.programs, "executions": totals.executions,
            "mismatches": totals.mismatches, "crashes": totals.crashes, "explained": totals.explained,
            "explanations": dict(totals.explanations), "levels": dict(totals.levels),
            "per_config": dict(totals.per_config), "rejections": dict(totals.rejections.most_common(40)),
            "address_dependent": totals.address_dependent, "failures": totals.failures}, indent=1) + "\n")
    return 1 if totals.mismatches or totals.crashes else 0


def _account(totals: Totals, index: int, summary: dict) -> None:
    totals.programs += 1
    totals.executions += summary["executions"]
    totals.levels[summary["level"]] += 1
    for c in summary["configs"]:
        totals.per_config[c] += 1
    for r in summary["rejections"]:
        totals.rejections[_rejection_kind(r)] += 1
    totals.address_dependent += summary["address_dependent"]
    for m in summary["mismatches"]:
        if m["explained"]:
            totals.explained += 1
            totals.explanations[m["explained"]] += 1
        else:
            totals.mismatches += 1
            totals.failures.append(f"mismatch: case {index} {m['detail'][:300]} (saved to {summary.get('saved')})")
    for text in summary["internal"]:
        totals.mismatches += 1
        totals.failures.append(f"internal error: case {index}: {text}")


def _rejection_kind(message: str) -> str:
    import re
    return re.sub(r"-?\d+", "N", message.split("rejects the program: ")[-1])[:70]

