# expect: R0 leaks addr as return value
# type: socket
# unprivileged
# kernel: none
mov %r0, %r10
exit
