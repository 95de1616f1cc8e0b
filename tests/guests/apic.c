/*
 * apic.c - the local APIC (xAPIC at 0xfee00000): ID and version, the state the BIOS
 * leaves (software enabled, LINT0 ExtINT), self-IPIs by shorthand, by physical and by
 * flat logical destination, priority (TPR, PPR, the IRR order, nesting), EOI, ESR, and
 * the timer: one-shot, periodic, masked, stopped, the divide configuration, the
 * current count, and a timer interrupt held off by the TPR; NMIs by self-IPI; reads
 * right after writes and through remapped pages (xbt-run's read shadow).
 *
 * Where QEMU's APIC differs from the SDM, only what both do is checked: QEMU sets
 * ESR bits at once and ignores ESR writes (the SDM latches errors until the next ESR
 * write, xbt-run does that), raises no error interrupt for an illegal register
 * access, accepts IPIs with vectors 0-15, reads APR as 0, and does not force the LVT
 * masks while the APIC is software-disabled.
 */
#include "lib/pc.h"

#define V_LOW 0x28   /* priority class 2 */
#define V_HIGH 0x38  /* class 3 */
#define V_TIMER 0x3c
#define V_SPUR 0x3f

static volatile u32 got[16], n_got, last, isr_seen, ppr_seen;

static void on_vector(struct frame *f)
{
    if (n_got < 16)
        got[n_got] = f->vector;
    n_got++;
    last = f->vector;
    isr_seen = apic_bit(APIC_ISR, f->vector);
    ppr_seen = apic_read(APIC_PPR);
    apic_write(APIC_EOI, 0);
}

static void settle(void)
{
    for (volatile int i = 0; i < 1000; i++)
        ;
}

static void self_ipi(u32 vector) { apic_write(APIC_ICR, 0x40000 | vector); }

static void basics(void)
{
    CHECK_EQ(apic_read(APIC_ID) >> 24, 0, "APIC ID 0");
    u32 ver = apic_read(APIC_VER);
    CHECK_EQ(ver & 0xff, 0x14, "integrated APIC version 0x14");
    CHECK_EQ((ver >> 16) & 0xff, 5, "six LVT entries");
    CHECK(apic_read(APIC_SVR) & 0x100, "the BIOS left the APIC software enabled");
    u32 l0 = apic_read(APIC_LINT0);
    CHECK(((l0 >> 8) & 7) == 7 && !(l0 & 0x10000), "LINT0 is the 8259's ExtINT wire");
    apic_write(APIC_SVR, 0x100 | V_SPUR);
    CHECK_EQ(apic_read(APIC_SVR) & 0x1ff, 0x100 | V_SPUR, "SVR reads back");
    apic_write(APIC_TPR, 0);
    CHECK_EQ(apic_read(APIC_TPR), 0, "TPR 0");
}

static void ipis(void)
{
    sti();
    self_ipi(V_HIGH);
    settle();
    CHECK_EQ(n_got, 1, "self IPI delivered once");
    CHECK_EQ(got[0], V_HIGH, "self IPI vector");
    CHECK(isr_seen, "ISR bit set while the handler runs");
    CHECK_EQ(ppr_seen, 0x30, "PPR is the in-service class");
    CHECK(!apic_bit(APIC_ISR, V_HIGH), "EOI cleared the ISR bit");
    CHECK(!(apic_read(APIC_ICR) & 0x1000), "ICR delivery status idle");
    apic_write(APIC_ICR2, 0);
    apic_write(APIC_ICR, V_HIGH + 1); /* fixed, physical destination 0 */
    settle();
    CHECK(n_got == 2 && got[1] == V_HIGH + 1, "IPI to own physical APIC ID");
    apic_write(APIC_DFR, 0xffffffff);
    apic_write(APIC_LDR, 0x01000000);
    apic_write(APIC_ICR2, 0x01000000);
    apic_write(APIC_ICR, 0x800 | (V_HIGH + 2)); /* logical, flat: mask 1 */
    settle();
    CHECK(n_got == 3 && got[2] == V_HIGH + 2, "IPI to own flat logical destination");
    apic_write(APIC_ICR2, 0x02000000);
    apic_write(APIC_ICR, 0x800 | (V_HIGH + 3)); /* logical 2: nobody */
    settle();
    CHECK(n_got == 3 && !apic_bit(APIC_IRR, V_HIGH + 3), "logical destination not ours: dropped");
    cli();
}

static void priorities(void)
{
    n_got = 0;
    apic_write(APIC_TPR, 0x30);
    self_ipi(V_HIGH);
    self_ipi(V_LOW);
    sti();
    settle();
    CHECK_EQ(n_got, 0, "TPR 0x30 holds classes 2 and 3");
    CHECK(apic_bit(APIC_IRR, V_HIGH) && apic_bit(APIC_IRR, V_LOW), "both wait in the IRR");
    CHECK_EQ(apic_read(APIC_PPR), 0x30, "PPR follows TPR");
    apic_write(APIC_TPR, 0x20);
    settle();
    CHECK(n_got == 1 && got[0] == V_HIGH, "TPR 0x20 lets class 3 through");
    CHECK(!apic_bit(APIC_IRR, V_HIGH) && apic_bit(APIC_IRR, V_LOW), "class 2 still waits");
    apic_write(APIC_TPR, 0);
    settle();
    CHECK(n_got == 2 && got[1] == V_LOW, "TPR 0 lets class 2 through");
    CHECK_EQ(ppr_seen, 0x20, "PPR during the class 2 handler");
    cli();
    n_got = 0;
    self_ipi(V_LOW);
    self_ipi(V_HIGH);
    sti();
    settle();
    CHECK(n_got == 2 && got[0] == V_HIGH && got[1] == V_LOW, "higher vector first");
    cli();
    apic_write(APIC_EOI, 0); /* nothing in service: no effect */
    CHECK(!apic_bit(APIC_ISR, V_LOW) && !apic_bit(APIC_ISR, V_HIGH), "ISR empty");
}

static void esr(void)
{
    apic_write(APIC_LVTERR, 0x10000);
    apic_write(APIC_ESR, 0);
    (void)apic_read(0x40); /* a reserved offset */
    apic_write(APIC_ESR, 0);
    CHECK(apic_read(APIC_ESR) & 0x80, "ESR: illegal register address");
}

static void timer(void)
{
    n_got = 0;
    apic_write(APIC_TDCR, 0xb); /* divide by 1 */
    CHECK_EQ(apic_read(APIC_TDCR), 0xb, "divide configuration reads back");
    apic_write(APIC_LVTT, V_TIMER);
    /* 50 ms at 1 GHz: long beside a host that preempts the guest for milliseconds. */
    apic_write(APIC_TMICT, 50000000);
    u32 c = apic_read(APIC_TMCCT);
    CHECK(c > 0 && c < 50000000, "one-shot: the count runs down");
    sti();
    pm_wait_count(&n_got, 1, 2000000);
    pm_delay_us(30000);
    CHECK(n_got == 1 && got[0] == V_TIMER, "one-shot: one interrupt");
    CHECK_EQ(apic_read(APIC_TMCCT), 0, "one-shot: count stays 0");
    apic_write(APIC_LVTT, 0x20000 | V_TIMER);
    CHECK_EQ(apic_read(APIC_LVTT), 0x20000 | V_TIMER, "LVT timer reads back (periodic)");
    n_got = 0;
    apic_write(APIC_TMICT, 1000000); /* 1 ms */
    pm_wait_count(&n_got, 1, 2000000);
    pm_delay_us(50000);
    u32 n = n_got;
    /* About 50; a loaded host may run the vCPU rarely, and missed periods coalesce. */
    printf("periodic: %u interrupts in 50 ms\n", n);
    CHECK(n >= 2 && n <= 60, "periodic: interrupts repeat, about one a millisecond");
    apic_write(APIC_TMICT, 0);
    /* A period that ended just before the write has its interrupt in the IRR already:
       it is still delivered (QEMU TCG under load delivered one after the write). */
    pm_delay_us(2000);
    n = n_got;
    pm_delay_us(5000);
    CHECK_EQ(n_got, n, "initial count 0 stops the timer");
    apic_write(APIC_LVTT, 0x10000 | V_TIMER);
    apic_write(APIC_TMICT, 100000);
    pm_delay_us(2000);
    CHECK_EQ(n_got, n, "masked: no interrupt");
    CHECK_EQ(apic_read(APIC_TMCCT), 0, "masked: the count still runs out");
    apic_write(APIC_TDCR, 0xa); /* divide by 128 */
    apic_write(APIC_TMICT, 0xffffffff);
    pm_delay_us(1000);
    u32 ran = 0xffffffff - apic_read(APIC_TMCCT);
    printf("divide by 128: %u ticks in 1 ms\n", ran);
    CHECK(ran >= 3000 && ran <= 200000, "divide by 128: about 7812 ticks a millisecond");
    apic_write(APIC_TMICT, 0);
    /* A timer interrupt held off by the TPR arrives when the TPR drops. */
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_TPR, 0x30);
    apic_write(APIC_LVTT, V_TIMER);
    apic_write(APIC_TMICT, 100000);
    for (u32 i = 0; i < 20000 && !apic_bit(APIC_IRR, V_TIMER); i++)
        pm_delay_us(100);
    CHECK(n_got == n && apic_bit(APIC_IRR, V_TIMER), "timer interrupt waits behind the TPR");
    apic_write(APIC_TPR, 0);
    settle();
    CHECK(n_got == n + 1 && last == V_TIMER, "and arrives when the TPR drops");
    cli();
}

/* NMIs by self-IPI (ICR delivery mode NMI): taken whatever IF says, and blocked from
   their delivery to the handler's IRET (a second one sent inside waits for it). */
static volatile u32 nmi_count, nmi_nested, nmi_in, nmi_seen_inside;

static void on_nmi(struct frame *f)
{
    (void)f;
    nmi_count++;
    if (nmi_in)
        nmi_nested++;
    nmi_in = 1;
    if (nmi_count == 1) {
        apic_write(APIC_ICR, 0x40000 | 0x400);
        settle();
        nmi_seen_inside = nmi_count;
    }
    nmi_in = 0;
}

static void nmis(void)
{
    set_handler(2, on_nmi);
    cli();
    apic_write(APIC_ICR, 0x40000 | 0x400);
    settle();
    CHECK(nmi_count >= 1, "self NMI taken with IF=0");
    CHECK_EQ(nmi_seen_inside, 1, "a second NMI waits while the first one's handler runs");
    CHECK_EQ(nmi_count, 2, "and is taken after that handler's IRET");
    CHECK_EQ(nmi_nested, 0, "NMI handlers never nest");
}

/*
 * Registers read back at once by one load instruction (noinline: every read below is
 * the same MOV, which in xbt becomes an MMIO site, and with xbt-run's read shadow a load
 * from its page of register values): each read sees the value just written, for every
 * register the shadow holds and for the volatile ones it leaves out.  Then the same
 * instruction through a linear page that maps the APIC, remapped to RAM and back with
 * INVLPG and with a CR3 load: a read sees what the page maps now.
 */
static __attribute__((noinline)) u32 rd(u32 addr) { return *(volatile u32 *)addr; }

static u32 bad_reads;

static void expect(u32 addr, u32 want)
{
    u32 got_v = rd(addr);
    if (got_v != want && bad_reads++ < 8)
        printf("read %08x: %08x, expected %08x\n", addr, got_v, want);
}

static void shadow_registers(void)
{
    static const u32 dcr[8] = { 0, 1, 2, 3, 8, 9, 0xa, 0xb };
    apic_write(APIC_LVTT, 0x10000 | V_TIMER); /* masked: the counts below fire nothing */
    for (u32 i = 0; i < 300; i++) {
        u32 x = (i * 0x9e3779b1u) >> 8;
        apic_write(APIC_TPR, x & 0xff);
        expect(LAPIC + APIC_TPR, x & 0xff);
        apic_write(APIC_LDR, x << 24);
        expect(LAPIC + APIC_LDR, x << 24);
        apic_write(APIC_SVR, 0x100 | (x & 0xf0) | 0xf);
        expect(LAPIC + APIC_SVR, 0x100 | (x & 0xf0) | 0xf);
        apic_write(APIC_LVTERR, 0x10000 | 0x40 | (x & 0x3f));
        expect(LAPIC + APIC_LVTERR, 0x10000 | 0x40 | (x & 0x3f));
        apic_write(APIC_LVTT, (i & 1 ? 0x30000 : 0x10000) | V_TIMER);
        expect(LAPIC + APIC_LVTT, (i & 1 ? 0x30000 : 0x10000) | V_TIMER);
        apic_write(APIC_ICR2, x << 24);
        expect(LAPIC + APIC_ICR2, x << 24);
        apic_write(APIC_TDCR, dcr[i & 7]);
        expect(LAPIC + APIC_TDCR, dcr[i & 7]);
        apic_write(APIC_TMICT, x | 1);
        expect(LAPIC + APIC_TMICT, x | 1);
        expect(LAPIC + APIC_ID, 0);
        expect(LAPIC + APIC_PPR, x & 0xff); /* nothing in service: the TPR */
    }
    apic_write(APIC_TMICT, 0);
    expect(LAPIC + APIC_TMCCT, 0);
    apic_write(APIC_TPR, 0);
    apic_write(APIC_SVR, 0x100 | V_SPUR);
    CHECK_EQ(bad_reads, 0, "every register read sees the value written just before");
}

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt_low[4][1024] __attribute__((aligned(4096))); /* identity 0..16 MiB */
static u32 pt_dev[1024] __attribute__((aligned(4096)));    /* VA 0xfec00000.. */
static u32 pt_win[1024] __attribute__((aligned(4096)));    /* VA 0x40000000.. */
static u32 ram_page[1024] __attribute__((aligned(4096)));

#define WIN 0x40000000u

static void shadow_mappings(void)
{
    bad_reads = 0;
    for (u32 t = 0; t < 4; t++) {
        for (u32 k = 0; k < 1024; k++)
            pt_low[t][k] = ((t * 1024 + k) << 12) | 3;
        pd[t] = (u32)pt_low[t] | 3;
    }
    pt_dev[0x200] = LAPIC | 0x13; /* present, writable, PCD */
    pd[0xfec00000u >> 22] = (u32)pt_dev | 3;
    pt_win[0] = LAPIC | 0x13;
    pd[WIN >> 22] = (u32)pt_win | 3;
    for (u32 k = 0; k < 1024; k++)
        ram_page[k] = 0x5a000000u | k;
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u);
    for (u32 round = 0; round < 4; round++) {
        for (u32 i = 0; i < 50; i++) {
            apic_write(APIC_TPR, (i + round) & 0xff);
            expect(WIN + APIC_TPR, (i + round) & 0xff);
            expect(WIN + APIC_ID, 0);
        }
        pt_win[0] = (u32)ram_page | 3; /* the window now maps RAM */
        if (round & 1)
            write_cr3((u32)pd);
        else
            invlpg(WIN);
        for (u32 i = 0; i < 10; i++) {
            expect(WIN + APIC_TPR, 0x5a000000u | (APIC_TPR / 4));
            expect(WIN + APIC_ID, 0x5a000000u | (APIC_ID / 4));
        }
        pt_win[0] = LAPIC | 0x13;
        if (round & 1)
            write_cr3((u32)pd);
        else
            invlpg(WIN);
    }
    write_cr0(read_cr0() & ~0x80000000u);
    apic_write(APIC_TPR, 0);
    CHECK_EQ(bad_reads, 0, "a read through a remapped page sees what the page maps now");
}

void main(void)
{
    for (int v = 0x20; v < 0x40; v++)
        set_handler(v, on_vector);
    nmis();
    CHECK(pm_timer_port() != 0, "FADT names the PM timer");
    basics();
    ipis();
    priorities();
    esr();
    timer();
    shadow_registers();
    shadow_mappings();
}
