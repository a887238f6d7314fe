# expect: div by zero
# type: xdp
mov32 %r0, 1
mod32 %r0, 0
exit
