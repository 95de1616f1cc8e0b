/*
 * ioapic.c - interrupt routing through the IOAPIC with the 8259s masked: the PIT on
 * the pin the MADT's override names for ISA IRQ0 (GSI 2), edge-triggered; pc-testdev's
 * IRQ lines (ports 0x2000 + n) as level-triggered inputs (remote IRR, the EOI
 * broadcast, re-delivery while the line stays high, TMR set in the local APIC) and as
 * edge-triggered ones (one message per rising edge, an edge lost while masked); a
 * destination that is no CPU's; the version register.
 *
 * Not checked, as QEMU differs from the 82093AA: writing 1 to a line that is already
 * high is no edge (xbt-run sends nothing), but QEMU's IOAPIC sends a message for every
 * write of 1 to an edge-triggered pin.
 */
#include "lib/pc.h"

#define V_PIT 0x32
#define V_LEVEL 0x34
#define V_EDGE 0x35
#define PIN_LEVEL 10
#define PIN_EDGE 11
#define RED_MASKED 0x10000u
#define RED_LEVEL 0x8000u
#define RED_REMOTE_IRR 0x4000u

static volatile u32 n_pit, n_level, n_edge, n_other, irr_seen, tmr_seen, lower_in_handler;

static void set_line(int n, int level) { outb((u16)(0x2000 + n), (u8)level); }

static void on_pit(struct frame *f)
{
    (void)f;
    n_pit++;
    apic_write(APIC_EOI, 0);
}

static void on_level(struct frame *f)
{
    (void)f;
    n_level++;
    irr_seen = ioapic_entry_low(PIN_LEVEL) & RED_REMOTE_IRR;
    tmr_seen = apic_bit(APIC_TMR, V_LEVEL);
    if (lower_in_handler)
        set_line(PIN_LEVEL, 0);
    lower_in_handler = 1;
    apic_write(APIC_EOI, 0);
}

static void on_edge(struct frame *f)
{
    (void)f;
    n_edge++;
    apic_write(APIC_EOI, 0);
}

static void on_other(struct frame *f)
{
    (void)f;
    n_other++;
}

/* The GSI of ISA IRQ irq: the MADT's interrupt source override, or irq itself. */
static int isa_gsi(int irq)
{
    u32 madt = acpi_table("APIC");
    if (!madt)
        return irq;
    for (u32 p = madt + 44; p < madt + *(u32 *)(madt + 4); p += *(u8 *)(p + 1))
        if (*(u8 *)p == 2 && *(u8 *)(p + 3) == irq)
            return (int)*(u32 *)(p + 4);
    return irq;
}

static void settle(void) { pm_delay_us(200); }

static void pit_route(void)
{
    int pin = isa_gsi(0);
    CHECK_EQ(pin, 2, "MADT: ISA IRQ0 is GSI 2");
    ioapic_route(pin, V_PIT, 0);
    pit_start(1000);
    sti();
    pm_wait_count(&n_pit, 1, 2000000);
    u32 base = n_pit;
    pm_delay_us(50000);
    u32 n = n_pit - base;
    printf("pit: %u ticks in 50 ms through pin %d\n", n, pin);
    CHECK(n >= 2 && n <= 60, "PIT ticks through the IOAPIC");
    ioapic_route(pin, RED_MASKED | V_PIT, 0);
    n = n_pit;
    pm_delay_us(5000);
    CHECK_EQ(n_pit, n, "masked pin: no ticks");
    cli();
}

static void level(void)
{
    ioapic_route(PIN_LEVEL, RED_LEVEL | V_LEVEL, 0);
    sti();
    lower_in_handler = 1;
    set_line(PIN_LEVEL, 1);
    settle();
    CHECK_EQ(n_level, 1, "level: one interrupt");
    CHECK(irr_seen, "level: remote IRR set in the handler");
    CHECK(tmr_seen, "level: the local APIC's TMR bit set");
    CHECK(!(ioapic_entry_low(PIN_LEVEL) & RED_REMOTE_IRR), "level: EOI cleared remote IRR");
    lower_in_handler = 0;
    set_line(PIN_LEVEL, 1);
    settle();
    CHECK_EQ(n_level, 3, "level: sent again after EOI while the line stays high");
    ioapic_route(PIN_LEVEL, RED_MASKED | RED_LEVEL | V_LEVEL, 0);
    lower_in_handler = 1;
    set_line(PIN_LEVEL, 1);
    settle();
    CHECK_EQ(n_level, 3, "level: masked, nothing");
    CHECK(!(ioapic_entry_low(PIN_LEVEL) & RED_REMOTE_IRR), "level: masked, no remote IRR");
    ioapic_write(0x10 + 2 * PIN_LEVEL, RED_LEVEL | V_LEVEL);
    settle();
    CHECK_EQ(n_level, 4, "level: unmasked with the line high: sent");
    ioapic_route(PIN_LEVEL, RED_LEVEL | V_LEVEL, 5u << 24); /* APIC ID 5: no such CPU */
    set_line(PIN_LEVEL, 1);
    settle();
    CHECK_EQ(n_level, 4, "level: destination no CPU: nothing");
    set_line(PIN_LEVEL, 0);
    ioapic_route(PIN_LEVEL, RED_MASKED, 0);
    cli();
}

static void edge(void)
{
    ioapic_route(PIN_EDGE, V_EDGE, 0);
    sti();
    set_line(PIN_EDGE, 1);
    settle();
    CHECK_EQ(n_edge, 1, "edge: one interrupt per rising edge");
    set_line(PIN_EDGE, 0);
    set_line(PIN_EDGE, 1);
    settle();
    CHECK_EQ(n_edge, 2, "edge: the next rising edge");
    set_line(PIN_EDGE, 0);
    ioapic_route(PIN_EDGE, RED_MASKED | V_EDGE, 0);
    set_line(PIN_EDGE, 1);
    set_line(PIN_EDGE, 0);
    ioapic_write(0x10 + 2 * PIN_EDGE, V_EDGE);
    settle();
    CHECK_EQ(n_edge, 2, "edge: an edge while masked is lost");
    ioapic_route(PIN_EDGE, RED_MASKED, 0);
    cli();
}

void main(void)
{
    for (int v = 0x20; v < 0x40; v++)
        set_handler(v, on_other);
    set_handler(V_PIT, on_pit);
    set_handler(V_LEVEL, on_level);
    set_handler(V_EDGE, on_edge);
    apic_write(APIC_SVR, 0x13f);
    u32 ver = ioapic_read(1);
    CHECK_EQ((ver >> 16) & 0xff, 23, "IOAPIC: 24 redirection entries");
    CHECK((ver & 0xff) >= 0x11, "IOAPIC version");
    CHECK(ioapic_entry_low(PIN_EDGE) & RED_MASKED, "entries start masked");
    pit_route();
    level();
    edge();
    CHECK_EQ(n_other, 0, "no other vector (the 8259s stay masked)");
}
