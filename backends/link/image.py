"""A small static linker: sections + relocations -> one loadable :class:`Image`.

Both code generators end here. The LLVM backend hands over the ELF relocatable
object that LLVM emits (``link_elf``); the direct JITs build their sections and
relocations themselves (``link``). Relocations are kept symbolic in the Image
and applied by ``Image.load(base, resolve)`` for whatever address the executor
chose (host mmap for native runs, any address inside unicorn), binding external
symbols (helpers ``bpf_*``, ``jitbpf_unwind``) through ``resolve``.

Calls to external symbols go through stubs the linker appends (x86_64:
``jmp [rip]``; arm64: ``ldr x16, #8; br x16``) followed by the 64-bit target,
because helpers live anywhere in the address space while ``call rel32`` /
``bl`` reach only +-2 GiB / +-128 MiB. A GOT holds addresses for GOT-relative
relocations. Layout: executable and read-only sections first, then a page
boundary and writable sections, so native code can be mapped W^X.

Supported relocation types (the ones LLVM emits for small-model code):
x86_64: R_X86_64_64, PC32, PLT32, GOTPCREL, GOTPCRELX, REX_GOTPCRELX, 32, 32S, PC64;
aarch64: ABS64, ABS32, PREL32, PREL64, CALL26, JUMP26, ADR_PREL_PG_HI21, ADR_PREL_LO21,
ADD_ABS_LO12_NC, LDST{8,16,32,64,128}_ABS_LO12_NC, ADR_GOT_PAGE, LD64_GOT_LO12_NC,
CONDBR19, TSTBR14.
"""

from __future__ import annotations

import bisect
import json
import struct
from dataclasses import dataclass, field
from typing import Callable

from jitbpf.errors import BpfEngineError

from .elfobj import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, ElfObject

PAGE = 4096

# ELF relocation numbers, by architecture.
X86_64_RELOCS = {1: "abs64", 2: "pc32", 4: "plt32", 9: "gotpcrel", 10: "abs32", 11: "abs32s",
                 24: "pc64", 41: "gotpcrel", 42: "gotpcrel"}
AARCH64_RELOCS = {257: "abs64", 258: "abs32", 260: "prel64", 261: "prel32", 274: "adr_lo21",
                  275: "adr_page", 277: "add_lo12", 278: "ldst8_lo12", 279: "tstbr14",
                  280: "condbr19", 282: "jump26", 283: "call26", 284: "ldst16_lo12",
                  285: "ldst32_lo12", 286: "ldst64_lo12", 299: "ldst128_lo12",
                  311: "got_page", 312: "got_lo12"}
ELF_MACHINES = {62: "x86_64", 183: "arm64"}      # e_machine -> architecture
#: Stub code per architecture; the stub's 64-bit target follows it (16 bytes in all).
STUBS = {"x86_64": bytes.fromhex("ff2502000000") + b"\x0f\x0b",          # jmp [rip+2]; ud2
         "arm64": struct.pack("<II", 0x58000050, 0xD61F0200)}               # ldr x16, #8; br x16
CALL_KINDS = frozenset({"plt32", "call26", "jump26"})
GOT_KINDS = frozenset({"gotpcrel", "got_page", "got_lo12"})
LO12_SCALE = {"ldst8_lo12": 0, "ldst16_lo12": 1, "ldst32_lo12": 2, "ldst64_lo12": 3, "ldst128_lo12": 4,
              "got_lo12": 3}


@dataclass
class Section:
    name: str
    data: bytes
    align: int = 16
    writable: bool = False
    executable: bool = False


@dataclass
class Reloc:
    """Patch ``kind`` at ``section + offset`` with ``symbol + addend``.

    ``symbol`` is a section name, a symbol defined in the image, or an external name.
    """

    section: str
    offset: int
    kind: str
    symbol: str
    addend: int = 0


@dataclass
class Image:
    """Position-independent machine code with its relocations still symbolic."""

    arch: str
    blob: bytes                                    # every section, stubs and GOT, laid out
    symbols: dict[str, int]                        # defined symbol -> offset in blob
    relocs: list[tuple[int, str, str, int]]        # (offset, kind, symbol, addend), symbol resolved at load
    externals: list[str]                           # names resolve() must bind
    writable_from: int                             # offset where writable data starts (page aligned)
    code_ranges: list[tuple[int, int]] = field(default_factory=list)   # executable (start, end)
    pc_map: list[tuple[int, int]] = field(default_factory=list)       # (blob offset, BPF slot)
    meta: dict = field(default_factory=dict)       # what a loader needs besides the code (JSON data)

    def __len__(self) -> int:
        return len(self.blob)

    def bpf_slot(self, offset: int) -> int | None:
        """The BPF instruction slot the native code at ``offset`` belongs to, where the
        backend recorded it (pc_map is sorted by native offset)."""
        if not 0 <= offset < len(self.blob) or not self.pc_map:
            return None
        i = bisect.bisect_right(self.pc_map, (offset, float("inf"))) - 1
        return self.pc_map[i][1] if i >= 0 else None

    def address_of(self, base: int, name: str) -> int:
        return base + self.symbols[name]

    MAGIC = b"JITBPF-IMAGE-1\n"

    def to_bytes(self) -> bytes:
        """A self-describing serialised image (header JSON, then the blob): loadable at any
        address in any process whose runtime binds its externals (``from_bytes``)."""
        header = json.dumps({"arch": self.arch, "symbols": self.symbols, "relocs": self.relocs,
                             "externals": self.externals, "writable_from": self.writable_from,
                             "code_ranges": self.code_ranges, "pc_map": self.pc_map, "meta": self.meta}).encode()
        return self.MAGIC + struct.pack("<II", len(header), len(self.blob)) + header + self.blob

    @classmethod
    def from_bytes(cls, data: bytes) -> "Image":
        magic = cls.MAGIC
        try:
            if not data.startswith(magic):
                raise ValueError("not a jitbpf image")
            hlen, blen = struct.unpack_from("<II", data, len(magic))
            start = len(magic) + 8
            if start + hlen + blen != len(data):
                raise ValueError(f"{len(data)} bytes, the header says {start + hlen + blen}")
            h = json.loads(data[start:start + hlen])
            image = cls(h["arch"], bytes(data[start + hlen:]), dict(h["symbols"]),
                        [tuple(r) for r in h["relocs"]], list(h["externals"]), int(h["writable_from"]),
                        [tuple(r) for r in h["code_ranges"]], [tuple(p) for p in h["pc_map"]], dict(h["meta"]))
        except (ValueError, KeyError, TypeError, struct.error) as e:
            raise BpfEngineError(f"cannot read the image: {e}") from None
        if image.arch not in STUBS:
            raise BpfEngineError(f"cannot read the image: unknown architecture {image.arch!r}")
        return image

    def load(self, base: int, resolve: Callable[[str], int]) -> bytes:
        """The blob relocated for address ``base``; externals are bound through ``resolve``."""
        out = bytearray(self.blob)
        bound: dict[str, int] = {}
        for name in self.externals:
            address = resolve(name)
            if address is None:
                raise BpfEngineError(f"unresolved symbol '{name}'")
            bound[name] = address
        for slot_name, offset in self.symbols.items():
            if slot_name.startswith(("__stub$", "__got$")):
                target = slot_name.split("$", 1)[1]
                value = bound[target] if target in bound else base + self.symbols[target]
                at = offset + (8 if slot_name.startswith("__stub$") else 0)
                struct.pack_into("<Q", out, at, value)
        for offset, kind, symbol, addend in self.relocs:
            if kind in CALL_KINDS and f"__stub${symbol}" in self.symbols:
                target = base + self.symbols[f"__stub${symbol}"]
            elif kind in GOT_KINDS:
                target = base + self.symbols[f"__got${symbol}"]
            elif symbol in self.symbols:
                target = base + self.symbols[symbol]
            else:
                target = bound[symbol]
            _apply(out, offset, base + offset, kind, target + addend)
        return bytes(out)


def _check_range(value: int, bits: int, signed: bool, what: str) -> None:
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    if not lo <= value < hi:
        raise BpfEngineError(f"relocation {what} out of range ({value:#x})")


def _patch32(out: bytearray, offset: int, mask: int, bits: int) -> None:
    word = struct.unpack_from("<I", out, offset)[0]
    struct.pack_into("<I", out, offset, (word & ~mask & 0xFFFFFFFF) | (bits & mask))


def _apply(out: bytearray, offset: int, place: int, kind: str, value: int) -> None:
    """Patch one relocation: ``value`` is S + A (stub or GOT slot already substituted for S)."""
    if kind == "abs64":
        struct.pack_into("<Q", out, offset, value & 0xFFFF_FFFF_FFFF_FFFF)
    elif kind in ("abs32", "abs32s"):
        _check_range(value, 32, kind == "abs32s", kind)
        struct.pack_into("<I", out, offset, value & 0xFFFFFFFF)
    elif kind in ("pc32", "plt32", "gotpcrel", "prel32"):
        _check_range(value - place, 32, True, kind)
        struct.pack_into("<i", out, offset, value - place)
    elif kind in ("pc64", "prel64"):
        struct.pack_into("<q", out, offset, value - place)
    elif kind in ("call26", "jump26"):
        delta = value - place
        _check_range(delta, 28, True, kind)
        _patch32(out, offset, 0x03FFFFFF, delta >> 2)
    elif kind == "condbr19":
        delta = value - place
        _check_range(delta, 21, True, kind)
        _patch32(out, offset, 0x00FFFFE0, (delta >> 2) << 5)
    elif kind == "tstbr14":
        delta = value - place
        _check_range(delta, 16, True, kind)
        _patch32(out, offset, 0x0007FFE0, (delta >> 2) << 5)
    elif kind in ("adr_page", "got_page"):
        delta = (value & ~0xFFF) - (place & ~0xFFF)
        _check_range(delta, 33, True, kind)
        imm = delta >> 12
        _patch32(out, offset, 0x60FFFFE0, ((imm & 3) << 29) | (((imm >> 2) & 0x7FFFF) << 5))
    elif kind == "adr_lo21":
        delta = value - place
        _check_range(delta, 21, True, kind)
        _patch32(out, offset, 0x60FFFFE0, ((delta & 3) << 29) | (((delta >> 2) & 0x7FFFF) << 5))
    elif kind == "add_lo12":
        _patch32(out, offset, 0x003FFC00, (value & 0xFFF) << 10)
    elif kind in LO12_SCALE:
        scale = LO12_SCALE[kind]
        lo12 = value & 0xFFF
        if lo12 & ((1 << scale) - 1):
            raise BpfEngineError(f"relocation {kind}: misaligned target {value:#x}")
        _patch32(out, offset, 0x003FFC00, (lo12 >> scale) << 10)
    else:
        raise BpfEngineError(f"unsupported relocation kind {kind}")


def link(arch: str, sections: list[Section], symbols: dict[str, tuple[str, int]], relocs: list[Reloc],
         pc_map: list[tuple[str, int, int]] | None = None) -> Image:
    """Lay out sections, add stubs and GOT slots for external symbols, keep relocations.

    ``symbols`` maps a defined name to (section, offset); ``pc_map`` optionally maps
    (section, offset) of native code to BPF slots for disassembly listings.
    """
    if arch not in STUBS:
        raise BpfEngineError(f"unsupported architecture {arch}")
    defined = set(symbols) | {s.name for s in sections}
    externals = sorted({r.symbol for r in relocs if r.symbol not in defined})
    needs_stub = sorted({r.symbol for r in relocs if r.kind in CALL_KINDS and r.symbol not in defined})
    needs_got = sorted({r.symbol for r in relocs if r.kind in GOT_KINDS})

    blob = bytearray()
    placed: dict[str, int] = {}

    def place(section: Section) -> None:
        pad = (-len(blob)) % max(section.align, 1)
        blob.extend(b"\0" * pad)
        placed[section.name] = len(blob)
        blob.extend(section.data)

    read_only = [s for s in sections if not s.writable]
    # zero-filled data last: an object written from the image keeps it as .bss
    writable = sorted((s for s in sections if s.writable), key=lambda s: not any(s.data))
    code_ranges = []
    for s in read_only:
        place(s)
        if s.executable:
            code_ranges.append((placed[s.name], placed[s.name] + len(s.data)))
    slots: dict[str, int] = {}                     # stubs and GOT entries
    stub_start = len(blob) + (-len(blob)) % 16
    blob.extend(b"\0" * (stub_start - len(blob)))
    for name in needs_stub:
        slots[f"__stub${name}"] = len(blob)
        blob.extend(STUBS[arch] + b"\0" * 8)
    if needs_stub:
        code_ranges.append((stub_start, len(blob)))
    blob.extend(b"\0" * ((-len(blob)) % 8))
    for name in needs_got:
        slots[f"__got${name}"] = len(blob)
        blob.extend(b"\0" * 8)
    writable_from = len(blob) + (-len(blob)) % PAGE if writable else len(blob)
    if writable:
        blob.extend(b"\0" * (writable_from - len(blob)))
        for s in writable:
            place(s)
    offsets = {**placed, **slots, **{name: placed[section] + off for name, (section, off) in symbols.items()}}
    image_relocs = [(placed[r.section] + r.offset, r.kind, r.symbol, r.addend) for r in relocs]
    native_pc_map = sorted((placed[sec] + off, slot) for sec, off, slot in (pc_map or []))
    return Image(arch, bytes(blob), offsets, image_relocs, externals, writable_from, code_ranges,
                 native_pc_map)


def link_elf(data: bytes, pc_map: list[tuple[str, int, int]] | None = None) -> Image:
    """Link an ELF relocatable object (as LLVM emits it) into an Image."""
    elf = ElfObject(data)
    arch = ELF_MACHINES.get(elf.machine)
    if arch is None:
        raise BpfEngineError(f"unsupported ELF machine {elf.machine}")
    kinds = X86_64_RELOCS if arch == "x86_64" else AARCH64_RELOCS
    sections: list[Section] = []
    index_to_name: dict[int, str] = {}
    for sec in elf.sections:
        if not sec.flags & SHF_ALLOC or sec.name.startswith(".eh_frame"):     # no unwind tables
            continue
        sections.append(Section(sec.name, elf.contents(sec), max(sec.addralign, 1),
                                writable=bool(sec.flags & SHF_WRITE), executable=bool(sec.flags & SHF_EXECINSTR)))
        index_to_name[sec.index] = sec.name
    table = elf.symbols()
    symbols: dict[str, tuple[str, int]] = {}
    for sym in table:
        if sym.shndx in index_to_name and sym.name and sym.type in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE"):
            symbols[sym.name] = (index_to_name[sym.shndx], sym.value)
    relocs: list[Reloc] = []
    for sec in elf.relocation_sections():
        target = index_to_name.get(sec.info)
        if target is None:
            continue
        for offset, number, index, addend in elf.relocations(sec):
            kind = kinds.get(number)
            if kind is None:
                raise BpfEngineError(f"unsupported {arch} relocation type {number} in {target}")
            sym = table[index]
            if sym.type == "STT_SECTION":
                name = index_to_name.get(sym.shndx)
                if name is None:
                    raise BpfEngineError(f"relocation against a non-loaded section in {target}")
            else:
                name = sym.name
            relocs.append(Reloc(target, offset, kind, name, addend))
    return link(arch, sections, symbols, relocs, pc_map)
