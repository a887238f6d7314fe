# expect: jump out of range from insn 1 to 5
# type: xdp
    mov %r0, 0
    ja +3
    call local f
    exit
f:
    mov %r0, 1
    exit
