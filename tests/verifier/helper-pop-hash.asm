# expect: cannot pass map_type 1 into func bpf_map_pop_elem#88
# type: xdp
# map: hash key=4 value=8 entries=16
lddw %r1, map_idx(0)
mov %r2, %r10
add %r2, -8
call 88
mov %r0, 0
exit
