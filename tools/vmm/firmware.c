/*
 * firmware.c - what a PC BIOS leaves in memory for the kernel to find, written before
 * the kernel is loaded:
 *
 *   0x400      BIOS data area: COM1 at 0x3f8, equipment word, base memory 639 KiB,
 *              the EBDA segment (0x9fc0), video mode 3 with the CRTC at 0x3d4, disks
 *   0x9fc00    extended BIOS data area (1 KiB, e820 reserved)
 *   0xf0000    (e820 reserved) ACPI 2.0 tables: RSDP (on a 16-byte boundary, where
 *              kernels search), RSDT and XSDT -> FADT (revision 3; PM blocks at 0x600,
 *              SCI IRQ 9, reset register 0xcf9 = 6, FACS, DSDT with _S5), MADT (local
 *              APICs 0..N-1 for --smp N, UID = APIC ID = vCPU index, all enabled;
 *              IOAPIC 1 at 0xfec00000 with GSIs 0-23, IRQ0 -> GSI 2 and IRQ9
 *              level active high as QEMU has them, LINT1 NMI), HPET (0xfed00000); then the
 *              MP 1.4 floating pointer and configuration table (N processors, APIC IDs
 *              0..N-1, the BSP flag on 0; bus ISA,
 *              IOAPIC 1, interrupt entries for ISA IRQs 0-15 but the cascade, ExtINT on
 *              LINT0 and NMI on LINT1).
 *
 *   0x0        the real-mode interrupt vector table as a BIOS leaves it: every vector at
 *              an IRET in the BIOS segment (F000:FF53, where PC BIOSes keep theirs),
 *              IRQ0-7 (vectors 0x08-0x0F) and IRQ8-15 (0x70-0x77) at stubs that send
 *              the 8259s their EOI, IRQ0's also counting the BDA's ticks (0x46c); the
 *              stubs at 0xfff00 (the PIT and PICs start as the BIOS leaves them too:
 *              pit.c, pic.c).  Real-mode guests that enable interrupts without
 *              installing handlers (kvm-unit-tests' realmode) find what QEMU's SeaBIOS
 *              leaves them.
 *
 * Every table carries its checksum.  Identifiers: OEM "XBTRUN", table "XBTPC".
 */
#include <string.h>

#include "vmm.h"

#define EBDA_SEG 0x9fc0u
#define TABLES 0xf0000u
#define RSDP_AT (TABLES + 0x000)
#define RSDT_AT (TABLES + 0x040)
#define XSDT_AT (TABLES + 0x080)
#define FADT_AT (TABLES + 0x100)
#define FACS_AT (TABLES + 0x200) /* 64-byte aligned */
#define DSDT_AT (TABLES + 0x240)
#define MADT_AT (TABLES + 0x300)
#define HPET_AT (TABLES + 0x400)
#define MPFP_AT (TABLES + 0x500)
#define MPC_AT (TABLES + 0x510)
#define IOAPIC_ID 1

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* The byte that makes the n bytes at p sum to zero. */
static uint8_t fix_sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return (uint8_t)(0x100 - s);
}

static void bios_data_area(struct vmm *m, uint8_t *ram)
{
    uint8_t *bda = ram + 0x400;
    memset(bda, 0, 0x100);
    put16(bda + 0x00, 0x3f8);                 /* COM1 base */
    put16(bda + 0x0e, EBDA_SEG);              /* EBDA segment */
    put16(bda + 0x10, 0x0222);                /* equipment: 1 serial port, 80x25 colour, x87 */
    put16(bda + 0x13, 639);                   /* base memory in KiB */
    bda[0x49] = 3;                            /* video mode 3 */
    put16(bda + 0x4a, 80);                    /* columns */
    put16(bda + 0x63, 0x3d4);                 /* CRTC base port */
    bda[0x84] = 24;                           /* rows - 1 */
    unsigned disks = 0;
    for (int i = 0; i < ATA_DRIVES; i++)
        disks += m->ata.drive[i].fd >= 0;
    bda[0x75] = (uint8_t)disks;               /* hard disks */
    uint8_t *ebda = ram + EBDA_SEG * 16u;
    memset(ebda, 0, 0x400);
    ebda[0] = 1;                              /* EBDA size in KiB */
}

static void acpi_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    put32(t + 4, len);
    t[8] = rev;
    memcpy(t + 10, "XBTRUN", 6);
    memcpy(t + 16, "XBTPC   ", 8);
    put32(t + 24, 1);                         /* OEM revision */
    memcpy(t + 28, "XBT ", 4);                /* creator */
    put32(t + 32, 1);
}

static void acpi_sum(uint8_t *t)
{
    uint32_t len;
    memcpy(&len, t + 4, 4);
    t[9] = 0;
    t[9] = fix_sum(t, len);
}

/* A generic address structure: I/O port (space 1) or memory (space 0). */
static void gas(uint8_t *p, uint8_t space, uint8_t bits, uint8_t access, uint64_t addr)
{
    p[0] = space;
    p[1] = bits;
    p[2] = 0;
    p[3] = access;
    put64(p + 4, addr);
}

static void fadt(uint8_t *ram)
{
    uint8_t *t = ram + FADT_AT;
    memset(t, 0, 244);
    acpi_header(t, "FACP", 244, 3);
    put32(t + 36, FACS_AT);
    put32(t + 40, DSDT_AT);
    put16(t + 46, PM_SCI_IRQ);                /* SCI_INT; SMI_CMD 0: always ACPI mode */
    put32(t + 56, PM_BASE);                   /* PM1a_EVT_BLK */
    put32(t + 64, PM_BASE + 4);               /* PM1a_CNT_BLK */
    put32(t + 76, PM_BASE + 8);               /* PM_TMR_BLK */
    t[88] = 4;                                /* PM1_EVT_LEN */
    t[89] = 2;                                /* PM1_CNT_LEN */
    t[91] = 4;                                /* PM_TMR_LEN */
    put16(t + 96, 0x0fff);                    /* P_LVL2_LAT: no C2 */
    put16(t + 98, 0x0fff);                    /* P_LVL3_LAT: no C3 */
    t[108] = 0x32;                            /* CENTURY: CMOS index */
    put16(t + 109, 0x000d);                   /* IAPC_BOOT_ARCH: legacy devices, no VGA,
                                                 no MSI; no 8042 */
    put32(t + 112, 0x435);                    /* WBINVD PROC_C1 PWR_BUTTON SLP_BUTTON
                                                 RESET_REG_SUP (no fixed buttons) */
    gas(t + 116, 1, 8, 1, 0xcf9);             /* RESET_REG */
    t[128] = 0x06;                            /* RESET_VALUE */
    put64(t + 132, FACS_AT);                  /* X_FIRMWARE_CTRL */
    put64(t + 140, DSDT_AT);                  /* X_DSDT */
    gas(t + 148, 1, 32, 0, PM_BASE);          /* X_PM1a_EVT_BLK */
    gas(t + 172, 1, 16, 0, PM_BASE + 4);      /* X_PM1a_CNT_BLK */
    gas(t + 208, 1, 32, 0, PM_BASE + 8);      /* X_PM_TMR_BLK */
    acpi_sum(t);

    uint8_t *f = ram + FACS_AT;
    memset(f, 0, 64);
    memcpy(f, "FACS", 4);
    put32(f + 4, 64);
    f[32] = 1;                                /* version */

    /* DSDT: Name (_S5, Package (4) { 0, 0, 0, 0 }): SLP_TYP 0 powers off. */
    static const uint8_t aml[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0, 0, 0, 0 };
    uint8_t *d = ram + DSDT_AT;
    acpi_header(d, "DSDT", 36 + sizeof aml, 2);
    memcpy(d + 36, aml, sizeof aml);
    acpi_sum(d);
}

static uint32_t madt(uint8_t *ram, unsigned ncpus)
{
    uint8_t *t = ram + MADT_AT;
    uint8_t *p = t + 44;
    put32(t + 36, LAPIC_DEFAULT_BASE);
    put32(t + 40, 1);                         /* PCAT_COMPAT: 8259 pair present */
    /* Processor local APICs: UID k, APIC ID k, enabled (the table is 82 + 8 N bytes,
       at most 146: within the 256 before HPET_AT). */
    for (unsigned k = 0; k < ncpus; k++) {
        p[0] = 0, p[1] = 8, p[2] = (uint8_t)k, p[3] = (uint8_t)k, put32(p + 4, 1);
        p += 8;
    }
    /* I/O APIC: ID 1, GSI base 0. */
    p[0] = 1, p[1] = 12, p[2] = IOAPIC_ID, p[3] = 0, put32(p + 4, IOAPIC_BASE),
        put32(p + 8, 0), p += 12;
    /* Interrupt source overrides: ISA IRQ0 -> GSI 2 (conforming), IRQ9 (SCI) level,
       active high. */
    static const uint8_t ovr[][3] = { { 0, 2, 0x0 }, { 9, 9, 0xd } };
    for (int i = 0; i < 2; i++) {
        p[0] = 2, p[1] = 10, p[2] = 0, p[3] = ovr[i][0];
        put32(p + 4, ovr[i][1]);
        put16(p + 8, ovr[i][2]);
        p += 10;
    }
    /* Local APIC NMI: all processors, LINT1. */
    p[0] = 4, p[1] = 6, p[2] = 0xff, put16(p + 3, 0), p[5] = 1, p += 6;
    uint32_t len = (uint32_t)(p - t);
    acpi_header(t, "APIC", len, 1);
    acpi_sum(t);
    return len;
}

static void hpet_table(uint8_t *ram)
{
    uint8_t *t = ram + HPET_AT;
    memset(t, 0, 56);
    acpi_header(t, "HPET", 56, 1);
    put32(t + 36, 0x8086a201u);               /* the capability register's low half */
    gas(t + 40, 0, 64, 0, HPET_BASE);
    t[52] = 0;                                /* HPET number */
    put16(t + 53, 2000);                      /* minimum periodic tick: 20 us */
    acpi_sum(t);
}

static void acpi_tables(uint8_t *ram, unsigned ncpus)
{
    fadt(ram);
    madt(ram, ncpus);
    hpet_table(ram);
    const uint32_t tables[] = { FADT_AT, MADT_AT, HPET_AT };
    const unsigned n = sizeof tables / sizeof tables[0];
    uint8_t *r = ram + RSDT_AT, *x = ram + XSDT_AT;
    acpi_header(r, "RSDT", 36 + 4 * n, 1);
    acpi_header(x, "XSDT", 36 + 8 * n, 1);
    for (unsigned i = 0; i < n; i++) {
        put32(r + 36 + 4 * i, tables[i]);
        put64(x + 36 + 8 * i, tables[i]);
    }
    acpi_sum(r);
    acpi_sum(x);

    uint8_t *p = ram + RSDP_AT;
    memset(p, 0, 36);
    memcpy(p, "RSD PTR ", 8);
    memcpy(p + 9, "XBTRUN", 6);
    p[15] = 2;                                /* ACPI 2.0+: the XSDT is there */
    put32(p + 16, RSDT_AT);
    put32(p + 20, 36);
    put64(p + 24, XSDT_AT);
    p[8] = fix_sum(p, 20);
    p[32] = fix_sum(p, 36);
}

/* MP configuration table entries, built in order at *p; returns the entry count. */
static unsigned mp_entries(uint8_t **pp, unsigned ncpus)
{
    uint8_t *p = *pp;
    unsigned n = 0;
    /* Processors: APIC k, version 0x14, enabled (the boot processor: 0), family 6 model
       15. */
    for (unsigned k = 0; k < ncpus; k++) {
        memset(p, 0, 20);
        p[0] = 0, p[1] = (uint8_t)k, p[2] = 0x14, p[3] = k ? 0x01 : 0x03;
        put32(p + 4, 0x6f1);
        put32(p + 8, 0x201);                  /* features: FPU, APIC */
        p += 20, n++;
    }
    memset(p, 0, 8);
    p[0] = 1, p[1] = 0;
    memcpy(p + 2, "ISA   ", 6);
    p += 8, n++;
    p[0] = 2, p[1] = IOAPIC_ID, p[2] = 0x20, p[3] = 1;
    put32(p + 4, IOAPIC_BASE);
    p += 8, n++;
    for (int irq = 0; irq < 16; irq++) {
        if (irq == 2)
            continue; /* the cascade: no device */
        p[0] = 3, p[1] = 0;                   /* I/O interrupt, INT */
        put16(p + 2, irq == PM_SCI_IRQ ? 0x0d : 0); /* SCI: level, active high */
        p[4] = 0, p[5] = (uint8_t)irq, p[6] = IOAPIC_ID, p[7] = (uint8_t)(irq ? irq : 2);
        p += 8, n++;
    }
    /* Local interrupts: the 8259 (ExtINT) on LINT0, NMI on LINT1, all local APICs. */
    for (int lint = 0; lint < 2; lint++) {
        p[0] = 4, p[1] = lint ? 1 : 3;
        put16(p + 2, 0);
        p[4] = 0, p[5] = 0, p[6] = 0xff, p[7] = (uint8_t)lint;
        p += 8, n++;
    }
    *pp = p;
    return n;
}

static void mp_table(uint8_t *ram, unsigned ncpus)
{
    uint8_t *c = ram + MPC_AT;
    uint8_t *p = c + 44;
    unsigned n = mp_entries(&p, ncpus);
    uint16_t len = (uint16_t)(p - c);
    memset(c, 0, 44);
    memcpy(c, "PCMP", 4);
    put16(c + 4, len);
    c[6] = 4;                                 /* specification 1.4 */
    memcpy(c + 8, "XBTRUN  ", 8);
    memcpy(c + 16, "XBT-RUN PC  ", 12);
    put16(c + 34, (uint16_t)n);
    put32(c + 36, LAPIC_DEFAULT_BASE);
    c[7] = fix_sum(c, len);

    uint8_t *f = ram + MPFP_AT;
    memset(f, 0, 16);
    memcpy(f, "_MP_", 4);
    put32(f + 4, MPC_AT);
    f[8] = 1;                                 /* length in 16-byte units */
    f[9] = 4;
    f[11] = 0;                                /* a configuration table is present */
    f[12] = 0;                                /* no IMCR: virtual wire mode */
    f[10] = fix_sum(f, 16);
}

static void bios_ivt(uint8_t *ram)
{
    static const uint8_t irq0[] = { 0x50, 0x1e, 0x31, 0xc0, 0x8e, 0xd8, /* push ax/ds; ds=0 */
                                    0x66, 0xff, 0x06, 0x6c, 0x04,       /* inc dword [46c] */
                                    0xb0, 0x20, 0xe6, 0x20,             /* EOI to the master */
                                    0x1f, 0x58, 0xcf };                 /* pop ds/ax; iret */
    static const uint8_t master[] = { 0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, 0xcf };
    static const uint8_t slave[] = { 0x50, 0xb0, 0x20, 0xe6, 0xa0, 0xe6, 0x20, 0x58, 0xcf };
    uint8_t *stubs = ram + 0xfff00;
    memcpy(stubs, irq0, sizeof irq0);
    memcpy(stubs + 0x20, master, sizeof master);
    memcpy(stubs + 0x30, slave, sizeof slave);
    stubs[0x53] = 0xcf;
    for (unsigned v = 0; v < 256; v++) {
        uint16_t off = v == 0x08                ? 0xff00
                       : v > 0x08 && v <= 0x0f  ? 0xff20
                       : v >= 0x70 && v <= 0x77 ? 0xff30
                                                : 0xff53;
        put16(ram + 4 * v, off);
        put16(ram + 4 * v + 2, 0xf000);
    }
}

uint32_t firmware_waking_vector(struct vmm *m)
{
    uint32_t v;
    memcpy(&v, xbt_vm_ram(m->vm) + FACS_AT + 12, 4);
    return v;
}

void firmware_write(struct vmm *m)
{
    uint8_t *ram = xbt_vm_ram(m->vm);
    bios_data_area(m, ram);
    memset(ram + TABLES, 0, 0x10000);
    bios_ivt(ram);
    acpi_tables(ram, m->ncpus);
    mp_table(ram, m->ncpus);
    xbt_vm_invalidate(m->vm, 0, 0x100000);
}
