# expect: R0 !read_ok
# type: xdp
    call local f
    exit
f:
    mov %r1, 1
    exit
