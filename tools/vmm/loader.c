/*
 * loader.c - multiboot v1 loading: find the header in the first 8 KiB, load an ELF32
 * image by its program headers (or a flat image by the a.out kludge addresses), place
 * modules page-aligned after the kernel (from 1 MiB for a kernel below it), write the
 * multiboot information with a memory map, and give the entry state (EAX 0x2BADB002, EBX
 * the information, paging and interrupts off, a flat boot GDT).
 *
 * A kernel may load anywhere in RAM from 0x1000 up (kvm-unit-tests' realmode.flat loads
 * at 32 KiB).  The loader's own area (the boot GDT, then the information, command lines
 * and module table) lies in low memory where the kernel is not: [0x8f00, 0x9f000) as
 * always when that is free, else the largest free gap of at least 64 KiB between 0x1000
 * and 0x9f000 (below the EBDA).
 *
 * All arithmetic on the file's sizes and addresses is 64-bit, and every range is
 * checked against the file and against RAM before anything is copied.
 */
#include <elf.h>
#include <string.h>

#include "boot.h"

#define MB_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_AOUT_KLUDGE (1u << 16)
#define MB_SEARCH 8192u      /* the header lies within the file's first 8 KiB */
#define LOAD_MIN 0x1000u     /* the first page: the IVT and the BIOS data area */
#define AREA_DEFAULT 0x8f00u /* the loader's area when free: GDT 0x8f00, information 0x9000 */
#define AREA_END 0x9f000u    /* areas end below the EBDA (firmware.c, 0x9fc00) */
#define AREA_MIN 0x10000u    /* an area elsewhere has at least 64 KiB */
#define AREA_INFO 0x100u     /* the information's offset in the area, after the GDT */
#define MODS_LOW_MIN 0x100000u /* modules of a kernel below 1 MiB start there */

/* The span [lo, hi) of guest RAM a kernel occupies. */
struct span {
    uint64_t lo, hi;
};

/* What the kernel occupies: each loaded segment, and their hull. */
struct kmap {
    struct span seg[64];
    unsigned n;
    struct span all;
};

/* The loader's area: GDT at gdt, the information at info, its strings up to end. */
struct area {
    uint32_t gdt, info, end;
};

/* [a, a + n) inside RAM and above its first page. */
static bool fits(const struct boot_ram *ram, uint64_t a, uint64_t n)
{
    return a >= LOAD_MIN && n <= ram->size && a <= ram->size - n;
}

/* Where the run of memory free of the kernel that starts at `at` ends (at most
   AREA_END); `at` itself when a segment holds it. */
static uint64_t free_until(const struct kmap *k, uint64_t at)
{
    uint64_t end = AREA_END;
    for (unsigned i = 0; i < k->n; i++) {
        if (k->seg[i].lo <= at && at < k->seg[i].hi)
            return at;
        if (k->seg[i].lo > at && k->seg[i].lo < end)
            end = k->seg[i].lo;
    }
    return end;
}

/* The loader's area (see the top): the usual one, or the largest free gap below
   AREA_END starting at LOAD_MIN or at the page after a segment. */
static int pick_area(const struct kmap *k, const char *name, struct area *a, char *err,
                     size_t errlen)
{
    uint64_t best = AREA_DEFAULT, best_end = free_until(k, AREA_DEFAULT);
    if (best_end != AREA_END) {
        best = LOAD_MIN;
        best_end = free_until(k, LOAD_MIN);
        for (unsigned i = 0; i < k->n; i++) {
            uint64_t c = (k->seg[i].hi + 0xfff) & ~0xfffull;
            uint64_t e = c < AREA_END ? free_until(k, c) : c;
            if (e - c > best_end - best)
                best = c, best_end = e;
        }
        if (best_end - best < AREA_MIN)
            return boot_fail(err, errlen, "%s: the kernel leaves no 64 KiB between %#x and "
                             "%#x for the multiboot information", name, LOAD_MIN, AREA_END);
    }
    a->gdt = (uint32_t)best;
    a->info = (uint32_t)best + AREA_INFO;
    a->end = (uint32_t)best_end;
    return 0;
}

/* The header: magic, flags and checksum, 4-byte aligned within the first 8 KiB. */
static int find_header(const struct boot_blob *k, size_t *hoff, char *err, size_t errlen)
{
    size_t lim = k->len < MB_SEARCH ? k->len : MB_SEARCH;
    for (size_t off = 0; off + 12 <= lim; off += 4) {
        const uint8_t *h = k->data + off;
        if (boot_rd32(h) == MB_MAGIC &&
            (uint32_t)(boot_rd32(h) + boot_rd32(h + 4) + boot_rd32(h + 8)) == 0) {
            *hoff = off;
            return 0;
        }
    }
    return boot_fail(err, errlen, "%s: no multiboot v1 header in the first 8 KiB", k->name);
}

/* The a.out kludge: the header gives the load addresses of a flat image. */
static int load_kludge(const struct boot_ram *ram, const struct boot_blob *k, size_t hoff,
                       uint32_t *entry, struct kmap *km, char *err, size_t errlen)
{
    size_t lim = k->len < MB_SEARCH ? k->len : MB_SEARCH;
    if (hoff + 32 > lim)
        return boot_fail(err, errlen, "%s: truncated multiboot header (the a.out kludge "
                         "fields end beyond the file or its first 8 KiB)", k->name);
    const uint8_t *h = k->data + hoff;
    uint64_t header_addr = boot_rd32(h + 12), load_addr = boot_rd32(h + 16);
    uint64_t load_end = boot_rd32(h + 20), bss_end = boot_rd32(h + 24);
    *entry = boot_rd32(h + 28);
    if (load_addr > header_addr || header_addr - load_addr > hoff)
        return boot_fail(err, errlen, "%s: inconsistent a.out kludge addresses (header_addr "
                         "%#llx, load_addr %#llx, header at file offset %#zx)", k->name,
                         (unsigned long long)header_addr, (unsigned long long)load_addr, hoff);
    uint64_t foff = hoff - (header_addr - load_addr);
    if (load_end && load_end < load_addr)
        return boot_fail(err, errlen, "%s: load_end_addr below load_addr", k->name);
    uint64_t n = load_end ? load_end - load_addr : k->len - foff;
    if (n > k->len - foff)
        return boot_fail(err, errlen, "%s: the image is shorter than load_end_addr says "
                         "(%llu bytes from offset %#llx, the file has %zu)", k->name,
                         (unsigned long long)n, (unsigned long long)foff, k->len);
    if (bss_end && bss_end < load_addr + n)
        return boot_fail(err, errlen, "%s: bss_end_addr %#llx below the end of the loaded "
                         "image %#llx", k->name, (unsigned long long)bss_end,
                         (unsigned long long)(load_addr + n));
    uint64_t top = bss_end ? bss_end : load_addr + n;
    if (!fits(ram, load_addr, top - load_addr))
        return boot_fail(err, errlen, "%s: image at %#llx-%#llx is outside guest RAM "
                         "[%#x, %#llx) (try --mem)", k->name, (unsigned long long)load_addr,
                         (unsigned long long)top, LOAD_MIN, (unsigned long long)ram->size);
    memcpy(ram->mem + load_addr, k->data + foff, n);
    memset(ram->mem + load_addr + n, 0, top - load_addr - n);
    km->seg[0] = km->all = (struct span){ load_addr, top };
    km->n = 1;
    return 0;
}

/* The program header table: where it is, and that it lies inside the file. */
static const uint8_t *elf_phdrs(const struct boot_blob *k, unsigned *phnum, uint32_t *e_entry,
                                char *err, size_t errlen)
{
    const uint8_t *img = k->data;
    Elf32_Ehdr eh;
    if (k->len < sizeof eh) {
        boot_fail(err, errlen, "%s: too short for an ELF header", k->name);
        return NULL;
    }
    memcpy(&eh, img, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS32 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB) {
        boot_fail(err, errlen, "%s: not a 32-bit little-endian ELF (multiboot v1 loads "
                  "ELF32 only, or flat images with the a.out kludge)", k->name);
        return NULL;
    }
    if (eh.e_machine != EM_386 || eh.e_type != ET_EXEC) {
        boot_fail(err, errlen, "%s: not an i386 executable (e_machine %u, e_type %u)",
                  k->name, eh.e_machine, eh.e_type);
        return NULL;
    }
    if (eh.e_phentsize != sizeof(Elf32_Phdr) || eh.e_phnum == 0 || eh.e_phoff > k->len ||
        (uint64_t)eh.e_phnum * sizeof(Elf32_Phdr) > k->len - eh.e_phoff) {
        boot_fail(err, errlen, "%s: bad program header table (%u entries of %u bytes at "
                  "offset %#x)", k->name, eh.e_phnum, eh.e_phentsize, eh.e_phoff);
        return NULL;
    }
    *phnum = eh.e_phnum;
    *e_entry = eh.e_entry;
    return img + eh.e_phoff;
}

/* Loads the PT_LOAD segments at their physical addresses. */
static int load_elf(const struct boot_ram *ram, const struct boot_blob *k, uint32_t *entry,
                    struct kmap *km, char *err, size_t errlen)
{
    unsigned phnum;
    uint32_t e_entry;
    const uint8_t *ph = elf_phdrs(k, &phnum, &e_entry, err, errlen);
    if (!ph)
        return -1;
    struct span *seen = km->seg, *sp = &km->all;
    unsigned nseen = 0;
    *entry = e_entry;
    sp->lo = ~0ull;
    sp->hi = 0;
    for (unsigned i = 0; i < phnum; i++) {
        Elf32_Phdr p;
        memcpy(&p, ph + (size_t)i * sizeof p, sizeof p);
        if (p.p_type != PT_LOAD || p.p_memsz == 0)
            continue;
        if (p.p_filesz > p.p_memsz)
            return boot_fail(err, errlen, "%s: segment %u has p_filesz %#x above p_memsz %#x",
                             k->name, i, p.p_filesz, p.p_memsz);
        if (p.p_offset > k->len || p.p_filesz > k->len - p.p_offset)
            return boot_fail(err, errlen, "%s: segment %u (%#x bytes at offset %#x) lies "
                             "outside the file (%zu bytes)", k->name, i, p.p_filesz,
                             p.p_offset, k->len);
        uint64_t lo = p.p_paddr, hi = (uint64_t)p.p_paddr + p.p_memsz;
        if (!fits(ram, lo, p.p_memsz))
            return boot_fail(err, errlen, "%s: segment %u at %#llx-%#llx is outside guest RAM "
                             "[%#x, %#llx) (try --mem)", k->name, i, (unsigned long long)lo,
                             (unsigned long long)hi, LOAD_MIN, (unsigned long long)ram->size);
        for (unsigned j = 0; j < nseen; j++)
            if (lo < seen[j].hi && seen[j].lo < hi)
                return boot_fail(err, errlen, "%s: segment %u at %#llx-%#llx overlaps an "
                                 "earlier one in memory", k->name, i,
                                 (unsigned long long)lo, (unsigned long long)hi);
        if (nseen == sizeof km->seg / sizeof km->seg[0])
            return boot_fail(err, errlen, "%s: more than %u loadable segments", k->name, nseen);
        seen[nseen++] = (struct span){ lo, hi };
        km->n = nseen;
        memcpy(ram->mem + lo, k->data + p.p_offset, p.p_filesz);
        memset(ram->mem + lo + p.p_filesz, 0, p.p_memsz - p.p_filesz);
        if (lo < sp->lo)
            sp->lo = lo;
        if (hi > sp->hi)
            sp->hi = hi;
        /* An entry given as a virtual address of a segment loaded elsewhere. */
        if (e_entry >= p.p_vaddr && e_entry - p.p_vaddr < p.p_memsz && p.p_vaddr != p.p_paddr)
            *entry = e_entry - p.p_vaddr + p.p_paddr;
    }
    if (!nseen)
        return boot_fail(err, errlen, "%s: no loadable segment", k->name);
    return 0;
}

/* Bump allocation inside the information area [info, end). */
struct mbi_area {
    uint8_t *mem;
    uint32_t p, end;
};

static uint32_t mbi_put(struct mbi_area *a, const void *src, size_t n)
{
    if (n > a->end - a->p)
        return 0;
    uint32_t at = a->p;
    memcpy(a->mem + at, src, n);
    a->p += (uint32_t)((n + 3) & ~(size_t)3);
    if (a->p > a->end)
        a->p = a->end;
    return at;
}

/* The modules, page-aligned from `at` on; their table and strings in the area. */
static int load_modules(const struct boot_ram *ram, const struct boot_mod *mods, int nmods,
                        uint64_t at, struct mbi_area *a, uint32_t *info, char *err,
                        size_t errlen)
{
    uint8_t table[16 * BOOT_MAX_MODULES];
    memset(table, 0, sizeof table);
    for (int i = 0; i < nmods; i++) {
        const struct boot_mod *m = &mods[i];
        at = (at + 0xfff) & ~0xfffull;
        if (at > ram->size || m->file.len > ram->size - at)
            return boot_fail(err, errlen, "%s: module of %zu bytes does not fit in guest RAM "
                             "after %#llx (try --mem)", m->file.name, m->file.len,
                             (unsigned long long)at);
        if (m->file.len)
            memcpy(ram->mem + at, m->file.data, m->file.len);
        const char *s = m->string ? m->string : m->file.name;
        uint32_t sp = mbi_put(a, s, strlen(s) + 1);
        if (!sp)
            return boot_fail(err, errlen, "the module command lines do not fit in the "
                             "multiboot information area");
        boot_wr32(table + 16 * i, (uint32_t)at);
        boot_wr32(table + 16 * i + 4, (uint32_t)(at + m->file.len));
        boot_wr32(table + 16 * i + 8, sp);
        at += m->file.len;
    }
    uint32_t tp = mbi_put(a, table, 16u * (unsigned)nmods);
    if (!tp)
        return boot_fail(err, errlen, "the module table does not fit in the multiboot "
                         "information area");
    info[0] |= 0x8;
    info[5] = (uint32_t)nmods;
    info[6] = tp;
    return 0;
}

/* The information block: memory sizes, command line, loader name, memory map, modules. */
static int write_info(const struct boot_ram *ram, const struct boot_blob *k,
                      const char *cmdline, const struct boot_mod *mods, int nmods,
                      uint64_t mods_at, const struct area *ar, char *err, size_t errlen)
{
    struct mbi_area a = { ram->mem, ar->info + 128, ar->end };
    memset(ram->mem + ar->info, 0, ar->end - ar->info);
    uint32_t info[30] = { 0 };
    info[0] = 0x1 | 0x4 | 0x40 | 0x200; /* mem, cmdline, mmap, loader name */
    info[1] = 639;
    info[2] = (uint32_t)((ram->size - 0x100000) >> 10);
    /* The command line: the kernel's name, then the arguments, as GRUB passes them. */
    size_t nl = strlen(k->name), cl = cmdline ? strlen(cmdline) : 0;
    if (nl + 1 + cl + 1 > a.end - a.p - 4096)
        return boot_fail(err, errlen, "the command line has %zu bytes: more than the "
                         "multiboot information area holds", nl + 1 + cl);
    uint8_t *line = ram->mem + a.p;
    memcpy(line, k->name, nl);
    if (cl) {
        line[nl] = ' ';
        memcpy(line + nl + 1, cmdline, cl);
        nl += 1 + cl;
    }
    line[nl] = 0;
    info[4] = a.p;
    a.p += (uint32_t)((nl + 1 + 3) & ~(size_t)3);
    static const char loader[] = "xbt-run";
    info[16] = mbi_put(&a, loader, sizeof loader);
    uint8_t map[4 * 24];
    const uint64_t ranges[4][3] = {
        { 0, 0x9fc00, 1 }, { 0x9fc00, 0x400, 2 }, { 0xf0000, 0x10000, 2 },
        { 0x100000, ram->size - 0x100000, 1 },
    };
    for (int i = 0; i < 4; i++) {
        boot_wr32(map + 24 * i, 20);
        memcpy(map + 24 * i + 4, &ranges[i][0], 8);
        memcpy(map + 24 * i + 12, &ranges[i][1], 8);
        boot_wr32(map + 24 * i + 20, (uint32_t)ranges[i][2]);
    }
    info[11] = sizeof map;
    info[12] = mbi_put(&a, map, sizeof map);
    if (nmods > 0 && load_modules(ram, mods, nmods, mods_at, &a, info, err, errlen))
        return -1;
    memcpy(ram->mem + ar->info, info, sizeof info);
    return 0;
}

int boot_multiboot(const struct boot_ram *ram, const struct boot_blob *kernel,
                   const char *cmdline, const struct boot_mod *mods, int nmods,
                   struct boot_entry *entry, char *err, size_t errlen)
{
    if (ram->size < BOOT_MIN_RAM || ram->size > BOOT_MAX_RAM)
        return boot_fail(err, errlen, "guest RAM of %llu bytes: the loader needs 2 MiB to 3 GiB",
                         (unsigned long long)ram->size);
    if (nmods < 0 || nmods > BOOT_MAX_MODULES)
        return boot_fail(err, errlen, "%d modules: at most %d", nmods, BOOT_MAX_MODULES);
    size_t hoff = 0;
    if (find_header(kernel, &hoff, err, errlen))
        return -1;
    uint32_t flags = boot_rd32(kernel->data + hoff + 4);
    if (flags & 0x0000fff8u) /* required features beyond page align, mem, video */
        return boot_fail(err, errlen, "%s: multiboot header asks for unsupported features "
                         "(flags %#x)", kernel->name, flags);
    uint32_t eip = 0;
    struct kmap km;
    memset(&km, 0, sizeof km);
    struct area ar = { 0, 0, 0 };
    if ((flags & MB_AOUT_KLUDGE) ? load_kludge(ram, kernel, hoff, &eip, &km, err, errlen)
                                 : load_elf(ram, kernel, &eip, &km, err, errlen))
        return -1;
    if (pick_area(&km, kernel->name, &ar, err, errlen))
        return -1;
    /* Below 1 MiB lie the loader's area, the EBDA and the firmware's tables: a low
       kernel's modules go above. */
    uint64_t mods_at = km.all.hi < MODS_LOW_MIN ? MODS_LOW_MIN : km.all.hi;
    if (write_info(ram, kernel, cmdline, mods, nmods, mods_at, &ar, err, errlen))
        return -1;

    /* Multiboot leaves GDTR undefined; like QEMU's loader, give a valid flat GDT so a
       guest that never loads its own still takes interrupts (CS 0x08, data 0x10/0x18). */
    static const uint64_t gdt[4] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull,
                                     0x00cf92000000ffffull };
    memcpy(ram->mem + ar.gdt, gdt, sizeof gdt);
    memset(entry, 0, sizeof *entry);
    entry->eax = MB_BOOT_MAGIC;
    entry->ebx = ar.info;
    entry->eip = eip;
    entry->eflags = 0x2;
    entry->gdt_base = ar.gdt;
    entry->gdt_limit = sizeof gdt - 1;
    entry->idt_limit = 0x3ff;
    return 0;
}
