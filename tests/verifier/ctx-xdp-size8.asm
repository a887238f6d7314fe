# expect: invalid bpf_context access off=0 size=8
# type: xdp
ldxdw %r0, [%r1+0]
exit
