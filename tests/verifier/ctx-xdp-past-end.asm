# expect: invalid bpf_context access off=24 size=4
# type: xdp
ldxw %r0, [%r1+24]
exit
