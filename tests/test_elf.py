"""ELF and BTF loading: what the loader makes of clang objects, and its errors."""

from __future__ import annotations

import struct

import pytest

import jitbpf
from jitbpf import isa
from jitbpf.btf import parse_btf, parse_btf_ext
from jitbpf.elf import R_BPF_64_32, R_BPF_64_64, program_type

from conftest import FIXTURES, load_fixture as load



def test_section_names_give_program_types():
    assert [program_type(s) for s in ("xdp", "xdp.frags", "tc", "tc/ingress", "classifier", "socket",
                                      "kprobe/do_sys_open", "kretprobe/x", "tracepoint/a/b", "tp/a/b",
                                      "raw_tp/sys_enter", "raw_tracepoint/x", "syscall", "fentry/f",
                                      "cgroup_skb/ingress", "whatever", "xdpfoo")] == [
        "xdp", "xdp", "tc", "tc", "tc", "socket", "kprobe", "kprobe", "tracepoint", "tracepoint",
        "raw_tracepoint", "raw_tracepoint", "syscall", "tracing", "cgroup_skb", "raw", "raw"]


def test_btf_maps_and_their_types():
    obj = load("xdp_parse")
    counts, ports = obj.map_list
    assert (counts.name, counts.type_name, counts.key_size, counts.value_size, counts.max_entries) == \
        ("proto_count", "array", 4, 8, 256)
    assert (ports.name, ports.type_name, ports.key_size, ports.value_size, ports.max_entries) == \
        ("tcp_ports", "hash", 2, 8, 64)
    assert obj.btf.type_name(ports.btf_key_type) == "__u16"
    assert obj.btf.size_of(ports.btf_value_type) == 8
    lpm = load("lpm").maps["routes"]
    assert lpm.map_flags == 1 and obj.btf.resolve(0).kind == "void"
    assert load("bloom").maps["seen"].map_extra == 3


def test_global_data_sections_are_single_element_arrays():
    obj = load("globals")
    names = {m.name: m for m in obj.map_list}
    assert {".data", ".bss", ".rodata", ".data.stats", ".rodata.str1.1"} <= set(names)
    data, rodata, stats = names[".data"], names[".rodata"], names[".data.stats"]
    assert data.max_entries == 1 and data.key_size == 4
    assert data.initial == obj.sections[".data"].data and int.from_bytes(data.initial[:4], "little") == 100
    assert rodata.map_flags & 0x80 and not data.map_flags & 0x80          # BPF_F_RDONLY_PROG
    assert stats.lookup(0) == struct.pack("<4I", 7, 7, 7, 7)
    assert names[".bss"].lookup(0) == bytes(names[".bss"].value_size)
    assert b"index %u square %u\0" in rodata.lookup(0)                   # bpf_printk's static format
    assert b"jit\0" in names[".rodata.str1.1"].lookup(0)                  # merged string literals
    m, off, size = obj.variables["scale"]
    assert m is rodata and size == 4 and int.from_bytes(rodata.lookup(0)[off:off + 4], "little") == 3


def test_lddw_references_become_map_indices():
    obj = load("globals")
    prog = obj.program()
    pseudo = [(i.src, i.imm, i.next_imm) for i in prog.insns if i.is_lddw and i.src]
    assert pseudo and all(src in (isa.Pseudo.MAP_IDX, isa.Pseudo.MAP_IDX_VALUE) for src, _, _ in pseudo)
    for src, imm, off in pseudo:
        assert 0 <= imm < len(obj.map_list) and 0 <= off < obj.map_list[imm].value_size
    relocs = [r for r in obj.relocations if r.section == "syscall"]
    assert relocs and all(r.type == R_BPF_64_64 for r in relocs)
    assert {r.symbol_section for r in relocs} <= {".data", ".bss", ".rodata", ".data.stats", ".rodata.str1.1",
                                                  ".rodata.cst32"}


def test_subprograms_are_appended_to_each_program():
    obj = load("subprogs")
    prog = obj.program()
    names = set(prog.function_names.values())
    assert names == {"subprogs", "square", "add3", "twice", "fill", "level2", "level3", "level4", "level5"}
    assert prog.functions == sorted(prog.function_names)
    # twice lives in the program's own section and is called without a relocation
    twice = next(s for s, n in prog.function_names.items() if n == "twice")
    calls = [pc for pc, i in enumerate(prog.insns) if i.opcode == isa.OP_CALL and i.src == isa.CALL_LOCAL
             and pc + 1 + i.imm == twice]
    assert calls
    relocated = {r.offset // 8 for r in obj.relocations if r.section == "syscall" and r.type == R_BPF_64_32}
    assert not any(pc in relocated for pc in calls if pc < prog.function_ranges()[0][1])
    # callbacks (lddw func) are linked too
    loops = load("loops").program()
    assert {"accumulate", "sum_elem"} <= set(loops.function_names.values())


def test_every_program_is_self_contained():
    obj = load("multi_prog")
    a, b = obj.program("xdp_pass_all"), obj.program("xdp_drop_small")
    assert a.section == b.section == "xdp" and a.insns != b.insns
    tail = load("tail_calls")
    assert set(tail.programs) == {"entry", "double_it", "self_loop"}
    assert tail.maps["jump_table"].programs == {0: tail.program("double_it"), 2: tail.program("self_loop")}


def test_line_info_and_btf_ext():
    obj = load("xdp_parse")
    prog = obj.program()
    assert prog.source_line(0).startswith("xdp_parse.bpf.c:")
    source = (FIXTURES / "xdp_parse.bpf.c").read_text().splitlines()
    lines = {int(v.split(":")[1]) for v in prog.line_info.values()}
    assert any("bpf_map_lookup_elem" in source[n - 1] for n in lines)
    assert set(prog.line_info) == set(range(len(prog.insns)))            # every slot has a line
    ext = obj.btf_ext
    assert ext.func_info["xdp"][0] == (0, obj.btf.find("xdp_parse", "func").id)
    assert all(r.file.endswith("xdp_parse.bpf.c") for r in ext.line_info["xdp"])


def test_kfunc_calls_resolve_by_name():
    obj = load("kfunc")
    prog = obj.program()
    assert len(prog.kfuncs) == 2 and set(prog.kfuncs.values()) == {"jitbpf_mix"}
    for pc in prog.kfuncs:
        assert prog.insns[pc].src == isa.CALL_KFUNC
        assert prog.insns[pc].imm == obj.btf.find("jitbpf_mix", "func").id
    with pytest.raises(jitbpf.BpfEngineError, match="jitbpf_mix"):
        prog.compile().run(ctx=bytes(24))


def test_text_only_objects_expose_their_global_functions():
    obj = load("elf/text_only")
    assert set(obj.programs) == {"sum", "hash"}
    assert obj.program("sum").prog_type == "raw"
    assert obj.program("sum").compile().run(struct.pack("<II", 40, 2)).r0 == 42
    r0 = obj.program("hash").compile().run(struct.pack("<II", 3, 5)).r0
    assert r0 & 0xFFFF_FFFF == ((3 * 2654435761) & 0xFFFF_FFFF) ^ 5      # a u32 result: low half defined


@pytest.mark.parametrize("name, message", [
    ("elf/data_reloc", "section '.data' offset 8: R_BPF_64_ABS64 against 'x'"),
    ("elf/ksym_var", "section 'syscall' offset 0: extern variable 'bpf_prog_active'"),
    ("elf/map_in_map", "section '.maps' offset 0: map 'outer'.*map-in-map"),
])
def test_unsupported_objects_name_section_and_offset(name, message):
    with pytest.raises(jitbpf.BpfLoadError, match=message):
        load(name)


def test_damaged_objects(tmp_path):
    good = (FIXTURES / "xdp_parse.bpf.o").read_bytes()
    cases = {"truncated": good[:200], "x86": good[:18] + struct.pack("<H", 62) + good[20:]}
    # an unknown relocation type in the program's relocation section
    obj = load("xdp_parse")
    rel = obj.sections[".relxdp"]
    offset = good.index(rel.data)
    cases["reloc"] = good[:offset + 8] + struct.pack("<I", 7) + good[offset + 12:]
    cases["symbol"] = good[:offset + 12] + struct.pack("<I", 9999) + good[offset + 16:]
    # section headers: e_shoff at 0x28, 64 bytes each; sh_type at +4, sh_size at +32
    shoff = struct.unpack_from("<Q", good, 0x28)[0]
    xdp, symtab = obj.sections["xdp"].index, obj.sections[".symtab"].index
    at = shoff + 64 * xdp + 32
    cases["size"] = good[:at] + struct.pack("<Q", 1 << 62) + good[at + 8:]
    at = shoff + 64 * symtab + 4
    cases["symtab"] = good[:at] + struct.pack("<I", 1) + good[at + 4:]          # SHT_PROGBITS
    messages = {"truncated": "section headers at e_shoff .* run past the end of the 200-byte file", "x86": "not BPF", "reloc": "section 'xdp' offset .*unsupported relocation 7",
                "symbol": "section 'xdp' offset .*symbol 9999, which does not exist",
                "size": "section 'xdp': 4611686018427387904 bytes at file offset 64 run past the end",
                "symtab": "no symbol table"}
    for what, data in cases.items():
        path = tmp_path / f"{what}.o"
        path.write_bytes(data)
        with pytest.raises(jitbpf.BpfLoadError, match=messages[what]):
            jitbpf.load(str(path))


def test_btf_errors():
    data = load("xdp_parse").sections[".BTF"].data
    with pytest.raises(jitbpf.BpfLoadError, match="bad magic"):
        parse_btf(b"\0\0" + data[2:])
    with pytest.raises(jitbpf.BpfLoadError, match="past the end"):
        parse_btf(data[:-40])
    btf = parse_btf(data)
    with pytest.raises(jitbpf.BpfLoadError, match="too short"):
        parse_btf_ext(b"\x9f\xeb\x01", btf)
    # one int type named by string offset 1, in a string section "\0int" without its final NUL
    strings = b"\0int"
    types = struct.pack("<IIII", 1, 1 << 24, 4, 32)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    with pytest.raises(jitbpf.BpfLoadError, match="string offset 1 out of range or not NUL-terminated"):
        parse_btf(header + types + strings)
    assert parse_btf(header[:-4] + struct.pack("<I", 5) + types + strings + b"\0").get(1).name == "int"
