# expect: invalid bpf_context access off=76 size=4
# type: socket
ldxw %r2, [%r1+76]
mov %r0, 0
exit
