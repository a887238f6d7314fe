# expect: invalid read from stack off -8+4 size 8
# type: xdp
# kernel: accept
# why: uninitialised stack: allowed for root in Linux
stw [%r10-8], 1
ldxdw %r0, [%r10-8]
exit
