# expect: invalid bpf_context access off=4 size=8
# type: kprobe
ldxdw %r0, [%r1+4]
exit
