"""A minimal reader of the ELF64 little-endian relocatable objects LLVM emits.

Only what the linker (:func:`backends.link.link_elf`) and the line table
(:func:`backends.listing.line_table`) need: section headers and contents, the symbol
table and RELA relocations. pyelftools reads the same through ``construct`` about ten
times slower (1-6 ms per object, most of a compile's Python time), and it runs on every
compile.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from jitbpf.errors import BpfEngineError

SHT_SYMTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 2, 4, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SYMBOL_TYPES = {0: "STT_NOTYPE", 1: "STT_OBJECT", 2: "STT_FUNC", 3: "STT_SECTION", 4: "STT_FILE"}

_SECTION = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")


@dataclass
class Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int


@dataclass
class Symbol:
    name: str
    type: str            # STT_* name
    shndx: int
    value: int


class ElfObject:
    """Sections, symbols and relocations of one object (``data`` as LLVM emitted it)."""

    def __init__(self, data: bytes):
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise BpfEngineError("not an ELF64 little-endian object")
        self.data = data
        self.machine = struct.unpack_from("<H", data, 18)[0]
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        headers = [_SECTION.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        names = headers[shstrndx][4] if shnum else 0
        self.sections = [Section(i, self._string(names, h[0]), h[1], h[2], h[4], h[5], h[6], h[7], h[8])
                         for i, h in enumerate(headers)]
        self.by_name = {s.name: s for s in self.sections}

    def _string(self, table_offset: int, offset: int) -> str:
        start = table_offset + offset
        return self.data[start:self.data.index(b"\0", start)].decode()

    def contents(self, section: Section) -> bytes:
        if section.type == SHT_NOBITS:
            return bytes(section.size)
        return self.data[section.offset:section.offset + section.size]

    def symbols(self) -> list[Symbol]:
        """The symbol table, by index (empty without one)."""
        symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
        if symtab is None:
            return []
        strings = self.sections[symtab.link].offset
        out = []
        for at in range(symtab.offset, symtab.offset + symtab.size, _SYMBOL.size):
            name, info, _other, shndx, value, _size = _SYMBOL.unpack_from(self.data, at)
            out.append(Symbol(self._string(strings, name), SYMBOL_TYPES.get(info & 0xF, str(info & 0xF)),
                              shndx, value))
        return out

    def relocations(self, section: Section) -> list[tuple[int, int, int, int]]:
        """(offset, type, symbol index, addend) of a SHT_RELA section."""
        if section.type != SHT_RELA:
            raise BpfEngineError(f"{section.name}: only RELA relocations are supported")
        return [(offset, info & 0xFFFFFFFF, info >> 32, addend)
                for offset, info, addend in _RELA.iter_unpack(self.contents(section))]

    def relocation_sections(self) -> list[Section]:
        return [s for s in self.sections if s.type in (SHT_RELA, SHT_REL)]
