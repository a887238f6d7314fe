# expect: invalid read from stack
# type: xdp
# kernel: accept
# why: uninitialised stack (the caller's, read by the callback): allowed for root in Linux
    stdw [%r10-8], 0
    mov %r1, 4
    lddw %r2, func(cb)
    mov %r3, %r10
    add %r3, -8
    mov %r4, 0
    call 181
    mov %r0, 0
    exit
cb:
    ldxdw %r0, [%r2-8]
    mov %r0, 0
    exit
