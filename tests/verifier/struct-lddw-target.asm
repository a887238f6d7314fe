# expect: callback function cannot be the main program
# type: xdp
# kernel: reject
start:
    lddw %r2, func(start)
    mov %r0, 0
    exit
