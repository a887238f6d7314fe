# expect: R3 leaks addr into helper function
# type: socket
# map: prog_array key=4 value=4 entries=1
# unprivileged
# kernel: none
mov %r1, %r1
lddw %r2, map_idx(0)
mov %r3, %r10
call 12
mov %r0, 0
exit
