# expect: max value is outside of the allowed memory range
# type: xdp
# map: hash key=4 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
call 1

jeq %r0, 0, +6
ldxw %r1, [%r0+0]
and %r1, 15
mov %r2, %r0
add %r2, %r1
ldxb %r0, [%r2+0]
exit
mov %r0, 0
exit
