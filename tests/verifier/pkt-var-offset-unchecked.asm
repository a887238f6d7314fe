# expect: invalid access to packet
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

mov %r4, %r2
add %r4, 14
jgt %r4, %r3, +4
ldxb %r5, [%r2+0]
add %r2, %r5
ldxb %r0, [%r2+0]
exit
mov %r0, 0
exit
