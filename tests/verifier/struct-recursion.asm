# expect: recursive call
# type: xdp
# kernel: reject
    call local f
    exit
f:
    call local f
    exit
