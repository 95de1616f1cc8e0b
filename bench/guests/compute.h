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

#endif
