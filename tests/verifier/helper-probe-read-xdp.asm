# expect: program of this type cannot use helper bpf_probe_read#4
# type: xdp
stdw [%r10-8], 0
mov %r1, %r10
add %r1, -8
mov %r2, 8
mov %r3, 0
call 4
mov %r0, 0
exit
