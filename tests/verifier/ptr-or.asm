# expect: bitwise operator |= on pointer prohibited
# type: xdp
mov %r0, %r1
or %r0, 1
mov %r0, 0
exit
