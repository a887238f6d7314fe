# expect: invalid bpf_context access off=20 size=4
# type: xdp
ldxw %r0, [%r1+20]
exit
