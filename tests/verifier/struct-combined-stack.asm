# expect: combined stack size of 2 calls is
# type: xdp
    stdw [%r10-512], 0
    call local f
    mov %r0, 0
    exit
f:
    stdw [%r10-16], 0
    mov %r0, 0
    exit
