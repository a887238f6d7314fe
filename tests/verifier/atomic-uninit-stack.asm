# expect: invalid read from stack
# type: xdp
# kernel: accept
# why: uninitialised stack: allowed for root in Linux
mov %r1, 1
lock add [%r10-8], %r1
mov %r0, 0
exit
