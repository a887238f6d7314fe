# expect: R2 !read_ok
# type: xdp
mov %r0, %r2
exit
