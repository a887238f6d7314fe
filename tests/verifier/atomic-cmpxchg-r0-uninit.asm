# expect: R0 !read_ok
# type: xdp
stdw [%r10-8], 0
mov %r1, 1
lock cmpxchg [%r10-8], %r1
exit
