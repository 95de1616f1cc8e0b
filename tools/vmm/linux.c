/*
 * linux.c - the Linux 32-bit boot protocol (Documentation/arch/x86/boot.rst): the
 * protected-mode part of a bzImage at 1 MiB, the zero page (boot_params) with the setup
 * header copied from the image, an e820 map, the command line and an initrd, and the
 * entry state: ESI = boot_params, CS = 0x10 and DS/ES/SS = 0x18 flat, paging and
 * interrupts off.  No real mode and no BIOS.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm.h"

#define BOOT_PARAMS 0x10000u  /* the zero page */
#define CMDLINE     0x20000u
#define GDT_ADDR    0x8f00u
#define KERNEL_ADDR 0x100000u

static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = b ? (size_t)n : 0;
    return b;
}

bool is_bzimage(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    uint8_t h[0x210];
    bool ok = fread(h, 1, sizeof h, f) == sizeof h && !memcmp(h + 0x202, "HdrS", 4);
    fclose(f);
    return ok;
}

int load_linux(xbt_vm *vm, xbt_vcpu *cpu, const char *path, const char *cmdline,
               const char *initrd, char *err, size_t errlen)
{
    size_t len;
    uint8_t *img = slurp(path, &len);
    if (!img)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    int rc = -1;
    uint8_t *ram = xbt_vm_ram(vm);
    uint64_t ramsz = xbt_vm_ram_size(vm);
    uint16_t version = (uint16_t)(img[0x206] | img[0x207] << 8);
    unsigned setup_sects = img[0x1f1] ? img[0x1f1] : 4;
    size_t pm_off = (setup_sects + 1) * 512u;
    uint32_t init_size;
    memcpy(&init_size, img + 0x260, 4);
    if (version < 0x0206 || pm_off >= len) {
        fail(err, errlen, "%s: boot protocol %x is too old (2.06 or later needed)", path, version);
        goto out;
    }
    if (!(img[0x211] & 1)) {
        fail(err, errlen, "%s: not a bzImage (LOADED_HIGH clear)", path);
        goto out;
    }
    if (KERNEL_ADDR + (uint64_t)(init_size > len - pm_off ? init_size : len - pm_off) > ramsz) {
        fail(err, errlen, "%s needs %u MiB from 1 MiB on: give more --mem", path,
             (unsigned)(init_size >> 20) + 1);
        goto out;
    }
    memcpy(ram + KERNEL_ADDR, img + pm_off, len - pm_off);

    /* The zero page: the setup header as the image has it, then what a loader fills. */
    uint8_t *bp = ram + BOOT_PARAMS;
    memset(bp, 0, 4096);
    size_t hdr_end = 0x202 + img[0x201];
    memcpy(bp + 0x1f1, img + 0x1f1, hdr_end - 0x1f1);
    bp[0x210] = 0xff;                       /* type_of_loader: undefined */
    bp[0x211] |= 0x80;                      /* CAN_USE_HEAP */
    uint16_t heap_end = 0xfe00;
    memcpy(bp + 0x224, &heap_end, 2);
    size_t cl = strlen(cmdline) + 1;
    memcpy(ram + CMDLINE, cmdline, cl);
    uint32_t clp = CMDLINE;
    memcpy(bp + 0x228, &clp, 4);            /* cmd_line_ptr */
    if (initrd) {
        size_t il;
        uint8_t *rd = slurp(initrd, &il);
        if (!rd) {
            fail(err, errlen, "%s: %s", initrd, strerror(errno));
            goto out;
        }
        uint32_t max;
        memcpy(&max, img + 0x22c, 4);       /* initrd_addr_max */
        uint64_t top = ramsz < (uint64_t)max + 1 ? ramsz : (uint64_t)max + 1;
        uint64_t at = (top - il) & ~0xFFFull;
        if (at < KERNEL_ADDR + init_size) {
            free(rd);
            fail(err, errlen, "%s does not fit above the kernel: give more --mem", initrd);
            goto out;
        }
        memcpy(ram + at, rd, il);
        free(rd);
        uint32_t a32 = (uint32_t)at, l32 = (uint32_t)il;
        memcpy(bp + 0x218, &a32, 4);        /* ramdisk_image */
        memcpy(bp + 0x21c, &l32, 4);        /* ramdisk_size */
    }
    /* e820: low memory, the BIOS hole, RAM from 1 MiB. */
    struct { uint64_t addr, size; uint32_t type; } __attribute__((packed)) e820[] = {
        { 0, 0x9fc00, 1 }, { 0x9fc00, 0x400, 2 }, { 0xf0000, 0x10000, 2 },
        { 0x100000, ramsz - 0x100000, 1 },
    };
    memcpy(bp + 0x2d0, e820, sizeof e820);
    bp[0x1e8] = sizeof e820 / sizeof e820[0];
    uint16_t ext_kb = (uint16_t)((ramsz - 0x100000) >> 10 > 0xffff ? 0xffff : (ramsz - 0x100000) >> 10);
    memcpy(bp + 0x2, &ext_kb, 2);           /* screen_info.ext_mem_k (legacy) */

    /* Flat __BOOT_CS (0x10) and __BOOT_DS (0x18). */
    static const uint64_t gdt[4] = { 0, 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull };
    memcpy(ram + GDT_ADDR, gdt, sizeof gdt);
    if (xbt_vm_invalidate(vm, 0, ramsz) != XBT_OK) {
        fail(err, errlen, "cannot invalidate guest RAM");
        goto out;
    }
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    s.gdt.base = GDT_ADDR;
    s.gdt.limit = sizeof gdt - 1;
    s.idt.base = 0;
    s.idt.limit = 0;
    xbt_segment *segs[] = { &s.ds, &s.es, &s.ss, &s.fs, &s.gs };
    s.cs.selector = 0x10;
    for (size_t i = 0; i < sizeof segs / sizeof segs[0]; i++)
        segs[i]->selector = 0x18;
    if (xbt_vcpu_set_sregs(cpu, &s) != XBT_OK) {
        fail(err, errlen, "cannot set the entry segment state");
        goto out;
    }
    xbt_regs r;
    memset(&r, 0, sizeof r);
    r.esi = BOOT_PARAMS;
    memcpy(&r.eip, img + 0x214, 4);         /* code32_start */
    r.eflags = 0x2;
    if (xbt_vcpu_set_regs(cpu, &r) != XBT_OK) {
        fail(err, errlen, "cannot set the entry registers");
        goto out;
    }
    rc = 0;
out:
    free(img);
    return rc;
}
