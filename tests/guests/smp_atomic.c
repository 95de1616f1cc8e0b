/*
 * smp_atomic.c - atomics and a spinlock on every CPU at once (issue 16): each CPU does
 * ITER LOCK INCs of one shared counter, ITER LOCK XADDs that take tickets (each ticket
 * marked with LOCK BTS in a shared bitmap: no ticket twice, none missing), ITER LOCK
 * CMPXCHG read-modify-write loops, ITER LOCK CMPXCHG8B loops on a 64-bit counter that
 * carries from its low into its high half on the way, and ITER critical sections under
 * an XCHG spinlock doing plain (non-atomic) read-modify-writes of shared data.  The
 * totals must be exact (SDM vol. 3, "Locked Atomic Operations").
 */
#include "lib/smp.h"

#define ITER 200000u

static volatile u32 go, counter, tickets, cas_counter, lock_word;
static volatile u64 wide __attribute__((aligned(8)));
static u32 ticket_bits[(SMP_MAX * ITER + 31) / 32];
static volatile u32 dup_tickets[SMP_MAX], cas_retries[SMP_MAX], wide_retries[SMP_MAX];
static volatile u32 inside, overlap[SMP_MAX];
/* Guarded by lock_word: plain loads and stores, deliberately not atomic. */
static struct { u32 a, b; u64 c; } shared;

#define WIDE_START 0xfffe0000ull /* low half wraps after 0x20000 increments */

/* Every CPU waits until all have arrived, so the loops really overlap. */
static void start_together(void)
{
    __asm__ volatile("lock incl %0" : "+m"(go) : : "memory");
    while (go < (u32)smp_ncpus)
        cpu_relax();
}

static void inc_loop(int cpu)
{
    (void)cpu;
    start_together();
    for (u32 i = 0; i < ITER; i++)
        __asm__ volatile("lock incl %0" : "+m"(counter) : : "memory");
}

/* The control: INC without LOCK.  Lost updates are allowed, not required; their number
   only shows whether the CPUs really ran at the same time. */
static volatile u32 unlocked;
static void plain_loop(int cpu)
{
    (void)cpu;
    start_together();
    for (u32 i = 0; i < ITER; i++)
        __asm__ volatile("incl %0" : "+m"(unlocked) : : "memory");
}

static void xadd_loop(int cpu)
{
    u32 dups = 0;
    start_together();
    for (u32 i = 0; i < ITER; i++) {
        u32 t = 1;
        __asm__ volatile("lock xaddl %0, %1" : "+r"(t), "+m"(tickets) : : "memory");
        u8 was;
        __asm__ volatile("lock btsl %2, %1; setc %0"
                         : "=q"(was), "+m"(*(volatile u32 (*)[SMP_MAX * ITER / 32])ticket_bits)
                         : "r"(t) : "memory", "cc");
        dups += was;
    }
    dup_tickets[cpu] = dups;
}

static void cas_loop(int cpu)
{
    u32 retries = 0;
    start_together();
    for (u32 i = 0; i < ITER; i++) {
        u32 old = cas_counter, seen;
        for (;;) {
            /* A non-trivial update: new = old + 1, computed from the value read. */
            __asm__ volatile("lock cmpxchgl %2, %1"
                             : "=a"(seen), "+m"(cas_counter) : "r"(old + 1), "0"(old)
                             : "memory", "cc");
            if (seen == old)
                break;
            old = seen;
            retries++;
        }
    }
    cas_retries[cpu] = retries;
}

static void wide_loop(int cpu)
{
    u32 retries = 0;
    start_together();
    for (u32 i = 0; i < ITER; i++) {
        u32 lo = (u32)wide, hi = (u32)(wide >> 32); /* may be torn: CMPXCHG8B catches it */
        for (;;) {
            u32 nlo = lo + 1, nhi = hi + (nlo == 0);
            u8 ok;
            __asm__ volatile("lock cmpxchg8b %1; sete %0"
                             : "=q"(ok), "+m"(wide), "+a"(lo), "+d"(hi)
                             : "b"(nlo), "c"(nhi) : "memory", "cc");
            if (ok)
                break;
            retries++; /* EDX:EAX now holds what memory held */
        }
    }
    wide_retries[cpu] = retries;
}

static void spin_lock(volatile u32 *l)
{
    for (;;) {
        u32 v = 1;
        __asm__ volatile("xchgl %0, %1" : "+r"(v), "+m"(*l) : : "memory"); /* locked by itself */
        if (!v)
            return;
        while (*l)
            cpu_relax();
    }
}

static void spin_unlock(volatile u32 *l)
{
    barrier();
    *l = 0; /* a plain store releases under x86-TSO */
}

static void lock_loop(int cpu)
{
    u32 over = 0;
    start_together();
    for (u32 i = 0; i < ITER; i++) {
        spin_lock(&lock_word);
        if (inside++)
            over++;
        /* Volatile accesses: the compiler keeps each load and store, and the window
           between load and store is wide enough for another CPU to slip in unlocked. */
        volatile u32 *a = &shared.a, *b = &shared.b;
        volatile u64 *c = &shared.c;
        u32 va = *a;
        *b = *b + 2 * (va + 1) - 2 * va;
        *a = va + 1;
        *c = *c + 0x100000001ull;
        inside--;
        spin_unlock(&lock_word);
    }
    overlap[cpu] = over;
}

static u32 sum(volatile u32 *v)
{
    u32 s = 0;
    for (int i = 0; i < smp_ncpus; i++)
        s += v[i];
    return s;
}

static void run(smp_fn fn)
{
    go = 0;
    smp_all(fn);
}

void main(void)
{
    if (!smp_boot_all())
        return;
    u32 n = (u32)smp_ncpus, total = n * ITER;
    printf("smp_atomic: %u CPUs, %u iterations each\n", n, ITER);

    run(inc_loop);
    CHECK_EQ(counter, total, "LOCK INC: exact total");

    run(plain_loop);
    printf("smp_atomic: control, INC without LOCK: %u of %u updates lost (any number allowed)\n",
           total - unlocked, total);

    run(xadd_loop);
    CHECK_EQ(tickets, total, "LOCK XADD: exact total");
    CHECK_EQ(sum(dup_tickets), 0, "LOCK XADD: no ticket handed out twice");
    u32 missing = 0;
    for (u32 t = 0; t < total; t++)
        missing += !((ticket_bits[t / 32] >> (t % 32)) & 1);
    CHECK_EQ(missing, 0, "LOCK XADD: every ticket handed out");

    run(cas_loop);
    printf("smp_atomic: LOCK CMPXCHG retries %u\n", sum(cas_retries));
    CHECK_EQ(cas_counter, total, "LOCK CMPXCHG loop: exact total");

    wide = WIDE_START;
    run(wide_loop);
    printf("smp_atomic: LOCK CMPXCHG8B retries %u\n", sum(wide_retries));
    CHECK_EQ((u32)wide, (u32)(WIDE_START + total), "LOCK CMPXCHG8B loop: low half");
    CHECK_EQ((u32)(wide >> 32), (u32)((WIDE_START + total) >> 32),
             "LOCK CMPXCHG8B loop: high half (the carry)");

    run(lock_loop);
    CHECK_EQ(sum(overlap), 0, "XCHG spinlock: never two CPUs inside");
    CHECK_EQ(shared.a, total, "XCHG spinlock: plain counter exact");
    CHECK_EQ(shared.b, 2 * total, "XCHG spinlock: second field exact");
    CHECK_EQ((u32)shared.c, total, "XCHG spinlock: 64-bit field, low half");
    CHECK_EQ((u32)(shared.c >> 32), total, "XCHG spinlock: 64-bit field, high half");
}
