/*
 * loader.c - multiboot v1 loading: find the header in the first 8 KiB, load an ELF32
 * image by its program headers (or a flat image by the a.out kludge addresses), place
 * modules page-aligned after the kernel, write the multiboot information with a
 * memory map at 0x9000, and set the vCPU to the entry state (EAX 0x2BADB002, EBX the
 * information, flat 32-bit segments, paging off, interrupts off).
 */
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm.h"

#define MB_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_AOUT_KLUDGE (1u << 16)
#define MBI_ADDR 0x9000u     /* information, command lines, map: one page below 640 KiB */
#define MBI_END 0x9f000u
#define GDT_ADDR 0x8f00u    /* the boot GDT, just below the information */

static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

static uint8_t *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    if (!buf)
        fail(err, errlen, "%s: out of memory", path);
    *len = n;
    return buf;
}

/* Guest RAM range check: [a, a + n) inside RAM and above the information page. */
static bool fits(xbt_vm *vm, uint64_t a, uint64_t n)
{
    return a >= 0xa0000 && a + n >= a &&
           a + n <= xbt_vm_ram_size(vm);
}

static int load_elf(xbt_vm *vm, const uint8_t *img, size_t len, uint32_t *entry,
                    uint32_t *end, char *err, size_t errlen, const char *path)
{
    if (len < sizeof(Elf32_Ehdr))
        return fail(err, errlen, "%s: too short for an ELF header", path);
    const Elf32_Ehdr *eh = (const Elf32_Ehdr *)img;
    if (eh->e_ident[EI_CLASS] != ELFCLASS32 || eh->e_ident[EI_DATA] != ELFDATA2LSB)
        return fail(err, errlen, "%s: not a 32-bit little-endian ELF (multiboot v1 loads "
                    "ELF32 only, or flat images with the a.out kludge)", path);
    if (eh->e_machine != EM_386 || eh->e_type != ET_EXEC)
        return fail(err, errlen, "%s: not an i386 executable (e_machine %u, e_type %u)", path,
                    eh->e_machine, eh->e_type);
    if (eh->e_phentsize != sizeof(Elf32_Phdr) || eh->e_phnum == 0 ||
        eh->e_phoff > len || (size_t)eh->e_phnum * sizeof(Elf32_Phdr) > len - eh->e_phoff)
        return fail(err, errlen, "%s: bad program header table", path);
    const Elf32_Phdr *ph = (const Elf32_Phdr *)(img + eh->e_phoff);
    uint8_t *ram = xbt_vm_ram(vm);
    int loaded = 0;
    *end = 0;
    *entry = eh->e_entry;
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf32_Phdr *p = &ph[i];
        if (p->p_type != PT_LOAD || p->p_memsz == 0)
            continue;
        if (p->p_filesz > p->p_memsz || p->p_offset > len || p->p_filesz > len - p->p_offset)
            return fail(err, errlen, "%s: segment %d lies outside the file", path, i);
        if (!fits(vm, p->p_paddr, p->p_memsz))
            return fail(err, errlen, "%s: segment %d at %#x+%#x is outside guest RAM "
                        "[0xa0000, %#llx) (try --mem)", path, i, p->p_paddr, p->p_memsz,
                        (unsigned long long)xbt_vm_ram_size(vm));
        memcpy(ram + p->p_paddr, img + p->p_offset, p->p_filesz);
        memset(ram + p->p_paddr + p->p_filesz, 0, p->p_memsz - p->p_filesz);
        if (p->p_paddr + p->p_memsz > *end)
            *end = p->p_paddr + p->p_memsz;
        /* An entry given as a virtual address of a segment loaded elsewhere. */
        if (eh->e_entry >= p->p_vaddr && eh->e_entry - p->p_vaddr < p->p_memsz &&
            p->p_vaddr != p->p_paddr)
            *entry = eh->e_entry - p->p_vaddr + p->p_paddr;
        loaded++;
    }
    if (!loaded)
        return fail(err, errlen, "%s: no loadable segment", path);
    return 0;
}

int load_multiboot(xbt_vm *vm, xbt_vcpu *cpu, const char *path, const char *cmdline,
                   const struct boot_module *mods, int nmods, char *err, size_t errlen)
{
    size_t len;
    uint8_t *img = slurp(path, &len, err, errlen);
    if (!img)
        return -1;
    int rc = -1;
    const uint32_t *hdr = NULL;
    size_t hoff = 0;
    for (size_t off = 0; off + 12 <= len && off < 8192; off += 4) {
        const uint32_t *h = (const uint32_t *)(img + off);
        if (h[0] == MB_MAGIC && h[0] + h[1] + h[2] == 0) {
            hdr = h;
            hoff = off;
            break;
        }
    }
    if (!hdr) {
        fail(err, errlen, "%s: no multiboot v1 header in the first 8 KiB", path);
        goto out;
    }
    uint32_t flags = hdr[1];
    if (flags & 0x0000fff8u) { /* required features beyond page align, mem, video */
        fail(err, errlen, "%s: multiboot header asks for unsupported features (flags %#x)",
             path, flags);
        goto out;
    }
    uint32_t entry = 0, end = 0;
    if (flags & MB_AOUT_KLUDGE) {
        if (hoff + 32 > len) {
            fail(err, errlen, "%s: truncated multiboot header", path);
            goto out;
        }
        uint32_t header_addr = hdr[3], load_addr = hdr[4], load_end = hdr[5], bss_end = hdr[6];
        entry = hdr[7];
        if (load_addr > header_addr || header_addr - load_addr > hoff) {
            fail(err, errlen, "%s: inconsistent a.out kludge addresses", path);
            goto out;
        }
        size_t foff = hoff - (header_addr - load_addr);
        size_t n = load_end ? load_end - load_addr : len - foff;
        if (load_end && load_end < load_addr) {
            fail(err, errlen, "%s: load_end_addr below load_addr", path);
            goto out;
        }
        if (n > len - foff) {
            fail(err, errlen, "%s: the image is shorter than load_end_addr says", path);
            goto out;
        }
        uint32_t top = bss_end > load_addr + n ? bss_end : load_addr + (uint32_t)n;
        if (!fits(vm, load_addr, top - load_addr)) {
            fail(err, errlen, "%s: image at %#x-%#x is outside guest RAM", path, load_addr, top);
            goto out;
        }
        memcpy(xbt_vm_ram(vm) + load_addr, img + foff, n);
        memset(xbt_vm_ram(vm) + load_addr + n, 0, top - load_addr - n);
        end = top;
    } else if (load_elf(vm, img, len, &entry, &end, err, errlen, path) != 0) {
        goto out;
    }

    /* The information block, command lines and memory map, then the modules. */
    uint8_t *ram = xbt_vm_ram(vm);
    uint64_t ramsz = xbt_vm_ram_size(vm);
    uint32_t mbi = MBI_ADDR, p = MBI_ADDR + 128;
    memset(ram + MBI_ADDR, 0, MBI_END - MBI_ADDR);
    uint32_t info[30] = { 0 };
    info[0] = 0x1 | 0x4 | 0x40 | 0x200; /* mem, cmdline, mmap, loader name */
    info[1] = 639;
    info[2] = (uint32_t)((ramsz - 0x100000) >> 10);
    /* command line: the kernel's path, then the arguments, as GRUB passes them */
    char line[4096];
    snprintf(line, sizeof line, "%s%s%s", path, cmdline && *cmdline ? " " : "",
             cmdline ? cmdline : "");
    size_t l = strlen(line) + 1;
    memcpy(ram + p, line, l);
    info[4] = p;
    p += (uint32_t)((l + 3) & ~3u);
    static const char loader[] = "xbt-run";
    memcpy(ram + p, loader, sizeof loader);
    info[16] = p;
    p += (sizeof loader + 3) & ~3u;
    struct { uint32_t size; uint64_t base, len; uint32_t type; } __attribute__((packed)) map[] = {
        { 20, 0, 0x9fc00, 1 },
        { 20, 0x9fc00, 0x400, 2 },
        { 20, 0xf0000, 0x10000, 2 },
        { 20, 0x100000, ramsz - 0x100000, 1 },
    };
    memcpy(ram + p, map, sizeof map);
    info[11] = sizeof map;
    info[12] = p;
    p += sizeof map;
    if (nmods > 0) {
        info[0] |= 0x8;
        info[5] = (uint32_t)nmods;
        info[6] = p;
        uint32_t *mt = (uint32_t *)(ram + p);
        p += 16u * (uint32_t)nmods;
        uint64_t at = ((uint64_t)end + 0xfff) & ~0xfffull;
        for (int i = 0; i < nmods; i++) {
            size_t ml;
            uint8_t *mb = slurp(mods[i].path, &ml, err, errlen);
            if (!mb)
                goto out;
            if (at + ml > ramsz) {
                free(mb);
                fail(err, errlen, "%s: module does not fit in guest RAM (try --mem)",
                     mods[i].path);
                goto out;
            }
            memcpy(ram + at, mb, ml);
            free(mb);
            const char *s = mods[i].string ? mods[i].string : mods[i].path;
            size_t sl = strlen(s) + 1;
            if (p + sl > MBI_END) {
                fail(err, errlen, "too many module command lines");
                goto out;
            }
            memcpy(ram + p, s, sl);
            mt[4 * i + 0] = (uint32_t)at;
            mt[4 * i + 1] = (uint32_t)(at + ml);
            mt[4 * i + 2] = p;
            mt[4 * i + 3] = 0;
            p += (uint32_t)((sl + 3) & ~3u);
            at = (at + ml + 0xfff) & ~0xfffull;
        }
    }
    memcpy(ram + mbi, info, sizeof info);
    if (xbt_vm_invalidate(vm, 0, ramsz) != XBT_OK) {
        fail(err, errlen, "cannot invalidate guest RAM");
        goto out;
    }

    /* Multiboot leaves GDTR undefined; like QEMU's loader, give a valid flat GDT so a
       guest that never loads its own still takes interrupts (CS 0x08, data 0x10/0x18). */
    static const uint64_t gdt[4] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull,
                                     0x00cf92000000ffffull };
    memcpy(ram + GDT_ADDR, gdt, sizeof gdt);
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    s.gdt.base = GDT_ADDR;
    s.gdt.limit = sizeof gdt - 1;
    s.idt.base = 0;
    s.idt.limit = 0x3ff;
    if (xbt_vcpu_set_sregs(cpu, &s) != XBT_OK) {
        fail(err, errlen, "cannot set the entry segment state");
        goto out;
    }
    xbt_regs r;
    xbt_vcpu_get_regs(cpu, &r);
    memset(&r, 0, sizeof r);
    r.eax = MB_BOOT_MAGIC;
    r.ebx = mbi;
    r.eip = entry;
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
