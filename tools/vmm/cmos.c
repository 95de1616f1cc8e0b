/*
 * cmos.c - the MC146818 real-time clock and CMOS RAM at 0x70/0x71: the host's time in
 * BCD, 24-hour mode; register A's update-in-progress bit is set during the 244 us
 * before each second changes, as on the part; the alarm (registers 1, 3, 5, with 0xc0
 * and above meaning "any") and the update-ended event set AF and UF in register C once
 * a second, and with AIE/UIE in register B raise IRQ8 until register C is read (an
 * alarm also sets the ACPI RTC_STS).  No periodic interrupt (PIE) is generated.  The
 * memory-size bytes are what a BIOS would have written.  Call with vmm.lock held.
 */
#include <time.h>

#include "vmm.h"

#define REG_A_UIP 0x80
#define REG_B_UIE 0x10
#define REG_B_AIE 0x20
#define REG_C_IRQF 0x80
#define REG_C_AF 0x20
#define REG_C_UF 0x10
#define UIP_NS 244141 /* 8 periods of the 32.768 kHz clock */

static uint8_t bcd(int v) { return (uint8_t)(((v / 10) << 4) | (v % 10)); }

void cmos_init(struct vmm *m)
{
    struct cmos *c = &m->cmos;
    *c = (struct cmos){ 0 };
    c->ram[0x0a] = 0x26;
    c->ram[0x0b] = 0x02; /* 24-hour, BCD */
    c->ram[0x0d] = 0x80; /* battery good */
    c->ram[0x15] = 0x80; /* 640 KiB base memory */
    c->ram[0x16] = 0x02;
    uint64_t ext = (xbt_vm_ram_size(m->vm) - (1u << 20)) >> 10; /* KiB above 1 MiB */
    if (ext > 0xffff)
        ext = 0xffff;
    c->ram[0x17] = c->ram[0x30] = (uint8_t)ext;
    c->ram[0x18] = c->ram[0x31] = (uint8_t)(ext >> 8);
    uint64_t hi = xbt_vm_ram_size(m->vm) > (16u << 20)
                      ? (xbt_vm_ram_size(m->vm) - (16u << 20)) >> 16 : 0;
    c->ram[0x34] = (uint8_t)hi;
    c->ram[0x35] = (uint8_t)(hi >> 8);
    c->ram[0x32] = 0x20; /* century */
}

static void update_irq(struct vmm *m)
{
    struct cmos *c = &m->cmos;
    uint8_t b = c->ram[0x0b], f = c->ram[0x0c];
    bool level = ((f & REG_C_AF) && (b & REG_B_AIE)) || ((f & REG_C_UF) && (b & REG_B_UIE));
    c->ram[0x0c] = (uint8_t)(level ? f | REG_C_IRQF : f & ~REG_C_IRQF);
    if (level != c->irq_level) {
        c->irq_level = level;
        if (!hpet_legacy(m)) /* legacy replacement cuts the RTC off IRQ8 */
            irq_set(m, 8, level);
    }
}

static bool alarm_field(uint8_t alarm, int now) { return alarm >= 0xc0 || alarm == bcd(now); }

/* Once per host second: UF, and AF if the alarm matches. */
uint64_t cmos_poll(struct vmm *m, uint64_t now)
{
    struct cmos *c = &m->cmos;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    if ((int64_t)rt.tv_sec != c->alarm_checked) {
        c->alarm_checked = (int64_t)rt.tv_sec;
        struct tm tm;
        time_t t = rt.tv_sec;
        gmtime_r(&t, &tm);
        c->ram[0x0c] |= REG_C_UF;
        if (alarm_field(c->ram[0x01], tm.tm_sec) && alarm_field(c->ram[0x03], tm.tm_min) &&
            alarm_field(c->ram[0x05], tm.tm_hour)) {
            c->ram[0x0c] |= REG_C_AF;
            if (c->ram[0x0b] & REG_B_AIE)
                acpi_pm_rtc_event(m);
        }
        update_irq(m);
    }
    if (!(c->ram[0x0b] & (REG_B_AIE | REG_B_UIE)))
        return 0;
    return now + (1000000000ull - (uint64_t)rt.tv_nsec);
}

uint32_t cmos_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val)
{
    struct cmos *c = &m->cmos;
    if (port == 0x70) {
        if (!is_in)
            c->index = val & 0x7f;
        return 0xff;
    }
    if (!is_in) {
        if (c->index == 0x0b) {
            c->ram[0x0b] = (uint8_t)((val & ~0x06u) | 0x02); /* stays BCD, 24-hour */
            update_irq(m);
            vmm_timer_changed(m);
        } else if (c->index == 0x0a) {
            c->ram[0x0a] = (uint8_t)(val & 0x7f); /* UIP is read-only */
        } else if (c->index == 0x01 || c->index == 0x03 || c->index == 0x05 || c->index > 0x0d) {
            c->ram[c->index] = (uint8_t)val; /* alarms and RAM; the time follows the host */
        }
        return 0;
    }
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    struct tm tm;
    time_t t = rt.tv_sec;
    gmtime_r(&t, &tm);
    switch (c->index) {
    case 0x00: return bcd(tm.tm_sec);
    case 0x02: return bcd(tm.tm_min);
    case 0x04: return bcd(tm.tm_hour);
    case 0x06: return bcd(tm.tm_wday + 1);
    case 0x07: return bcd(tm.tm_mday);
    case 0x08: return bcd(tm.tm_mon + 1);
    case 0x09: return bcd(tm.tm_year % 100);
    case 0x0a: return c->ram[0x0a] | (rt.tv_nsec >= 1000000000 - UIP_NS ? REG_A_UIP : 0);
    case 0x0c: {
        uint8_t v = c->ram[0x0c];
        c->ram[0x0c] = 0;
        update_irq(m);
        return v;
    }
    default: return c->ram[c->index];
    }
}

/* The index, the 128 bytes (the time registers follow the host's clock anyway), the
   alarm's interrupt and when it was last compared (a host wall-clock second). */
void cmos_state(struct vmm *m, struct vstate *s)
{
    struct cmos *c = &m->cmos;
    s->dev = "RTC";
    vs_u8(s, &c->index);
    vs_bytes(s, c->ram, sizeof c->ram);
    vs_bool(s, &c->irq_level);
    uint64_t checked = (uint64_t)c->alarm_checked;
    vs_u64(s, &checked);
    c->alarm_checked = (int64_t)checked;
    vs_check(s, c->index < sizeof c->ram, "the index is past the 128 bytes");
}
