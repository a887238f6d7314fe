# expect: variable stack access prohibited for !root
# type: socket
# unprivileged
# kernel: none
ldxw %r3, [%r1+0]
and %r3, 7
mov %r2, %r10
add %r2, -16
add %r2, %r3
mov %r0, 0
exit
