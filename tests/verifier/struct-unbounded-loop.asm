# expect: BPF program is too large. Processed 1000001 insn
# type: xdp
# kernel: reject
    ldxw %r2, [%r1+0]
    mov %r0, 0
loop:
    add %r0, 1
    jlt %r0, %r2, loop
    mov %r0, 2
    exit
