# expect: misaligned value access
# type: xdp
# map: array key=4 value=16 entries=4
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
call 1

jeq %r0, 0, +2
mov %r1, 1
lock add [%r0+4], %r1
mov %r0, 0
exit
