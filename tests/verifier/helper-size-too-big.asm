# expect: invalid indirect access to stack R1 off=-8 size=16
# type: xdp
stdw [%r10-8], 0
mov %r1, %r10
add %r1, -8
mov %r2, 16
call 6
mov %r0, 0
exit
