"""Native code listings: machine code (capstone) interleaved with the BPF instructions.

Any backend can be listed from its linked :class:`~backends.link.Image`: the code ranges
are disassembled, and ``Image.pc_map`` ((native offset, BPF slot), sorted) says which BPF
instruction each native instruction belongs to. The LLVM backend fills pc_map from the
DWARF line table of its object (line = slot + 1, see :func:`line_table`); the direct JITs
record it as they emit. Where optimisation moved code around, a BPF instruction can
appear several times, or not at all.
"""

from __future__ import annotations

import bisect
import io

from jitbpf.errors import BpfEngineError

from .link import Image

CAPSTONE = {"x86_64": ("CS_ARCH_X86", "CS_MODE_64"), "arm64": ("CS_ARCH_ARM64", "CS_MODE_ARM")}


def line_table(obj: bytes) -> list[tuple[str, int, int]]:
    """(section, offset, BPF slot) rows of an object's DWARF line table, by address."""
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(obj))
    if not elf.has_dwarf_info():
        return []
    dwarf = elf.get_dwarf_info(relocate_dwarf_sections=True)
    rows: dict[int, int] = {}
    for cu in dwarf.iter_CUs():
        program = dwarf.line_program_for_CU(cu)
        for entry in program.get_entries() if program else ():
            state = entry.state
            if state is None or state.end_sequence or state.line == 0:
                continue
            rows[state.address] = state.line - 1
    return [(".text", address, slot) for address, slot in sorted(rows.items())]


def _disassembler(arch: str):
    import capstone
    arch_name, mode_name = CAPSTONE[arch]
    return capstone.Cs(getattr(capstone, arch_name), getattr(capstone, mode_name))


def listing(image: Image, program, base: int = 0, style: str = "asm") -> str:
    """Text listing of ``image`` (addresses relative to ``base``), one BPF instruction as a
    ``;`` comment line before the native instructions generated for it."""
    from jitbpf.disasm import disassemble

    if image.arch not in CAPSTONE:
        raise BpfEngineError(f"no disassembler for {image.arch}")
    bpf_text = dict(disassemble(program.insns, style))
    names = sorted((offset, name) for name, offset in image.symbols.items()
                   if not name.startswith(("__", ".", "$")))     # stubs, sections, arm64 mapping symbols
    keys = [off for off, _ in image.pc_map]
    cs = _disassembler(image.arch)
    out: list[str] = []
    for start, end in image.code_ranges:
        current = None
        for insn in cs.disasm(image.blob[start:end], base + start):
            offset = insn.address - base
            for off, name in names:
                if off == offset:
                    out.append(f"{name}:")
            i = bisect.bisect_right(keys, offset) - 1
            slot = image.pc_map[i][1] if i >= 0 else None
            if slot is not None and slot != current:
                out.append(f"    ; {slot}: {bpf_text.get(slot, '?')}")
            current = slot
            out.append(f"  {insn.address:8x}:  {insn.bytes.hex():<22} {insn.mnemonic} {insn.op_str}".rstrip())
    return "\n".join(out) + "\n"



def engine_listing(engine_name: str, program, style: str = "asm", **options) -> str:
    """The listing of what engine ``engine_name`` generates for ``program``. Engines that
    generate code expose ``image(program, debug=True) -> Image`` with pc_map filled."""
    from jitbpf.engines import get_engine

    engine = get_engine(engine_name, **options)
    if not hasattr(engine, "image"):
        raise BpfEngineError(f"engine '{engine_name}' generates no native code to list")
    return listing(engine.image(program, debug=True), program, style=style)
