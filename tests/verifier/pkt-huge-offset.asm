# expect: invalid access to packet
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

mov %r4, %r2
lddw %r5, 0x10000
add %r4, %r5
jgt %r4, %r3, +2
ldxb %r0, [%r2+0]
exit
mov %r0, 0
exit
