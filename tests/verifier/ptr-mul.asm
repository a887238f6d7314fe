# expect: pointer arithmetic with *= operator prohibited
# type: xdp
mov %r0, %r10
mul %r0, 2
mov %r0, 0
exit
