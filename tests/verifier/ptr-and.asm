# expect: bitwise operator &= on pointer prohibited
# type: xdp
mov %r2, %r10
and %r2, -8
mov %r0, 0
exit
