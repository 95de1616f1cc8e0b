/*
 * tables.c - the firmware's tables, found the way a kernel finds them and checksummed:
 * the BIOS data area (COM1, the EBDA segment, base memory), the ACPI RSDP (EBDA, then
 * 0xe0000-0xfffff), RSDT/XSDT, FADT (PM timer block, SCI, FACS, DSDT), MADT (the boot
 * CPU's local APIC, the IOAPIC at 0xfec00000 with GSI base 0, ISA IRQ0 on GSI 2), HPET,
 * and the MP floating pointer and configuration table (processor, ISA bus, IOAPIC, the
 * I/O interrupt entries of IRQ 0, COM1's IRQ 4 and the disk's IRQ 14, LINT0 ExtINT,
 * LINT1 NMI).  The same checks hold for SeaBIOS and QEMU's tables and xbt-run's.
 */
#include "lib/pc.h"

static u32 rd16(u32 a) { return *(volatile u16 *)a; }
static u32 rd32(u32 a) { return *(volatile u32 *)a; }

static u32 bda16(u32 off)
{
    u16 v;
    __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(0x400 + off));
    return v;
}

static void bios_data_area(void)
{
    CHECK_EQ(bda16(0x00), 0x3f8, "BDA: COM1 at 0x3f8");
    u32 ebda = bda16(0x0e) << 4;
    u32 base = bda16(0x13) * 1024;
    printf("BDA: EBDA at %x, base memory %u KiB\n", ebda, base / 1024);
    CHECK(ebda >= 0x80000 && ebda < 0xa0000, "BDA: an EBDA below 640 KiB");
    CHECK(base && base <= ebda, "BDA: base memory ends at or below the EBDA");
}

static void madt(void)
{
    u32 t = acpi_table("APIC");
    CHECK(t != 0, "MADT found, checksum ok");
    if (!t)
        return;
    CHECK_EQ(rd32(t + 36), 0xfee00000, "MADT: local APIC address");
    CHECK(rd32(t + 40) & 1, "MADT: PC-AT compatible 8259s");
    int cpus = 0, bsp = 0, ioapics = 0, irq0 = -1;
    u32 my_id = apic_read(APIC_ID) >> 24;
    for (u32 p = t + 44; p < t + rd32(t + 4); p += *(u8 *)(p + 1)) {
        u8 type = *(u8 *)p;
        if (*(u8 *)(p + 1) < 2)
            break;
        if (type == 0 && (rd32(p + 4) & 1)) {
            cpus++;
            bsp |= *(u8 *)(p + 3) == my_id;
        } else if (type == 1) {
            ioapics++;
            CHECK_EQ(rd32(p + 4), 0xfec00000, "MADT: IOAPIC address");
            CHECK_EQ(rd32(p + 8), 0, "MADT: IOAPIC GSI base");
        } else if (type == 2 && *(u8 *)(p + 3) == 0) {
            irq0 = (int)rd32(p + 4);
        }
    }
    CHECK(cpus >= 1 && bsp, "MADT: an enabled local APIC with this CPU's ID");
    CHECK_EQ(ioapics, 1, "MADT: one IOAPIC");
    CHECK_EQ(irq0, 2, "MADT: ISA IRQ0 overridden to GSI 2");
}

static void acpi(void)
{
    u32 rsdp = acpi_rsdp();
    CHECK(rsdp != 0, "RSDP found on a 16-byte boundary, checksum ok");
    if (!rsdp)
        return;
    printf("RSDP at %x revision %u\n", rsdp, *(u8 *)(rsdp + 15));
    if (*(u8 *)(rsdp + 15) >= 2)
        CHECK(rd32(rsdp + 20) >= 36 && sum8((void *)rsdp, rd32(rsdp + 20)) == 0,
              "RSDP: extended checksum");
    u32 rsdt = rd32(rsdp + 16);
    CHECK(rsdt && !memcmp((void *)rsdt, "RSDT", 4) && sum8((void *)rsdt, rd32(rsdt + 4)) == 0,
          "RSDT checksum");
    u32 fadt = acpi_table("FACP");
    CHECK(fadt != 0, "FADT found, checksum ok");
    if (fadt) {
        CHECK(rd32(fadt + 76) != 0 && *(u8 *)(fadt + 91) == 4, "FADT: PM timer block");
        CHECK_EQ(rd16(fadt + 46), 9, "FADT: SCI on IRQ 9");
        CHECK(rd32(fadt + 56) != 0 && rd32(fadt + 64) != 0, "FADT: PM1a event and control");
        u32 facs = rd32(fadt + 36), dsdt = rd32(fadt + 40);
        CHECK(facs && !memcmp((void *)facs, "FACS", 4) && rd32(facs + 4) >= 64, "FACS");
        CHECK(dsdt && !memcmp((void *)dsdt, "DSDT", 4) &&
              sum8((void *)dsdt, rd32(dsdt + 4)) == 0, "DSDT checksum");
    }
    madt();
    u32 hpet = acpi_table("HPET");
    CHECK(hpet != 0, "HPET table found, checksum ok");
    if (hpet) {
        CHECK_EQ(rd32(hpet + 44), 0xfed00000, "HPET table: base address");
        CHECK_EQ(rd32(hpet + 36) >> 16, 0x8086, "HPET table: vendor");
    }
}

static void mp(void)
{
    u32 f = mp_floating();
    CHECK(f != 0, "MP floating pointer found, checksum ok");
    if (!f)
        return;
    CHECK(*(u8 *)(f + 9) == 1 || *(u8 *)(f + 9) == 4, "MP specification 1.1 or 1.4");
    u32 c = rd32(f + 4);
    CHECK(c != 0 && *(u8 *)(f + 11) == 0, "MP: a configuration table, not a default one");
    if (!c)
        return;
    u32 len = rd16(c + 4);
    CHECK(!memcmp((void *)c, "PCMP", 4) && sum8((void *)c, len) == 0, "MP table checksum");
    CHECK_EQ(rd32(c + 36), 0xfee00000, "MP: local APIC address");
    int cpus = 0, bsp = 0, isa = -1, ioapic = -1, extint = 0, nmi = 0;
    int to_pin[16];
    for (int i = 0; i < 16; i++)
        to_pin[i] = -1;
    u32 p = c + 44;
    for (u32 n = rd16(c + 34); n && p < c + len; n--) {
        u8 type = *(u8 *)p;
        if (type == 0) {
            cpus++;
            if ((*(u8 *)(p + 3) & 3) == 3)
                bsp = *(u8 *)(p + 1) == (apic_read(APIC_ID) >> 24);
            p += 20;
            continue;
        }
        if (type == 1 && !memcmp((void *)(p + 2), "ISA", 3))
            isa = *(u8 *)(p + 1);
        if (type == 2 && rd32(p + 4) == 0xfec00000)
            ioapic = *(u8 *)(p + 1);
        if (type == 3 && *(u8 *)(p + 1) == 0 && *(u8 *)(p + 4) == isa && *(u8 *)(p + 5) < 16 &&
            *(u8 *)(p + 6) == ioapic)
            to_pin[*(u8 *)(p + 5)] = *(u8 *)(p + 7);
        if (type == 4 && *(u8 *)(p + 1) == 3 && *(u8 *)(p + 7) == 0)
            extint = 1;
        if (type == 4 && *(u8 *)(p + 1) == 1 && *(u8 *)(p + 7) == 1)
            nmi = 1;
        p += 8;
    }
    CHECK(cpus >= 1 && bsp, "MP: the boot processor with this CPU's APIC ID");
    CHECK(isa >= 0, "MP: an ISA bus");
    CHECK(ioapic >= 0, "MP: the IOAPIC at 0xfec00000");
    CHECK_EQ(to_pin[0], 2, "MP: ISA IRQ0 on IOAPIC pin 2");
    CHECK_EQ(to_pin[4], 4, "MP: COM1's IRQ 4 on pin 4");
    CHECK_EQ(to_pin[14], 14, "MP: the disk's IRQ 14 on pin 14");
    CHECK(extint && nmi, "MP: ExtINT on LINT0, NMI on LINT1");
}

void main(void)
{
    bios_data_area();
    acpi();
    mp();
}
