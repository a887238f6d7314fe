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

from ..btf import KIND_LAYOUT
from . import syscall as sc


def _symbol_values(obj) -> dict[tuple[str, str], int]:
    """(section name, symbol name) -> value, from the object's ELF symbol table."""
    names = {info.index: name for name, info in obj.sections.items()}
    return {(names[s.shndx], s.name): s.value for s in obj.symbols if s.shndx in names}


def patched_btf(obj) -> bytes:
    """The object's raw .BTF with DATASEC sizes and variable offsets filled in
    (types walked as ``obj.btf`` parsed them, positions by the fixed layout of each kind)."""
    raw = bytearray(obj.sections[".BTF"].data)
    btf = obj.btf
    hdr_len, type_off = struct.unpack_from("<II", raw, 4)
    symbols = _symbol_values(obj)
    var_names = {t.id: t.name for t in btf.types if t.kind == "var"}
    pos = hdr_len + type_off
    for t in btf.types[1:]:
        if t.kind == "datasec":
            section = obj.sections.get(t.name)
            if section is not None:
                struct.pack_into("<I", raw, pos + 8, section.size)
            for i, (var, offset, _size) in enumerate(t.members):
                value = symbols.get((t.name, var_names.get(var, "")))
                if value is not None and offset == 0:
                    struct.pack_into("<I", raw, pos + 12 + 12 * i + 4, value)
        fixed, each = KIND_LAYOUT.get(t.kind, (0, 0))
        pos += 12 + fixed + each * t.vlen
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
