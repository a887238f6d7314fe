# expect: invalid bpf_context access off=140 size=4
# type: cgroup_skb
ldxw %r0, [%r1+140]
mov %r0, 1
exit
