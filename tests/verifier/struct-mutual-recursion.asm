# expect: recursive call
# type: xdp
    call local f
    exit
f:
    call local g
    exit
g:
    call local f
    exit
