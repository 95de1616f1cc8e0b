/*
 * intr.c - the interrupt wiring of the board, in one place.
 *
 *   device --> ISA line n (0-15) --+--> 8259 input n --> INTR --> LINT0 (ExtINT) --+
 *                                  +--> IOAPIC pin n (IRQ0: pin 2) --> message --> LAPIC k --> vCPU k
 *   pc-testdev lines 16-23 --------------> IOAPIC pins 16-23
 *
 * A line has one level, driven by whichever device wrote it last (as QEMU's qemu_irq).
 * INTR and LINT0 are the BSP's (vCPU 0); IOAPIC messages go to the local APIC(s) their
 * destination names.  A vCPU takes its local APIC's highest deliverable vector first; otherwise, when
 * the 8259's INTR reaches the CPU (LINT0 unmasked in ExtINT mode, or the APIC globally
 * disabled in IA32_APIC_BASE), the 8259 is acknowledged for its vector.  ExtINT
 * bypasses the APIC's priority logic (SDM 10.8.1).  Call everything with vmm.lock held.
 *
 * Layering: the router, above the three controllers (pic.c; ioapic.c over lapic.c) and
 * below the devices that drive lines and the board.  It calls down into the controllers
 * and connects their outputs upward (struct intr_hooks, intr_init); none of them calls it.
 */
#include "vmm.h"

/* ISA IRQ0 is wired to IOAPIC pin 2 (the MADT's interrupt source override and the MP
   table say so); every other ISA line n to pin n. */
static int isa_to_pin(int line) { return line == 0 ? 2 : line; }

/* The controllers' outputs, as the board wires them: the 8259's INT to LINT0, the local
   APIC's EOI of a level-triggered vector to the IOAPIC, any change to intr_changed. */
void intr_init(struct vmm *m)
{
    m->intr_hooks = (struct intr_hooks){
        .changed = intr_changed, .pic_int = lapic_lint0, .level_eoi = ioapic_eoi,
    };
}

void irq_set(struct vmm *m, int line, int level)
{
    if (line < 0 || line >= IOAPIC_PINS)
        return;
    if (line < 16) {
        uint16_t bit = (uint16_t)(1u << line);
        bool lv = level != 0;
        int pin = isa_to_pin(line);
        /* The level every controller already sees: no edge, nothing to re-evaluate (a
           UART or ATA register access re-states its line every time). */
        if (((m->isa_level & bit) != 0) == lv &&
            ((m->pic[line >> 3].line >> (line & 7)) & 1) == lv &&
            ((m->ioapic.level >> pin) & 1) == lv)
            return;
        m->isa_level = level ? (uint16_t)(m->isa_level | bit) : (uint16_t)(m->isa_level & ~bit);
        pic_set_irq(m, line, level);
        ioapic_set_pin(m, pin, level);
    } else {
        ioapic_set_pin(m, line, level);
    }
    intr_changed(m);
}

void gsi_set(struct vmm *m, int gsi, int level)
{
    ioapic_set_pin(m, gsi, level);
    intr_changed(m);
}

void irq_pulse(struct vmm *m, int line)
{
    irq_set(m, line, 1);
    irq_set(m, line, 0);
}

bool intr_pending(struct vmm *m, unsigned cpu)
{
    if (lapic_has_deliverable(m, cpu))
        return true;
    return (lapic_extint_open(m, cpu) || m->lapic[cpu].extint_req) && pic_has_pending(m);
}

int intr_ack(struct vmm *m, unsigned cpu)
{
    int v = lapic_ack(m, cpu);
    if (v >= 0)
        return v;
    if ((lapic_extint_open(m, cpu) || m->lapic[cpu].extint_req) && pic_has_pending(m)) {
        m->lapic[cpu].extint_req = false;
        return pic_ack(m);
    }
    return -1;
}

/* A change wakes the halted vCPUs that now have an interrupt to take, and those alone
   (the others find theirs when they next look). */
void intr_changed(struct vmm *m)
{
    m->intr_changes++;
    uint32_t wake = 0;
    for (unsigned k = 0; k < m->ncpus; k++)
        if ((m->halted >> k & 1) && intr_pending(m, k))
            wake |= 1u << k;
    if (wake)
        vmm_wake(m, wake);
}

/* The ISA lines' levels as the devices drive them (the wiring itself is fixed). */
void intr_state(struct vmm *m, struct vstate *s)
{
    s->dev = "interrupt lines";
    vs_u16(s, &m->isa_level);
}
