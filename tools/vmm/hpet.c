/*
 * hpet.c - the High Precision Event Timer at 0xfed00000 (IA-PC HPET specification 1.0a),
 * shaped as QEMU's: vendor 0x8086, revision 1, a 64-bit main counter at 100 MHz (period
 * 10,000,000 fs), three timers, each 64-bit and periodic capable, legacy replacement
 * capable, interrupt routing capability IRQ 2 only (QEMU's i440fx value).
 *
 * Registers: capabilities (0x000), configuration (0x010: ENABLE_CNF, LEG_RT_CNF),
 * interrupt status (0x020, write 1 to clear), main counter (0x0f0), and per timer at
 * 0x100 + 0x20 n: configuration and capabilities (level/edge, enable, periodic,
 * VAL_SET, 32-bit mode, route), comparator (0x108).  32-bit and 64-bit accesses.
 *
 * A timer fires when the counter reaches its comparator (in 32-bit mode the low 32 bits
 * and a 32-bit comparator); a periodic timer then adds its period to the comparator.
 * A comparator write sets the period, and the comparator itself in one-shot mode or
 * with VAL_SET (which then clears), as QEMU does.  Level mode sets the status bit and
 * holds the line until the bit is cleared; edge mode pulses it.  With legacy
 * replacement (LEG_RT_CNF, whether or not the counter runs) timer 0 drives ISA IRQ0
 * (the PIT is cut off it) and timer 1 ISA IRQ8 (the RTC is cut off); otherwise a timer drives IOAPIC input (GSI) Tn_INT_ROUTE.  Missed
 * periods coalesce, and periods under 20 us are slowed to that.
 * Call everything with vmm.lock held.
 */
#include "vmm.h"

#define PERIOD_FS 10000000ull /* 10 ns */
#define NS_PER_TICK 10ull
#define MIN_PERIOD_TICKS 2000ull /* 20 us */
#define ROUTE_CAP 0x4ull         /* IRQ 2 */

#define CFG_ENABLE 1ull
#define CFG_LEGACY 2ull
#define TN_LEVEL (1ull << 1)
#define TN_ENB (1ull << 2)
#define TN_PERIODIC (1ull << 3)
#define TN_PER_CAP (1ull << 4)
#define TN_SIZE_CAP (1ull << 5)
#define TN_VAL_SET (1ull << 6)
#define TN_32BIT (1ull << 8)
#define TN_ROUTE_SHIFT 9
#define TN_WRITABLE (TN_LEVEL | TN_ENB | TN_PERIODIC | TN_VAL_SET | TN_32BIT | (0x1full << 9))

void hpet_init(struct vmm *m)
{
    struct hpet *h = &m->hpet;
    *h = (struct hpet){ 0 };
    for (int i = 0; i < HPET_TIMERS; i++) {
        h->t[i].config = TN_PER_CAP | TN_SIZE_CAP | (ROUTE_CAP << 32);
        h->t[i].cmp = ~0ull;
        h->t[i].period = 0;
    }
}

static bool enabled(const struct hpet *h) { return h->config & CFG_ENABLE; }

bool hpet_legacy(const struct vmm *m) { return m->hpet.config & CFG_LEGACY; }

static uint64_t counter(const struct hpet *h, uint64_t now)
{
    if (!enabled(h) || now < h->base_ns)
        return h->counter_base;
    return h->counter_base + (now - h->base_ns) / NS_PER_TICK;
}

/* The output of timer n goes to its line: ISA IRQ0/IRQ8 in legacy mode, else its GSI. */
static void drive(struct vmm *m, int n, bool level)
{
    if (hpet_legacy(m) && n < 2) {
        irq_set(m, n == 0 ? 0 : 8, level);
        return;
    }
    int route = (int)((m->hpet.t[n].config >> TN_ROUTE_SHIFT) & 0x1f);
    gsi_set(m, route, level);
}

/* The level of a level-mode timer's output: status set, interrupts enabled, counting. */
static void update_level(struct vmm *m, int n)
{
    struct hpet_timer *t = &m->hpet.t[n];
    if (!(t->config & TN_LEVEL))
        return;
    bool level = (m->hpet.isr >> n & 1) && (t->config & TN_ENB) && enabled(&m->hpet);
    if (level != t->line) {
        t->line = level;
        drive(m, n, level);
    }
}

/* Host time at which the counter next equals the comparator (0: never). */
static uint64_t next_match(const struct hpet *h, const struct hpet_timer *t, uint64_t now)
{
    if (!enabled(h))
        return 0;
    uint64_t c = counter(h, now), d;
    if (t->config & TN_32BIT)
        d = (uint32_t)((uint32_t)t->cmp - (uint32_t)c);
    else if (t->cmp >= c)
        d = t->cmp - c;
    else
        return 0; /* passed: the 64-bit counter does not come back */
    if (d >= 1ull << 50)
        return 0; /* beyond 130 days: never, for this run */
    return now + d * NS_PER_TICK; /* d == 0: it matches now */
}

/* After a write that moves the counter, a comparator or a mode: the next matches. */
static void rearm(struct vmm *m, int n, uint64_t now)
{
    for (int i = 0; i < HPET_TIMERS; i++)
        if (n < 0 || i == n)
            m->hpet.t[i].next_ns = next_match(&m->hpet, &m->hpet.t[i], now);
    vmm_timer_changed(m);
}

static void fire(struct vmm *m, int n, uint64_t now)
{
    struct hpet *h = &m->hpet;
    struct hpet_timer *t = &h->t[n];
    if (t->config & TN_LEVEL) {
        h->isr |= 1ull << n;
        update_level(m, n);
    } else if (t->config & TN_ENB) {
        drive(m, n, true);
        drive(m, n, false);
    }
    uint64_t c = counter(h, now);
    if ((t->config & TN_PERIODIC) && t->period) {
        uint64_t p = t->period < MIN_PERIOD_TICKS ? MIN_PERIOD_TICKS : t->period;
        uint64_t late = (t->config & TN_32BIT) ? (uint32_t)((uint32_t)c - (uint32_t)t->cmp)
                                               : c - t->cmp;
        t->cmp += (late / p + 1) * p;
        if (t->config & TN_32BIT)
            t->cmp = (uint32_t)t->cmp;
        t->next_ns = next_match(h, t, now);
    } else if (t->config & TN_32BIT) {
        t->next_ns = now + (1ull << 32) * NS_PER_TICK; /* the low half comes round again */
    } else {
        t->next_ns = 0;
    }
}

uint64_t hpet_poll(struct vmm *m, uint64_t now)
{
    uint64_t next = 0;
    for (int i = 0; i < HPET_TIMERS; i++) {
        struct hpet_timer *t = &m->hpet.t[i];
        if (t->next_ns && now >= t->next_ns)
            fire(m, i, now);
        if (t->next_ns && (!next || t->next_ns < next))
            next = t->next_ns;
    }
    return next;
}

static uint64_t reg_read(struct vmm *m, unsigned off, uint64_t now)
{
    struct hpet *h = &m->hpet;
    switch (off) {
    case 0x000:
        return 0x01 | ((HPET_TIMERS - 1ull) << 8) | (1ull << 13) | (1ull << 15) |
               (0x8086ull << 16) | (PERIOD_FS << 32);
    case 0x010: return h->config;
    case 0x020: return h->isr;
    case 0x0f0: return counter(h, now);
    default: break;
    }
    if (off >= 0x100 && off < 0x100 + 0x20 * HPET_TIMERS) {
        const struct hpet_timer *t = &h->t[(off - 0x100) / 0x20];
        switch (off & 0x1f) {
        case 0x00: return t->config;
        case 0x08: return (t->config & TN_32BIT) ? (uint32_t)t->cmp : t->cmp;
        default: return 0; /* FSB route: no FSB delivery */
        }
    }
    return 0;
}

static void write_config(struct vmm *m, uint64_t v, uint64_t now)
{
    struct hpet *h = &m->hpet;
    bool was_legacy = hpet_legacy(m);
    uint64_t c = counter(h, now);
    for (int i = 0; i < HPET_TIMERS; i++)
        if (m->hpet.t[i].line)
            drive(m, i, false), m->hpet.t[i].line = false;
    h->config = v & (CFG_ENABLE | CFG_LEGACY);
    h->counter_base = c;
    h->base_ns = now;
    if (was_legacy != hpet_legacy(m) && !hpet_legacy(m))
        irq_set(m, 0, 0);
    for (int i = 0; i < HPET_TIMERS; i++)
        update_level(m, i);
}

static void write_timer(struct vmm *m, int n, unsigned reg, uint64_t v)
{
    struct hpet_timer *t = &m->hpet.t[n];
    if (reg == 0x00) {
        if (t->line)
            drive(m, n, false), t->line = false;
        uint64_t route = (v >> TN_ROUTE_SHIFT) & 0x1f;
        if (!((ROUTE_CAP >> route) & 1)) /* a route not in the capability: keep the old */
            v = (v & ~(0x1full << TN_ROUTE_SHIFT)) | (t->config & (0x1full << TN_ROUTE_SHIFT));
        t->config = (t->config & ~TN_WRITABLE) | (v & TN_WRITABLE);
        if (!(t->config & TN_LEVEL))
            m->hpet.isr &= ~(1ull << n);
        if (t->config & TN_32BIT)
            t->cmp = (uint32_t)t->cmp, t->period = (uint32_t)t->period;
        update_level(m, n);
    } else if (reg == 0x08) {
        if (t->config & TN_32BIT)
            v = (uint32_t)v;
        if (!(t->config & TN_PERIODIC) || (t->config & TN_VAL_SET))
            t->cmp = v;
        t->period = v;
        t->config &= ~TN_VAL_SET;
    }
}

/* A write of size bytes at byte offset off: merged into the 64-bit register. */
static void reg_write(struct vmm *m, unsigned off, unsigned size, uint64_t v, uint64_t now)
{
    struct hpet *h = &m->hpet;
    unsigned reg = off & ~7u, sh = 8 * (off & 7);
    uint64_t mask = (size >= 8 ? ~0ull : ((1ull << (8 * size)) - 1)) << sh;
    uint64_t old = reg_read(m, reg, now);
    if (reg >= 0x100 && (reg & 0x1f) == 0x08)
        old = h->t[(reg - 0x100) / 0x20].cmp; /* the comparator's full value (32-bit mode) */
    uint64_t nv = (old & ~mask) | ((v << sh) & mask);
    switch (reg) {
    case 0x010:
        write_config(m, nv, now);
        rearm(m, -1, now);
        break;
    case 0x020:
        h->isr &= ~((v << sh) & mask);
        for (int i = 0; i < HPET_TIMERS; i++)
            update_level(m, i);
        break;
    case 0x0f0:
        h->counter_base = nv;
        h->base_ns = now;
        rearm(m, -1, now);
        break;
    default:
        if (reg >= 0x100 && reg < 0x100 + 0x20 * HPET_TIMERS && (reg & 0x1f) <= 0x08) {
            int n = (int)(reg - 0x100) / 0x20;
            write_timer(m, n, reg & 0x1f, nv);
            rearm(m, n, now);
        }
        break;
    }
}

bool hpet_mmio(struct vmm *m, uint64_t gpa, unsigned size, bool is_write, uint64_t *data)
{
    if (gpa < HPET_BASE || gpa >= HPET_BASE + 0x400)
        return false;
    unsigned off = (unsigned)(gpa - HPET_BASE);
    uint64_t now = vmm_now_ns();
    if (size > 8 || (off & 7) + size > 8) {
        if (!is_write)
            *data = 0;
        return true;
    }
    if (is_write) {
        reg_write(m, off, size, *data, now);
        return true;
    }
    uint64_t v = reg_read(m, off & ~7u, now) >> (8 * (off & 7));
    *data = size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
    return true;
}

/* The configuration, the counter (frozen, or counting from a host time) and the timers. */
void hpet_state(struct vmm *m, struct vstate *s)
{
    struct hpet *h = &m->hpet;
    s->dev = "HPET";
    vs_u64(s, &h->config);
    vs_u64(s, &h->isr);
    vs_u64(s, &h->counter_base);
    vs_time(s, &h->base_ns);
    for (int i = 0; i < HPET_TIMERS; i++) {
        struct hpet_timer *t = &h->t[i];
        vs_u64(s, &t->config);
        vs_u64(s, &t->cmp);
        vs_u64(s, &t->period);
        vs_time(s, &t->next_ns);
        vs_bool(s, &t->line);
    }
}
