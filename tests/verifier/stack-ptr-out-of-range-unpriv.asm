# expect: stack pointer arithmetic goes out of range
# type: socket
# unprivileged
# kernel: none
mov %r2, %r10
add %r2, 8
mov %r0, 0
exit
