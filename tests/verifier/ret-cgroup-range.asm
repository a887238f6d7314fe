# expect: At program exit the register R0 has R0=2 should have been in [0, 1]
# type: cgroup_skb
mov %r0, 2
exit
