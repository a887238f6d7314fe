# expect: R0 !read_ok
# type: xdp
# map: ringbuf key=0 value=0 entries=4096
lddw %r1, map_idx(0)
mov %r2, 16
mov %r3, 0
call 131
jne %r0, 0, +2
mov %r0, 0
exit
mov %r1, %r0
mov %r2, 0
call 132
exit
