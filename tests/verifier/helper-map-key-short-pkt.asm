# expect: invalid access to packet
# type: xdp
# map: hash key=4 value=8 entries=16
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

mov %r4, %r2
add %r4, 2
jgt %r4, %r3, +5
lddw %r1, map_idx(0)
call 1
mov %r0, 0
exit
mov %r0, 0
exit
