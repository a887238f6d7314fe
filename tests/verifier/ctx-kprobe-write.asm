# expect: invalid bpf_context access off=0 size=8
# type: kprobe
mov %r2, 1
stxdw [%r1+0], %r2
mov %r0, 0
exit
