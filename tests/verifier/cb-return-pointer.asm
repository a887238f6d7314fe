# expect: cannot return stack pointer to the caller
# type: xdp
# kernel: reject
    mov %r1, 4
    lddw %r2, func(cb)
    mov %r3, 0
    mov %r4, 0
    call 181
    mov %r0, 0
    exit
cb:
    mov %r0, %r10
    exit
