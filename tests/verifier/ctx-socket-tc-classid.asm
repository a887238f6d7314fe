# expect: invalid bpf_context access off=72 size=4
# type: socket
ldxw %r0, [%r1+72]
exit
