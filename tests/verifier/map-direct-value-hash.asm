# expect: direct value access on hash map type is not allowed
# type: xdp
# map: hash key=4 value=8 entries=16
# kernel: reject
lddw %r1, map_idx_value(0, 0)
mov %r0, 0
exit
