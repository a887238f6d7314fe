# expect: invalid read from stack R2 var_off
# type: xdp
# kernel: accept
# why: uninitialised stack: allowed for root in Linux
stdw [%r10-8], 0
ldxw %r3, [%r1+12]
and %r3, 7
mov %r2, %r10
add %r2, -16
add %r2, %r3
ldxb %r0, [%r2+0]
exit
