# expect: must have zero offset when passed to release func
# type: xdp
# map: ringbuf key=0 value=0 entries=4096
lddw %r1, map_idx(0)
mov %r2, 16
mov %r3, 0
call 131

jeq %r0, 0, +5
mov %r1, %r0
add %r1, 4
mov %r2, 0
call 132
exit
mov %r0, 0
exit
