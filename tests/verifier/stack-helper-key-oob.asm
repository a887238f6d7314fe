# expect: invalid indirect access to stack R2 off=-2 size=4
# type: xdp
# map: hash key=4 value=8 entries=16
stb [%r10-1], 0
stb [%r10-2], 0
mov %r2, %r10
add %r2, -2
lddw %r1, map_idx(0)
call 1
mov %r0, 0
exit
