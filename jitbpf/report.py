"""What ``jitbpf info`` and ``jitbpf run`` print: objects, maps, verdicts (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .isa import MASK32, to_s64
from .runtime.context import TC_ACTIONS, XDP_ACTIONS, context_kind
from .runtime.maps import MAP_TYPES

MAX_ROWS = 32


def console() -> Console:
    """A console that does not squeeze tables to 80 columns when output is piped."""
    import sys
    return Console(width=None if sys.stdout.isatty() else 160)


def verdict(prog_type: str, r0: int) -> str:
    """r0 with its meaning for XDP and tc programs (``2 XDP_PASS``)."""
    signed = to_s64(r0)
    names = XDP_ACTIONS if prog_type == "xdp" else TC_ACTIONS if prog_type == "tc" else {}
    name = names.get(signed & MASK32 if prog_type == "xdp" else signed)
    return f"{signed} {name}" if name else str(signed)


def _hex(b: bytes, limit: int = 32) -> str:
    return b.hex() if len(b) <= limit else b[:limit].hex() + f"... ({len(b)} bytes)"


def print_info(obj: Any, console: Console) -> None:
    console.print(f"[bold]{obj.path}[/]  license: {obj.license or '(none)'}")
    t = Table(title="programs")
    for col in ("name", "section", "type", "context", "slots", "functions", "kfuncs"):
        t.add_column(col)
    for p in obj.programs.values():
        names = [p.function_names.get(s, f"@{s}") for s in p.functions]
        t.add_row(p.name, p.section, p.prog_type, context_kind(p.prog_type), str(len(p.insns)),
                  ", ".join(names), ", ".join(sorted(set(p.kfuncs.values()))))
    console.print(t)
    if obj.map_list:
        t = Table(title="maps")
        for col in ("#", "name", "type", "key", "value", "max_entries", "flags"):
            t.add_column(col)
        for i, m in enumerate(obj.map_list):
            t.add_row(str(i), m.name, f"{m.type_name} ({m.map_type})", str(m.key_size), str(m.value_size),
                      str(m.max_entries), f"0x{m.map_flags:x}")
        console.print(t)
    t = Table(title="sections")
    for col in ("#", "name", "type", "size", "relocations"):
        t.add_column(col)
    relocs: dict[str, int] = {}
    for r in obj.relocations:
        relocs[r.section] = relocs.get(r.section, 0) + 1
    for s in obj.sections.values():
        if s.name and not s.name.startswith((".rel", ".debug", ".strtab", ".symtab", ".llvm")):
            t.add_row(str(s.index), s.name, str(s.type).removeprefix("SHT_"), str(s.size), str(relocs.get(s.name, "")))
    console.print(t)
    if obj.btf is not None:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(obj.btf.counts().items()))
        console.print(f"BTF: {len(obj.btf)} types ({kinds})")
    if obj.btf_ext is not None:
        ext = obj.btf_ext
        count = (lambda d: sum(len(v) for v in d.values()))
        console.print(f"BTF.ext: {count(ext.func_info)} func_info, {count(ext.line_info)} line_info, "
                      f"{count(ext.core_relos)} CO-RE relocations")


def print_maps(obj: Any, console: Console) -> None:
    for m in obj.map_list:
        items = m.items()
        t = Table(title=f"map {m.name} ({m.type_name}, {len(items)} entr{'y' if len(items) == 1 else 'ies'})")
        t.add_column("key")
        t.add_column("value")
        shown = [(k, v) for k, v in items if m.map_type != MAP_TYPES["array"] or any(v)] if m.max_entries > 1 else items
        for k, v in shown[:MAX_ROWS]:
            t.add_row(_key(k), _hex(v))
        if len(shown) > MAX_ROWS:
            t.add_row("...", f"{len(shown) - MAX_ROWS} more")
        if m.max_entries > 1 and len(shown) < len(items):
            t.caption = "all-zero array elements not shown"
        console.print(t)


def _key(k: bytes) -> str:
    if len(k) in (1, 2, 4, 8):
        return f"{int.from_bytes(k, 'little')} ({k.hex()})"
    return _hex(k)
