# expect: cannot pass map_type 27 into func bpf_for_each_map_elem#164
# type: xdp
# map: ringbuf key=0 value=0 entries=4096
    lddw %r1, map_idx(0)
    lddw %r2, func(cb)
    mov %r3, 0
    mov %r4, 0
    call 164
    mov %r0, 0
    exit

cb:
    mov %r0, 0
    exit
