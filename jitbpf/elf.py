"""Load clang-built BPF objects (libbpf conventions) into an :class:`~jitbpf.program.Object`.

What is understood, as libbpf does it:

- programs: every global function of an executable section other than ``.text``
  (several per section allowed); the section name gives the program type
  (``xdp``, ``tc``, ``socket``, ``kprobe/...``, ``tracepoint/...``, ``raw_tp/...``,
  ``syscall`` ... see ``SECTION_TYPES``; unknown names run as raw programs). An
  object without program sections exposes the global functions of ``.text`` as
  raw programs (uBPF style);
- subprograms: functions in ``.text`` or static functions of the program's own
  section, reached by calls with a relocation (R_BPF_64_32) or without one (static
  calls inside a section) and by ``lddw`` of a function (callbacks). Like libbpf,
  each program gets a copy of the subprograms it needs appended after its own
  code, so every Program is self-contained;
- maps: BTF-defined maps in ``.maps`` (``__uint``/``__type``/``__array`` members)
  and the legacy ``maps`` section (struct bpf_map_def); a prog_array's
  ``__array(values, ...)`` initialiser;
- global data: ``.data``, ``.rodata``, ``.bss`` and ``.data.*``/``.rodata.*``
  (including merged strings, ``.rodata.str1.1``) become one-element array maps;
- relocations by the kernel's numbering (R_BPF_64_64 = 1 for lddw of maps and
  globals, the byte offset of a section symbol living in the lddw imm;
  R_BPF_64_ABS64/ABS32/NODYLD32 = 2/3/4 in data and debug sections, ignored in
  debug and BTF sections; R_BPF_64_32 = 10 for calls); calls to undefined
  functions become kfunc calls resolved by name;
- BTF line info (``Program.line_info``), func_info (``Program.function_names``)
  and CO-RE records (kept on ``Object.btf_ext``); global variables by name
  (``Object.variables[name] = (map, offset, size)``, e.g. to set a ``const
  volatile`` setting in ``.rodata`` before running, as a libbpf skeleton does).

After loading, lddw map references are ``Pseudo.MAP_IDX`` / ``MAP_IDX_VALUE`` with
imm = index into ``Object.map_list``. The original sections, symbols and
relocations stay on the Object (``sections``, ``symbols``, ``relocations``) for the
kernel engine. Anything else raises :class:`BpfLoadError` naming the section and offset.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field, replace
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from . import isa
from .btf import Btf, BtfExt, parse_btf, parse_btf_ext
from .errors import BpfError, BpfLoadError
from .isa import Insn, Pseudo
from .runtime import maps as bpfmaps

R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_NODYLD32, R_BPF_64_32 = 1, 2, 3, 4, 10
RELOC_NAMES = {0: "R_BPF_NONE", 1: "R_BPF_64_64", 2: "R_BPF_64_ABS64", 3: "R_BPF_64_ABS32",
               4: "R_BPF_64_NODYLD32", 10: "R_BPF_64_32"}
EM_BPF = 247

#: section name (exact, or followed by "/" or ".") -> program type
SECTION_TYPES: dict[str, str] = {
    "xdp": "xdp", "tc": "tc", "tcx": "tc", "netkit": "tc", "classifier": "tc", "action": "tc",
    "socket": "socket", "sk_skb": "sk_skb", "cgroup_skb": "cgroup_skb", "lwt_in": "lwt", "lwt_out": "lwt",
    "lwt_xmit": "lwt", "flow_dissector": "flow_dissector", "syscall": "syscall",
    "kprobe": "kprobe", "kretprobe": "kprobe", "uprobe": "kprobe", "uretprobe": "kprobe", "ksyscall": "kprobe",
    "kretsyscall": "kprobe", "usdt": "kprobe", "tracepoint": "tracepoint", "tp": "tracepoint",
    "raw_tracepoint": "raw_tracepoint", "raw_tp": "raw_tracepoint", "tp_btf": "tracing", "fentry": "tracing",
    "fexit": "tracing", "fmod_ret": "tracing", "iter": "tracing", "lsm": "lsm", "perf_event": "perf_event",
}
_MAP_FIELDS = ("type", "max_entries", "key_size", "value_size", "map_flags", "map_extra", "numa_node", "pinning")
_IGNORED_RELOC_TARGETS = (".BTF", ".BTF.ext", ".debug", ".eh_frame", ".llvm")


def program_type(section: str) -> str:
    for prefix in sorted(SECTION_TYPES, key=len, reverse=True):
        if section == prefix or section.startswith((prefix + "/", prefix + ".")):
            return SECTION_TYPES[prefix]
    return "raw"


@dataclass
class SectionInfo:
    index: int
    name: str
    type: str
    flags: int
    size: int
    data: bytes = b""


@dataclass(frozen=True)
class Relocation:
    section: str                  # the section the relocation applies to
    offset: int                   # byte offset in that section
    type: int                     # R_BPF_* number
    symbol: str
    symbol_section: str | None    # None for an undefined (extern) symbol
    symbol_value: int

    @property
    def type_name(self) -> str:
        return RELOC_NAMES.get(self.type, str(self.type))


@dataclass
class Symbol:
    name: str
    value: int
    size: int
    type: str                     # STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE
    bind: str                     # STB_GLOBAL, STB_LOCAL, STB_WEAK
    shndx: int | None             # None: undefined


@dataclass(eq=False)
class Function:
    name: str
    section: int
    start: int                    # slots from the section start
    end: int
    is_global: bool
    refs: list[tuple[int, tuple[int, int], int]] = field(default_factory=list)  # (slot, (sec, slot), src)


def load_elf(path: str | bytes | os.PathLike, runtime=None):
    """Load a BPF ELF object from a path (or its bytes)."""
    from .program import Object
    if isinstance(path, bytes):
        data = path
    else:
        with open(path, "rb") as f:
            data = f.read()
    obj = Object(runtime, None if isinstance(path, bytes) else str(path))
    try:
        _Loader(data, obj).load()
    except (ELFError, ConstructError) as e:
        raise BpfLoadError(f"damaged ELF object: {e}") from None
    return obj


ET_REL, EV_CURRENT, ELFOSABI_SYSV, SHDR_SIZE = 1, 1, 0, 64


def check_header(data: bytes) -> None:
    """The ELF header and section header table, checked before pyelftools reads them
    (it fails on some damaged ones with OverflowError); errors name the field."""
    if len(data) < 64:
        raise BpfLoadError(f"ELF header: a {len(data)}-byte file is shorter than the 64-byte header")
    ei_class, ei_data, ei_version, ei_osabi = data[4:8]
    if ei_class != 2 or ei_data != 1:
        raise BpfLoadError(f"ELF header: EI_CLASS {ei_class}, EI_DATA {ei_data}: only 64-bit little-endian "
                           "BPF objects are supported")
    if ei_version != EV_CURRENT:
        raise BpfLoadError(f"ELF header: EI_VERSION {ei_version} is not 1 (EV_CURRENT)")
    if ei_osabi != ELFOSABI_SYSV:
        raise BpfLoadError(f"ELF header: EI_OSABI {ei_osabi} is not 0 (System V)")
    e_type = int.from_bytes(data[16:18], "little")
    if e_type != ET_REL:
        raise BpfLoadError(f"ELF header: e_type {e_type} is not 1 (ET_REL, a relocatable object)")
    e_shoff = int.from_bytes(data[0x28:0x30], "little")
    e_shentsize, e_shnum, e_shstrndx = (int.from_bytes(data[o:o + 2], "little") for o in (0x3A, 0x3C, 0x3E))
    if e_shnum and e_shentsize != SHDR_SIZE:
        raise BpfLoadError(f"ELF header: e_shentsize {e_shentsize} is not {SHDR_SIZE}")
    if e_shoff + e_shnum * SHDR_SIZE > len(data):
        raise BpfLoadError(f"ELF header: {e_shnum} section headers at e_shoff {e_shoff} run past the end of "
                           f"the {len(data)}-byte file")
    if e_shnum and e_shstrndx >= e_shnum:
        raise BpfLoadError(f"ELF header: e_shstrndx {e_shstrndx} is not a section (e_shnum {e_shnum})")
    if e_shnum:
        head = e_shoff + e_shstrndx * SHDR_SIZE
        sh_offset, sh_size = (int.from_bytes(data[head + o:head + o + 8], "little") for o in (24, 32))
        if sh_offset + sh_size > len(data):
            raise BpfLoadError(f"section #{e_shstrndx} (the section names): {sh_size} bytes at file offset "
                               f"{sh_offset} run past the end of the {len(data)}-byte file")


class _Loader:
    def __init__(self, data: bytes, obj):
        self.obj = obj
        check_header(data)
        self.elf = ELFFile(io.BytesIO(data))
        h = self.elf.header
        if h["e_machine"] not in ("EM_BPF", EM_BPF):
            raise BpfLoadError(f"ELF machine is {h['e_machine']}, not BPF")
        if self.elf.elfclass != 64 or not self.elf.little_endian:
            raise BpfLoadError("only 64-bit little-endian BPF objects are supported")
        self.secs = list(self.elf.iter_sections())
        for i, s in enumerate(self.secs):             # pyelftools would fail on these with a crash
            if s["sh_type"] != "SHT_NOBITS" and s["sh_offset"] + s["sh_size"] > len(data):
                raise self.error(i, None, f"{s['sh_size']} bytes at file offset {s['sh_offset']} run past "
                                          f"the end of the {len(data)}-byte file")
        self.code: dict[int, list[Insn]] = {}
        self.map_at: dict[tuple[int, int], int] = {}       # (section, offset) -> map index
        self.data_maps: dict[int, int] = {}                # data section index -> map index
        self.slot_fix: dict[tuple[int, int], tuple[int, int, int]] = {}   # lddw -> (src, imm, next_imm)
        self.kfuncs: dict[tuple[int, int], str] = {}
        self.functions: dict[tuple[int, int], Function] = {}
        self.map_values: list[tuple[Any, int]] = []        # (map, .maps offset of its __array values)
        self.prog_array_init: list[tuple[Any, int, str]] = []
        self.btf: Btf | None = None
        self.btf_ext: BtfExt | None = None

    # ---------------------------------------------------------------- helpers
    def name(self, index: int) -> str:
        return self.secs[index].name if 0 <= index < len(self.secs) else f"#{index}"

    def error(self, section: int | str, offset: int | None, message: str) -> BpfLoadError:
        sec = section if isinstance(section, str) else self.name(section)
        where = f"section '{sec}'" + (f" offset {offset}" if offset is not None else "")
        return BpfLoadError(f"{where}: {message}")

    # ---------------------------------------------------------------- main
    def load(self) -> None:
        obj = self.obj
        self.symbols = obj.symbols = self._symbols()
        for i, s in enumerate(self.secs):
            obj.sections[s.name] = SectionInfo(i, s.name, s["sh_type"], s["sh_flags"], s["sh_size"],
                                               b"" if s["sh_type"] == "SHT_NOBITS" else s.data())
        self._btf()
        lic = obj.sections.get("license")
        obj.license = lic.data.split(b"\0", 1)[0].decode("latin-1") if lic else ""
        for i, s in enumerate(self.secs):
            if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & 0x4:            # SHF_EXECINSTR
                if s["sh_size"] % 8:
                    raise self.error(i, None, f"code size {s['sh_size']} is not a multiple of 8")
                try:
                    self.code[i] = isa.decode(s.data())
                except BpfError as e:
                    raise self.error(i, 8 * (e.pc or 0), e.message) from None
        self._maps()
        self._data_sections()
        self._find_functions()
        for rel_sec in self.secs:
            if rel_sec["sh_type"] == "SHT_RELA":
                raise self.error(rel_sec.name, None, "RELA relocations are not used by BPF")
            if rel_sec["sh_type"] == "SHT_REL":
                self._relocations(rel_sec)
        self._static_refs()
        self._programs()
        for m, index, name in self.prog_array_init:
            m.update(index, obj.program(name))

    # ---------------------------------------------------------------- symbols, BTF
    def _symbols(self) -> list[Symbol]:
        symtab = self.elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise BpfLoadError("the object has no symbol table (.symtab)")
        out = []
        for sym in symtab.iter_symbols():
            shndx = sym["st_shndx"]
            out.append(Symbol(sym.name, sym["st_value"], sym["st_size"], sym["st_info"]["type"],
                              sym["st_info"]["bind"], shndx if isinstance(shndx, int) else None))
        return out

    def _btf(self) -> None:
        btf_sec = self.obj.sections.get(".BTF")
        if btf_sec is not None:
            self.btf = parse_btf(btf_sec.data)
            ext = self.obj.sections.get(".BTF.ext")
            if ext is not None:
                self.btf_ext = parse_btf_ext(ext.data, self.btf)
        self.obj.btf, self.obj.btf_ext = self.btf, self.btf_ext

    # ---------------------------------------------------------------- maps and data
    def _maps(self) -> None:
        for i, s in enumerate(self.secs):
            if s.name == ".maps":
                self._btf_maps(i)
            elif s.name == "maps":
                self._legacy_maps(i)

    def _map_symbols(self, index: int) -> list[Symbol]:
        syms = [s for s in self.symbols if s.shndx == index and s.type in ("STT_OBJECT", "STT_NOTYPE") and s.name]
        return sorted(syms, key=lambda s: s.value)

    def _add_map(self, section: int, offset: int, name: str, map_type: int, key_size: int, value_size: int,
                 max_entries: int, flags: int = 0, extra: int = 0, initial: bytes | None = None):
        try:
            m = bpfmaps.create(self.obj.runtime, name, map_type, key_size, value_size, max_entries, flags,
                               extra, initial)
        except BpfError as e:
            raise self.error(section, offset, e.message) from None
        self.map_at[(section, offset)] = len(self.obj.map_list)
        self.obj.map_list.append(m)
        return m

    def _btf_maps(self, index: int) -> None:
        if self.btf is None:
            raise self.error(index, None, "BTF-defined maps need the .BTF section (compile with -g)")
        datasec = self.btf.find(".maps", "datasec")
        variables = {self.btf.get(v).name: self.btf.get(v) for v, _, _ in (datasec.members if datasec else [])}
        for sym in self._map_symbols(index):
            var = variables.get(sym.name)
            if var is None:
                raise self.error(index, sym.value, f"map '{sym.name}' has no BTF description")
            attrs, key_type, value_type, values_off = self._map_def(index, sym, var.type)
            if attrs.get("type") in (bpfmaps.MAP_TYPES["array_of_maps"], bpfmaps.MAP_TYPES["hash_of_maps"]):
                raise self.error(index, sym.value, f"map '{sym.name}': maps of maps are not supported")
            m = self._add_map(index, sym.value, sym.name, attrs.get("type", 0), attrs.get("key_size", 0),
                              attrs.get("value_size", 0), attrs.get("max_entries", 0), attrs.get("map_flags", 0),
                              attrs.get("map_extra", 0))
            m.btf_key_type, m.btf_value_type = key_type, value_type
            m.has_spin_lock = not m.percpu and not getattr(m, "lru", False) and self._holds_spin_lock(value_type)
            if values_off is not None:
                self.map_values.append((m, sym.value + values_off))

    def _map_def(self, index: int, sym: Symbol, type_id: int):
        btf = self.btf
        st = btf.resolve(type_id)
        if st.kind != "struct":
            raise self.error(index, sym.value, f"map '{sym.name}' is a BTF {st.kind}, not a struct")
        attrs: dict[str, int] = {}
        key_type = value_type = 0
        values_off = None
        for name, mtype, bit_off, _ in st.members:
            t = btf.resolve(mtype)
            if name in _MAP_FIELDS:
                target = btf.resolve(t.type) if t.kind == "ptr" else None
                if target is None or target.kind != "array":
                    raise self.error(index, sym.value, f"map '{sym.name}': field '{name}' is not __uint(...)")
                attrs[name] = target.members[0][2]
            elif name in ("key", "value"):
                if t.kind != "ptr":
                    raise self.error(index, sym.value, f"map '{sym.name}': field '{name}' is not __type(...)")
                size = btf.size_of(t.type)
                attrs[name + "_size"] = size
                key_type, value_type = (t.type, value_type) if name == "key" else (key_type, t.type)
            elif name == "values":
                values_off = bit_off // 8
                elem = btf.resolve(t.members[0][0]) if t.kind == "array" else None
                inner = btf.resolve(elem.type) if elem is not None and elem.kind == "ptr" else None
                if inner is None or inner.kind != "func_proto":
                    raise self.error(index, sym.value, f"map '{sym.name}': __array(values, ...) of maps "
                                                       "(map-in-map) is not supported")
                attrs.setdefault("value_size", 4)
                attrs.setdefault("key_size", 4)
            else:
                raise self.error(index, sym.value, f"map '{sym.name}': unknown field '{name}'")
        return attrs, key_type, value_type, values_off

    def _holds_spin_lock(self, type_id: int, depth: int = 0) -> bool:
        """Whether a map value type contains a struct bpf_spin_lock (BPF_F_LOCK updates)."""
        if not type_id or depth > 8:
            return False
        t = self.btf.resolve(type_id)
        if t is None or t.kind != "struct":
            return False
        return t.name == "bpf_spin_lock" or any(self._holds_spin_lock(m[1], depth + 1) for m in t.members)

    def _legacy_maps(self, index: int) -> None:
        data = self.secs[index].data()
        syms = self._map_symbols(index)
        for sym in syms:
            raw = data[sym.value:sym.value + 20].ljust(20, b"\0")
            fields = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 20, 4)]
            self._add_map(index, sym.value, sym.name, *fields)

    def _data_sections(self) -> None:
        for i, s in enumerate(self.secs):
            name = s.name
            if not s["sh_flags"] & 0x2 or s["sh_flags"] & 0x4:           # SHF_ALLOC, not code
                continue
            if not (name in (".data", ".rodata", ".bss") or name.startswith((".data.", ".rodata.", ".bss."))):
                continue
            if s["sh_size"] == 0:
                continue
            readonly = name.startswith(".rodata")
            flags = bpfmaps.BPF_F_MMAPABLE | (bpfmaps.BPF_F_RDONLY_PROG if readonly else 0)
            initial = None if s["sh_type"] == "SHT_NOBITS" else s.data()
            m = self._add_map(i, 0, name, "array", 4, s["sh_size"], 1, flags, 0, initial)
            self.data_maps[i] = self.map_at[(i, 0)]
            for sym in self.symbols:
                if sym.shndx == i and sym.type == "STT_OBJECT" and sym.name:
                    self.obj.variables[sym.name] = (m, sym.value, sym.size)
            if self.btf is not None:
                sec_type = self.btf.find(name, "datasec")
                m.btf_value_type = sec_type.id if sec_type else 0

    # ---------------------------------------------------------------- functions
    def _find_functions(self) -> None:
        for sec, insns in self.code.items():
            syms = sorted((s for s in self.symbols if s.shndx == sec and s.type == "STT_FUNC"),
                          key=lambda s: s.value)
            if not syms or syms[0].value != 0:
                syms.insert(0, Symbol(self.name(sec), 0, 0, "STT_FUNC", "STB_GLOBAL", sec))
            for k, s in enumerate(syms):
                if s.value % 8:
                    raise self.error(sec, s.value, f"function '{s.name}' is not 8-byte aligned")
                start = s.value // 8
                nxt = syms[k + 1].value // 8 if k + 1 < len(syms) else len(insns)
                end = start + s.size // 8 if s.size else nxt
                self.functions[(sec, start)] = Function(s.name, sec, start, min(end, len(insns)),
                                                        s.bind != "STB_LOCAL")

    def _function_of(self, sec: int, slot: int) -> Function:
        for f in self.functions.values():
            if f.section == sec and f.start <= slot < f.end:
                return f
        raise self.error(sec, 8 * slot, "instruction outside every function")

    # ---------------------------------------------------------------- relocations
    def _relocations(self, rel_sec) -> None:
        target = rel_sec["sh_info"]
        tname = self.name(target)
        link = rel_sec["sh_link"]
        if not 0 <= link < len(self.secs) or self.secs[link]["sh_type"] != "SHT_SYMTAB":
            raise self.error(rel_sec.name, None, f"sh_link {link} is not the symbol table")
        if not 0 <= target < len(self.secs):
            raise self.error(rel_sec.name, None, f"sh_info {target} is not a section")
        if tname.startswith(_IGNORED_RELOC_TARGETS):
            return
        for rel in rel_sec.iter_relocations():
            off, rtype = rel["r_offset"], rel["r_info_type"]
            if not 0 <= rel["r_info_sym"] < len(self.symbols):
                raise self.error(tname, off, f"relocation against symbol {rel['r_info_sym']}, which does not exist")
            sym = self.symbols[rel["r_info_sym"]]
            self.obj.relocations.append(Relocation(tname, off, rtype, sym.name,
                                                   None if sym.shndx is None else self.name(sym.shndx), sym.value))
            if target in self.code:
                self._code_relocation(target, off, rtype, sym)
            elif tname == ".maps" and rtype == R_BPF_64_ABS64:
                self._map_init_relocation(target, off, sym)
            else:
                raise self.error(tname, off, f"{RELOC_NAMES.get(rtype, rtype)} against '{sym.name or self.name(sym.shndx or 0)}' "
                                             "(relocations in data sections are not supported)")

    def _code_relocation(self, sec: int, off: int, rtype: int, sym: Symbol) -> None:
        insns = self.code[sec]
        if off % 8 or off // 8 >= len(insns):
            raise self.error(sec, off, f"relocation offset {off} is not an instruction")
        slot = off // 8
        insn = insns[slot]
        label = sym.name or (self.name(sym.shndx) if sym.shndx is not None else "?")
        if rtype == R_BPF_64_32:
            if insn.opcode != isa.OP_CALL:
                raise self.error(sec, off, f"R_BPF_64_32 against '{label}' on a non-call instruction")
            if sym.shndx is None:                           # extern function: a kfunc by name
                self.kfuncs[(sec, slot)] = sym.name
                return
            if sym.shndx not in self.code:
                raise self.error(sec, off, f"call to '{label}', which is not in a code section")
            self._reference(sec, slot, sym.shndx, sym.value // 8 + insn.imm + 1, isa.CALL_LOCAL)
            return
        if rtype != R_BPF_64_64:
            raise self.error(sec, off, f"unsupported relocation {RELOC_NAMES.get(rtype, rtype)} in code")
        if not insn.is_lddw:
            raise self.error(sec, off, f"R_BPF_64_64 against '{label}' on a non-lddw instruction")
        if sym.shndx is None:
            raise self.error(sec, off, f"extern variable '{sym.name}' (__ksym / __kconfig) is not supported")
        if sym.shndx in self.code:
            self._reference(sec, slot, sym.shndx, (sym.value + insn.imm) // 8, Pseudo.FUNC)
        elif (sym.shndx, sym.value) in self.map_at and self.name(sym.shndx) in (".maps", "maps"):
            self.slot_fix[(sec, slot)] = (Pseudo.MAP_IDX, self.map_at[(sym.shndx, sym.value)], 0)
        elif sym.shndx in self.data_maps:
            self.slot_fix[(sec, slot)] = (Pseudo.MAP_IDX_VALUE, self.data_maps[sym.shndx],
                                          sym.value + insn.imm)
        else:
            raise self.error(sec, off, f"lddw of '{label}' in section '{self.name(sym.shndx)}', "
                                       "which is neither a map, global data nor code")

    def _reference(self, sec: int, slot: int, tsec: int, tslot: int, src: int) -> None:
        if (tsec, tslot) not in self.functions:
            raise self.error(sec, 8 * slot, f"reference to instruction {tslot} of section "
                                            f"'{self.name(tsec)}', which is not the start of a function")
        self._function_of(sec, slot).refs.append((slot, (tsec, tslot), src))

    def _map_init_relocation(self, sec: int, off: int, sym: Symbol) -> None:
        for m, base in self.map_values:
            if base <= off < base + 8 * m.max_entries and (off - base) % 8 == 0:
                if sym.type != "STT_FUNC" or sym.shndx not in self.code:
                    raise self.error(sec, off, f"prog_array '{m.name}' initialised with '{sym.name}', "
                                               "which is not a program")
                self.prog_array_init.append((m, (off - base) // 8, sym.name))
                return
        raise self.error(sec, off, f"relocation against '{sym.name}' outside a map's values")

    def _static_refs(self) -> None:
        """Calls and function pointers without relocations (static, same section)."""
        relocated = {(f.section, s) for f in self.functions.values() for s, _, _ in f.refs}
        for f in self.functions.values():
            insns = self.code[f.section]
            for slot in range(f.start, f.end):
                insn = insns[slot]
                if (f.section, slot) in relocated or (f.section, slot) in self.kfuncs:
                    continue
                local_call = insn.opcode == isa.OP_CALL and insn.src == isa.CALL_LOCAL
                func_ptr = insn.is_lddw and insn.src == Pseudo.FUNC and (f.section, slot) not in self.slot_fix
                if local_call or func_ptr:
                    self._reference(f.section, slot, f.section, slot + 1 + insn.imm,
                                    isa.CALL_LOCAL if local_call else Pseudo.FUNC)

    # ---------------------------------------------------------------- programs
    def _programs(self) -> None:
        text = next((i for i in self.code if self.name(i) == ".text"), None)
        mains = [f for f in self.functions.values() if f.section != text and f.is_global]
        if not any(f.section != text for f in self.functions.values()):
            mains = [f for f in self.functions.values() if f.is_global]     # uBPF style: .text only
        for f in sorted(mains, key=lambda f: (f.section, f.start)):
            self._link(f)

    def _link(self, main: Function) -> None:
        insns: list[Insn] = []
        placed: dict[int, int] = {}
        order: list[Function] = []
        kfuncs: dict[int, str] = {}

        def place(f: Function) -> int:
            if id(f) not in placed:
                placed[id(f)] = len(insns)
                order.append(f)
                insns.extend(self.code[f.section][f.start:f.end])
            return placed[id(f)]

        place(main)
        k = 0
        while k < len(order):
            f = order[k]
            k += 1
            base = placed[id(f)] - f.start
            for slot in range(f.start, f.end):
                fix = self.slot_fix.get((f.section, slot))
                if fix is not None:
                    src, imm, next_imm = fix
                    pc = base + slot
                    insns[pc] = replace(insns[pc], src=src, imm=imm, next_imm=next_imm)
                    insns[pc + 1] = replace(insns[pc + 1], imm=next_imm)
                name = self.kfuncs.get((f.section, slot))
                if name is not None:
                    btf_func = self.btf.find(name, "func") if self.btf else None
                    insns[base + slot] = replace(insns[base + slot], src=isa.CALL_KFUNC,
                                                 imm=btf_func.id if btf_func else 0)
                    kfuncs[base + slot] = name
            for slot, target, src in f.refs:
                pc = base + slot
                entry = place(self.functions[target])
                insns[pc] = replace(insns[pc], src=src, imm=entry - (pc + 1))
                if src == Pseudo.FUNC:
                    insns[pc] = replace(insns[pc], next_imm=0)
                    insns[pc + 1] = replace(insns[pc + 1], imm=0)
        section = self.name(main.section)
        try:
            self.obj.add_program(main.name, insns, section=section, kfuncs=kfuncs,
                                        prog_type=program_type(section) if section != ".text" else "raw",
                                        line_info=self._line_info(order, placed),
                                        line_text=self._line_info(order, placed, text=True),
                                        function_names={placed[id(f)]: f.name for f in order})
        except BpfError as e:
            raise BpfLoadError(f"program '{main.name}' (section '{section}'): {e.message}", pc=e.pc) from None

    def _line_info(self, order: list[Function], placed: dict[int, int], text: bool = False) -> dict[int, str]:
        if self.btf_ext is None:
            return {}
        out: dict[int, str] = {}
        for f in order:
            records = sorted(self.btf_ext.line_info.get(self.name(f.section), []), key=lambda r: r.insn_off)
            base = placed[id(f)] - f.start
            current = None
            for slot in range(f.start, f.end):
                while records and records[0].insn_off <= 8 * slot:
                    r = records.pop(0)
                    if r.insn_off >= 8 * f.start:
                        current = r.source.strip() if text else f"{os.path.basename(r.file)}:{r.line}"
                if current is not None:
                    out[base + slot] = current
        return out
