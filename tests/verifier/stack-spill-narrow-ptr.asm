# expect: invalid size of register spill
# type: xdp
stxw [%r10-8], %r1
mov %r0, 0
exit
