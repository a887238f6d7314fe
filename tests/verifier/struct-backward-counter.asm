# expect: infinite loop detected
# type: xdp
    mov %r0, 5
loop:
    ja loop
