# expect: misaligned stack access
# type: xdp
mov %r2, %r10
add %r2, -3
stxw [%r2+0], %r1
mov %r0, 0
exit
