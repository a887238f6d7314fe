"""The native runtime: hot helpers as native code over the maps' documented layouts.

``ir()`` is the runtime as LLVM IR text and ``object_for(arch)`` the ELF relocatable
object LLVM makes of it (compiled once per architecture and process), for any linker:
the executors link it beside a program, an AOT object can carry it. Every function has
the helper signature ``u64 f(r1, ..., r5, rs)`` and is named in ``SYMBOLS`` (helper name
-> native symbol). A native helper handles the map types whose layout it knows and
tail-calls ``FALLBACKS[symbol]`` (an external with the same signature: the Python
helper) for the others. The registry marks which helpers have a native form
(``Helper.native``).

- ``jitbpf_rt_map_lookup_elem``: array (``data + key * stride``, NULL beyond
  max_entries) and hash (fnv1a32 home slot, linear probing over the u32 index, key
  compared in the element); per-CPU and LRU maps (the CPU and the LRU order are the
  Python runtime's) and the other types fall back.

Native helpers read the key where the program's pointer says, unchecked: executors use
them only for code that is verified or compiled without bounds checks, as the
program's own loads are (see backends.exec.native).
"""

from __future__ import annotations

import threading

from .maps import FNV_OFFSET, FNV_PRIME, HASH_DELETED, MAP_TYPES

LOOKUP = "jitbpf_rt_map_lookup_elem"
SYMBOLS = {"map_lookup_elem": LOOKUP}
FALLBACKS = {LOOKUP: "jitbpf_rt_py_map_lookup_elem"}
TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "arm64": "aarch64-unknown-linux-gnu"}

# Map header fields (see jitbpf.runtime.maps).
H_TYPE, H_KEY_SIZE, H_MAX_ENTRIES, H_DATA, H_STRIDE, H_CAPACITY, H_ELEMENTS = 0, 4, 12, 16, 24, 28, 40


def ir() -> str:
    """The native runtime's LLVM IR (target-independent; the triple is set per arch)."""
    return f"""
declare i64 @{FALLBACKS[LOOKUP]}(i64, i64, i64, i64, i64, i64)

define internal i32 @field32(ptr %h, i64 %off) alwaysinline {{
  %p = getelementptr i8, ptr %h, i64 %off
  %v = load i32, ptr %p, align 4
  ret i32 %v
}}

define i64 @{LOOKUP}(i64 %map, i64 %key, i64 %r3, i64 %r4, i64 %r5, i64 %rs) {{
entry:
  %h = inttoptr i64 %map to ptr
  %kp = inttoptr i64 %key to ptr
  %type = call i32 @field32(ptr %h, i64 {H_TYPE})
  %pdata = getelementptr i8, ptr %h, i64 {H_DATA}
  %data = load i64, ptr %pdata, align 8
  %stride32 = call i32 @field32(ptr %h, i64 {H_STRIDE})
  %stride = zext i32 %stride32 to i64
  switch i32 %type, label %slow [ i32 {MAP_TYPES["array"]}, label %array
                                  i32 {MAP_TYPES["hash"]}, label %hash ]

slow:
  %r = tail call i64 @{FALLBACKS[LOOKUP]}(i64 %map, i64 %key, i64 %r3, i64 %r4, i64 %r5, i64 %rs)
  ret i64 %r

array:
  %idx = load i32, ptr %kp, align 1
  %max = call i32 @field32(ptr %h, i64 {H_MAX_ENTRIES})
  %inside = icmp ult i32 %idx, %max
  br i1 %inside, label %array.hit, label %miss

array.hit:
  %idx64 = zext i32 %idx to i64
  %aoff = mul i64 %idx64, %stride
  %avalue = add i64 %data, %aoff
  ret i64 %avalue

miss:
  ret i64 0

hash:
  %ksize32 = call i32 @field32(ptr %h, i64 {H_KEY_SIZE})
  %ksize = zext i32 %ksize32 to i64
  br label %fnv

fnv:
  %i = phi i64 [ 0, %hash ], [ %i1, %fnv ]
  %acc = phi i32 [ {FNV_OFFSET}, %hash ], [ %acc1, %fnv ]
  %pb = getelementptr i8, ptr %kp, i64 %i
  %byte = load i8, ptr %pb, align 1
  %b32 = zext i8 %byte to i32
  %x = xor i32 %acc, %b32
  %acc1 = mul i32 %x, {FNV_PRIME}
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %ksize
  br i1 %more, label %fnv, label %probe.start

probe.start:
  %cap = call i32 @field32(ptr %h, i64 {H_CAPACITY})
  %mask = sub i32 %cap, 1
  %home = and i32 %acc1, %mask
  %elements32 = call i32 @field32(ptr %h, i64 {H_ELEMENTS})
  %elements = zext i32 %elements32 to i64
  %pool = add i64 %data, %elements
  %kstride7 = add i64 %ksize, 7
  %kstride = and i64 %kstride7, -8
  %indexp = inttoptr i64 %data to ptr
  br label %probe

probe:
  %slot = phi i32 [ %home, %probe.start ], [ %slot1, %next ]
  %slot64 = zext i32 %slot to i64
  %pe = getelementptr i32, ptr %indexp, i64 %slot64
  %e = load i32, ptr %pe, align 4
  %empty = icmp eq i32 %e, 0
  br i1 %empty, label %miss, label %probe.used

probe.used:
  %deleted = icmp eq i32 %e, {HASH_DELETED}
  br i1 %deleted, label %next, label %compare.start

compare.start:
  %n = sub i32 %e, 1
  %n64 = zext i32 %n to i64
  %eoff = mul i64 %n64, %stride
  %elem = add i64 %pool, %eoff
  %ekey = add i64 %elem, 8
  %ekp = inttoptr i64 %ekey to ptr
  br label %compare

compare:
  %j = phi i64 [ 0, %compare.start ], [ %j1, %compare.same ]
  %pa = getelementptr i8, ptr %ekp, i64 %j
  %a = load i8, ptr %pa, align 1
  %pk = getelementptr i8, ptr %kp, i64 %j
  %k = load i8, ptr %pk, align 1
  %same = icmp eq i8 %a, %k
  br i1 %same, label %compare.same, label %next

compare.same:
  %j1 = add i64 %j, 1
  %cmore = icmp ult i64 %j1, %ksize
  br i1 %cmore, label %compare, label %found

found:
  %hvalue = add i64 %ekey, %kstride
  ret i64 %hvalue

next:
  %s1 = add i32 %slot, 1
  %slot1 = and i32 %s1, %mask
  br label %probe
}}
"""


_objects: dict[str, bytes] = {}
_lock = threading.Lock()


def object_for(arch: str) -> bytes:
    """The runtime compiled for ``arch`` (x86_64, arm64) at -O2: an ELF relocatable object
    defining ``SYMBOLS``' values and needing ``FALLBACKS``' values."""
    with _lock:
        obj = _objects.get(arch)
        if obj is None:
            import llvmlite.binding as llvm
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            module = llvm.parse_assembly(ir(), context=llvm.create_context())
            module.triple = TRIPLES[arch]
            tm = llvm.Target.from_triple(TRIPLES[arch]).create_target_machine(opt=2, reloc="pic", codemodel="small")
            module.data_layout = str(tm.target_data)
            pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=2))
            pb.getModulePassManager().run(module, pb)
            obj = _objects[arch] = tm.emit_object(module)
        return obj
