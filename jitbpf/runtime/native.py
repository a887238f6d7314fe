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
  max_entries), percpu_array (the run's CPU's copy: ``rs->cpu``, which the executor
  sets from ``Runtime.cpu``) and hash (fnv1a32 home slot, linear probing over the u32
  index, key compared in the element).
- ``jitbpf_rt_map_update_elem`` / ``jitbpf_rt_map_delete_elem``: the same types, with
  the kernel's flags and errors (-EINVAL, -E2BIG, -EEXIST, -ENOENT); a hash insert takes
  the free list's head (else a fresh element), rebuilds the index when deleted markers
  crowd it, and publishes the index entry last; deletes push the element on the free
  list. Both hold the map's lock word, as the Python map code does
  (``maps.locked``), so native and Python writers exclude each other; lookups take no
  lock (Linux's RCU lookups), so a lookup racing an index rebuild may miss its key.
  BPF_F_LOCK updates fall back (Python knows the value's BTF).

LRU maps (the LRU order is the Python runtime's) and the other types fall back.
Native helpers read keys and values where the program's pointers say, unchecked:
executors use them only for code without run-time bounds checks, which is code the
verifier proved everywhere or code compiled unchecked (see backends.exec.native and
pipeline.prepare_compilation).
"""

from __future__ import annotations

import threading

from .maps import (BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, E2BIG, EEXIST, EINVAL, ENOENT, FNV_OFFSET, FNV_PRIME,
                   E_FREE_NEXT, E_KEY, E_NEXT, E_PREV, H_COUNT, H_ELEMENTS, H_FREE, H_FRESH, H_LOCK,
                   H_LRU_HEAD, H_LRU_TAIL, H_TOMBSTONES, HASH_DELETED, MAP_TYPES)

LOOKUP, UPDATE, DELETE = "jitbpf_rt_map_lookup_elem", "jitbpf_rt_map_update_elem", "jitbpf_rt_map_delete_elem"
SYMBOLS = {"map_lookup_elem": LOOKUP, "map_update_elem": UPDATE, "map_delete_elem": DELETE}
FALLBACKS = {sym: sym.replace("jitbpf_rt_", "jitbpf_rt_py_") for sym in SYMBOLS.values()}
TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "arm64": "aarch64-unknown-linux-gnu"}

# Map header fields (see jitbpf.runtime.maps).
H_TYPE, H_KEY_SIZE, H_VALUE_SIZE, H_MAX_ENTRIES, H_DATA, H_STRIDE, H_CAPACITY, H_NCPUS = 0, 4, 8, 12, 16, 24, 28, 32
ARRAY, PERCPU_ARRAY, HASH = MAP_TYPES["array"], MAP_TYPES["percpu_array"], MAP_TYPES["hash"]
PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH = MAP_TYPES["percpu_hash"], MAP_TYPES["lru_hash"], MAP_TYPES["lru_percpu_hash"]
# "no-builtins": LLVM must not turn the byte loops into memcpy/memset calls (the
# runtime links against nothing but its fallbacks).
ATTRS = '"no-builtins" nounwind'


def _errno(e: int) -> int:
    return -e


def ir() -> str:
    """The native runtime's LLVM IR (target-independent; the triple is set per arch)."""
    from ..backends.abi import RUN_CPU         # the run state's field with the run's CPU
    declares = "".join(f"declare i64 @{f}(i64, i64, i64, i64, i64, i64)\n" for f in FALLBACKS.values())
    args = "i64 %r1, i64 %r2, i64 %r3, i64 %r4, i64 %r5, i64 %rs"

    def slow(symbol: str) -> str:
        return (f"slow:\n  %r = tail call i64 @{FALLBACKS[symbol]}({args})\n  ret i64 %r\n")

    def dispatch(symbol: str, array: str) -> str:
        """The entry of a helper by map type: arrays to ``array``, hash to hash, else slow."""
        return f"""
define i64 @{symbol}({args}) {ATTRS} {{
entry:
  %h = inttoptr i64 %r1 to ptr
  %kp = inttoptr i64 %r2 to ptr
  %type = call i32 @field(ptr %h, i64 {H_TYPE})
  switch i32 %type, label %slow [ i32 {ARRAY}, label %{array}
                                  i32 {PERCPU_ARRAY}, label %{array}
                                  i32 {HASH}, label %hash ]
{slow(symbol)}"""
    lookup = dispatch(LOOKUP, "array").replace(
        f"                                  i32 {HASH}, label %hash ]",
        f"                                  i32 {HASH}, label %hash\n"
        f"                                  i32 {PERCPU_HASH}, label %hash\n"
        f"                                  i32 {LRU_HASH}, label %lru\n"
        f"                                  i32 {LRU_PERCPU_HASH}, label %lru ]")
    return declares + _common(RUN_CPU) + lookup + f"""
array:
  %idx = load i32, ptr %kp, align 1
  %max = call i32 @field(ptr %h, i64 {H_MAX_ENTRIES})
  %inside = icmp ult i32 %idx, %max
  br i1 %inside, label %array.hit, label %miss

array.hit:
  %avalue = call ptr @array_value(ptr %h, i32 %idx, i64 %rs)
  %a = ptrtoint ptr %avalue to i64
  ret i64 %a

miss:
  ret i64 0

hash:
  %home = call i32 @home(ptr %h, ptr %kp)
  %f = call i64 @find(ptr %h, ptr %kp, i32 %home)
  %absent = icmp slt i64 %f, 0
  br i1 %absent, label %miss, label %found

found:
  %e = trunc i64 %f to i32
  %hvalue = call ptr @hash_value(ptr %h, i32 %e)
  %hcpu = call ptr @cpu_value(ptr %h, ptr %hvalue, i64 %rs)
  %v = ptrtoint ptr %hcpu to i64
  ret i64 %v

lru:                                               ; moves the element to the LRU tail
  %lhome = call i32 @home(ptr %h, ptr %kp)         ; reads the whole key before the lock
  %lockp = getelementptr i8, ptr %h, i64 {H_LOCK}
  call void @lock(ptr %lockp)
  %lf = call i64 @find(ptr %h, ptr %kp, i32 %lhome)
  %labsent = icmp slt i64 %lf, 0
  br i1 %labsent, label %lru.leave, label %lru.found

lru.found:
  %le = trunc i64 %lf to i32
  call void @touch(ptr %h, i32 %le)
  %lvalue = call ptr @hash_value(ptr %h, i32 %le)
  %lcpu = call ptr @cpu_value(ptr %h, ptr %lvalue, i64 %rs)
  br label %lru.leave

lru.leave:
  %lv = phi ptr [ null, %lru ], [ %lcpu, %lru.found ]
  call void @unlock(ptr %lockp)
  %lr = ptrtoint ptr %lv to i64
  ret i64 %lr
}}

define i64 @{UPDATE}({args}) {ATTRS} {{
entry:
  %h = inttoptr i64 %r1 to ptr
  %kp = inttoptr i64 %r2 to ptr
  %vp = inttoptr i64 %r3 to ptr
  %type = call i32 @field(ptr %h, i64 {H_TYPE})
  %known = icmp eq i32 %type, {HASH}
  %isplain = icmp eq i32 %type, {ARRAY}
  %ispercpu = icmp eq i32 %type, {PERCPU_ARRAY}
  %isarray = or i1 %isplain, %ispercpu
  %native = or i1 %known, %isarray
  %lockflag = and i64 %r4, {BPF_F_LOCK}
  %plain = icmp eq i64 %lockflag, 0                ; BPF_F_LOCK needs the value's BTF: Python
  %here = and i1 %native, %plain
  br i1 %here, label %flags, label %slow
{slow(UPDATE)}
flags:
  %bad = icmp ugt i64 %r4, {BPF_EXIST}
  br i1 %bad, label %einval, label %dispatch

einval:
  ret i64 {_errno(EINVAL)}

dispatch:
  %vsize32 = call i32 @field(ptr %h, i64 {H_VALUE_SIZE})
  %vsize = zext i32 %vsize32 to i64
  %noexist = icmp eq i64 %r4, {BPF_NOEXIST}
  %exist = icmp eq i64 %r4, {BPF_EXIST}
  br i1 %isarray, label %array, label %hash

array:
  %idx = load i32, ptr %kp, align 1
  %max = call i32 @field(ptr %h, i64 {H_MAX_ENTRIES})
  %inside = icmp ult i32 %idx, %max
  br i1 %inside, label %array.in, label %e2big

e2big:
  ret i64 {_errno(E2BIG)}

array.in:
  br i1 %noexist, label %eexist, label %array.write

eexist:
  ret i64 {_errno(EEXIST)}

array.write:
  %avalue = call ptr @array_value(ptr %h, i32 %idx, i64 %rs)
  call void @copy(ptr %avalue, ptr %vp, i64 %vsize)
  ret i64 0

hash:
  %home = call i32 @home(ptr %h, ptr %kp)          ; a bad key or value pointer faults
  call void @touch_bytes(ptr %vp, i64 %vsize)     ; here, before the lock is taken
  %lockp = getelementptr i8, ptr %h, i64 {H_LOCK}
  call void @lock(ptr %lockp)
  %f = call i64 @find(ptr %h, ptr %kp, i32 %home)
  %absent = icmp slt i64 %f, 0
  br i1 %absent, label %insert, label %present

present:
  br i1 %noexist, label %leave, label %overwrite

overwrite:
  %e = trunc i64 %f to i32
  %value = call ptr @hash_value(ptr %h, i32 %e)
  call void @copy(ptr %value, ptr %vp, i64 %vsize)
  br label %leave

insert:
  br i1 %exist, label %leave, label %alloc

alloc:
  %free = call i32 @field(ptr %h, i64 {H_FREE})
  %fresh = call i32 @field(ptr %h, i64 {H_FRESH})
  %hmax = call i32 @field(ptr %h, i64 {H_MAX_ENTRIES})
  %nofree = icmp eq i32 %free, 0
  %nofresh = icmp uge i32 %fresh, %hmax
  %full = and i1 %nofree, %nofresh
  br i1 %full, label %leave, label %room

room:
  %tomb = call i32 @field(ptr %h, i64 {H_TOMBSTONES})
  %count = call i32 @field(ptr %h, i64 {H_COUNT})
  %cap = call i32 @field(ptr %h, i64 {H_CAPACITY})
  %tomb64 = zext i32 %tomb to i64
  %count64 = zext i32 %count to i64
  %used = add i64 %tomb64, %count64
  %used1 = add i64 %used, 1
  %cap64 = zext i32 %cap to i64
  %cap3 = mul i64 %cap64, 3
  %limit = lshr i64 %cap3, 2
  %crowded = icmp ugt i64 %used1, %limit
  br i1 %crowded, label %rebuild, label %place

rebuild:
  call void @rebuild(ptr %h)
  br label %place

place:
  %slotp = call ptr @free_slot(ptr %h, i32 %home)
  %old = load i32, ptr %slotp, align 4
  %wasdeleted = icmp eq i32 %old, {HASH_DELETED}
  br i1 %wasdeleted, label %untomb, label %pick

untomb:
  %tomb2 = call i32 @field(ptr %h, i64 {H_TOMBSTONES})
  %tomb3 = sub i32 %tomb2, 1
  call void @set(ptr %h, i64 {H_TOMBSTONES}, i32 %tomb3)
  br label %pick

pick:
  br i1 %nofree, label %pick.fresh, label %pick.free

pick.free:
  %fe = sub i32 %free, 1
  %fel = call ptr @element(ptr %h, i32 %fe)
  %nextp = getelementptr i8, ptr %fel, i64 {E_FREE_NEXT}
  %next = load i32, ptr %nextp, align 4
  call void @set(ptr %h, i64 {H_FREE}, i32 %next)
  br label %fill

pick.fresh:
  %fresh1 = add i32 %fresh, 1
  call void @set(ptr %h, i64 {H_FRESH}, i32 %fresh1)
  br label %fill

fill:
  %ne = phi i32 [ %fe, %pick.free ], [ %fresh, %pick.fresh ]
  %el = call ptr @element(ptr %h, i32 %ne)
  %stride32 = call i32 @field(ptr %h, i64 {H_STRIDE})
  %stride = zext i32 %stride32 to i64
  call void @zero(ptr %el, i64 %stride)
  store i32 1, ptr %el, align 4
  %ekey = getelementptr i8, ptr %el, i64 {E_KEY}
  %ksize32 = call i32 @field(ptr %h, i64 {H_KEY_SIZE})
  %ksize = zext i32 %ksize32 to i64
  call void @copy(ptr %ekey, ptr %kp, i64 %ksize)
  %nvalue = call ptr @hash_value(ptr %h, i32 %ne)
  call void @copy(ptr %nvalue, ptr %vp, i64 %vsize)
  %entry1 = add i32 %ne, 1
  store atomic i32 %entry1, ptr %slotp release, align 4      ; publish the element last
  %count2 = call i32 @field(ptr %h, i64 {H_COUNT})
  %count3 = add i32 %count2, 1
  call void @set(ptr %h, i64 {H_COUNT}, i32 %count3)
  br label %leave

leave:                                             ; with the lock held
  %rv = phi i64 [ {_errno(EEXIST)}, %present ], [ 0, %overwrite ], [ {_errno(ENOENT)}, %insert ],
                [ {_errno(E2BIG)}, %alloc ], [ 0, %fill ]
  call void @unlock(ptr %lockp)
  ret i64 %rv
}}
{dispatch(DELETE, "einval")}
einval:
  ret i64 {_errno(EINVAL)}

hash:
  %home = call i32 @home(ptr %h, ptr %kp)          ; reads the whole key before the lock
  %lockp = getelementptr i8, ptr %h, i64 {H_LOCK}
  call void @lock(ptr %lockp)
  %f = call i64 @find(ptr %h, ptr %kp, i32 %home)
  %absent = icmp slt i64 %f, 0
  br i1 %absent, label %leave, label %remove

remove:
  %e = trunc i64 %f to i32
  %slot64 = lshr i64 %f, 32
  %index = call ptr @data(ptr %h)
  %slotp = getelementptr i32, ptr %index, i64 %slot64
  store atomic i32 {HASH_DELETED}, ptr %slotp release, align 4
  %el = call ptr @element(ptr %h, i32 %e)
  store i32 0, ptr %el, align 4
  %free = call i32 @field(ptr %h, i64 {H_FREE})
  %nextp = getelementptr i8, ptr %el, i64 {E_FREE_NEXT}
  store i32 %free, ptr %nextp, align 4
  %e1 = add i32 %e, 1
  call void @set(ptr %h, i64 {H_FREE}, i32 %e1)
  %count = call i32 @field(ptr %h, i64 {H_COUNT})
  %count1 = sub i32 %count, 1
  call void @set(ptr %h, i64 {H_COUNT}, i32 %count1)
  %tomb = call i32 @field(ptr %h, i64 {H_TOMBSTONES})
  %tomb1 = add i32 %tomb, 1
  call void @set(ptr %h, i64 {H_TOMBSTONES}, i32 %tomb1)
  br label %leave

leave:                                             ; with the lock held
  %rv = phi i64 [ {_errno(ENOENT)}, %hash ], [ 0, %remove ]
  call void @unlock(ptr %lockp)
  ret i64 %rv
}}
"""


def _common(RUN_CPU: int) -> str:
    """Internal functions over the layout: header fields, elements, the probe, copies, the lock."""
    return f"""
define internal i32 @field(ptr %h, i64 %off) alwaysinline {ATTRS} {{
  %p = getelementptr i8, ptr %h, i64 %off
  %v = load i32, ptr %p, align 4
  ret i32 %v
}}

define internal void @set(ptr %h, i64 %off, i32 %v) alwaysinline {ATTRS} {{
  %p = getelementptr i8, ptr %h, i64 %off
  store i32 %v, ptr %p, align 4
  ret void
}}

define internal ptr @data(ptr %h) alwaysinline {ATTRS} {{
  %p = getelementptr i8, ptr %h, i64 {H_DATA}
  %d = load ptr, ptr %p, align 8
  ret ptr %d
}}

define internal i64 @stride(ptr %h) alwaysinline {ATTRS} {{
  %s = call i32 @field(ptr %h, i64 {H_STRIDE})
  %s64 = zext i32 %s to i64
  ret i64 %s64
}}

; element idx of an array; of a per-CPU array, the run's CPU's copy (rs->cpu)
define internal ptr @array_value(ptr %h, i32 %idx, i64 %rs) alwaysinline {ATTRS} {{
  %data = call ptr @data(ptr %h)
  %stride = call i64 @stride(ptr %h)
  %idx64 = zext i32 %idx to i64
  %type = call i32 @field(ptr %h, i64 {H_TYPE})
  %percpu = icmp eq i32 %type, {PERCPU_ARRAY}
  br i1 %percpu, label %cpu, label %plain

cpu:
  %ncpus32 = call i32 @field(ptr %h, i64 {H_NCPUS})
  %ncpus = zext i32 %ncpus32 to i64
  %rsp = inttoptr i64 %rs to ptr
  %cpup = getelementptr i8, ptr %rsp, i64 {RUN_CPU}
  %c = load i64, ptr %cpup, align 8
  %row = mul i64 %idx64, %ncpus
  %at = add i64 %row, %c
  br label %plain

plain:
  %n = phi i64 [ %idx64, %0 ], [ %at, %cpu ]
  %off = mul i64 %n, %stride
  %p = getelementptr i8, ptr %data, i64 %off
  ret ptr %p
}}

; element e of a hash map's pool: u32 state, u32 next, key, value
define internal ptr @element(ptr %h, i32 %e) alwaysinline {ATTRS} {{
  %data = call ptr @data(ptr %h)
  %elements = call i32 @field(ptr %h, i64 {H_ELEMENTS})
  %elements64 = zext i32 %elements to i64
  %pool = getelementptr i8, ptr %data, i64 %elements64
  %stride = call i64 @stride(ptr %h)
  %e64 = zext i32 %e to i64
  %off = mul i64 %e64, %stride
  %p = getelementptr i8, ptr %pool, i64 %off
  ret ptr %p
}}

define internal ptr @hash_value(ptr %h, i32 %e) alwaysinline {ATTRS} {{
  %el = call ptr @element(ptr %h, i32 %e)
  %ksize = call i32 @field(ptr %h, i64 {H_KEY_SIZE})
  %k7 = add i32 %ksize, {E_KEY + 7}
  %k8 = and i32 %k7, -8                 ; the element's fields + the key rounded up to 8
  %k64 = zext i32 %k8 to i64
  %p = getelementptr i8, ptr %el, i64 %k64
  ret ptr %p
}}

; a hash value's copy for the run's CPU (per-CPU maps: cpu * round8(value_size) further)
define internal ptr @cpu_value(ptr %h, ptr %v, i64 %rs) alwaysinline {ATTRS} {{
entry:
  %type = call i32 @field(ptr %h, i64 {H_TYPE})
  %a = icmp eq i32 %type, {PERCPU_HASH}
  %b = icmp eq i32 %type, {LRU_PERCPU_HASH}
  %percpu = or i1 %a, %b
  br i1 %percpu, label %cpu, label %done

cpu:
  %vsize = call i32 @field(ptr %h, i64 {H_VALUE_SIZE})
  %v7 = add i32 %vsize, 7
  %v8 = and i32 %v7, -8
  %vstride = zext i32 %v8 to i64
  %rsp = inttoptr i64 %rs to ptr
  %cpup = getelementptr i8, ptr %rsp, i64 {RUN_CPU}
  %c = load i64, ptr %cpup, align 8
  %off = mul i64 %c, %vstride
  %p = getelementptr i8, ptr %v, i64 %off
  br label %done

done:
  %r = phi ptr [ %v, %entry ], [ %p, %cpu ]
  ret ptr %r
}}

; element e to the tail of the LRU list (the most recent), with the lock held
define internal void @touch(ptr %h, i32 %e) alwaysinline {ATTRS} {{
entry:
  %e1 = add i32 %e, 1
  %tail = call i32 @field(ptr %h, i64 {H_LRU_TAIL})
  %last = icmp eq i32 %tail, %e1
  br i1 %last, label %done, label %unlink

unlink:
  %el = call ptr @element(ptr %h, i32 %e)
  %pp = getelementptr i8, ptr %el, i64 {E_PREV}
  %np = getelementptr i8, ptr %el, i64 {E_NEXT}
  %p = load i32, ptr %pp, align 4
  %n = load i32, ptr %np, align 4                  ; not 0: e is not the tail
  %hasp = icmp ne i32 %p, 0
  br i1 %hasp, label %middle, label %first

middle:
  %p0 = sub i32 %p, 1
  %pel = call ptr @element(ptr %h, i32 %p0)
  %pnp = getelementptr i8, ptr %pel, i64 {E_NEXT}
  store i32 %n, ptr %pnp, align 4
  br label %relink

first:
  call void @set(ptr %h, i64 {H_LRU_HEAD}, i32 %n)
  br label %relink

relink:
  %n0 = sub i32 %n, 1
  %nel = call ptr @element(ptr %h, i32 %n0)
  %npp = getelementptr i8, ptr %nel, i64 {E_PREV}
  store i32 %p, ptr %npp, align 4
  store i32 %tail, ptr %pp, align 4
  store i32 0, ptr %np, align 4
  %t0 = sub i32 %tail, 1
  %tel = call ptr @element(ptr %h, i32 %t0)
  %tnp = getelementptr i8, ptr %tel, i64 {E_NEXT}
  store i32 %e1, ptr %tnp, align 4
  call void @set(ptr %h, i64 {H_LRU_TAIL}, i32 %e1)
  br label %done

done:
  ret void
}}

; the home slot: fnv1a32(key) & (capacity - 1)
define internal i32 @home(ptr %h, ptr %kp) alwaysinline {ATTRS} {{
entry:
  %ksize32 = call i32 @field(ptr %h, i64 {H_KEY_SIZE})
  %ksize = zext i32 %ksize32 to i64
  br label %fnv

fnv:
  %i = phi i64 [ 0, %entry ], [ %i1, %fnv ]
  %acc = phi i32 [ {FNV_OFFSET}, %entry ], [ %acc1, %fnv ]
  %pb = getelementptr i8, ptr %kp, i64 %i
  %byte = load i8, ptr %pb, align 1
  %b32 = zext i8 %byte to i32
  %x = xor i32 %acc, %b32
  %acc1 = mul i32 %x, {FNV_PRIME}
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %ksize
  br i1 %more, label %fnv, label %done

done:
  %cap = call i32 @field(ptr %h, i64 {H_CAPACITY})
  %mask = sub i32 %cap, 1
  %slot = and i32 %acc1, %mask
  ret i32 %slot
}}

; the key's slot << 32 | element number, or -1 (linear probing over the index from home)
define internal i64 @find(ptr %h, ptr %kp, i32 %home) alwaysinline {ATTRS} {{
entry:
  %cap = call i32 @field(ptr %h, i64 {H_CAPACITY})
  %mask = sub i32 %cap, 1
  %index = call ptr @data(ptr %h)
  %ksize32 = call i32 @field(ptr %h, i64 {H_KEY_SIZE})
  %ksize = zext i32 %ksize32 to i64
  br label %probe

probe:
  %slot = phi i32 [ %home, %entry ], [ %slot1, %next ]
  %slot64 = zext i32 %slot to i64
  %pe = getelementptr i32, ptr %index, i64 %slot64
  %e = load atomic i32, ptr %pe acquire, align 4
  %empty = icmp eq i32 %e, 0
  br i1 %empty, label %absent, label %used

absent:
  ret i64 -1

used:
  %deleted = icmp eq i32 %e, {HASH_DELETED}
  br i1 %deleted, label %next, label %compare.start

compare.start:
  %n = sub i32 %e, 1
  %el = call ptr @element(ptr %h, i32 %n)
  %ekp = getelementptr i8, ptr %el, i64 {E_KEY}
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
  %s = shl i64 %slot64, 32
  %n64 = zext i32 %n to i64
  %r = or i64 %s, %n64
  ret i64 %r

next:
  %s1 = add i32 %slot, 1
  %slot1 = and i32 %s1, %mask
  br label %probe
}}

; the first empty or deleted index entry from a home slot
define internal ptr @free_slot(ptr %h, i32 %home) alwaysinline {ATTRS} {{
entry:
  %cap = call i32 @field(ptr %h, i64 {H_CAPACITY})
  %mask = sub i32 %cap, 1
  %index = call ptr @data(ptr %h)
  br label %probe

probe:
  %slot = phi i32 [ %home, %entry ], [ %slot1, %next ]
  %slot64 = zext i32 %slot to i64
  %pe = getelementptr i32, ptr %index, i64 %slot64
  %e = load i32, ptr %pe, align 4
  %empty = icmp eq i32 %e, 0
  %deleted = icmp eq i32 %e, {HASH_DELETED}
  %free = or i1 %empty, %deleted
  br i1 %free, label %done, label %next

done:
  ret ptr %pe

next:
  %s1 = add i32 %slot, 1
  %slot1 = and i32 %s1, %mask
  br label %probe
}}

; the index rebuilt without deleted markers: live elements re-placed in element order
define internal void @rebuild(ptr %h) {ATTRS} {{
entry:
  %index = call ptr @data(ptr %h)
  %elements = call i32 @field(ptr %h, i64 {H_ELEMENTS})
  %elements64 = zext i32 %elements to i64
  call void @zero(ptr %index, i64 %elements64)
  call void @set(ptr %h, i64 {H_TOMBSTONES}, i32 0)
  %fresh = call i32 @field(ptr %h, i64 {H_FRESH})
  %none = icmp eq i32 %fresh, 0
  br i1 %none, label %done, label %loop

loop:
  %e = phi i32 [ 0, %entry ], [ %e1, %next ]
  %el = call ptr @element(ptr %h, i32 %e)
  %state = load i32, ptr %el, align 4
  %live = icmp eq i32 %state, 1
  br i1 %live, label %put, label %next

put:
  %kp = getelementptr i8, ptr %el, i64 {E_KEY}
  %ehome = call i32 @home(ptr %h, ptr %kp)
  %slotp = call ptr @free_slot(ptr %h, i32 %ehome)
  %entry1 = add i32 %e, 1
  store atomic i32 %entry1, ptr %slotp release, align 4
  br label %next

next:
  %e1 = add i32 %e, 1
  %more = icmp ult i32 %e1, %fresh
  br i1 %more, label %loop, label %done

done:
  ret void
}}

; a volatile read of one byte per page of [p, p + n) and of its last byte: a fault on a
; bad pointer happens before a lock is taken (the fault guard unwinds; a held lock would stay)
define internal void @touch_bytes(ptr %p, i64 %n) alwaysinline {ATTRS} {{
entry:
  %none = icmp eq i64 %n, 0
  br i1 %none, label %done, label %loop

loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %pi = getelementptr i8, ptr %p, i64 %i
  %b = load volatile i8, ptr %pi, align 1
  %i1 = add i64 %i, 4096
  %more = icmp ult i64 %i1, %n
  br i1 %more, label %loop, label %last

last:
  %n1 = sub i64 %n, 1
  %pl = getelementptr i8, ptr %p, i64 %n1
  %bl = load volatile i8, ptr %pl, align 1
  br label %done

done:
  ret void
}}

define internal void @copy(ptr %d, ptr %s, i64 %n) alwaysinline {ATTRS} {{
entry:
  %none = icmp eq i64 %n, 0
  br i1 %none, label %done, label %loop

loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %ps = getelementptr i8, ptr %s, i64 %i
  %b = load i8, ptr %ps, align 1
  %pd = getelementptr i8, ptr %d, i64 %i
  store i8 %b, ptr %pd, align 1
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %n
  br i1 %more, label %loop, label %done

done:
  ret void
}}

define internal void @zero(ptr %d, i64 %n) alwaysinline {ATTRS} {{
entry:
  %none = icmp eq i64 %n, 0
  br i1 %none, label %done, label %loop

loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %pd = getelementptr i8, ptr %d, i64 %i
  store i8 0, ptr %pd, align 1
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, %n
  br i1 %more, label %loop, label %done

done:
  ret void
}}

; the map's spin lock (a u32 of its header, shared with jitbpf.runtime.maps.locked)
define internal void @lock(ptr %p) alwaysinline {ATTRS} {{
entry:
  br label %try

try:
  %r = cmpxchg ptr %p, i32 0, i32 1 acquire monotonic
  %ok = extractvalue {{ i32, i1 }} %r, 1
  br i1 %ok, label %done, label %spin

spin:
  %v = load atomic i32, ptr %p monotonic, align 4
  %free = icmp eq i32 %v, 0
  br i1 %free, label %try, label %spin

done:
  ret void
}}

define internal void @unlock(ptr %p) alwaysinline {ATTRS} {{
  store atomic i32 0, ptr %p release, align 4
  ret void
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
