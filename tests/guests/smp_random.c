/*
 * smp_random.c - random multi-CPU guests for races (issue 16): the code each CPU runs is
 * generated from a seed ("seed=N" on the command line, "cpus=N" the CPU count), while the
 * outcome does not depend on the interleaving, so every peer must print the same totals.
 * Three phases, all CPUs at once:
 *  1. Atomics: each CPU writes a random routine (LOCK ADD/SUB/INC/DEC/XADD/CMPXCHG loops,
 *     CMPXCHG8B loops, byte and word LOCK ADD, LOCK BTS/BTR/BTC/OR/AND on bits of a shared
 *     dword it owns, an XCHG spinlock around plain read-modify-writes, plain adds to its
 *     own data next to the other CPUs') into its quarter of one shared code page, runs it,
 *     and writes the next one while the other CPUs run theirs beside it.  The shared
 *     totals are known exactly (SDM vol. 3, "Locked Atomic Operations").
 *  2. Cross-modifying code: each round a CPU picked by the seed patches the immediate of
 *     a routine the others keep calling, then sets a flag; until they see the flag the
 *     callers must get the old or the new value (one aligned dword store: never a torn
 *     one); after the flag and CPUID they must get the new value (SDM vol. 3, "Handling
 *     Cross-Modifying Code").  Meanwhile each CPU rewrites and calls a function of its
 *     own on the same page (self-modifying code beside the others' code).
 *  3. Page tables: each round a CPU picked by the seed remaps a page of a shared page
 *     table to another frame and shoots it down on every CPU (an IPI whose handler does
 *     INVLPG, a flag after which each CPU does INVLPG, or a flag and a CR3 reload); then
 *     every CPU must read the new frame, some write it, and the PTE's A bit must be set
 *     and its D bit set exactly when one of them wrote (SDM vol. 3, "Propagation of
 *     Paging-Structure Changes to Multiple Processors", "Accessed and Dirty Flags").
 * "nolock=1" leaves the LOCK prefixes out of phase 1: the broken variant whose lost
 * updates show as mismatches when the CPUs really overlap (a check that can fail);
 * "loops=N" (default 256) runs each routine's body N times, long enough with nolock=1
 * (e.g. 200000) that the vCPU threads overlap on a loaded host; "phases=M" runs the
 * phases whose bits are set in M (default 7: all), "xrounds=N" gives phase 2 N rounds
 * (default 150): "phases=2 xrounds=3000" hunts a rare cross-modifying-code miss.
 */
#include "lib/smp.h"

#define REGION 1024u      /* phase 1: each CPU's part of the code page (4 CPUs a page) */
#define ROUTINES 24u      /* phase 1: routines each CPU writes and runs */
#define LOOPS 256u        /* phase 1: iterations of a routine's body per call (loops=N) */
#define MAX_OPS 16u
#define XROUNDS 150u      /* phase 2 rounds */
#define PROUNDS 200u      /* phase 3 rounds */
#define NPAGES 8u         /* phase 3: pages of the window */
#define NFRAMES 12u       /* phase 3: frames they map */
#define VBASE 0x40000000u
#define V_SHOOT 0x31
#define WAIT_US 10000000u
#define PTE_P 0x1u
#define PTE_W 0x2u
#define PTE_A 0x20u
#define PTE_D 0x40u

static u32 seed, ncpu, nolock, loops, phases, xrounds;

/* A 32-bit mix (splitmix32-like): the values all CPUs must agree on, from (seed, a, b). */
static u32 mix(u32 a, u32 b)
{
    u32 x = seed * 0x9e3779b9u ^ a * 0x85ebca6bu ^ b * 0xc2b2ae35u;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* Each CPU's own stream (xorshift32), seeded from the seed and its number. */
struct rng { u32 s; };
static u32 next(struct rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 17;
    r->s ^= r->s << 5;
    return r->s;
}
static u32 below(struct rng *r, u32 n) { return next(r) % n; }

static void lock_inc(volatile u32 *p) { __asm__ volatile("lock incl %0" : "+m"(*p) : : "memory"); }
static void lock_or(volatile u32 *p, u32 v) { __asm__ volatile("lock orl %1, %0" : "+m"(*p) : "r"(v) : "memory"); }

/* Every CPU waits until all have arrived (a sense-counting barrier). */
static volatile u32 bar_count, bar_gen;
static void sync_all(void)
{
    u32 gen = bar_gen, one = 1;
    __asm__ volatile("lock xaddl %0, %1" : "+r"(one), "+m"(bar_count) : : "memory");
    if (one == ncpu - 1) {
        bar_count = 0;
        barrier();
        bar_gen = gen + 1;
    } else {
        while (bar_gen == gen)
            cpu_relax();
    }
}

/* ---- phase 1: generated routines of atomics ---- */

static u8 code1[4096] __attribute__((aligned(4096)));
static volatile u32 ctr[4];
static volatile u64 wide __attribute__((aligned(8)));
static volatile u32 bits;               /* CPU i owns bits 8i..8i+7 */
static volatile u8 bytes8[4] __attribute__((aligned(4)));
static volatile u16 words16[2] __attribute__((aligned(4)));
static volatile u32 spin_lock, guarded[2];
static volatile u32 priv[SMP_MAX][4];   /* plain adds, each CPU its own, side by side */

struct expect {
    u32 ctr[4];
    u64 wide;
    u32 bits;
    u8 bytes8[4];
    u16 words16[2];
    u32 guarded[2];
    u32 priv[4];
};
static struct expect want[SMP_MAX];

struct emit {
    u8 *p;
    struct rng *r;
    int cpu;
    u32 bitops[MAX_OPS][2]; /* op (0 BTS 1 BTR 2 BTC 3 OR 4 AND), operand: per iteration */
    u32 nbitops;
};

static void e8(struct emit *e, u32 v) { *e->p++ = (u8)v; }
static void e32(struct emit *e, u32 v)
{
    for (int i = 0; i < 4; i++)
        e8(e, v >> (8 * i));
}
static void elock(struct emit *e)
{
    if (!nolock)
        e8(e, 0xf0);
}
/* ModRM 00 reg 101: [disp32], the absolute address of a variable. */
static void emem(struct emit *e, u32 reg, const volatile void *addr)
{
    e8(e, reg << 3 | 5);
    e32(e, (u32)addr);
}

/* JNZ rel8 back to `to` (a CMPXCHG loop's retry, taken when another CPU changed the
   value in between, and, on every peer, after a NOT EAX that spoils the expected value
   of half the loops).  The displacement is counted from the end of the JNZ: a
   constant here once pointed one byte past the label, into the middle of an
   instruction (the MODRM byte C3 of MOV EBX, EAX runs as RET), which only CPUs that
   really overlap (xbt, QEMU's multi-threaded TCG) ever took. */
static void ejnz_back(struct emit *e, const u8 *to)
{
    e8(e, 0x75);
    e8(e, (u32)(to - (e->p + 1)));
}

/* One random operation of the loop body; *x gains its effect times loops. */
static void gen_op(struct emit *e, struct expect *x)
{
    u32 k = below(e->r, 4), imm = next(e->r), own = 8u * (u32)e->cpu;
    switch (below(e->r, 13)) {
    case 0: elock(e); e8(e, 0x81); emem(e, 0, &ctr[k]); e32(e, imm); x->ctr[k] += imm * loops; break;
    case 1: elock(e); e8(e, 0x81); emem(e, 5, &ctr[k]); e32(e, imm); x->ctr[k] -= imm * loops; break;
    case 2: elock(e); e8(e, 0xff); emem(e, 0, &ctr[k]); x->ctr[k] += loops; break;
    case 3: elock(e); e8(e, 0xff); emem(e, 1, &ctr[k]); x->ctr[k] -= loops; break;
    case 4: /* mov eax, imm; lock xadd [ctr], eax */
        e8(e, 0xb8); e32(e, imm);
        elock(e); e8(e, 0x0f); e8(e, 0xc1); emem(e, 0, &ctr[k]);
        x->ctr[k] += imm * loops;
        break;
    case 5: { /* mov eax, [ctr]; 1: lea edx, [eax + imm]; lock cmpxchg [ctr], edx; jnz 1b */
        e8(e, 0xa1); e32(e, (u32)&ctr[k]);
        if (imm & 0x20000)
            e8(e, 0xf7), e8(e, 0xd0); /* not eax: the first CMPXCHG fails, the retry runs */
        const u8 *again = e->p;
        e8(e, 0x8d); e8(e, 0x90); e32(e, imm);
        elock(e); e8(e, 0x0f); e8(e, 0xb1); emem(e, 2, &ctr[k]);
        ejnz_back(e, again);
        x->ctr[k] += imm * loops;
        break;
    }
    case 6: { /* edx:eax = wide; 1: ecx:ebx = edx:eax + imm; lock cmpxchg8b; jnz 1b */
        e8(e, 0xa1); e32(e, (u32)&wide);
        e8(e, 0x8b); emem(e, 2, (const volatile u8 *)&wide + 4);
        if (imm & 0x20000)
            e8(e, 0xf7), e8(e, 0xd0); /* not eax: as above, on every peer */
        const u8 *again = e->p;
        e8(e, 0x89); e8(e, 0xc3); e8(e, 0x89); e8(e, 0xd1);
        e8(e, 0x81); e8(e, 0xc3); e32(e, imm);
        e8(e, 0x83); e8(e, 0xd1); e8(e, 0);
        elock(e); e8(e, 0x0f); e8(e, 0xc7); emem(e, 1, &wide);
        ejnz_back(e, again);
        x->wide += (u64)imm * loops;
        break;
    }
    case 7: /* lock add byte [bytes8 + k], imm8 */
        elock(e); e8(e, 0x80); emem(e, 0, &bytes8[k]); e8(e, imm);
        x->bytes8[k] += (u8)(imm * loops);
        break;
    case 8: /* lock add word [words16 + k/2], imm16; the prefixes in either order */
        if (imm & 0x10000) { e8(e, 0x66); elock(e); } else { elock(e); e8(e, 0x66); }
        e8(e, 0x81); emem(e, 0, &words16[k & 1]); e8(e, imm); e8(e, imm >> 8);
        x->words16[k & 1] += (u16)(imm * loops);
        break;
    case 9: { /* lock bts/btr/btc [bits], own bit */
        u32 op = below(e->r, 3), b = own + (imm & 7);
        elock(e); e8(e, 0x0f); e8(e, 0xba); emem(e, 5 + op, &bits); e8(e, b);
        e->bitops[e->nbitops][0] = op;
        e->bitops[e->nbitops++][1] = 1u << b;
        break;
    }
    case 10: { /* lock or / lock and [bits], own bits only */
        u32 op = 3 + below(e->r, 2), m = (imm & 0xff) << own;
        elock(e); e8(e, 0x81); emem(e, op == 3 ? 1 : 4, &bits); e32(e, op == 3 ? m : ~m);
        e->bitops[e->nbitops][0] = op;
        e->bitops[e->nbitops++][1] = m;
        break;
    }
    case 11: /* 1: mov eax, 1; xchg [lock], eax; test eax, eax; jz 2f; pause; jmp 1b;
                2: add [guarded], imm (plain); mov [lock], 0 */
        e8(e, 0xb8); e32(e, 1);
        e8(e, 0x87); emem(e, 0, &spin_lock);
        e8(e, 0x85); e8(e, 0xc0);
        e8(e, 0x74); e8(e, 4);
        e8(e, 0xf3); e8(e, 0x90);
        e8(e, 0xeb); e8(e, 0xed);
        e8(e, 0x81); emem(e, 0, &guarded[k & 1]); e32(e, imm);
        e8(e, 0xc7); emem(e, 0, &spin_lock); e32(e, 0);
        x->guarded[k & 1] += imm * loops;
        break;
    default: /* add [priv], imm: plain, this CPU's own data */
        e8(e, 0x81); emem(e, 0, &priv[e->cpu][k]); e32(e, imm);
        x->priv[k] += imm * loops;
        break;
    }
}

/* The bit operations of one body, loops times over this CPU's bits. */
static void run_bitops(const struct emit *e, struct expect *x)
{
    for (u32 l = 0; l < loops; l++)
        for (u32 i = 0; i < e->nbitops; i++) {
            u32 m = e->bitops[i][1];
            switch (e->bitops[i][0]) {
            case 0: case 3: x->bits |= m; break;
            case 1: case 4: x->bits &= ~m; break;
            default: x->bits ^= m; break;
            }
        }
}

/* Writes a routine (push ebx/esi; esi = loops; body; dec esi; jnz; pop; ret) aside,
   then into this CPU's region as dwords (one store per dword, as a guest would copy). */
static void gen_routine(int cpu, struct rng *r, struct expect *x)
{
    static u8 aside[SMP_MAX][REGION] __attribute__((aligned(4)));
    struct emit e = { aside[cpu], r, cpu, { { 0 } }, 0 };
    e8(&e, 0x53); e8(&e, 0x56);
    e8(&e, 0xbe); e32(&e, loops);
    u8 *top = e.p;
    for (u32 n = 4 + below(r, MAX_OPS - 3); n && e.p < aside[cpu] + REGION - 64; n--)
        gen_op(&e, x);
    e8(&e, 0x4e);
    e8(&e, 0x0f); e8(&e, 0x85); e32(&e, (u32)(top - (e.p + 4)));
    e8(&e, 0x5e); e8(&e, 0x5b); e8(&e, 0xc3);
    run_bitops(&e, x);
    volatile u32 *dst = (volatile u32 *)(void *)(code1 + REGION * (u32)cpu);
    const u32 *src = (const u32 *)(void *)aside[cpu];
    for (u32 i = 0; i < (u32)(e.p - aside[cpu] + 3) / 4; i++)
        dst[i] = src[i];
}

static void atomics(int cpu)
{
    struct rng r = { mix(1, (u32)cpu) | 1 };
    sync_all();
    for (u32 i = 0; i < ROUTINES; i++) {
        gen_routine(cpu, &r, &want[cpu]);
        ((void (*)(void))(void *)(code1 + REGION * (u32)cpu))();
    }
}

/* Prints and checks one total; the number of mismatches is what the broken variant shows. */
static u32 mismatches;
static void total(const char *what, u32 got, u32 exp)
{
    if (got != exp) {
        mismatches++;
        printf("smp_random: seed %u: %s is %x, want %x\n", seed, what, got, exp);
    }
}

static void check_atomics_run(void)
{
    smp_all(atomics);
    struct expect s;
    memset(&s, 0, sizeof s);
    for (u32 c = 0; c < ncpu; c++) {
        for (int k = 0; k < 4; k++) {
            s.ctr[k] += want[c].ctr[k];
            s.bytes8[k] += want[c].bytes8[k];
            total("a CPU's private counter", priv[c][k], want[c].priv[k]);
        }
        s.wide += want[c].wide;
        s.bits |= want[c].bits;
        for (int k = 0; k < 2; k++) {
            s.words16[k] += want[c].words16[k];
            s.guarded[k] += want[c].guarded[k];
        }
    }
    u32 before = mismatches;
    for (int k = 0; k < 4; k++) {
        total("a LOCK ADD/SUB/INC/DEC/XADD/CMPXCHG counter", ctr[k], s.ctr[k]);
        total("a LOCK ADD byte counter", bytes8[k], s.bytes8[k]);
    }
    total("the CMPXCHG8B counter's low half", (u32)wide, (u32)s.wide);
    total("the CMPXCHG8B counter's high half", (u32)(wide >> 32), (u32)(s.wide >> 32));
    total("the LOCK BTS/BTR/BTC/OR/AND bits", bits, s.bits);
    for (int k = 0; k < 2; k++) {
        total("a LOCK ADD word counter", words16[k], s.words16[k]);
        total("a counter under the XCHG spinlock", guarded[k], s.guarded[k]);
    }
    printf("smp_random: seed %u: phase 1: %u of 15 shared totals wrong%s\n", seed,
           mismatches - before, nolock ? " (LOCK prefixes left out)" : "");
    CHECK_EQ(mismatches, 0, "random atomics: every total exact");
}

/* ---- phase 2: cross-modifying code ---- */

static u8 code2[4096] __attribute__((aligned(4096)));
static u32 r_off, own_off[SMP_MAX];   /* the shared routine (16 bytes), each CPU's (8) */
static volatile u32 x_flag, x_acks, x_timeouts;
static volatile u32 x_bad[SMP_MAX], x_torn[SMP_MAX], x_smc_bad[SMP_MAX], x_calls[SMP_MAX];
static volatile u32 x_first[SMP_MAX][2]; /* a CPU's first stale round and what it got */
static volatile u32 x_smc_first[SMP_MAX][3]; /* a CPU's first own-function miss: round, got, want */
static u32 x_round[SMP_MAX];            /* each CPU's current round (for x_smc_first) */

static u32 xval(u32 round) { return mix(2, round); }
typedef u32 (*fn0)(void);

/* The shared routine in one of three forms (the seed picks), its immediate aligned at
   +4 so that the writer changes it with one dword store: nop nop nop; mov eax, imm; ret |
   xor eax, eax; nop; add eax, imm; ret | nop nop nop; push imm; pop eax; ret. */
static void put_shared(u32 form, u32 v)
{
    static const u32 head[3] = { 0xb8909090u, 0x0590c031u, 0x68909090u };
    static const u32 tail[3] = { 0xc3u, 0xc3u, 0xc358u };
    volatile u32 *d = (volatile u32 *)(void *)(code2 + r_off);
    d[0] = head[form];
    d[1] = v;
    d[2] = tail[form];
}

/* This CPU's own function, rewritten (two dword stores) and called at once: a new form
   each time (mov; ret | push; pop; ret | mov ~v; not; ret), 8 bytes on 8-aligned slots
   that may share a 16-byte chunk with another CPU's. */
static void own_smc(int cpu, struct rng *r)
{
    u32 v = next(r), w[2];
    switch (below(r, 3)) {
    case 0: w[0] = 0xb8 | v << 8; w[1] = v >> 24 | 0xc3c3c300u; break;
    case 1: w[0] = 0x68 | v << 8; w[1] = v >> 24 | 0xc3c35800u; break;
    default: w[0] = 0xb8 | ~v << 8; w[1] = ~v >> 24 | 0xc3d0f700u; break;
    }
    volatile u32 *d = (volatile u32 *)(void *)(code2 + own_off[cpu]);
    d[0] = w[0];
    d[1] = w[1];
    u32 got = ((fn0)(void *)(code2 + own_off[cpu]))();
    if (got != v && !x_smc_bad[cpu]++) {
        x_smc_first[cpu][0] = x_round[cpu];
        x_smc_first[cpu][1] = got;
        x_smc_first[cpu][2] = v;
    }
}

static void xmc_execute(int cpu, u32 round, struct rng *r)
{
    fn0 shared = (fn0)(void *)(code2 + r_off);
    struct smp_clock c;
    smp_clock_start(&c);
    for (u32 spin = 0; x_flag != round; spin++) {
        u32 got = shared(); /* the writer may be patching it right now */
        if (got != xval(round - 1) && got != xval(round))
            x_torn[cpu]++;
        x_calls[cpu]++;
        if ((spin & 7) == 0)
            own_smc(cpu, r);
        cpu_relax();
        if ((spin & 255) == 255 && smp_clock_us(&c) > WAIT_US) {
            x_timeouts++;
            break;
        }
    }
    serialize();
    u32 got = shared();
    if (got != xval(round) && !x_bad[cpu]++) {
        x_first[cpu][0] = round;
        x_first[cpu][1] = got;
    }
    lock_inc(&x_acks);
}

static void xmc(int cpu)
{
    struct rng r = { mix(3, (u32)cpu) | 1 };
    sync_all();
    for (u32 round = 1; round <= xrounds; round++) {
        x_round[cpu] = round;
        if (mix(4, round) % ncpu != (u32)cpu) {
            xmc_execute(cpu, round, &r);
            continue;
        }
        if (!smp_wait_eq(&x_acks, (round - 1) * (ncpu - 1), WAIT_US))
            x_timeouts++;
        *(volatile u32 *)(void *)(code2 + r_off + 4) = xval(round);
        barrier(); /* the new code before the flag: x86-TSO keeps the stores in order */
        x_flag = round;
        own_smc(cpu, &r);
    }
}

/* Places the routines (the seed picks the slots), runs the rounds, checks. */
static void check_xmc(void)
{
    struct rng r = { mix(5, 0) | 1 };
    r_off = 16 * below(&r, 256);
    for (u32 c = 0; c < ncpu; c++) {
        for (;;) {
            u32 o = 8 * below(&r, 512), clash = o >= r_off && o < r_off + 16;
            for (u32 d = 0; d < c; d++)
                clash |= own_off[d] == o;
            if (!clash) {
                own_off[c] = o;
                break;
            }
        }
    }
    put_shared(mix(6, 0) % 3, xval(0));
    smp_all(xmc);
    u32 bad = 0, torn = 0, smc = 0, calls = 0;
    for (u32 c = 0; c < ncpu; c++) {
        bad += x_bad[c];
        torn += x_torn[c];
        smc += x_smc_bad[c];
        calls += x_calls[c];
        if (x_smc_bad[c])
            printf("smp_random: seed %u: CPU %u missed its own rewrite %u times, first in "
                   "round %u: %x, not %x\n", seed, c, x_smc_bad[c], x_smc_first[c][0],
                   x_smc_first[c][1], x_smc_first[c][2]);
        if (x_bad[c])
            printf("smp_random: seed %u: CPU %u first ran stale code in round %u: %x "
                   "(round %u's value %x, the new one %x)\n", seed, c, x_first[c][0],
                   x_first[c][1], x_first[c][0] - 1, xval(x_first[c][0] - 1),
                   xval(x_first[c][0]));
    }
    printf("smp_random: seed %u: phase 2: routine at +%x, %u calls while it changed, "
           "%u torn, %u stale after the handshake, %u own-function misses\n",
           seed, r_off, calls, torn, bad, smc);
    CHECK_EQ(x_timeouts, 0, "cross-modifying code: no wait timed out");
    CHECK_EQ(torn, 0, "cross-modifying code: unsynchronised calls got the old or new value");
    CHECK_EQ(bad, 0, "cross-modifying code: after the flag and CPUID every CPU ran the new code");
    CHECK_EQ(smc, 0, "self-modifying code beside the others': each CPU ran its new function");
}

/* ---- phase 3: page-table changes, shootdowns, accessed and dirty bits ---- */

static u32 pd[1024] __attribute__((aligned(4096)));
static volatile u32 pt[1024] __attribute__((aligned(4096)));
static u8 frames[NFRAMES][4096] __attribute__((aligned(4096)));
static volatile u32 p_round, p_acks, p_done, p_wrote, p_timeouts, shoot_va, ipi_acks;
static volatile u32 p_stale[SMP_MAX], p_ad_bad, p_ipis;

static u32 tag(u32 f) { return 0xf4a90000u | f; }
static void paging_on(int cpu)
{
    (void)cpu;
    smp_paging_on(pd);
}

static void on_shoot(struct frame *f)
{
    (void)f;
    invlpg(shoot_va);
    lock_inc(&ipi_acks);
    apic_write(APIC_EOI, 0);
}

/* The round's page, frame and way of shooting down, the same on every CPU. */
struct pround { u32 owner, page, frame, how; };
static struct pround pick(u32 round)
{
    u32 m = mix(7, round);
    struct pround p = { m % ncpu, (m >> 8) % NPAGES, (m >> 12) % NFRAMES, (m >> 20) % 3 };
    return p;
}

/* Everyone but the owner: waits for the round, flushes as told, must read the new frame,
   then writes it (at its own offset) or not, as its stream says. */
static void pt_follow(int cpu, u32 round, struct rng *r)
{
    struct pround p = pick(round);
    u32 va = VBASE + 4096 * p.page;
    if (!smp_wait_eq(&p_round, round, WAIT_US))
        p_timeouts++;
    if (p.how == 1)
        invlpg(va);
    else if (p.how == 2)
        reload_cr3();
    if (*(volatile u32 *)va != tag(p.frame))
        p_stale[cpu]++;
    if (next(r) & 1) {
        *(volatile u32 *)(va + 64 + 4 * (u32)cpu) = round;
        lock_or(&p_wrote, 1u << cpu);
    }
    lock_inc(&p_acks);
}

/* The owner: waits until the last round's owner has checked, remaps the page (A and D
   clear), flushes its own TLB, shoots the page down on the others (how 0: IPIs; 1 and
   2: the flag, then they flush), waits for their reads and writes, and checks the
   PTE's A and D bits. */
static void pt_lead(int cpu, u32 round, struct rng *r)
{
    struct pround p = pick(round);
    u32 va = VBASE + 4096 * p.page, others = ncpu - 1;
    if (!smp_wait_eq(&p_done, round - 1, WAIT_US)) /* the last owner has checked */
        p_timeouts++;
    p_wrote = 0;
    pt[p.page] = (u32)frames[p.frame] | PTE_P | PTE_W;
    invlpg(va);
    if (p.how == 0) {
        u32 before = ipi_acks;
        shoot_va = va;
        for (u32 c = 0; c < ncpu; c++)
            if (c != (u32)cpu)
                smp_ipi(smp_cpus[c].apic_id, V_SHOOT);
        p_ipis += others;
        if (!smp_wait_eq(&ipi_acks, before + others, WAIT_US))
            p_timeouts++;
    }
    p_round = round;
    if (*(volatile u32 *)va != tag(p.frame))
        p_stale[cpu]++;
    if (next(r) & 1) {
        *(volatile u32 *)(va + 64 + 4 * (u32)cpu) = round;
        lock_or(&p_wrote, 1u << cpu);
    }
    if (!smp_wait_eq(&p_acks, round * others, WAIT_US))
        p_timeouts++;
    u32 ad = pt[p.page] & (PTE_A | PTE_D);
    if (ad != (p_wrote ? PTE_A | PTE_D : PTE_A))
        p_ad_bad++;
    p_done = round;
}

static void pagetables(int cpu)
{
    struct rng r = { mix(8, (u32)cpu) | 1 };
    paging_on(cpu);
    sti(); /* the shootdown IPI may come at any time */
    sync_all();
    for (u32 round = 1; round <= PROUNDS; round++) {
        if (pick(round).owner == (u32)cpu)
            pt_lead(cpu, round, &r);
        else
            pt_follow(cpu, round, &r);
    }
    sync_all();
    cli();
}

static void check_pagetables(void)
{
    for (u32 i = 0; i < 32; i++)
        pd[i] = (i << 22) | 0x83;             /* 4 MiB, present, writable */
    for (u32 i = 0x3fb; i < 0x400; i++)
        pd[i] = (i << 22) | 0x93;             /* the APICs, HPET, BIOS: cache disabled */
    pd[VBASE >> 22] = (u32)pt | PTE_P | PTE_W;
    for (u32 f = 0; f < NFRAMES; f++)
        *(u32 *)frames[f] = tag(f);
    for (u32 p = 0; p < NPAGES; p++)
        pt[p] = (u32)frames[p] | PTE_P | PTE_W;
    set_handler(V_SHOOT, on_shoot);
    smp_all(pagetables);
    u32 stale = 0;
    for (u32 c = 0; c < ncpu; c++)
        stale += p_stale[c];
    printf("smp_random: seed %u: phase 3: %u rounds, %u shootdown IPIs, %u stale reads, "
           "%u wrong A/D bits\n", seed, PROUNDS, p_ipis, stale, p_ad_bad);
    CHECK_EQ(p_timeouts, 0, "page tables: no wait timed out");
    CHECK_EQ(stale, 0, "page tables: after each shootdown every CPU read the new frame");
    CHECK_EQ(p_ad_bad, 0, "page tables: A set on each use, D exactly when a CPU wrote");
}

void main(void)
{
    seed = cmdline_u32("seed", 1);
    nolock = cmdline_u32("nolock", 0);
    loops = cmdline_u32("loops", LOOPS);
    phases = cmdline_u32("phases", 7);
    xrounds = cmdline_u32("xrounds", XROUNDS);
    if (!loops)
        loops = 1; /* the routine's DEC ESI; JNZ would run 2^32 times */
    if (!smp_boot_all())
        return;
    ncpu = (u32)smp_ncpus;
    CHECK(ncpu <= 4, "at most four CPUs (phase 1 gives each a quarter of a page)");
    if (ncpu > 4)
        return;
    printf("smp_random: seed %u on %u CPUs\n", seed, ncpu);
    if (phases & 1)
        check_atomics_run();
    if (phases & 2)
        check_xmc();
    if (phases & 4)
        check_pagetables();
}
