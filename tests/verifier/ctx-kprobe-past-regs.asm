# expect: invalid bpf_context access off=168 size=8
# type: kprobe
ldxdw %r0, [%r1+168]
exit
