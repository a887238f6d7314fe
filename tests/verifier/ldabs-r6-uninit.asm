# expect: R6 !read_ok
# type: socket
ldabsh 12
exit
