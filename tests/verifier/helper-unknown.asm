# expect: invalid func unknown#999
# type: xdp
call 999
mov %r0, 0
exit
