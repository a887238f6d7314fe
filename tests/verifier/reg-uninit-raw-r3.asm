# expect: R3 !read_ok
# type: raw
# kernel: none
mov %r0, %r3
exit
