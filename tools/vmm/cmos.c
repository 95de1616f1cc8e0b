/*
 * cmos.c - the MC146818 real-time clock and CMOS RAM at 0x70/0x71: the host's time
 * in BCD, 24-hour mode, no update in progress, and the memory-size bytes a BIOS
 * would have written.  Call with vmm.lock held.
 */
#include <time.h>

#include "vmm.h"

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

uint32_t cmos_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val)
{
    struct cmos *c = &m->cmos;
    if (port == 0x70) {
        if (!is_in)
            c->index = val & 0x7f;
        return 0xff;
    }
    if (!is_in) {
        if (c->index > 0x0d) /* time registers follow the host clock */
            c->ram[c->index] = (uint8_t)val;
        else if (c->index == 0x0b)
            c->ram[0x0b] = (uint8_t)((val & ~0x06u) | 0x02); /* stays BCD, 24-hour */
        return 0;
    }
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    switch (c->index) {
    case 0x00: return bcd(tm.tm_sec);
    case 0x02: return bcd(tm.tm_min);
    case 0x04: return bcd(tm.tm_hour);
    case 0x06: return bcd(tm.tm_wday + 1);
    case 0x07: return bcd(tm.tm_mday);
    case 0x08: return bcd(tm.tm_mon + 1);
    case 0x09: return bcd(tm.tm_year % 100);
    case 0x0c: return 0; /* no RTC interrupt pending */
    default: return c->ram[c->index];
    }
}
