# expect: R1 type=scalar expected=ringbuf_mem
# type: xdp
# map: ringbuf key=0 value=0 entries=4096
lddw %r1, map_idx(0)
mov %r2, 16
mov %r3, 0
call 131

jeq %r0, 0, +7
mov %r6, %r0
mov %r1, %r6
mov %r2, 0
call 132
mov %r1, %r6
mov %r2, 0
call 133
mov %r0, 0
exit
