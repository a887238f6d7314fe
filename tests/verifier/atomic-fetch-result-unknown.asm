# expect: math between map_value pointer and register with unbounded min value is not allowed
# type: xdp
# map: array key=4 value=16 entries=4
# kernel: reject
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
call 1

jeq %r0, 0, +6
mov %r1, 0
lock fetch add [%r0+0], %r1
mov %r2, %r0
add %r2, %r1
ldxb %r0, [%r2+0]
exit
mov %r0, 0
exit
