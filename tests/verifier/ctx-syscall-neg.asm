# expect: invalid bpf_context access off=-8 size=8
# type: syscall
ldxdw %r0, [%r1-8]
exit
