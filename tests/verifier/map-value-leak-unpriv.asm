# expect: R1 leaks addr into map
# type: socket
# map: hash key=4 value=8 entries=16
# unprivileged
# kernel: none
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
call 1

jeq %r0, 0, +2
mov %r1, %r10
stxdw [%r0+0], %r1
mov %r0, 0
exit
