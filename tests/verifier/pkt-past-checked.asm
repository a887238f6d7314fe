# expect: invalid access to packet, off=8 size=4
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

mov %r4, %r2
add %r4, 8
jgt %r4, %r3, +2
ldxw %r0, [%r2+8]
exit
mov %r0, 0
exit
