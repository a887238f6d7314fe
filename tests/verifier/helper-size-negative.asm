# expect: R2 min value is negative
# type: xdp
ldxw %r2, [%r1+12]
lsh %r2, 56
arsh %r2, 56
stdw [%r10-8], 0
mov %r1, %r10
add %r1, -8
call 6
mov %r0, 0
exit
