# expect: R2 type=ctx expected=fp
# type: xdp
# map: hash key=4 value=8 entries=16
mov %r2, %r1
lddw %r1, map_idx(0)
call 1
mov %r0, 0
exit
