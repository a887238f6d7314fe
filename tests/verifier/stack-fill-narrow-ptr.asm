# expect: invalid size of register fill
# type: xdp
stxdw [%r10-8], %r1
ldxw %r0, [%r10-8]
exit
