# expect: R3 !read_ok
# type: xdp
    mov %r1, 1
    call local f
    exit
f:
    mov %r0, %r3
    exit
