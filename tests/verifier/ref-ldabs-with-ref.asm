# expect: BPF_LD_[ABS|IND] cannot be mixed with socket references
# type: socket
# map: ringbuf key=0 value=0 entries=4096
mov %r6, %r1

lddw %r1, map_idx(0)
mov %r2, 16
mov %r3, 0
call 131

jeq %r0, 0, +5
mov %r7, %r0
ldabsb 0
mov %r1, %r7
mov %r2, 0
call 133
mov %r0, 0
exit
