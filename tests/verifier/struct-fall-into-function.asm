# expect: last insn is not an exit or jmp
# type: xdp
    mov %r0, 0
    call local f
    mov %r0, 2
f:
    mov %r0, 1
    exit
