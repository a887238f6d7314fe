# expect: R1 type=scalar expected=map_ptr
# type: xdp
mov %r1, 0
mov %r2, %r10
add %r2, -8
stdw [%r10-8], 0
call 1
mov %r0, 0
exit
