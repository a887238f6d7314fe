# expect: invalid access to packet
# type: xdp
ldxw %r2, [%r1+8]
ldxb %r0, [%r2+0]
exit
