"""Ahead-of-time compilation: BPF programs to self-contained x86_64/arm64 objects and blobs.

``compile_programs(obj, names, arch, backend)`` runs each program through the pipeline
(``pipeline.image``: passes, lowering, linking), generates the native runtime for its maps
(:mod:`.runtime_ir`), merges everything into one image (:mod:`.objfile`) and writes it as a
relocatable ELF object (``Compiled.elf()``) or a raw blob with a JSON manifest
(``Compiled.raw()``), plus a C header (``Compiled.header()``). ``load_compiled`` reads
either back and runs it (:mod:`.loader`). The runtime implements the map types of
``runtime_ir.KINDS``, their helpers, tail calls, the XDP and ``__sk_buff`` contexts (see
the README's table); other helpers and kfuncs are left as undefined symbols ``bpf_<name>``
(``_bpf_helper_ext_NNNN`` with ``abi="bpftime"``) for the host, and what it cannot give a
program (other map types, other context-changing helpers) is refused with one line.
"""

from __future__ import annotations

import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from .. import pipeline
from ..errors import BpfEngineError
from ..runtime.maps import BPF_F_RDONLY_PROG, H_ELEMENTS
from . import objfile, runtime_ir
from .runtime_ir import ARRAY, BLOOM, HASH, LPM, PROG_ARRAY, QUEUE, RINGBUF, STACK, EntrySpec, MapSpec

BACKENDS = ("llvm", "direct")
ARCHS = ("x86_64", "arm64")
ABIS = ("jitbpf", "bpftime")
FORMAT = "jitbpf-aot-1"
#: helpers the runtime implements (the rest are the host's: undefined symbols)
NATIVE_HELPERS = frozenset(runtime_ir.NATIVE_HELPERS)
CONTEXT_HELPERS = ("bpf_xdp_", "bpf_skb_", "bpf_tail_call", "bpf_l3_", "bpf_l4_", "bpf_clone_redirect")
MAP_HELPERS = ("bpf_map_", "bpf_for_each_map_elem", "bpf_ringbuf_", "bpf_redirect_map", "bpf_sk_storage")
RUNTIME_SYMBOLS = {"jitbpf_trap", "jitbpf_check_access", "jitbpf_load_packet"}


@dataclass
class Compiled:
    image: object
    manifest: dict
    exports: set[str]
    seconds: float = 0.0
    undefined: list[str] = field(default_factory=list)

    def elf(self) -> bytes:
        return objfile.to_elf(self.image, self.exports, self.manifest)

    def raw(self) -> tuple[bytes, bytes]:
        return objfile.to_raw(self.image, self.manifest)

    def header(self) -> str:
        from .header import header
        return header(self.manifest)


def _context(program) -> str:
    """raw, xdp, syscall, struct (tracing), tc or skb (other __sk_buff programs: data after Ethernet)."""
    from ..runtime.context import context_kind
    kind = context_kind(program.prog_type)
    if kind == "skb":
        return "tc" if program.prog_type == "tc" else "skb"
    return kind


def _map_specs(obj) -> list[MapSpec]:
    specs = []
    for m in obj.map_list:
        kind = runtime_ir.KINDS.get(m.type_name)
        if kind is None:
            raise BpfEngineError(f"map '{m.name}': {m.type_name} maps are not in the ahead-of-time runtime "
                                 f"(these are: {', '.join(runtime_ir.KINDS)})")
        spec = MapSpec(m.name, m.type_name, m.key_size, m.value_size, m.max_entries,
                       bool(m.map_flags & BPF_F_RDONLY_PROG), percpu=m.percpu, lru=bool(getattr(m, "lru", False)),
                       cpus=m.ncpus)
        if kind in (ARRAY, BLOOM, RINGBUF):          # the same layouts as maps.py's
            spec.initial = bytes(m.view[:spec.storage_size])
        elif kind == PROG_ARRAY:
            spec.programs = {i: f"jitbpf_entry${_c_name(p.name)}" for i, p in sorted(m.programs.items())}
        if kind == BLOOM:
            spec.aux = m.nr_hashes
        elif kind == RINGBUF:
            spec.clock, spec.head = m.producer, m.consumer
        elif kind == LPM:
            spec.aux = m.bits
        if kind == HASH or kind in (LPM, QUEUE, STACK) and len(m):
            _place_elements(spec, m)
        specs.append(spec)
    return specs


def _place_elements(spec: MapSpec, m) -> None:
    """The storage of a map that holds elements when compiled (runtime_ir's layouts): a hash
    map's storage and header fields copied as they are (the layout is maps.py's, see its
    module docstring); LPM entries in any slots, queued values from the ring's start."""
    if spec.kind == HASH:
        elements, count, tombstones, free, fresh, _lock, head, tail = struct.unpack_from("<8I", m.buffer.view,
                                                                                         H_ELEMENTS)
        if (elements, m.stride, m.capacity) != (spec.pool, spec.stride, spec.slots):
            raise BpfEngineError(f"internal error: map '{m.name}' is not laid out as the ahead-of-time "
                                 "runtime's hash maps")
        spec.initial, spec.count, spec.tombstones = bytes(m.view[:spec.storage_size]), count, tombstones
        spec.free, spec.fresh, spec.lru_head, spec.lru_tail = free, fresh, head, tail
        return
    storage = bytearray(spec.storage_size)
    if spec.kind == LPM:
        for i, (key, value) in enumerate(m.items()):
            off = i * spec.stride
            storage[off:off + 8 + spec.key_size] = (1).to_bytes(8, "little") + key
            storage[off + spec.value_offset:off + spec.value_offset + len(value)] = value
    else:
        for i, (_, value) in enumerate(m.items() if spec.kind == QUEUE else reversed(m.items())):
            storage[i * spec.stride:i * spec.stride + len(value)] = value
    spec.initial, spec.count = bytes(storage), len(m)


def _with_tail_call_targets(obj, programs: list) -> list:
    """The programs and every program a prog_array of the object holds (one object has them all)."""
    out = list(programs)
    for m in obj.map_list:
        for p in getattr(m, "programs", {}).values() if m.type_name == "prog_array" else ():
            if all(p is not q for q in out):
                out.append(p)
    return out


@contextmanager
def _host_kfuncs(obj, programs):
    """kfuncs the object's runtime does not know, resolved for the compile as host symbols
    (``bpf_<name>``, which the host defines); the runtime is left as it was."""
    registry = obj.runtime.helpers
    missing = sorted({n for p in programs for n in getattr(p, "kfuncs", {}).values()
                      if n.removeprefix("bpf_") not in registry.by_name})
    if not missing:
        yield
        return
    scratch = registry.copy()
    for name in missing:
        scratch.register_kfunc(name, _host_defined)
    obj.runtime.helpers = scratch
    try:
        yield
    finally:
        obj.runtime.helpers = registry


def _host_defined(rt, *args):
    raise BpfEngineError("a kfunc the host defines was called in the compiler")


def _c_name(name: str) -> str:
    if not name.isidentifier() or not name.isascii():
        raise BpfEngineError(f"program '{name}' is not a C identifier")
    return name


def _refuse_helpers(name: str, context: str, externals) -> None:
    """One line for what a program calls that the runtime cannot give it."""
    for h in externals:
        if h in NATIVE_HELPERS:
            continue
        if h.startswith(MAP_HELPERS):
            raise BpfEngineError(f"program '{name}': {h} is not in the ahead-of-time runtime")
        if h.startswith(CONTEXT_HELPERS):
            raise BpfEngineError(f"program '{name}': {h} changes the context, which the ahead-of-time "
                                 "runtime does not support yet")
        if h == "jitbpf_load_packet" and context not in runtime_ir.SKB_CONTEXTS:
            raise BpfEngineError(f"program '{name}': LD_ABS/LD_IND need a socket-buffer context")


def runtime_image(arch: str, entries: list[EntrySpec], maps: list[MapSpec], bpftime: bool,
                  helpers: set[str] | None = None):
    """The runtime module compiled for ``arch`` and linked into an Image."""
    from ..backends.link import link_elf
    from ..backends.llvm.compile import _llvm, optimise, target_machine
    llvm = _llvm()
    text = runtime_ir.module_text(entries, maps, bpftime, helpers)
    try:
        module = llvm.parse_assembly(text)
        module.verify()
    except RuntimeError as e:                     # our own IR: a bug, said plainly
        raise BpfEngineError(f"internal error in the ahead-of-time runtime IR: {e}") from None
    module.triple = {"x86_64": "x86_64-unknown-linux-gnu", "arm64": "aarch64-unknown-linux-gnu"}[arch]
    tm = target_machine(arch, 2, "generic")
    _dead_code(llvm).run(module, llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=2)))
    optimise(module, tm, 2)
    return link_elf(tm.emit_object(module))


_managers = threading.local()


def _dead_code(llvm):
    """A pass manager (one per thread, see backends.llvm.compile.optimise) dropping what the
    object does not use (the helpers its programs do not call, the map types it lacks) and
    inlining the small accessors."""
    mpm = getattr(_managers, "dce", None)
    if mpm is None:
        mpm = _managers.dce = llvm.create_new_module_pass_manager()
        mpm.add_simplify_cfg_pass()                 # the switch cases of absent map types
        mpm.add_global_dead_code_eliminate_pass()
        mpm.add_always_inliner_pass()               # the accessors (attributes #1)
    return mpm


def compile_programs(obj, names: list[str] | None, arch: str, backend: str = "llvm", opt: int = 2,
                     abi: str = "jitbpf", **options) -> Compiled:
    """Compile programs ``names`` (default: every program) of ``obj`` for ``arch``."""
    if arch not in ARCHS:
        raise BpfEngineError(f"unknown architecture '{arch}' (x86_64 or arm64)")
    if backend not in BACKENDS:
        raise BpfEngineError(f"unknown backend '{backend}' (llvm or direct)")
    if abi not in ABIS:
        raise BpfEngineError(f"unknown ABI '{abi}' (jitbpf or bpftime)")
    start = time.perf_counter()
    programs = [obj.program(n) for n in names] if names else list(obj.programs.values())
    if not programs:
        raise BpfEngineError("the object has no programs")
    programs = _with_tail_call_targets(obj, programs)
    bpftime = abi == "bpftime"
    if bpftime and len(programs) != 1:
        raise BpfEngineError("--abi bpftime exports one program (bpf_main): choose it with --program")
    maps = _map_specs(obj)
    if bpftime and maps:
        raise BpfEngineError("--abi bpftime: programs with maps are not supported (bpftime's runtime owns maps)")
    engine = f"{backend}-{arch}"
    options = {**options, "inline_maps": False}     # inlined lookups assume the in-process map layout
    if backend == "llvm":
        options = {"opt": opt, "cpu": "generic", **options}
    budget = pipeline.resolve_options(pipeline.parse_engine(engine), options).budget
    parts, entries, listed = [], [], []
    for i, prog in enumerate(programs):
        context = _context(prog)
        name = _c_name(prog.name)
        with _host_kfuncs(obj, [prog]):
            image, prepared = pipeline.image(prog, engine, **options)
        _refuse_helpers(name, context, image.externals)
        entry = f"jitbpf_entry${name}"
        parts.append((image, f"p{i}$", {"bpf_entry": entry}))
        entries.append(EntrySpec(name, entry, context, runtime_ir.abi.UNLIMITED if budget is None else budget))
        listed.append({"name": name, "section": prog.section, "prog_type": prog.prog_type, "context": context,
                       "symbol": "bpf_main" if bpftime else name, "core": f"jitbpf_core${name}",
                       "origin": list(prepared.origin or [])})
    called = {h for image, _, _ in parts for h in image.externals}
    rt = runtime_image(arch, entries, maps, bpftime, called)
    rt_exports = {n: n for n in rt.symbols if not n.startswith((".", "__stub$", "__got$"))}
    merged = objfile.merge(arch, [*parts, (rt, "rt$", rt_exports)])
    undefined = sorted(merged.externals)
    if bpftime:
        merged = _bpftime_names(obj, merged)
        undefined = sorted(merged.externals)
    c_api = [] if bpftime else [*runtime_ir.c_api({m.kind for m in maps}), "jitbpf_last_error"]
    exports = {p["symbol"] for p in listed} | set(c_api)
    manifest = {"format": FORMAT, "arch": arch, "backend": backend, "opt": opt if backend == "llvm" else None,
                "abi": abi, "budget": budget, "programs": listed, "maps": [m.manifest() for m in maps],
                "helpers": [u for u in undefined if u not in RUNTIME_SYMBOLS], "c_api": c_api}
    return Compiled(merged, manifest, exports, time.perf_counter() - start, undefined)


def _bpftime_names(obj, image):
    """Undefined helpers renamed to bpftime's ``_bpf_helper_ext_NNNN`` (the helper id)."""
    rename = {}
    for name in image.externals:
        helper = obj.runtime.helpers.lookup(name) if name.startswith("bpf_") else None
        if helper is None or helper.id < 0:
            raise BpfEngineError(f"--abi bpftime: '{name}' is not a helper with an id")
        rename[name] = f"_bpf_helper_ext_{helper.id:04d}"
    image.relocs = [(o, k, rename.get(s, s), a) for o, k, s, a in image.relocs]
    image.symbols = {(f"__stub${rename[n[7:]]}" if n.startswith("__stub$") and n[7:] in rename else n): v
                     for n, v in image.symbols.items()}
    image.externals = sorted(rename.get(n, n) for n in image.externals)
    return image


def load_compiled(path_or_data, manifest: bytes | None = None, executor: str | None = None, helpers=None):
    """A compiled object (ELF bytes, or a raw blob with its manifest) ready to run; the
    helpers it leaves undefined (and kfuncs) come from ``helpers`` (a HelperRegistry; default:
    the built-in ones)."""
    from .loader import CompiledObject
    return CompiledObject.from_data(path_or_data, manifest, executor, helpers)


__all__ = ["compile_programs", "load_compiled", "Compiled", "BACKENDS", "ARCHS", "ABIS"]
