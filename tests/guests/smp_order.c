/*
 * smp_order.c - memory ordering litmus tests on two CPUs (issue 16), checking only what
 * x86-TSO forbids (SDM vol. 3, "Memory Ordering in P6 and More Recent Processor
 * Families"; Owens, Sarkar, Sewell, "A Better x86 Memory Model: x86-TSO"):
 *   MP    stores data then flag; the reader loads flag then data: flag new and data old
 *         is forbidden (streamed over 500,000 values, and as 65,536 separate instances);
 *   SB    store x, load y against store y, load x: both loads 0 is allowed (the store
 *         buffer: counted and printed), forbidden with MFENCE, with XCHG as the store,
 *         and with a LOCK-prefixed add to the stack between store and load;
 *   LB    load x, store y against load y, store x: both loads 1 is forbidden;
 *   2+2W  x=1, y=2 against y=1, x=2: finally x=1 and y=1 is forbidden.
 * Each instance uses locations of its own (arrays indexed by the iteration), and the two
 * CPUs keep within two iterations of each other (mostly: see step) so the instances
 * really overlap.
 */
#include "lib/smp.h"

#define K 65536u
#define STREAM 500000u

static volatile u32 X[K], Y[K];
static volatile u8 R0[K], R1[K];
static volatile u32 pos[2], test;
enum { T_SB, T_SB_MFENCE, T_SB_XCHG, T_SB_LOCKADD, T_LB, T_MP, T_2P2W, T_STREAM };

/* Streamed message passing: each CPU publishes its own data words then its flag, and
   checks the other's. */
struct msg { volatile u32 data[4]; u32 pad[12]; volatile u32 flag; u32 pad2[15]; };
static struct msg msgs[2] __attribute__((aligned(64)));
static volatile u32 stale[2], reads[2];

/* Keeps this CPU within two iterations of the other while both run.  A vCPU thread of
   a loaded host can be descheduled for milliseconds: after 20,000 spins the CPU runs
   4,096 iterations without waiting (any interleaving is a valid run of the tests; only
   fewer instances overlap) instead of paying a host time slice per iteration. */
static u32 free_until[2];
static inline void step(int me, u32 i)
{
    pos[me] = i;
    if (i < free_until[me])
        return;
    for (u32 n = 0; pos[me ^ 1] + 2 < i; n++) {
        if (n == 20000) {
            free_until[me] = i + 4096;
            return;
        }
        cpu_relax();
    }
}

static void stream(int me)
{
    struct msg *mine = &msgs[me], *other = &msgs[me ^ 1];
    u32 bad = 0, n = 0, f = 0;
    for (u32 i = 1; i <= STREAM || f < STREAM; i++) {
        if (i <= STREAM) {
            for (int k = 0; k < 4; k++)
                mine->data[k] = i;
            mine->flag = i;
        }
        f = other->flag;
        for (int k = 0; k < 4; k++)
            bad += other->data[k] < f;
        n++;
    }
    stale[me] = bad;
    reads[me] = n;
}

static void litmus(int me)
{
    u32 t = test;
    if (t == T_STREAM) {
        stream(me);
        return;
    }
    /* CPU 0's side uses X first, CPU 1's Y: a and b are "mine" and "the other's". */
    volatile u32 *a = me ? Y : X, *b = me ? X : Y;
    volatile u8 *r = me ? R1 : R0;
    for (u32 i = 0; i < K; i++) {
        step(me, i);
        switch (t) {
        case T_SB:
            a[i] = 1;
            r[i] = (u8)b[i];
            break;
        case T_SB_MFENCE:
            a[i] = 1;
            mfence();
            r[i] = (u8)b[i];
            break;
        case T_SB_XCHG: {
            u32 one = 1;
            __asm__ volatile("xchgl %0, %1" : "+r"(one), "+m"(a[i]) : : "memory");
            r[i] = (u8)b[i];
            break;
        }
        case T_SB_LOCKADD:
            a[i] = 1;
            __asm__ volatile("lock addl $0, (%%esp)" ::: "memory", "cc");
            r[i] = (u8)b[i];
            break;
        case T_LB:
            r[i] = (u8)b[i];
            a[i] = 1;
            break;
        case T_MP: /* CPU 0 writes data X then flag Y; CPU 1 reads flag then data */
            if (!me) {
                X[i] = 1;
                Y[i] = 1;
            } else {
                u32 flag = Y[i];
                r[i] = (u8)(flag | X[i] << 1);
            }
            break;
        case T_2P2W:
            if (!me) {
                X[i] = 1;
                Y[i] = 2;
            } else {
                Y[i] = 1;
                X[i] = 2;
            }
            break;
        }
    }
    pos[me] = K + 2; /* the other side never waits for this one again */
}

/* Runs test t on CPUs 0 and 1 from a clean state; returns when both are done. */
static void run(u32 t)
{
    for (u32 i = 0; i < K; i++) {
        X[i] = Y[i] = 0;
        R0[i] = R1[i] = 0;
    }
    pos[0] = pos[1] = 0;
    free_until[0] = free_until[1] = 0;
    test = t;
    smp_call(1, litmus);
    litmus(0);
    smp_join(1);
}

/* Instances whose outcome (R0, R1) is (r0, r1). */
static u32 outcomes(u8 r0, u8 r1)
{
    u32 n = 0;
    for (u32 i = 0; i < K; i++)
        n += R0[i] == r0 && R1[i] == r1;
    return n;
}

void main(void)
{
    if (!smp_boot_all())
        return;

    run(T_STREAM);
    printf("smp_order: streamed MP: CPU 0 read %u times, CPU 1 %u times\n", reads[0], reads[1]);
    CHECK_EQ(stale[0] + stale[1], 0, "MP streamed: never data older than the flag");

    run(T_SB);
    printf("smp_order: SB plain over %u instances: (0,0) %u (allowed), (0,1) %u, (1,0) %u, "
           "(1,1) %u\n",
           K, outcomes(0, 0), outcomes(0, 1), outcomes(1, 0), outcomes(1, 1));
    CHECK_EQ(outcomes(0, 0) + outcomes(0, 1) + outcomes(1, 0) + outcomes(1, 1), K,
             "SB plain: every instance ran on both CPUs");
    run(T_SB_MFENCE);
    CHECK_EQ(outcomes(0, 0), 0, "SB with MFENCE: never (0,0)");
    run(T_SB_XCHG);
    CHECK_EQ(outcomes(0, 0), 0, "SB with XCHG stores: never (0,0)");
    run(T_SB_LOCKADD);
    CHECK_EQ(outcomes(0, 0), 0, "SB with LOCK ADD between: never (0,0)");
    run(T_LB);
    printf("smp_order: LB: (0,0) %u, (0,1) %u, (1,0) %u\n", outcomes(0, 0), outcomes(0, 1),
           outcomes(1, 0));
    CHECK_EQ(outcomes(1, 1), 0, "LB: never (1,1)");
    run(T_MP);
    u32 stale_mp = 0, flag_seen = 0;
    for (u32 i = 0; i < K; i++) {
        stale_mp += R1[i] == 1; /* flag 1, data 0 */
        flag_seen += R1[i] & 1;
    }
    printf("smp_order: MP instances: the reader saw the flag set in %u of %u\n", flag_seen, K);
    CHECK_EQ(stale_mp, 0, "MP instances: never flag new and data old");
    run(T_2P2W);
    u32 both1 = 0;
    for (u32 i = 0; i < K; i++)
        both1 += X[i] == 1 && Y[i] == 1;
    CHECK_EQ(both1, 0, "2+2W: never finally x=1 and y=1");
}
