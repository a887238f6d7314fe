"""The direct JITs' fast assembly: keystone's encodings, learned once and patched.

keystone stays the only source of encodings, but it is asked about each distinct
line, branch form and instruction *shape* once per process instead of about every
program:

- **Shapes.** A target's ``shape(insn, spec)`` names everything its template's text
  depends on except the immediates/offsets it lists as *values* (their class, e.g.
  "fits imm8", stays in the key). A shape is learned after the walk of the second
  program that brings it (so a process that compiles one program pays no learning;
  at most LEARN_PER_PROGRAM per program, the most frequent first): an instruction of
  it is assembled together with probes (the same shape, other values, chosen so that
  every value bit the shape lets vary is flipped by one) and each value's fields are
  found by search over a few forms (start at or a few bits below the lowest varying
  bit, width, and value, -value, value >> k, ~value >> k, the simplest first); the patcher must reproduce every probe, two of them held
  out, or the shape is cached per exact value instead. Templates with side effects
  (labels, out-of-line code, relocations) or text that depends on pc stay text.
- **Lines.** Template text that is not a cached shape (calls, ticks, checks, the
  prologue and routines) is encoded line by line from a cache; the new lines of a
  program are assembled in one keystone call.
- **Branches.** A line that names a label is a branch form (``jne {}``, ``b.eq {}``,
  ``lea r10, [rip + {}]``) whose short and long encodings and displacement field are
  learned from keystone probes. Layout starts every relaxable branch short and grows
  those out of range until none is (the least fixpoint, which is what keystone's own
  relaxation reaches); an arm64 conditional branch out of range becomes the inverted
  branch over a ``b``, as the text path lays it out.

The result is byte for byte what keystone produces for the program's whole text
(tests/test_direct_fast.py checks it on generated programs). Anything the fast path
cannot handle raises :class:`Unsupported`, and the emitter falls back to that text path.
"""

from __future__ import annotations

import random
import re
import struct
from dataclasses import dataclass, replace
from itertools import accumulate

from jitbpf import isa
from jitbpf.isa import Insn

LABEL = re.compile(r"\b(?:[LJMTF]\d+|KH\d+|K_\w+)\b")
TARGET = "\0target"                  # a cached piece's branch to the instruction's jump target
WIDTHS = (6, 8, 9, 12, 14, 16, 19, 26, 32, 64)
TRANSFORMS = (lambda v: v, lambda v: -v, lambda v: v >> 1, lambda v: v >> 2, lambda v: v >> 3,
              lambda v: v >> 12, lambda v: -v >> 12, lambda v: v >> 16, lambda v: v >> 32, lambda v: v >> 48,
              lambda v: ~v, lambda v: ~v >> 16, lambda v: ~v >> 32, lambda v: ~v >> 48)
VALUE_RANGES = {"imm": (-(1 << 31), 1 << 31), "off": (-(1 << 15), 1 << 15), "imm64": (-(1 << 63), 1 << 63)}


PLACEHOLDER = [bytes(n) for n in range(17)]
LINES_KEPT = 200_000
LEARN_PER_PROGRAM = 96               # new shapes learned per program, the most frequent first, and
                                     # only from their second program on: one compile costs about
                                     # what the text path does, learning pays off for later ones


class Unsupported(Exception):
    """The fast path cannot assemble this program; the text path will (or will say why not)."""


@dataclass(frozen=True)
class Form:
    """A label-referencing instruction: short (relaxable) and long encodings with the
    displacement field, or the inverted branch over a ``b`` as the long form (arm64)."""
    text: str
    short: tuple | None              # (bytes with the field zero, field lo bit, width, bias, shift)
    long: tuple | None
    over: "Form | None" = None       # arm64: the long form is ``inverted(+8); b target``
    jump: "Form | None" = None

    @property
    def size(self) -> int:
        return len((self.short or self.long)[0])

    @property
    def long_size(self) -> int:
        return 8 if self.over is not None else len(self.long[0])


def _fits(enc: tuple, distance: int) -> bool:
    value, rem = divmod(distance - enc[3], 1 << enc[4])
    return rem == 0 and -(1 << (enc[2] - 1)) <= value < 1 << (enc[2] - 1)


def _put(enc: tuple, distance: int) -> bytes:
    code, lo, width, bias, shift = enc
    value = ((distance - bias) >> shift) & ((1 << width) - 1)
    return (int.from_bytes(code, "little") | value << lo).to_bytes(len(code), "little")


@dataclass
class Piece:
    """A shape's cached code: parts (bytes, or (Form, label) branches) and, per value, the
    fields that encode it in the concatenated plain bytes."""
    parts: list
    fields: list                    # per value: [(lo, width, transform)]
    runs: list                      # lengths of the plain runs, in order
    base: int = 0

    def __post_init__(self):
        self.jumps = any(type(p) is tuple and p[1] == TARGET for p in self.parts)
        self.simple = not self.fields and not self.jumps          # the same parts every time
        self.size = sum(self.runs)
        if len(self.fields) == 1 and len(self.fields[0]) == 1 and len(self.parts) == 1:
            self.instance = self._one                             # the common case, quicker

    def _one(self, values: tuple, target: str | None) -> list:
        lo, width, t = self.fields[0][0]
        return [(self.base | (t(values[0]) & ((1 << width) - 1)) << lo).to_bytes(self.size, "little")]

    def instance(self, values: tuple, target: str | None) -> list:
        if self.fields:
            code = self.base
            for v, fields in zip(values, self.fields):
                for lo, width, t in fields:
                    code |= (t(v) & ((1 << width) - 1)) << lo
            blob = code.to_bytes(sum(self.runs), "little")
            out, at, k = [], 0, 0
            for part in self.parts:
                if type(part) is bytes:
                    out.append(blob[at:at + self.runs[k]])
                    at += self.runs[k]
                    k += 1
                else:
                    out.append(part)
            parts = out
        else:
            parts = self.parts
        if target is None:
            return parts
        return [(p[0], target) if type(p) is tuple and p[1] == TARGET else p for p in parts]


EXACT = "exact"                      # a shape that is cached per exact value
TEXT = "text"                        # a shape whose template always runs as text
MISSING = "missing"


class Assembler:
    """Per target (one per emitter class, kept for the process): the caches and keystone."""

    def __init__(self, emitter_class):
        self.cls = emitter_class
        self.arm = emitter_class.arch == "arm64"
        self.lines: dict[str, object] = {}          # text line -> bytes | (Form, label)
        self.forms: dict[str, Form] = {}
        self.shapes: dict = {}                      # shape key -> Piece | EXACT | None (uncacheable)
        self.exact: dict = {}
        self.sightings: dict = {}                   # shape key -> programs that brought it unlearned
        self.calls = 0                              # keystone calls (for the benchmark)

    # ------------------------------------------------------------------ keystone
    def _asm(self, text: str) -> bytes:
        from .emitter import _keystone
        self.calls += 1
        for attempt in range(2):
            try:
                encoding, _ = _keystone(self.cls.ks_arch, self.cls.ks_mode, fresh=attempt > 0).asm(text, 0)
                return bytes(encoding or b"")
            except Exception:
                continue
        raise Unsupported(text[:200])

    def encode(self, lines) -> None:
        """Encode lines that are new to the cache, in one keystone call."""
        new = list(dict.fromkeys(line for line in lines if line not in self.lines))
        if not new:
            return
        if len(self.lines) > LINES_KEPT:                # e.g. trap stubs name their pc: bound the cache
            self.lines.clear()
        text = "\n".join(f"{line}\nQ{i}:" for i, line in enumerate(new))
        table = "\n".join(f".long Q{i} - Q_start" for i in range(len(new)))
        blob = self._asm(f"Q_start:\n{text}\n{table}\n.long 0x5eb0f00d\n")
        size = len(blob) - 4 * len(new) - 4
        if size < 0 or blob[-4:] != struct.pack("<I", 0x5EB0F00D):
            raise Unsupported("keystone dropped lines")
        ends = struct.unpack_from(f"<{len(new)}I", blob, size)
        for line, start, end in zip(new, (0, *ends), ends):
            self.lines[line] = blob[start:end]

    # ------------------------------------------------------------------ branch forms
    def form(self, text: str) -> Form:
        form = self.forms.get(text)
        if form is None:
            self.learn_forms([text])
            form = self.forms[text]
        return form

    def learn_forms(self, texts) -> None:
        """Learn branch forms (``jne {}``...) from keystone probes, in one call: the branch
        to a label before or after a filler of a few sizes."""
        texts = [t for t in dict.fromkeys(texts) if t not in self.forms]
        if not texts:
            return
        probes = ((True, 4), (True, 20), (False, 16), (False, 1024)) if self.arm else \
            ((True, 8), (True, 300), (False, 40), (False, 300))
        chunks = []
        for text in texts:
            for forward, n in probes:
                label = f"Z{len(chunks)}"
                line, filler = text.format(label), (".long " if self.arm else ".byte ") + \
                    ", ".join(["0"] * (n // 4 if self.arm else n))
                chunks.append(f"{line}\n{filler}\n{label}:" if forward else f"{label}:\n{filler}\n{line}")
        source = "".join(f"Q{k}:\n{chunk}\n" for k, chunk in enumerate(chunks)) + f"Q{len(chunks)}:\n"
        source += "\n".join(f".long Q{k} - Q0" for k in range(1, len(chunks) + 1)) + "\n.long 0x5eb0f00d\n"
        blob = self._asm(source)
        size = len(blob) - 4 * len(chunks) - 4
        if size < 0 or blob[-4:] != struct.pack("<I", 0x5EB0F00D):
            raise Unsupported("keystone dropped branch probes")
        ends = struct.unpack_from(f"<{len(chunks)}I", blob, size)
        for i, text in enumerate(texts):
            samples = []
            for k, (forward, n) in enumerate(probes, 4 * i):
                chunk = blob[ends[k - 1] if k else 0:ends[k]]
                samples.append(chunk[:len(chunk) - n] if forward else chunk[n:])
            self.forms[text] = self._form(text, samples)

    def _form(self, text: str, samples: list[bytes]) -> Form:
        if self.arm:
            pairs = list(zip((8, 24, -16, -1024), samples))
            for lo, width in ((0, 26), (5, 19), (5, 14)):
                mask = ((1 << width) - 1) << lo
                code = int.from_bytes(samples[0], "little") & ~mask
                enc = (code.to_bytes(4, "little"), lo, width, 0, 2)
                if all(_put(enc, d) == b for d, b in pairs):
                    return Form(text, enc, None)
            raise Unsupported(f"branch form {text!r}")
        near, far, back_near, back_far = samples

        def enc(code: bytes, width: int) -> tuple:
            return (code[:-width // 8] + bytes(width // 8), 8 * (len(code) - width // 8), width, len(code), 0)
        long = enc(far, 32)
        short = enc(near, 8) if len(near) < len(far) else None
        checks = [(long, 300 + len(far), far), (long, -300, back_far)]
        checks += [(short, 8 + len(near), near), (short, -40, back_near)] if short else [(long, 8 + len(far), near)]
        for e, distance, blob in checks:       # distance: target - start
            if _put(e, distance) != blob:
                raise Unsupported(f"branch form {text!r}")
        return Form(text, short, long)

    def conditional(self, branch) -> Form:
        """An arm64 ``Branch``: its own form, long = inverted over ``b``."""
        text = branch.text(label="{}")
        form = self.forms.get("\0" + text)
        if form is None:
            base = self.form(text)
            form = self.forms["\0" + text] = replace(base, over=self.form(branch.inverted("{}")),
                                                     jump=self.form("b {}"))
        return form

    # ------------------------------------------------------------------ layout
    def assemble(self, emitter) -> tuple[bytes, dict]:
        """Code and label offsets for the emitter's lines: text, labels (``"X:"``, or a BPF
        pc for ``L<pc>``), cached parts."""
        cache = self.lines
        code, labels, pcs, branches, pending, refs = [], {}, {}, [], [], []
        append = code.append
        for line in emitter.lines:
            kind = type(line)
            if kind is bytes:
                append(line)
                continue
            if kind is int:
                pcs[line] = len(code)
                append(b"")
                continue
            if kind is str:
                if line[-1] == ":":
                    labels[line[:-1]] = len(code)
                    append(b"")
                    continue
                hit = cache.get(line)
                if hit is None:
                    match = LABEL.search(line)
                    if match is None:
                        pending.append((len(code), line))
                    else:
                        refs.append((len(code), line))
                    append(None)
                    continue
                if type(hit) is bytes:
                    append(hit)
                    continue
                line = hit
            elif kind is not tuple:                     # arm64 Branch
                form = self.forms.get("\0" + line.text(label="{}"))
                if form is None:
                    refs.append((len(code), line))
                    append(None)
                    continue
                line = (form, line.label)
            branches.append((len(code), line))
            append(PLACEHOLDER[line[0].size])
        if refs:                                        # new branch forms, learned together
            texts = []
            for _, line in refs:
                if type(line) is str:
                    texts.append(self._ref(line)[0])
                else:
                    texts += [line.text(label="{}"), line.inverted("{}"), "b {}"]
            self.learn_forms(texts)
            for i, line in refs:
                item = self._line(line) if type(line) is str else (self.conditional(line), line.label)
                branches.append((i, item))
                code[i] = PLACEHOLDER[item[0].size]
        if pending or emitter.requests:
            self.learn(emitter, [line for _, line in pending])
            for i, line in pending:
                code[i] = cache[line]
        where = {}
        for i, (form, label) in branches:
            at = labels.get(label)
            if at is None and label[0] == "L" and label[1:].isdigit():
                at = pcs.get(int(label[1:]))
            if at is None:
                raise Unsupported(f"undefined label {label}")
            where[i] = at
        grown: set[int] = set()
        while True:
            offsets = list(accumulate(map(len, code), initial=0))
            more = False
            for i, (form, label) in branches:
                if form.short is None or i in grown:
                    continue
                if not _fits(form.short, offsets[where[i]] - offsets[i]):
                    if form.long is None and form.over is None:
                        raise Unsupported(f"branch out of range: {form.text}")
                    grown.add(i)
                    code[i] = PLACEHOLDER[form.long_size]
                    more = True
            if not more:
                break
        for i, (form, label) in branches:
            distance = offsets[where[i]] - offsets[i]
            if i not in grown:
                code[i] = _put(form.short or form.long, distance)
            elif form.over is not None:
                code[i] = _put(form.over.short, 8) + _put(form.jump.short, distance - 4)
            else:
                code[i] = _put(form.long, distance)
        emitter.pc_offsets = [offsets[i] for i in pcs.values()]
        return b"".join(code), {label: offsets[i] for label, i in labels.items()}

    def _ref(self, line: str) -> tuple[str, str] | None:
        """A text line that names a label: (its form's text, the label); None for plain lines."""
        match = LABEL.search(line)
        if match is None:
            return None
        if LABEL.search(line, match.end()):
            raise Unsupported(line)
        return line[:match.start()] + "{}" + line[match.end():], match.group()

    def _line(self, line: str):
        """A text line that names a label: its (Form, label), cached; None for plain lines."""
        ref = self._ref(line)
        if ref is None:
            return None
        hit = self.lines[line] = (self.form(ref[0]), ref[1])
        return hit

    def convert(self, lines) -> list:
        """Text lines (and labels, arm64 Branches, cached parts) -> bytes / labels / branches."""
        out, pending = [], []
        for line in lines:
            if type(line) is str:
                if line[-1] == ":":
                    out.append(line[:-1])
                    continue
                hit = self.lines.get(line) or self._line(line)
                if hit is None:
                    pending.append((len(out), line))
                out.append(hit)
            elif type(line) in (bytes, tuple):
                out.append(line)
            else:                                   # arm64 Branch
                out.append((self.conditional(line), line.label))
        if pending:
            self.encode([line for _, line in pending])
            for i, line in pending:
                out[i] = self.lines[line]
        return out

    # ------------------------------------------------------------------ shapes
    def piece(self, emitter, pc: int, insn, spec, key, values: tuple, make) -> list | None:
        """The parts of one instruction of shape ``key``; None: the template runs as text
        this time (a new shape is learned after the walk, with the program's new lines)."""
        entry = self.shapes.get(key, MISSING)
        if entry is TEXT:
            return None
        target = emitter.target(pc, isa.jump_target(insn, pc)) if spec.kind in ("jcond", "ja") else None
        if entry is EXACT:
            exact = self.exact.get((key, values))
            if exact is not None:
                return exact.instance((), target)
            key, values, make = (EXACT, key, values), (), None
        elif entry is not MISSING:
            return entry.instance(values, target)
        request = emitter.requests.get(key)
        if request is None:
            emitter.requests[key] = [1, (pc, insn, spec, values, make)]
        else:
            request[0] += 1
        return None

    def learn(self, emitter, lines: list) -> None:
        """Learn the shapes the walk asked for; their probes' lines and ``lines`` (the
        program's new ones) are encoded in one keystone call."""
        sightings = self.sightings
        for key in emitter.requests:
            sightings[key] = sightings.get(key, 0) + 1
        wanted = sorted((item for item in emitter.requests.items() if sightings[item[0]] > 1),
                        key=lambda item: -item[1][0])[:LEARN_PER_PROGRAM]
        emitter.requests = {key: request for key, (_, request) in wanted}
        plans = [plan for key, request in emitter.requests.items()
                 if (plan := self._plan(emitter, key, *request)) is not None]
        text = [line for plan in plans for sample in plan[2] for line in sample[2]
                if type(line) is str and line[-1] != ":" and line not in self.lines and not LABEL.search(line)]
        try:
            self.encode(lines + text)
        except Unsupported:                     # keystone refused a probe (or the program's text)
            for plan in plans:
                self.shapes[plan[0][1] if plan[0][0] is EXACT else plan[0]] = TEXT
            emitter.requests.clear()
            self.encode(lines)
            return
        for plan in plans:
            self._finish(emitter, *plan)
        emitter.requests.clear()

    def _scratch(self, emitter, pc: int, insn, spec) -> list | None:
        """The template's lines for ``insn``, if they are self-contained: no out-of-line
        code, relocations, fresh labels or other side effects."""
        scratch = type(emitter)(emitter.program)
        getattr(scratch, "op_" + spec.kind)(pc, insn, spec)
        if scratch.cold or scratch.marks or scratch.relocs or scratch.counter or scratch.errors \
                or scratch.uses_check or scratch.uses_callx:
            return None
        return scratch.lines

    def _plan(self, emitter, key, pc: int, insn, spec, values: tuple, make):
        """(key, values, [(values, insn, lines)] samples, probes per value) or None."""
        lines = self._scratch(emitter, pc, insn, spec)
        if lines is None or spec.kind not in ("jcond", "ja") and self._scratch(emitter, pc + 1, insn, spec) != lines:
            self.shapes[key[1] if key[0] is EXACT else key] = TEXT        # a template that depends on pc
            return None
        samples = [(values, insn, lines)]
        per_value = []
        if values:
            rng = random.Random(repr(key))
            for j, (name, v) in enumerate(zip(make.names, values)):
                pool = {}
                for w in _candidates(v, name, rng):
                    vals = values[:j] + (w,) + values[j + 1:]
                    if vals not in pool:
                        shape = emitter.shape(pc, make(insn, vals), spec)
                        if shape is not None and shape[0] == key:
                            pool[vals] = v ^ w
                probes = _cover(pool, rng)
                for vals in probes:
                    probe = make(insn, vals)
                    lines = self._scratch(emitter, pc, probe, spec)
                    if lines is None:
                        probes = []
                        break
                    samples.append((vals, probe, lines))
                if len(probes) < 6:
                    self.shapes[key] = EXACT
                    return None
                per_value.append(probes)
        return key, values, samples, per_value

    def _piece(self, emitter, pc: int, insn, spec, lines: list) -> Piece | None:
        target = emitter.target(pc, isa.jump_target(insn, pc)) if spec.kind in ("jcond", "ja") else None
        parts = []
        for part in self.convert(lines):
            if type(part) is str:
                return None
            if type(part) is tuple:
                label = part[1]
                if label == target:
                    part = (part[0], TARGET)
                elif not label.startswith("K_"):
                    return None
            parts.append(part)
        return Piece(parts, [], [len(p) for p in parts if type(p) is bytes])

    def _finish(self, emitter, key, values: tuple, samples: list, per_value: list) -> None:
        (pc, spec) = emitter.requests[key][0], emitter.requests[key][2]
        pieces = {}
        for vals, insn, lines in samples:
            piece = self._piece(emitter, pc, insn, spec, lines)
            if piece is None:
                self.shapes[key[1] if key[0] is EXACT else key] = TEXT
                return
            pieces[vals] = piece
        first = pieces[values]
        if key[0] is EXACT:
            self.exact[key[1:]] = first
            return
        self.shapes[key] = self._fit(values, first, pieces, per_value)

    def _fit(self, values: tuple, first: Piece, pieces: dict, per_value: list):
        """A patching Piece that reproduces every sample (the held-out ones too), or EXACT."""
        if not values:
            return first
        if any(_structure(p) != _structure(first) for p in pieces.values()):
            return EXACT
        blob = {vals: int.from_bytes(b"".join(p for p in piece.parts if type(p) is bytes), "little")
                for vals, piece in pieces.items()}
        fields, covered = [], 0
        for j, probes in enumerate(per_value):
            learn = [values, *probes[:-2]]
            found = _fields([(vals[j], blob[vals]) for vals in learn], blob[values], 8 * sum(first.runs))
            if found is None:
                return EXACT
            fields.append(found)
            for lo, width, _ in found:
                if covered >> lo & ((1 << width) - 1):
                    return EXACT
                covered |= ((1 << width) - 1) << lo
        piece = Piece(first.parts, fields, first.runs, blob[values] & ~covered)
        for vals, sample in pieces.items():              # every probe, the held-out ones included
            if piece.instance(vals, None) != sample.parts:
                return EXACT
        return piece


def _structure(piece: Piece) -> list:
    return [len(p) if type(p) is bytes else p for p in piece.parts]


def _cover(pool: dict, rng: random.Random) -> list:
    """Probes from ``pool`` (values -> the bits they flip) that flip every bit any of them
    flips (so every field bit the shape lets vary is seen varying), at least 4, then two
    more held out for the check."""
    chosen, seen = [], 0
    rest = list(pool)
    while rest:
        best = max(rest, key=lambda vals: (pool[vals] & ~seen).bit_count())
        if not pool[best] & ~seen and len(chosen) >= 4:
            break
        chosen.append(best)
        seen |= pool[best]
        rest.remove(best)
    rng.shuffle(rest)
    return chosen + rest[:2] if len(rest) >= 2 else []


def _candidates(v: int, name: str, rng: random.Random):
    """Probe values for a value ``v``: each of its bits flipped, a few ranges of them
    flipped, random values of many widths and both signs; the caller keeps those of the
    same shape."""
    low, high = VALUE_RANGES[name]
    bits = 64 if name == "imm64" else 32 if name == "imm" else 16
    out = [v ^ 1 << k for k in range(bits)]
    out += [v ^ 1 << k ^ -1 << high for high in (8, 9, 12) for k in range(min(high, bits))]   # and the sign
    for start, width in ((0, 8), (0, 12), (3, 9), (0, 16), (16, 16), (32, 16), (48, 16), (0, 32)):
        if start + width <= bits:
            mask = ((1 << width) - 1) << start
            out += [v ^ (rng.getrandbits(64) & mask), v ^ (0x5555_5555_5555_5555 & mask)]
    for width in (4, 8, 9, 12, 16, 24, 31, 32, 48, 63):
        if width < bits:
            r = rng.getrandbits(width)
            out += [r, -r, r & ~7, r << 12]
    for w in out:
        w = isa.sign_extend(w & ((1 << bits) - 1), bits)
        if low <= w < high and w != v:
            yield w


def _fields(samples: list[tuple[int, int]], first: int, bits: int) -> list | None:
    """Fields (lo, width, transform) that explain how the value changes the code: every
    varying bit belongs to one, fields do not overlap, each reproduces every sample; the
    widest consistent field is taken (probes of both signs make the top bits vary)."""
    varying = 0
    for _, code in samples:
        varying |= code ^ first
    found, taken = [], 0
    while varying:
        a = (varying & -varying).bit_length() - 1
        for lo, width, t in _hypotheses(a, bits):
            mask = ((1 << width) - 1) << lo
            if mask & taken or varying & ~mask & ((1 << (lo + width)) - 1) >> a << a != 0:
                continue
            m = (1 << width) - 1
            if all((code >> lo) & m == t(v) & m for v, code in samples):
                found.append((lo, width, t))
                taken |= mask
                varying &= ~mask
                break
        else:
            return None
    return found


def _hypotheses(a: int, bits: int):
    """Where a field may start: at the lowest varying bit ``a``, or a few bits below it
    (value bits no probe could flip in this shape); the simplest transform first, so
    that ``value`` at a-1 wins over ``value >> 1`` at a when both explain the probes."""
    for t in TRANSFORMS:
        for lo in range(a, max(-1, a - 5), -1):
            for width in sorted(WIDTHS, reverse=True):
                if lo + width <= bits:
                    yield lo, width, t


class Maker:
    """Builds a probe instruction from values (names: which fields they are)."""

    def __init__(self, *names: str):
        self.names = names

    def __call__(self, insn, values: tuple):
        fields = {"off": insn.off, "imm": insn.imm, "next_imm": insn.next_imm}
        for name, v in zip(self.names, values):
            if name == "imm64":
                u = v & isa.MASK64
                fields["imm"], fields["next_imm"] = isa.to_s32(u & 0xFFFF_FFFF), isa.to_s32(u >> 32)
            else:
                fields[name] = v
        return Insn(insn.opcode, insn.dst, insn.src, fields["off"], fields["imm"], fields["next_imm"])


IMM, OFF, OFF_IMM, IMM64 = Maker("imm"), Maker("off"), Maker("off", "imm"), Maker("imm64")
