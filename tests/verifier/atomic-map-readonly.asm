# expect: write into map forbidden
# type: xdp
# map: array key=4 value=8 entries=1 flags=0x80
lddw %r1, map_idx_value(0, 0)
mov %r2, 1
lock add [%r1+0], %r2
mov %r0, 0
exit
