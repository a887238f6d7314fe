# expect: invalid access to memory, mem_size=16 off=16 size=4
# type: xdp
# map: ringbuf key=0 value=0 entries=4096
lddw %r1, map_idx(0)
mov %r2, 16
mov %r3, 0
call 131

jeq %r0, 0, +7
mov %r6, %r0
ldxw %r7, [%r6+16]
mov %r1, %r6
mov %r2, 0
call 133
mov %r0, %r7
exit
mov %r0, 0
exit
