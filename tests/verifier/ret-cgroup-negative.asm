# expect: should have been in [0, 1]
# type: cgroup_skb
mov %r0, -1
exit
