# expect: cannot pass map_type 2 into func bpf_ringbuf_reserve#131
# type: xdp
# map: array key=4 value=16 entries=4
lddw %r1, map_idx(0)
mov %r2, 16
mov %r3, 0
call 131

mov %r0, 0
exit
