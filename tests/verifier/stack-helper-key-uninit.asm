# expect: invalid indirect read from stack R2 off -8+0 size 4
# type: xdp
# map: hash key=4 value=8 entries=16
# kernel: accept
# why: uninitialised stack: allowed for root in Linux
mov %r2, %r10
add %r2, -8
lddw %r1, map_idx(0)
call 1
mov %r0, 0
exit
