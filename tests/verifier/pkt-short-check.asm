# expect: invalid access to packet, off=0 size=8
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

mov %r4, %r2
add %r4, 4
jgt %r4, %r3, +2
ldxdw %r0, [%r2+0]
exit
mov %r0, 0
exit
