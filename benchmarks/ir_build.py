"""How fast can a BPF program be turned into a parsed LLVM module: llvmlite.ir or text?

Both builders lower the same 1,000-instruction ALU64 program the way backends/llvm.py
does (registers as allocas: load, operate, store) and end with a parsed
``llvmlite.binding`` module, the input of the optimiser. The LLVM backend uses the
faster one (text); its docstring records the figures this prints.

    python benchmarks/ir_build.py
"""

from __future__ import annotations

import random
import statistics
import time

import llvmlite.binding as llvm
from llvmlite import ir

OPS = ("add", "sub", "mul", "xor", "or", "and")


def program(n: int = 1000, seed: int = 1) -> list[tuple[str, int, int | None, int]]:
    """(op, dst, src register or None, imm) tuples."""
    rng = random.Random(seed)
    return [(rng.choice(OPS), rng.randrange(10), rng.choice([None, rng.randrange(10)]), rng.randrange(-99, 99))
            for _ in range(n)]


def with_llvmlite_ir(prog) -> str:
    i64 = ir.IntType(64)
    module = ir.Module("bpf")
    fn = ir.Function(module, ir.FunctionType(i64, [i64] * 5), "bpf_entry")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    regs = [b.alloca(i64, name=f"r{r}") for r in range(10)]
    for r in range(10):
        b.store(fn.args[r - 1] if 1 <= r <= 5 else ir.Constant(i64, 0), regs[r])
    methods = {"add": b.add, "sub": b.sub, "mul": b.mul, "xor": b.xor, "or": b.or_, "and": b.and_}
    for op, dst, src, imm in prog:
        a = b.load(regs[dst])
        operand = b.load(regs[src]) if src is not None else ir.Constant(i64, imm)
        b.store(methods[op](a, operand), regs[dst])
    b.ret(b.load(regs[0]))
    return str(module)


def with_text(prog) -> str:
    lines = ["define i64 @bpf_entry(i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %a5) {", "entry:"]
    lines += [f"  %r{r} = alloca i64" for r in range(10)]
    lines += [f"  store i64 {f'%a{r}' if 1 <= r <= 5 else 0}, ptr %r{r}" for r in range(10)]
    n = 0
    for op, dst, src, imm in prog:
        n += 3
        lines.append(f"  %t{n} = load i64, ptr %r{dst}")
        operand = imm
        if src is not None:
            lines.append(f"  %t{n + 1} = load i64, ptr %r{src}")
            operand = f"%t{n + 1}"
        lines.append(f"  %t{n + 2} = {op} i64 %t{n}, {operand}")
        lines.append(f"  store i64 %t{n + 2}, ptr %r{dst}")
    lines += ["  %ret = load i64, ptr %r0", "  ret i64 %ret", "}"]
    return "\n".join(lines)


def measure(build, prog, repeat: int = 15) -> float:
    """Median milliseconds for build + parse_assembly."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        llvm.parse_assembly(build(prog))
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    llvm.initialize_all_targets()
    prog = program()
    builder, text = measure(with_llvmlite_ir, prog), measure(with_text, prog)
    print(f"IR for 1,000 ALU instructions, built and parsed: llvmlite.ir {builder:.1f} ms, "
          f"text {text:.1f} ms ({builder / text:.1f}x)")


if __name__ == "__main__":
    main()
