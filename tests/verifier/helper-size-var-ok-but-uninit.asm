# expect: invalid indirect read from stack
# type: xdp
# kernel: accept
# why: uninitialised stack: allowed for root in Linux
ldxw %r2, [%r1+12]
and %r2, 7
add %r2, 1
stb [%r10-8], 0
mov %r1, %r10
add %r1, -8
call 6
mov %r0, 0
exit
