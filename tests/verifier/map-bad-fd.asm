# expect: is not pointing to valid bpf_map
# type: xdp
# map: hash key=4 value=8 entries=16
lddw %r1, map_idx(3)
mov %r0, 0
exit
