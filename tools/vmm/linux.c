/*
 * linux.c - the Linux 32-bit boot protocol (Documentation/arch/x86/boot.rst): the
 * protected-mode part of a bzImage at 1 MiB, the zero page (boot_params) with the setup
 * header copied from the image, an e820 map, the command line and an initrd, and the
 * entry state: ESI = boot_params, CS = 0x10 and DS/ES/SS = 0x18 flat, paging and
 * interrupts off.  No real mode and no BIOS.
 *
 * Every field of the setup header is read only after the image is known to hold it,
 * and every address computed from one is checked against RAM before it is written.
 */
#include <string.h>

#include "boot.h"

#define BOOT_PARAMS 0x10000u  /* the zero page */
#define CMDLINE     0x20000u  /* the command line, up to CMDLINE_END */
#define CMDLINE_END 0x90000u
#define GDT_ADDR    0x8f00u
#define KERNEL_ADDR 0x100000u
#define HDR_MAX     0x290u    /* boot_params fields after the setup header start here */

/* The setup header fields used (offsets in the image and in boot_params). */
#define H_SETUP_SECTS 0x1f1
#define H_SYSSIZE     0x1f4
#define H_JUMP        0x200
#define H_VERSION     0x206
#define H_LOADFLAGS   0x211
#define H_CODE32      0x214
#define H_RAMDISK     0x218
#define H_RAMDISK_SZ  0x21c
#define H_HEAP_END    0x224
#define H_CMDLINE_PTR 0x228
#define H_INITRD_MAX  0x22c
#define H_KERNEL_ALIGN 0x230
#define H_RELOCATABLE 0x234
#define H_CMDLINE_SZ  0x238
#define H_PREF_ADDR   0x258
#define H_INIT_SIZE   0x260

struct bz {
    const struct boot_blob *f;
    uint16_t version;
    size_t hdr_end;       /* end of the setup header in the image */
    size_t pm_off, pm_len;/* the protected-mode code: file offset and length */
    uint64_t kernel_end;  /* the end of what the kernel occupies while it starts */
    uint32_t initrd_max, cmdline_max, code32;
};

/* The setup header: present, recent enough, and consistent with the file's size. */
static int parse_header(struct bz *z, uint64_t ramsz, char *err, size_t errlen)
{
    const uint8_t *img = z->f->data;
    size_t len = z->f->len;
    const char *name = z->f->name;
    if (len < H_VERSION + 2)
        return boot_fail(err, errlen, "%s: truncated Linux setup header (%zu bytes)", name, len);
    z->hdr_end = 0x202u + img[H_JUMP + 1];
    z->version = boot_rd16(img + H_VERSION);
    if (z->version < 0x0206)
        return boot_fail(err, errlen, "%s: boot protocol %u.%02u is too old (2.06 or later "
                         "needed)", name, z->version >> 8, z->version & 0xff);
    /* 2.10 adds init_size; before it, the fields up to cmdline_size are what is read. */
    size_t need = z->version >= 0x020a ? H_INIT_SIZE + 4 : H_CMDLINE_SZ + 4;
    if (z->hdr_end < need || len < z->hdr_end)
        return boot_fail(err, errlen, "%s: truncated Linux setup header (ends at %#zx, the "
                         "file has %zu bytes; protocol %u.%02u needs %#zx)", name,
                         z->hdr_end, len, z->version >> 8, z->version & 0xff, need);
    unsigned setup_sects = img[H_SETUP_SECTS] ? img[H_SETUP_SECTS] : 4;
    z->pm_off = (setup_sects + 1) * 512u;
    if (z->pm_off >= len)
        return boot_fail(err, errlen, "%s: no protected-mode code after %u setup sectors "
                         "(the file has %zu bytes)", name, setup_sects, len);
    z->pm_len = len - z->pm_off;
    uint64_t syssize = (uint64_t)boot_rd32(img + H_SYSSIZE) * 16;
    if (syssize > z->pm_len)
        return boot_fail(err, errlen, "%s: truncated kernel: syssize says %llu bytes of "
                         "protected-mode code, the file has %zu", name,
                         (unsigned long long)syssize, z->pm_len);
    if (!(img[H_LOADFLAGS] & 1))
        return boot_fail(err, errlen, "%s: not a bzImage (LOADED_HIGH clear)", name);
    /* 2.10 on: the kernel runs from pref_address (a relocatable one loaded lower moves
       there) and needs init_size bytes from there before it reads the memory map. */
    uint64_t run_at = KERNEL_ADDR, init_size = 0;
    if (z->version >= 0x020a) {
        uint64_t pref = (uint64_t)boot_rd32(img + H_PREF_ADDR) |
                        (uint64_t)boot_rd32(img + H_PREF_ADDR + 4) << 32;
        if (pref > ramsz)
            return boot_fail(err, errlen, "%s runs at %#llx (pref_address), beyond guest RAM: "
                             "give more --mem", name, (unsigned long long)pref);
        if (pref > run_at)
            run_at = pref;
        init_size = boot_rd32(img + H_INIT_SIZE);
    }
    z->kernel_end = KERNEL_ADDR + z->pm_len;
    if (run_at + init_size > z->kernel_end)
        z->kernel_end = run_at + init_size;
    if (z->kernel_end > ramsz)
        return boot_fail(err, errlen, "%s needs guest RAM up to %#llx (%llu MiB): give more --mem",
                         name, (unsigned long long)z->kernel_end,
                         (unsigned long long)((z->kernel_end + 0xFFFFF) >> 20));
    z->initrd_max = boot_rd32(img + H_INITRD_MAX);
    z->cmdline_max = boot_rd32(img + H_CMDLINE_SZ);
    z->code32 = boot_rd32(img + H_CODE32);
    return 0;
}

/* The initrd as high as initrd_addr_max and RAM allow, page-aligned, above the kernel. */
static int place_initrd(const struct boot_ram *ram, const struct bz *z,
                        const struct boot_blob *rd, uint8_t *bp, char *err, size_t errlen)
{
    if (rd->len == 0)
        return boot_fail(err, errlen, "%s: the initrd is empty", rd->name);
    uint64_t top = (uint64_t)z->initrd_max + 1;
    bool by_ram = top > ram->size;
    if (by_ram)
        top = ram->size;
    if (rd->len > top || ((top - rd->len) & ~0xFFFull) < z->kernel_end)
        return boot_fail(err, errlen, "%s (%zu bytes) does not fit between the kernel's end "
                         "%#llx and %s %#llx%s", rd->name, rd->len,
                         (unsigned long long)z->kernel_end,
                         by_ram ? "the end of RAM" : "the kernel's initrd_addr_max + 1",
                         (unsigned long long)top, by_ram ? ": give more --mem" : "");
    uint64_t at = (top - rd->len) & ~0xFFFull;
    memcpy(ram->mem + at, rd->data, rd->len);
    boot_wr32(bp + H_RAMDISK, (uint32_t)at);
    boot_wr32(bp + H_RAMDISK_SZ, (uint32_t)rd->len);
    return 0;
}

/* e820: low memory, the BIOS hole, RAM from 1 MiB. */
static void write_e820(uint8_t *bp, uint64_t ramsz)
{
    const uint64_t map[4][3] = {
        { 0, 0x9fc00, 1 }, { 0x9fc00, 0x400, 2 }, { 0xf0000, 0x10000, 2 },
        { KERNEL_ADDR, ramsz - KERNEL_ADDR, 1 },
    };
    for (int i = 0; i < 4; i++) {
        uint8_t *e = bp + 0x2d0 + 20 * i;
        memcpy(e, &map[i][0], 8);
        memcpy(e + 8, &map[i][1], 8);
        boot_wr32(e + 16, (uint32_t)map[i][2]);
    }
    bp[0x1e8] = 4;
    uint64_t ext = (ramsz - KERNEL_ADDR) >> 10;
    uint16_t ext_kb = (uint16_t)(ext > 0xffff ? 0xffff : ext);
    memcpy(bp + 0x2, &ext_kb, 2);           /* screen_info.ext_mem_k (legacy) */
}

int boot_linux(const struct boot_ram *ram, const struct boot_blob *kernel,
               const char *cmdline, const struct boot_blob *initrd,
               struct boot_entry *entry, char *err, size_t errlen)
{
    if (ram->size < BOOT_MIN_RAM || ram->size > BOOT_MAX_RAM)
        return boot_fail(err, errlen, "guest RAM of %llu bytes: the loader needs 2 MiB to 3 GiB",
                         (unsigned long long)ram->size);
    struct bz z = { .f = kernel };
    if (parse_header(&z, ram->size, err, errlen))
        return -1;
    if (!cmdline)
        cmdline = "";
    size_t cl = strlen(cmdline);
    if (cl > z.cmdline_max || cl >= CMDLINE_END - CMDLINE)
        return boot_fail(err, errlen, "the command line has %zu bytes; %s takes at most %u",
                         cl, kernel->name,
                         z.cmdline_max < CMDLINE_END - CMDLINE - 1 ? z.cmdline_max
                                                                   : CMDLINE_END - CMDLINE - 1);
    uint8_t *mem = ram->mem;
    memcpy(mem + KERNEL_ADDR, kernel->data + z.pm_off, z.pm_len);

    /* The zero page: the setup header as the image has it, then what a loader fills. */
    uint8_t *bp = mem + BOOT_PARAMS;
    memset(bp, 0, 4096);
    size_t hdr_end = z.hdr_end < HDR_MAX ? z.hdr_end : HDR_MAX;
    memcpy(bp + H_SETUP_SECTS, kernel->data + H_SETUP_SECTS, hdr_end - H_SETUP_SECTS);
    /* The fields a boot loader writes start from zero, not from the image's bytes
       (an image's ramdisk or setup_data fields would otherwise reach the kernel). */
    memset(bp + H_RAMDISK, 0, 12);          /* ramdisk_image, ramdisk_size, bootsect_kludge */
    memset(bp + 0x226, 0, 2);               /* ext_loader_ver, ext_loader_type */
    memset(bp + 0x23c, 0, 12);              /* hardware_subarch (PC), its data */
    memset(bp + 0x250, 0, 8);               /* setup_data: none */
    bp[0x210] = 0xff;                       /* type_of_loader: undefined */
    bp[H_LOADFLAGS] |= 0x80;                /* CAN_USE_HEAP */
    bp[H_HEAP_END] = 0x00;                  /* heap_end_ptr 0xfe00 */
    bp[H_HEAP_END + 1] = 0xfe;
    memcpy(mem + CMDLINE, cmdline, cl + 1);
    boot_wr32(bp + H_CMDLINE_PTR, CMDLINE);
    if (initrd && place_initrd(ram, &z, initrd, bp, err, errlen))
        return -1;
    write_e820(bp, ram->size);

    /* Flat __BOOT_CS (0x10) and __BOOT_DS (0x18). */
    static const uint64_t gdt[4] = { 0, 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull };
    memcpy(mem + GDT_ADDR, gdt, sizeof gdt);
    memset(entry, 0, sizeof *entry);
    entry->esi = BOOT_PARAMS;
    entry->eip = z.code32;
    entry->eflags = 0x2;
    entry->gdt_base = GDT_ADDR;
    entry->gdt_limit = sizeof gdt - 1;
    entry->load_selectors = true;
    entry->cs = 0x10;
    entry->ds = 0x18;
    return 0;
}

uint32_t boot_bz_reloc_align(const uint8_t *img, size_t len)
{
    /* The header must reach the flag: it ends at 0x202 + the jump's offset byte. */
    if (!boot_is_bzimage(img, len) || len <= H_RELOCATABLE || len < H_VERSION + 2 ||
        boot_rd16(img + H_VERSION) < 0x0205 || 0x202u + img[H_JUMP + 1] <= H_RELOCATABLE ||
        !img[H_RELOCATABLE])
        return 0;
    uint32_t a = boot_rd32(img + H_KERNEL_ALIGN);
    return a >= 4096 && !(a & (a - 1)) ? a : 0;
}
