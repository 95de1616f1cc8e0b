/*
 * hpet.c - the timers a kernel calibrates against: the ACPI PM timer (3.579545 MHz,
 * at the FADT's port) and the HPET (0xfed00000): capabilities, the main counter
 * (counting, halted, written while halted), the two clocks' ratio, and HPET timers
 * firing through the IOAPIC at the route their capability allows (one-shot edge,
 * periodic with the comparator advancing, level with the status bit set) and in legacy replacement mode through the 8259's IRQ0.
 *
 * The PIT shares IOAPIC pin 2 with the HPET's only route, so it is stopped first; the
 * one-shot counts the interrupts that come at or after its comparator.
 * The 8259s are fully masked (the cascade too) while a timer drives a GSI: QEMU wires
 * GSI 2 to the master's IR2 as well as to the IOAPIC, which makes the slave answer a
 * spurious IRQ 7 (IR2's request stays latched, so the cascade stays masked for the
 * legacy test too); xbt-run's GSIs reach the IOAPIC only.
 */
#include "lib/pc.h"

#define CAP 0x000
#define CFG 0x010
#define ISR 0x020
#define COUNTER 0x0f0
#define TCFG(n) (0x100 + 0x20 * (n))
#define TCMP(n) (0x108 + 0x20 * (n))
#define T_LEVEL 0x02
#define T_ENB 0x04
#define T_PERIODIC 0x08
#define T_VAL_SET 0x40
#define V0 0x36
#define V1 0x37

static volatile u32 n0, n0_after_cmp, cmp0, n1, n_pic, sts_seen, clear_in_handler;

static u32 hpet_read(u32 r) { return mmio_read32(HPET + r); }
static void hpet_write(u32 r, u32 v) { mmio_write32(HPET + r, v); }

static void on_t0(struct frame *f)
{
    (void)f;
    n0++;
    if ((s32)(hpet_read(COUNTER) - cmp0) >= 0)
        n0_after_cmp++;
    apic_write(APIC_EOI, 0);
}

static void on_t1(struct frame *f)
{
    (void)f;
    n1++;
    sts_seen = hpet_read(ISR) & 2;
    if (clear_in_handler)
        hpet_write(ISR, 2);
    clear_in_handler = 1;
    apic_write(APIC_EOI, 0);
}

static void on_irq0(struct frame *f)
{
    (void)f;
    n_pic++;
    pic_eoi(0);
}

static void counters(void)
{
    u32 cap = hpet_read(CAP);
    CHECK_EQ(hpet_read(CAP + 4), 10000000, "HPET period 10 ns");
    CHECK_EQ(cap >> 16, 0x8086, "HPET vendor");
    CHECK(((cap >> 8) & 0x1f) >= 2, "HPET: three timers or more");
    CHECK(cap & (1u << 15), "HPET: legacy replacement capable");
    hpet_write(CFG, 0);
    hpet_write(COUNTER, 0x1000);
    hpet_write(COUNTER + 4, 0);
    pm_delay_us(500);
    CHECK_EQ(hpet_read(COUNTER), 0x1000, "halted counter keeps its written value");
    hpet_write(CFG, 1);
    u32 h0 = hpet_read(COUNTER), p0 = pm_timer_read();
    pm_delay_us(20000);
    u32 h1 = hpet_read(COUNTER), p1 = pm_timer_read();
    u32 dh = h1 - h0, dp = (p1 - p0) & 0xffffff;
    printf("20 ms: HPET %u ticks, PM timer %u ticks\n", dh, dp);
    CHECK(dp >= 71000, "PM timer counts");
    CHECK(dh / dp >= 25 && dh / dp <= 31, "HPET / PM timer = 100 MHz / 3.58 MHz");
}

static int route(int n)
{
    u32 routes = hpet_read(TCFG(n) + 4);
    for (int g = 0; g < 24; g++)
        if (routes & (1u << g))
            return g;
    return -1;
}

static void one_shot_and_periodic(void)
{
    int gsi = route(0);
    CHECK(gsi >= 0, "timer 0 has a route");
    outb(0x21, 0xff);
    ioapic_route(gsi, V0, 0);
    sti();
    /* The comparator first, then the configuration (QEMU compares the counter with a
       comparator of ~0 as signed numbers and fires at once, then raises the interrupt
       late, after the enable). */
    cmp0 = hpet_read(COUNTER) + 1000000; /* 10 ms */
    hpet_write(TCMP(0) + 4, 0);
    hpet_write(TCMP(0), cmp0);
    hpet_write(TCFG(0), (u32)gsi << 9 | T_ENB);
    pm_wait_count(&n0_after_cmp, 1, 2000000);
    pm_delay_us(20000);
    CHECK_EQ(n0_after_cmp, 1, "one-shot: one interrupt, at the comparator");
    /* As Linux does it: the counter halted while the comparator and period are set. */
    hpet_write(CFG, 0);
    hpet_write(TCFG(0), (u32)gsi << 9 | T_ENB | T_PERIODIC | T_VAL_SET);
    u32 first = hpet_read(COUNTER) + 100000;
    hpet_write(TCMP(0), first);
    hpet_write(TCMP(0), 100000); /* the period: 1 ms */
    hpet_write(CFG, 1);
    pm_wait_count(&n0, n0 + 1, 2000000);
    u32 base = n0;
    pm_delay_us(50000);
    u32 n = n0 - base;
    printf("periodic: %u interrupts in 50 ms\n", n);
    CHECK(n >= 2 && n <= 60, "periodic: interrupts repeat, about one a millisecond");
    CHECK((s32)(hpet_read(TCMP(0)) - first) > 0, "periodic: the comparator advances");
    hpet_write(TCFG(0), 0);
    ioapic_route(gsi, 0x10000, 0);
    cli();
}

static void level(void)
{
    int gsi = route(1);
    ioapic_route(gsi, 0x8000 | V1, 0);
    sti();
    clear_in_handler = 1;
    hpet_write(TCMP(1) + 4, 0);
    hpet_write(TCMP(1), hpet_read(COUNTER) + 100000);
    hpet_write(TCFG(1), (u32)gsi << 9 | T_ENB | T_LEVEL);
    pm_wait_count(&n1, 1, 2000000);
    pm_delay_us(5000);
    CHECK_EQ(n1, 1, "level: one interrupt");
    CHECK(sts_seen, "level: status bit set in the handler");
    CHECK(!(hpet_read(ISR) & 2), "level: status bit cleared by writing 1");
    hpet_write(TCFG(1), 0);
    ioapic_route(gsi, 0x10000, 0);
    cli();
}

static void legacy(void)
{
    hpet_write(CFG, 2); /* legacy replacement: timer 0 drives IRQ0 */
    hpet_write(TCFG(0), T_ENB | T_PERIODIC | T_VAL_SET);
    hpet_write(TCMP(0), hpet_read(COUNTER) + 100000);
    hpet_write(TCMP(0), 100000);
    hpet_write(CFG, 3);
    pic_unmask(0); /* the cascade stays masked (see above) */
    sti();
    pm_wait_count(&n_pic, 1, 2000000);
    u32 base = n_pic;
    pm_delay_us(50000);
    cli();
    u32 n = n_pic - base;
    printf("legacy: %u IRQ0 in 50 ms\n", n);
    CHECK(n >= 2 && n <= 60, "legacy replacement: timer 0 on the 8259's IRQ0");
    hpet_write(TCFG(0), 0);
    hpet_write(CFG, 1);
}

void main(void)
{
    set_handler(V0, on_t0);
    set_handler(V1, on_t1);
    set_handler(0x20, on_irq0);
    apic_write(APIC_SVR, 0x13f);
    /* PIT channel 0 in mode 0 with a count of 1: one edge now, then its output stays
       high (the BIOS's 18.2 Hz tick would share GSI 2 with the HPET). */
    outb(0x43, 0x30);
    outb(0x40, 1);
    outb(0x40, 0);
    pm_delay_us(1000);
    counters();
    one_shot_and_periodic();
    level();
    legacy();
}
