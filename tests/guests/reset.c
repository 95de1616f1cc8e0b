/*
 * reset.c - the ways a PC kernel ends: the command line names one (how=port92, cf9,
 * kbd or acpi-off), the guest prints its DONE line and then resets the machine through
 * system control port A (0x92 bit 0), the reset control register (0xcf9 = 6), the
 * 8042's pulse-reset command (0xfe to 0x64), or powers it off the ACPI way: SLP_TYP
 * from the DSDT's _S5 package with SLP_EN into the FADT's PM1a control block.
 * run-guest.sh (GUEST_END) expects QEMU -no-reboot to exit 0, xbt-run 4 for a reset
 * and 0 for a power-off; if the machine carries on, the guest fails.
 */
#include "lib/pc.h"

static const char *cmdline(void)
{
    u32 *mbi = (u32 *)multiboot_info;
    return (mbi[0] & 4) ? (const char *)mbi[4] : "";
}

static int has(const char *s, const char *w)
{
    for (; *s; s++) {
        const char *a = s, *b = w;
        while (*b && *a == *b)
            a++, b++;
        if (!*b)
            return 1;
    }
    return 0;
}

/* The first element of \_S5's package in the DSDT's AML: SLP_TYP for PM1a, or -1. */
static int s5_slp_typ(void)
{
    u32 fadt = acpi_table("FACP");
    u32 dsdt = fadt ? *(u32 *)(fadt + 40) : 0;
    if (!dsdt)
        return -1;
    const u8 *aml = (const u8 *)dsdt;
    u32 len = *(u32 *)(dsdt + 4);
    for (u32 i = 36; i + 8 < len; i++) {
        if (memcmp(aml + i, "_S5_", 4) || aml[i + 4] != 0x12)
            continue;
        const u8 *p = aml + i + 5;
        p += 1 + (*p >> 6); /* PkgLength */
        p++;                /* NumElements */
        if (*p == 0x00 || *p == 0x01)
            return *p;      /* ZeroOp, OneOp */
        if (*p == 0x0a)
            return p[1];    /* BytePrefix */
        return -1;
    }
    return -1;
}

void main(void)
{
    const char *c = cmdline();
    int typ = s5_slp_typ();
    u32 fadt = acpi_table("FACP");
    CHECK(typ >= 0, "the DSDT has an _S5 package");
    CHECK(fadt && *(u32 *)(fadt + 64), "the FADT has a PM1a control block");
    printf("DONE pass=2 fail=0\n");
    if (has(c, "how=port92"))
        outb(0x92, inb(0x92) | 1);
    else if (has(c, "how=cf9"))
        outb(0xcf9, 0x06);
    else if (has(c, "how=kbd"))
        outb(0x64, 0xfe);
    else if (has(c, "how=acpi-off"))
        outw((u16)*(u32 *)(fadt + 64), (u16)(typ << 10 | 0x2000));
    /* QEMU carries out a reset or power-off request from its main loop, some time after
     * the write: wait 3 s of ACPI PM timer (a spin count was too short on a loaded host). */
    for (int i = 0; i < 10; i++)
        pm_delay_us(300000);
    printf("command line '%s'\n", c);
    CHECK(0, has(c, "acpi") ? "the machine powered off" : "the machine reset");
}
