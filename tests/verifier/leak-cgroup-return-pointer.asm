# expect: At program exit the register R0 is not a known value (fp)
# type: cgroup_skb
mov %r0, %r10
exit
