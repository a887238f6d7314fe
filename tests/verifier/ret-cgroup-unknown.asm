# expect: should have been in [0, 1]
# type: cgroup_skb
ldxw %r0, [%r1+0]
exit
