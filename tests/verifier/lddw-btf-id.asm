# expect: pseudo btf_id
# type: xdp
# kernel: reject
lddw %r1, btf_id(1, 0)
mov %r0, 0
exit
