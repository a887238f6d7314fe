# expect: partial copy of pointer
# type: socket
# unprivileged
# kernel: none
mov32 %r2, %r10
mov %r0, 0
exit
