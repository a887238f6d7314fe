# expect: R2 !read_ok
# type: socket
mov %r6, %r1
mov %r2, 7
ldabsb 0
mov %r0, %r2
exit
