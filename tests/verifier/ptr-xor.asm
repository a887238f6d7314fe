# expect: bitwise operator ^= on pointer prohibited
# type: xdp
# kernel: reject
mov %r2, %r1
xor %r2, 1
mov %r0, 0
exit
