# expect: R0 !read_ok
# type: xdp
exit
