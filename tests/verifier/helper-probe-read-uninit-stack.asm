# expect: invalid indirect read from stack R3 off -8+0 size 8
# type: kprobe
# kernel: accept
# why: uninitialised stack copied by bpf_probe_read_kernel: Linux lets root read it; verified code here never observes such bytes
mov %r1, %r10
add %r1, -16
mov %r2, 8
mov %r3, %r10
add %r3, -8
call 113
mov %r0, 0
exit
