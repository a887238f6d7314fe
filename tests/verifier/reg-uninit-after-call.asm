# expect: R1 !read_ok
# type: xdp
call 5
mov %r0, %r1
exit
