# expect: R2 leaks addr into ctx
# type: socket
# unprivileged
# kernel: none
mov %r2, %r10
stxw [%r1+48], %r2
mov %r0, 0
exit
