"""The AOT runtime library as LLVM IR text, one constant per concern (see runtime_ir).

``$name`` stands for a header field's index, a map kind or a constant (``runtime_ir.SUBST``);
every map operation takes the map's header (``ptr %h``) and returns a value or a negative errno.
"""

#: globals of the run, memory and header primitives, the hash
PRIMITIVES = r"""
attributes #0 = { nounwind "no-builtins" "frame-pointer"="non-leaf" }
; the small accessors, inlined where they are used
attributes #1 = { nounwind alwaysinline "no-builtins" "frame-pointer"="non-leaf" }

@jitbpf_err_code = dso_local global i64 0, align 8
@jitbpf_err_pc = dso_local global i64 0, align 8
@jitbpf_err_value = dso_local global i64 0, align 8
@jitbpf_stack = dso_local global [4096 x i8] zeroinitializer, align 16
@jitbpf_rs = dso_local global [4096 x i8] zeroinitializer, align 4096
; the key bpf_for_each_map_elem hands the callback for arrays (a region of every run)
@jitbpf_iter_key = dso_local global [8 x i8] zeroinitializer, align 8
; bpf_tail_call: the program to run next (0: none) and the tail calls of the current run
@jitbpf_tail_target = internal global i64 0, align 8
@jitbpf_tail_calls = internal global i64 0, align 8
; the entry of the program running after tail calls (0: the first), which numbers the
; instruction of an error
@jitbpf_running = dso_local global i64 0, align 8

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

; words while 8 bytes remain, then bytes
define internal void @rt_memzero(ptr %d, i64 %n) #0 {
entry:
  br label %words
words:
  %i = phi i64 [0, %entry], [%i1, %word]
  %i8 = add i64 %i, 8
  %wdone = icmp ugt i64 %i8, %n
  br i1 %wdone, label %bytes, label %word
word:
  %pd = getelementptr i8, ptr %d, i64 %i
  store i64 0, ptr %pd, align 1
  %i1 = add i64 %i, 8
  br label %words
bytes:
  %j = phi i64 [%i, %words], [%j1, %byte]
  %bdone = icmp uge i64 %j, %n
  br i1 %bdone, label %out, label %byte
byte:
  %pb = getelementptr i8, ptr %d, i64 %j
  store i8 0, ptr %pb
  %j1 = add i64 %j, 1
  br label %bytes
out:
  ret void
}

define internal i64 @rt_field(ptr %h, i64 %i) #1 {
  %p = getelementptr i64, ptr %h, i64 %i
  %v = load i64, ptr %p
  ret i64 %v
}

define internal void @rt_set(ptr %h, i64 %i, i64 %v) #1 {
  %p = getelementptr i64, ptr %h, i64 %i
  store i64 %v, ptr %p
  ret void
}

define internal ptr @rt_storage(ptr %h) #1 {
  %p = getelementptr i64, ptr %h, i64 $storage
  %v = load ptr, ptr %p
  ret ptr %v
}

; slot i of the storage (stride bytes each)
define internal ptr @rt_slot(ptr %h, i64 %i) #1 {
  %stride = call i64 @rt_field(ptr %h, i64 $stride)
  %st = call ptr @rt_storage(ptr %h)
  %off = mul i64 %i, %stride
  %p = getelementptr i8, ptr %st, i64 %off
  ret ptr %p
}

; cpu's value in the value area at p
define internal ptr @rt_cpu_value(ptr %h, ptr %p, i64 %cpu) #1 {
  %vstride = call i64 @rt_field(ptr %h, i64 $value_stride)
  %off = mul i64 %cpu, %vstride
  %v = getelementptr i8, ptr %p, i64 %off
  ret ptr %v
}

; FNV-1a, 32 bits, seed xored into the offset basis (maps.fnv1a32)
define internal i64 @rt_hash(ptr %k, i64 %n, i64 %seed) #0 {
entry:
  %s32 = trunc i64 %seed to i32
  %h0 = xor i32 2166136261, %s32
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %h = phi i32 [%h0, %entry], [%h2, %body]
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

; a u32 index key below max_entries, or -1
define internal i64 @rt_index(ptr %h, ptr %key) #1 {
  %idx32 = load i32, ptr %key
  %idx = zext i32 %idx32 to i64
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %in = icmp ult i64 %idx, %max
  %r = select i1 %in, i64 %idx, i64 -1
  ret i64 %r
}
"""

#: arrays and hash maps
HASH_MAPS = r"""
; ---------------------------------------------------------------- array, percpu_array
define internal ptr @rt_array_value(ptr %h, ptr %key, i64 %cpu) #0 {
entry:
  %idx = call i64 @rt_index(ptr %h, ptr %key)
  %out = icmp slt i64 %idx, 0
  br i1 %out, label %none, label %value
value:
  %slot = call ptr @rt_slot(ptr %h, i64 %idx)
  %v = call ptr @rt_cpu_value(ptr %h, ptr %slot, i64 %cpu)
  ret ptr %v
none:
  ret ptr null
}

define internal i64 @rt_array_update(ptr %h, ptr %key, ptr %value, i64 %flags, i64 %nbytes) #0 {
entry:
  %idx = call i64 @rt_index(ptr %h, ptr %key)
  %out = icmp slt i64 %idx, 0
  br i1 %out, label %e2big, label %check
check:
  %mode = and i64 %flags, 3
  %noexist = icmp eq i64 %mode, 1
  br i1 %noexist, label %eexist, label %lock
lock:
  %locked = and i64 %flags, 4
  %haslock = icmp ne i64 %locked, 0
  br i1 %haslock, label %einval, label %copy
copy:
  %v = call ptr @rt_slot(ptr %h, i64 %idx)
  call void @rt_memcopy(ptr %v, ptr %value, i64 %nbytes)
  ret i64 0
einval:
  ret i64 -22
e2big:
  ret i64 -7
eexist:
  ret i64 -17
}

; ---------------------------------------------------------------- hash, percpu_hash, lru_hash
; maps.py's layout (its module docstring), byte for byte: an index of ``slots`` u32 (0 empty,
; 0xFFFFFFFF deleted, else 1 + an element number; linear probing from fnv1a32(key) & (slots -
; 1)), then at ``pool`` max_entries elements of ``stride`` bytes: u32 state (1 used), u32 next
; free, u32 prev and next of the LRU list, the key from byte 16, the values. Header: ``free``
; (1 + the last freed element, 0: none), ``fresh`` (elements never used yet), ``lru_head``
; (least recent) and ``lru_tail``; a rebuild re-places live elements in element order. So a
; compiled object starts from a copy of maps.py's bytes and keeps its slots and order.

define internal ptr @rt_index_at(ptr %h, i64 %slot) #1 {
  %st = call ptr @rt_storage(ptr %h)
  %p = getelementptr i32, ptr %st, i64 %slot
  ret ptr %p
}

define internal ptr @rt_elem(ptr %h, i64 %e) #1 {
  %st = call ptr @rt_storage(ptr %h)
  %pool = call i64 @rt_field(ptr %h, i64 $pool)
  %stride = call i64 @rt_field(ptr %h, i64 $stride)
  %o = mul i64 %e, %stride
  %off = add i64 %pool, %o
  %p = getelementptr i8, ptr %st, i64 %off
  ret ptr %p
}

; the element 1 + number n names
define internal ptr @rt_elem1(ptr %h, i64 %n) #1 {
  %e = sub i64 %n, 1
  %p = call ptr @rt_elem(ptr %h, i64 %e)
  ret ptr %p
}

define internal i64 @rt_elem_number(ptr %h, ptr %p) #1 {
  %st = call ptr @rt_storage(ptr %h)
  %pool = call i64 @rt_field(ptr %h, i64 $pool)
  %stride = call i64 @rt_field(ptr %h, i64 $stride)
  %pi = ptrtoint ptr %p to i64
  %si = ptrtoint ptr %st to i64
  %d0 = sub i64 %pi, %si
  %d = sub i64 %d0, %pool
  %e = udiv i64 %d, %stride
  ret i64 %e
}

; an element's u32 field at byte off (0 state, 4 next free, 8 LRU prev, 12 LRU next)
define internal i64 @rt_eword(ptr %e, i64 %off) #1 {
  %p = getelementptr i8, ptr %e, i64 %off
  %v = load i32, ptr %p
  %r = zext i32 %v to i64
  ret i64 %r
}

define internal void @rt_set_eword(ptr %e, i64 %off, i64 %v) #1 {
  %p = getelementptr i8, ptr %e, i64 %off
  %t = trunc i64 %v to i32
  store i32 %t, ptr %p
  ret void
}

; the element index slot names, or null (empty, deleted)
define internal ptr @rt_slot_elem(ptr %h, i64 %slot) #1 {
entry:
  %ip = call ptr @rt_index_at(ptr %h, i64 %slot)
  %v = load i32, ptr %ip
  %empty = icmp eq i32 %v, 0
  %deleted = icmp eq i32 %v, -1
  %none = or i1 %empty, %deleted
  br i1 %none, label %null, label %elem
elem:
  %v64 = zext i32 %v to i64
  %p = call ptr @rt_elem1(ptr %h, i64 %v64)
  ret ptr %p
null:
  ret ptr null
}

; the index slot holding key (used = 1), or free for it (used = 0: empty or deleted), or -1
define internal i64 @rt_probe(ptr %h, ptr %key, i1 %used) #0 {
entry:
  %ks = call i64 @rt_field(ptr %h, i64 $key_size)
  %slots = call i64 @rt_field(ptr %h, i64 $slots)
  %mask = sub i64 %slots, 1
  %hash = call i64 @rt_hash(ptr %key, i64 %ks, i64 0)
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %next]
  %done = icmp uge i64 %i, %slots
  br i1 %done, label %none, label %probe
probe:
  %j0 = add i64 %hash, %i
  %j = and i64 %j0, %mask
  %ip = call ptr @rt_index_at(ptr %h, i64 %j)
  %v = load i32, ptr %ip
  %i1 = add i64 %i, 1
  %empty = icmp eq i32 %v, 0
  %deleted = icmp eq i32 %v, -1
  %free = or i1 %empty, %deleted
  br i1 %used, label %want_used, label %want_free
want_free:
  br i1 %free, label %found, label %next
want_used:
  br i1 %empty, label %none, label %live
live:
  br i1 %deleted, label %next, label %cmp
cmp:
  %e = call ptr @rt_slot_elem(ptr %h, i64 %j)
  %kp = getelementptr i8, ptr %e, i64 16
  %eq = call i1 @rt_memeq(ptr %kp, ptr %key, i64 %ks)
  br i1 %eq, label %found, label %next
next:
  br label %loop
found:
  ret i64 %j
none:
  ret i64 -1
}

define internal i1 @rt_is_lru(ptr %h) #1 {
  %lru = call i64 @rt_field(ptr %h, i64 $lru)
  %islru = icmp ne i64 %lru, 0
  %is = and i1 %islru, $HAS_LRU
  ret i1 %is
}

; take an element out of the LRU list (maps.py's _lru_unlink)
define internal void @rt_lru_unlink(ptr %h, ptr %e) #0 {
entry:
  %prev = call i64 @rt_eword(ptr %e, i64 8)
  %next = call i64 @rt_eword(ptr %e, i64 12)
  %hasprev = icmp ne i64 %prev, 0
  br i1 %hasprev, label %p_elem, label %p_head
p_elem:
  %pe = call ptr @rt_elem1(ptr %h, i64 %prev)
  call void @rt_set_eword(ptr %pe, i64 12, i64 %next)
  br label %nx
p_head:
  call void @rt_set(ptr %h, i64 $lru_head, i64 %next)
  br label %nx
nx:
  %hasnext = icmp ne i64 %next, 0
  br i1 %hasnext, label %n_elem, label %n_tail
n_elem:
  %ne = call ptr @rt_elem1(ptr %h, i64 %next)
  call void @rt_set_eword(ptr %ne, i64 8, i64 %prev)
  br label %out
n_tail:
  call void @rt_set(ptr %h, i64 $lru_tail, i64 %prev)
  br label %out
out:
  call void @rt_set_eword(ptr %e, i64 8, i64 0)
  call void @rt_set_eword(ptr %e, i64 12, i64 0)
  ret void
}

; append an element to the LRU list as the most recent (maps.py's _lru_push)
define internal void @rt_lru_push(ptr %h, ptr %e) #0 {
entry:
  %n = call i64 @rt_elem_number(ptr %h, ptr %e)
  %n1 = add i64 %n, 1
  %tail = call i64 @rt_field(ptr %h, i64 $lru_tail)
  call void @rt_set_eword(ptr %e, i64 8, i64 %tail)
  call void @rt_set_eword(ptr %e, i64 12, i64 0)
  %has = icmp ne i64 %tail, 0
  br i1 %has, label %link, label %head
link:
  %te = call ptr @rt_elem1(ptr %h, i64 %tail)
  call void @rt_set_eword(ptr %te, i64 12, i64 %n1)
  br label %out
head:
  call void @rt_set(ptr %h, i64 $lru_head, i64 %n1)
  br label %out
out:
  call void @rt_set(ptr %h, i64 $lru_tail, i64 %n1)
  ret void
}

; an LRU map's (live) element was used now: it becomes the most recent
define internal void @rt_touch(ptr %h, ptr %e) #0 {
entry:
  %is = call i1 @rt_is_lru(ptr %h)
  br i1 %is, label %move, label %out
move:
  call void @rt_lru_unlink(ptr %h, ptr %e)
  call void @rt_lru_push(ptr %h, ptr %e)
  br label %out
out:
  ret void
}

define internal ptr @rt_hash_value(ptr %h, ptr %key, i64 %cpu, i1 %touch) #0 {
entry:
  %slot = call i64 @rt_probe(ptr %h, ptr %key, i1 1)
  %missing = icmp slt i64 %slot, 0
  br i1 %missing, label %none, label %found
found:
  %e = call ptr @rt_slot_elem(ptr %h, i64 %slot)
  br i1 %touch, label %touchit, label %value
touchit:
  call void @rt_touch(ptr %h, ptr %e)
  br label %value
value:
  %voff = call i64 @rt_field(ptr %h, i64 $value_offset)
  %area = getelementptr i8, ptr %e, i64 %voff
  %v = call ptr @rt_cpu_value(ptr %h, ptr %area, i64 %cpu)
  ret ptr %v
none:
  ret ptr null
}

; maps.py's _remove: the slot is marked deleted, the element heads the free list
define internal void @rt_hash_remove(ptr %h, i64 %slot) #0 {
entry:
  %e = call ptr @rt_slot_elem(ptr %h, i64 %slot)
  %is = call i1 @rt_is_lru(ptr %h)
  br i1 %is, label %unlink, label %free
unlink:
  call void @rt_lru_unlink(ptr %h, ptr %e)
  br label %free
free:
  %ip = call ptr @rt_index_at(ptr %h, i64 %slot)
  store i32 -1, ptr %ip
  call void @rt_set_eword(ptr %e, i64 0, i64 0)
  %head = call i64 @rt_field(ptr %h, i64 $free)
  call void @rt_set_eword(ptr %e, i64 4, i64 %head)
  %n = call i64 @rt_elem_number(ptr %h, ptr %e)
  %n1 = add i64 %n, 1
  call void @rt_set(ptr %h, i64 $free, i64 %n1)
  %c = call i64 @rt_field(ptr %h, i64 $count)
  %c1 = sub i64 %c, 1
  call void @rt_set(ptr %h, i64 $count, i64 %c1)
  %t = call i64 @rt_field(ptr %h, i64 $tombstones)
  %t1 = add i64 %t, 1
  call void @rt_set(ptr %h, i64 $tombstones, i64 %t1)
  ret void
}

; a new element (the map has room): the last freed, else the next fresh one
define internal i64 @rt_pop_free(ptr %h) #0 {
entry:
  %head = call i64 @rt_field(ptr %h, i64 $free)
  %has = icmp ne i64 %head, 0
  br i1 %has, label %reuse, label %fresh
reuse:
  %e = sub i64 %head, 1
  %p = call ptr @rt_elem(ptr %h, i64 %e)
  %next = call i64 @rt_eword(ptr %p, i64 4)
  call void @rt_set(ptr %h, i64 $free, i64 %next)
  ret i64 %e
fresh:
  %f = call i64 @rt_field(ptr %h, i64 $fresh)
  %f1 = add i64 %f, 1
  call void @rt_set(ptr %h, i64 $fresh, i64 %f1)
  ret i64 %f
}

; an LRU map is full: remove the least recently used element (the list's head)
define internal void @rt_evict(ptr %h) #0 {
entry:
  %head = call i64 @rt_field(ptr %h, i64 $lru_head)
  %none = icmp eq i64 %head, 0
  br i1 %none, label %ret, label %removeit
removeit:
  %e = call ptr @rt_elem1(ptr %h, i64 %head)
  %kp = getelementptr i8, ptr %e, i64 16
  %slot = call i64 @rt_probe(ptr %h, ptr %kp, i1 1)
  call void @rt_hash_remove(ptr %h, i64 %slot)
  br label %ret
ret:
  ret void
}

; re-place every live element in the index, in element order (maps.py's _rebuild)
define internal void @rt_hash_rebuild(ptr %h) #0 {
entry:
  %st = call ptr @rt_storage(ptr %h)
  %pool = call i64 @rt_field(ptr %h, i64 $pool)
  call void @rt_memzero(ptr %st, i64 %pool)
  call void @rt_set(ptr %h, i64 $tombstones, i64 0)
  %fresh = call i64 @rt_field(ptr %h, i64 $fresh)
  br label %loop
loop:
  %n = phi i64 [0, %entry], [%n1, %next]
  %end = icmp uge i64 %n, %fresh
  br i1 %end, label %out, label %look
look:
  %e = call ptr @rt_elem(ptr %h, i64 %n)
  %n1 = add i64 %n, 1
  %state = call i64 @rt_eword(ptr %e, i64 0)
  %live = icmp eq i64 %state, 1
  br i1 %live, label %place, label %next
place:
  %kp = getelementptr i8, ptr %e, i64 16
  %slot = call i64 @rt_probe(ptr %h, ptr %kp, i1 0)
  %ip = call ptr @rt_index_at(ptr %h, i64 %slot)
  %n32 = trunc i64 %n1 to i32
  store i32 %n32, ptr %ip
  br label %next
next:
  br label %loop
out:
  ret void
}

define internal i64 @rt_hash_update(ptr %h, ptr %key, ptr %value, i64 %flags, i64 %nbytes) #0 {
entry:
  %slot = call i64 @rt_probe(ptr %h, ptr %key, i1 1)
  %missing = icmp slt i64 %slot, 0
  br i1 %missing, label %insert, label %replace
replace:
  %noexist = icmp eq i64 %flags, 1
  %old = call ptr @rt_slot_elem(ptr %h, i64 %slot)
  br i1 %noexist, label %eexist, label %touchold
touchold:
  call void @rt_touch(ptr %h, ptr %old)
  br label %write
insert:
  %exist = icmp eq i64 %flags, 2
  br i1 %exist, label %enoent, label %room
room:
  %freehead = call i64 @rt_field(ptr %h, i64 $free)
  %fresh = call i64 @rt_field(ptr %h, i64 $fresh)
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %nofree = icmp eq i64 %freehead, 0
  %used = icmp uge i64 %fresh, %max
  %full = and i1 %nofree, %used
  br i1 %full, label %isfull, label %place
isfull:
  %canevict = call i1 @rt_is_lru(ptr %h)
  br i1 %canevict, label %evict, label %e2big
evict:
  call void @rt_evict(ptr %h)
  br label %place
place:
  %tomb = call i64 @rt_field(ptr %h, i64 $tombstones)
  %count = call i64 @rt_field(ptr %h, i64 $count)
  %slots = call i64 @rt_field(ptr %h, i64 $slots)
  %load0 = add i64 %tomb, %count
  %load = add i64 %load0, 1
  %s3 = mul i64 %slots, 3
  %limit = udiv i64 %s3, 4
  %crowded = icmp ugt i64 %load, %limit
  br i1 %crowded, label %rebuild, label %find
rebuild:
  call void @rt_hash_rebuild(ptr %h)
  br label %find
find:
  %fslot = call i64 @rt_probe(ptr %h, ptr %key, i1 0)
  %ip = call ptr @rt_index_at(ptr %h, i64 %fslot)
  %was = load i32, ptr %ip
  %wasdel = icmp eq i32 %was, -1
  br i1 %wasdel, label %untomb, label %fill
untomb:
  %t = call i64 @rt_field(ptr %h, i64 $tombstones)
  %t1 = sub i64 %t, 1
  call void @rt_set(ptr %h, i64 $tombstones, i64 %t1)
  br label %fill
fill:
  %n = call i64 @rt_pop_free(ptr %h)
  %new = call ptr @rt_elem(ptr %h, i64 %n)
  %stride = call i64 @rt_field(ptr %h, i64 $stride)
  call void @rt_memzero(ptr %new, i64 %stride)
  call void @rt_set_eword(ptr %new, i64 0, i64 1)
  %ks = call i64 @rt_field(ptr %h, i64 $key_size)
  %kp = getelementptr i8, ptr %new, i64 16
  call void @rt_memcopy(ptr %kp, ptr %key, i64 %ks)
  %n1 = add i64 %n, 1
  %n32 = trunc i64 %n1 to i32
  store i32 %n32, ptr %ip
  %c0 = call i64 @rt_field(ptr %h, i64 $count)
  %c1 = add i64 %c0, 1
  call void @rt_set(ptr %h, i64 $count, i64 %c1)
  %islru = call i1 @rt_is_lru(ptr %h)
  br i1 %islru, label %push, label %write
push:
  call void @rt_lru_push(ptr %h, ptr %new)
  br label %write
write:
  %e = phi ptr [%old, %touchold], [%new, %fill], [%new, %push]
  %voff = call i64 @rt_field(ptr %h, i64 $value_offset)
  %v = getelementptr i8, ptr %e, i64 %voff
  call void @rt_memcopy(ptr %v, ptr %value, i64 %nbytes)
  ret i64 0
e2big:
  ret i64 -7
eexist:
  ret i64 -17
enoent:
  ret i64 -2
}

define internal i64 @rt_hash_delete(ptr %h, ptr %key) #0 {
entry:
  %slot = call i64 @rt_probe(ptr %h, ptr %key, i1 1)
  %missing = icmp slt i64 %slot, 0
  br i1 %missing, label %enoent, label %del
del:
  call void @rt_hash_remove(ptr %h, i64 %slot)
  ret i64 0
enoent:
  ret i64 -2
}

; the first index slot from slot i on that names an element, or -1
define internal i64 @rt_next_live(ptr %h, i64 %from) #0 {
entry:
  %slots = call i64 @rt_field(ptr %h, i64 $slots)
  br label %loop
loop:
  %i = phi i64 [%from, %entry], [%i1, %skip]
  %done = icmp uge i64 %i, %slots
  br i1 %done, label %none, label %look
look:
  %e = call ptr @rt_slot_elem(ptr %h, i64 %i)
  %i1 = add i64 %i, 1
  %used = icmp ne ptr %e, null
  br i1 %used, label %found, label %skip
skip:
  br label %loop
found:
  ret i64 %i
none:
  ret i64 -1
}

; the first used slot of a slab (state 1) from slot i on, or -1 (lpm_trie)
define internal i64 @rt_next_used(ptr %h, i64 %from) #0 {
entry:
  %slots = call i64 @rt_field(ptr %h, i64 $slots)
  br label %loop
loop:
  %i = phi i64 [%from, %entry], [%i1, %skip]
  %done = icmp uge i64 %i, %slots
  br i1 %done, label %none, label %look
look:
  %slot = call ptr @rt_slot(ptr %h, i64 %i)
  %state = load i64, ptr %slot
  %i1 = add i64 %i, 1
  %used = icmp eq i64 %state, 1
  br i1 %used, label %found, label %skip
skip:
  br label %loop
found:
  ret i64 %i
none:
  ret i64 -1
}

; index order, as maps.py's _next_key (the first key when key is absent)
define internal i64 @rt_hash_next_key(ptr %h, ptr %key, ptr %next) #0 {
entry:
  %nokey = icmp eq ptr %key, null
  br i1 %nokey, label %scan, label %findkey
findkey:
  %slot = call i64 @rt_probe(ptr %h, ptr %key, i1 1)
  %k1 = add i64 %slot, 1
  br label %scan
scan:
  %from = phi i64 [0, %entry], [%k1, %findkey]
  %i = call i64 @rt_next_live(ptr %h, i64 %from)
  %none = icmp slt i64 %i, 0
  br i1 %none, label %enoent, label %copy
copy:
  %e = call ptr @rt_slot_elem(ptr %h, i64 %i)
  %kp = getelementptr i8, ptr %e, i64 16
  %ks = call i64 @rt_field(ptr %h, i64 $key_size)
  call void @rt_memcopy(ptr %next, ptr %kp, i64 %ks)
  ret i64 0
enoent:
  ret i64 -2
}

define internal i64 @rt_array_next_key(ptr %h, ptr %key, ptr %next) #0 {
entry:
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %nokey = icmp eq ptr %key, null
  br i1 %nokey, label %first, label %idx
idx:
  %i = call i64 @rt_index(ptr %h, ptr %key)
  %out = icmp slt i64 %i, 0
  br i1 %out, label %first, label %after
after:
  %n = add i64 %i, 1
  %end = icmp uge i64 %n, %max
  br i1 %end, label %enoent, label %store
store:
  %n32 = trunc i64 %n to i32
  store i32 %n32, ptr %next
  ret i64 0
first:
  store i32 0, ptr %next
  ret i64 0
enoent:
  ret i64 -2
}
"""

#: queues, stacks, bloom filters
VALUE_MAPS = r"""
; ---------------------------------------------------------------- queue, stack
; A ring of max_entries values: head = the oldest, count of them.

define internal ptr @rt_ring_value(ptr %h, i64 %k) #1 {
  %head = call i64 @rt_field(ptr %h, i64 $head)
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %a = add i64 %head, %k
  %i = urem i64 %a, %max
  %p = call ptr @rt_slot(ptr %h, i64 %i)
  ret ptr %p
}

define internal i64 @rt_queue_push(ptr %h, ptr %value, i64 %flags) #0 {
entry:
  %bad = and i64 %flags, -3
  %isbad = icmp ne i64 %bad, 0
  br i1 %isbad, label %einval, label %room
room:
  %count = call i64 @rt_field(ptr %h, i64 $count)
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %full = icmp uge i64 %count, %max
  br i1 %full, label %isfull, label %push
isfull:
  %exist = icmp ne i64 %flags, 0
  br i1 %exist, label %drop, label %e2big
drop:
  %head = call i64 @rt_field(ptr %h, i64 $head)
  %head1 = add i64 %head, 1
  %head2 = urem i64 %head1, %max
  call void @rt_set(ptr %h, i64 $head, i64 %head2)
  %cm = sub i64 %count, 1
  call void @rt_set(ptr %h, i64 $count, i64 %cm)
  br label %push
push:
  %n = call i64 @rt_field(ptr %h, i64 $count)
  %p = call ptr @rt_ring_value(ptr %h, i64 %n)
  %vs = call i64 @rt_field(ptr %h, i64 $value_size)
  call void @rt_memcopy(ptr %p, ptr %value, i64 %vs)
  %n1 = add i64 %n, 1
  call void @rt_set(ptr %h, i64 $count, i64 %n1)
  ret i64 0
einval:
  ret i64 -22
e2big:
  ret i64 -7
}

; pop (remove) or peek: the oldest value of a queue, the newest of a stack; empty: zeroes
define internal i64 @rt_queue_take(ptr %h, ptr %out, i1 %remove) #0 {
entry:
  %vs = call i64 @rt_field(ptr %h, i64 $value_size)
  %count = call i64 @rt_field(ptr %h, i64 $count)
  %empty = icmp eq i64 %count, 0
  br i1 %empty, label %enoent, label %take
take:
  %type = call i64 @rt_field(ptr %h, i64 $type)
  %stack = icmp eq i64 %type, $STACK
  %last = sub i64 %count, 1
  %k = select i1 %stack, i64 %last, i64 0
  %p = call ptr @rt_ring_value(ptr %h, i64 %k)
  call void @rt_memcopy(ptr %out, ptr %p, i64 %vs)
  br i1 %remove, label %removeit, label %done
removeit:
  call void @rt_set(ptr %h, i64 $count, i64 %last)
  br i1 %stack, label %done, label %advance
advance:
  %head = call i64 @rt_field(ptr %h, i64 $head)
  %head1 = add i64 %head, 1
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %head2 = urem i64 %head1, %max
  call void @rt_set(ptr %h, i64 $head, i64 %head2)
  br label %done
done:
  ret i64 0
enoent:
  call void @rt_memzero(ptr %out, i64 %vs)
  ret i64 -2
}

; ---------------------------------------------------------------- bloom_filter
; slots = the bits (a power of two), aux = the hash functions; bit i from fnv1a32(value, i)

define internal i64 @rt_bloom(ptr %h, ptr %value, i1 %add) #0 {
entry:
  %vs = call i64 @rt_field(ptr %h, i64 $value_size)
  %nbits = call i64 @rt_field(ptr %h, i64 $slots)
  %mask = sub i64 %nbits, 1
  %nh = call i64 @rt_field(ptr %h, i64 $aux)
  %st = call ptr @rt_storage(ptr %h)
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %next]
  %done = icmp uge i64 %i, %nh
  br i1 %done, label %yes, label %bit
bit:
  %hv = call i64 @rt_hash(ptr %value, i64 %vs, i64 %i)
  %b = and i64 %hv, %mask
  %byte = lshr i64 %b, 3
  %sh = and i64 %b, 7
  %bp = getelementptr i8, ptr %st, i64 %byte
  %old = load i8, ptr %bp
  %sh8 = trunc i64 %sh to i8
  %m = shl i8 1, %sh8
  %i1 = add i64 %i, 1
  br i1 %add, label %set, label %test
set:
  %new = or i8 %old, %m
  store i8 %new, ptr %bp
  br label %next
test:
  %has = and i8 %old, %m
  %zero = icmp eq i8 %has, 0
  br i1 %zero, label %no, label %next
next:
  br label %loop
yes:
  ret i64 0
no:
  ret i64 -2
}

; ---------------------------------------------------------------- push / pop / peek by type
define internal i64 @rt_push(ptr %h, ptr %value, i64 %flags) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 $type)
  switch i64 %type, label %einval [i64 $QUEUE, label %queue
                                   i64 $STACK, label %queue
                                   i64 $BLOOM, label %bloom]
queue:
  %r = call i64 @rt_queue_push(ptr %h, ptr %value, i64 %flags)
  ret i64 %r
bloom:
  %any = icmp eq i64 %flags, 0
  br i1 %any, label %add, label %einval
add:
  %rb = call i64 @rt_bloom(ptr %h, ptr %value, i1 1)
  ret i64 %rb
einval:
  ret i64 -22
}

define internal i64 @rt_take(ptr %h, ptr %value, i1 %remove) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 $type)
  switch i64 %type, label %einval [i64 $QUEUE, label %queue
                                   i64 $STACK, label %queue
                                   i64 $BLOOM, label %bloom]
queue:
  %r = call i64 @rt_queue_take(ptr %h, ptr %value, i1 %remove)
  ret i64 %r
bloom:
  br i1 %remove, label %einval, label %test
test:
  %rb = call i64 @rt_bloom(ptr %h, ptr %value, i1 0)
  ret i64 %rb
einval:
  ret i64 -22
}
"""

#: LPM tries
LPM_MAPS = r"""
; ---------------------------------------------------------------- lpm_trie
; Keys {u32 prefixlen; u8 data[key_size - 4]} (aux = the data's bits); a slot: u64 state
; (0 free, 1 used), the key as stored (data masked to its prefix), the value. A lookup scans
; every slot for the longest stored prefix of the key.

define internal i64 @rt_bit(ptr %p, i64 %i) #1 {
  %byte = lshr i64 %i, 3
  %bp = getelementptr i8, ptr %p, i64 %byte
  %b = load i8, ptr %bp
  %bw = zext i8 %b to i64
  %low = and i64 %i, 7
  %sh = sub i64 7, %low
  %s = lshr i64 %bw, %sh
  %r = and i64 %s, 1
  ret i64 %r
}

; whether the first n bits of a and b are equal
define internal i1 @rt_prefix_eq(ptr %a, ptr %b, i64 %n) #0 {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %same]
  %done = icmp uge i64 %i, %n
  br i1 %done, label %yes, label %test
test:
  %x = call i64 @rt_bit(ptr %a, i64 %i)
  %y = call i64 @rt_bit(ptr %b, i64 %i)
  %i1 = add i64 %i, 1
  %eq = icmp eq i64 %x, %y
  br i1 %eq, label %same, label %no
same:
  br label %loop
yes:
  ret i1 1
no:
  ret i1 0
}

define internal i64 @rt_lpm_plen(ptr %key) #1 {
  %p32 = load i32, ptr %key
  %p = zext i32 %p32 to i64
  ret i64 %p
}

; key as stored: the prefix length and the data with the bits past it cleared
define internal void @rt_lpm_masked(ptr %h, ptr %dst, ptr %key) #0 {
entry:
  %ks = call i64 @rt_field(ptr %h, i64 $key_size)
  %plen = call i64 @rt_lpm_plen(ptr %key)
  %p32 = trunc i64 %plen to i32
  store i32 %p32, ptr %dst
  %n = sub i64 %ks, 4
  br label %loop
loop:
  %j = phi i64 [0, %entry], [%j1, %byte]
  %done = icmp uge i64 %j, %n
  br i1 %done, label %out, label %byte
byte:
  %o = add i64 %j, 4
  %sp = getelementptr i8, ptr %key, i64 %o
  %dp = getelementptr i8, ptr %dst, i64 %o
  %b = load i8, ptr %sp
  %j8 = mul i64 %j, 8
  %left = sub i64 %plen, %j8
  %neg = icmp slt i64 %left, 0
  %left0 = select i1 %neg, i64 0, i64 %left
  %big = icmp ugt i64 %left0, 8
  %keep = select i1 %big, i64 8, i64 %left0
  %drop = sub i64 8, %keep
  %m64 = shl i64 255, %drop
  %m = trunc i64 %m64 to i8
  %v = and i8 %b, %m
  store i8 %v, ptr %dp
  %j1 = add i64 %j, 1
  br label %loop
out:
  ret void
}

; the used slot whose stored key is key (masked), or null
define internal ptr @rt_lpm_exact(ptr %h, ptr %mkey) #0 {
entry:
  %ks = call i64 @rt_field(ptr %h, i64 $key_size)
  br label %loop
loop:
  %from = phi i64 [0, %entry], [%i1, %next]
  %i = call i64 @rt_next_used(ptr %h, i64 %from)
  %none = icmp slt i64 %i, 0
  br i1 %none, label %miss, label %test
test:
  %slot = call ptr @rt_slot(ptr %h, i64 %i)
  %kp = getelementptr i8, ptr %slot, i64 8
  %eq = call i1 @rt_memeq(ptr %kp, ptr %mkey, i64 %ks)
  %i1 = add i64 %i, 1
  br i1 %eq, label %hit, label %next
next:
  br label %loop
hit:
  ret ptr %slot
miss:
  ret ptr null
}

define internal ptr @rt_lpm_value(ptr %h, ptr %key) #0 {
entry:
  %bits = call i64 @rt_field(ptr %h, i64 $aux)
  %kplen = call i64 @rt_lpm_plen(ptr %key)
  %over = icmp ugt i64 %kplen, %bits
  %plen = select i1 %over, i64 %bits, i64 %kplen
  %kdata = getelementptr i8, ptr %key, i64 4
  br label %loop
loop:
  %from = phi i64 [0, %entry], [%i1, %next]
  %best = phi ptr [null, %entry], [%best1, %next]
  %blen = phi i64 [-1, %entry], [%blen1, %next]
  %i = call i64 @rt_next_used(ptr %h, i64 %from)
  %done = icmp slt i64 %i, 0
  br i1 %done, label %out, label %test
test:
  %slot = call ptr @rt_slot(ptr %h, i64 %i)
  %kp = getelementptr i8, ptr %slot, i64 8
  %eplen = call i64 @rt_lpm_plen(ptr %kp)
  %i1 = add i64 %i, 1
  %fits = icmp ule i64 %eplen, %plen
  %longer = icmp sgt i64 %eplen, %blen
  %cand = and i1 %fits, %longer
  br i1 %cand, label %match, label %next
match:
  %edata = getelementptr i8, ptr %kp, i64 4
  %eq = call i1 @rt_prefix_eq(ptr %edata, ptr %kdata, i64 %eplen)
  br label %next
next:
  %take = phi i1 [0, %test], [%eq, %match]
  %best1 = select i1 %take, ptr %slot, ptr %best
  %blen1 = select i1 %take, i64 %eplen, i64 %blen
  br label %loop
out:
  %missing = icmp eq ptr %best, null
  br i1 %missing, label %none, label %value
value:
  %voff = call i64 @rt_field(ptr %h, i64 $value_offset)
  %v = getelementptr i8, ptr %best, i64 %voff
  ret ptr %v
none:
  ret ptr null
}

define internal i64 @rt_lpm_update(ptr %h, ptr %key, ptr %value, i64 %flags) #0 {
entry:
  %ks = call i64 @rt_field(ptr %h, i64 $key_size)
  %bits = call i64 @rt_field(ptr %h, i64 $aux)
  %f = and i64 %flags, -5
  %badf = icmp ugt i64 %f, 2
  %plen = call i64 @rt_lpm_plen(ptr %key)
  %badp = icmp ugt i64 %plen, %bits
  %bad = or i1 %badf, %badp
  br i1 %bad, label %einval, label %find
find:
  %mkey = alloca i8, i64 %ks, align 8
  call void @rt_lpm_masked(ptr %h, ptr %mkey, ptr %key)
  %slot = call ptr @rt_lpm_exact(ptr %h, ptr %mkey)
  %missing = icmp eq ptr %slot, null
  %mode = and i64 %flags, 3
  br i1 %missing, label %insert, label %replace
replace:
  %noexist = icmp eq i64 %mode, 1
  br i1 %noexist, label %eexist, label %write
insert:
  %exist = icmp eq i64 %mode, 2
  br i1 %exist, label %enoent, label %room
room:
  %free = call ptr @rt_free_lpm_slot(ptr %h)
  %nofree = icmp eq ptr %free, null
  br i1 %nofree, label %enospc, label %fill
fill:
  %kp = getelementptr i8, ptr %free, i64 8
  call void @rt_memcopy(ptr %kp, ptr %mkey, i64 %ks)
  store i64 1, ptr %free
  %c = call i64 @rt_field(ptr %h, i64 $count)
  %c1 = add i64 %c, 1
  call void @rt_set(ptr %h, i64 $count, i64 %c1)
  br label %write
write:
  %s = phi ptr [%slot, %replace], [%free, %fill]
  %voff = call i64 @rt_field(ptr %h, i64 $value_offset)
  %v = getelementptr i8, ptr %s, i64 %voff
  %vs = call i64 @rt_field(ptr %h, i64 $value_size)
  call void @rt_memcopy(ptr %v, ptr %value, i64 %vs)
  ret i64 0
einval:
  ret i64 -22
eexist:
  ret i64 -17
enoent:
  ret i64 -2
enospc:
  ret i64 -28
}

define internal ptr @rt_free_lpm_slot(ptr %h) #0 {
entry:
  %slots = call i64 @rt_field(ptr %h, i64 $slots)
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %used]
  %done = icmp uge i64 %i, %slots
  br i1 %done, label %none, label %look
look:
  %slot = call ptr @rt_slot(ptr %h, i64 %i)
  %state = load i64, ptr %slot
  %i1 = add i64 %i, 1
  %free = icmp eq i64 %state, 0
  br i1 %free, label %found, label %used
used:
  br label %loop
found:
  ret ptr %slot
none:
  ret ptr null
}

define internal i64 @rt_lpm_delete(ptr %h, ptr %key) #0 {
entry:
  %ks = call i64 @rt_field(ptr %h, i64 $key_size)
  %bits = call i64 @rt_field(ptr %h, i64 $aux)
  %plen = call i64 @rt_lpm_plen(ptr %key)
  %badp = icmp ugt i64 %plen, %bits
  br i1 %badp, label %enoent, label %find
find:
  %mkey = alloca i8, i64 %ks, align 8
  call void @rt_lpm_masked(ptr %h, ptr %mkey, ptr %key)
  %slot = call ptr @rt_lpm_exact(ptr %h, ptr %mkey)
  %missing = icmp eq ptr %slot, null
  br i1 %missing, label %enoent, label %del
del:
  store i64 0, ptr %slot
  %c = call i64 @rt_field(ptr %h, i64 $count)
  %c1 = sub i64 %c, 1
  call void @rt_set(ptr %h, i64 $count, i64 %c1)
  ret i64 0
enoent:
  ret i64 -2
}

; the trie's post-order (maps.py): a before b when a's bits sort first, a longer prefix
; before the shorter one it extends
define internal i1 @rt_lpm_before(ptr %a, ptr %b) #0 {
entry:
  %pa = call i64 @rt_lpm_plen(ptr %a)
  %pb = call i64 @rt_lpm_plen(ptr %b)
  %ashort = icmp ult i64 %pa, %pb
  %m = select i1 %ashort, i64 %pa, i64 %pb
  %da = getelementptr i8, ptr %a, i64 4
  %db = getelementptr i8, ptr %b, i64 4
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %same]
  %done = icmp uge i64 %i, %m
  br i1 %done, label %prefix, label %test
test:
  %x = call i64 @rt_bit(ptr %da, i64 %i)
  %y = call i64 @rt_bit(ptr %db, i64 %i)
  %i1 = add i64 %i, 1
  %eq = icmp eq i64 %x, %y
  br i1 %eq, label %same, label %differ
same:
  br label %loop
differ:
  %lt = icmp ult i64 %x, %y
  ret i1 %lt
prefix:
  %longer = icmp ugt i64 %pa, %pb
  ret i1 %longer
}

define internal i64 @rt_lpm_next_key(ptr %h, ptr %key, ptr %next) #0 {
entry:
  %ks = call i64 @rt_field(ptr %h, i64 $key_size)
  %bits = call i64 @rt_field(ptr %h, i64 $aux)
  %nokey = icmp eq ptr %key, null
  br i1 %nokey, label %scan, label %haskey
haskey:
  %plen = call i64 @rt_lpm_plen(ptr %key)
  %badp = icmp ugt i64 %plen, %bits
  br i1 %badp, label %scan, label %find
find:
  %mkey = alloca i8, i64 %ks, align 8
  call void @rt_lpm_masked(ptr %h, ptr %mkey, ptr %key)
  %slot = call ptr @rt_lpm_exact(ptr %h, ptr %mkey)
  %found = icmp ne ptr %slot, null
  %curkey = getelementptr i8, ptr %slot, i64 8
  %cur0 = select i1 %found, ptr %curkey, ptr null
  br label %scan
scan:
  %cur = phi ptr [null, %entry], [null, %haskey], [%cur0, %find]
  br label %loop
loop:
  %from = phi i64 [0, %scan], [%i1, %next_slot]
  %best = phi ptr [null, %scan], [%best1, %next_slot]
  %i = call i64 @rt_next_used(ptr %h, i64 %from)
  %done = icmp slt i64 %i, 0
  br i1 %done, label %out, label %test
test:
  %s = call ptr @rt_slot(ptr %h, i64 %i)
  %ek = getelementptr i8, ptr %s, i64 8
  %i1 = add i64 %i, 1
  %nocur = icmp eq ptr %cur, null
  br i1 %nocur, label %vsbest, label %aftercur
aftercur:
  %after = call i1 @rt_lpm_before(ptr %cur, ptr %ek)
  br i1 %after, label %vsbest, label %next_slot
vsbest:
  %nobest = icmp eq ptr %best, null
  br i1 %nobest, label %take, label %cmpbest
cmpbest:
  %first = call i1 @rt_lpm_before(ptr %ek, ptr %best)
  br i1 %first, label %take, label %next_slot
take:
  br label %next_slot
next_slot:
  %best1 = phi ptr [%best, %aftercur], [%best, %cmpbest], [%ek, %take]
  br label %loop
out:
  %none = icmp eq ptr %best, null
  br i1 %none, label %enoent, label %copy
copy:
  call void @rt_memcopy(ptr %next, ptr %best, i64 %ks)
  ret i64 0
enoent:
  ret i64 -2
}
"""

#: ring buffers
RINGBUF_MAPS = r"""
; ---------------------------------------------------------------- ringbuf
; max_entries data bytes and a mirror after them (a record that wraps stays contiguous and
; is copied back on commit); clock = producer, head = consumer positions; records carry
; the kernel's 8-byte header: u32 length | BUSY (1 << 31) | DISCARD (1 << 30), u32 page.

define internal ptr @rt_ringbuf_reserve(ptr %h, i64 %size) #0 {
entry:
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %prod = call i64 @rt_field(ptr %h, i64 $clock)
  %cons = call i64 @rt_field(ptr %h, i64 $head)
  %s8 = add i64 %size, 15
  %total = and i64 %s8, -8
  %zero = icmp eq i64 %size, 0
  %room = sub i64 %max, 8
  %big = icmp ugt i64 %size, %room
  %p1 = add i64 %prod, %total
  %used = sub i64 %p1, %cons
  %full = icmp uge i64 %used, %max
  %no0 = or i1 %zero, %big
  %no = or i1 %no0, %full
  br i1 %no, label %none, label %place
place:
  %mask = sub i64 %max, 1
  %off = and i64 %prod, %mask
  %st = call ptr @rt_storage(ptr %h)
  %rec = getelementptr i8, ptr %st, i64 %off
  %len32 = trunc i64 %size to i32
  %hdr = or i32 %len32, -2147483648
  store i32 %hdr, ptr %rec
  %pg = lshr i64 %off, 12
  %pg32 = trunc i64 %pg to i32
  %pgp = getelementptr i8, ptr %rec, i64 4
  store i32 %pg32, ptr %pgp
  call void @rt_set(ptr %h, i64 $clock, i64 %p1)
  %data = getelementptr i8, ptr %rec, i64 8
  ret ptr %data
none:
  ret ptr null
}

; the ring buffer holding record data at p, or null
define internal ptr @rt_ringbuf_of(ptr %p) #0 {
entry:
  %a = ptrtoint ptr %p to i64
  %n = load i64, ptr @jitbpf_map_count
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %next]
  %done = icmp uge i64 %i, %n
  br i1 %done, label %none, label %look
look:
  %hp = getelementptr ptr, ptr @jitbpf_map_headers, i64 %i
  %h = load ptr, ptr %hp
  %i1 = add i64 %i, 1
  %type = call i64 @rt_field(ptr %h, i64 $type)
  %isrb = icmp eq i64 %type, $RINGBUF
  br i1 %isrb, label %range, label %next
range:
  %st = call ptr @rt_storage(ptr %h)
  %s = ptrtoint ptr %st to i64
  %lo = add i64 %s, 8
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %m2 = mul i64 %max, 2
  %hi = add i64 %s, %m2
  %ge = icmp uge i64 %a, %lo
  %lt = icmp ult i64 %a, %hi
  %in = and i1 %ge, %lt
  br i1 %in, label %found, label %next
next:
  br label %loop
found:
  ret ptr %h
none:
  ret ptr null
}

; submit (discard = 0) or discard a reserved record
define internal void @rt_ringbuf_commit(ptr %data, i1 %discard) #0 {
entry:
  %h = call ptr @rt_ringbuf_of(ptr %data)
  %nomap = icmp eq ptr %h, null
  br i1 %nomap, label %out, label %rec
rec:
  %hp = getelementptr i8, ptr %data, i64 -8
  %hdr = load i32, ptr %hp
  %busy = icmp slt i32 %hdr, 0
  br i1 %busy, label %commit, label %out
commit:
  %len = and i32 %hdr, 1073741823
  %len64 = zext i32 %len to i64
  %st = call ptr @rt_storage(ptr %h)
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %hi = ptrtoint ptr %hp to i64
  %si = ptrtoint ptr %st to i64
  %off = sub i64 %hi, %si
  %e0 = add i64 %off, 8
  %end = add i64 %e0, %len64
  %wraps = icmp ugt i64 %end, %max
  br i1 %wraps, label %copyback, label %mark
copyback:
  %mirror = getelementptr i8, ptr %st, i64 %max
  %n = sub i64 %end, %max
  call void @rt_memcopy(ptr %st, ptr %mirror, i64 %n)
  br label %mark
mark:
  %flag = select i1 %discard, i32 1073741824, i32 0
  %new = or i32 %len, %flag
  store i32 %new, ptr %hp
  br label %out
out:
  ret void
}

; the next committed record from the consumer position (discarded ones skipped): its length,
; copied to out when size allows (consume: the position moves past it); 0: none; -ENOSPC
define internal i64 @rt_ringbuf_next(ptr %h, ptr %out, i64 %size, i1 %consume) #0 {
entry:
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %mask = sub i64 %max, 1
  %st = call ptr @rt_storage(ptr %h)
  %prod = call i64 @rt_field(ptr %h, i64 $clock)
  %cons = call i64 @rt_field(ptr %h, i64 $head)
  br label %loop
loop:
  %pos = phi i64 [%cons, %entry], [%pos1, %again]
  %more = icmp ult i64 %pos, %prod
  br i1 %more, label %look, label %none
look:
  %off = and i64 %pos, %mask
  %rp = getelementptr i8, ptr %st, i64 %off
  %hdr = load i32, ptr %rp
  %busy = icmp slt i32 %hdr, 0
  br i1 %busy, label %none, label %record
record:
  %len = and i32 %hdr, 1073741823
  %len64 = zext i32 %len to i64
  %s8 = add i64 %len64, 15
  %total = and i64 %s8, -8
  %pos1 = add i64 %pos, %total
  %dis = and i32 %hdr, 1073741824
  %discarded = icmp ne i32 %dis, 0
  br i1 %discarded, label %skip, label %deliver
skip:
  br i1 %consume, label %advance, label %again
advance:
  call void @rt_set(ptr %h, i64 $head, i64 %pos1)
  br label %again
again:
  br label %loop
deliver:
  %small = icmp ult i64 %size, %len64
  br i1 %small, label %enospc, label %copy
copy:
  %start = add i64 %off, 8
  %first0 = sub i64 %max, %start
  %fits = icmp ule i64 %len64, %first0
  %first = select i1 %fits, i64 %len64, i64 %first0
  %src = getelementptr i8, ptr %st, i64 %start
  call void @rt_memcopy(ptr %out, ptr %src, i64 %first)
  %rest = sub i64 %len64, %first
  %dst2 = getelementptr i8, ptr %out, i64 %first
  call void @rt_memcopy(ptr %dst2, ptr %st, i64 %rest)
  br i1 %consume, label %moved, label %done
moved:
  call void @rt_set(ptr %h, i64 $head, i64 %pos1)
  br label %done
done:
  ret i64 %len64
none:
  ret i64 0
enospc:
  ret i64 -28
}

define internal i64 @rt_ringbuf_query(ptr %h, i64 %flag) #0 {
entry:
  %prod = call i64 @rt_field(ptr %h, i64 $clock)
  %cons = call i64 @rt_field(ptr %h, i64 $head)
  switch i64 %flag, label %zero [i64 0, label %avail
                                 i64 1, label %size
                                 i64 2, label %consumer
                                 i64 3, label %producer]
avail:
  %d = sub i64 %prod, %cons
  ret i64 %d
size:
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  ret i64 %max
consumer:
  ret i64 %cons
producer:
  ret i64 %prod
zero:
  ret i64 0
}
"""

#: map operations by type, bpf_for_each_map_elem
DISPATCH = r"""
; ---------------------------------------------------------------- operations by map type
; touch: a program's lookup (moves an LRU element to the front; C lookups do not)
define internal ptr @rt_lookup(ptr %h, ptr %key, i64 %cpu, i1 %touch) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 $type)
  switch i64 %type, label %none [i64 $ARRAY, label %array
                                 i64 $HASH, label %hash
                                 i64 $LPM, label %lpm]
array:
  %a = call ptr @rt_array_value(ptr %h, ptr %key, i64 %cpu)
  ret ptr %a
hash:
  %v = call ptr @rt_hash_value(ptr %h, ptr %key, i64 %cpu, i1 %touch)
  ret ptr %v
lpm:
  %l = call ptr @rt_lpm_value(ptr %h, ptr %key)
  ret ptr %l
none:
  ret ptr null
}

; nbytes: what value holds (a program's: value_size, cpu 0's; C's: every cpu's)
define internal i64 @rt_update(ptr %h, ptr %key, ptr %value, i64 %flags, i64 %nbytes) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 $type)
  %f = and i64 %flags, -5
  %badflags = icmp ugt i64 %f, 2
  switch i64 %type, label %einval [i64 $ARRAY, label %array
                                   i64 $HASH, label %hash
                                   i64 $LPM, label %lpm
                                   i64 $QUEUE, label %push
                                   i64 $STACK, label %push
                                   i64 $BLOOM, label %push]
array:
  br i1 %badflags, label %einval, label %array_go
array_go:
  %a = call i64 @rt_array_update(ptr %h, ptr %key, ptr %value, i64 %flags, i64 %nbytes)
  ret i64 %a
hash:
  br i1 %badflags, label %einval, label %hash_locked
hash_locked:
  %nolock = icmp eq i64 %f, %flags
  br i1 %nolock, label %hash_go, label %einval
hash_go:
  %r = call i64 @rt_hash_update(ptr %h, ptr %key, ptr %value, i64 %flags, i64 %nbytes)
  ret i64 %r
lpm:
  %l = call i64 @rt_lpm_update(ptr %h, ptr %key, ptr %value, i64 %flags)
  ret i64 %l
push:
  %p = call i64 @rt_push(ptr %h, ptr %value, i64 %flags)
  ret i64 %p
einval:
  ret i64 -22
}

define internal i64 @rt_delete(ptr %h, ptr %key) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 $type)
  switch i64 %type, label %einval [i64 $HASH, label %hash
                                   i64 $LPM, label %lpm]
hash:
  %r = call i64 @rt_hash_delete(ptr %h, ptr %key)
  ret i64 %r
lpm:
  %l = call i64 @rt_lpm_delete(ptr %h, ptr %key)
  ret i64 %l
einval:
  ret i64 -22
}

define internal i64 @rt_next_key(ptr %h, ptr %key, ptr %next) #0 {
entry:
  %type = call i64 @rt_field(ptr %h, i64 $type)
  switch i64 %type, label %enoent [i64 $ARRAY, label %array
                                   i64 $HASH, label %hash
                                   i64 $LPM, label %lpm]
array:
  %a = call i64 @rt_array_next_key(ptr %h, ptr %key, ptr %next)
  ret i64 %a
hash:
  %r = call i64 @rt_hash_next_key(ptr %h, ptr %key, ptr %next)
  ret i64 %r
lpm:
  %l = call i64 @rt_lpm_next_key(ptr %h, ptr %key, ptr %next)
  ret i64 %l
enoent:
  ret i64 -2
}

; bpf_for_each_map_elem over an array or hash: callback(map, key, value, ctx) -> 0 go on
define internal i64 @rt_for_each(ptr %h, i64 %cb, i64 %ctx, ptr %rs) #0 {
entry:
  %m = ptrtoint ptr %h to i64
  %f = inttoptr i64 %cb to ptr
  %type = call i64 @rt_field(ptr %h, i64 $type)
  %isarray = icmp eq i64 %type, $ARRAY
  %slots = call i64 @rt_field(ptr %h, i64 $slots)
  %voff = call i64 @rt_field(ptr %h, i64 $value_offset)
  br label %loop
loop:
  %from = phi i64 [0, %entry], [%i1, %go_on]
  %n = phi i64 [0, %entry], [%n1, %go_on]
  br i1 %isarray, label %anext, label %hnext
anext:
  %adone = icmp uge i64 %from, %slots
  %ai = select i1 %adone, i64 -1, i64 %from
  br label %elem
hnext:
  %hi = call i64 @rt_next_live(ptr %h, i64 %from)
  br label %elem
elem:
  %i = phi i64 [%ai, %anext], [%hi, %hnext]
  %done = icmp slt i64 %i, 0
  br i1 %done, label %out, label %which
which:
  br i1 %isarray, label %aslot, label %hslot
aslot:
  %as = call ptr @rt_slot(ptr %h, i64 %i)
  br label %call
hslot:
  %hs = call ptr @rt_slot_elem(ptr %h, i64 %i)
  br label %call
call:
  %slot = phi ptr [%as, %aslot], [%hs, %hslot]
  %i32 = trunc i64 %i to i32
  store i32 %i32, ptr @jitbpf_iter_key
  %hkey = getelementptr i8, ptr %slot, i64 16
  %key = select i1 %isarray, ptr @jitbpf_iter_key, ptr %hkey
  %value = getelementptr i8, ptr %slot, i64 %voff
  call void @rt_touch(ptr %h, ptr %slot)
  %k = ptrtoint ptr %key to i64
  %v = ptrtoint ptr %value to i64
  %n1 = add i64 %n, 1
  %i1 = add i64 %i, 1
  %r = call i64 %f(i64 %m, i64 %k, i64 %v, i64 %ctx, i64 0, ptr %rs)
  %stop = icmp ne i64 %r, 0
  %cell = load volatile i64, ptr %rs
  %unwind = icmp ne i64 %cell, 0
  %leave = or i1 %stop, %unwind
  br i1 %leave, label %stopped, label %go_on
go_on:
  br label %loop
stopped:
  ret i64 %n1
out:
  ret i64 %n
}
"""

#: BPF helpers
HELPERS = r"""
; ---------------------------------------------------------------- BPF helpers (the helper ABI)
define dso_local i64 @bpf_map_lookup_elem(i64 %m, i64 %k, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %key = inttoptr i64 %k to ptr
  %v = call ptr @rt_lookup(ptr %h, ptr %key, i64 0, i1 1)
  %r = ptrtoint ptr %v to i64
  ret i64 %r
}

define dso_local i64 @bpf_map_lookup_percpu_elem(i64 %m, i64 %k, i64 %cpu, i64 %a4, i64 %a5, ptr %rs) #0 {
entry:
  %h = inttoptr i64 %m to ptr
  %key = inttoptr i64 %k to ptr
  %ncpus = call i64 @rt_field(ptr %h, i64 $ncpus)
  %pc = call i64 @rt_field(ptr %h, i64 $percpu)
  %percpu = icmp ne i64 %pc, 0
  %incpu = icmp ult i64 %cpu, %ncpus
  %ok = and i1 %percpu, %incpu
  br i1 %ok, label %look, label %none
look:
  %v = call ptr @rt_lookup(ptr %h, ptr %key, i64 %cpu, i1 1)
  %r = ptrtoint ptr %v to i64
  ret i64 %r
none:
  ret i64 0
}

define dso_local i64 @bpf_map_update_elem(i64 %m, i64 %k, i64 %v, i64 %f, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %key = inttoptr i64 %k to ptr
  %val = inttoptr i64 %v to ptr
  %vs = call i64 @rt_field(ptr %h, i64 $value_size)
  %r = call i64 @rt_update(ptr %h, ptr %key, ptr %val, i64 %f, i64 %vs)
  ret i64 %r
}

define dso_local i64 @bpf_map_delete_elem(i64 %m, i64 %k, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %key = inttoptr i64 %k to ptr
  %r = call i64 @rt_delete(ptr %h, ptr %key)
  ret i64 %r
}

define dso_local i64 @bpf_map_push_elem(i64 %m, i64 %v, i64 %f, i64 %a4, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %val = inttoptr i64 %v to ptr
  %r = call i64 @rt_push(ptr %h, ptr %val, i64 %f)
  ret i64 %r
}

define dso_local i64 @bpf_map_pop_elem(i64 %m, i64 %v, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %val = inttoptr i64 %v to ptr
  %r = call i64 @rt_take(ptr %h, ptr %val, i1 1)
  ret i64 %r
}

define dso_local i64 @bpf_map_peek_elem(i64 %m, i64 %v, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %h = inttoptr i64 %m to ptr
  %val = inttoptr i64 %v to ptr
  %r = call i64 @rt_take(ptr %h, ptr %val, i1 0)
  ret i64 %r
}

define dso_local i64 @bpf_for_each_map_elem(i64 %m, i64 %cb, i64 %ctx, i64 %flags, i64 %a5, ptr %rs) #0 {
entry:
  %bad = icmp ne i64 %flags, 0
  br i1 %bad, label %einval, label %go
go:
  %h = inttoptr i64 %m to ptr
  %r = call i64 @rt_for_each(ptr %h, i64 %cb, i64 %ctx, ptr %rs)
  ret i64 %r
einval:
  ret i64 -22
}

; bpf_loop: callback(i, ctx) for i below nr_loops until it returns non-zero (then i + 1)
define dso_local i64 @bpf_loop(i64 %nr, i64 %cb, i64 %ctx, i64 %flags, i64 %a5, ptr %rs) #0 {
entry:
  %bad = icmp ne i64 %flags, 0
  br i1 %bad, label %einval, label %count
count:
  %n32 = trunc i64 %nr to i32
  %n = zext i32 %n32 to i64
  %big = icmp ugt i64 %n, $MAX_LOOPS
  br i1 %big, label %e2big, label %loop
loop:
  %i = phi i64 [0, %count], [%i1, %go_on]
  %done = icmp uge i64 %i, %n
  br i1 %done, label %all, label %call
call:
  %f = inttoptr i64 %cb to ptr
  %r = call i64 %f(i64 %i, i64 %ctx, i64 0, i64 0, i64 0, ptr %rs)
  %i1 = add i64 %i, 1
  %stop = icmp ne i64 %r, 0
  br i1 %stop, label %stopped, label %unwind
unwind:
  %cell = load volatile i64, ptr %rs
  %leaving = icmp ne i64 %cell, 0
  br i1 %leaving, label %left, label %go_on
go_on:
  br label %loop
stopped:
  ret i64 %i1
left:
  ret i64 0
all:
  ret i64 %n
einval:
  ret i64 -22
e2big:
  ret i64 -7
}

; the ring buffer of a program's map argument, or null
define internal ptr @rt_ringbuf_arg(i64 %m) #1 {
  %h = inttoptr i64 %m to ptr
  %type = call i64 @rt_field(ptr %h, i64 $type)
  %is = icmp eq i64 %type, $RINGBUF
  %r = select i1 %is, ptr %h, ptr null
  ret ptr %r
}

define dso_local i64 @bpf_ringbuf_reserve(i64 %m, i64 %size, i64 %flags, i64 %a4, i64 %a5, ptr %rs) #0 {
entry:
  %h = call ptr @rt_ringbuf_arg(i64 %m)
  %nomap = icmp eq ptr %h, null
  %bad = icmp ne i64 %flags, 0
  %no = or i1 %nomap, %bad
  br i1 %no, label %none, label %go
go:
  %p = call ptr @rt_ringbuf_reserve(ptr %h, i64 %size)
  %r = ptrtoint ptr %p to i64
  ret i64 %r
none:
  ret i64 0
}

define dso_local i64 @bpf_ringbuf_submit(i64 %d, i64 %flags, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %p = inttoptr i64 %d to ptr
  call void @rt_ringbuf_commit(ptr %p, i1 0)
  ret i64 0
}

define dso_local i64 @bpf_ringbuf_discard(i64 %d, i64 %flags, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  %p = inttoptr i64 %d to ptr
  call void @rt_ringbuf_commit(ptr %p, i1 1)
  ret i64 0
}

define dso_local i64 @bpf_ringbuf_output(i64 %m, i64 %d, i64 %size, i64 %flags, i64 %a5, ptr %rs) #0 {
entry:
  %h = call ptr @rt_ringbuf_arg(i64 %m)
  %nomap = icmp eq ptr %h, null
  br i1 %nomap, label %eagain, label %reserve
reserve:
  %rec = call ptr @rt_ringbuf_reserve(ptr %h, i64 %size)
  %full = icmp eq ptr %rec, null
  br i1 %full, label %eagain, label %copy
copy:
  %src = inttoptr i64 %d to ptr
  call void @rt_memcopy(ptr %rec, ptr %src, i64 %size)
  call void @rt_ringbuf_commit(ptr %rec, i1 0)
  ret i64 0
eagain:
  ret i64 -11
}

define dso_local i64 @bpf_ringbuf_query(i64 %m, i64 %flag, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
entry:
  %h = call ptr @rt_ringbuf_arg(i64 %m)
  %nomap = icmp eq ptr %h, null
  br i1 %nomap, label %zero, label %go
go:
  %r = call i64 @rt_ringbuf_query(ptr %h, i64 %flag)
  ret i64 %r
zero:
  ret i64 0
}

; programs run on cpu 0 (as in maps.py's runtime): the per-cpu maps' first values
define dso_local i64 @bpf_get_smp_processor_id(i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
  ret i64 0
}

; bpf_tail_call: on success the program ends (the unwind cell) and its core runs the target
; next; fails (-ENOENT, the program goes on) for an empty slot or after 33 tail calls
define dso_local i64 @bpf_tail_call(i64 %ctx, i64 %m, i64 %index, i64 %a4, i64 %a5, ptr %rs) #0 {
entry:
  %h = inttoptr i64 %m to ptr
  %type = call i64 @rt_field(ptr %h, i64 $type)
  %isprog = icmp eq i64 %type, $PROG_ARRAY
  br i1 %isprog, label %slot, label %enoent
slot:
  %i32 = trunc i64 %index to i32
  %i = zext i32 %i32 to i64
  %max = call i64 @rt_field(ptr %h, i64 $max_entries)
  %in = icmp ult i64 %i, %max
  br i1 %in, label %target, label %enoent
target:
  %p = call ptr @rt_slot(ptr %h, i64 %i)
  %t = load i64, ptr %p
  %empty = icmp eq i64 %t, 0
  %n = load i64, ptr @jitbpf_tail_calls
  %spent = icmp uge i64 %n, $MAX_TAIL_CALLS
  %no = or i1 %empty, %spent
  br i1 %no, label %enoent, label %go
go:
  %n1 = add i64 %n, 1
  store i64 %n1, ptr @jitbpf_tail_calls
  store i64 %t, ptr @jitbpf_tail_target
  store volatile i64 1, ptr %rs
  ret i64 0
enoent:
  ret i64 -2
}
"""

#: packet helpers
CONTEXTS = r"""
; ---------------------------------------------------------------- packet contexts
; The frame of the running packet program (set by its core): the buffer's start, the end
; the packet may grow to (xdp), the packet window of LD_ABS/LD_IND and skb helpers.
@jitbpf_frame_start = internal global i64 0, align 8
@jitbpf_frame_end = internal global i64 0, align 8
@jitbpf_skb_data = internal global i64 0, align 8
@jitbpf_skb_len = internal global i64 0, align 8
; LD_ABS/LD_IND out of the packet: the program ends with r0 = 0
@jitbpf_end_pending = internal global i64 0, align 8

define internal void @rt_memmove(ptr %d, ptr %s, i64 %n) #0 {
entry:
  %di = ptrtoint ptr %d to i64
  %si = ptrtoint ptr %s to i64
  %forward = icmp ule i64 %di, %si
  br i1 %forward, label %fwd, label %back
fwd:
  call void @rt_memcopy(ptr %d, ptr %s, i64 %n)
  ret void
back:
  %i = phi i64 [%n, %entry], [%i1, %body]
  %done = icmp eq i64 %i, 0
  br i1 %done, label %out, label %body
body:
  %i1 = sub i64 %i, 1
  %ps = getelementptr i8, ptr %s, i64 %i1
  %pd = getelementptr i8, ptr %d, i64 %i1
  %x = load i8, ptr %ps
  store i8 %x, ptr %pd
  br label %back
out:
  ret void
}

; xdp_md fields 0 data, 1 data_end, 2 data_meta (u32 addresses)
define internal i64 @rt_xdp_get(i64 %ctx, i64 %i) #1 {
  %md = inttoptr i64 %ctx to ptr
  %p = getelementptr i32, ptr %md, i64 %i
  %v = load i32, ptr %p
  %r = zext i32 %v to i64
  ret i64 %r
}

define internal void @rt_xdp_put(i64 %ctx, i64 %i, i64 %v) #1 {
  %md = inttoptr i64 %ctx to ptr
  %p = getelementptr i32, ptr %md, i64 %i
  %v32 = trunc i64 %v to i32
  store i32 %v32, ptr %p
  ret void
}

; a helper's s32 argument, and whether v falls outside [lo, hi] (signed)
define internal i64 @rt_s32(i64 %d) #1 {
  %d32 = trunc i64 %d to i32
  %v = sext i32 %d32 to i64
  ret i64 %v
}

define internal i1 @rt_outside(i64 %v, i64 %lo, i64 %hi) #1 {
  %under = icmp slt i64 %v, %lo
  %over = icmp sgt i64 %v, %hi
  %out = or i1 %under, %over
  ret i1 %out
}

; XdpFrame.xdp_adjust_head: Linux's checks; the metadata moves with the data
define dso_local i64 @bpf_xdp_adjust_head(i64 %ctx, i64 %d, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
entry:
  %delta = call i64 @rt_s32(i64 %d)
  %data = call i64 @rt_xdp_get(i64 %ctx, i64 0)
  %end = call i64 @rt_xdp_get(i64 %ctx, i64 1)
  %meta = call i64 @rt_xdp_get(i64 %ctx, i64 2)
  %metalen = sub i64 %data, %meta
  %new = add i64 %data, %delta
  %start = load i64, ptr @jitbpf_frame_start
  %lo0 = add i64 %start, $XDP_FRAME_SIZE
  %lo = add i64 %lo0, %metalen
  %hi = sub i64 %end, $ETH_HLEN
  %bad = call i1 @rt_outside(i64 %new, i64 %lo, i64 %hi)
  br i1 %bad, label %einval, label %move
move:
  %nmeta = add i64 %meta, %delta
  %dst = inttoptr i64 %nmeta to ptr
  %src = inttoptr i64 %meta to ptr
  call void @rt_memmove(ptr %dst, ptr %src, i64 %metalen)
  call void @rt_xdp_put(i64 %ctx, i64 0, i64 %new)
  call void @rt_xdp_put(i64 %ctx, i64 2, i64 %nmeta)
  ret i64 0
einval:
  ret i64 -22
}

define dso_local i64 @bpf_xdp_adjust_meta(i64 %ctx, i64 %d, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
entry:
  %delta = call i64 @rt_s32(i64 %d)
  %data = call i64 @rt_xdp_get(i64 %ctx, i64 0)
  %meta = call i64 @rt_xdp_get(i64 %ctx, i64 2)
  %new = add i64 %meta, %delta
  %start = load i64, ptr @jitbpf_frame_start
  %lo = add i64 %start, $XDP_FRAME_SIZE
  %bad = call i1 @rt_outside(i64 %new, i64 %lo, i64 %data)
  br i1 %bad, label %einval, label %size
size:
  %len = sub i64 %data, %new
  %odd = and i64 %len, 3
  %unaligned = icmp ne i64 %odd, 0
  %big = icmp sgt i64 %len, 32
  %nope = or i1 %unaligned, %big
  br i1 %nope, label %eacces, label %set
set:
  call void @rt_xdp_put(i64 %ctx, i64 2, i64 %new)
  ret i64 0
einval:
  ret i64 -22
eacces:
  ret i64 -13
}

define dso_local i64 @bpf_xdp_adjust_tail(i64 %ctx, i64 %d, i64 %a3, i64 %a4, i64 %a5, ptr %rs) #0 {
entry:
  %delta = call i64 @rt_s32(i64 %d)
  %data = call i64 @rt_xdp_get(i64 %ctx, i64 0)
  %end = call i64 @rt_xdp_get(i64 %ctx, i64 1)
  %new = add i64 %end, %delta
  %limit = load i64, ptr @jitbpf_frame_end
  %lo = add i64 %data, $ETH_HLEN
  %bad = call i1 @rt_outside(i64 %new, i64 %lo, i64 %limit)
  br i1 %bad, label %einval, label %grow
grow:
  %grows = icmp sgt i64 %delta, 0
  br i1 %grows, label %zero, label %set
zero:
  %p = inttoptr i64 %end to ptr
  call void @rt_memzero(ptr %p, i64 %delta)
  br label %set
set:
  call void @rt_xdp_put(i64 %ctx, i64 1, i64 %new)
  ret i64 0
einval:
  ret i64 -22
}

; csum_partial: a 32-bit one's complement sum of little-endian words, seed added (helpers.py)
define internal i64 @rt_csum_partial(ptr %p, i64 %n, i64 %seed) #0 {
entry:
  %s0 = and i64 %seed, 4294967295
  br label %loop
loop:
  %j = phi i64 [0, %entry], [%j1, %byte]
  %t = phi i64 [%s0, %entry], [%t1, %byte]
  %done = icmp uge i64 %j, %n
  br i1 %done, label %fold, label %byte
byte:
  %bp = getelementptr i8, ptr %p, i64 %j
  %b = load i8, ptr %bp
  %bw = zext i8 %b to i64
  %lane = and i64 %j, 3
  %sh = mul i64 %lane, 8
  %v = shl i64 %bw, %sh
  %t1 = add i64 %t, %v
  %j1 = add i64 %j, 1
  br label %loop
fold:
  %f = phi i64 [%t, %loop], [%f1, %carry]
  %hi = lshr i64 %f, 32
  %more = icmp ne i64 %hi, 0
  br i1 %more, label %carry, label %out
carry:
  %lo = and i64 %f, 4294967295
  %f1 = add i64 %lo, %hi
  br label %fold
out:
  ret i64 %f
}

define internal i64 @rt_fold16(i64 %t) #1 {
  %lo = and i64 %t, 65535
  %hi = lshr i64 %t, 16
  %r = add i64 %lo, %hi
  ret i64 %r
}

; bpf_csum_diff: seed + sum(to) - sum(from), folded to 16 bits, not inverted (Linux 6.13+)
define dso_local i64 @bpf_csum_diff(i64 %from, i64 %fsz, i64 %to, i64 %tsz, i64 %seed, ptr %rs) #0 {
entry:
  %fs32 = trunc i64 %fsz to i32
  %fs = zext i32 %fs32 to i64
  %ts32 = trunc i64 %tsz to i32
  %ts = zext i32 %ts32 to i64
  %fp = inttoptr i64 %from to ptr
  %tp = inttoptr i64 %to to ptr
  %hasf = icmp ne i64 %fs, 0
  %hast = icmp ne i64 %ts, 0
  br i1 %hasf, label %withfrom, label %nofrom
withfrom:
  br i1 %hast, label %both, label %fromonly
both:
  %new = call i64 @rt_csum_partial(ptr %tp, i64 %ts, i64 %seed)
  %old = call i64 @rt_csum_partial(ptr %fp, i64 %fs, i64 0)
  %nold = xor i64 %old, 4294967295
  %sum = add i64 %new, %nold
  %slo = and i64 %sum, 4294967295
  %shi = lshr i64 %sum, 32
  %tb = add i64 %slo, %shi
  br label %fold
fromonly:
  %nseed = xor i64 %seed, -1
  %o = call i64 @rt_csum_partial(ptr %fp, i64 %fs, i64 %nseed)
  %to1 = xor i64 %o, 4294967295
  br label %fold
nofrom:
  br i1 %hast, label %toonly, label %none
toonly:
  %tt = call i64 @rt_csum_partial(ptr %tp, i64 %ts, i64 %seed)
  br label %fold
none:
  %tn = and i64 %seed, 4294967295
  br label %fold
fold:
  %total = phi i64 [%tb, %both], [%to1, %fromonly], [%tt, %toonly], [%tn, %none]
  %f1 = call i64 @rt_fold16(i64 %total)
  %f2 = call i64 @rt_fold16(i64 %f1)
  ret i64 %f2
}

; LD_ABS / LD_IND: a big-endian load of size bytes at offset in the packet window
define dso_local i64 @jitbpf_load_packet(i64 %ctx, i64 %offset, i64 %size, i64 %pc, i64 %a5, ptr %rs) #0 {
entry:
  %len = load i64, ptr @jitbpf_skb_len
  %room = sub i64 %len, %size
  %neg = icmp slt i64 %offset, 0
  %past = icmp sgt i64 %offset, %room
  %out = or i1 %neg, %past
  br i1 %out, label %end, label %load
load:
  %data = load i64, ptr @jitbpf_skb_data
  %a = add i64 %data, %offset
  %p = inttoptr i64 %a to ptr
  br label %loop
loop:
  %i = phi i64 [0, %load], [%i1, %byte]
  %v = phi i64 [0, %load], [%v1, %byte]
  %done = icmp uge i64 %i, %size
  br i1 %done, label %ret, label %byte
byte:
  %bp = getelementptr i8, ptr %p, i64 %i
  %b = load i8, ptr %bp
  %bw = zext i8 %b to i64
  %vs = shl i64 %v, 8
  %v1 = or i64 %vs, %bw
  %i1 = add i64 %i, 1
  br label %loop
ret:
  ret i64 %v
end:
  store i64 1, ptr @jitbpf_end_pending
  store volatile i64 1, ptr %rs
  ret i64 0
}

define dso_local i64 @bpf_skb_load_bytes(i64 %skb, i64 %o, i64 %to, i64 %length, i64 %a5, ptr %rs) #0 {
entry:
  %o32 = trunc i64 %o to i32
  %offset = zext i32 %o32 to i64
  %len = load i64, ptr @jitbpf_skb_len
  %dst = inttoptr i64 %to to ptr
  %zero = icmp eq i64 %length, 0
  %end = add i64 %offset, %length
  %past = icmp ugt i64 %end, %len
  %bad = or i1 %zero, %past
  br i1 %bad, label %efault, label %copy
copy:
  %data = load i64, ptr @jitbpf_skb_data
  %a = add i64 %data, %offset
  %src = inttoptr i64 %a to ptr
  call void @rt_memcopy(ptr %dst, ptr %src, i64 %length)
  ret i64 0
efault:
  %l32 = trunc i64 %length to i32
  %n = zext i32 %l32 to i64
  call void @rt_memzero(ptr %dst, i64 %n)
  ret i64 -14
}
"""

#: runtime calls, errors, the C API
RUNTIME_CALLS = r"""
; ---------------------------------------------------------------- runtime calls, errors
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
  call void @rt_fail(i64 $E_ACCESS, i64 %pc, i64 %address, ptr %rs)
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

; ---------------------------------------------------------------- the C API: maps by name
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

; what the C API functions do once they have the map (runtime_ir.C_API_FUNCTIONS wraps them)
define internal i64 @rt_c_lookup(ptr %h, ptr %key, ptr %value) #0 {
entry:
  %v = call ptr @rt_lookup(ptr %h, ptr %key, i64 0, i1 0)
  %missing = icmp eq ptr %v, null
  br i1 %missing, label %enoent, label %copy
copy:
  %vs = call i64 @rt_field(ptr %h, i64 $user_value_size)
  call void @rt_memcopy(ptr %value, ptr %v, i64 %vs)
  ret i64 0
enoent:
  ret i64 -2
}

define internal i64 @rt_c_update(ptr %h, ptr %key, ptr %value, i64 %flags) #0 {
  %vs = call i64 @rt_field(ptr %h, i64 $user_value_size)
  %r = call i64 @rt_update(ptr %h, ptr %key, ptr %value, i64 %flags, i64 %vs)
  ret i64 %r
}

define internal i64 @rt_c_consume(ptr %h, ptr %out, i64 %size) #0 {
entry:
  %m = ptrtoint ptr %h to i64
  %rb = call ptr @rt_ringbuf_arg(i64 %m)
  %norb = icmp eq ptr %rb, null
  br i1 %norb, label %einval, label %go
go:
  %r = call i64 @rt_ringbuf_next(ptr %rb, ptr %out, i64 %size, i1 1)
  ret i64 %r
einval:
  ret i64 -22
}
"""

#: a run: its start, tail calls, its end; contexts
RUNS = r"""
; ---------------------------------------------------------------- runs
; one region table entry (bounds checks) of the run state
define internal void @rt_region(ptr %rs, i64 %start, i64 %end, i64 %writable) #1 {
  %cp = getelementptr i8, ptr %rs, i64 $RUN_COUNT
  %n = load i64, ptr %cp
  %e = mul i64 %n, $TABLE_ENTRY
  %o = add i64 %e, $RUN_TABLE
  %p = getelementptr i8, ptr %rs, i64 %o
  store i64 %start, ptr %p
  %p1 = getelementptr i8, ptr %p, i64 8
  store i64 %end, ptr %p1
  %p2 = getelementptr i8, ptr %p, i64 16
  store i64 %writable, ptr %p2
  %n1 = add i64 %n, 1
  store i64 %n1, ptr %cp
  ret void
}

define internal void @rt_rs_set(ptr %rs, i64 %offset, i64 %v) #1 {
  %p = getelementptr i8, ptr %rs, i64 %offset
  store i64 %v, ptr %p
  ret void
}

; a run's start: no error, a zeroed BPF stack, the run state, the maps as regions
define internal void @rt_begin(ptr %rs, i64 %budget) #0 {
entry:
  store i64 0, ptr @jitbpf_err_code
  store i64 0, ptr @jitbpf_err_pc
  store i64 0, ptr @jitbpf_err_value
  store i64 0, ptr @jitbpf_tail_target
  store i64 0, ptr @jitbpf_tail_calls
  store i64 0, ptr @jitbpf_running
  store i64 0, ptr @jitbpf_end_pending
  call void @rt_memzero(ptr @jitbpf_stack, i64 $STACK_BYTES)
  %stack = ptrtoint ptr @jitbpf_stack to i64
  %top = add i64 %stack, $STACK_BYTES
  call void @rt_rs_set(ptr %rs, i64 $RUN_UNWIND, i64 0)
  call void @rt_rs_set(ptr %rs, i64 $RUN_DEPTH, i64 0)
  call void @rt_rs_set(ptr %rs, i64 $RUN_BUDGET, i64 %budget)
  call void @rt_rs_set(ptr %rs, i64 $RUN_STACK_TOP, i64 %top)
  call void @rt_rs_set(ptr %rs, i64 $RUN_SP, i64 %top)
  call void @rt_rs_set(ptr %rs, i64 $RUN_STOP, i64 0)
  call void @rt_rs_set(ptr %rs, i64 $RUN_SPENT, i64 0)
  call void @rt_rs_set(ptr %rs, i64 $RUN_COUNT, i64 0)
  %n = load i64, ptr @jitbpf_map_count
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %map]
  %done = icmp uge i64 %i, %n
  br i1 %done, label %key, label %map
map:
  %hp = getelementptr ptr, ptr @jitbpf_map_headers, i64 %i
  %h = load ptr, ptr %hp
  %st = call ptr @rt_storage(ptr %h)
  %s = ptrtoint ptr %st to i64
  %bytes = call i64 @rt_field(ptr %h, i64 $bytes)
  %e = add i64 %s, %bytes
  %ro = call i64 @rt_field(ptr %h, i64 $readonly)
  %w = xor i64 %ro, 1
  call void @rt_region(ptr %rs, i64 %s, i64 %e, i64 %w)
  %i1 = add i64 %i, 1
  br label %loop
key:
  %k = ptrtoint ptr @jitbpf_iter_key to i64
  %ke = add i64 %k, 8
  call void @rt_region(ptr %rs, i64 %k, i64 %ke, i64 0)
  ret void
}

; the program, then the targets of its tail calls (each with the whole budget, as interp
; runs them); r0 = 0 when LD_ABS ended it
define internal i64 @rt_run(ptr %program, i64 %r1, i64 %r2, i64 %budget, ptr %rs) #0 {
entry:
  %first = call i64 %program(i64 %r1, i64 %r2, i64 0, i64 0, i64 0, ptr %rs)
  br label %settle
settle:
  %r0 = phi i64 [%first, %entry], [%next, %tail]
  %t = load i64, ptr @jitbpf_tail_target
  %sp = getelementptr i8, ptr %rs, i64 $RUN_SPENT
  %spent = load i64, ptr %sp
  %pending = icmp ne i64 %t, 0
  %live = icmp eq i64 %spent, 0
  %go = and i1 %pending, %live
  br i1 %go, label %tail, label %ended
tail:
  store i64 0, ptr @jitbpf_tail_target
  store i64 %t, ptr @jitbpf_running
  call void @rt_rs_set(ptr %rs, i64 $RUN_UNWIND, i64 0)
  call void @rt_rs_set(ptr %rs, i64 $RUN_DEPTH, i64 0)
  call void @rt_rs_set(ptr %rs, i64 $RUN_BUDGET, i64 %budget)
  %topp = getelementptr i8, ptr %rs, i64 $RUN_STACK_TOP
  %top = load i64, ptr %topp
  call void @rt_rs_set(ptr %rs, i64 $RUN_SP, i64 %top)
  %f = inttoptr i64 %t to ptr
  %next = call i64 %f(i64 %r1, i64 0, i64 0, i64 0, i64 0, ptr %rs)
  br label %settle
ended:
  %end = load i64, ptr @jitbpf_end_pending
  %ends = icmp ne i64 %end, 0
  br i1 %ends, label %zero, label %out
zero:
  store i64 0, ptr @jitbpf_end_pending
  call void @rt_rs_set(ptr %rs, i64 $RUN_UNWIND, i64 0)
  ret i64 0
out:
  ret i64 %r0
}

; a spent budget: the error and 0, else r0
define internal i64 @rt_finish(ptr %rs, i64 %r0) #0 {
entry:
  %sp = getelementptr i8, ptr %rs, i64 $RUN_SPENT
  %spent = load i64, ptr %sp
  %was = icmp ne i64 %spent, 0
  br i1 %was, label %budget, label %out
budget:
  %slot = sub i64 %spent, 1
  store i64 $E_BUDGET, ptr @jitbpf_err_code
  store i64 %slot, ptr @jitbpf_err_pc
  ret i64 0
out:
  ret i64 %r0
}

; a packet buffer (frame) the packet programs' pointers reach as u32s: below 4 GiB
define internal i1 @rt_frame_low(ptr %frame, ptr %rs) #0 {
entry:
  %f = ptrtoint ptr %frame to i64
  %end = add i64 %f, $FRAME_BYTES
  %high = icmp ugt i64 %end, 4294967295
  br i1 %high, label %bad, label %ok
bad:
  call void @rt_fail(i64 $E_HIGH, i64 -1, i64 %f, ptr %rs)
  ret i1 0
ok:
  ret i1 1
}

define internal i64 @rt_bad_context(i64 %size, ptr %rs) #0 {
  call void @rt_fail(i64 $E_CONTEXT, i64 -1, i64 %size, ptr %rs)
  ret i64 0
}

; ---------------------------------------------------------------- XDP
; struct jitbpf_xdp_md {data, data_end, data_meta (pointers); u32 ingress_ifindex,
; rx_queue_index, egress_ifindex} -> the UAPI xdp_md over a frame as runtime/context.py
; builds it: 256 bytes of headroom, the packet, tailroom to max(4096, 256 + len + 320) - 320.
; r1 = xctx (u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex,
; then, beyond what the program sees, u64 the highest end a run left dirty).
define internal i64 @rt_xdp_enter(i64 %ctx, i64 %size, ptr %frame, ptr %xctx, ptr %rs) #0 {
entry:
  %md = inttoptr i64 %ctx to ptr
  %small = icmp ult i64 %size, 24
  br i1 %small, label %badctx, label %fields
fields:
  %data = load i64, ptr %md
  %md.1 = getelementptr i8, ptr %md, i64 8
  %end = load i64, ptr %md.1
  %md.2 = getelementptr i8, ptr %md, i64 16
  %meta0 = load i64, ptr %md.2
  %nometa = icmp eq i64 %meta0, 0
  %meta = select i1 %nometa, i64 %data, i64 %meta0
  %plen = sub i64 %end, %data
  %mlen = sub i64 %data, %meta
  %big = icmp ugt i64 %plen, $MAX_PACKET
  %bigm = icmp ugt i64 %mlen, $MAX_META
  %bad = or i1 %big, %bigm
  br i1 %bad, label %badctx, label %place
place:
  %low = call i1 @rt_frame_low(ptr %frame, ptr %rs)
  br i1 %low, label %copyin, label %fail
copyin:
  %f = ptrtoint ptr %frame to i64
  call void @rt_memzero(ptr %frame, i64 $XDP_HEADROOM)
  %nd = add i64 %f, $XDP_HEADROOM
  %nm = sub i64 %nd, %mlen
  %ne = add i64 %nd, %plen
  %dirtyp = getelementptr i8, ptr %xctx, i64 24
  %dirty = load i64, ptr %dirtyp
  %stale = icmp ugt i64 %dirty, %ne
  br i1 %stale, label %clean, label %fill
clean:
  %nep = inttoptr i64 %ne to ptr
  %staleb = sub i64 %dirty, %ne
  call void @rt_memzero(ptr %nep, i64 %staleb)
  br label %fill
fill:
  %total = add i64 %mlen, %plen
  %nmp = inttoptr i64 %nm to ptr
  %metap = inttoptr i64 %meta to ptr
  call void @rt_memcopy(ptr %nmp, ptr %metap, i64 %total)
  %x = ptrtoint ptr %xctx to i64
  call void @rt_xdp_put(i64 %x, i64 0, i64 %nd)
  call void @rt_xdp_put(i64 %x, i64 1, i64 %ne)
  call void @rt_xdp_put(i64 %x, i64 2, i64 %nm)
  %fsmall = icmp ult i64 %size, $JITBPF_XDP_MD_SIZE
  %in = getelementptr i8, ptr %md, i64 24
  %ifin = load i32, ptr %in
  %if = select i1 %fsmall, i32 1, i32 %ifin
  %in1 = getelementptr i8, ptr %md, i64 28
  %rxin = load i32, ptr %in1
  %rx = select i1 %fsmall, i32 0, i32 %rxin
  %in2 = getelementptr i8, ptr %md, i64 32
  %egin = load i32, ptr %in2
  %eg = select i1 %fsmall, i32 0, i32 %egin
  %x3 = getelementptr i32, ptr %xctx, i64 3
  store i32 %if, ptr %x3
  %x4 = getelementptr i32, ptr %xctx, i64 4
  store i32 %rx, ptr %x4
  %x5 = getelementptr i32, ptr %xctx, i64 5
  store i32 %eg, ptr %x5
  %room0 = add i64 %plen, $FRAME_OVERHEAD
  %short = icmp ult i64 %room0, 4096
  %room = select i1 %short, i64 4096, i64 %room0
  %fend = add i64 %f, %room
  %hard = sub i64 %fend, $SKB_SHARED_INFO
  store i64 %f, ptr @jitbpf_frame_start
  store i64 %hard, ptr @jitbpf_frame_end
  %xe = add i64 %x, $XDP_MD_SIZE
  call void @rt_region(ptr %rs, i64 %x, i64 %xe, i64 1)
  call void @rt_region(ptr %rs, i64 %f, i64 %fend, i64 1)
  ret i64 %x
badctx:
  %r = call i64 @rt_bad_context(i64 %size, ptr %rs)
  ret i64 0
fail:
  ret i64 0
}

; after the run: a packet left in place goes back to the caller's buffer; one the program
; moved or resized stays in the frame, where md's pointers now show it
define internal void @rt_xdp_leave(i64 %ctx, ptr %frame, ptr %xctx) #0 {
entry:
  %md = inttoptr i64 %ctx to ptr
  %data = load i64, ptr %md
  %md.1 = getelementptr i8, ptr %md, i64 8
  %end = load i64, ptr %md.1
  %md.2 = getelementptr i8, ptr %md, i64 16
  %meta0 = load i64, ptr %md.2
  %nometa = icmp eq i64 %meta0, 0
  %meta = select i1 %nometa, i64 %data, i64 %meta0
  %plen = sub i64 %end, %data
  %mlen = sub i64 %data, %meta
  %x = ptrtoint ptr %xctx to i64
  %nd = call i64 @rt_xdp_get(i64 %x, i64 0)
  %ne = call i64 @rt_xdp_get(i64 %x, i64 1)
  %nm = call i64 @rt_xdp_get(i64 %x, i64 2)
  %f = ptrtoint ptr %frame to i64
  %od = add i64 %f, $XDP_HEADROOM
  %oe = add i64 %od, %plen
  %om = sub i64 %od, %mlen
  %sd = icmp eq i64 %nd, %od
  %se = icmp eq i64 %ne, %oe
  %sm = icmp eq i64 %nm, %om
  %s1 = and i1 %sd, %se
  %same = and i1 %s1, %sm
  %dirtyp = getelementptr i8, ptr %xctx, i64 24
  %dirty = load i64, ptr %dirtyp
  %m1 = icmp ugt i64 %ne, %oe
  %hi = select i1 %m1, i64 %ne, i64 %oe
  %m2 = icmp ugt i64 %hi, %dirty
  %hi2 = select i1 %m2, i64 %hi, i64 %dirty
  store i64 %hi2, ptr %dirtyp
  br i1 %same, label %copyback, label %point
copyback:
  %total = add i64 %mlen, %plen
  %src = inttoptr i64 %om to ptr
  %dst = inttoptr i64 %meta to ptr
  call void @rt_memcopy(ptr %dst, ptr %src, i64 %total)
  ret void
point:
  store i64 %nd, ptr %md
  store i64 %ne, ptr %md.1
  store i64 %nm, ptr %md.2
  ret void
}

; ---------------------------------------------------------------- __sk_buff
; struct jitbpf_skb_md {data, data_end (pointers, from the Ethernet header); u8 sk_buff[192],
; optional: the __sk_buff fields the program starts with} -> the __sk_buff runtime/context.py
; builds (len, protocol, data, data_end, data_meta set; ifindex, ingress_ifindex 1 and
; wire_len the packet's length unless given); socket programs' data starts after Ethernet.
define internal i64 @rt_skb_enter(i64 %ctx, i64 %size, ptr %frame, ptr %skb, i1 %l2, ptr %rs) #0 {
entry:
  %md = inttoptr i64 %ctx to ptr
  %small = icmp ult i64 %size, 16
  br i1 %small, label %badctx, label %fields
fields:
  %data = load i64, ptr %md
  %md.1 = getelementptr i8, ptr %md, i64 8
  %end = load i64, ptr %md.1
  %plen = sub i64 %end, %data
  %big = icmp ugt i64 %plen, $MAX_PACKET
  %short = icmp ult i64 %plen, $ETH_HLEN
  %bad = or i1 %big, %short
  br i1 %bad, label %badctx, label %place
place:
  %low = call i1 @rt_frame_low(ptr %frame, ptr %rs)
  br i1 %low, label %copyin, label %fail
copyin:
  %f = ptrtoint ptr %frame to i64
  %start = add i64 %f, $XDP_HEADROOM
  %startp = inttoptr i64 %start to ptr
  %srcp = inttoptr i64 %data to ptr
  call void @rt_memzero(ptr %frame, i64 $XDP_HEADROOM)
  call void @rt_memcopy(ptr %startp, ptr %srcp, i64 %plen)
  %pend = add i64 %start, %plen
  %pendp = inttoptr i64 %pend to ptr
  call void @rt_memzero(ptr %pendp, i64 $SKB_SHARED_INFO)
  %given = icmp uge i64 %size, $JITBPF_SKB_MD_SIZE
  br i1 %given, label %copyfields, label %zerofields
copyfields:
  %in = getelementptr i8, ptr %md, i64 16
  call void @rt_memcopy(ptr %skb, ptr %in, i64 $SK_BUFF_SIZE)
  br label %set
zerofields:
  call void @rt_memzero(ptr %skb, i64 $SK_BUFF_SIZE)
  br label %set
set:
  %after = add i64 %start, $ETH_HLEN
  %d = select i1 %l2, i64 %start, i64 %after
  %len = sub i64 %pend, %d
  store i64 %d, ptr @jitbpf_skb_data
  store i64 %len, ptr @jitbpf_skb_len
  %protop = getelementptr i8, ptr %startp, i64 12
  %proto16 = load i16, ptr %protop
  %proto = zext i16 %proto16 to i64
  %s = ptrtoint ptr %skb to i64
  call void @rt_skb_put(ptr %skb, i64 $SKB_len, i64 %len, i1 1)
  call void @rt_skb_put(ptr %skb, i64 $SKB_protocol, i64 %proto, i1 1)
  call void @rt_skb_put(ptr %skb, i64 $SKB_ifindex, i64 1, i1 0)
  call void @rt_skb_put(ptr %skb, i64 $SKB_ingress_ifindex, i64 1, i1 0)
  call void @rt_skb_put(ptr %skb, i64 $SKB_data, i64 %d, i1 1)
  %de = add i64 %d, %len
  call void @rt_skb_put(ptr %skb, i64 $SKB_data_end, i64 %de, i1 1)
  call void @rt_skb_put(ptr %skb, i64 $SKB_data_meta, i64 %d, i1 1)
  call void @rt_skb_put(ptr %skb, i64 $SKB_wire_len, i64 %plen, i1 0)
  %se = add i64 %s, $SK_BUFF_SIZE
  call void @rt_region(ptr %rs, i64 %s, i64 %se, i64 1)
  %fe0 = add i64 %pend, $SKB_SHARED_INFO
  call void @rt_region(ptr %rs, i64 %f, i64 %fe0, i64 1)
  ret i64 %s
badctx:
  %r = call i64 @rt_bad_context(i64 %size, ptr %rs)
  ret i64 0
fail:
  ret i64 0
}

; a u32 field of the __sk_buff: always (force) or when the caller left it 0
define internal void @rt_skb_put(ptr %skb, i64 %offset, i64 %v, i1 %force) #0 {
entry:
  %p = getelementptr i8, ptr %skb, i64 %offset
  %old = load i32, ptr %p
  %unset = icmp eq i32 %old, 0
  %write = or i1 %force, %unset
  br i1 %write, label %put, label %out
put:
  %v32 = trunc i64 %v to i32
  store i32 %v32, ptr %p
  br label %out
out:
  ret void
}

; after the run: the packet (the program may have written it) and the fields back
define internal void @rt_skb_leave(i64 %ctx, i64 %size, ptr %frame, ptr %skb) #0 {
entry:
  %md = inttoptr i64 %ctx to ptr
  %data = load i64, ptr %md
  %md.1 = getelementptr i8, ptr %md, i64 8
  %end = load i64, ptr %md.1
  %plen = sub i64 %end, %data
  %start = getelementptr i8, ptr %frame, i64 $XDP_HEADROOM
  %dst = inttoptr i64 %data to ptr
  call void @rt_memcopy(ptr %dst, ptr %start, i64 %plen)
  %given = icmp uge i64 %size, $JITBPF_SKB_MD_SIZE
  br i1 %given, label %fields, label %out
fields:
  %outp = getelementptr i8, ptr %md, i64 16
  call void @rt_memcopy(ptr %outp, ptr %skb, i64 $SK_BUFF_SIZE)
  br label %out
out:
  ret void
}
"""

LIBRARY = "\n".join((PRIMITIVES, HASH_MAPS, VALUE_MAPS, LPM_MAPS, RINGBUF_MAPS, DISPATCH, HELPERS, CONTEXTS, RUNTIME_CALLS, RUNS))
