# expect: pointer arithmetic prohibited
# type: xdp
# unprivileged
# kernel: none
mov %r2, %r10
neg %r2
mov %r0, 0
exit
