# expect: invalid write to stack R10 off=8 size=8
# type: xdp
stdw [%r10+8], 0
mov %r0, 0
exit
