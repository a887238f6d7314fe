# expect: pointer comparison prohibited
# type: socket
# unprivileged
# kernel: none
mov %r2, %r10
jeq %r2, %r1, +0
mov %r0, 0
exit
