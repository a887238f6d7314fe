# expect: unreachable insn 1
# type: xdp
ja +1
mov %r0, 1
mov %r0, 0
exit
