# expect: R2 !read_ok
# type: xdp
    mov %r2, 5
    call local f
    mov %r0, %r2
    exit
f:
    mov %r0, 0
    exit
