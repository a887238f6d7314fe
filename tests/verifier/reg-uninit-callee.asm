# expect: R6 !read_ok
# type: xdp
    mov %r6, 1
    call local f
    exit
f:
    mov %r0, %r6
    exit
