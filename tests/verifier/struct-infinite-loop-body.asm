# expect: infinite loop detected
# type: xdp
    mov %r0, 0
    mov %r1, 7
loop:
    add %r0, 0
    jne %r1, 0, loop
    exit
