# expect: R2 is not a known constant
# type: xdp
# map: ringbuf key=0 value=0 entries=4096
ldxw %r2, [%r1+12]
lddw %r1, map_idx(0)
mov %r3, 0
call 131
mov %r0, 0
exit
