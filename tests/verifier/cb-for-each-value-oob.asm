# expect: invalid access to map value, value_size=16 off=16 size=8
# type: xdp
# map: array key=4 value=16 entries=4
    lddw %r1, map_idx(0)
    lddw %r2, func(cb)
    mov %r3, 0
    mov %r4, 0
    call 164
    mov %r0, 0
    exit
cb:
    ldxdw %r0, [%r3+16]
    mov %r0, 0
    exit
