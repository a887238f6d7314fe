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

from ..btf import BTF_MAGIC, KIND_LAYOUT, KINDS
from . import syscall as sc

_KIND = {name: number for number, name in KINDS.items()}
BTF_INT_SIGNED = 1


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


def synthetic_btf(count: int) -> bytes:
    """BTF for a program that has none: ``long fN(void)`` for N < count, static.

    The kernel wants func_info (so BTF) for any program with a callback (bpf_loop,
    for_each_map_elem ...); for static functions it checks nothing else, so one
    prototype serves them all. Types: [1] long, [2] long (void), [3 + N] fN."""
    strings = b"\0long\0" + b"".join(f"f{n}".encode() + b"\0" for n in range(count))
    types = struct.pack("<IIII", 1, _KIND["int"] << 24, 8, BTF_INT_SIGNED << 24 | 64)
    types += struct.pack("<III", 0, _KIND["func_proto"] << 24, 1)
    name = len(b"\0long\0")
    for n in range(count):
        types += struct.pack("<III", name, _KIND["func"] << 24, 2)
        name += len(f"f{n}") + 1
    header = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


class KernelBtf:
    """The object's BTF loaded into the kernel (fd), or nothing when it has none."""

    def __init__(self, obj):
        self.btf = getattr(obj, "btf", None)
        self.fd = 0
        self.synthetic: tuple[int, int] | None = None     # (fd, functions) of a synthetic_btf
        if ".BTF" in getattr(obj, "sections", {}) and self.btf is not None:
            self.fd = sc.load_btf(patched_btf(obj))

    def program_fd(self, program) -> int:
        """The BTF fd to load ``program`` with (its func_info's types)."""
        if self.fd or len(program.functions) < 2:
            return self.fd
        return self._synthetic(len(program.functions))

    def _synthetic(self, count: int) -> int:
        if self.synthetic is None or self.synthetic[1] < count:
            if self.synthetic is not None:
                os.close(self.synthetic[0])
            self.synthetic = (sc.load_btf(synthetic_btf(count)), count)
        return self.synthetic[0]

    def func_info(self, program, where) -> bytes:
        """func_info records for ``program``, its function entries mapped by ``where``
        (old slot -> loaded slot); empty unless every function has a BTF FUNC. A
        program without BTF and with several functions gets the synthetic one."""
        if not self.fd:
            if len(program.functions) < 2:
                return b""
            self._synthetic(len(program.functions))
            return b"".join(struct.pack("<II", 0 if entry == 0 else where(entry), 3 + n)
                            for n, entry in enumerate(program.functions))
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
        if self.synthetic is not None:
            os.close(self.synthetic[0])
            self.synthetic = None

    def __del__(self) -> None:
        self.close()
