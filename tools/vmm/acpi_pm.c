/*
 * acpi_pm.c - the ACPI fixed hardware the FADT describes, at PIIX4's addresses as QEMU
 * and SeaBIOS set them: PM1a event block at 0x600 (PM1_STS, PM1_EN), PM1a control block
 * at 0x604 (PM1_CNT), PM timer at 0x608; SCI on ISA IRQ 9.
 *
 * PM timer: 24 bits at 3.579545 MHz from host monotonic time since power-on (the FADT
 * leaves TMR_VAL_EXT clear); TMR_STS sets whenever its bit 23 toggles, and with TMR_EN
 * raises the SCI.  PM1_STS bits clear by writing 1.  There is no SMI command port (the
 * FADT's SMI_CMD is 0), so the hardware is always in ACPI mode: SCI_EN reads 1.
 * Sleep: SLP_EN with SLP_TYP 0 (the DSDT's _S5) powers off, 2 (S4, no hibernation
 * image to come back to) too; SLP_TYP 1 (S3) suspends to RAM: with RTC_EN set the vCPU
 * waits for the RTC alarm and resumes at the FACS's waking vector in real mode
 * (xbt-run.c, resume_s3), as a BIOS's resume path would; without a wake source enabled
 * the run ends (nothing could wake the machine).  Call with vmm.lock held.
 */
#include <stdio.h>

#include "vmm.h"

#define PM_TMR_HZ 3579545ull
#define STS_TMR 0x0001u
#define STS_RTC 0x0400u
#define STS_WAK 0x8000u
#define STS_MASK 0x8731u /* TMR BM GBL PWRBTN SLPBTN RTC WAK */
#define EN_MASK 0x0721u  /* TMR GBL PWRBTN SLPBTN RTC */
#define CNT_SCI_EN 0x0001u
#define CNT_SLP_EN 0x2000u

void acpi_pm_init(struct vmm *m)
{
    m->pm = (struct acpi_pm){ 0 };
    m->pm.tmr_clear_ns = m->start_ns;
}

static uint64_t ticks(const struct vmm *m, uint64_t now)
{
    return (uint64_t)((unsigned __int128)(now - m->start_ns) * PM_TMR_HZ / 1000000000u);
}

/* Host time at which the PM timer's bit 23 next toggles after time t. */
static uint64_t next_toggle(const struct vmm *m, uint64_t t)
{
    uint64_t k = ticks(m, t) / (1u << 23) + 1;
    return m->start_ns +
           (uint64_t)(((unsigned __int128)k * (1u << 23) * 1000000000u + PM_TMR_HZ - 1) / PM_TMR_HZ);
}

static uint16_t status(const struct vmm *m, uint64_t now)
{
    uint16_t s = m->pm.sts;
    if (ticks(m, now) >> 23 != ticks(m, m->pm.tmr_clear_ns) >> 23)
        s |= STS_TMR;
    return s;
}

static void update_sci(struct vmm *m, uint64_t now)
{
    bool level = (status(m, now) & m->pm.en) != 0;
    if (level != m->pm.sci) {
        m->pm.sci = level;
        irq_set(m, PM_SCI_IRQ, level);
    }
}

uint64_t acpi_pm_poll(struct vmm *m, uint64_t now)
{
    update_sci(m, now);
    if (!(m->pm.en & STS_TMR) || (status(m, now) & STS_TMR))
        return 0;
    return next_toggle(m, m->pm.tmr_clear_ns);
}

bool acpi_pm_wake(struct vmm *m)
{
    if (!(m->pm.sts & STS_RTC) || !(m->pm.en & STS_RTC))
        return false;
    m->pm.suspended = false;
    m->pm.sts |= STS_WAK;
    m->pm.cnt &= (uint16_t)~0x1c00u; /* SLP_TYP back to S0 */
    return true;
}

void acpi_pm_rtc_event(struct vmm *m)
{
    m->pm.sts |= STS_RTC;
    update_sci(m, vmm_now_ns());
    if (m->pm.suspended)
        vmm_wake(m, 1u); /* the BSP, in xbt-run.c's resume_s3 */
}

static void sleep_request(struct vmm *m, unsigned typ)
{
    switch (typ) {
    case 0:
    case 2:
        fprintf(stderr, "xbt-run: ACPI power off (SLP_TYP %u)\n", typ);
        vmm_request_exit(m, END_POWEROFF, EXIT_HALTED);
        break;
    case 1:
        if (!(m->pm.en & STS_RTC)) {
            fprintf(stderr, "xbt-run: ACPI suspend to RAM (S3) with no wake source "
                            "enabled (PM1_EN.RTC_EN clear): the run ends\n");
            vmm_request_exit(m, END_SUSPEND, EXIT_SUSPEND);
            break;
        }
        m->pm.suspended = true;
        m->pm.sts &= (uint16_t)~STS_WAK;
        break;
    default:
        m->pm.sts |= STS_WAK; /* no such sleeping state in the DSDT: "woken" at once */
        break;
    }
}

static uint8_t read_byte(struct vmm *m, unsigned off, uint64_t now)
{
    uint16_t cnt = (uint16_t)(m->pm.cnt | CNT_SCI_EN);
    uint32_t tmr = (uint32_t)(ticks(m, now) & 0xffffff);
    switch (off) {
    case 0: case 1: return (uint8_t)(status(m, now) >> (8 * off));
    case 2: case 3: return (uint8_t)(m->pm.en >> (8 * (off - 2)));
    case 4: case 5: return (uint8_t)(cnt >> (8 * (off - 4)));
    case 8: case 9: case 10: case 11: return (uint8_t)(tmr >> (8 * (off - 8)));
    default: return 0;
    }
}

uint32_t acpi_pm_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val)
{
    unsigned off = port - PM_BASE;
    uint64_t now = vmm_now_ns();
    if (is_in) {
        uint32_t v = 0;
        for (unsigned i = 0; i < size; i++)
            v |= (uint32_t)read_byte(m, off + i, now) << (8 * i);
        return v;
    }
    for (unsigned i = 0; i < size; i++) {
        unsigned o = off + i;
        uint8_t b = (uint8_t)(val >> (8 * i));
        if (o <= 1) {
            uint16_t clr = (uint16_t)((b << (8 * o)) & STS_MASK);
            if (clr & STS_TMR)
                m->pm.tmr_clear_ns = now;
            m->pm.sts &= (uint16_t)~clr;
        } else if (o <= 3) {
            unsigned sh = 8 * (o - 2);
            m->pm.en = (uint16_t)(((m->pm.en & ~(0xffu << sh)) | ((unsigned)b << sh)) & EN_MASK);
        } else if (o <= 5) {
            unsigned sh = 8 * (o - 4);
            uint16_t v = (uint16_t)((m->pm.cnt & ~(0xffu << sh)) | ((unsigned)b << sh));
            m->pm.cnt = v & 0x1c02; /* BM_RLD, SLP_TYP; SLP_EN and GBL_RLS are write-only */
            if (v & CNT_SLP_EN)
                sleep_request(m, (v >> 10) & 7);
        }
    }
    update_sci(m, now);
    vmm_timer_changed(m);
    return 0;
}

/* PM1 status, enable and control, the PM timer's status edge, the SCI level (the timer
   itself counts from the board's power-on time, vmm.start_ns). */
void acpi_pm_state(struct vmm *m, struct vstate *s)
{
    struct acpi_pm *p = &m->pm;
    s->dev = "ACPI PM";
    vs_u16(s, &p->sts);
    vs_u16(s, &p->en);
    vs_u16(s, &p->cnt);
    vs_time(s, &p->tmr_clear_ns);
    vs_bool(s, &p->sci);
}
