"""What a benchmark run reports: the method, tables (rich), JSON, a PNG chart.

Everything is computed from the raw per-round figures (``ProgramResult.sides``), so
reports of several processes merge by concatenating rounds.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from ..errors import BpfError
from .harness import EMULATED, ProgramResult

METHOD = """\
Method: every side runs the program with the same packet and must first return the
expected r0 (computed by the C build of the same source; interp's for a program without
one), or it is refused. Native sides (C baselines, llvm, direct) are timed inside one
native loop: a C driver (gcc -O2) calls the entry N times, reading CLOCK_THREAD_CPUTIME_ID
and CLOCK_MONOTONIC around the loop and counting wrong results inside it. The kernel runs
BPF_PROG_TEST_RUN with repeat = N (batches 4x longer, for its fixed set-up per call),
timed by the same thread CPU clock around the system call (its own figure in the JSON). Interpreted and emulated engines loop in Python (CompiledProgram.invoke)
and are reported separately. N is calibrated so a batch takes ~{target:g} ms of CPU; each
round runs one batch per side in a fresh shuffled order; {rounds} rounds{processes}. Figures
are thread CPU ns per run (wall time in the JSON); ratios are taken per round, then the
median (min..max over rounds). Ratios to the kernel's JIT and to gcc -O2: lower is
faster. Geometric means over the programs where both sides ran."""


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def ratios(result: ProgramResult, side: str, ref: str) -> list[float]:
    """side / ref per round (rounds both sides completed)."""
    a, b = result.sides.get(side), result.sides.get(ref)
    if not a or not b:
        return []
    return [x / y for x, y in zip(a["cpu_ns"], b["cpu_ns"]) if y > 0]


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(statistics.mean(map(math.log, values))) if values else None


def side_names(results: list[ProgramResult], kind: str | None = None, exclude: str | None = None) -> list[str]:
    """Sides in first-seen order (native first), of one kind or all but ``exclude``."""
    names: list[str] = []
    for r in results:
        for name, s in r.sides.items():
            if name not in names and (kind is None or s["kind"] == kind) and s["kind"] != exclude:
                names.append(name)
    return names


def summary(results: list[ProgramResult]) -> dict:
    """Median ns per side, median ratios (with min..max) to each reference, geomeans."""
    names = side_names(results)
    refs = [r for r in ("gcc", "kernel", "gcc-host") if r in names]
    programs = {}
    for r in results:
        row = {"ns": {s: _median(d["cpu_ns"]) for s, d in r.sides.items()},
               "wall_ns": {s: _median(d["wall_ns"]) for s, d in r.sides.items()},
               "ratios": {}}
        for ref in refs:
            for s in r.sides:
                rs = ratios(r, s, ref)
                if rs and s != ref:
                    row["ratios"][f"{s}/{ref}"] = [_median(rs), min(rs), max(rs)]
        if "kernel" in r.sides and r.sides["kernel"]["kernel_own_ns"]:
            k = r.sides["kernel"]
            row["kernel_own_over_cpu"] = _median([o / c for o, c in zip(k["kernel_own_ns"], k["cpu_ns"]) if c])
        programs[r.name] = row
    geo = {}
    for key in sorted({k for p in programs.values() for k in p["ratios"]}):
        vals = [p["ratios"][key][0] for p in programs.values() if key in p["ratios"]]
        geo[key] = {"geomean": geomean(vals), "programs": len(vals)}
    return {"programs": programs, "geomeans": geo}


def to_json(results: list[ProgramResult], settings: dict, machine: dict) -> dict:
    return {"method": METHOD.format(target=settings["target_ms"], rounds=settings["rounds"],
                                    processes=_processes(settings)),
            "settings": settings, "machine": machine, "results": [r.to_json() for r in results],
            "summary": summary(results)}


def merge(reports: list[dict]) -> tuple[list[ProgramResult], dict]:
    """Reports of several processes as one: rounds concatenated, refusals united."""
    merged: dict[str, ProgramResult] = {}
    for report in reports:
        for d in report["results"]:
            r = ProgramResult.from_json(d)
            have = merged.get(r.name)
            if have is None:
                merged[r.name] = r
                continue
            for name, side in r.sides.items():
                if name in have.sides:
                    for key in ("cpu_ns", "wall_ns", "kernel_own_ns"):
                        have.sides[name][key] += side[key]
                else:
                    have.sides[name] = side
            have.refused.update(r.refused)
            for side in r.refused:
                have.sides.pop(side, None)
    return list(merged.values()), reports[0]["machine"]


def _processes(settings: dict) -> str:
    p = settings.get("processes", 1)
    return f" in each of {p} processes" if p > 1 else " in one process"


def _ns(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _ratio(r: list[float] | None) -> str:
    if not r:
        return "-"
    m, lo, hi = r
    return f"{m:.2f} ({lo:.2f}-{hi:.2f})"


def print_report(results: list[ProgramResult], settings: dict, machine: dict, console) -> None:
    from rich.table import Table
    s = summary(results)
    console.print(METHOD.format(target=settings["target_ms"], rounds=settings["rounds"],
                                processes=_processes(settings)))
    console.print(f"Machine: {machine['cpu']}, {machine['cores']} cores, Linux {machine['kernel']}; "
                  + "; ".join(f"{k} = {v}" for k, v in machine.get("compilers", {}).items()))
    describe = {}
    for r in results:
        for name, side in r.sides.items():
            describe.setdefault(name, side["describe"])
    console.print("Sides: " + "; ".join(f"{n} = {d}" for n, d in describe.items()))

    native = side_names(results, exclude=EMULATED)
    refs = [ref for ref in ("gcc", "kernel") if ref in native]
    ratio_cols = [(side, ref) for ref in refs for side in native if side != ref and not
                  (ref == "kernel" and side in ("gcc", "clang", "gcc-host"))]
    if "gcc-host" in native and "llvm-host" in native:       # --host: like with like
        ratio_cols.append(("llvm-host", "gcc-host"))
    table = Table(title="Native code: thread CPU ns per run (median) and ratios (median, min-max over rounds)")
    table.add_column("program")
    table.add_column("insns", justify="right")
    for side in native:
        table.add_column(side, justify="right")
    for side, ref in ratio_cols:
        table.add_column(f"{side}/{ref}", justify="right")
    for r in results:
        row = s["programs"][r.name]
        table.add_row(r.name, str(r.insns), *[_ns(row["ns"].get(side)) if side not in r.refused else "refused"
                                               for side in native],
                      *[_ratio(row["ratios"].get(f"{side}/{ref}")) for side, ref in ratio_cols])
    geo = s["geomeans"]
    table.add_row("geomean", "", *[""] * len(native),
                  *[_geo(geo.get(f"{side}/{ref}")) for side, ref in ratio_cols], style="bold")
    console.print(table)

    emulated = side_names(results, kind=EMULATED)
    if emulated:
        ref = "gcc" if "gcc" in native else (native[0] if native else None)
        table = Table(title=f"Interpreted and emulated: thread CPU ns per run (median), x {ref}")
        table.add_column("program")
        for side in emulated:
            table.add_column(side, justify="right")
            table.add_column(f"x {ref}", justify="right")
        for r in results:
            row = s["programs"][r.name]
            cells = []
            for side in emulated:
                rr = row["ratios"].get(f"{side}/{ref}")
                cells += ["refused" if side in r.refused else _ns(row["ns"].get(side)),
                          f"{rr[0]:,.0f}" if rr else "-"]
            table.add_row(r.name, *cells)
        cells = []
        for side in emulated:
            g = geo.get(f"{side}/{ref}")
            cells += ["", f"{g['geomean']:,.0f}" if g and g["geomean"] else "-"]
        table.add_row("geomean", *cells, style="bold")
        console.print(table)

    engines = sorted({e for r in results for e in r.compile_ms}, key=lambda e: list(_COMPILE_ORDER).index(e)
                     if e in _COMPILE_ORDER else 99)
    if engines:
        table = Table(title="Compile time: thread CPU ms of a fresh compile (median), bytecode to runnable code")
        table.add_column("program")
        table.add_column("insns", justify="right")
        for e in engines:
            table.add_column(e, justify="right")
        for r in results:
            table.add_row(r.name, str(r.insns), *[f"{r.compile_ms[e]:.2f}" if e in r.compile_ms else "-"
                                                  for e in engines])
        table.add_row("geomean", "", *[f"{geomean([r.compile_ms[e] for r in results if e in r.compile_ms]):.2f}"
                                       for e in engines], style="bold")
        console.print(table)
    own = [p["kernel_own_over_cpu"] for p in s["programs"].values() if p.get("kernel_own_over_cpu")]
    if own:
        console.print(f"Kernel cross-check: BPF_PROG_TEST_RUN's own ns per run / our thread CPU clock around it, "
                      f"median over programs {statistics.median(own):.2f} (range {min(own):.2f}-{max(own):.2f}; "
                      "its figure is wall time, ours includes the test run's fixed set-up)")
    for r in results:
        for side, why in r.refused.items():
            console.print(f"refused: {r.name} on {side}: {why}")


_COMPILE_ORDER = ("llvm", "llvm-arm64", "direct", "direct-arm64", "kernel")


def _geo(g: dict | None) -> str:
    return f"{g['geomean']:.2f} ({g['programs']})" if g and g["geomean"] else "-"


def plot(results: list[ProgramResult], path: str) -> None:
    """Ratios to gcc -O2 (or the first native side) per program and native side, log scale."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BpfError("--plot needs matplotlib: pip install 'jitbpf[bench]'") from None
    s = summary(results)
    native = side_names(results, exclude=EMULATED)
    ref = "gcc" if "gcc" in native else native[0]
    sides = [x for x in native if x != ref]
    names = [r.name for r in results]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(names) * max(1, len(sides)) / 2 + 1.5), dpi=90)
    height = 0.8 / max(1, len(sides))
    for i, side in enumerate(sides):
        values = [(s["programs"][n]["ratios"].get(f"{side}/{ref}") or [float("nan")])[0] for n in names]
        ax.barh([k + i * height for k in range(len(names))], values, height, label=side)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks([k + height * (len(sides) - 1) / 2 for k in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xlabel(f"time per run / {ref} (thread CPU, median of rounds; log scale, lower is faster)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_json(report: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1) + "\n")


def markdown(results: list[ProgramResult], machine: dict) -> str:
    """The native table, the geomeans and the compile times as Markdown (for the README)."""
    s = summary(results)
    native = side_names(results, exclude=EMULATED)
    emulated = side_names(results, kind=EMULATED)
    refs = [ref for ref in ("gcc", "kernel") if ref in native]
    cols = [(side, ref) for ref in refs for side in native if side != ref and not
            (ref == "kernel" and side in ("gcc", "clang", "gcc-host"))]
    head = ["program", *[f"{n} ns" for n in native], *[f"{a}/{b}" for a, b in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = s["programs"][r.name]
        cells = ["refused" if side in r.refused else _ns(row["ns"].get(side)) for side in native]
        cells += [f"{v[0]:.2f}" if (v := row["ratios"].get(f"{a}/{b}")) else "-" for a, b in cols]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    geo = s["geomeans"]
    lines.append("| **geomean** | " + " | ".join([""] * len(native)) + " | "
                 + " | ".join(f"**{g['geomean']:.2f}**" if (g := geo.get(f"{a}/{b}")) else "-" for a, b in cols)
                 + " |")
    if emulated and "gcc" in native:
        lines += ["", "| emulated / interpreted | " + " | ".join(emulated) + " |", "|---|" + "---|" * len(emulated),
                  "| geomean x gcc | " + " | ".join(f"{g['geomean']:,.0f}" if (g := geo.get(f"{e}/gcc")) else "-"
                                                     for e in emulated) + " |"]
    engines = [e for e in _COMPILE_ORDER if any(e in r.compile_ms for r in results)]
    if engines:
        lines += ["", "| compile ms (geomean over programs) | " + " | ".join(engines) + " |",
                  "|---|" + "---|" * len(engines),
                  "| thread CPU, fresh compile | " + " | ".join(
                      f"{geomean([r.compile_ms[e] for r in results if e in r.compile_ms]):.2f}" for e in engines)
                  + " |"]
    return "\n".join(lines) + "\n"
