# expect: invalid bpf_context access off=0 size=4
# type: xdp
ldxsw %r0, [%r1+0]
exit
