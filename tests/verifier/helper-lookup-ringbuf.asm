# expect: invalid zero-sized read
# type: xdp
# map: ringbuf key=0 value=0 entries=4096
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx(0)
call 1

mov %r0, 0
exit
