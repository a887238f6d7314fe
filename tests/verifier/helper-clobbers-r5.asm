# expect: R5 !read_ok
# type: xdp
mov %r5, 1
call 7
mov %r0, %r5
exit
