# expect: invalid bpf_context access off=181 size=1
# type: tc
ldxb %r0, [%r1+181]
exit
