# expect: R1 type=scalar expected=ctx
# type: xdp
# map: prog_array key=4 value=4 entries=1
mov %r1, 0
lddw %r2, map_idx(0)
mov %r3, 0
call 12
mov %r0, 0
exit
