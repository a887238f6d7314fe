# expect: tried to subtract pointer from scalar
# type: xdp
mov %r2, 10
sub %r2, %r10
mov %r0, 0
exit
