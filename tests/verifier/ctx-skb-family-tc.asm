# expect: invalid bpf_context access off=88 size=4
# type: tc
ldxw %r0, [%r1+88]
exit
