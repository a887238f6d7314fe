"""A seeded generator of verifier test programs, for the differential against the kernel.

``valid(rng, prog_type)`` builds a program from snippets that keep it safe by
construction: context reads at legal offsets, stack slots written before they are
read, map lookups checked for NULL, map value and packet accesses inside proven
bounds, bounded loops, ring buffer records submitted, a return value in range.
``mutate(rng, text)`` then changes one thing (an offset, an immediate, a jump, a
register, a dropped instruction) so that some programs become unsafe and the two
verifiers have to tell which. Programs are assembler text; every map they use is
one of :data:`MAPS` (map_idx 0..3).
"""

from __future__ import annotations

import random
import re

#: The maps every generated program may use, by lddw map_idx index.
MAPS = [("hash", 4, 16, 16), ("array", 4, 16, 4), ("ringbuf", 0, 0, 4096), ("array", 4, 8, 1)]
TYPES = ("xdp", "tc", "socket", "kprobe", "raw_tracepoint", "cgroup_skb", "tracepoint")

#: Context reads a program type may do: (offset, size).
CTX_READS = {
    "xdp": [(12, 4), (16, 4)],
    "tc": [(0, 4), (4, 4), (8, 4), (16, 4), (36, 4), (40, 4), (48, 4), (52, 4), (68, 4), (164, 4), (152, 8)],
    "socket": [(0, 4), (4, 4), (16, 4), (48, 4), (8, 4), (40, 4)],
    "cgroup_skb": [(0, 4), (8, 4), (16, 4), (48, 4)],
    "kprobe": [(0, 8), (8, 8), (16, 8), (80, 8), (112, 8), (160, 8)],
    "raw_tracepoint": [(0, 8), (8, 8), (16, 8), (88, 8)],
    "tracepoint": [(8, 8), (16, 8), (24, 4), (32, 8)],
}
PACKET_TYPES = ("xdp", "tc")
ALU = ("add", "sub", "mul", "or", "and", "xor", "lsh", "rsh", "arsh", "div", "mod")
JMP = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset")


class _Builder:
    def __init__(self, rng: random.Random, prog_type: str):
        self.rng = rng
        self.t = prog_type
        self.lines: list[str] = []
        self.labels = 0
        self.slots: set[int] = set()          # stack offsets (multiples of 8) holding a scalar
        self.live: list[int] = []              # scalar registers holding a value

    def label(self) -> str:
        self.labels += 1
        return f"l{self.labels}"

    def emit(self, *lines: str) -> None:
        self.lines.extend(lines)

    def scalar(self, avoid: int = -1) -> int:
        choices = [r for r in (7, 8, 9) if r != avoid]
        r = self.rng.choice(choices)
        if self.rng.random() < 0.2:
            self.emit(f"mov %r{r}, {self.rng.randint(-300, 300)}")
        return r

    def define(self, r: int) -> None:
        if r not in self.live:
            self.live.append(r)

    # -- snippets
    def ctx_read(self) -> None:
        off, size = self.rng.choice(CTX_READS[self.t])
        r = self.rng.choice((7, 8, 9))
        self.emit(f"ldx{'dw' if size == 8 else 'w'} %r{r}, [%r6+{off}]")
        self.define(r)

    def alu(self, avoid: int = -1) -> None:
        r = self.scalar(avoid)
        op = self.rng.choice(ALU)
        w = self.rng.choice(("", "32"))
        if self.rng.random() < 0.5:
            imm = self.rng.randint(1, 31) if op in ("lsh", "rsh", "arsh") else self.rng.choice(
                (1, 3, 7, 15, 255, 0x7FFF, -1, -8, 100))
            if op in ("div", "mod") and imm <= 0:
                imm = 5
            self.emit(f"{op}{w} %r{r}, {imm}")
        else:
            s = self.scalar(avoid)
            self.emit(f"{op}{w} %r{r}, %r{s}")

    def spill(self) -> None:
        r = self.scalar()
        off = -8 * self.rng.randint(2, 12)
        self.emit(f"stxdw [%r10{off}], %r{r}")
        self.slots.add(off)

    def fill(self) -> None:
        if not self.slots:
            return self.spill()
        off = self.rng.choice(sorted(self.slots))
        r = self.rng.choice((7, 8, 9))
        size = self.rng.choice(("dw", "w", "h", "b"))
        self.emit(f"ldx{size} %r{r}, [%r10{off}]")
        self.define(r)

    def branch(self) -> None:
        r = self.scalar()
        skip = self.label()
        op = self.rng.choice(JMP)
        w = self.rng.choice(("", "32"))
        self.emit(f"{op}{w} %r{r}, {self.rng.randint(-50, 300)}, {skip}")
        self.alu()
        self.emit(f"{skip}:")

    def lookup(self) -> None:
        idx = self.rng.choice((0, 1, 3))
        _, _, vsize, entries = MAPS[idx]
        key = self.rng.randint(0, entries + 1)
        self.emit(f"stw [%r10-4], {key}", "mov %r2, %r10", "add %r2, -4", f"lddw %r1, map_idx({idx})", "call 1")
        out = self.label()
        self.emit(f"jeq %r0, 0, {out}")
        size, sfx = self.rng.choice(((8, "dw"), (4, "w"), (1, "b")))
        if self.rng.random() < 0.5:
            off = self.rng.randrange(0, vsize - size + 1, size)
            self.emit(f"ldx{sfx} %r7, [%r0+{off}]")
        else:                                  # a variable index, masked into range
            r = self.scalar()
            mask = (vsize - size) & ~(size - 1)
            self.emit(f"mov %r1, %r{r}", f"and %r1, {mask}", "mov %r2, %r0", "add %r2, %r1",
                      f"ldx{sfx} %r7, [%r2+0]")
        if self.rng.random() < 0.5:
            v = self.scalar()
            self.emit(f"stxw [%r0+0], %r{v}")
        self.emit(f"{out}:", "mov %r0, 0")
        self.define(7)

    def update(self) -> None:
        self.emit("stw [%r10-4], 1", "stdw [%r10-24], 5", "stdw [%r10-16], 6", "mov %r2, %r10", "add %r2, -4",
                  "mov %r3, %r10", "add %r3, -24", "lddw %r1, map_idx(0)", "mov %r4, 0", "call 2")

    def packet(self) -> None:
        if self.t not in PACKET_TYPES:
            return self.ctx_read()
        data, end = (76, 80) if self.t == "tc" else (0, 4)
        n = self.rng.choice((1, 2, 4, 8, 14, 20, 34))
        out = self.label()
        self.emit(f"ldxw %r2, [%r6+{data}]", f"ldxw %r3, [%r6+{end}]", "mov %r4, %r2", f"add %r4, {n}",
                  f"jgt %r4, %r3, {out}")
        size, sfx = self.rng.choice([(s, x) for s, x in ((1, "b"), (2, "h"), (4, "w"), (8, "dw")) if s <= n])
        off = self.rng.randint(0, n - size)
        self.emit(f"ldx{sfx} %r7, [%r2+{off}]", f"{out}:")
        self.define(7)

    def helper(self) -> None:
        self.emit(f"call {self.rng.choice((5, 7, 8))}", "mov %r7, %r0")
        self.define(7)

    def loop(self) -> None:
        top = self.label()
        n = self.rng.randint(1, 12)
        self.emit("mov %r9, 0", f"{top}:")
        self.alu(avoid=9)
        self.emit("add %r9, 1", f"jlt %r9, {n}, {top}")
        self.define(9)

    def ringbuf(self) -> None:
        out = self.label()
        size = self.rng.choice((8, 16))
        self.emit("lddw %r1, map_idx(2)", f"mov %r2, {size}", "mov %r3, 0", "call 131", f"jeq %r0, 0, {out}")
        self.emit(f"stdw [%r0+{self.rng.randrange(0, size, 8)}], 1", "mov %r1, %r0", "mov %r2, 0",
                  f"call {self.rng.choice((132, 133))}", f"{out}:")

    def bounded_index(self) -> None:
        """A map value indexed by a value bounded with branches (not a mask)."""
        idx = self.rng.choice((0, 1))
        vsize = MAPS[idx][2]
        out = self.label()
        r = self.scalar()
        self.emit("stw [%r10-4], 0", "mov %r2, %r10", "add %r2, -4", f"lddw %r1, map_idx({idx})", "call 1",
                  f"jeq %r0, 0, {out}", f"mov %r1, %r{r}")
        lo_op = self.rng.choice(("jslt", "jlt", "jslt32"))
        hi = self.rng.choice((vsize - 1, vsize - 4, vsize - 8, vsize))
        self.emit(f"{lo_op} %r1, 0, {out}" if lo_op != "jlt" else f"jlt %r1, 0, {out}",
                  f"{self.rng.choice(('jgt', 'jsgt', 'jge'))} %r1, {hi}, {out}",
                  "add %r0, %r1", "ldxb %r7, [%r0+0]", f"{out}:", "mov %r0, 0")

    def atomic(self) -> None:
        op = self.rng.choice(("add", "or", "and", "xor", "fetch add", "xchg", "cmpxchg", "fetch or"))
        w = self.rng.choice(("", "32"))
        off = -8 * self.rng.randint(2, 12)
        r = self.scalar()
        self.emit(f"stdw [%r10{off}], 0", f"mov %r0, %r{r}", f"lock {op}{w} [%r10{off}], %r{r}")
        self.slots.add(off)

    def var_stack(self) -> None:
        self.emit("stdw [%r10-40], 0", "stdw [%r10-48], 0", "stdw [%r10-56], 0", "stdw [%r10-64], 0")
        self.slots.update((-40, -48, -56, -64))
        r = self.scalar()
        mask = self.rng.choice((7, 15, 31, 24))
        size, sfx = self.rng.choice(((1, "b"), (2, "h"), (4, "w"), (8, "dw")))
        self.emit(f"mov %r1, %r{r}", f"and %r1, {mask & ~(size - 1)}", "mov %r2, %r10", "add %r2, -64",
                  "add %r2, %r1")
        if self.rng.random() < 0.5:
            self.emit(f"ldx{sfx} %r7, [%r2+0]")
        else:
            self.emit(f"stx{sfx} [%r2+0], %r{self.scalar()}")

    def pointer_spill(self) -> None:
        off = -8 * self.rng.randint(2, 12)
        self.emit(f"stxdw [%r10{off}], %r6", f"ldxdw %r6, [%r10{off}]")
        self.slots.discard(off)

    def cpuv4(self) -> None:
        r = self.scalar()
        form = self.rng.randrange(5)
        if form == 0:
            self.emit(f"movsx{self.rng.choice(('864', '1664', '3264', '832', '1632'))} %r{r}, %r{self.scalar()}")
        elif form == 1:
            self.emit(f"{self.rng.choice(('sdiv', 'smod'))}{self.rng.choice(('', '32'))} %r{r}, "
                      f"{self.rng.choice((3, -7, 100))}")
        elif form == 2:
            self.emit(f"{self.rng.choice(('le16', 'be32', 'bswap64', 'be16', 'le64', 'bswap16'))} %r{r}")
        elif form == 3 and self.slots:
            off = self.rng.choice(sorted(self.slots))
            self.emit(f"ldxs{self.rng.choice(('b', 'h', 'w'))} %r{r}, [%r10{off}]")
        else:
            self.emit(f"neg{self.rng.choice(('', '32'))} %r{r}")

    def subprog(self) -> None:
        """A call to a function (appended at the end) that writes the caller's stack."""
        self.calls = getattr(self, "calls", 0) + 1
        name = f"f{self.calls}"
        self.emit("stdw [%r10-72], 0", "mov %r1, %r10", "add %r1, -72", f"mov %r2, %r{self.scalar()}",
                  f"call local {name}", "mov %r7, %r0")
        self.slots.add(-72)
        self.functions = getattr(self, "functions", []) + [
            f"{name}:", "stxdw [%r1+0], %r2", "mov %r0, %r2", "and %r0, 255", "exit"]

    def ldabs(self) -> None:
        if self.t not in ("socket", "tc"):
            return self.ctx_read()
        self.emit(f"ldabs{self.rng.choice(('b', 'h', 'w'))} {self.rng.choice((0, 12, 14, 23, 1500))}", "mov %r7, %r0")

    def build(self) -> str:
        self.emit("mov %r6, %r1")
        for r in (7, 8, 9):
            self.emit(f"mov %r{r}, {self.rng.randint(-300, 300)}")
            self.define(r)
        snippets = [self.ctx_read, self.alu, self.alu, self.spill, self.fill, self.branch, self.lookup, self.packet,
                    self.helper, self.loop, self.ringbuf, self.update, self.bounded_index, self.atomic,
                    self.var_stack, self.pointer_spill, self.cpuv4, self.subprog, self.ldabs]
        for _ in range(self.rng.randint(2, 9)):
            self.rng.choice(snippets)()
        if self.t == "cgroup_skb":
            self.emit(f"mov %r0, {self.rng.randint(0, 1)}")
        elif self.live and self.rng.random() < 0.5:
            self.emit(f"mov %r0, %r{self.rng.choice(self.live)}")
        else:
            self.emit(f"mov %r0, {self.rng.randint(0, 3)}")
        self.emit("exit")
        self.lines += getattr(self, "functions", [])
        return "\n".join(self.lines) + "\n"


def valid(rng: random.Random, prog_type: str) -> str:
    return _Builder(rng, prog_type).build()


_NUM = re.compile(r"(?<![\w%])([+-]?\d+)(?![\w(])")


def mutate(rng: random.Random, text: str) -> str:
    """One change, of the kinds that make a safe program unsafe (or merely odd)."""
    lines = text.splitlines()
    code = [i for i, ln in enumerate(lines) if ln and not ln.endswith(":") and ln != "exit"
            and not ln.startswith("lddw")]
    i = rng.choice(code)
    ln = lines[i]
    kind = rng.randrange(6)
    if kind == 0:                                       # drop an instruction (a check, an init ...)
        del lines[i]
    elif kind == 1:                                     # change a number (offset, immediate)
        nums = list(_NUM.finditer(ln))
        if nums:
            m = rng.choice(nums)
            v = int(m.group(1))
            new = rng.choice((v + rng.choice((-8, -4, -1, 1, 4, 8)), -v, v * 2, 0, 1 << rng.randint(3, 20)))
            ln = ln[:m.start(1)] + str(new) + ln[m.end(1):]
            lines[i] = ln
    elif kind == 2:                                     # another register
        regs = re.findall(r"%r(\d+)", ln)
        if regs:
            old = rng.choice(regs)
            lines[i] = ln.replace(f"%r{old}", f"%r{rng.choice([0, 1, 2, 3, 6, 7, 8, 9, 10])}", 1)
    elif kind == 3:                                     # another condition or width
        for a, b in (("jgt", "jge"), ("jeq", "jne"), ("jlt", "jle"), ("jsgt", "jgt"), ("jle", "jslt")):
            if ln.startswith(a + " "):
                lines[i] = b + ln[len(a):]
                break
        else:
            lines[i] = re.sub(r"^(ldx|stx|st)(dw|w|h|b) ", lambda m: m.group(1) + rng.choice(("dw", "w", "h", "b")) + " ",
                              ln)
    elif kind == 4:                                     # duplicate an instruction
        lines.insert(i, ln)
    else:                                               # swap two neighbours
        j = min(i + 1, len(lines) - 1)
        if not lines[j].endswith(":") and lines[j] != "exit":
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


def programs(seed: int, count: int, mutated: float = 0.5):
    """(name, prog_type, text, is_mutated) for ``count`` programs from ``seed``."""
    rng = random.Random(seed)
    for n in range(count):
        t = rng.choice(TYPES)
        text = valid(rng, t)
        m = rng.random() < mutated
        if m:
            text = mutate(rng, text)
        yield f"g{seed}_{n}", t, text, m
