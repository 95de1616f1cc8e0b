/*
 * bootgen.h - well-formed boot images for the loader tests, built in memory: a multiboot
 * ELF32 kernel, a multiboot flat image with the a.out kludge, and a Linux bzImage, each
 * around a few bytes of 32-bit guest code.  The loaders' replay driver and the xbt-run
 * malformed-input test start from them and break one field at a time.
 */
#ifndef XBT_TESTS_BOOTGEN_H
#define XBT_TESTS_BOOTGEN_H

#include <stddef.h>
#include <stdint.h>

/* Layout of the generated images (offsets of the fields a test may break). */
#define BG_ELF_PHOFF     0x34    /* one program header right after the ELF header */
#define BG_ELF_MBHDR     0x200   /* the multiboot header (flags 3), after room for phdrs */
#define BG_ELF_CODE      0x1000  /* file offset of the segment */
#define BG_KLUDGE_CODE   32      /* the kludge header at 0, the code after it */
#define BG_BZ_SETUP_SECTS 4      /* protected-mode code at (4 + 1) * 512 */
#define BG_BZ_PM         0xa00

/* 32-bit guest code: writes `value` to isa-debug-exit (exit status value * 2 + 1). */
size_t bg_code_exit(uint8_t *b, uint8_t value);
/* Exit status = the multiboot information's mods_count (EBX + 20) * 2 + 1. */
size_t bg_code_exit_mods(uint8_t *b);
/* Exit status = the first byte of the initrd (boot_params at ESI: ramdisk_image). */
size_t bg_code_exit_initrd(uint8_t *b);

/* ELF32 multiboot kernel: one PT_LOAD at `load` (filesz = the code, memsz + bss). */
size_t bg_elf(uint8_t *b, size_t cap, uint32_t load, const uint8_t *code, size_t n,
              uint32_t bss);
/* Flat multiboot image loaded at `load` by the a.out kludge fields. */
size_t bg_kludge(uint8_t *b, size_t cap, uint32_t load, const uint8_t *code, size_t n,
                 uint32_t bss);
/* bzImage, protocol 2.15, code32_start 1 MiB, pref_address 1 MiB, given init_size. */
size_t bg_bzimage(uint8_t *b, size_t cap, const uint8_t *code, size_t n, uint32_t init_size);

static inline void bg_w32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void bg_w16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

#endif
