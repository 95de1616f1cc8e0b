/*
 * compute.h - the compute kernel shared by the benchmark guest (translated at CPL 0)
 * and the native runner (the same C compiled for the host): integer mixing with a
 * data-dependent branch and a small table, no system calls and no I/O.
 */
#ifndef XBT_BENCH_COMPUTE_H
#define XBT_BENCH_COMPUTE_H

static unsigned compute_table[256];

static __attribute__((noinline)) unsigned compute_kernel(unsigned n)
{
    unsigned x = 2463534242u, acc = 0;
    for (unsigned i = 0; i < 256; i++)
        compute_table[i] = i * 2654435761u;
    for (unsigned i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (x & 0x100)
            acc += compute_table[x & 0xff] ^ i;
        else
            acc = (acc << 3) + (acc >> 7) + x;
    }
    return acc;
}

/* The branchy workload (traces, issue 7): a small open-addressing hash table of keys
   from a linear congruential generator, probed linearly (a data-dependent inner loop),
   hits counted, a data-dependent branch on every key, the table cleared every 1024
   keys.  No calls, no I/O. */
static unsigned branchy_table[1024];

static __attribute__((noinline)) unsigned branchy_kernel(unsigned n)
{
    unsigned x = 12345, hits = 0, acc = 0;
    for (unsigned i = 0; i < 1024; i++)
        branchy_table[i] = 0;
    for (unsigned i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        unsigned key = (x >> 8) & 0x7ff, h = (key * 2654435761u) >> 22;
        for (;;) {
            unsigned v = branchy_table[h];
            if (v == 0) {
                branchy_table[h] = key + 1;
                break;
            }
            if (v == key + 1) {
                hits++;
                break;
            }
            h = (h + 1) & 1023;
        }
        if (key & 1)
            acc += key;
        else
            acc ^= key << 3;
        if ((i & 511) == 511)
            for (unsigned k = 0; k < 1024; k++)
                branchy_table[k] = 0;
    }
    return acc + hits;
}

#endif
