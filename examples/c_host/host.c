/* Runs a program compiled by `jitbpf compile` (xdp_stats.bpf.o, the bundled example) over
 * the packets of a pcap file, then prints r0 of each run and the "stats" map. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "xdp_stats.h"

static int quiet;

/* The one helper the program calls that the object's runtime leaves to its host. */
uint64_t bpf_trace_printk(uint64_t fmt, uint64_t size, uint64_t a, uint64_t b, uint64_t c)
{
    (void)size;
    if (quiet)
        return 0;
    printf("trace: ");
    printf((const char *)(uintptr_t)fmt, a, b, c);
    printf("\n");
    return 0;
}

struct counters { uint64_t packets, bytes; };

static int run_pcap(const char *path, long repeat)
{
    FILE *f = fopen(path, "rb");
    static unsigned char packets[64][2048];
    static uint32_t lengths[64];
    unsigned char header[24], record[16];
    int n = 0;

    if (!f || fread(header, 1, 24, f) != 24) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    while (n < 64 && fread(record, 1, 16, f) == 16) {
        uint32_t caplen;
        memcpy(&caplen, record + 8, 4);
        if (caplen > sizeof packets[0] || fread(packets[n], 1, caplen, f) != caplen)
            break;
        lengths[n++] = caplen;
    }
    fclose(f);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long r = 0; r < repeat; r++) {
        for (int i = 0; i < n; i++) {
            struct jitbpf_xdp_md md = { packets[i], packets[i] + lengths[i], NULL, 1, 0, 0 };
            uint64_t r0 = xdp_stats(&md, sizeof md);
            uint64_t pc;
            int err = jitbpf_last_error(&pc, NULL);
            if (err) {
                fprintf(stderr, "packet %d: error %d at instruction %llu\n", i, err, (unsigned long long)pc);
                return 1;
            }
            if (repeat == 1)
                printf("packet %d: r0 = %llu\n", i, (unsigned long long)r0);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (repeat > 1)
        printf("%.1f ns per run\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / ((double)repeat * n));
    return 0;
}

int main(int argc, char **argv)
{
    long repeat = argc > 2 ? atol(argv[2]) : 1;
    quiet = repeat > 1;
    if (run_pcap(argc > 1 ? argv[1] : "traffic.pcap", repeat))
        return 1;
    uint32_t key, next;
    struct counters c;
    const void *prev = NULL;
    if (repeat > 1)
        return 0;
    while (jitbpf_map_next_key("stats", prev, &next) == 0) {
        if (jitbpf_map_lookup("stats", &next, &c) == 0)
            printf("stats[0x%x] = {packets %llu, bytes %llu}\n", next,
                   (unsigned long long)c.packets, (unsigned long long)c.bytes);
        key = next;
        prev = &key;
    }
    return 0;
}
