# expect: invalid read from stack off -8+0 size 8
# type: xdp
# kernel: accept
# why: root may read uninitialised stack in Linux (CAP_PERFMON); jitbpf refuses, as the issue asks
ldxdw %r0, [%r10-8]
exit
