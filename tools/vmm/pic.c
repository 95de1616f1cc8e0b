/*
 * pic.c - the 8259A pair of a PC: master at 0x20/0x21 (vectors from ICW2), slave at
 * 0xa0/0xa1 cascaded on master IR2.  Edge- or level-triggered inputs as the PIIX's
 * edge/level control registers (ELCR, 0x4d0/0x4d1) select them (an edge latches IRR; a
 * level requests while the line is high), fully nested priority (IR0 highest),
 * non-specific and specific EOI, auto-EOI, IRR/ISR reads through OCW3, poll mode,
 * special mask mode.  Call everything with vmm.lock held.
 *
 * Layering: an interrupt controller beside the local APIC, calling no other module.  Its
 * INT output and every change reach the modules above through the hooks intr.c
 * connects (struct intr_hooks: pic_int is LINT0, changed wakes the vCPU).
 */
#include "vmm.h"

/* Highest-priority bit set in mask (IR0 first), or 8. */
static int prio_bit(uint8_t mask)
{
    for (int i = 0; i < 8; i++)
        if (mask & (1u << i))
            return i;
    return 8;
}

/* Requests: latched edges, and level-triggered lines that are high. */
static uint8_t requests(const struct pic *p) { return p->irr | (p->line & p->elcr); }

/* The IR line this PIC would raise INT for, or -1. */
static int pic_output(const struct pic *p)
{
    uint8_t req = requests(p) & ~p->imr;
    if (!req)
        return -1;
    int r = prio_bit(req);
    uint8_t isr = p->special_mask ? (uint8_t)(p->isr & ~p->imr) : p->isr;
    int s = prio_bit(isr);
    return r < s ? r : -1;
}

/* The master's INT output is LINT0 of the local APIC (and INTR with the APIC off): the
   pic_int hook, which intr.c connects there. */
static void notify(struct vmm *m)
{
    m->intr_hooks.pic_int(m, pic_output(&m->pic[0]) >= 0);
    m->intr_hooks.changed(m);
}

/* The slave's INT output drives master IR2 as a level. */
static void cascade(struct vmm *m)
{
    if (pic_output(&m->pic[1]) >= 0)
        m->pic[0].irr |= 1u << 2;
    else
        m->pic[0].irr &= (uint8_t)~(1u << 2);
}

void pic_init(struct vmm *m)
{
    for (int i = 0; i < 2; i++) {
        struct pic *p = &m->pic[i];
        *p = (struct pic){ 0 };
        /* As the BIOS leaves them (SeaBIOS's pic_reset and its timer): vectors 0x08
           and 0x70; IRQ0 and the cascade unmasked, the rest masked. */
        p->imr = i ? 0xff : 0xfa;
        p->base = i ? 0x70 : 0x08;
    }
}

void pic_set_irq(struct vmm *m, int irq, int level)
{
    struct pic *p = &m->pic[irq >> 3];
    uint8_t bit = (uint8_t)(1u << (irq & 7));
    if (level) {
        if (!(p->line & bit) && !(p->elcr & bit))
            p->irr |= bit;
        p->line |= bit;
    } else {
        p->line &= (uint8_t)~bit;
    }
    cascade(m);
    notify(m);
}

bool pic_has_pending(struct vmm *m)
{
    cascade(m);
    return pic_output(&m->pic[0]) >= 0;
}

/* INTA on one PIC: the IR acknowledged, or 7 (spurious) if nothing is pending. */
static int pic_inta(struct pic *p)
{
    int r = pic_output(p);
    if (r < 0)
        return 7;
    uint8_t bit = (uint8_t)(1u << r);
    p->irr &= (uint8_t)~bit;
    if (!p->auto_eoi)
        p->isr |= bit;
    return r;
}

int pic_ack(struct vmm *m)
{
    cascade(m);
    struct pic *mp = &m->pic[0];
    if (pic_output(mp) < 0)
        return -1;
    int r = pic_inta(mp);
    if (r == 2 && !mp->single) {
        int s = pic_inta(&m->pic[1]);
        cascade(m);
        return m->pic[1].base + s;
    }
    return mp->base + r;
}

static void eoi(struct pic *p, int specific, int level)
{
    if (specific) {
        p->isr &= (uint8_t)~(1u << (level & 7));
    } else {
        int b = prio_bit(p->isr);
        if (b < 8)
            p->isr &= (uint8_t)~(1u << b);
    }
}

uint32_t elcr_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val)
{
    struct pic *p = &m->pic[port & 1];
    if (is_in)
        return p->elcr;
    /* IRQ 0, 1, 2, 8 and 13 are edge-only: their bits are reserved (zero). */
    p->elcr = (uint8_t)(val & ((port & 1) ? 0xde : 0xf8));
    cascade(m);
    notify(m);
    return 0;
}

uint32_t pic_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val)
{
    struct pic *p = &m->pic[(port & 0x80) ? 1 : 0];
    bool data = port & 1;
    uint8_t v = (uint8_t)val;
    if (is_in) {
        if (data)
            return p->imr;
        if (p->poll) {
            p->poll = 0;
            int r = pic_output(p);
            if (r < 0)
                return 0;
            pic_inta(p);
            cascade(m);
            return 0x80u | (uint32_t)r;
        }
        return p->read_isr ? p->isr : requests(p);
    }
    if (!data) {
        if (v & 0x10) { /* ICW1 */
            p->icw_step = 2;
            p->icw4_needed = v & 1;
            p->single = (v >> 1) & 1;
            p->imr = 0;
            p->isr = 0;
            p->irr = 0;
            p->special_mask = 0;
            p->read_isr = 0;
            p->auto_eoi = 0;
        } else if (v & 0x08) { /* OCW3 */
            if (v & 0x02)
                p->read_isr = v & 1;
            if (v & 0x04)
                p->poll = 1;
            if (v & 0x40)
                p->special_mask = (v >> 5) & 1;
        } else { /* OCW2 */
            switch (v >> 5) {
            case 1: case 5: eoi(p, 0, 0); break;
            case 3: case 7: eoi(p, 1, v & 7); break;
            default: break; /* rotation and priority commands: fixed priority kept */
            }
        }
    } else {
        switch (p->icw_step) {
        case 2:
            p->base = v & 0xf8;
            p->icw_step = p->single ? (p->icw4_needed ? 4 : 0) : 3;
            break;
        case 3:
            p->icw_step = p->icw4_needed ? 4 : 0;
            break;
        case 4:
            p->auto_eoi = (v >> 1) & 1;
            p->icw_step = 0;
            break;
        default:
            p->imr = v;
            break;
        }
    }
    cascade(m);
    notify(m);
    return 0;
}

/* The pair's registers and their initialization sequence (vstate.c's shape). */
void pic_state(struct vmm *m, struct vstate *s)
{
    s->dev = "8259";
    for (int k = 0; k < 2; k++) {
        struct pic *p = &m->pic[k];
        uint8_t *f[] = { &p->irr, &p->isr, &p->imr, &p->base, &p->icw_step, &p->icw4_needed,
                         &p->single, &p->auto_eoi, &p->read_isr, &p->line, &p->special_mask,
                         &p->poll, &p->elcr };
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            vs_u8(s, f[i]);
        vs_check(s, p->icw_step == 0 || (p->icw_step >= 2 && p->icw_step <= 4),
                 "an initialization step that does not exist");
    }
}
