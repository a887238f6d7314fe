"""Native code listings: machine code (capstone) interleaved with the BPF instructions.

Any backend can be listed from its linked :class:`~backends.link.Image`: the code ranges
are disassembled, and ``Image.pc_map`` ((native offset, BPF slot), sorted) says which BPF
instruction each native instruction belongs to. The LLVM backend fills pc_map from the
DWARF line table of its object (line = slot + 1, see :func:`line_table`); the direct JITs
record it as they emit. Where optimisation moved code around, a BPF instruction can
appear several times, or not at all.
"""

from __future__ import annotations

import struct

from jitbpf.errors import BpfEngineError

from .link.elfobj import ElfObject
from .link import Image

CAPSTONE = {"x86_64": ("CS_ARCH_X86", "CS_MODE_64"), "arm64": ("CS_ARCH_ARM64", "CS_MODE_ARM")}


def line_table(obj: bytes) -> list[tuple[str, int, int]]:
    """(section, offset, BPF slot) rows of an object's DWARF 2-4 line table, by address
    (where several rows share an address, the last one wins)."""
    elf = ElfObject(obj)
    section = elf.by_name.get(".debug_line")
    if section is None:
        return []
    # DW_LNE_set_address operands are relocated: operand offset -> (section, address).
    targets: dict[int, tuple[str, int]] = {}
    relocations = elf.by_name.get(".rela.debug_line")
    if relocations is not None:
        symbols = elf.symbols()
        for offset, _kind, index, addend in elf.relocations(relocations):
            symbol = symbols[index]
            targets[offset] = (elf.sections[symbol.shndx].name, symbol.value + addend)
    data = elf.contents(section)
    rows: dict[tuple[str, int], int] = {}
    at = 0
    while at < len(data):
        at = _line_program(data, at, targets, rows)
    return [(name, address, slot) for (name, address), slot in sorted(rows.items())]


def _line_program(data: bytes, at: int, targets: dict[int, tuple[str, int]],
                  rows: dict[tuple[str, int], int]) -> int:
    """Run the line-number program of the unit at ``at`` into ``rows`` ((section,
    address) -> line - 1 for lines > 0); return where the next unit starts."""
    length, at = struct.unpack_from("<I", data, at)[0], at + 4
    wide = length == 0xFFFFFFFF                       # 64-bit DWARF
    if wide:
        length, at = struct.unpack_from("<Q", data, at)[0], at + 8
    end = at + length
    version, at = struct.unpack_from("<H", data, at)[0], at + 2
    if not 2 <= version <= 4:
        raise BpfEngineError(f"DWARF line table version {version} is not supported")
    header, at = struct.unpack_from("<Q" if wide else "<I", data, at)[0], at + (8 if wide else 4)
    program = at + header
    min_length = data[at]
    at += 3 if version >= 4 else 2                    # maximum_operations_per_instruction, default_is_stmt
    line_base, line_range, opcode_base = struct.unpack_from("<bBB", data, at)
    operands = data[at + 3:at + 2 + opcode_base]      # ULEB operand count of standard opcodes
    at, section, address, line = program, ".text", 0, 1
    while at < end:
        op = data[at]
        at += 1
        if op >= opcode_base:                         # special opcode: advance both, add a row
            step = op - opcode_base
            address += step // line_range * min_length
            line += line_base + step % line_range
            if line:
                rows[section, address] = line - 1
        elif op == 0:                                 # extended opcode
            size, at = _uleb(data, at)
            if data[at] == 1:                         # DW_LNE_end_sequence
                section, address, line = ".text", 0, 1
            elif data[at] == 2:                       # DW_LNE_set_address
                section, address = targets.get(at + 1, (section, int.from_bytes(data[at + 1:at + size], "little")))
            at += size
        elif op == 1:                                 # DW_LNS_copy
            if line:
                rows[section, address] = line - 1
        elif op == 2:                                 # DW_LNS_advance_pc
            step, at = _uleb(data, at)
            address += step * min_length
        elif op == 3:                                 # DW_LNS_advance_line
            step, at = _uleb(data, at, signed=True)
            line += step
        elif op == 8:                                 # DW_LNS_const_add_pc
            address += (255 - opcode_base) // line_range * min_length
        elif op == 9:                                 # DW_LNS_fixed_advance_pc
            address, at = address + struct.unpack_from("<H", data, at)[0], at + 2
        else:
            for _ in range(operands[op - 1]):
                _, at = _uleb(data, at)
    return end


def _uleb(data: bytes, at: int, signed: bool = False) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if signed and byte & 0x40:
                value -= 1 << shift
            return value, at


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
    labels: dict[int, list[str]] = {}
    for name, offset in sorted(image.symbols.items(), key=lambda item: (item[1], item[0])):
        if not name.startswith(("__", ".", "$")):               # stubs, sections, arm64 mapping symbols
            labels.setdefault(offset, []).append(f"{name}:")
    cs = _disassembler(image.arch)
    out: list[str] = []
    source = getattr(program, "source", None) or program
    line_info, line_text = getattr(source, "line_info", {}), getattr(source, "line_text", {})
    for start, end in image.code_ranges:
        current, line = None, None
        for insn in cs.disasm(image.blob[start:end], base + start):
            offset = insn.address - base
            out.extend(labels.get(offset, ()))
            slot = image.bpf_slot(offset)
            if slot is not None and slot != current:
                where = line_info.get(program.source_pc(slot))
                if where is not None and where != line:
                    text = line_text.get(program.source_pc(slot), "")
                    out.append(f"    // {where}: {text}".rstrip(": "))
                    line = where
                out.append(f"    ; {program.source_pc(slot)}: {bpf_text.get(slot, '?')}")
            current = slot
            out.append(f"  {insn.address:8x}:  {insn.bytes.hex():<22} {insn.mnemonic} {insn.op_str}".rstrip())
    return "\n".join(out) + "\n"
