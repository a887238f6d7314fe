# expect: invalid bpf_context access off=76 size=4
# type: socket
ldxw %r0, [%r1+76]
exit
