/* The bundled example (`make run`): an XDP program that keeps per-protocol packet
 * and byte counters in a hash map, and drops IPv4 traffic from one blocked source
 * address (a `const volatile` setting in .rodata, like a libbpf skeleton's). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct counters { __u64 packets; __u64 bytes; };

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);                  /* IP protocol, or 0x10000 + ethertype */
    __type(value, struct counters);
} stats SEC(".maps");

const volatile __u32 blocked_saddr = 0x0100a8c0;   /* 192.168.0.1, network byte order */

SEC("xdp")
int xdp_stats(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    __u32 key, saddr = 0;

    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    key = 0x10000 + bpf_ntohs(eth->h_proto);
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        if ((void *)(ip + 1) > data_end)
            return XDP_DROP;
        key = ip->protocol;
        saddr = ip->saddr;      /* read while the bounds check above still covers it */
    }
    struct counters *c = bpf_map_lookup_elem(&stats, &key);
    if (!c) {
        struct counters zero = {};
        bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
        c = bpf_map_lookup_elem(&stats, &key);
        if (!c)
            return XDP_ABORTED;
    }
    c->packets++;
    c->bytes += data_end - data;
    if (key < 0x10000 && saddr == blocked_saddr) {
        bpf_printk("drop proto %u from blocked source", key);
        return XDP_DROP;
    }
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
