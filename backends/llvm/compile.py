"""LLVM compilation of the lowered module: IR passes, code generation, the object cache.

Pass pipeline (:data:`PASSES`): O1 and O2 run a pipeline chosen for BPF-derived IR,
O3 LLVM's whole default<O3> per-module pipeline, O0 nothing (the frame stays in
memory); code generation runs at the same level. BPF from clang is already optimised
at the BPF level (inlined, CSE'd, LICM'd, unrolled); what the lowering adds is stack
slots in memory, 32-bit operations as trunc/zext pairs, divisor guards and one block
per BPF block. So O1 is SROA, InstCombine and SimplifyCFG (diamonds become selects),
and O2 adds Reassociate before InstCombine (address arithmetic folds, xor/add chains
gain ILP). No inliner: bpf-to-bpf calls stay calls (clang kept them on purpose), as in
the kernel's JIT. GVN, LICM, unrolling and the vectorisers did not pay for their
compile time on the compute benchmarks (benchmarks/compute.py, direct_speed.py), and
LLVM's default<O2> spends most of its time re-running InstCombine over long ALU chains.
Measured again on benchmarks/programs (issue 14, side by side with gcc -O2): adding
LoopRotate + LoopUnroll (+ SimplifyCFG) costs +24% compile time (geomean) for a ~2% run
time gain (popcount 2.1x -> 1.2x gcc, memcpy and nested slightly slower); default<O2>
costs 2-3x the compile time, its gains (calls: inlining) are O3's too.

IR construction: text, then ``parse_assembly`` (building the same IR with
``llvmlite.ir`` is several times slower: benchmarks/ir_build.py). Compiled objects are
cached by content (ObjectCache).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from jitbpf.errors import BpfEngineError
from jitbpf.targets import TRIPLES

from ..link import Image, link_elf
from .lower import Lowering

OPT_LEVELS = (0, 1, 2, 3)
#: IR passes per level (llvmlite's names); a level not listed runs LLVM's default
#: per-module pipeline for it.
PASSES: dict[int, tuple[str, ...]] = {
    1: ("sroa", "instruction_combine", "simplify_cfg"),
    2: ("sroa", "reassociate", "instruction_combine", "simplify_cfg"),
}

# ==================================================================== compiling

_lock = threading.Lock()
_machines: dict[tuple[str, int, str, bool], Any] = {}
_initialised = False
_managers = threading.local()


def _llvm():
    global _initialised
    import llvmlite.binding as llvm
    if not _initialised:
        with _lock:
            if not _initialised:
                llvm.initialize_all_targets()
                llvm.initialize_all_asmprinters()
                _initialised = True
    return llvm


def optimise(module, tm, opt: int) -> None:
    """Run the IR pipeline of level ``opt`` (1-3) over ``module`` (see PASSES). The pass
    managers of PASSES are built once per thread and level: llvmlite 0.50 keeps ~25-60 KB
    of every new one it runs, and a manager's passes carry state while they run. LLVM's
    default pipeline cannot run twice from one manager (O3 keeps ~120 KB per compile)."""
    llvm = _llvm()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=opt))
    passes = PASSES.get(opt)
    if passes is None:
        pb.getModulePassManager().run(module, pb)
        return
    managers = _managers.__dict__.setdefault("by_level", {})
    mpm = managers.get(opt)
    if mpm is None:
        mpm = managers[opt] = llvm.create_new_module_pass_manager()
        for name in passes:
            getattr(mpm, f"add_{name}_pass")()
    mpm.run(module, pb)


def target_machine(arch: str, opt: int, cpu: str = "generic", emulated: bool = False):
    """A cached TargetMachine for the triple of ``arch`` (cpu "host" = this machine's CPU).
    Instruction order does not matter to an emulator: code for unicorn is not scheduled
    a second time after register allocation (arm64 CPUs do that; -15 M instructions of
    ~370 M for benchmarks/compute.py's program)."""
    key = (arch, opt, cpu, emulated)
    tm = _machines.get(key)
    if tm is None:
        llvm = _llvm()
        name, features = cpu, []
        if cpu == "host":
            name, features = llvm.get_host_cpu_name(), [llvm.get_host_cpu_features().flatten()]
        if emulated and arch == "arm64":
            features.append("-use-postra-scheduler")
        target = llvm.Target.from_triple(TRIPLES[arch])
        tm = target.create_target_machine(cpu=name, features=",".join(features), opt=opt, reloc="pic",
                                          codemodel="small")
        _machines[key] = tm
    return tm


class ObjectCache:
    """Compiled objects by content: (arch, executor, opt, cpu, hash of the IR text) ->
    (object, line table). The IR bakes in everything the object depends on (bytecode,
    map and global addresses, the helpers registered, budget, line info), so equal keys
    mean equal objects; the least recently used entry goes first beyond ``size``."""

    def __init__(self, size: int = 256):
        self.size = size
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple, tuple[bytes, list | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple, value: tuple[bytes, list | None]) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


#: Shared by every LLVM engine of the process (``compile("llvm", cache=False)`` skips it).
CACHE = ObjectCache()


@dataclass(frozen=True)
class LLVMOptions:
    opt: int = 2
    cpu: str = "generic"          # "host" = this machine's CPU, or an LLVM CPU name
    debug: bool = False           # line info: the BPF slot of each native instruction (pc_map)
    cache: bool = True
    verify_ir: bool = True


def module_text(program, debug: bool = False) -> str:
    return Lowering(program, debug).module()


def optimised(text: str, arch: str, emulated: bool, options: LLVMOptions):
    """The parsed module after the IR pipeline of ``options.opt``."""
    llvm = _llvm()
    tm = target_machine(arch, options.opt, options.cpu, emulated)
    try:
        # A context per module: constants and metadata are uniqued in the context and
        # would otherwise accumulate in the global one with every compile.
        module = llvm.parse_assembly(text, context=llvm.create_context())
        if options.verify_ir:
            module.verify()
    except RuntimeError as e:                       # a lowering bug, never the user's
        raise BpfEngineError(f"llvm: generated IR is invalid: {e}") from None
    module.triple = TRIPLES[arch]
    module.data_layout = str(tm.target_data)
    if options.opt:
        optimise(module, tm, options.opt)
    return module


def compile_object(program, arch: str, emulated: bool, options: LLVMOptions) -> tuple[bytes, list | None]:
    """(ELF object, line table or None), from the cache when the same IR was compiled for
    the same target machine before."""
    text = module_text(program, options.debug)
    key = None
    if options.cache:
        key = (arch, emulated, options.opt, options.cpu, hashlib.blake2b(text.encode(), digest_size=32).digest())
        hit = CACHE.get(key)
        if hit is not None:
            return hit
    tm = target_machine(arch, options.opt, options.cpu, emulated)
    obj = tm.emit_object(optimised(text, arch, emulated, options))
    pc_map = None
    if options.debug:
        from ..listing import line_table
        pc_map = line_table(obj)
    if key is not None:
        CACHE.put(key, (obj, pc_map))
    return obj, pc_map


def lower(program, arch: str, emulated: bool, options: LLVMOptions) -> Image:
    """The LLVM backend's linked image of ``program`` (as the passes left it)."""
    obj, pc_map = compile_object(program, arch, emulated, options)
    return link_elf(obj, pc_map)
