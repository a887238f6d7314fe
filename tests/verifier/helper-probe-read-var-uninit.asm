# expect: invalid indirect read from stack
# type: kprobe
# kernel: accept
# why: uninitialised stack: allowed for root in Linux
ldxdw %r2, [%r1+0]
and %r2, 7
add %r2, 1
mov %r1, %r10
add %r1, -8
mov %r3, 0
call 113
mov %r0, 0
exit
