# expect: unreachable insn 2
# type: xdp
mov %r0, 0
exit
mov %r0, 1
exit
