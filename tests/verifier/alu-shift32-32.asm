# expect: invalid shift 32
# type: xdp
mov %r0, 1
arsh32 %r0, 32
exit
