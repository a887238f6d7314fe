# expect: program of this type cannot use helper bpf_xdp_adjust_head#44
# type: tc
mov %r2, 0
call 44
mov %r0, 0
exit
