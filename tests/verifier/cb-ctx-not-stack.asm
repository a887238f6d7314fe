# expect: R3 type=ctx expected=fp
# type: xdp
    mov %r3, %r1
    mov %r1, 4
    lddw %r2, func(cb)
    mov %r4, 0
    call 181
    mov %r0, 0
    exit

cb:
    mov %r0, 0
    exit
