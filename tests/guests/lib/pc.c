/*
 * pc.c - the PC platform helpers of the guest library (see pc.h).
 */
#include "pc.h"

u32 ioapic_read(u32 reg)
{
    mmio_write32(IOAPIC, reg);
    return mmio_read32(IOAPIC + 0x10);
}

void ioapic_write(u32 reg, u32 v)
{
    mmio_write32(IOAPIC, reg);
    mmio_write32(IOAPIC + 0x10, v);
}

void ioapic_route(int pin, u32 low, u32 high)
{
    ioapic_write(0x10 + 2 * pin, 0x10000); /* masked while it changes */
    ioapic_write(0x11 + 2 * pin, high);
    ioapic_write(0x10 + 2 * pin, low);
}

u32 ioapic_entry_low(int pin) { return ioapic_read(0x10 + 2 * pin); }

u8 sum8(const void *p, u32 n)
{
    const u8 *b = p;
    u8 s = 0;
    while (n--)
        s = (u8)(s + *b++);
    return s;
}

/* A word of the BIOS data area (through asm: the compiler sees no object there). */
static u32 bda16(u32 off)
{
    u16 v;
    __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(0x400 + off));
    return v;
}

static u32 ebda(void) { return bda16(0x0e) << 4; }

static u32 scan(u32 from, u32 len, const char *sig, u32 siglen, u32 sumlen)
{
    for (u32 a = from; a + sumlen <= from + len; a += 16)
        if (!memcmp((void *)a, sig, siglen) && sum8((void *)a, sumlen) == 0)
            return a;
    return 0;
}

u32 acpi_rsdp(void)
{
    u32 r = ebda() ? scan(ebda(), 1024, "RSD PTR ", 8, 20) : 0;
    return r ? r : scan(0xe0000, 0x20000, "RSD PTR ", 8, 20);
}

static int table_ok(u32 t, const char *sig)
{
    return t && !memcmp((void *)t, sig, 4) && sum8((void *)t, *(u32 *)(t + 4)) == 0;
}

u32 acpi_table(const char *sig)
{
    u32 rsdp = acpi_rsdp();
    if (!rsdp)
        return 0;
    u32 xsdt = *(u8 *)(rsdp + 15) >= 2 ? *(u32 *)(rsdp + 24) : 0;
    if (table_ok(xsdt, "XSDT")) {
        u32 n = (*(u32 *)(xsdt + 4) - 36) / 8;
        for (u32 i = 0; i < n; i++) {
            u32 t = *(u32 *)(xsdt + 36 + 8 * i);
            if (table_ok(t, sig))
                return t;
        }
        return 0;
    }
    u32 rsdt = *(u32 *)(rsdp + 16);
    if (!table_ok(rsdt, "RSDT"))
        return 0;
    u32 n = (*(u32 *)(rsdt + 4) - 36) / 4;
    for (u32 i = 0; i < n; i++) {
        u32 t = *(u32 *)(rsdt + 36 + 4 * i);
        if (table_ok(t, sig))
            return t;
    }
    return 0;
}

u32 mp_floating(void)
{
    u32 f = ebda() ? scan(ebda(), 1024, "_MP_", 4, 16) : 0;
    if (!f) {
        u32 base = bda16(0x13) * 1024;
        f = base >= 1024 ? scan(base - 1024, 1024, "_MP_", 4, 16) : 0;
    }
    return f ? f : scan(0xf0000, 0x10000, "_MP_", 4, 16);
}

static u32 pm_port;

u32 pm_timer_port(void)
{
    if (!pm_port) {
        u32 fadt = acpi_table("FACP");
        if (fadt)
            pm_port = *(u32 *)(fadt + 76);
    }
    return pm_port;
}

u32 pm_timer_read(void) { return inl((u16)pm_timer_port()) & 0xffffff; }

int pm_wait_count(volatile u32 *count, u32 target, u32 max_us)
{
    for (u32 waited = 0; waited < max_us; waited += 100) {
        if (*count >= target)
            return 1;
        pm_delay_us(100);
    }
    return *count >= target;
}

void pm_delay_us(u32 us)
{
    u32 ticks = us * 3 + us * 58 / 100; /* 3.58 ticks per microsecond */
    u32 start = pm_timer_read(), waited = 0;
    while (waited < ticks)
        waited = (pm_timer_read() - start) & 0xffffff;
}
