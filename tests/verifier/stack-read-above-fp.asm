# expect: invalid read from stack R10 off=0 size=8
# type: xdp
ldxdw %r0, [%r10+0]
exit
