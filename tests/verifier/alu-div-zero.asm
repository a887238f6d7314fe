# expect: div by zero
# type: xdp
mov %r0, 1
div %r0, 0
exit
