# expect: BPF_ATOMIC stores into R2 pkt is not allowed
# type: xdp
# kernel: reject
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

mov %r4, %r2
add %r4, 8
jgt %r4, %r3, +3
mov %r5, 1
lock add [%r2+0], %r5
mov %r0, 0
exit
