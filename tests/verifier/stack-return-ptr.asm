# expect: cannot return stack pointer to the caller
# type: xdp
    call local f
    mov %r0, 0
    exit
f:
    mov %r0, %r10
    add %r0, -8
    exit
