# expect: invalid bpf_context access off=0 size=4
# type: tc
stw [%r1+0], 1
mov %r0, 0
exit
