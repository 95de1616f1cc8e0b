/*
 * lapic.c - the local APIC of each vCPU (APIC ID = the vCPU's index), xAPIC mode: 4 KiB of registers at the
 * address IA32_APIC_BASE holds (0xfee00000 after reset), as SDM volume 3 chapter 11
 * describes them: ID, version (0x14, six LVT entries), TPR/APR/PPR, EOI with the
 * broadcast to the IOAPIC for level-triggered vectors, LDR/DFR (flat and cluster
 * logical destinations), SVR (software enable: while clear every LVT stays masked),
 * ISR/TMR/IRR with the priority classes, ESR (errors latch until the next ESR write,
 * then read back), the LVTs (timer, thermal, performance counter, LINT0, LINT1, error)
 * and the ICR (fixed, lowest priority, NMI, INIT, start-up; physical and logical
 * destinations, shorthands self, all, all but self; delivery completes at once under
 * the device lock, so the delivery status bit always reads idle).
 *
 * The timer counts down at 1 GHz / the divide configuration (the bus clock QEMU and KVM
 * use), from host monotonic time, one-shot or periodic.  TSC-deadline mode (LVT timer
 * mode 10b) needs CPUID.01H:ECX.TSC_DEADLINE and IA32_TSC_DEADLINE (MSR 0x6e0) in the
 * runtime, which has neither: the mode bit is not writable, as on a CPU without it.
 *
 * Messages (ICR, IOAPIC) go to a set of vCPUs (lapic_deliver).  Lowest priority goes
 * to the APIC of the set with the lowest arbitration priority (APR: the TPR, or the
 * priority class of the highest vector in service or requested when that is higher;
 * SDM 11.6.2.4), ties to the lowest vCPU index; no focus processor (SVR bit 9 reads 0
 * but is not implemented, as on Pentium 4 and Xeon).  QEMU takes the lowest APIC ID of
 * the set whatever its priority; a guest that raises TPR to keep device interrupts off
 * a CPU (Linux does not, Windows did) sees the difference.  NMIs go through
 * xbt_vcpu_nmi.  INIT to the BSP (vCPU 0) resets it, and nothing restarts it but the
 * reset vector: the run ends as a reset, as before SMP.  INIT to an AP latches
 * init_pending and stops the vCPU; its thread (xbt-run.c) resets the APIC and waits for
 * a start-up IPI (lapic_wait_sipi), whose vector it takes (lapic_take_sipi) to start
 * in real mode at vector << 12.  An INIT level de-assert is ignored (only P6-era CPUs
 * used it, to resynchronize arbitration IDs).  APs are in wait-for-SIPI from power-on,
 * as a BIOS leaves them.  A vCPU's thread is woken (vmm.wake) and kicked by the one
 * who delivered (xbt-run.c kicks the vCPUs whose interrupt state changed).
 * Call everything with vmm.lock held.
 *
 * Layering: the lowest interrupt controller; it calls only events.c and clock.c.  The
 * IOAPIC delivers into it (lapic_accept, lapic_nmi, lapic_extint), intr.c asks it for
 * vectors and feeds LINT0; what it tells them goes through the hooks intr.c connects
 * (struct intr_hooks: changed, and level_eoi for the EOI broadcast to the IOAPIC).
 */
#include <stdio.h>
#include <string.h>

#include "vmm.h"

#define SVR_ENABLE 0x100u
#define LVT_MASKED 0x10000u
#define LVT_LEVEL (1u << 15)
#define LVT_REMOTE_IRR (1u << 14)
#define LVT_PERIODIC (1u << 17)
#define ESR_SEND_ILLEGAL 0x20u
#define ESR_RECV_ILLEGAL 0x40u
#define ESR_ILLEGAL_REG 0x80u
#define APIC_MIN_PERIOD_NS 20000ull /* fastest periodic interrupt rate emulated */

/* Writable bits of each LVT (vector, delivery mode, polarity, trigger, mask, timer mode). */
static const uint32_t lvt_writable[LVT_N] = {
    [LVT_TIMER] = 0x000300ffu,   [LVT_THERMAL] = 0x000107ffu, [LVT_PERF] = 0x000107ffu,
    [LVT_LINT0] = 0x0001a7ffu,   [LVT_LINT1] = 0x0001a7ffu,   [LVT_ERROR] = 0x000100ffu,
};

static bool bit_get(const uint32_t *v, unsigned n) { return (v[n >> 5] >> (n & 31)) & 1; }
static void bit_set(uint32_t *v, unsigned n) { v[n >> 5] |= 1u << (n & 31); }
static void bit_clr(uint32_t *v, unsigned n) { v[n >> 5] &= ~(1u << (n & 31)); }

static int highest(const uint32_t *v)
{
    for (int i = 7; i >= 0; i--)
        if (v[i])
            return i * 32 + 31 - __builtin_clz(v[i]);
    return -1;
}

static bool sw_enabled(const struct lapic *a) { return a->svr & SVR_ENABLE; }
static void shadow_refresh(struct vmm *m, unsigned cpu);

bool lapic_hw_enabled(const struct vmm *m, unsigned cpu)
{
    return m->lapic[cpu].base_msr & (1u << 11);
}

/* Whether the APIC page that IA32_APIC_BASE value msr names holds gpa (enabled or not). */
static bool apic_page_has(uint64_t msr, uint64_t gpa)
{
    uint64_t base = msr & 0xfffff000u;
    return gpa >= base && gpa < base + 0x1000;
}

/* The TPR, or the priority class of vector (-1: none) where that is higher: PPR and
   APR are this with different vectors (SDM 11.8.3.1, 11.6.2.4). */
static uint32_t tpr_or_class(const struct lapic *a, int vector)
{
    uint32_t cls = vector < 0 ? 0 : (uint32_t)vector & 0xf0;
    return (a->tpr & 0xf0) >= cls ? a->tpr & 0xff : cls;
}

static uint32_t ppr(const struct lapic *a)
{
    return tpr_or_class(a, highest(a->isr));
}

static uint32_t apr(const struct lapic *a)
{
    int irrv = highest(a->irr), isrv = highest(a->isr);
    return tpr_or_class(a, irrv > isrv ? irrv : isrv);
}

/* The power-up state (SDM 11.4.7.1): everything zero but the APIC ID (the vCPU's
   index), DFR all ones, SVR 0xff (software disabled), every LVT masked.  The INIT and
   start-up state belongs to the vCPU's thread, not to the registers: it stays. */
static void power_up(struct lapic *a)
{
    uint64_t base = a->base_msr;
    uint64_t nmi = a->nmis, init = a->init_self, out = a->ipis_out;
    uint8_t index = a->index;
    bool init_pending = a->init_pending, wait_sipi = a->wait_sipi;
    int sipi = a->sipi_vector;
    memset(a, 0, sizeof *a);
    a->base_msr = base;
    a->nmis = nmi, a->init_self = init, a->ipis_out = out;
    a->index = index;
    a->id = (uint32_t)index << 24;
    a->init_pending = init_pending, a->wait_sipi = wait_sipi, a->sipi_vector = sipi;
    a->dfr = 0xffffffffu;
    a->svr = 0xff;
    for (int i = 0; i < LVT_N; i++)
        a->lvt[i] = LVT_MASKED;
}

void lapic_init(struct vmm *m)
{
    for (unsigned k = 0; k < m->ncpus; k++) {
        struct lapic *a = &m->lapic[k];
        a->index = (uint8_t)k;
        /* Enabled, and BSP on vCPU 0 only: each vCPU's reset value (xbt-run.c gives
           the APs theirs when they start). */
        a->base_msr = LAPIC_DEFAULT_BASE | (k ? 0x800 : 0x900);
        a->init_pending = false;
        a->wait_sipi = k != 0; /* the APs wait for INIT and start-up, as a BIOS leaves them */
        a->sipi_vector = -1;
        power_up(a);
    }
    /* What the BIOS leaves on the BSP (SeaBIOS on QEMU): software enabled, LINT0 the
       virtual wire from the 8259 (ExtINT), LINT1 NMI; so a kernel that never touches
       the APIC gets the 8259's interrupts. */
    struct lapic *a = &m->lapic[0];
    a->svr = 0x1ff;
    a->lvt[LVT_LINT0] = 0x8700;
    a->lvt[LVT_LINT1] = 0x8400;
    for (unsigned k = 0; k < m->ncpus; k++)
        lapic_shadow_attach(m, k);
}

/* An NMI to this CPU (ICR, LINT0/1 in NMI mode, an IOAPIC pin): xbt delivers it and
   ends a HLT in the library; a HLT the VMM waits in (xbt-run.c) sees nmis change. */
void lapic_nmi(struct vmm *m, unsigned cpu)
{
    m->lapic[cpu].nmis++;
    xbt_vcpu_nmi(m->cpus[cpu]);
    vmm_wake(m, 1u << cpu);
}

/* An error the APIC detected: latched for the next ESR write, signalled through the
   error LVT. */
static void error(struct vmm *m, unsigned cpu, uint32_t bits)
{
    struct lapic *a = &m->lapic[cpu];
    a->esr_pending |= bits;
    uint32_t l = a->lvt[LVT_ERROR];
    if (!(l & LVT_MASKED) && sw_enabled(a)) {
        if ((l & 0xff) < 16)
            a->esr_pending |= ESR_RECV_ILLEGAL; /* no recursion: not delivered */
        else
            lapic_accept(m, cpu, (uint8_t)l, false);
    }
}

void lapic_accept(struct vmm *m, unsigned cpu, uint8_t vector, bool level)
{
    struct lapic *a = &m->lapic[cpu];
    if (vector < 16) {
        error(m, cpu, ESR_RECV_ILLEGAL);
        return;
    }
    bit_set(a->irr, vector);
    if (level)
        bit_set(a->tmr, vector);
    else
        bit_clr(a->tmr, vector);
    m->intr_hooks.changed(m);
}

bool lapic_has_deliverable(const struct vmm *m, unsigned cpu)
{
    const struct lapic *a = &m->lapic[cpu];
    if (!lapic_hw_enabled(m, cpu) || !sw_enabled(a))
        return false;
    int v = highest(a->irr);
    return v >= 0 && ((uint32_t)v & 0xf0) > (ppr(a) & 0xf0);
}

int lapic_ack(struct vmm *m, unsigned cpu)
{
    if (!lapic_has_deliverable(m, cpu))
        return -1;
    struct lapic *a = &m->lapic[cpu];
    int v = highest(a->irr);
    bit_clr(a->irr, (unsigned)v);
    bit_set(a->isr, (unsigned)v);
    return v;
}

/* An ExtINT message (an IOAPIC pin in ExtINT mode): the next INTA goes to the 8259. */
void lapic_extint(struct vmm *m, unsigned cpu)
{
    m->lapic[cpu].extint_req = true;
    m->intr_hooks.changed(m);
}

bool lapic_extint_open(const struct vmm *m, unsigned cpu)
{
    if (cpu != 0)
        return false; /* the 8259's INTR is wired to the BSP's LINT0 only */
    if (!lapic_hw_enabled(m, cpu))
        return true; /* no APIC: LINT0 is the processor's INTR pin */
    uint32_t l = m->lapic[cpu].lvt[LVT_LINT0];
    return !(l & LVT_MASKED) && ((l >> 8) & 7) == DM_EXTINT;
}

/* LINT0 and LINT1 in fixed or NMI mode (ExtINT is intr_ack's business). */
static void lint_fire(struct vmm *m, unsigned cpu, int which, bool rising)
{
    struct lapic *a = &m->lapic[cpu];
    uint32_t *l = &a->lvt[which];
    if (*l & LVT_MASKED)
        return;
    switch ((*l >> 8) & 7) {
    case DM_FIXED:
        if (*l & LVT_LEVEL) {
            if (*l & LVT_REMOTE_IRR)
                return;
            *l |= LVT_REMOTE_IRR;
            lapic_accept(m, cpu, (uint8_t)*l, true);
        } else if (rising) {
            lapic_accept(m, cpu, (uint8_t)*l, false);
        }
        break;
    case DM_NMI:
        if (rising)
            lapic_nmi(m, cpu);
        break;
    default:
        break;
    }
}

/* The 8259's INTR: wired to the BSP's LINT0 (the APs' LINT0 see nothing here). */
void lapic_lint0(struct vmm *m, bool level)
{
    bool rising = level && !m->lapic[0].lint0_in;
    m->lapic[0].lint0_in = level;
    if (level && lapic_hw_enabled(m, 0))
        lint_fire(m, 0, LVT_LINT0, rising);
}

static void eoi(struct vmm *m, unsigned cpu)
{
    struct lapic *a = &m->lapic[cpu];
    int v = highest(a->isr);
    if (v < 0)
        return;
    bit_clr(a->isr, (unsigned)v);
    if (bit_get(a->tmr, (unsigned)v)) {
        m->intr_hooks.level_eoi(m, (uint8_t)v);
        uint32_t *l0 = &a->lvt[LVT_LINT0];
        if ((*l0 & LVT_REMOTE_IRR) && (*l0 & 0xff) == (uint32_t)v) {
            *l0 &= ~LVT_REMOTE_IRR;
            if (a->lint0_in)
                lint_fire(m, cpu, LVT_LINT0, false);
        }
    }
    m->intr_hooks.changed(m);
}

/* ---- timer -------------------------------------------------------------------------- */

static uint32_t divisor(const struct lapic *a)
{
    unsigned v = (a->dcr & 3) | ((a->dcr >> 1) & 4);
    return v == 7 ? 1 : 2u << v;
}

static uint32_t current_count(const struct lapic *a, uint64_t now)
{
    if (!a->timer_start_ns || !a->timer_initial || now < a->timer_start_ns)
        return a->timer_start_ns ? a->timer_initial : 0;
    uint64_t ticks = (now - a->timer_start_ns) / divisor(a);
    if (a->lvt[LVT_TIMER] & LVT_PERIODIC)
        return a->timer_initial - (uint32_t)(ticks % a->timer_initial);
    return ticks >= a->timer_initial ? 0 : a->timer_initial - (uint32_t)ticks;
}

static uint64_t period_ns(const struct lapic *a)
{
    return (uint64_t)a->timer_initial * divisor(a);
}

/* Sets the next expiry from the count as it stands (after a mode or divisor change the
   count carries on from where it was). */
static void timer_rearm(struct vmm *m, unsigned cpu, uint64_t now, uint32_t count)
{
    struct lapic *a = &m->lapic[cpu];
    a->timer_next_ns = 0;
    if (!a->timer_initial || !count) {
        if (!(a->lvt[LVT_TIMER] & LVT_PERIODIC))
            a->timer_start_ns = 0; /* one-shot that has expired: the count stays 0 */
        return;
    }
    uint64_t done = (uint64_t)(a->timer_initial - count) * divisor(a);
    a->timer_start_ns = now - done;
    a->timer_next_ns = now + (uint64_t)count * divisor(a);
    vmm_timer_changed(m);
}

static uint64_t timer_poll(struct vmm *m, unsigned cpu, uint64_t now)
{
    struct lapic *a = &m->lapic[cpu];
    if (!a->timer_next_ns || now < a->timer_next_ns)
        return a->timer_next_ns;
    uint32_t l = a->lvt[LVT_TIMER];
    if (!(l & LVT_MASKED) && lapic_hw_enabled(m, cpu))
        lapic_accept(m, cpu, (uint8_t)l, false);
    if (l & LVT_PERIODIC) {
        /* Missed periods coalesce into one interrupt, as they would in the IRR. */
        uint64_t p = period_ns(a) < APIC_MIN_PERIOD_NS ? APIC_MIN_PERIOD_NS : period_ns(a);
        a->timer_next_ns += ((now - a->timer_next_ns) / p + 1) * p;
    } else {
        a->timer_next_ns = 0;
        a->timer_start_ns = 0;
    }
    return a->timer_next_ns;
}

uint64_t lapic_poll(struct vmm *m, uint64_t now)
{
    uint64_t next = 0;
    for (unsigned k = 0; k < m->ncpus; k++) {
        uint64_t t = timer_poll(m, k, now);
        if (t && (!next || t < next))
            next = t;
    }
    return next;
}

/* ---- interprocessor interrupts ------------------------------------------------------ */

bool lapic_dest_match(const struct vmm *m, unsigned cpu, uint8_t dest, bool logical)
{
    const struct lapic *a = &m->lapic[cpu];
    if (dest == 0xff)
        return true; /* broadcast, physical or logical (flat: all bits; cluster: all) */
    if (!logical)
        return dest == (uint8_t)(a->id >> 24);
    uint8_t ldr = (uint8_t)(a->ldr >> 24);
    if ((a->dfr >> 28) == 0xf)
        return (dest & ldr) != 0; /* flat */
    return (dest >> 4) == (ldr >> 4) && (dest & ldr & 0xf) != 0; /* cluster */
}

uint32_t lapic_dest_mask(const struct vmm *m, uint8_t dest, bool logical)
{
    uint32_t set = 0;
    for (unsigned k = 0; k < m->ncpus; k++)
        if (lapic_hw_enabled(m, k) && lapic_dest_match(m, k, dest, logical))
            set |= 1u << k;
    return set;
}

uint32_t lapic_icr_targets(const struct vmm *m, unsigned self, uint32_t icr_lo, uint32_t icr_hi)
{
    uint32_t all = 0;
    for (unsigned k = 0; k < m->ncpus; k++)
        if (lapic_hw_enabled(m, k))
            all |= 1u << k;
    switch ((icr_lo >> 18) & 3) {
    case 1: return 1u << self;
    case 2: return all | 1u << self;
    case 3: return all & ~(1u << self);
    default: return lapic_dest_mask(m, (uint8_t)(icr_hi >> 24), icr_lo & (1u << 11));
    }
}

/* INIT to vCPU cpu: the BSP resets the machine; an AP stops and waits for start-up. */
static void init_cpu(struct vmm *m, unsigned cpu)
{
    struct lapic *a = &m->lapic[cpu];
    if (cpu == 0) {
        a->init_self++;
        fprintf(stderr, "xbt-run: INIT to the boot CPU: it restarts (reset)\n");
        vmm_request_exit(m, END_RESET, EXIT_RESET);
        return;
    }
    a->init_pending = true;
    a->sipi_vector = -1; /* a start-up before this INIT does not count */
    xbt_vcpu_stop(m->cpus[cpu]);
    vmm_wake(m, 1u << cpu);
}

/* Start-up: taken only by a vCPU in wait-for-SIPI (or on its way there after an INIT);
   the first one stands, a second (the MP protocol sends two) is ignored. */
static void startup_cpu(struct vmm *m, unsigned cpu, uint8_t vector)
{
    struct lapic *a = &m->lapic[cpu];
    if ((a->wait_sipi || a->init_pending) && a->sipi_vector < 0) {
        a->sipi_vector = vector;
        vmm_wake(m, 1u << cpu);
    }
}

/* The one vCPU of targets a lowest-priority message goes to (see the top). */
static uint32_t lowest_priority(const struct vmm *m, uint32_t targets)
{
    uint32_t best = 0, best_apr = 0x100;
    for (unsigned k = 0; k < m->ncpus; k++) {
        if (!(targets >> k & 1))
            continue;
        uint32_t p = apr(&m->lapic[k]);
        if (p < best_apr)
            best = 1u << k, best_apr = p;
    }
    return best;
}

void lapic_deliver(struct vmm *m, uint32_t targets, unsigned mode, uint8_t vector, bool level)
{
    if (mode == DM_LOWEST)
        targets = lowest_priority(m, targets);
    for (unsigned k = 0; k < m->ncpus; k++) {
        if (!(targets >> k & 1))
            continue;
        switch (mode) {
        case DM_FIXED:
        case DM_LOWEST: lapic_accept(m, k, vector, level); break;
        case DM_NMI: lapic_nmi(m, k); break;
        case DM_INIT: init_cpu(m, k); break;
        case DM_STARTUP: startup_cpu(m, k, vector); break;
        case DM_EXTINT: lapic_extint(m, k); break;
        default: break; /* SMI: no SMM */
        }
    }
}

static void send_ipi(struct vmm *m, unsigned cpu)
{
    struct lapic *a = &m->lapic[cpu];
    uint32_t lo = a->icr_lo;
    uint8_t vector = (uint8_t)lo, mode = (lo >> 8) & 7, shorthand = (lo >> 18) & 3;
    bool level = lo & LVT_LEVEL, assert_ = lo & (1u << 14);
    if (mode == DM_INIT && level && !assert_)
        return; /* INIT level de-assert: only synchronizes arbitration IDs */
    uint32_t targets = lapic_icr_targets(m, cpu, lo, a->icr_hi);
    if (targets & ~(1u << cpu))
        a->ipis_out++;
    if ((mode == DM_FIXED || mode == DM_LOWEST) && vector < 16) {
        error(m, cpu, shorthand == 1 ? ESR_RECV_ILLEGAL : ESR_SEND_ILLEGAL);
        return;
    }
    if (shorthand == 1 && (mode == DM_INIT || mode == DM_STARTUP))
        return; /* the self shorthand is for fixed interrupts (and NMI, as before) */
    lapic_deliver(m, targets, mode, vector, false);
}

void lapic_wait_sipi(struct vmm *m, unsigned cpu)
{
    struct lapic *a = &m->lapic[cpu];
    if (a->init_pending) {
        /* INIT: the power-up state but for the base address and ID (SDM 10.4.7.3);
           the base MSR itself is the vCPU's, set when it starts. */
        a->init_pending = false;
        a->base_msr = LAPIC_DEFAULT_BASE | 0x800;
        power_up(a);
        shadow_refresh(m, cpu);
    }
    a->wait_sipi = true;
}

int lapic_take_sipi(struct vmm *m, unsigned cpu)
{
    struct lapic *a = &m->lapic[cpu];
    if (a->init_pending)
        lapic_wait_sipi(m, cpu); /* a fresh INIT while waiting: reset again */
    int v = a->sipi_vector;
    if (v >= 0) {
        a->sipi_vector = -1;
        a->wait_sipi = false;
    }
    return v;
}

/* ---- registers ---------------------------------------------------------------------- */

static bool reg_read(struct vmm *m, unsigned cpu, unsigned reg, uint32_t *v)
{
    struct lapic *a = &m->lapic[cpu];
    switch (reg) {
    case 0x02: *v = a->id; return true;
    case 0x03: *v = 0x14 | ((LVT_N - 1u) << 16); return true;
    case 0x08: *v = a->tpr; return true;
    case 0x09: *v = apr(a); return true;
    case 0x0a: *v = ppr(a); return true;
    case 0x0b: *v = 0; return true; /* EOI is write-only */
    case 0x0c: *v = 0; return true; /* remote read: never valid */
    case 0x0d: *v = a->ldr; return true;
    case 0x0e: *v = a->dfr | 0x0fffffffu; return true;
    case 0x0f: *v = a->svr; return true;
    case 0x28: *v = a->esr; return true;
    case 0x30: *v = a->icr_lo; return true; /* delivery status 0: idle */
    case 0x31: *v = a->icr_hi; return true;
    case 0x38: *v = a->timer_initial; return true;
    case 0x39: *v = current_count(a, vmm_now_ns()); return true;
    case 0x3e: *v = a->dcr; return true;
    default: break;
    }
    if (reg >= 0x10 && reg <= 0x17)
        *v = a->isr[reg - 0x10];
    else if (reg >= 0x18 && reg <= 0x1f)
        *v = a->tmr[reg - 0x18];
    else if (reg >= 0x20 && reg <= 0x27)
        *v = a->irr[reg - 0x20];
    else if (reg >= 0x32 && reg <= 0x37)
        *v = a->lvt[reg - 0x32];
    else
        return false;
    return true;
}

static void write_svr(struct vmm *m, unsigned cpu, uint32_t v)
{
    struct lapic *a = &m->lapic[cpu];
    a->svr = v & 0x1ff; /* vector, enable; focus checking and EOI suppression absent */
    if (!sw_enabled(a)) {
        for (int i = 0; i < LVT_N; i++)
            a->lvt[i] |= LVT_MASKED;
    }
    m->intr_hooks.changed(m);
}

static void write_lvt(struct vmm *m, unsigned cpu, int n, uint32_t v)
{
    struct lapic *a = &m->lapic[cpu];
    uint64_t now = vmm_now_ns();
    uint32_t count = n == LVT_TIMER ? current_count(a, now) : 0;
    uint32_t keep = a->lvt[n] & ~lvt_writable[n]; /* read-only bits: remote IRR */
    if (n == LVT_LINT0 || n == LVT_LINT1) {
        /* NMI, SMI and INIT are edge-triggered, ExtINT level (SDM 11.5.1). */
        unsigned mode = (v >> 8) & 7;
        if (mode == DM_NMI || mode == DM_SMI || mode == DM_INIT)
            v &= ~LVT_LEVEL;
    }
    a->lvt[n] = (v & lvt_writable[n]) | keep;
    if (!sw_enabled(a))
        a->lvt[n] |= LVT_MASKED;
    if (n == LVT_TIMER)
        timer_rearm(m, cpu, now, count);
    if (n == LVT_LINT0 && a->lint0_in)
        lint_fire(m, cpu, LVT_LINT0, false);
    m->intr_hooks.changed(m);
}

static bool reg_write(struct vmm *m, unsigned cpu, unsigned reg, uint32_t v)
{
    struct lapic *a = &m->lapic[cpu];
    uint64_t now = vmm_now_ns();
    switch (reg) {
    case 0x02: a->id = v & 0xff000000u; return true;
    case 0x03: case 0x09: case 0x0a: case 0x0c: case 0x39: return true; /* read-only */
    case 0x08: a->tpr = v & 0xff; m->intr_hooks.changed(m); return true;
    case 0x0b: eoi(m, cpu); return true;
    case 0x0d: a->ldr = v & 0xff000000u; return true;
    case 0x0e: a->dfr = v | 0x0fffffffu; return true;
    case 0x0f: write_svr(m, cpu, v); return true;
    case 0x28: a->esr = a->esr_pending; a->esr_pending = 0; return true;
    case 0x30: a->icr_lo = v & 0x000ccfffu; send_ipi(m, cpu); return true;
    case 0x31: a->icr_hi = v & 0xff000000u; return true;
    case 0x38:
        a->timer_initial = v;
        a->timer_start_ns = v ? now : 0;
        timer_rearm(m, cpu, now, v);
        return true;
    case 0x3e: {
        uint32_t count = current_count(a, now);
        a->dcr = v & 0xb;
        timer_rearm(m, cpu, now, count);
        return true;
    }
    default: break;
    }
    if (reg >= 0x10 && reg <= 0x27)
        return true; /* ISR, TMR, IRR: read-only */
    if (reg >= 0x32 && reg <= 0x37) {
        write_lvt(m, cpu, (int)(reg - 0x32), v);
        return true;
    }
    return false;
}

void lapic_sync_base(struct vmm *m, unsigned cpu)
{
    uint64_t v;
    struct lapic *a = &m->lapic[cpu];
    if (xbt_vcpu_get_msr(m->cpus[cpu], 0x1b, &v) != XBT_OK)
        return;
    if (v != a->base_msr) {
        bool was = lapic_hw_enabled(m, cpu);
        a->base_msr = v;
        if (was != lapic_hw_enabled(m, cpu))
            power_up(a); /* global disable (or re-enable) starts from power-up state */
        m->intr_hooks.changed(m);
        lapic_shadow_attach(m, cpu);
    } else if (v != a->shadow_msr) {
        lapic_shadow_attach(m, cpu);
    }
}

/* Whether this vCPU's APIC, as its IA32_APIC_BASE is now (the guest may have moved or
   disabled it since the device model last looked), decodes gpa: what a device below it
   in pc_mmio's order may only answer without the lock when it does not. */
bool lapic_may_claim(struct vmm *m, unsigned cpu, uint64_t gpa)
{
    uint64_t msr;
    if (xbt_vcpu_get_msr(m->cpus[cpu], 0x1b, &msr) != XBT_OK) /* none in the CPU model: */
        msr = __atomic_load_n(&m->lapic[cpu].base_msr, __ATOMIC_RELAXED); /* as locked */
    return (msr & (1u << 11)) && apic_page_has(msr, gpa);
}

/*
 * A read that the vCPU's own thread answers without the device lock: a register only
 * this vCPU's accesses and an INIT change (ID, version, TPR, LDR, DFR, SVR), 4 bytes at
 * its offset, the APIC enabled at the base it last saw.  xv6 reads the ID register at
 * every pushcli and popcli (mycpu()): under the lock, two vCPUs took turns for each one
 * (xv6 usertests on 2 vCPUs: most of the time in the lock).  An INIT from another vCPU
 * may reset these meanwhile: either value is what a CPU could read then.
 */
bool lapic_read_own(struct vmm *m, unsigned cpu, uint64_t gpa, unsigned size, uint64_t *data)
{
    struct lapic *a = &m->lapic[cpu];
    uint64_t msr;
    if (!apic_page_has(__atomic_load_n(&a->base_msr, __ATOMIC_RELAXED), gpa))
        return false; /* not the APIC's page as last seen (a moved APIC: the locked path) */
    if (size != 4 || (gpa & 15) || xbt_vcpu_get_msr(m->cpus[cpu], 0x1b, &msr) != XBT_OK ||
        msr != __atomic_load_n(&a->base_msr, __ATOMIC_RELAXED) || !(msr & (1u << 11)) ||
        msr != a->shadow_msr) /* the locked path sets the read shadow for this base */
        return false;
    if (!apic_page_has(msr, gpa))
        return false;
    unsigned reg = (unsigned)(gpa - (msr & 0xfffff000u)) >> 4;
    const uint32_t *f;
    switch (reg) {
    case 0x02: f = &a->id; break;
    case 0x03: *data = 0x14 | ((LVT_N - 1u) << 16); return true;
    case 0x08: f = &a->tpr; break;
    case 0x0d: f = &a->ldr; break;
    case 0x0e: *data = __atomic_load_n(&a->dfr, __ATOMIC_RELAXED) | 0x0fffffffu; return true;
    case 0x0f: f = &a->svr; break;
    default: return false;
    }
    *data = __atomic_load_n(f, __ATOMIC_RELAXED);
    return true;
}

/*
 * The read shadow (xbt_vcpu_set_mmio_shadow): the library answers a plain 4-byte read
 * of these registers from a->shadow without calling lapic_mmio.  Only registers that
 * nothing but this vCPU's own writes, its power-up (INIT, which its own thread makes:
 * lapic_wait_sipi) and a restore change: ID, version, TPR, LDR, DFR, SVR, the ICR
 * (delivery completes at once: idle), the timer, thermal, performance and error LVTs
 * (not LINT0/LINT1, whose remote IRR the 8259 and IOAPIC side changes), the timer's
 * initial count and divide configuration.  Not APR, PPR, ISR, TMR, IRR (interrupts
 * from other threads), ESR (errors from other vCPUs' IPIs) or the current count.  The
 * values are refreshed after every write and power-up, on the vCPU's own thread, so a
 * read sees each change as lapic_mmio would.
 */
static const uint8_t shadow_regs[] = { 0x02, 0x03, 0x08, 0x0d, 0x0e, 0x0f, 0x30, 0x31,
                                       0x32, 0x33, 0x34, 0x37, 0x38, 0x3e };

static void shadow_refresh(struct vmm *m, unsigned cpu)
{
    struct lapic *a = &m->lapic[cpu];
    for (size_t i = 0; i < sizeof shadow_regs; i++) {
        uint32_t v = 0;
        reg_read(m, cpu, shadow_regs[i], &v);
        a->shadow[shadow_regs[i] * 4u] = v;
    }
}

/* The shadow for the APIC where IA32_APIC_BASE puts it now (none while disabled). */
void lapic_shadow_attach(struct vmm *m, unsigned cpu)
{
    struct lapic *a = &m->lapic[cpu];
    uint64_t msr;
    if (!m->cpus[cpu] || xbt_vcpu_get_msr(m->cpus[cpu], 0x1b, &msr) != XBT_OK)
        return;
    shadow_refresh(m, cpu);
    a->shadow_msr = msr;
    if (!(msr & (1u << 11))) {
        xbt_vcpu_set_mmio_shadow(m->cpus[cpu], NULL);
        return;
    }
    xbt_mmio_shadow sh = { .gpa = msr & 0xfffff000u, .page = a->shadow,
                           .flags = XBT_MMIO_SHADOW_APIC_BASE };
    for (size_t i = 0; i < sizeof shadow_regs; i++)
        sh.readable[shadow_regs[i] / 8] |= 1u << (shadow_regs[i] * 4 % 32);
    if (xbt_vcpu_set_mmio_shadow(m->cpus[cpu], &sh) != XBT_OK)
        xbt_vcpu_set_mmio_shadow(m->cpus[cpu], NULL);
}

/*
 * An access inside the APIC page: registers are 32 bits at 16-byte boundaries; a read
 * of 1, 2 or 4 bytes returns those bytes of the register, a write must be 4 bytes at
 * the register's offset (others are dropped: the SDM leaves them undefined).  Offsets
 * that are no register set ESR's illegal-register bit and read 0.
 */
bool lapic_mmio(struct vmm *m, unsigned cpu, uint64_t gpa, unsigned size, bool is_write,
                uint64_t *data)
{
    if (!lapic_hw_enabled(m, cpu))
        return false;
    uint64_t msr = m->lapic[cpu].base_msr;
    if (!apic_page_has(msr, gpa))
        return false;
    unsigned off = (unsigned)(gpa - (msr & 0xfffff000u)), reg = off >> 4, in = off & 15;
    if (!is_write) {
        uint32_t v = 0;
        if (!reg_read(m, cpu, reg, &v))
            error(m, cpu, ESR_ILLEGAL_REG);
        *data = in + size <= 4 ? (v >> (8 * in)) & (size == 4 ? ~0u : (1u << (8 * size)) - 1) : 0;
        return true;
    }
    if (in != 0 || size != 4)
        return true;
    if (!reg_write(m, cpu, reg, (uint32_t)*data))
        error(m, cpu, ESR_ILLEGAL_REG);
    shadow_refresh(m, cpu);
    return true;
}

/* One APIC's registers, interrupt bitmaps, timer (its host times through vs_time) and
   LINT0 and ExtINT inputs; the message counters are statistics, not state. */
static void lapic_state_one(struct lapic *a, struct vstate *s)
{
    vs_u64(s, &a->base_msr);
    uint32_t *f[] = { &a->id, &a->tpr, &a->ldr, &a->dfr, &a->svr, &a->esr, &a->esr_pending,
                      &a->icr_lo, &a->icr_hi, &a->timer_initial, &a->dcr };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        vs_u32(s, f[i]);
    for (int i = 0; i < LVT_N; i++)
        vs_u32(s, &a->lvt[i]);
    for (int i = 0; i < 8; i++) {
        vs_u32(s, &a->irr[i]);
        vs_u32(s, &a->isr[i]);
        vs_u32(s, &a->tmr[i]);
    }
    vs_time(s, &a->timer_start_ns);
    vs_time(s, &a->timer_next_ns);
    vs_bool(s, &a->lint0_in);
    vs_bool(s, &a->extint_req);
    vs_check(s, !(a->dcr & ~0xbu), "the divide configuration has reserved bits");
}

/* Every vCPU's APIC, vCPU 0's first (a one-vCPU machine's section is as before
   several existed); an AP's also with its INIT and start-up state, which says whether
   its thread runs it or waits for start-up after a restore. */
void lapic_state(struct vmm *m, struct vstate *s)
{
    s->dev = "local APIC";
    for (unsigned k = 0; k < m->ncpus; k++) {
        lapic_state_one(&m->lapic[k], s);
        if (!k)
            continue;
        struct lapic *a = &m->lapic[k];
        vs_bool(s, &a->init_pending);
        vs_bool(s, &a->wait_sipi);
        vs_int(s, &a->sipi_vector);
        vs_check(s, a->sipi_vector >= -1 && a->sipi_vector <= 255,
                 "an AP's start-up vector is out of range");
    }
}
