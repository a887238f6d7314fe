# expect: R2 unbounded memory access
# type: syscall
# kernel: reject
ldxw %r2, [%r1+0]
add %r2, 1
stdw [%r10-8], 0
mov %r1, %r10
add %r1, -8
call 6
mov %r0, 0
exit
