# expect: invalid indirect read from stack R3 off -16+0 size 8
# type: xdp
# map: hash key=4 value=8 entries=16
# kernel: accept
# why: uninitialised stack: allowed for root in Linux
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
mov %r3, %r10
add %r3, -16
lddw %r1, map_idx(0)
mov %r4, 0
call 2
mov %r0, 0
exit
