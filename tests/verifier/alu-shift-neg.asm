# expect: invalid shift -1
# type: xdp
mov %r0, 1
rsh %r0, -1
exit
