# expect: invalid access to packet, off=0 size=1
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

ldxb %r0, [%r2+0]
exit
