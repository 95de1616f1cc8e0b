/*
 * ioapic.c - the I/O APIC at 0xfec00000: IOREGSEL (offset 0x00) selects a register,
 * IOWIN (0x10) reads and writes it, the EOI register (0x40) of version 0x20 parts.
 * Registers: ID (bits 27:24), version 0x20 with 24 redirection entries (as QEMU's),
 * arbitration ID, and the 24 redirection entries (vector, delivery mode, logical or
 * physical destination, polarity, remote IRR, edge or level trigger, mask, destination).
 *
 * Pins: ISA lines arrive through intr.c (IRQ0 on pin 2).  An edge-triggered pin sends
 * a message on each rising edge while unmasked (an edge that arrives masked is lost, as
 * on the 82093AA); a level-triggered pin sends while its input is high, sets remote IRR,
 * and sends again after the local APIC's EOI broadcast (or a write of the vector to the
 * EOI register) if the input is still high.  Setting a level entry to edge clears its
 * remote IRR.  Every source here drives its line active high; the polarity bit is kept
 * and read back but not applied (the MADT and MP table say the ISA lines conform to
 * the bus: active high), as in QEMU.  Call everything with vmm.lock held.
 *
 * Layering: an interrupt controller above the local APIC, which it delivers to
 * (lapic_deliver: a downward call), below intr.c, which drives
 * its pins and routes the local APIC's EOI broadcast to ioapic_eoi (struct intr_hooks).
 */
#include "vmm.h"

#define RED_MASKED (1ull << 16)
#define RED_LEVEL (1ull << 15)
#define RED_REMOTE_IRR (1ull << 14)
#define RED_WRITABLE 0xff0000000001afffull

void ioapic_init(struct vmm *m)
{
    struct ioapic *io = &m->ioapic;
    *io = (struct ioapic){ 0 };
    io->id = 1u << 24; /* APIC ID 0 is the CPU's; the MP table and the MADT name this
                          IOAPIC 1, and the register says the same */
    for (int i = 0; i < IOAPIC_PINS; i++)
        io->redir[i] = RED_MASKED;
}

/* One interrupt message from pin's redirection entry to the local APIC(s) its
   destination names (physical or logical; lowest priority to one of them, as
   lapic_deliver chooses; INIT to the BSP resets the machine, ExtINT asks the 8259). */
static void send(struct vmm *m, int pin)
{
    struct ioapic *io = &m->ioapic;
    uint64_t e = io->redir[pin];
    uint8_t vector = (uint8_t)e, mode = (e >> 8) & 7, dest = (uint8_t)(e >> 56);
    bool logical = (e >> 11) & 1, level = e & RED_LEVEL;
    uint32_t targets = lapic_dest_mask(m, dest, logical);
    if (!targets)
        return; /* no CPU takes it (remote IRR stays clear: nobody will send an EOI) */
    if (mode == DM_STARTUP)
        return; /* not a mode an IOAPIC sends (reserved) */
    if (level && (mode == DM_FIXED || mode == DM_LOWEST))
        io->redir[pin] |= RED_REMOTE_IRR;
    lapic_deliver(m, targets, mode, vector, level);
}

static bool asserted(const struct ioapic *io, int pin) { return (io->level >> pin) & 1; }

/* A level-triggered entry sends while its input is high and no EOI is outstanding. */
static void service_level(struct vmm *m, int pin)
{
    uint64_t e = m->ioapic.redir[pin];
    if ((e & RED_LEVEL) && !(e & (RED_MASKED | RED_REMOTE_IRR)) && asserted(&m->ioapic, pin))
        send(m, pin);
}

void ioapic_set_pin(struct vmm *m, int pin, int level)
{
    struct ioapic *io = &m->ioapic;
    if (pin < 0 || pin >= IOAPIC_PINS)
        return;
    bool was = asserted(io, pin);
    if (level)
        io->level |= 1u << pin;
    else
        io->level &= ~(1u << pin);
    uint64_t e = io->redir[pin];
    if (e & RED_MASKED)
        return;
    if (e & RED_LEVEL)
        service_level(m, pin);
    else if (level && !was)
        send(m, pin);
}

void ioapic_eoi(struct vmm *m, uint8_t vector)
{
    struct ioapic *io = &m->ioapic;
    for (int pin = 0; pin < IOAPIC_PINS; pin++) {
        if ((io->redir[pin] & RED_REMOTE_IRR) && (uint8_t)io->redir[pin] == vector) {
            io->redir[pin] &= ~RED_REMOTE_IRR;
            service_level(m, pin);
        }
    }
}

static uint32_t reg_read(struct ioapic *io)
{
    unsigned r = io->sel;
    if (r == 0x00)
        return io->id;
    if (r == 0x01)
        return 0x20 | ((IOAPIC_PINS - 1u) << 16);
    if (r == 0x02)
        return io->id; /* arbitration ID: the APIC ID */
    if (r >= 0x10 && r < 0x10 + 2 * IOAPIC_PINS) {
        uint64_t e = io->redir[(r - 0x10) / 2];
        return (r & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
    }
    return 0;
}

static void reg_write(struct vmm *m, uint32_t v)
{
    struct ioapic *io = &m->ioapic;
    unsigned r = io->sel;
    if (r == 0x00) {
        io->id = v & 0x0f000000u;
        return;
    }
    if (r < 0x10 || r >= 0x10 + 2 * IOAPIC_PINS)
        return; /* version, arbitration: read-only */
    int pin = (int)(r - 0x10) / 2;
    uint64_t e = io->redir[pin];
    uint64_t n = (r & 1) ? ((uint64_t)v << 32) | (uint32_t)e : (e & ~0xffffffffull) | v;
    n = (n & RED_WRITABLE) | (e & RED_REMOTE_IRR);
    if (!(n & RED_LEVEL))
        n &= ~RED_REMOTE_IRR;
    io->redir[pin] = n;
    service_level(m, pin); /* unmasked with the input high: it sends now */
}

bool ioapic_mmio(struct vmm *m, uint64_t gpa, unsigned size, bool is_write, uint64_t *data)
{
    if (gpa < IOAPIC_BASE || gpa >= IOAPIC_BASE + 0x1000)
        return false;
    struct ioapic *io = &m->ioapic;
    unsigned off = (unsigned)(gpa - IOAPIC_BASE);
    if (!is_write) {
        uint32_t v = 0;
        if (off == 0x00)
            v = io->sel;
        else if (off == 0x10 && size == 4)
            v = reg_read(io);
        *data = size >= 4 ? v : v & ((1u << (8 * size)) - 1);
        return true;
    }
    uint32_t v = (uint32_t)*data;
    if (off == 0x00)
        io->sel = (uint8_t)v;
    else if (off == 0x10 && size == 4)
        reg_write(m, v);
    else if (off == 0x40)
        ioapic_eoi(m, (uint8_t)v);
    return true;
}

/* The ID, the register selector, the redirection table and the pins' input levels. */
void ioapic_state(struct vmm *m, struct vstate *s)
{
    struct ioapic *io = &m->ioapic;
    s->dev = "IOAPIC";
    vs_u32(s, &io->id);
    vs_u8(s, &io->sel);
    for (int i = 0; i < IOAPIC_PINS; i++)
        vs_u64(s, &io->redir[i]);
    vs_u32(s, &io->level);
}
