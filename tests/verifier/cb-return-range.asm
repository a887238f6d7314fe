# expect: At callback return the register R0 has R0=2 should have been in [0, 1]
# type: xdp
    mov %r1, 4
    lddw %r2, func(cb)
    mov %r3, 0
    mov %r4, 0
    call 181
    mov %r0, 0
    exit
cb:
    mov %r0, 2
    exit
