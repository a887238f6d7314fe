# expect: write to change key R2 not allowed
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
    stw [%r2+0], 1
    mov %r0, 0
    exit
