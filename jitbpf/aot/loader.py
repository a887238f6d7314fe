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
from ..runtime.context import SK_BUFF_SIZE
from ..targets import HOST_ARCH
from . import objfile
from ..runtime.maps import E_KEY, RB_BUSY, RB_DISCARD
from .runtime_ir import (ARRAY, ERRORS, HASH, HEADER_FIELDS, JITBPF_XDP_MD_SIZE, KINDS, LPM, QUEUE, RINGBUF,
                         SKB_CONTEXTS, STACK)


@dataclass
class AotResult:
    r0: int
    memory: bytes | None          # the input memory or packet after the run
    trace: list[str] = field(default_factory=list)


class AotMap:
    """One map in the loaded object's memory: ``items()`` decodes its storage here (from the
    header, independently of the object's code); ``lookup/update/...`` call the object's C API."""

    def __init__(self, obj: CompiledObject, spec: dict, header: int):
        self.obj, self.spec, self.name, self.header = obj, spec, spec["name"], header
        self.type_name = spec["type"]
        self.key_size, self.value_size = int(spec["key_size"]), int(spec["value_size"])

    def _field(self, name: str) -> int:
        return ctypes.c_uint64.from_address(self.header + 8 * HEADER_FIELDS.index(name)).value

    def _slot(self, i: int) -> int:
        return self._field("storage") + i * self._field("stride")

    def items(self) -> list[tuple[bytes, bytes]]:
        """What maps.py's ``items()`` gives for the type (sorted where it has keys)."""
        kind, slots, size = self._field("type"), self._field("slots"), self._field("user_value_size")
        if kind == ARRAY:
            return [(i.to_bytes(4, "little"), ctypes.string_at(self._slot(i), size)) for i in range(slots)]
        if kind in (HASH, LPM):
            voff = self._field("value_offset")
            if kind == HASH:                   # the elements the index names (1 + element number)
                index = (ctypes.c_uint32 * slots).from_address(self._field("storage"))
                pool = self._field("storage") + self._field("pool")
                used = [pool + (v - 1) * self._field("stride") for v in index if v not in (0, 0xFFFF_FFFF)]
            else:
                used = [self._slot(i) for i in range(slots) if ctypes.c_uint64.from_address(self._slot(i)).value == 1]
            koff = E_KEY if kind == HASH else 8
            return sorted((ctypes.string_at(s + koff, self.key_size), ctypes.string_at(s + voff, size)) for s in used)
        if kind in (QUEUE, STACK):
            head, count, limit = self._field("head"), self._field("count"), self._field("max_entries")
            order = range(count - 1, -1, -1) if kind == STACK else range(count)
            return [(b"", ctypes.string_at(self._slot((head + k) % limit), size)) for k in order]
        if kind == RINGBUF:
            return [(b"", r) for r in self._records()]
        return []

    def _records(self) -> list[bytes]:
        """A ring buffer's committed records from the consumer on (maps.RingBufMap._records)."""
        size, data = self._field("max_entries"), ctypes.string_at(self._field("storage"), self._field("max_entries"))
        pos, out = self._field("head"), []
        while pos < self._field("clock"):
            off = pos % size
            hdr = int.from_bytes(data[off:off + 4], "little")
            if hdr & RB_BUSY:
                break
            length = hdr & ~RB_DISCARD
            if not hdr & RB_DISCARD:
                out.append((data + data)[off + 8:off + 8 + length])
            pos += (length + 15) & ~7
        return out

    def contents(self) -> dict[int, str] | list[tuple[bytes, bytes]]:
        """prog_array: slot -> program name (maps.ProgArrayMap.contents); else items()."""
        if self.type_name == "prog_array":
            return {int(k): v.split("$", 1)[1] for k, v in self.spec.get("programs", {}).items()}
        return self.items()

    def __len__(self) -> int:
        return len(self.items())

    # the C API
    def _api(self, symbol: str, *args) -> tuple[int, list[bytes]]:
        return self.obj.c_call(symbol, self.name.encode() + b"\0", *args)

    def lookup(self, key: bytes) -> bytes | None:
        rc, (_, _, value) = self._api("jitbpf_map_lookup", bytes(key), bytes(self._field("user_value_size")))
        return value if rc == 0 else None

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        return self._api("jitbpf_map_update", bytes(key), bytes(value), flags)[0]

    def delete(self, key: bytes) -> int:
        return self._api("jitbpf_map_delete", bytes(key))[0]

    def next_key(self, key: bytes | None) -> bytes | None:
        rc, out = self._api("jitbpf_map_next_key", 0 if key is None else bytes(key), bytes(max(self.key_size, 1)))
        return out[-1][:self.key_size] if rc == 0 else None

    def push(self, value: bytes, flags: int = 0) -> int:
        return self._api("jitbpf_map_push", bytes(value), flags)[0]

    def pop(self) -> tuple[int, bytes]:
        rc, (_, value) = self._api("jitbpf_map_pop", bytes(self.value_size))
        return rc, value

    def peek(self, value: bytes | None = None) -> tuple[int, bytes]:
        """queue/stack: (0, the next value) or (-ENOENT, zeroes); bloom_filter: (0 or -ENOENT, value)."""
        rc, (_, out) = self._api("jitbpf_map_peek", bytes(value) if value is not None else bytes(self.value_size))
        return rc, out

    def consume(self, size: int = 4096) -> bytes | None:
        """A ring buffer's next record (jitbpf_ringbuf_consume), or None."""
        n, (_, out) = self.obj.c_call("jitbpf_ringbuf_consume", self.name.encode() + b"\0", bytes(size), size,
                                         signed=64)
        if n < 0:
            raise BpfRuntimeError(f"jitbpf_ringbuf_consume: error {n}")
        return out[:n] if n else None


def map_picture(m):
    """What a map holds, comparable between a maps.py map and an AotMap: prog_arrays by program
    name, keyless maps in their order (queue, stack, ring buffer), the others sorted."""
    if m.type_name == "prog_array":
        return m.contents()
    return list(m.items()) if m.key_size == 0 else sorted(m.items())


_BPF_FUNCTION = re.compile(r"p\d+\$bpf_fn_\d+$")


def _view(address: int, size: int) -> memoryview:
    return memoryview((ctypes.c_char * max(size, 1)).from_address(address)).cast("B")[:size]


class CompiledObject:
    """A compiled object loaded into this process (``run`` one of its programs)."""

    def __init__(self, image, manifest: dict, executor: str | None = None, helpers=None):
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
            if m.get("type") not in KINDS or not all(isinstance(m.get(k), int) for k in ("key_size", "value_size")):
                raise BpfLoadError(f"bad manifest: map {m['name']!r} lacks a known type or its sizes")
        self.runtime = Runtime(helpers)               # what the object leaves to its host (kfuncs too)
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
        self.maps = {m["name"]: AotMap(self, m, self.code.address(f"map:{m['name']}")) for m in manifest["maps"]}

    @classmethod
    def from_data(cls, data, manifest: bytes | None = None, executor: str | None = None,
                  helpers=None) -> "CompiledObject":
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
        return cls(image, meta, executor, helpers)

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
            regions = [Region.of("packet", buf), Region.of("ctx", md)]     # the core writes md back
            args = (md.address, JITBPF_XDP_MD_SIZE)

            def after() -> bytes:                  # where md points now (the frame, if the packet moved)
                start, end = struct.unpack_from("<QQ", md.view)
                return ctypes.string_at(start, end - start)
        elif context in SKB_CONTEXTS:
            data = packet if packet is not None else (mem or b"")
            buf = HostBuffer(max(len(data), 1), data)
            fields = bytes(ctx or b"")[:SK_BUFF_SIZE].ljust(SK_BUFF_SIZE, b"\0") if ctx else b""
            md = HostBuffer(16 + len(fields), struct.pack("<QQ", buf.address, buf.address + len(data)) + fields)
            regions = [Region.of("packet", buf), Region.of("ctx", md)]     # the core writes md back
            args = (md.address, md.size)

            def after() -> bytes:
                return bytes(buf.view[:len(data)])
        else:
            data = mem if context == "raw" else ctx
            data = data or b""
            buf = HostBuffer(max(len(data), 1), data)
            regions = [Region.of("memory", buf)]
            args = (buf.address, len(data))

            def after() -> bytes:
                return bytes(buf.view[:len(data)])
        self.code.entry_address = self.code.address(p["core"])
        with self.runtime.mapped(*regions, *self.image_regions):
            r0 = self.code(*args)
        code = self._word("jitbpf_err_code")
        if code:
            pc, value = self._word("jitbpf_err_pc"), self._word("jitbpf_err_value")
            origin = self._running(p).get("origin") or []
            slot = origin[pc] if isinstance(pc, int) and 0 <= pc < len(origin) else (None if pc >= 1 << 63 else pc)
            text = ERRORS.get(code, "run-time error {value}").format(value=value)
            raise BpfRuntimeError(text, pc=slot)
        return AotResult(r0, after(), list(self.runtime.trace_lines))

    def _running(self, first: dict) -> dict:
        """The program that was running when the run ended: the first, or a tail call's target."""
        running = self._word("jitbpf_running") if "jitbpf_running" in self.image.symbols else 0
        for p in self.manifest["programs"]:
            symbol = f"jitbpf_entry${p['name']}"
            if running and symbol in self.image.symbols and self.code.address(symbol) == running:
                return p
        return first

    def c_call(self, symbol: str, *args, signed: int = 32) -> tuple[int, list[bytes]]:
        """Call a C API function of the object: bytes arguments are passed as pointers to
        copies (read back afterwards), ints as they are; returns (the result, sign-extended
        from ``signed`` bits, and every bytes argument after the call)."""
        buffers, values = [], []
        for a in args:
            if isinstance(a, (bytes, bytearray)):
                b = HostBuffer(max(len(a), 1), bytes(a))
                buffers.append((b, len(a)))
                values.append(b.address)
            else:
                values.append(a)
        if symbol not in self.image.symbols:
            raise BpfLoadError(f"the object has no {symbol} (none of its maps is of a type that has it)")
        self.code.entry_address = self.code.address(symbol)
        with self.runtime.mapped(*[Region.of("argument", b) for b, _ in buffers], *self.image_regions):
            r = self.code(*values) & ((1 << signed) - 1)
        r -= (r >> (signed - 1)) << signed
        return r, [bytes(b.view[:n]) for b, n in buffers]
