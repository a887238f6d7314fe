# expect: R0 !read_ok
# type: xdp
ldxw %r2, [%r1+12]
jeq %r2, 0, +1
mov %r0, 1
exit
