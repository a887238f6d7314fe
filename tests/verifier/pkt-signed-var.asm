# expect: min value is negative
# type: xdp
# kernel: reject
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

mov %r4, %r2
add %r4, 64
jgt %r4, %r3, +7
ldxb %r5, [%r2+0]
lsh %r5, 56
arsh %r5, 56
mov %r6, %r2
add %r6, %r5
ldxb %r0, [%r6+0]
exit
mov %r0, 0
exit
