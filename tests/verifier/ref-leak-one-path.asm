# expect: Unreleased reference
# type: syscall
# map: ringbuf key=0 value=0 entries=4096
lddw %r1, map_idx(0)
mov %r2, 16
mov %r3, 0
call 131

jeq %r0, 0, +6
mov %r6, %r0
ldxw %r1, [%r6+0]
jeq %r1, 0, +3
mov %r1, %r6
mov %r2, 0
call 132
mov %r0, 0
exit
