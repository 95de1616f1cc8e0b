/*
 * bootgen.c - well-formed boot images in memory (bootgen.h).
 */
#include <string.h>

#include "bootgen.h"

size_t bg_code_exit(uint8_t *b, uint8_t value)
{
    const uint8_t c[] = { 0xb0, value, 0xe6, 0xf4, 0xfa, 0xf4 }; /* mov al,v; out; cli; hlt */
    memcpy(b, c, sizeof c);
    return sizeof c;
}

size_t bg_code_exit_mods(uint8_t *b)
{
    /* mov eax, [ebx + 20]; out 0xf4, al; cli; hlt */
    const uint8_t c[] = { 0x8b, 0x43, 0x14, 0xe6, 0xf4, 0xfa, 0xf4 };
    memcpy(b, c, sizeof c);
    return sizeof c;
}

size_t bg_code_exit_initrd(uint8_t *b)
{
    /* mov edx, [esi + 0x218]; mov al, [edx]; out 0xf4, al; cli; hlt */
    const uint8_t c[] = { 0x8b, 0x96, 0x18, 0x02, 0x00, 0x00, 0x8a, 0x02, 0xe6, 0xf4,
                          0xfa, 0xf4 };
    memcpy(b, c, sizeof c);
    return sizeof c;
}

static void mb_header(uint8_t *h, uint32_t flags)
{
    bg_w32(h, 0x1BADB002u);
    bg_w32(h + 4, flags);
    bg_w32(h + 8, 0u - 0x1BADB002u - flags);
}

size_t bg_elf(uint8_t *b, size_t cap, uint32_t load, const uint8_t *code, size_t n,
              uint32_t bss)
{
    size_t len = BG_ELF_CODE + n;
    if (len > cap)
        return 0;
    memset(b, 0, len);
    memcpy(b, "\177ELF", 4);
    b[4] = 1; /* ELFCLASS32 */
    b[5] = 1; /* little-endian */
    b[6] = 1; /* EV_CURRENT */
    bg_w16(b + 16, 2);             /* ET_EXEC */
    bg_w16(b + 18, 3);             /* EM_386 */
    bg_w32(b + 20, 1);
    bg_w32(b + 24, load);          /* e_entry */
    bg_w32(b + 28, BG_ELF_PHOFF);  /* e_phoff */
    bg_w16(b + 40, 52);            /* e_ehsize */
    bg_w16(b + 42, 32);            /* e_phentsize */
    bg_w16(b + 44, 1);             /* e_phnum */
    uint8_t *ph = b + BG_ELF_PHOFF;
    bg_w32(ph, 1);                 /* PT_LOAD */
    bg_w32(ph + 4, BG_ELF_CODE);   /* p_offset */
    bg_w32(ph + 8, load);          /* p_vaddr */
    bg_w32(ph + 12, load);         /* p_paddr */
    bg_w32(ph + 16, (uint32_t)n);  /* p_filesz */
    bg_w32(ph + 20, (uint32_t)n + bss);
    bg_w32(ph + 24, 7);
    bg_w32(ph + 28, 0x1000);
    mb_header(b + BG_ELF_MBHDR, 3);
    memcpy(b + BG_ELF_CODE, code, n);
    return len;
}

size_t bg_kludge(uint8_t *b, size_t cap, uint32_t load, const uint8_t *code, size_t n,
                 uint32_t bss)
{
    size_t len = BG_KLUDGE_CODE + n;
    if (len > cap)
        return 0;
    memset(b, 0, len);
    mb_header(b, 0x00010003u);
    bg_w32(b + 12, load);                        /* header_addr */
    bg_w32(b + 16, load);                        /* load_addr */
    bg_w32(b + 20, load + (uint32_t)len);        /* load_end_addr */
    bg_w32(b + 24, bss ? load + (uint32_t)len + bss : 0);
    bg_w32(b + 28, load + BG_KLUDGE_CODE);       /* entry_addr */
    memcpy(b + BG_KLUDGE_CODE, code, n);
    return len;
}

size_t bg_bzimage(uint8_t *b, size_t cap, const uint8_t *code, size_t n, uint32_t init_size)
{
    size_t len = BG_BZ_PM + ((n + 15) & ~(size_t)15); /* whole paragraphs (syssize) */
    if (len > cap)
        return 0;
    memset(b, 0, len);
    b[0x1f1] = BG_BZ_SETUP_SECTS;
    bg_w32(b + 0x1f4, (uint32_t)(n + 15) / 16);  /* syssize */
    bg_w16(b + 0x1fe, 0xaa55);
    b[0x200] = 0xeb;                             /* jmp to the end of the header */
    b[0x201] = 0x6a;                             /* the header ends at 0x26c */
    memcpy(b + 0x202, "HdrS", 4);
    bg_w16(b + 0x206, 0x020f);
    b[0x211] = 0x01;                             /* LOADED_HIGH */
    bg_w32(b + 0x214, 0x100000);                 /* code32_start */
    bg_w32(b + 0x22c, 0x7fffffff);               /* initrd_addr_max */
    bg_w32(b + 0x230, 0x1000);                   /* kernel_alignment */
    bg_w32(b + 0x238, 0x7ff);                    /* cmdline_size */
    bg_w32(b + 0x258, 0x100000);                 /* pref_address */
    bg_w32(b + 0x260, init_size);
    memcpy(b + BG_BZ_PM, code, n);
    return len;
}
