# expect: R1 type=fp expected=ctx
# type: xdp
mov %r1, %r10
mov %r2, 0
call 44
mov %r0, 0
exit
