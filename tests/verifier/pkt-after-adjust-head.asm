# expect: invalid mem access 'scalar'
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]

mov %r6, %r1
mov %r7, %r2
mov %r4, %r2
add %r4, 4
jgt %r4, %r3, +5
mov %r1, %r6
mov %r2, 2
call 44
ldxb %r0, [%r7+0]
exit
mov %r0, 0
exit
