"""The loaded object model: an Object holds programs, maps and the shared runtime.

Programs come from assembler text, raw bytecode or (elf.py) clang objects; in
every case a :class:`Program` is a validated list of instruction slots plus
what backends need to resolve: function entries, lddw pseudo values (maps,
global data) and kfunc names. ``Program.compile(engine)`` returns a
:class:`~jitbpf.engines.CompiledProgram` whose ``run`` any engine executes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from . import isa
from .errors import BpfEngineError
from .isa import Insn, OpInfo
from .runtime import Runtime

if TYPE_CHECKING:
    from .engines import CompiledProgram


@dataclass(eq=False)
class Program:
    name: str
    insns: list[Insn]
    obj: "Object"
    section: str = ""
    specs: list[OpInfo | None] = field(default_factory=list)
    kfuncs: dict[int, str] = field(default_factory=dict)    # slot of a kfunc call -> its name
    prog_type: str = "raw"        # raw, xdp, socket, tc, kprobe, tracepoint, syscall, ...
    line_info: dict[int, str] = field(default_factory=dict)  # slot -> "file.c:line"
    line_text: dict[int, str] = field(default_factory=dict, repr=False)  # slot -> that line's C source
    function_names: dict[int, str] = field(default_factory=dict)  # entry slot -> name (from ELF)
    # After passes (jitbpf.passes): the program as loaded, where each slot came from in it,
    # and the helper or kfunc each call slot reaches.
    source: "Program | None" = field(default=None, repr=False)
    origin: list[int] | None = field(default=None, repr=False)
    helpers: dict[int, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.specs:
            self.specs = isa.validate(self.insns, internal=self.source is not None)

    @property
    def loaded(self) -> "Program":
        """The program as loaded, before any pass (itself if no pass ran)."""
        return self.source if self.source is not None else self

    def source_pc(self, pc: int) -> int:
        """The slot of the loaded program that slot ``pc`` came from."""
        return self.origin[pc] if self.origin is not None and 0 <= pc < len(self.origin) else pc

    def derive(self, insns: list[Insn], origin: list[int], entries: dict[int, int] | None = None,
               specs: list[OpInfo | None] | None = None) -> "Program":
        """This program with its slots rewritten by a pass: ``origin[i]`` is the slot of
        *this* program that new slot i came from, ``entries`` maps old entry slots to new;
        ``specs``, when the pass knows them, spares validating the new slots again."""
        composed = origin if self.origin is None else [self.origin[o] for o in origin]
        names = {entries.get(slot, slot): name for slot, name in self.function_names.items()} if entries else {}
        derived = replace(self, insns=insns, specs=specs or [], source=self.loaded, origin=composed, helpers={},
                          function_names=names)
        if entries:
            derived.__dict__["functions"] = sorted(entries.values())   # known: no need to scan again
        return derived

    def __repr__(self) -> str:
        return f"<Program {self.name!r} section={self.section!r} type={self.prog_type} slots={len(self.insns)}>"

    @property
    def runtime(self) -> Runtime:
        return self.obj.runtime

    @cached_property
    def functions(self) -> list[int]:
        """Entry slots of the BPF functions in this program, the main function (0) first."""
        entries = {0}
        for pc, (insn, spec) in enumerate(zip(self.insns, self.specs)):
            if spec is not None and spec.kind in ("call", "lddw"):    # local calls, function pointers
                target = isa.jump_target(insn, pc)
                if target is not None:
                    entries.add(target)
        return sorted(entries)

    @cached_property
    def jump_slots(self) -> list[tuple[int, int]]:
        """(slot, target) of every jump, local call and function pointer."""
        out = []
        for pc, (insn, spec) in enumerate(zip(self.insns, self.specs)):
            if spec is not None and spec.kind in ("jcond", "ja", "call", "lddw"):
                target = isa.jump_target(insn, pc)
                if target is not None:
                    out.append((pc, target))
        return out

    def function_ranges(self) -> list[tuple[int, int]]:
        """(start, end) slot ranges, one per function, in slot order."""
        starts = self.functions
        return [(s, starts[i + 1] if i + 1 < len(starts) else len(self.insns)) for i, s in enumerate(starts)]

    def lddw_value(self, pc: int) -> int:
        """The run-time 64-bit value an lddw loads (constants, map handles, value addresses).

        Function pointers (Pseudo.FUNC) are engine specific and resolved by each engine.
        """
        insn = self.insns[pc]
        if insn.src == isa.Pseudo.IMM64:
            return insn.imm64
        if insn.src == isa.Pseudo.FUNC:
            raise BpfEngineError("function pointers are resolved by the engine", pc=pc)
        return self.obj.resolve_pseudo(insn, pc)

    def compile(self, engine: str = "interp", **options: Any) -> "CompiledProgram":
        from .pipeline import compile_program
        return compile_program(self, engine, **options)

    def disassemble(self, style: str = "asm", labels: bool = True) -> str:
        from .disasm import disassemble_text
        return disassemble_text(self.insns, style, labels)

    def source_line(self, pc: int) -> str | None:
        return self.line_info.get(pc)

    def lddw_symbol(self, pc: int) -> tuple[str, int]:
        """An lddw of a map or a map value as a symbol and addend (``map:NAME``,
        ``mapvalue:NAME`` + offset), so generated code refers to maps by relocation."""
        insn = self.insns[pc]
        index = insn.imm
        if insn.src == isa.Pseudo.BTF_ID or not 0 <= index < len(self.obj.map_list):
            self.obj.resolve_pseudo(insn, pc)                # raises the error for it
        m = self.obj.map_list[index]
        if insn.src in (isa.Pseudo.MAP_FD, isa.Pseudo.MAP_IDX):
            return map_symbol(m.name), 0
        return map_value_symbol(m.name), m.value_address(insn.next_imm) - m.value_address(0)


class Object:
    """Programs that share maps, helpers and memory (one clang object, or one assembled program)."""

    def __init__(self, runtime: Runtime | None = None, path: str | None = None):
        self.runtime = runtime if runtime is not None else Runtime()
        self.path = path
        self.programs: dict[str, Program] = {}
        self.map_list: list[Any] = []           # by index: the fd / idx of lddw pseudo sources
        self.sections: dict[str, Any] = {}      # ELF: name -> elf.SectionInfo
        self.relocations: list[Any] = []        # ELF: every elf.Relocation as found
        self.symbols: list[Any] = []            # ELF: every elf.Symbol, by symbol table index
        self.btf: Any = None                    # ELF: btf.Btf and btf.BtfExt, when present
        self.btf_ext: Any = None
        self.variables: dict[str, Any] = {}     # ELF: global variable -> (map, offset, size)
        self.license = ""

    @property
    def maps(self) -> dict[str, Any]:
        return self.runtime.maps

    def add_program(self, name: str, insns: list[Insn], **kw: Any) -> Program:
        prog = Program(name, insns, self, **kw)
        self.programs[name] = prog
        return prog

    def add_map(self, m: Any) -> int:
        """Append a map (runtime.maps.create) to map_list; returns its lddw index."""
        self.map_list.append(m)
        return len(self.map_list) - 1

    def program(self, name: str | None = None) -> Program:
        """A program by name or section name; with no name, the only (or first) program."""
        if name is None:
            if not self.programs:
                raise BpfEngineError("the object holds no programs")
            return next(iter(self.programs.values()))
        if name in self.programs:
            return self.programs[name]
        for prog in self.programs.values():
            if prog.section == name:
                return prog
        raise BpfEngineError(f"no program '{name}' (have: {', '.join(self.programs) or 'none'})")

    def resolve_pseudo(self, insn: Insn, pc: int) -> int:
        """Map handles and map-value addresses for lddw pseudo sources 1, 2, 5 and 6."""
        src = insn.src
        if src == isa.Pseudo.BTF_ID:
            raise BpfEngineError("lddw of a kernel BTF variable (pseudo btf_id) is not supported", pc=pc)
        index = insn.imm
        if not 0 <= index < len(self.map_list):
            raise BpfEngineError(f"lddw refers to map {index}, but the object has {len(self.map_list)} maps",
                                 pc=pc)
        m = self.map_list[index]
        if src in (isa.Pseudo.MAP_FD, isa.Pseudo.MAP_IDX):
            return m.address
        return m.value_address(insn.next_imm)


def map_symbol(name: str) -> str:
    return f"map:{name}"


def map_value_symbol(name: str) -> str:
    return f"mapvalue:{name}"


def from_insns(insns: list[Insn], name: str = "prog", runtime: Runtime | None = None) -> Object:
    obj = Object(runtime)
    obj.add_program(name, insns)
    return obj


def from_bytes(code: bytes, name: str = "prog", runtime: Runtime | None = None) -> Object:
    """An object holding one program given as raw bytecode."""
    return from_insns(isa.decode(code), name, runtime)


def assemble(text: str, name: str = "prog", runtime: Runtime | None = None) -> Object:
    """An object holding one program given as assembler text (see jitbpf.asm)."""
    from .asm import assemble as _assemble
    return from_insns(_assemble(text), name, runtime)


def load(path: str, runtime: Runtime | None = None) -> Object:
    """Load a clang object (ELF), assembler text (.asm/.s) or raw bytecode, by content."""
    from pathlib import Path
    p = Path(path)
    data = p.read_bytes()
    name = p.name.split(".")[0]
    if data[:4] == b"\x7fELF":
        from .elf import load_elf
        return load_elf(path, runtime)
    if p.suffix in (".asm", ".s", ".txt"):
        try:
            text = data.decode()
        except UnicodeDecodeError:
            from .errors import BpfAsmError
            raise BpfAsmError(f"{path}: not assembler text (not UTF-8)") from None
        obj = assemble(text, name, runtime)
    else:
        obj = from_bytes(data, name, runtime)
    obj.path = str(path)
    return obj
