# expect: R2 !read_ok
# type: socket
mov %r6, %r1
ldindb %r2, 0
exit
