# expect: invalid mem access 'scalar'
# type: xdp
# map: hash key=4 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
call 1

jeq %r0, 0, +5
stxdw [%r10-16], %r0
stb [%r10-13], 1
ldxdw %r1, [%r10-16]
ldxw %r0, [%r1+0]
exit
mov %r0, 0
exit
