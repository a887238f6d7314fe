# expect: dereference of modified ctx ptr R1 off=8 disallowed
# type: xdp
add %r1, 8
mov %r2, 0
call 44
mov %r0, 0
exit
