# expect: does not point to a readonly map
# type: xdp
# map: array key=4 value=8 entries=1
lddw %r3, map_idx_value(0, 0)
stdw [%r10-8], 0
mov %r1, %r10
add %r1, -8
mov %r2, 8
call 182
mov %r0, 0
exit
