"""Classic BPF: tcpdump/libpcap filters, validated, interpreted, disassembled and
translated to eBPF so that every jitbpf engine runs them (see README, "Classic BPF").
"""
