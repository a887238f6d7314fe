# expect: tail_call would lead to reference leak
# type: xdp
# map: ringbuf key=0 value=0 entries=4096
# map: prog_array key=4 value=4 entries=1
mov %r6, %r1

lddw %r1, map_idx(0)
mov %r2, 16
mov %r3, 0
call 131

jeq %r0, 0, +9
mov %r7, %r0
mov %r1, %r6
lddw %r2, map_idx(1)
mov %r3, 0
call 12
mov %r1, %r7
mov %r2, 0
call 133
mov %r0, 0
exit
