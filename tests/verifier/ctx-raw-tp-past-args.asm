# expect: invalid bpf_context access off=96 size=8
# type: raw_tracepoint
ldxdw %r0, [%r1+96]
exit
