# expect: R1 type=fp expected=ringbuf_mem
# type: xdp
mov %r1, %r10
add %r1, -8
mov %r2, 0
call 132
mov %r0, 0
exit
