# expect: pointer arithmetic on pkt_end prohibited
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

add %r3, 1
mov %r0, 0
exit
