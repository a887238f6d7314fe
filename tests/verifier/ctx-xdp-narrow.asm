# expect: invalid bpf_context access off=12 size=2
# type: xdp
ldxh %r0, [%r1+12]
exit
