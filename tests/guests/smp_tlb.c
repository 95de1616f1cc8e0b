/*
 * smp_tlb.c - TLB shootdown and the accessed and dirty bits with two CPUs on one set of
 * page tables (issue 16).  CPU 0 changes a PTE that CPU 1 has just used, sends an IPI;
 * CPU 1's handler flushes (INVLPG, or in a second series a CR3 reload) and acknowledges,
 * then CPU 1 reads the page and must see the new frame (SDM vol. 3, "Propagation of
 * Paging-Structure Changes to Multiple Processors").  Then the A and D bits: set by
 * either CPU's reads and writes after the other cleared them and shot the entry down,
 * and both set when the two CPUs write the same pages at the same time.
 *
 * Without the shootdown CPU 1 may keep using the old translation or not: that is
 * printed, not checked; so is the median cost of a shootdown in TSC cycles (CPU 1 is
 * running, not halted, when its IPI comes: bench/run-ipi.sh).  Paging: 4 MiB pages map the first 128 MiB and the APIC and
 * IOAPIC range as they are; one page table maps the test pages at 0x40000000.
 */
#include "lib/smp.h"

#define VBASE 0x40000000u
#define V_SHOOT 0x30
#define ROUNDS 500
#define PTE_P 0x1u
#define PTE_W 0x2u
#define PTE_A 0x20u
#define PTE_D 0x40u

static u32 pd[1024] __attribute__((aligned(4096)));
static volatile u32 pt[1024] __attribute__((aligned(4096)));
static u8 frames[4][4096] __attribute__((aligned(4096)));
static const u32 magic[2] = { 0xa0a0a0a0u, 0xb1b1b1b1u };

enum { OP_READ = 1, OP_WRITE, OP_WRITE_AT_GO, OP_EXIT };
static volatile u32 cmd_seq, cmd_op, cmd_va, cmd_val, done_seq, ready_seq, go_seq, read_val;
static volatile u32 flush_cr3, shoot_va, shoot_ack;

static void paging_on(int cpu)
{
    (void)cpu;
    smp_paging_on(pd);
}

static void on_shoot(struct frame *f)
{
    (void)f;
    if (flush_cr3)
        reload_cr3();
    else
        invlpg(shoot_va);
    shoot_ack++;
    apic_write(APIC_EOI, 0);
}

/* CPU 1: runs CPU 0's commands with interrupts on (the shootdown IPI comes any time). */
static void agent(int cpu)
{
    (void)cpu;
    sti();
    for (u32 seen = 0;;) {
        while (cmd_seq == seen)
            cpu_relax();
        seen = cmd_seq;
        volatile u32 *p = (volatile u32 *)cmd_va;
        switch (cmd_op) {
        case OP_READ: read_val = *p; break;
        case OP_WRITE: *p = cmd_val; break;
        case OP_WRITE_AT_GO:
            ready_seq = seen;
            while (go_seq != seen)
                cpu_relax();
            *p = cmd_val;
            break;
        }
        if (cmd_op == OP_EXIT)
            break;
        done_seq = seen;
    }
    cli();
}

static int cmd_failed;

static void post(u32 op, u32 va, u32 val)
{
    cmd_op = op;
    cmd_va = va;
    cmd_val = val;
    barrier();
    cmd_seq++;
}

static void finish(void) { cmd_failed |= !smp_wait_eq(&done_seq, cmd_seq, 5000000); }

static u32 remote_read(u32 va)
{
    post(OP_READ, va, 0);
    finish();
    return read_val;
}

static void remote_write(u32 va, u32 val)
{
    post(OP_WRITE, va, val);
    finish();
}

/* An IPI to CPU 1 and its acknowledgement: its handler has flushed va (or all). */
static int shootdown(u32 va, int cr3)
{
    u32 before = shoot_ack;
    flush_cr3 = (u32)cr3;
    shoot_va = va;
    cli();
    smp_ipi(smp_cpus[1].apic_id, V_SHOOT);
    sti();
    return smp_wait_eq(&shoot_ack, before + 1, 5000000);
}

static void map(int page, int frame) { pt[page] = (u32)frames[frame] | PTE_P | PTE_W; }

/* TSC cycles of each round's shootdown (IPI, flush on CPU 1, acknowledgement seen):
   their median is printed, a figure for bench/run-ipi.sh, not a check. */
static u32 cost[ROUNDS];

static u32 median(u32 *v, u32 n)
{
    for (u32 i = 1; i < n; i++)
        for (u32 j = i; j > 0 && v[j - 1] > v[j]; j--) {
            u32 t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static u32 series(int cr3, u32 *stale)
{
    u32 bad = 0, cur = 0;
    *stale = 0;
    map(0, 0);
    invlpg(VBASE);
    shootdown(VBASE, cr3);
    for (u32 r = 0; r < ROUNDS; r++) {
        bad += remote_read(VBASE) != magic[cur]; /* CPU 1 now caches the translation */
        cur ^= 1;
        map(0, (int)cur);
        if (r == 0) { /* no shootdown yet: whatever CPU 1 sees is allowed */
            *stale = remote_read(VBASE) == magic[cur ^ 1];
        }
        u64 t0 = rdtsc();
        if (!shootdown(VBASE, cr3))
            bad++;
        u64 dt = rdtsc() - t0;
        cost[r] = dt > 0xffffffffu ? 0xffffffffu : (u32)dt;
        bad += remote_read(VBASE) != magic[cur];
    }
    return bad;
}

static void clear_ad(int page)
{
    __asm__ volatile("lock andl %1, %0" : "+m"(pt[page]) : "ir"(~(PTE_A | PTE_D)) : "memory");
    invlpg(VBASE + 4096u * (u32)page);
    shootdown(VBASE + 4096u * (u32)page, 0);
}

static u32 ad(int page) { return pt[page] & (PTE_A | PTE_D); }

void main(void)
{
    if (!smp_boot_all())
        return;
    for (u32 i = 0; i < 32; i++)
        pd[i] = (i << 22) | 0x83;             /* 4 MiB, present, writable */
    for (u32 i = 0x3fb; i < 0x400; i++)
        pd[i] = (i << 22) | 0x93;             /* the APICs, HPET, BIOS: cache disabled */
    pd[VBASE >> 22] = (u32)pt | PTE_P | PTE_W;
    for (int f = 0; f < 2; f++)
        *(u32 *)frames[f] = magic[f];
    set_handler(V_SHOOT, on_shoot);
    smp_all(paging_on);
    paging_on(0);
    smp_call(1, agent);
    sti();

    u32 stale;
    u32 bad = series(0, &stale);
    printf("smp_tlb: INVLPG series: before its shootdown CPU 1 saw the %s frame\n",
           stale ? "old" : "new");
    printf("smp_tlb: shootdown cycles (median of %u): INVLPG %u\n", ROUNDS, median(cost, ROUNDS));
    CHECK_EQ(bad, 0, "INVLPG shootdown: CPU 1 sees each new mapping (500 rounds)");
    bad = series(1, &stale);
    printf("smp_tlb: CR3 series: before its shootdown CPU 1 saw the %s frame\n",
           stale ? "old" : "new");
    printf("smp_tlb: shootdown cycles (median of %u): CR3 %u\n", ROUNDS, median(cost, ROUNDS));
    CHECK_EQ(bad, 0, "CR3 reload shootdown: CPU 1 sees each new mapping (500 rounds)");
    CHECK_EQ(shoot_ack, 2 * ROUNDS + 2, "every shootdown IPI acknowledged");

    /* A and D, one CPU at a time; CPU 0 reads and clears them. */
    const u32 X = VBASE + 4096, Y = VBASE + 8192;
    map(1, 2);
    map(2, 3);
    clear_ad(1);
    clear_ad(2);
    CHECK_EQ(ad(1), 0, "A/D: cleared");
    remote_read(X);
    CHECK_EQ(ad(1), PTE_A, "A/D: CPU 1's read sets A only");
    remote_write(X, 1);
    CHECK_EQ(ad(1), PTE_A | PTE_D, "A/D: CPU 1's write sets D");
    clear_ad(1);
    (void)*(volatile u32 *)X;
    CHECK_EQ(ad(1), PTE_A, "A/D: CPU 0's read after CPU 1's use sets A only");
    *(volatile u32 *)X = 2;
    CHECK_EQ(ad(1), PTE_A | PTE_D, "A/D: CPU 0's write sets D");
    clear_ad(1);
    remote_write(X, 3); /* CPU 1 had a dirty translation: the shootdown dropped it */
    CHECK_EQ(ad(1), PTE_A | PTE_D, "A/D: CPU 1 sets D again after a clear and shootdown");
    CHECK_EQ(*(volatile u32 *)X, 3, "A/D: CPU 0 reads what CPU 1 wrote through the page");

    /* Both CPUs write at once: the same page, and neighbouring PTEs. */
    u32 same_bad = 0, near_bad = 0;
    for (u32 r = 0; r < 200; r++) {
        clear_ad(1);
        clear_ad(2);
        post(OP_WRITE_AT_GO, (r & 1) ? Y : X, r);
        smp_wait_eq(&ready_seq, cmd_seq, 5000000);
        go_seq = cmd_seq;
        *(volatile u32 *)X = r;
        finish();
        if (r & 1) {
            near_bad += ad(1) != (PTE_A | PTE_D) || ad(2) != (PTE_A | PTE_D);
        } else {
            same_bad += ad(1) != (PTE_A | PTE_D);
            same_bad += ad(2) != 0;
        }
    }
    CHECK_EQ(same_bad, 0, "A/D: both CPUs writing one page: A and D set (100 rounds)");
    CHECK_EQ(near_bad, 0,
             "A/D: CPUs writing neighbouring PTEs' pages: both PTEs A and D (100 rounds)");
    CHECK(pd[VBASE >> 22] & PTE_A, "A/D: the PDE's A bit set");
    post(OP_EXIT, 0, 0);
    smp_join(1);
    CHECK(!cmd_failed, "CPU 1 finished every command in time");
    cli();
}
