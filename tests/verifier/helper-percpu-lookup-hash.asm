# expect: cannot pass map_type 1 into func bpf_map_lookup_percpu_elem#195
# type: xdp
# map: hash key=4 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
mov %r3, 0
call 195
mov %r0, 0
exit
