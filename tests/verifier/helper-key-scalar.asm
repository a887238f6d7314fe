# expect: R2 type=scalar expected=fp, pkt, pkt_meta, map_key, map_value
# type: xdp
# map: hash key=4 value=8 entries=16
lddw %r1, map_idx(0)
mov %r2, 0
call 1
mov %r0, 0
exit
