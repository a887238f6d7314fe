# expect: invalid shift 64
# type: xdp
mov %r0, 1
lsh %r0, 64
exit
