"""One benchmark run: the sides of every program built, checked, measured; compile times."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import BpfError
from ..program import load
from ..runtime import context
from . import harness, suite
from .harness import ProgramResult, Side
from .native import Compiler, Driver

#: The C baselines: the baseline x86-64 ISA, like the llvm engine's cpu=generic.
C_COMPILERS = {
    "gcc": Compiler("gcc", "gcc", ("-O2", "-march=x86-64")),
    "clang": Compiler("clang", "clang-19", ("-O2", "-march=x86-64")),
}
#: With --host: both sides compiled for this machine's CPU.
HOST_COMPILERS = {"gcc-host": Compiler("gcc-host", "gcc", ("-O2", "-march=native"))}


@dataclass
class Settings:
    engines: list[str]
    natives: list[str] = field(default_factory=lambda: list(C_COMPILERS))
    host: bool = False                 # also gcc -march=native and llvm cpu=host
    rounds: int = 5
    target_ms: float = 20.0
    compile_repeats: int = 3           # 0: no compile times
    seed: int = 1
    variants: list[str] = field(default_factory=list)    # harness.VARIANTS: extra sides


def machine() -> dict:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "kernel": platform.release(),
            "machine": platform.machine(), "python": platform.python_version(),
            "compilers": {k: c.version() for k, c in {**C_COMPILERS, **HOST_COMPILERS}.items() if c.path}}


def _driver(settings: Settings) -> Driver:
    for c in C_COMPILERS.values():
        if c.path:
            return Driver(c)
    raise BpfError("jitbpf bench needs a C compiler (gcc or clang) for its timing loop")


def _engine_sides(prog, make_inv: Callable, settings: Settings, driver: Driver, say) -> tuple[list[Side], dict]:
    sides, refused = [], {}
    wanted = [(e, harness.engine_options(e)) for e in settings.engines]
    if settings.host and "llvm" in settings.engines:
        wanted.append(("llvm-host", harness.engine_options("llvm", host_cpu=True)))
    for v in settings.variants:
        engine, extra = harness.VARIANTS[v]
        if engine in settings.engines:
            wanted.append((f"{engine}-{v}", {**harness.engine_options(engine), **extra}))
    for name, options in wanted:
        engine = {"llvm-host": "llvm"}.get(name, name)
        if name.startswith(tuple(f"{e}-{v}" for v, (e, _) in harness.VARIANTS.items())):
            engine = name.rsplit("-", 1)[0]
        describe = harness.describe_engine(engine, options)
        try:
            compiled = prog.compile(engine, **options)
        except BpfError as e:
            refused[name] = f"cannot compile: {e}"
            say(f"  {prog.name}: refusing {name}: {refused[name]}")
            continue
        if engine == "kernel":
            sides.append(harness.kernel_side(compiled, make_inv))
        elif engine in harness.NATIVE_ENGINES:
            sides.append(harness.engine_side(name, compiled, make_inv, driver, describe))
        else:
            sides.append(harness.emulated_side(name, compiled, make_inv, describe))
    return sides, refused


def _with_ring_reset(sides: list[Side], obj) -> None:
    for side in sides:
        own = side.reset
        side.reset = (lambda own=own: (harness.reset_rings(obj), own()))


def _measure_program(result: ProgramResult, obj, prog, make_inv, sides: list[Side], expected: int,
                     expected_from: str, settings: Settings, say) -> None:
    _with_ring_reset(sides, obj)
    result.expected, result.expected_from = expected, expected_from
    kept = harness.check(sides, expected, expected_from, result, say)
    reference = prog.compile("interp")                  # writes our runtime's rings, as every engine does
    cap = harness.ring_cap(obj, lambda: reference.invoke(make_inv()))
    harness.measure(kept, expected, result, settings.rounds, settings.target_ms, cap,
                    settings.seed + len(result.name), say)


def run_suite(names: list[str] | None, settings: Settings, say: Callable[[str], None]) -> list[ProgramResult]:
    driver = _driver(settings)
    compilers = {n: C_COMPILERS[n] for n in settings.natives if C_COMPILERS[n].path}
    if settings.host:
        compilers.update((n, c) for n, c in HOST_COMPILERS.items() if c.path)
    programs = suite.programs(names)
    if settings.compile_repeats and programs:
        first = load(str(programs[0].object)).program(programs[0].function)
        harness.warm_up(first, [e for e in harness.COMPILE_ENGINES if e in settings.engines])
    results = []
    for bp in programs:
        say(f"{bp.name}: {bp.description.split(':')[0]}")
        packet = bp.packet()
        obj = load(str(bp.object))
        prog = obj.program(bp.function)
        result = ProgramResult(bp.name, bp.description, len(prog.insns))
        c_sides = []
        for name, compiler in compilers.items():
            try:
                c_sides.append(harness.c_side(name, compiler, bp.source, bp.function, packet, driver))
            except BpfError as e:
                result.refused[name] = str(e)
                say(f"  {bp.name}: refusing {name}: {e}")
        make_inv = (lambda packet=packet: context.xdp(packet))
        engine_sides, refused = _engine_sides(prog, make_inv, settings, driver, say)
        result.refused.update(refused)
        if c_sides:                              # the first C build's r0 is the expected one
            c_sides[0].reset()
            expected, expected_from = c_sides[0].run_once(), c_sides[0].name
        else:
            expected, expected_from = prog.compile("interp").run(packet=packet).r0, "interp"
        _measure_program(result, obj, prog, make_inv, c_sides + engine_sides, expected, expected_from, settings,
                         say)
        if settings.compile_repeats:
            engines = [e for e in harness.COMPILE_ENGINES if e in settings.engines and e not in result.refused]
            result.compile_ms = harness.compile_times(lambda: load(str(bp.object)).program(bp.function),
                                                      engines, settings.compile_repeats)
        results.append(result)
    return results


def run_file(path: str, section: str | None, mem: bytes | None, expect: int | None, settings: Settings,
             say: Callable[[str], None]) -> list[ProgramResult]:
    """A user's program (object, raw bytecode or assembler) timed the same way; r0 checked
    against ``expect`` or the reference interpreter's."""
    driver = _driver(settings)
    obj = load(path)
    prog = obj.program(section)
    make_inv = (lambda: context.for_program(prog.prog_type, mem))
    result = ProgramResult(f"{Path(path).name}:{prog.name}", f"{prog.prog_type} program {prog.name} of {path}",
                           len(prog.insns))
    sides, refused = _engine_sides(prog, make_inv, settings, driver, say)
    result.refused.update(refused)
    if expect is not None:
        expected, expected_from = expect, "--expect"
    else:
        expected, expected_from = prog.compile("interp").invoke(make_inv()), "interp"
    _measure_program(result, obj, prog, make_inv, sides, expected, expected_from, settings, say)
    if settings.compile_repeats:
        engines = [e for e in harness.COMPILE_ENGINES if e in settings.engines and e not in result.refused]
        result.compile_ms = harness.compile_times(lambda: load(path).program(section), engines,
                                                  settings.compile_repeats)
    return [result]


def run_processes(argv: list[str], processes: int, say) -> list[dict]:
    """The same benchmark in ``processes`` fresh processes, one after the other (JIT code,
    packets and maps land at other addresses each time); their JSON reports."""
    import json
    import sys
    import tempfile
    reports = []
    for i in range(processes):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            say(f"process {i + 1} of {processes}")
            cmd = [sys.executable, "-m", "jitbpf", "bench", *argv, "--processes", "1", "--json", f.name,
                   "--quiet", "--seed", str(i + 1)]
            done = subprocess.run(cmd)
            if done.returncode:
                raise BpfError(f"benchmark process {i + 1} failed (exit {done.returncode})")
            reports.append(json.loads(Path(f.name).read_text()))
    return reports
