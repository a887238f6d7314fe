# expect: invalid access to map value, value_size=8 off=4 size=8
# type: xdp
# map: hash key=4 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
call 1

jeq %r0, 0, +2
ldxdw %r0, [%r0+4]
exit
mov %r0, 0
exit
