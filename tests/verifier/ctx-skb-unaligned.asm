# expect: invalid bpf_context access off=1 size=2
# type: tc
ldxh %r0, [%r1+1]
exit
