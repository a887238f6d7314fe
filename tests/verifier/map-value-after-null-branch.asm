# expect: invalid mem access 'scalar'
# type: xdp
# map: hash key=4 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
call 1

jne %r0, 0, +2
ldxw %r0, [%r0+0]
exit
mov %r0, 0
exit
