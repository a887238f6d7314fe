# expect: invalid mem access 'pkt_end'
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

ldxb %r0, [%r3+0]
exit
