# expect: invalid mem access 'map_ptr'
# type: xdp
# map: hash key=4 value=8 entries=16
# kernel: accept
# why: Linux lets root read struct bpf_map through its BTF; a jitbpf map handle is not memory a program may read
lddw %r1, map_idx(0)
ldxw %r0, [%r1+0]
exit
