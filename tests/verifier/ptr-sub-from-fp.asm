# expect: subtraction from stack pointer prohibited
# type: xdp
# kernel: accept
# why: the kernel folds a known constant subtrahend into the fixed offset before this check; we reject any subtraction of a register from fp
mov %r2, %r10
mov %r3, 8
sub %r2, %r3
mov %r0, 0
exit
