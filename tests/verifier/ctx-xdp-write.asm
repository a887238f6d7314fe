# expect: invalid bpf_context access off=12 size=4
# type: xdp
mov %r2, 1
stxw [%r1+12], %r2
mov %r0, 0
exit
