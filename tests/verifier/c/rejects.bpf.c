/* Verifier rejection cases that need what only clang gives: BTF-described maps (spin
 * locks), global data, kfunc prototypes. Each function is one case; its expected
 * message is the "// NAME: expect:" line above it (see verifier/corpus.py). */
#include "../../fixtures/common.h"

struct val { struct bpf_spin_lock lock; __u32 pad; __u64 count; };
struct plain { __u64 a, b; };
struct obj { __u64 x, y; };

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, struct val);
} locks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct plain);
} plains SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

const volatile __u32 setting = 7;
extern struct obj *jitbpf_find(__u64 id) __ksym;

static __always_inline struct val *get(__u32 k)
{
    return bpf_map_lookup_elem(&locks, &k);
}

// lock_leak: expect: bpf_spin_unlock is missing
SEC("tc")
int lock_leak(struct __sk_buff *skb)
{
    struct val *v = get(0);
    if (!v)
        return 0;
    bpf_spin_lock(&v->lock);
    v->count++;
    return 1;
}

// lock_call: expect: function calls are not allowed while holding a lock
SEC("tc")
int lock_call(struct __sk_buff *skb)
{
    struct val *v = get(0);
    if (!v)
        return 0;
    bpf_spin_lock(&v->lock);
    v->count = bpf_ktime_get_ns();
    bpf_spin_unlock(&v->lock);
    return 0;
}

// double_lock: expect: function calls are not allowed while holding a lock
SEC("tc")
int double_lock(struct __sk_buff *skb)
{
    struct val *a = get(0), *b = get(1);
    if (!a || !b)
        return 0;
    bpf_spin_lock(&a->lock);
    bpf_spin_lock(&b->lock);
    b->count++;
    bpf_spin_unlock(&b->lock);
    bpf_spin_unlock(&a->lock);
    return 0;
}

// unlock_only: expect: bpf_spin_unlock without taking a lock
SEC("tc")
int unlock_only(struct __sk_buff *skb)
{
    struct val *v = get(0);
    if (!v)
        return 0;
    bpf_spin_unlock(&v->lock);
    return 0;
}

// unlock_other: expect: bpf_spin_unlock of different lock
SEC("tc")
int unlock_other(struct __sk_buff *skb)
{
    struct val *a = get(0), *b = get(1);
    if (!a || !b)
        return 0;
    bpf_spin_lock(&a->lock);
    a->count++;
    bpf_spin_unlock(&b->lock);
    return 0;
}

// direct_access: expect: bpf_spin_lock cannot be accessed directly by load/store
SEC("tc")
int direct_access(struct __sk_buff *skb)
{
    struct val *v = get(0);
    if (!v)
        return 0;
    return *(volatile __u32 *)&v->lock;
}

// wrong_offset: expect: doesn't point to 'struct bpf_spin_lock'
SEC("tc")
int wrong_offset(struct __sk_buff *skb)
{
    struct val *v = get(0);
    if (!v)
        return 0;
    bpf_spin_lock((struct bpf_spin_lock *)&v->count);
    bpf_spin_unlock((struct bpf_spin_lock *)&v->count);
    return 0;
}

// no_lock_field: expect: has no valid bpf_spin_lock
SEC("tc")
int no_lock_field(struct __sk_buff *skb)
{
    __u32 k = 0;
    struct plain *p = bpf_map_lookup_elem(&plains, &k);
    if (!p)
        return 0;
    bpf_spin_lock((struct bpf_spin_lock *)p);
    bpf_spin_unlock((struct bpf_spin_lock *)p);
    return 0;
}

// lock_in_kprobe: expect: tracing progs cannot use bpf_spin_lock yet
SEC("kprobe/do_nanosleep")
int lock_in_kprobe(void *ctx)
{
    struct val *v = get(0);
    if (!v)
        return 0;
    bpf_spin_lock(&v->lock);
    v->count++;
    bpf_spin_unlock(&v->lock);
    return 0;
}

// lock_one_path: expect: bpf_spin_unlock is missing
SEC("tc")
int lock_one_path(struct __sk_buff *skb)
{
    struct val *v = get(0);
    if (!v)
        return 0;
    bpf_spin_lock(&v->lock);
    if (skb->len > 100)
        return 2;
    bpf_spin_unlock(&v->lock);
    return 0;
}

// rodata_write: expect: write into map forbidden
SEC("tc")
int rodata_write(struct __sk_buff *skb)
{
    *(volatile __u32 *)&setting = skb->len;
    return 0;
}

// ringbuf_leak: expect: Unreleased reference
SEC("tc")
int ringbuf_leak(struct __sk_buff *skb)
{
    __u64 *rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
    if (!rec)
        return 0;
    *rec = skb->len;
    if (skb->len > 64)
        bpf_ringbuf_submit(rec, 0);
    return 0;
}

// ringbuf_oob: expect: invalid access to memory, mem_size=8 off=8 size=8
SEC("tc")
int ringbuf_oob(struct __sk_buff *skb)
{
    __u64 *rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
    if (!rec)
        return 0;
    rec[1] = skb->len;
    bpf_ringbuf_submit(rec, 0);
    return 0;
}

// kfunc_null: expect: invalid mem access 'ptr_obj_or_null'
// kfunc_null: kernel: reject
SEC("tc")
int kfunc_null(struct __sk_buff *skb)
{
    struct obj *o = jitbpf_find(skb->len);
    return o->x;
}

// kfunc_oob: expect: invalid access to memory, mem_size=16 off=16 size=8
SEC("tc")
int kfunc_oob(struct __sk_buff *skb)
{
    struct obj *o = jitbpf_find(skb->len);
    if (!o)
        return 0;
    return ((volatile __u64 *)o)[2];
}

// pkt_unchecked: expect: invalid access to packet
SEC("xdp")
int pkt_unchecked(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    return data[12];
}

// pkt_off_by_one: expect: invalid access to packet
SEC("xdp")
int pkt_off_by_one(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 14 > end)
        return 0;
    return data[14];
}

// map_index_unchecked: expect: max value is outside of the allowed memory range
SEC("tc")
int map_index_unchecked(struct __sk_buff *skb)
{
    __u32 k = 0;
    struct plain *p = bpf_map_lookup_elem(&plains, &k);
    if (!p)
        return 0;
    __u32 i = skb->len & 0xff;
    return ((volatile unsigned char *)p)[i];
}
