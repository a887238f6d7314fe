"""An object's ``.BTF`` as the kernel wants it, and func_info for its programs.

clang leaves every DATASEC with size 0 and its variables at offset 0; the ELF
symbol table has the real numbers and libbpf patches them in before BPF_BTF_LOAD.
We do the same, on the raw bytes (the layout of each kind is fixed by the BTF
format), and nothing else. With the BTF loaded, programs get func_info (one record
per BPF function: its first instruction and its BTF FUNC id), which the kernel
requires for callbacks (bpf_loop, for_each_map_elem ...) and global functions.
"""

from __future__ import annotations

import os
import struct

from . import syscall as sc

_KIND_DATASEC = 15
#: kind -> (extra bytes after the 12-byte header, bytes per vlen member)
_LAYOUT = {1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0), 8: (0, 0),
           9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0), 15: (0, 12),
           16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12)}


def _symbol_values(obj) -> dict[tuple[str, str], int]:
    """(section name, symbol name) -> value, from the object's ELF symbol table."""
    symbols = getattr(obj, "symbols", None)
    if symbols is None and obj.path:
        from elftools.elf.elffile import ELFFile
        with open(obj.path, "rb") as f:
            elf = ELFFile(f)
            names = [s.name for s in elf.iter_sections()]
            tab = elf.get_section_by_name(".symtab")
            return {(names[s["st_shndx"]], s.name): s["st_value"] for s in (tab.iter_symbols() if tab else ())
                    if isinstance(s["st_shndx"], int) and 0 < s["st_shndx"] < len(names)}
    out = {}
    for s in symbols or ():
        if s.shndx is not None:
            section = next((n for n, info in obj.sections.items() if info.index == s.shndx), None)
            if section is not None:
                out[(section, s.name)] = s.value
    return out


def patched_btf(obj) -> bytes:
    """The object's raw .BTF with DATASEC sizes and variable offsets filled in."""
    raw = bytearray(obj.sections[".BTF"].data)
    _magic, _version, _flags, hdr_len, type_off, type_len, str_off, _str_len = struct.unpack_from("<HBBIIIII", raw)
    strings = hdr_len + str_off

    def name(off: int) -> str:
        end = raw.index(0, strings + off)
        return raw[strings + off:end].decode()

    symbols = _symbol_values(obj)
    var_names: dict[int, str] = {}
    pos, end, type_id = hdr_len + type_off, hdr_len + type_off + type_len, 1
    while pos < end:
        name_off, info, _size = struct.unpack_from("<III", raw, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        extra, per = _LAYOUT[kind]
        if kind == 14:                                # VAR: remember names for the DATASECs after it
            var_names[type_id] = name(name_off)
        if kind == _KIND_DATASEC:
            section = name(name_off)
            info_sec = obj.sections.get(section)
            if info_sec is not None:
                struct.pack_into("<I", raw, pos + 8, info_sec.size)
            for i in range(vlen):
                at = pos + 12 + 12 * i
                var, offset, _vsize = struct.unpack_from("<III", raw, at)
                value = symbols.get((section, var_names.get(var, "")))
                if value is not None and offset == 0:
                    struct.pack_into("<I", raw, at + 4, value)
        pos += 12 + extra + per * vlen
        type_id += 1
    return bytes(raw)


class KernelBtf:
    """The object's BTF loaded into the kernel (fd), or nothing when it has none."""

    def __init__(self, obj):
        self.btf = getattr(obj, "btf", None)
        self.fd = 0
        if ".BTF" in getattr(obj, "sections", {}) and self.btf is not None:
            self.fd = sc.load_btf(patched_btf(obj))

    def func_info(self, program, where) -> bytes:
        """func_info records for ``program``, its function entries mapped by ``where``
        (old slot -> loaded slot); empty unless every function has a BTF FUNC."""
        if not self.fd:
            return b""
        names = getattr(program, "function_names", {}) or {}
        records = []
        for entry in program.functions:
            func = self.btf.find(names.get(entry, ""), "func")
            if func is None:
                return b""
            records.append(struct.pack("<II", 0 if entry == 0 else where(entry), func.id))
        return b"".join(records)

    def close(self) -> None:
        if self.fd > 0:
            os.close(self.fd)
            self.fd = 0

    def __del__(self) -> None:
        self.close()
