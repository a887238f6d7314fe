# expect: R3 unbounded memory access
# type: xdp
# map: array key=4 value=16 entries=4
    stw [%r10-4], 0
    mov %r2, %r10
    add %r2, -4
    lddw %r1, map_idx(0)
    call 1
    jeq %r0, 0, +10
    stxdw [%r10-16], %r0
    mov %r1, 4
    lddw %r2, func(cb)
    mov %r3, %r10
    add %r3, -16
    mov %r4, 0
    call 181
    mov %r0, 0
    exit
    mov %r0, 0
    exit
cb:
    ldxdw %r3, [%r2+0]
    add %r3, %r1
    ldxb %r0, [%r3+0]
    mov %r0, 0
    exit
