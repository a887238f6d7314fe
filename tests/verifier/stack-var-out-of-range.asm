# expect: invalid variable-offset read from stack R2
# type: xdp
stdw [%r10-8], 0
ldxw %r3, [%r1+12]
and %r3, 15
mov %r2, %r10
add %r2, -8
add %r2, %r3
ldxb %r0, [%r2+0]
exit
