# expect: invalid bpf_context access off=76 size=2
# type: tc
ldxh %r0, [%r1+76]
exit
