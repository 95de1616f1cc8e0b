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

/* The call-heavy workload (traces following calls and returns, issue 7): per key a
   mixing function, a lookup in a chained hash table of list nodes (a data-dependent
   list walk) and an update through a table of two functions (an indirect call whose
   target follows the key); every function is a real call and return. */
struct calls_node {
    unsigned key, count;
    struct calls_node *next;
};
static struct calls_node calls_nodes[512];
static struct calls_node *calls_heads[256];

static __attribute__((noinline)) unsigned calls_mix(unsigned x)
{
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

static __attribute__((noinline)) struct calls_node *calls_find(unsigned key)
{
    struct calls_node *n = calls_heads[(key * 2654435761u) >> 24];
    while (n && n->key != key)
        n = n->next;
    return n;
}

static __attribute__((noinline)) unsigned calls_add(struct calls_node *n, unsigned v)
{
    n->count += v;
    return n->count;
}

static __attribute__((noinline)) unsigned calls_xor(struct calls_node *n, unsigned v)
{
    n->count ^= v;
    return n->count;
}

static unsigned (*const calls_ops[2])(struct calls_node *, unsigned) = { calls_add, calls_xor };

static __attribute__((noinline)) unsigned calls_kernel(unsigned n)
{
    for (unsigned i = 0; i < 256; i++)
        calls_heads[i] = 0;
    for (unsigned i = 0; i < 512; i++) {
        unsigned h = ((i * 7u) * 2654435761u) >> 24;
        calls_nodes[i] = (struct calls_node){ i * 7u, 0, calls_heads[h] };
        calls_heads[h] = &calls_nodes[i];
    }
    unsigned x = 2463534242u, acc = 0;
    for (unsigned i = 0; i < n; i++) {
        x = calls_mix(x);
        struct calls_node *nd = calls_find((x >> 7) % (512u * 7u));
        if (nd)
            acc += calls_ops[(i >> 4) & 1](nd, x);
        else
            acc += x >> 20;
    }
    return acc;
}

#endif
