# expect: pointer arithmetic on map_ptr prohibited
# type: xdp
# map: hash key=4 value=8 entries=16
lddw %r1, map_idx(0)
add %r1, 8
mov %r0, 0
exit
