"""The native runtime of a compiled object, generated as LLVM IR (no C compiler, no libc).

One module per object holds what the programs' code refers to besides itself:

- map storage: per map a header ``map:NAME`` (the handle BPF code passes to helpers) and
  its storage (``mapvalue:NAME`` for arrays, which global data reaches directly);
- the map helpers ``bpf_map_lookup_elem/update_elem/delete_elem`` with the helper ABI of
  :mod:`backends.abi` and the C API ``jitbpf_map_lookup/update/delete/next_key``;
- the runtime calls ``jitbpf_trap`` and ``jitbpf_check_access`` (a failed bounds check);
- per program a core ``jitbpf_core$NAME(ctx, size, 0, 0, 0, rs)`` that fills the run state
  (budget, BPF stack, the region table of bounds checks), converts the context and calls the
  program, and the exported C entry ``NAME(ctx, ctx_size)`` calling it with a static run state.

Map layout (``HEADER`` fields, all u64): type (1 array, 2 hash), key_size, value_size,
max_entries, count, storage pointer, stride, slots, value offset in a slot, read-only. An
array's storage is max_entries values of stride round8(value_size). A hash is open
addressing with linear probing over a power of two of slots (at least 2 x max_entries), FNV-1a
of the key; a slot is u64 state (0 empty, 1 used, 2 deleted), the key, the value (8-byte
aligned): values never move while their element exists. Errors are negative errnos as in Linux.

A run that fails (bounds check, trap, budget) leaves a code in ``jitbpf_last_error``
(``ERRORS``); the static run state makes the C entries non-reentrant (one thread at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backends import abi

ARRAY, HASH = 1, 2
HEADER_FIELDS = ("type", "key_size", "value_size", "max_entries", "count", "storage", "stride",
                 "slots", "value_offset", "readonly")
XDP_HEADROOM = 256
MAX_PACKET = 65536
STACK_BYTES = 4096
E_ACCESS, E_BUDGET, E_CONTEXT, E_HIGH = 10, 11, 12, 13
#: jitbpf_last_error codes
ERRORS = {abi.TRAP_CALLX: "callx to 0x{value:x}: neither a helper id nor a function",
          abi.TRAP_DEPTH: "call depth exceeds 8 frames",
          E_ACCESS: "out-of-bounds access at 0x{value:x}",
          E_BUDGET: "the run budget is spent",
          E_CONTEXT: "bad context (ctx_size too small, packet over 65536 bytes or metadata over 216)",
          E_HIGH: "the packet buffer is above 4 GiB (link the object with -no-pie)"}
XDP_MD_FIELDS = ("data", "data_end", "data_meta")   # pointers, then u32 ingress_ifindex, rx_queue_index, egress_ifindex
JITBPF_XDP_MD_SIZE = 40


@dataclass
class MapSpec:
    name: str
    kind: int
    key_size: int
    value_size: int
    max_entries: int
    readonly: bool
    initial: bytes | None = None      # array storage

    @property
    def stride(self) -> int:
        return self.value_stride if self.kind == ARRAY else 8 + _round8(self.key_size) + self.value_stride

    @property
    def value_stride(self) -> int:
        return _round8(self.value_size)

    @property
    def slots(self) -> int:
        if self.kind == ARRAY:
            return self.max_entries
        n = 8
        while n < 2 * self.max_entries:
            n *= 2
        return n

    @property
    def value_offset(self) -> int:
        return 0 if self.kind == ARRAY else 8 + _round8(self.key_size)

    @property
    def storage_size(self) -> int:
        return self.slots * self.stride

    @property
    def storage_symbol(self) -> str:
        return f"mapvalue:{self.name}" if self.kind == ARRAY else f"jitbpf_hash:{self.name}"

    def manifest(self) -> dict:
        return {"name": self.name, "type": "array" if self.kind == ARRAY else "hash", "key_size": self.key_size,
                "value_size": self.value_size, "max_entries": self.max_entries, "readonly": self.readonly,
                "slots": self.slots, "stride": self.stride, "value_offset": self.value_offset,
                "storage": self.storage_symbol, "header": f"map:{self.name}"}


@dataclass
class EntrySpec:
    name: str              # exported C symbol
    entry: str             # the program's native entry symbol
    context: str           # raw, xdp, syscall, struct
    budget: int


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _q(name: str) -> str:
    return '"' + name.replace("\\", "\\5C").replace('"', "\\22") + '"'


def _bytes_init(data: bytes) -> str:
    if not any(data):
        return "zeroinitializer"
    return 'c"' + "".join(f"\\{b:02X}" for b in data) + '"'


HEADER_TYPE = "{i64, i64, i64, i64, i64, ptr, i64, i64, i64, i64}"

LIBRARY = r"""
attributes #0 = { nounwind "no-builtins" "frame-pointer"="non-leaf" }

@jitbpf_err_code = dso_local global i64 0, align 8
@jitbpf_err_pc = dso_local global i64 0, align 8
@jitbpf_err_value = dso_local global i64 0, align 8
@jitbpf_stack = dso_local global [4096 x i8] zeroinitializer, align 16
@jitbpf_rs = dso_local global [4096 x i8] zeroinitializer, align 4096

define internal i1 @rt_memeq(ptr %a, ptr %b, i64 %n) #0 {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %done = icmp uge i64 %i, %n
  br i1 %done, label %yes, label %test
test:
  %pa = getelementptr i8, ptr %a, i64 %i
  %pb = getelementptr i8, ptr %b, i64 %i
  %x = load i8, ptr %pa
  %y = load i8, ptr %pb
  %i1 = add i64 %i, 1
  %eq = icmp eq i8 %x, %y
  br i1 %eq, label %body, label %no
body:
  br label %loop
yes:
  ret i1 1
no:
  ret i1 0
}

define internal void @rt_memcopy(ptr %d, ptr %s, i64 %n) #0 {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %done = icmp uge i64 %i, %n
  br i1 %done, label %out, label %body
body:
  %ps = getelementptr i8, ptr %s, i64 %i
  %pd = getelementptr i8, ptr %d, i64 %i
  %x = load i8, ptr %ps
  store i8 %x, ptr %pd
  %i1 = add i64 %i, 1
  br label %loop
out:
  ret void
}

; n: a multiple of 8, d: 8-byte aligned
define internal void @rt_memzero(ptr %d, i64 %n) #0 {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %done = icmp uge i64 %i, %n
  br i1 %done, label %out, label %body
body:
  %pd = getelementptr i8, ptr %d, i64 %i
  store i64 0, ptr %pd, align 8
  %i1 = add i64 %i, 8
  br label %loop
out:
  ret void
}

define internal i64 @rt_field(ptr %h, i64 %i) #0 {
  %p = getelementptr i64, ptr %h, i64 %i
  %v = load i64, ptr %p
  ret i64 %v
}

define internal ptr @rt_storage(ptr %h) #0 {
  %p = getelementptr i64, ptr %h, i64 5
  %v = load ptr, ptr %p
  ret ptr %v
}

define internal i64 @rt_hash(ptr %k, i64 %n) #0 {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %h = phi i32 [2166136261, %entry], [%h2, %body]
  %done = icmp uge i64 %i, %n
  br i1 %done, label %out, label %body
body:
  %p = getelementptr i8, ptr %k, i64 %i
  %b = load i8, ptr %p
  %bw = zext i8 %b to i32
  %h1 = xor i32 %h, %bw
  %h2 = mul i32 %h1, 16777619
  %i1 = add i64 %i, 1
  br label %loop
out:
  %r = zext i32 %h to i64
  ret i64 %r
}

; the used slot holding key, or null
define internal ptr @rt_find(ptr %h, ptr %key) #0 {
entry:
  %ks = call i64 @rt_field(ptr %h, i64 1)
  %stride = call i64 @rt_field(ptr %h, i64 6)
  %slots = call i64 @rt_field(ptr %h, i64 7)
  %mask = sub i64 %slots, 1
  %st = call ptr @rt_storage(ptr %h)
  %hash = call i64 @rt_hash(ptr %key, i64 %ks)
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %next]
  %done = icmp uge i64 %i, %slots
  br i1 %done, label %none, label %probe
probe:
  %j0 = add i64 %hash, %i
  %j = and i64 %j0, %mask
  %off = mul i64 %j, %stride
  %slot = getelementptr i8, ptr %st, i64 %off
  %state = load i64, ptr %slot
  %i1 = add i64 %i, 1
  %empty = icmp eq i64 %state, 0
  br i1 %empty, label %none, label %used
used:
  %isused = icmp eq i64 %state, 1
  br i1 %isused, label %cmp, label %next
cmp:
  %kp = getelementptr i8, ptr %slot, i64 8
  %eq = call i1 @rt_memeq(ptr %kp, ptr %key, i64 %ks)
  br i1 %eq, label %found, label %next
next:
  br label %loop
found:
  ret ptr %slot
none:
  ret ptr null
}

; the first free slot (empty or deleted) on the probe path of key, or null
define internal ptr @rt_free_slot(ptr %h, ptr %key) #0 {
entry:
  %ks = call i64 @rt_field(ptr %h, i64 1)
  %stride = call i64 @rt_field(ptr %h, i64 6)
  %slots = call i64 @rt_field(ptr %h, i64 7)
  %mask = sub i64 %slots, 1
  %st = call ptr @rt_storage(ptr %h)
  %hash = call i64 @rt_hash(ptr %key, i64 %ks)
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %probe]
  %done = icmp uge i64 %i, %slots
  br i1 %done, label %none, label %probe
probe:
  %j0 = add i64 %hash, %i
  %j = and i64 %j0, %mask
  %off = mul i64 %j, %stride
  %slot = getelementptr i8, ptr %st, i64 %off
  %state = load i64, ptr %slot
  %i1 = add i64 %i, 1
  %used = icmp eq i64 %state, 1
  br i1 %used, label %loop, label %found
found:
  ret ptr %slot
none:
  ret ptr null
}

define internal ptr @rt_lookup(ptr %h, ptr %key) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 0)
  %isarray = icmp eq i64 %type, 1
  br i1 %isarray, label %array, label %hash
array:
  %idx32 = load i32, ptr %key
  %idx = zext i32 %idx32 to i64
  %max = call i64 @rt_field(ptr %h, i64 3)
  %in = icmp ult i64 %idx, %max
  br i1 %in, label %aval, label %none
aval:
  %stride = call i64 @rt_field(ptr %h, i64 6)
  %off = mul i64 %idx, %stride
  %st = call ptr @rt_storage(ptr %h)
  %v = getelementptr i8, ptr %st, i64 %off
  ret ptr %v
hash:
  %slot = call ptr @rt_find(ptr %h, ptr %key)
  %missing = icmp eq ptr %slot, null
  br i1 %missing, label %none, label %hval
hval:
  %voff = call i64 @rt_field(ptr %h, i64 8)
  %hv = getelementptr i8, ptr %slot, i64 %voff
  ret ptr %hv
none:
  ret ptr null
}

define internal i64 @rt_update(ptr %h, ptr %key, ptr %value, i64 %flags) #0 {
entry:
  %vs = call i64 @rt_field(ptr %h, i64 2)
  %badflags = icmp ugt i64 %flags, 2
  br i1 %badflags, label %einval, label %go
go:
  %type = call i64 @rt_field(ptr %h, i64 0)
  %isarray = icmp eq i64 %type, 1
  br i1 %isarray, label %array, label %hash
array:
  %idx32 = load i32, ptr %key
  %idx = zext i32 %idx32 to i64
  %max = call i64 @rt_field(ptr %h, i64 3)
  %in = icmp ult i64 %idx, %max
  br i1 %in, label %aflags, label %e2big
aflags:
  %noexist = icmp eq i64 %flags, 1
  br i1 %noexist, label %eexist, label %acopy
acopy:
  %v = call ptr @rt_lookup(ptr %h, ptr %key)
  call void @rt_memcopy(ptr %v, ptr %value, i64 %vs)
  ret i64 0
hash:
  %slot = call ptr @rt_find(ptr %h, ptr %key)
  %missing = icmp eq ptr %slot, null
  br i1 %missing, label %insert, label %replace
replace:
  %noexist2 = icmp eq i64 %flags, 1
  br i1 %noexist2, label %eexist, label %rcopy
rcopy:
  %voff = call i64 @rt_field(ptr %h, i64 8)
  %rv = getelementptr i8, ptr %slot, i64 %voff
  call void @rt_memcopy(ptr %rv, ptr %value, i64 %vs)
  ret i64 0
insert:
  %exist = icmp eq i64 %flags, 2
  br i1 %exist, label %enoent, label %room
room:
  %count = call i64 @rt_field(ptr %h, i64 4)
  %max2 = call i64 @rt_field(ptr %h, i64 3)
  %full = icmp uge i64 %count, %max2
  br i1 %full, label %e2big, label %place
place:
  %free = call ptr @rt_free_slot(ptr %h, ptr %key)
  %nofree = icmp eq ptr %free, null
  br i1 %nofree, label %e2big, label %fill
fill:
  %ks = call i64 @rt_field(ptr %h, i64 1)
  %kp = getelementptr i8, ptr %free, i64 8
  call void @rt_memcopy(ptr %kp, ptr %key, i64 %ks)
  %voff2 = call i64 @rt_field(ptr %h, i64 8)
  %fv = getelementptr i8, ptr %free, i64 %voff2
  call void @rt_memcopy(ptr %fv, ptr %value, i64 %vs)
  store i64 1, ptr %free
  %cp = getelementptr i64, ptr %h, i64 4
  %c1 = add i64 %count, 1
  store i64 %c1, ptr %cp
  ret i64 0
einval:
  ret i64 -22
e2big:
  ret i64 -7
eexist:
  ret i64 -17
enoent:
  ret i64 -2
}

define internal i64 @rt_delete(ptr %h, ptr %key) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 0)
  %isarray = icmp eq i64 %type, 1
  br i1 %isarray, label %einval, label %hash
hash:
  %slot = call ptr @rt_find(ptr %h, ptr %key)
  %missing = icmp eq ptr %slot, null
  br i1 %missing, label %enoent, label %del
del:
  store i64 2, ptr %slot
  %cp = getelementptr i64, ptr %h, i64 4
  %c = load i64, ptr %cp
  %c1 = sub i64 %c, 1
  store i64 %c1, ptr %cp
  ret i64 0
einval:
  ret i64 -22
enoent:
  ret i64 -2
}

define internal i64 @rt_next_key(ptr %h, ptr %key, ptr %next) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 0)
  %max = call i64 @rt_field(ptr %h, i64 3)
  %isarray = icmp eq i64 %type, 1
  %nokey = icmp eq ptr %key, null
  br i1 %isarray, label %array, label %hash
array:
  br i1 %nokey, label %afirst, label %aidx
aidx:
  %idx32 = load i32, ptr %key
  %idx = zext i32 %idx32 to i64
  %in = icmp ult i64 %idx, %max
  br i1 %in, label %anext, label %afirst
anext:
  %n = add i64 %idx, 1
  %end = icmp uge i64 %n, %max
  br i1 %end, label %enoent, label %astore
astore:
  %n32 = trunc i64 %n to i32
  store i32 %n32, ptr %next
  ret i64 0
afirst:
  store i32 0, ptr %next
  ret i64 0
hash:
  %ks = call i64 @rt_field(ptr %h, i64 1)
  %stride = call i64 @rt_field(ptr %h, i64 6)
  %slots = call i64 @rt_field(ptr %h, i64 7)
  %st = call ptr @rt_storage(ptr %h)
  br i1 %nokey, label %scan0, label %findkey
findkey:
  %slot = call ptr @rt_find(ptr %h, ptr %key)
  %missing = icmp eq ptr %slot, null
  br i1 %missing, label %scan0, label %after
after:
  %si = ptrtoint ptr %slot to i64
  %sb = ptrtoint ptr %st to i64
  %d = sub i64 %si, %sb
  %k = udiv i64 %d, %stride
  %k1 = add i64 %k, 1
  br label %scan
scan0:
  br label %scan
scan:
  %i = phi i64 [0, %scan0], [%k1, %after], [%i1, %skip]
  %done = icmp uge i64 %i, %slots
  br i1 %done, label %enoent, label %look
look:
  %off = mul i64 %i, %stride
  %p = getelementptr i8, ptr %st, i64 %off
  %state = load i64, ptr %p
  %i1 = add i64 %i, 1
  %used = icmp eq i64 %state, 1
  br i1 %used, label %copy, label %skip
skip:
  br label %scan
copy:
  %kp = getelementptr i8, ptr %p, i64 8
  call void @rt_memcopy(ptr %next, ptr %kp, i64 %ks)
  ret i64 0
enoent:
  ret i64 -2
}

define dso_local i64 @bpf_map_lookup_elem(i64 %m, i64 %k, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %key = inttoptr i64 %k to ptr
  %v = call ptr @rt_lookup(ptr %h, ptr %key)
  %r = ptrtoint ptr %v to i64
  ret i64 %r
}

define dso_local i64 @bpf_map_update_elem(i64 %m, i64 %k, i64 %v, i64 %f, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %key = inttoptr i64 %k to ptr
  %val = inttoptr i64 %v to ptr
  %r = call i64 @rt_update(ptr %h, ptr %key, ptr %val, i64 %f)
  ret i64 %r
}

define dso_local i64 @bpf_map_delete_elem(i64 %m, i64 %k, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %key = inttoptr i64 %k to ptr
  %r = call i64 @rt_delete(ptr %h, ptr %key)
  ret i64 %r
}

define internal void @rt_fail(i64 %code, i64 %pc, i64 %value, ptr %rs) #0 {
  store i64 %code, ptr @jitbpf_err_code
  store i64 %pc, ptr @jitbpf_err_pc
  store i64 %value, ptr @jitbpf_err_value
  store volatile i64 1, ptr %rs
  ret void
}

define dso_local i64 @jitbpf_trap(i64 %code, i64 %pc, i64 %value, i64 %a4, i64 %a5, ptr %rs) #0 {
  call void @rt_fail(i64 %code, i64 %pc, i64 %value, ptr %rs)
  ret i64 0
}

define dso_local i64 @jitbpf_check_access(i64 %address, i64 %info, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %pc = lshr i64 %info, 8
  call void @rt_fail(i64 10, i64 %pc, i64 %address, ptr %rs)
  ret i64 0
}

define dso_local i32 @jitbpf_last_error(ptr %pc, ptr %value) #0 {
entry:
  %c = load i64, ptr @jitbpf_err_code
  %haspc = icmp ne ptr %pc, null
  br i1 %haspc, label %storepc, label %v
storepc:
  %p = load i64, ptr @jitbpf_err_pc
  store i64 %p, ptr %pc
  br label %v
v:
  %hasv = icmp ne ptr %value, null
  br i1 %hasv, label %storev, label %out
storev:
  %x = load i64, ptr @jitbpf_err_value
  store i64 %x, ptr %value
  br label %out
out:
  %r = trunc i64 %c to i32
  ret i32 %r
}

define internal i1 @rt_streq(ptr %a, ptr %b) #0 {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %more]
  %pa = getelementptr i8, ptr %a, i64 %i
  %pb = getelementptr i8, ptr %b, i64 %i
  %x = load i8, ptr %pa
  %y = load i8, ptr %pb
  %i1 = add i64 %i, 1
  %eq = icmp eq i8 %x, %y
  br i1 %eq, label %endq, label %no
endq:
  %z = icmp eq i8 %x, 0
  br i1 %z, label %yes, label %more
more:
  br label %loop
yes:
  ret i1 1
no:
  ret i1 0
}

define internal ptr @rt_map_named(ptr %name) #0 {
entry:
  %null = icmp eq ptr %name, null
  br i1 %null, label %none, label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %next]
  %n = load i64, ptr @jitbpf_map_count
  %done = icmp uge i64 %i, %n
  br i1 %done, label %none, label %test
test:
  %np = getelementptr ptr, ptr @jitbpf_map_names, i64 %i
  %s = load ptr, ptr %np
  %i1 = add i64 %i, 1
  %eq = call i1 @rt_streq(ptr %s, ptr %name)
  br i1 %eq, label %found, label %next
next:
  br label %loop
found:
  %hp = getelementptr ptr, ptr @jitbpf_map_headers, i64 %i
  %h = load ptr, ptr %hp
  ret ptr %h
none:
  ret ptr null
}

define dso_local i32 @jitbpf_map_lookup(ptr %name, ptr %key, ptr %value) #0 {
entry:
  %h = call ptr @rt_map_named(ptr %name)
  %nomap = icmp eq ptr %h, null
  br i1 %nomap, label %einval, label %go
go:
  %v = call ptr @rt_lookup(ptr %h, ptr %key)
  %missing = icmp eq ptr %v, null
  br i1 %missing, label %enoent, label %copy
copy:
  %vs = call i64 @rt_field(ptr %h, i64 2)
  call void @rt_memcopy(ptr %value, ptr %v, i64 %vs)
  ret i32 0
einval:
  ret i32 -22
enoent:
  ret i32 -2
}

define dso_local i32 @jitbpf_map_update(ptr %name, ptr %key, ptr %value, i64 %flags) #0 {
entry:
  %h = call ptr @rt_map_named(ptr %name)
  %nomap = icmp eq ptr %h, null
  br i1 %nomap, label %einval, label %go
go:
  %r = call i64 @rt_update(ptr %h, ptr %key, ptr %value, i64 %flags)
  %r32 = trunc i64 %r to i32
  ret i32 %r32
einval:
  ret i32 -22
}

define dso_local i32 @jitbpf_map_delete(ptr %name, ptr %key) #0 {
entry:
  %h = call ptr @rt_map_named(ptr %name)
  %nomap = icmp eq ptr %h, null
  br i1 %nomap, label %einval, label %go
go:
  %r = call i64 @rt_delete(ptr %h, ptr %key)
  %r32 = trunc i64 %r to i32
  ret i32 %r32
einval:
  ret i32 -22
}

define dso_local i32 @jitbpf_map_next_key(ptr %name, ptr %key, ptr %next) #0 {
entry:
  %h = call ptr @rt_map_named(ptr %name)
  %nomap = icmp eq ptr %h, null
  br i1 %nomap, label %einval, label %go
go:
  %r = call i64 @rt_next_key(ptr %h, ptr %key, ptr %next)
  %r32 = trunc i64 %r to i32
  ret i32 %r32
einval:
  ret i32 -22
}
"""


def _maps_ir(maps: list[MapSpec]) -> list[str]:
    out = []
    for i, m in enumerate(maps):
        storage = _q(m.storage_symbol)
        if m.kind == ARRAY:
            data = (m.initial or b"")[:m.storage_size].ljust(m.storage_size, b"\0")
            out.append(f"@{storage} = dso_local global [{m.storage_size} x i8] {_bytes_init(data)}, align 16")
        else:
            out.append(f"@{storage} = dso_local global [{m.storage_size} x i8] zeroinitializer, align 16")
        fields = [m.kind, m.key_size, m.value_size, m.max_entries, 0, None, m.stride, m.slots, m.value_offset,
                  int(m.readonly)]
        init = ", ".join(f"ptr @{storage}" if v is None else f"i64 {v}" for v in fields)
        out.append(f"@{_q('map:' + m.name)} = dso_local global {HEADER_TYPE} {{{init}}}, align 8")
        name = m.name.encode() + b"\0"
        out.append(f"@jitbpf_map_name.{i} = private constant [{len(name)} x i8] {_bytes_init(name)}")
    names = ", ".join(f"ptr @jitbpf_map_name.{i}" for i in range(len(maps)))
    headers = ", ".join(f"ptr @{_q('map:' + m.name)}" for m in maps)
    out.append(f"@jitbpf_map_count = dso_local global i64 {len(maps)}")
    out.append(f"@jitbpf_map_names = dso_local global [{len(maps)} x ptr] [{names}]")
    out.append(f"@jitbpf_map_headers = dso_local global [{len(maps)} x ptr] [{headers}]")
    return out


def _region(lines: list[str], n: str, start: str, end: str, writable: int, tag: str) -> str:
    """IR appending one region table entry; returns the new count's name."""
    lines += [f"  %{tag}.e = mul i64 {n}, {abi.TABLE_ENTRY}",
              f"  %{tag}.o = add i64 %{tag}.e, {abi.RUN_TABLE}",
              f"  %{tag}.p = getelementptr i8, ptr %rs, i64 %{tag}.o",
              f"  store i64 {start}, ptr %{tag}.p",
              f"  %{tag}.p1 = getelementptr i8, ptr %{tag}.p, i64 8",
              f"  store i64 {end}, ptr %{tag}.p1",
              f"  %{tag}.p2 = getelementptr i8, ptr %{tag}.p, i64 16",
              f"  store i64 {writable}, ptr %{tag}.p2",
              f"  %{tag}.n = add i64 {n}, 1"]
    return f"%{tag}.n"


def _core_ir(e: EntrySpec, index: int, maps: list[MapSpec]) -> list[str]:
    core = _q(f"jitbpf_core${e.name}")
    lines = [f"declare i64 @{_q(e.entry)}(i64, i64, i64, i64, i64, ptr)",
             f"@jitbpf_xdp_ctx.{index} = internal global [6 x i32] zeroinitializer, align 8",
             f"@jitbpf_packet.{index} = internal global [{XDP_HEADROOM + MAX_PACKET} x i8] zeroinitializer, align 64"
             if e.context == "xdp" else "",
             f"define dso_local i64 @{core}(i64 %ctx, i64 %size, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {{",
             "entry:",
             "  store i64 0, ptr @jitbpf_err_code",
             "  store i64 0, ptr @jitbpf_err_pc",
             "  store i64 0, ptr @jitbpf_err_value",
             "  call void @rt_memzero(ptr @jitbpf_stack, i64 4096)",
             "  %stack = ptrtoint ptr @jitbpf_stack to i64",
             f"  %top = add i64 %stack, {STACK_BYTES}"]
    for offset, value in ((abi.RUN_UNWIND, "0"), (abi.RUN_DEPTH, "0"), (abi.RUN_BUDGET, str(e.budget)),
                          (abi.RUN_STACK_TOP, "%top"), (abi.RUN_SP, "%top"), (abi.RUN_STOP, "0"),
                          (abi.RUN_SPENT, "0")):
        lines += [f"  %rs.{offset} = getelementptr i8, ptr %rs, i64 {offset}", f"  store i64 {value}, ptr %rs.{offset}"]
    n = "0"
    for i, m in enumerate(maps):
        lines.append(f"  %m{i}.s = ptrtoint ptr @{_q(m.storage_symbol)} to i64")
        lines.append(f"  %m{i}.end = add i64 %m{i}.s, {m.storage_size}")
        n = _region(lines, n, f"%m{i}.s", f"%m{i}.end", int(not m.readonly), f"m{i}")
    entry = _q(e.entry)
    if e.context == "xdp":
        packet = f"@jitbpf_packet.{index}"
        xctx = f"@jitbpf_xdp_ctx.{index}"
        lines += ["  %md = inttoptr i64 %ctx to ptr",
                  "  %small = icmp ult i64 %size, 24",
                  "  br i1 %small, label %badctx, label %fields",
                  "fields:",
                  "  %data = load i64, ptr %md",
                  "  %md.1 = getelementptr i8, ptr %md, i64 8",
                  "  %end = load i64, ptr %md.1",
                  "  %md.2 = getelementptr i8, ptr %md, i64 16",
                  "  %meta0 = load i64, ptr %md.2",
                  "  %nometa = icmp eq i64 %meta0, 0",
                  "  %meta = select i1 %nometa, i64 %data, i64 %meta0",
                  "  %plen = sub i64 %end, %data",
                  "  %mlen = sub i64 %data, %meta",
                  f"  %big = icmp ugt i64 %plen, {MAX_PACKET}",
                  f"  %bigm = icmp ugt i64 %mlen, {XDP_HEADROOM - 40}",
                  "  %bad = or i1 %big, %bigm",
                  "  br i1 %bad, label %badctx, label %place",
                  "place:",
                  f"  %pk = ptrtoint ptr {packet} to i64",
                  f"  %pkend = add i64 %pk, {XDP_HEADROOM + MAX_PACKET}",
                  "  %high = icmp ugt i64 %pkend, 4294967295",
                  "  br i1 %high, label %highmem, label %copyin",
                  "copyin:",
                  f"  %nd = add i64 %pk, {XDP_HEADROOM}",
                  "  %nm = sub i64 %nd, %mlen",
                  "  %ne = add i64 %nd, %plen",
                  "  %total = add i64 %mlen, %plen",
                  "  %nmp = inttoptr i64 %nm to ptr",
                  "  %metap = inttoptr i64 %meta to ptr",
                  "  call void @rt_memcopy(ptr %nmp, ptr %metap, i64 %total)",
                  "  %nd32 = trunc i64 %nd to i32",
                  "  %ne32 = trunc i64 %ne to i32",
                  "  %nm32 = trunc i64 %nm to i32",
                  f"  store i32 %nd32, ptr {xctx}",
                  f"  %x1 = getelementptr i32, ptr {xctx}, i64 1",
                  "  store i32 %ne32, ptr %x1",
                  f"  %x2 = getelementptr i32, ptr {xctx}, i64 2",
                  "  store i32 %nm32, ptr %x2",
                  "  %fsmall = icmp ult i64 %size, 40"]
        for k in range(3):
            lines += [f"  %src{k} = getelementptr i8, ptr %md, i64 {24 + 4 * k}",
                      f"  %srcv{k} = load i32, ptr %src{k}",
                      f"  %fv{k} = select i1 %fsmall, i32 {1 if k == 0 else 0}, i32 %srcv{k}",
                      f"  %x{3 + k} = getelementptr i32, ptr {xctx}, i64 {3 + k}",
                      f"  store i32 %fv{k}, ptr %x{3 + k}"]
        n = _region(lines, n, "%nm", "%ne", 1, "pkt")
        lines.append(f"  %xc = ptrtoint ptr {xctx} to i64")
        lines.append("  %xce = add i64 %xc, 24")
        n = _region(lines, n, "%xc", "%xce", 0, "ctx")
        lines += [f"  %cnt = getelementptr i8, ptr %rs, i64 {abi.RUN_COUNT}", f"  store i64 {n}, ptr %cnt",
                  f"  %r0 = call i64 @{entry}(i64 %xc, i64 0, i64 0, i64 0, i64 0, ptr %rs)",
                  "  call void @rt_memcopy(ptr %metap, ptr %nmp, i64 %total)",
                  "  br label %done",
                  "badctx:",
                  f"  call void @rt_fail(i64 {E_CONTEXT}, i64 -1, i64 %size, ptr %rs)",
                  "  ret i64 0",
                  "highmem:",
                  f"  call void @rt_fail(i64 {E_HIGH}, i64 -1, i64 %pk, ptr %rs)",
                  "  ret i64 0"]
    else:
        lines.append("  %cend = add i64 %ctx, %size")
        n = _region(lines, n, "%ctx", "%cend", int(e.context in ("raw", "syscall")), "ctx")
        r2 = "%size" if e.context == "raw" else "0"
        lines += [f"  %cnt = getelementptr i8, ptr %rs, i64 {abi.RUN_COUNT}", f"  store i64 {n}, ptr %cnt",
                  f"  %r0 = call i64 @{entry}(i64 %ctx, i64 {r2}, i64 0, i64 0, i64 0, ptr %rs)",
                  "  br label %done"]
    lines += ["done:",
              f"  %spentp = getelementptr i8, ptr %rs, i64 {abi.RUN_SPENT}",
              "  %spent = load i64, ptr %spentp",
              "  %wasspent = icmp ne i64 %spent, 0",
              "  br i1 %wasspent, label %budget, label %out",
              "budget:",
              "  %slot = sub i64 %spent, 1",
              f"  store i64 {E_BUDGET}, ptr @jitbpf_err_code",
              "  store i64 %slot, ptr @jitbpf_err_pc",
              "  ret i64 0",
              "out:",
              "  ret i64 %r0",
              "}"]
    return lines


def module_text(entries: list[EntrySpec], maps: list[MapSpec], bpftime: bool = False) -> str:
    """The runtime module for these programs and maps."""
    lines = [LIBRARY, *_maps_ir(maps)]
    for i, e in enumerate(entries):
        lines += _core_ir(e, i, maps)
        core = _q(f"jitbpf_core${e.name}")
        if bpftime:
            lines += [f"define dso_local i32 @bpf_main(ptr %ctx, i64 %size) #0 {{",
                      "  %c = ptrtoint ptr %ctx to i64",
                      f"  %r = call i64 @{core}(i64 %c, i64 %size, i64 0, i64 0, i64 0, ptr @jitbpf_rs)",
                      "  %r32 = trunc i64 %r to i32", "  ret i32 %r32", "}"]
        else:
            lines += [f"define dso_local i64 @{_q(e.name)}(ptr %ctx, i64 %size) #0 {{",
                      "  %c = ptrtoint ptr %ctx to i64",
                      f"  %r = call i64 @{core}(i64 %c, i64 %size, i64 0, i64 0, i64 0, ptr @jitbpf_rs)",
                      "  ret i64 %r", "}"]
    return "\n".join(line for line in lines if line) + "\n"
