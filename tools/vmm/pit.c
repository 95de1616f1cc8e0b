/*
 * pit.c - the 8254 interval timer at 0x40-0x43 and port 0x61.  Counters run from host
 * monotonic time at 1.193182 MHz, so reads and the channel 2 output (port 0x61 bit 5)
 * behave as on hardware for calibration loops; channel 0's output edges become IRQ0
 * pulses raised by the timer thread (pit_poll).  Modes 0-5, latch and read-back
 * commands, lsb/msb access, BCD is accepted but counted in binary.
 * Call everything with vmm.lock held.
 */
#include "vmm.h"

#define PIT_HZ 1193182ull
/* Fastest channel-0 interrupt rate emulated; faster programming is slowed to this. */
#define PIT_MIN_PERIOD_NS 20000ull

static uint64_t ticks_to_ns(uint64_t t) { return t * 1000000000ull / PIT_HZ; }
static uint64_t ns_to_ticks(uint64_t ns) { return ns * PIT_HZ / 1000000000ull; }

static uint64_t period_ns(const struct pit_channel *c)
{
    uint64_t p = ticks_to_ns(c->reload);
    return p < PIT_MIN_PERIOD_NS ? PIT_MIN_PERIOD_NS : p;
}

static void start(struct vmm *m, int i, uint64_t now);

/* As a PC BIOS leaves it (SeaBIOS, under QEMU's -kernel): channel 0 in mode 2 with a
   count of 65536, IRQ0 at 18.2 Hz; a guest that never programs the PIT still gets its
   timer (kvm-unit-tests' realmode waits in HLT for it). */
void pit_init(struct vmm *m)
{
    m->pit = (struct pit){ 0 };
    for (int i = 0; i < 3; i++) {
        m->pit.ch[i].reload = 65536;
        m->pit.ch[i].rw = 3;
        m->pit.ch[i].gate = i != 2;
    }
    m->pit.ch[0].mode = 2;
    start(m, 0, vmm_now_ns());
}

/* Ticks elapsed since the count was loaded (0 if not counting). */
static uint64_t elapsed(const struct pit_channel *c, uint64_t now)
{
    if (!c->armed || now < c->start_ns)
        return 0;
    return ns_to_ticks(now - c->start_ns);
}

static uint16_t current_count(const struct pit_channel *c, uint64_t now)
{
    uint64_t e = elapsed(c, now);
    uint32_t r = c->reload;
    if (!c->armed)
        return (uint16_t)r;
    switch (c->mode) {
    case 2:
        return (uint16_t)(r - e % r);
    case 3: {
        /* Counts down by two, twice per period. */
        uint64_t half = (r + 1) / 2;
        return (uint16_t)((r - 2 * (e % half)) & ~1u);
    }
    default: /* 0, 1, 4, 5: count down once, then wrap through 0xffff */
        return (uint16_t)((r - e) & 0xffff);
    }
}

static bool output(const struct pit_channel *c, uint64_t now)
{
    if (!c->armed)
        return c->mode != 0;
    uint64_t e = elapsed(c, now);
    switch (c->mode) {
    case 0: return e >= c->reload;
    case 1: return e >= c->reload;
    case 2: return (e % c->reload) != c->reload - 1;
    case 3: return (e % c->reload) < (c->reload + 1) / 2;
    case 4: case 5: return e != c->reload;
    default: return true;
    }
}

static void start(struct vmm *m, int i, uint64_t now)
{
    struct pit_channel *c = &m->pit.ch[i];
    /* Modes 1 and 5 wait for a gate trigger; the others count while the gate is high. */
    c->armed = (c->mode == 1 || c->mode == 5) ? false : c->gate;
    c->start_ns = now;
    c->next_irq_ns = 0;
    if (i == 0 && c->armed) {
        if (c->mode == 2 || c->mode == 3)
            c->next_irq_ns = now + period_ns(c);
        else if (c->mode == 0 || c->mode == 4)
            c->next_irq_ns = now + ticks_to_ns((uint64_t)c->reload + 1);
        vmm_timer_changed(m);
    }
}

uint64_t pit_poll(struct vmm *m, uint64_t now)
{
    struct pit_channel *c = &m->pit.ch[0];
    if (!c->next_irq_ns)
        return 0;
    if (now >= c->next_irq_ns) {
        if (!hpet_legacy(m)) /* legacy replacement cuts the PIT off IRQ0 */
            irq_pulse(m, 0);
        if (c->mode == 2 || c->mode == 3) {
            /* Missed periods coalesce into one edge, as they would in the IRR. */
            uint64_t p = period_ns(c);
            c->next_irq_ns += ((now - c->next_irq_ns) / p + 1) * p;
        } else {
            c->next_irq_ns = 0;
        }
    }
    return c->next_irq_ns;
}

static void latch(struct pit_channel *c, uint64_t now)
{
    if (!c->latched) {
        c->latch = current_count(c, now);
        c->latched = c->rw == 3 ? 2 : 1;
        c->read_lsb_next = c->rw != 2;
    }
}

uint32_t pit_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val)
{
    uint64_t now = vmm_now_ns();
    uint8_t v = (uint8_t)val;
    if (port == 0x43) {
        if (is_in)
            return 0xff;
        int sel = v >> 6;
        if (sel == 3) { /* read-back */
            for (int i = 0; i < 3; i++) {
                if (!(v & (2u << i)))
                    continue;
                struct pit_channel *c = &m->pit.ch[i];
                if (!(v & 0x20))
                    latch(c, now);
                if (!(v & 0x10) && !c->status_latched) {
                    c->status = (uint8_t)((output(c, now) ? 0x80 : 0) | (c->rw << 4) |
                                          (c->mode << 1) | c->bcd);
                    c->status_latched = 1;
                }
            }
            return 0;
        }
        struct pit_channel *c = &m->pit.ch[sel];
        int rw = (v >> 4) & 3;
        if (rw == 0) {
            latch(c, now);
            return 0;
        }
        c->rw = (uint8_t)rw;
        c->mode = (v >> 1) & 7;
        if (c->mode > 5)
            c->mode -= 4;
        c->bcd = v & 1;
        c->write_lsb_next = rw != 2;
        c->read_lsb_next = rw != 2;
        c->latched = 0;
        c->armed = false;
        c->next_irq_ns = 0;
        return 0;
    }
    int i = port - 0x40;
    struct pit_channel *c = &m->pit.ch[i];
    if (is_in) {
        if (c->status_latched) {
            c->status_latched = 0;
            return c->status;
        }
        uint16_t cnt;
        if (c->latched) {
            cnt = c->latch;
            c->latched--;
        } else {
            cnt = current_count(c, now);
        }
        uint8_t r;
        if (c->rw == 1)
            r = (uint8_t)cnt;
        else if (c->rw == 2)
            r = (uint8_t)(cnt >> 8);
        else {
            r = c->read_lsb_next ? (uint8_t)cnt : (uint8_t)(cnt >> 8);
            c->read_lsb_next ^= 1;
        }
        return r;
    }
    uint32_t count;
    if (c->rw == 1) {
        count = v;
    } else if (c->rw == 2) {
        count = (uint32_t)v << 8;
    } else if (c->write_lsb_next) {
        c->write_latch_lsb = v;
        c->write_lsb_next = 0;
        if (c->mode == 0)
            c->armed = false; /* writing the first byte stops counting in mode 0 */
        return 0;
    } else {
        count = c->write_latch_lsb | ((uint32_t)v << 8);
        c->write_lsb_next = 1;
    }
    c->reload = count ? count : 65536;
    start(m, i, now);
    return 0;
}

uint32_t port61_io(struct vmm *m, bool is_in, uint32_t val)
{
    uint64_t now = vmm_now_ns();
    struct pit_channel *c2 = &m->pit.ch[2];
    if (is_in) {
        /* Bit 4 toggles with the 15 us DRAM refresh; bit 5 is channel 2's output. */
        uint8_t refresh = (uint8_t)(((now / 15085) & 1) << 4);
        return (uint32_t)(m->pit.port61 & 3) | refresh | (output(c2, now) ? 0x20u : 0u);
    }
    bool gate = val & 1;
    if (gate && !c2->gate) {
        c2->gate = true;
        /* A rising gate (re)starts modes 1, 2, 3, 5 and lets a mode 0 count proceed. */
        if (c2->mode == 2 || c2->mode == 3) {
            start(m, 2, now);
        } else if (!c2->armed || c2->mode == 1 || c2->mode == 5) {
            c2->armed = true;
            c2->start_ns = now;
        }
    } else if (!gate) {
        c2->gate = false;
    }
    m->pit.port61 = (uint8_t)(val & 3);
    return 0;
}

/* The three counters (their host times through vs_time) and port 0x61. */
void pit_state(struct vmm *m, struct vstate *s)
{
    s->dev = "8254";
    for (int i = 0; i < 3; i++) {
        struct pit_channel *c = &m->pit.ch[i];
        vs_u32(s, &c->reload);
        uint8_t *f[] = { &c->mode, &c->rw, &c->bcd, &c->write_lsb_next, &c->read_lsb_next,
                         &c->write_latch_lsb, &c->latched, &c->status_latched, &c->status };
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
            vs_u8(s, f[k]);
        vs_u16(s, &c->latch);
        vs_bool(s, &c->gate);
        vs_bool(s, &c->armed);
        vs_time(s, &c->start_ns);
        vs_time(s, &c->next_irq_ns);
        vs_check(s, c->reload >= 1 && c->reload <= 65536 && c->mode <= 5 && c->rw <= 3,
                 "a counter's reload value, mode or access is out of range");
    }
    vs_u8(s, &m->pit.port61);
}
