# expect: kernel function
# type: xdp
# kernel: reject
call runtime 77
mov %r0, 0
exit
