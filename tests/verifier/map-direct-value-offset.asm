# expect: invalid access to map value pointer
# type: xdp
# map: array key=4 value=8 entries=1
lddw %r1, map_idx_value(0, 8)
mov %r0, 0
exit
