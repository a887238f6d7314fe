"""Images as relocatable ELF objects and raw blobs: merging, writing and reading them.

``flatten`` turns an Image's stubs and GOT slots into plain 64-bit relocations, so every
relocation an image needs is explicit; ``merge`` links several images (the programs and
the runtime) into one, renaming what each defines except the names it exports; ``to_elf``
writes an image as an ELF relocatable object (``.text`` = code and constants, ``.data`` =
writable data, RELA relocations against the section symbols or undefined externals,
a non-allocated ``.jitbpf`` section with the JSON manifest); ``to_raw``/``from_raw`` are
the flat blob and its JSON manifest. Reading an object back goes through the linker
(:func:`backends.link.link_elf`); every malformed input is a ``BpfLoadError``.
"""

from __future__ import annotations

import json
import struct

from ..backends.link import Image, Section
from ..backends.link.image import AARCH64_RELOCS, CALL_KINDS, ELF_MACHINES, GOT_KINDS, STUBS, X86_64_RELOCS, Reloc, link

from ..errors import BpfLoadError

MANIFEST_SECTION = ".jitbpf"
EM = {"x86_64": 62, "arm64": 183}
#: kind -> ELF relocation type, per architecture (one number per kind)
RELOC_NUMBERS = {"x86_64": {}, "arm64": {}}
for _arch, _table in (("x86_64", X86_64_RELOCS), ("arm64", AARCH64_RELOCS)):
    for _number, _kind in sorted(_table.items(), reverse=True):
        RELOC_NUMBERS[_arch][_kind] = _number
# an explicit GOT slot is reached the way a GOT entry is, as plain data
GOT_AS_DATA = {"gotpcrel": "pc32", "got_page": "adr_page", "got_lo12": "ldst64_lo12"}


def flatten(image: Image) -> list[tuple[int, str, str, int]]:
    """Every relocation of ``image`` as (offset, kind, symbol, addend): calls go to the stubs,
    GOT loads to the slots, and stubs and slots hold abs64 relocations to their targets."""
    out = []
    for offset, kind, symbol, addend in image.relocs:
        if kind in CALL_KINDS and f"__stub${symbol}" in image.symbols:
            out.append((offset, kind, f"__stub${symbol}", addend))
        elif kind in GOT_KINDS:
            out.append((offset, GOT_AS_DATA[kind], f"__got${symbol}", addend))
        else:
            out.append((offset, kind, symbol, addend))
    for name, offset in image.symbols.items():
        if name.startswith("__stub$"):
            out.append((offset + len(STUBS[image.arch]), "abs64", name.split("$", 1)[1], 0))
        elif name.startswith("__got$"):
            out.append((offset, "abs64", name.split("$", 1)[1], 0))
    return out


def _parts(image: Image, prefix: str, exports: dict[str, str]):
    """An image as link() input: a text and a data section, renamed symbols, relocations."""
    text, data = f"{prefix}text", f"{prefix}data"
    sections = [Section(text, image.blob[:image.writable_from], 16, executable=True)]
    if image.writable_from < len(image.blob):
        sections.append(Section(data, image.blob[image.writable_from:], 4096, writable=True))

    def where(offset: int) -> tuple[str, int]:
        return (text, offset) if offset < image.writable_from else (data, offset - image.writable_from)

    def rename(name: str) -> str:
        return exports.get(name, prefix + name)

    symbols = {rename(n): where(off) for n, off in image.symbols.items()}
    relocs = []
    for offset, kind, symbol, addend in flatten(image):
        section, at = where(offset)
        target = rename(symbol) if symbol in image.symbols else symbol
        relocs.append(Reloc(section, at, kind, target, addend))
    return sections, symbols, relocs


def merge(arch: str, parts: list[tuple[Image, str, dict[str, str]]]) -> Image:
    """One image of several: (image, prefix for its names, {name: exported name})."""
    sections, symbols, relocs = [], {}, []
    for image, prefix, exports in parts:
        s, sy, r = _parts(image, prefix, exports)
        sections += s
        clash = set(sy) & set(symbols)
        if clash:
            raise BpfLoadError(f"symbol defined twice: {sorted(clash)[0]}")
        symbols.update(sy)
        relocs += r
    return link(arch, sections, symbols, relocs)


# ------------------------------------------------------------------------------ ELF


def _strtab(names: list[str]) -> tuple[bytes, dict[str, int]]:
    data, at = bytearray(b"\0"), {"": 0}
    for n in names:
        if n not in at:
            at[n] = len(data)
            data += n.encode() + b"\0"
    return bytes(data), at


def to_elf(image: Image, exports: set[str], manifest: dict) -> bytes:
    """A relocatable ELF object of ``image``: ``exports`` are global symbols, every other
    defined name local; externals are undefined globals."""
    arch = image.arch
    numbers = RELOC_NUMBERS[arch]
    relocs = sorted(flatten(image))
    wf = image.writable_from
    # the zero tail of the writable data no relocation patches is .bss (the BPF stack,
    # run state and packet buffer take no room in the file)
    used = max([wf] + [o + 8 for o, _, _, _ in relocs if o >= wf])
    nonzero = len(image.blob.rstrip(b"\0"))
    bss = max(used, nonzero, wf)
    bss += (-bss) % 16
    bss = min(bss, len(image.blob))
    text, data, bss_size = image.blob[:wf], image.blob[wf:bss], len(image.blob) - bss
    # section indices: 1 .text, 2 .data, 3 .bss, 4 .rela.text, 5 .rela.data, 6 .symtab, 7 .strtab,
    # 8 .jitbpf, 9 .note.GNU-stack, 10 .shstrtab
    starts = {1: 0, 2: wf, 3: bss}

    def section_of(offset: int) -> tuple[int, int]:
        shndx = 1 if offset < wf else 2 if offset < bss else 3
        return shndx, offset - starts[shndx]

    defined = sorted(image.symbols.items(), key=lambda kv: kv[1])
    local = [(n, o) for n, o in defined if n not in exports]
    global_ = [(n, o) for n, o in defined if n in exports]
    externals = sorted({s for _, _, s, _ in relocs if s not in image.symbols})
    strings, at = _strtab([n for n, _ in defined] + externals)
    sym = struct.Struct("<IBBHQQ")
    syms = [sym.pack(0, 0, 0, 0, 0, 0)] + [sym.pack(0, 3, 0, i, 0, 0) for i in (1, 2, 3)]
    index = {}
    code_end = max((e for _, e in image.code_ranges), default=0)

    def entry(name: str, offset: int, bind: int) -> bytes:
        shndx, value = section_of(offset)
        kind = 2 if offset < code_end and shndx == 1 else 1          # STT_FUNC / STT_OBJECT
        return sym.pack(at[name], bind << 4 | kind, 0, shndx, value, 0)

    for n, o in local:
        index[n] = len(syms)
        syms.append(entry(n, o, 0))
    first_global = len(syms)
    for n, o in global_:
        index[n] = len(syms)
        syms.append(entry(n, o, 1))
    for n in externals:
        index[n] = len(syms)
        syms.append(sym.pack(at[n], 1 << 4, 0, 0, 0, 0))
    rela = {1: bytearray(), 2: bytearray()}
    for offset, kind, symbol, addend in relocs:
        shndx, place = section_of(offset)
        if symbol in image.symbols:
            symi, target = section_of(image.symbols[symbol])
            addend += target
        else:
            symi = index[symbol]
        rela[shndx] += struct.pack("<QQq", place, symi << 32 | numbers[kind], addend)
    meta = json.dumps(manifest, sort_keys=True).encode()
    names = ["", ".text", ".data", ".bss", ".rela.text", ".rela.data", ".symtab", ".strtab", MANIFEST_SECTION,
             ".note.GNU-stack", ".shstrtab"]
    shstr, shat = _strtab(names[1:])
    # (type, flags, data, size, link, info, align, entsize)
    specs = [(1, 0x6, text, len(text), 0, 0, 16, 0), (1, 0x3, data, len(data), 0, 0, 4096, 0),
             (8, 0x3, b"", bss_size, 0, 0, 16, 0),
             (4, 0x40, bytes(rela[1]), len(rela[1]), 6, 1, 8, 24), (4, 0x40, bytes(rela[2]), len(rela[2]), 6, 2, 8, 24),
             (2, 0, b"".join(syms), 24 * len(syms), 7, first_global, 8, 24), (3, 0, strings, len(strings), 0, 0, 1, 0),
             (1, 0, meta, len(meta), 0, 0, 1, 0), (1, 0, b"", 0, 0, 0, 1, 0), (3, 0, shstr, len(shstr), 0, 0, 1, 0)]
    body = bytearray(64)
    headers = [bytes(64)]
    for i, (typ, flags, content, size, link_, info, align, entsize) in enumerate(specs, 1):
        body += b"\0" * ((-len(body)) % align)
        headers.append(struct.pack("<IIQQQQIIQQ", shat[names[i]], typ, flags, 0, len(body), size,
                                   link_, info, align, entsize))
        body += content
    body += b"\0" * ((-len(body)) % 8)
    shoff = len(body)
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    struct.pack_into("<16sHHIQQQIHHHHHH", body, 0, ident, 1, EM[arch], 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                     len(headers), len(headers) - 1)
    return bytes(body) + b"".join(headers)


def read_elf(data: bytes) -> tuple[Image, dict]:
    """(the linked image, the manifest) of an object written by ``to_elf``."""
    from ..backends.link import link_elf
    from ..backends.link.elfobj import ElfObject
    try:
        elf = ElfObject(data)
        if elf.machine == 247:
            raise BpfLoadError("a BPF object, not one compiled by jitbpf compile")
        if elf.machine not in ELF_MACHINES:
            raise BpfLoadError(f"ELF machine {elf.machine} is neither x86_64 nor aarch64")
        section = elf.by_name.get(MANIFEST_SECTION)
        if section is None:
            raise BpfLoadError("not an object compiled by jitbpf (no .jitbpf manifest section)")
        manifest = _manifest(elf.contents(section))
        if ELF_MACHINES[elf.machine] != manifest["arch"]:
            raise BpfLoadError(f"wrong architecture: the ELF header says {ELF_MACHINES[elf.machine]}, "
                               f"the manifest says {manifest['arch']}")
        image = link_elf(data)
    except BpfLoadError:
        raise
    except Exception as e:                           # noqa: BLE001 - any damage is one clear error
        raise BpfLoadError(f"damaged object: {_reason(e)}") from None
    if image.arch != manifest.get("arch"):
        raise BpfLoadError(f"the object is {image.arch} code, its manifest says {manifest.get('arch')}")
    return image, manifest


def _reason(e: Exception) -> str:
    return str(e) if str(e) else type(e).__name__


def _manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BpfLoadError(f"bad manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "jitbpf-aot-1":
        raise BpfLoadError("bad manifest: not a jitbpf-aot-1 manifest")
    for key, kind in (("arch", str), ("programs", list), ("maps", list)):
        if not isinstance(manifest.get(key), kind):
            raise BpfLoadError(f"bad manifest: '{key}' missing or not a {kind.__name__}")
    return manifest


# ------------------------------------------------------------------------------ raw


def to_raw(image: Image, manifest: dict) -> tuple[bytes, bytes]:
    """(blob, JSON manifest): the blob is position-independent once its relocations (in the
    manifest, with the symbols and the externals the loader binds) are applied."""
    full = dict(manifest, symbols=image.symbols, relocations=flatten(image),
                externals=sorted({s for _, _, s, _ in flatten(image) if s not in image.symbols}),
                writable_from=image.writable_from, code_ranges=image.code_ranges, size=len(image.blob))
    return image.blob, json.dumps(full, sort_keys=True, indent=1).encode()


def from_raw(blob: bytes, manifest_bytes: bytes) -> tuple[Image, dict]:
    manifest = _manifest(manifest_bytes)
    arch = manifest["arch"]
    if arch not in STUBS:
        raise BpfLoadError(f"bad manifest: unknown architecture {arch!r}")
    try:
        size = int(manifest["size"])
        if size != len(blob):
            raise BpfLoadError(f"the blob has {len(blob)} bytes, its manifest says {size} (truncated?)")
        symbols = {str(k): int(v) for k, v in manifest["symbols"].items()}
        relocs = [(int(o), str(k), str(s), int(a)) for o, k, s, a in manifest["relocations"]]
        wf = int(manifest["writable_from"])
        code_ranges = [(int(a), int(b)) for a, b in manifest["code_ranges"]]
    except BpfLoadError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BpfLoadError(f"bad manifest: {_reason(e)}") from None
    known = RELOC_NUMBERS[arch]
    for offset, kind, symbol, _ in relocs:
        if kind not in known:
            raise BpfLoadError(f"bad relocation at 0x{offset:x}: unknown kind {kind!r}")
        if not 0 <= offset <= len(blob) - (8 if kind in ("abs64", "pc64", "prel64") else 4):
            raise BpfLoadError(f"bad relocation: offset 0x{offset:x} outside the {len(blob)}-byte blob")
    if not 0 <= wf <= len(blob) or any(not 0 <= v <= len(blob) for v in symbols.values()):
        raise BpfLoadError("bad manifest: a symbol or section lies outside the blob")
    externals = sorted({s for _, _, s, _ in relocs if s not in symbols})
    return Image(arch, bytes(blob), symbols, relocs, externals, wf, code_ranges), manifest
