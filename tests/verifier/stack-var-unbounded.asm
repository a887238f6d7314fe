# expect: math between fp pointer and register with unbounded min value is not allowed
# type: syscall
# kernel: reject
stdw [%r10-8], 0
ldxdw %r3, [%r1+0]
mov %r2, %r10
add %r2, %r3
ldxb %r0, [%r2+0]
exit
