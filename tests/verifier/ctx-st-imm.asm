# expect: BPF_ST stores into R1 ctx is not allowed
# type: tc
stw [%r1+8], 1
mov %r0, 0
exit
