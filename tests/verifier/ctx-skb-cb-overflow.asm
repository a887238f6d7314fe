# expect: invalid bpf_context access off=64 size=8
# type: tc
ldxdw %r0, [%r1+64]
exit
