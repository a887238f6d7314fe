# expect: subtraction from stack pointer prohibited
# type: xdp
mov %r2, %r10
mov %r3, 8
sub %r2, %r3
mov %r0, 0
exit
