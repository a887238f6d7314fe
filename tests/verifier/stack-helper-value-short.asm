# expect: invalid indirect access to stack R3 off=-8 size=16
# type: xdp
# map: array key=4 value=16 entries=4
# kernel: reject
stw [%r10-4], 0
stw [%r10-8], 0
stdw [%r10-16], 0
mov %r2, %r10
add %r2, -4
mov %r3, %r10
add %r3, -8
lddw %r1, map_idx(0)
mov %r4, 0
call 2
mov %r0, 0
exit
