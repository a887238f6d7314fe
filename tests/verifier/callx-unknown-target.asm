# expect: callx R2
# type: xdp
# kernel: reject
ldxw %r2, [%r1+12]
call %r2
mov %r0, 0
exit
