# expect: invalid write to stack R1 off=0 size=8
# type: xdp
    mov %r1, %r10
    call local f
    mov %r0, 0
    exit
f:
    stdw [%r1+0], 0
    mov %r0, 0
    exit
