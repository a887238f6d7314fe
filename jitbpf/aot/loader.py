"""Load a compiled object or raw blob and run it: natively on the host arch, in unicorn
on the other, with the contexts ``jitbpf run`` gives (raw memory, XDP packets, ctx bytes).

The image is placed below 4 GiB (its XDP packet buffer must be, as for the C host linked
without PIE); its maps are the object's own storage, read through ``AotMap``. Helpers the
object leaves undefined are bound to this process's Python helpers (``Runtime``); a failed
run (``jitbpf_last_error``) raises ``BpfRuntimeError`` naming the source instruction.
"""

from __future__ import annotations

import ctypes
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.exec import RunOptions
from ..errors import BpfLoadError, BpfRuntimeError
from ..runtime import HostBuffer, Region, Runtime
from ..targets import HOST_ARCH
from . import objfile
from .runtime_ir import ARRAY, ERRORS, JITBPF_XDP_MD_SIZE


@dataclass
class AotResult:
    r0: int
    memory: bytes | None          # the input memory or packet after the run
    trace: list[str] = field(default_factory=list)


class AotMap:
    """A read-only view of one map in the loaded object's memory."""

    def __init__(self, spec: dict, header: int):
        self.spec, self.name, self.header = spec, spec["name"], header
        self.key_size, self.value_size = int(spec["key_size"]), int(spec["value_size"])

    def _field(self, i: int) -> int:
        return ctypes.c_uint64.from_address(self.header + 8 * i).value

    def items(self) -> list[tuple[bytes, bytes]]:
        storage, stride, slots, voff = self._field(5), self._field(6), self._field(7), self._field(8)
        if self._field(0) == ARRAY:
            return [(i.to_bytes(4, "little"), ctypes.string_at(storage + i * stride, self.value_size))
                    for i in range(slots)]
        out = []
        for i in range(slots):
            slot = storage + i * stride
            if ctypes.c_uint64.from_address(slot).value == 1:
                out.append((ctypes.string_at(slot + 8, self.key_size), ctypes.string_at(slot + voff, self.value_size)))
        return sorted(out)

    def __len__(self) -> int:
        return len(self.items())


_BPF_FUNCTION = re.compile(r"p\d+\$bpf_fn_\d+$")


def _view(address: int, size: int) -> memoryview:
    return memoryview((ctypes.c_char * max(size, 1)).from_address(address)).cast("B")[:size]


class CompiledObject:
    """A compiled object loaded into this process (``run`` one of its programs)."""

    def __init__(self, image, manifest: dict, executor: str | None = None):
        self.image, self.manifest = image, manifest
        self.arch = image.arch
        executor = executor or ("native" if self.arch == HOST_ARCH else "unicorn")
        if executor == "native" and self.arch != HOST_ARCH:
            raise BpfLoadError(f"cannot run {self.arch} code natively on a {HOST_ARCH} host")
        self.executor = executor
        self.programs = {p["name"]: p for p in manifest["programs"]}
        for p in manifest["programs"]:
            for key in ("name", "core", "context"):
                if not isinstance(p.get(key), str):
                    raise BpfLoadError(f"bad manifest: a program lacks '{key}'")
            if p["core"] not in image.symbols:
                raise BpfLoadError(f"bad manifest: program '{p['name']}' has no entry in the code")
        for m in manifest["maps"]:
            if not isinstance(m, dict) or f"map:{m.get('name')}" not in image.symbols:
                raise BpfLoadError(f"bad manifest: map {m.get('name') if isinstance(m, dict) else m!r} is not in the code")
        self.runtime = Runtime()
        budget = manifest.get("budget")
        options = RunOptions(budget if isinstance(budget, int) else None, False)
        first = manifest["programs"][0]["core"]
        # what helpers may call back (bpf_loop, for_each_map_elem): the programs' BPF functions
        functions = [n for n in image.symbols if n.startswith("jitbpf_entry$") or _BPF_FUNCTION.match(n)]
        if executor == "native":
            from ..backends.exec.native import NativeCode
            self.code = NativeCode(image, self.runtime, first, functions, options, low=True)
        else:
            from ..backends.exec.emulated import EmulatedCode
            self.code = EmulatedCode(image, self.runtime, first, functions, options, low=True)
        base, wf, size = self.code.base, image.writable_from, len(image)
        # Python helpers (trace_printk's format, snprintf ...) read the object's own memory
        self.image_regions = [Region("object code and constants", base, wf, _view(base, wf), False, None),
                              Region("object data", base + wf, size - wf, _view(base + wf, size - wf), True, None)]
        self.maps = {m["name"]: AotMap(m, self.code.address(f"map:{m['name']}")) for m in manifest["maps"]}

    @classmethod
    def from_data(cls, data, manifest: bytes | None = None, executor: str | None = None) -> "CompiledObject":
        if isinstance(data, (str, Path)):
            path = Path(data)
            data = path.read_bytes()
            if manifest is None and not data.startswith(b"\x7fELF"):
                side = Path(str(path) + ".json")
                if not side.exists():
                    raise BpfLoadError(f"{path}: neither an ELF object nor a raw blob with {side.name} beside it")
                manifest = side.read_bytes()
        if manifest is not None:
            image, meta = objfile.from_raw(data, manifest)
        else:
            image, meta = objfile.read_elf(data)
        return cls(image, meta, executor)

    def program(self, name: str | None = None) -> dict:
        if name is None:
            return self.manifest["programs"][0]
        for p in self.manifest["programs"]:
            if name in (p["name"], p.get("section")):
                return p
        raise BpfLoadError(f"no program '{name}' in the compiled object "
                           f"(it has {', '.join(self.programs)})")

    def _word(self, symbol: str) -> int:
        return ctypes.c_uint64.from_address(self.code.address(symbol)).value

    def run(self, name: str | None = None, mem: bytes | None = None, packet: bytes | None = None,
            ctx: bytes | None = None) -> AotResult:
        p = self.program(name)
        context = p["context"]
        self.runtime.trace_lines.clear()
        if context == "xdp":
            data = packet if packet is not None else (mem or b"")
            buf = HostBuffer(max(len(data), 1), data)
            md = HostBuffer(JITBPF_XDP_MD_SIZE)
            fields = bytes(ctx[12:24]).ljust(12, b"\0") if ctx and len(ctx) >= 24 else struct.pack("<III", 1, 0, 0)
            md.view[:] = struct.pack("<QQQ", buf.address, buf.address + len(data), 0) + fields + bytes(4)
            regions = [Region.of("packet", buf), Region.of("ctx", md, writable=False)]
            args, size = (md.address, JITBPF_XDP_MD_SIZE), len(data)
        else:
            data = mem if context == "raw" else ctx
            data = data or b""
            buf = HostBuffer(max(len(data), 1), data)
            regions = [Region.of("memory", buf)]
            args, size = (buf.address, len(data)), len(data)
        self.code.entry_address = self.code.address(p["core"])
        with self.runtime.mapped(*regions, *self.image_regions):
            r0 = self.code(*args)
        code = self._word("jitbpf_err_code")
        if code:
            pc, value = self._word("jitbpf_err_pc"), self._word("jitbpf_err_value")
            origin = p.get("origin") or []
            slot = origin[pc] if isinstance(pc, int) and 0 <= pc < len(origin) else (None if pc >= 1 << 63 else pc)
            text = ERRORS.get(code, "run-time error {value}").format(value=value)
            raise BpfRuntimeError(text, pc=slot)
        return AotResult(r0, bytes(buf.view[:size]), list(self.runtime.trace_lines))
