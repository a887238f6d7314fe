# expect: BPF_ATOMIC stores into R1 ctx is not allowed
# type: tc
mov %r2, 1
lock add [%r1+0], %r2
mov %r0, 0
exit
