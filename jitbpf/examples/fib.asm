# Iterative Fibonacci: r0 = fib(r2), where r2 is the input memory's length
# (so `--mem-hex 00..` chooses n); with no memory, n = 0 -> r0 = 0.
    mov %r0, 0          # fib(i)
    mov %r3, 1          # fib(i+1)
loop:
    jeq %r2, 0, done
    mov %r4, %r0
    add %r4, %r3
    mov %r0, %r3
    mov %r3, %r4
    sub %r2, 1
    ja loop
done:
    exit
