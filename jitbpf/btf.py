"""BTF and BTF.ext, parsed by hand (no Python library reads them).

``.BTF`` describes types (maps' keys and values, functions, global variables);
``.BTF.ext`` maps instruction offsets to functions (func_info), source lines
(line_info) and CO-RE relocations. The ELF loader uses BTF to read BTF-defined
maps (``__uint``/``__type``/``__array``), kfunc names and line info; CO-RE records
are kept (with local types only, clang's compiled offsets are already right).
Layouts follow include/uapi/linux/btf.h and libbpf's btf.h.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import BpfLoadError

BTF_MAGIC = 0xEB9F
KINDS = {0: "unknown", 1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum", 7: "fwd",
         8: "typedef", 9: "volatile", 10: "const", 11: "restrict", 12: "func", 13: "func_proto", 14: "var",
         15: "datasec", 16: "float", 17: "decl_tag", 18: "type_tag", 19: "enum64"}
MODIFIERS = frozenset({"typedef", "volatile", "const", "restrict", "type_tag"})
CORE_KINDS = {0: "field_byte_offset", 1: "field_byte_size", 2: "field_exists", 3: "field_signed",
              4: "field_lshift_u64", 5: "field_rshift_u64", 6: "type_id_local", 7: "type_id_target",
              8: "type_exists", 9: "type_size", 10: "enumval_exists", 11: "enumval_value", 12: "type_matches"}
#: bytes of kind-specific data after the 12-byte btf_type: (fixed, per vlen entry)
KIND_LAYOUT = {"int": (4, 0), "array": (12, 0), "struct": (0, 12), "union": (0, 12), "enum": (0, 8),
          "func_proto": (0, 8), "var": (4, 0), "datasec": (0, 12), "decl_tag": (4, 0), "enum64": (0, 12)}
#: kinds whose size_type word is a size in bytes (the others reference a type)
SIZED_KINDS = frozenset({"int", "struct", "union", "enum", "enum64", "float", "datasec"})


@dataclass
class BtfType:
    id: int
    kind: str
    name: str
    size: int = 0                 # size in bytes, for sized kinds
    type: int = 0                 # referenced type, for ptr/typedef/modifiers/func/var
    vlen: int = 0                 # member count (func: linkage)
    kind_flag: bool = False
    members: list[tuple] = field(default_factory=list)
    # struct/union: (name, type, bit_offset, bitfield_size); enum/enum64: (name, value);
    # func_proto: (name, type); datasec: (var type, offset, size); array: (elem, index, nelems)
    extra: int = 0                # int: encoding word; var: linkage; decl_tag: component index


class Btf:
    """The types of one object; ``types[id]`` (id 0 is void)."""

    def __init__(self, types: list[BtfType], strings: bytes):
        self.types = types
        self.strings = strings

    def __len__(self) -> int:
        return len(self.types) - 1

    def get(self, type_id: int) -> BtfType:
        if not 0 <= type_id < len(self.types):
            raise BpfLoadError(f"BTF type id {type_id} out of range (have {len(self.types) - 1})")
        return self.types[type_id]

    def resolve(self, type_id: int) -> BtfType:
        """Skip typedefs and qualifiers."""
        t = self.get(type_id)
        for _ in range(64):
            if t.kind not in MODIFIERS:
                return t
            t = self.get(t.type)
        raise BpfLoadError(f"BTF type {type_id}: modifier chain too long")

    def size_of(self, type_id: int) -> int:
        t = self.resolve(type_id)
        if t.kind in SIZED_KINDS:
            return t.size
        if t.kind == "ptr":
            return 8
        if t.kind == "array":
            elem, _, n = t.members[0]
            return n * self.size_of(elem)
        raise BpfLoadError(f"BTF type {type_id} ({t.kind} {t.name!r}) has no size")

    def find(self, name: str, kind: str | None = None) -> BtfType | None:
        for t in self.types:
            if t.name == name and (kind is None or t.kind == kind):
                return t
        return None

    def type_name(self, type_id: int) -> str:
        """A C-like spelling, for ``jitbpf info``."""
        t = self.get(type_id)
        if type_id == 0:
            return "void"
        if t.kind == "ptr":
            return self.type_name(t.type) + " *"
        if t.kind in ("const", "volatile", "restrict"):
            return f"{t.kind} {self.type_name(t.type)}"
        if t.kind == "array":
            return f"{self.type_name(t.members[0][0])}[{t.members[0][2]}]"
        if t.kind in ("struct", "union", "enum", "enum64", "fwd"):
            return f"{t.kind.rstrip('64')} {t.name or '(anon)'}"
        return t.name or t.kind

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.types[1:]:
            out[t.kind] = out.get(t.kind, 0) + 1
        return out


def _header(data: bytes, what: str, min_len: int) -> int:
    """Check the common BTF / BTF.ext header; returns its length."""
    if len(data) < min_len:
        raise BpfLoadError(f"{what}: {len(data)} bytes is too short for its header")
    magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
    if magic != BTF_MAGIC:
        if magic == 0x9FEB:
            raise BpfLoadError(f"{what}: big-endian BTF is not supported")
        raise BpfLoadError(f"{what}: bad magic 0x{magic:04x}")
    if version != 1:
        raise BpfLoadError(f"{what}: unsupported version {version}")
    return hdr_len


def _string(strings: bytes, off: int, what: str) -> str:
    """The NUL-terminated string at ``off`` of a BTF string section."""
    end = strings.find(b"\0", off)
    if off >= len(strings) or end < 0:
        raise BpfLoadError(f"{what}: string offset {off} out of range or not NUL-terminated")
    return strings[off:end].decode("utf-8", "replace")


def parse_btf(data: bytes) -> Btf:
    """Parse a ``.BTF`` section."""
    hdr_len = _header(data, ".BTF", 24)
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
    base = hdr_len
    if base + max(type_off + type_len, str_off + str_len) > len(data):
        raise BpfLoadError(".BTF: type or string section runs past the end")
    strings = data[base + str_off:base + str_off + str_len]

    def string(off: int) -> str:
        return _string(strings, off, ".BTF")

    types = [BtfType(0, "void", "")]
    pos, end = base + type_off, base + type_off + type_len
    while pos < end:
        name_off, info, size_type = struct.unpack_from("<III", data, pos)
        kind = KINDS.get((info >> 24) & 0x1F)
        if kind is None:
            raise BpfLoadError(f".BTF: unknown kind {(info >> 24) & 0x1F} at offset {pos - base - type_off}")
        vlen = info & 0xFFFF
        t = BtfType(len(types), kind, string(name_off), vlen=vlen, kind_flag=bool(info >> 31))
        if kind in SIZED_KINDS:
            t.size = size_type
        else:
            t.type = size_type
        fixed, each = KIND_LAYOUT.get(kind, (0, 0))
        p = pos + 12
        if p + fixed + each * vlen > end:
            raise BpfLoadError(f".BTF: type {t.id} runs past the type section")
        if kind in ("int", "var", "decl_tag"):
            t.extra = struct.unpack_from("<I", data, p)[0]
        elif kind == "array":
            t.members = [struct.unpack_from("<III", data, p)]
        elif kind in ("struct", "union"):
            for i in range(vlen):
                m_name, m_type, m_off = struct.unpack_from("<III", data, p + 12 * i)
                bits, bitfield = (m_off & 0xFFFFFF, m_off >> 24) if t.kind_flag else (m_off, 0)
                t.members.append((string(m_name), m_type, bits, bitfield))
        elif kind == "enum":
            t.members = [(string(n), v) for n, v in (struct.unpack_from("<Ii", data, p + 8 * i) for i in range(vlen))]
        elif kind == "enum64":
            t.members = [(string(n), lo | hi << 32)
                         for n, lo, hi in (struct.unpack_from("<III", data, p + 12 * i) for i in range(vlen))]
        elif kind == "func_proto":
            t.members = [(string(n), ty) for n, ty in (struct.unpack_from("<II", data, p + 8 * i) for i in range(vlen))]
        elif kind == "datasec":
            t.members = [struct.unpack_from("<III", data, p + 12 * i) for i in range(vlen)]
        types.append(t)
        pos = p + fixed + each * vlen
    return Btf(types, strings)


@dataclass(frozen=True)
class LineInfo:
    insn_off: int                 # bytes from the section start
    file: str
    source: str                   # the source line's text
    line: int
    col: int


@dataclass(frozen=True)
class CoreRelo:
    insn_off: int
    type_id: int
    access: str                   # "0:1:2" accessor string
    kind: str


@dataclass
class BtfExt:
    """Per ELF section: func_info (insn_off, type_id), line_info and CO-RE relocations."""

    func_info: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    line_info: dict[str, list[LineInfo]] = field(default_factory=dict)
    core_relos: dict[str, list[CoreRelo]] = field(default_factory=dict)


def parse_btf_ext(data: bytes, btf: Btf) -> BtfExt:
    """Parse a ``.BTF.ext`` section (strings live in ``btf``)."""
    hdr_len = _header(data, ".BTF.ext", 24)
    offsets = struct.unpack_from("<IIII", data, 8)
    core = struct.unpack_from("<II", data, 24) if hdr_len >= 32 and len(data) >= 32 else (0, 0)
    ext = BtfExt()

    def string(off: int) -> str:
        return _string(btf.strings, off, ".BTF.ext")

    def records(off: int, length: int, min_size: int, what: str):
        if not length:
            return
        pos, end = hdr_len + off, hdr_len + off + length
        if end > len(data):
            raise BpfLoadError(f".BTF.ext: {what} runs past the end")
        rec_size = struct.unpack_from("<I", data, pos)[0]
        if rec_size < min_size:
            raise BpfLoadError(f".BTF.ext: {what} record size {rec_size} < {min_size}")
        pos += 4
        while pos < end:
            sec_off, count = struct.unpack_from("<II", data, pos)
            pos += 8
            if pos + count * rec_size > end:
                raise BpfLoadError(f".BTF.ext: {what} of section {string(sec_off)!r} runs past the end")
            yield string(sec_off), [data[pos + i * rec_size:pos + (i + 1) * rec_size] for i in range(count)]
            pos += count * rec_size

    for sec, recs in records(offsets[0], offsets[1], 8, "func_info"):
        ext.func_info[sec] = [struct.unpack_from("<II", r) for r in recs]
    for sec, recs in records(offsets[2], offsets[3], 16, "line_info"):
        out = ext.line_info[sec] = []
        for r in recs:
            insn_off, file_off, line_off, line_col = struct.unpack_from("<IIII", r)
            out.append(LineInfo(insn_off, string(file_off), string(line_off), line_col >> 10, line_col & 0x3FF))
    for sec, recs in records(core[0], core[1], 16, "core_relo"):
        ext.core_relos[sec] = [CoreRelo(o, t, string(a), CORE_KINDS.get(k, str(k)))
                               for o, t, a, k in (struct.unpack_from("<IIII", r) for r in recs)]
    return ext
