# expect: invalid read from stack off -8+0 size 8
# type: xdp
# kernel: accept
# why: uninitialised stack: allowed for root in Linux
    mov %r1, %r10
    add %r1, -8
    call local f
    exit
f:
    ldxdw %r0, [%r1+0]
    exit
