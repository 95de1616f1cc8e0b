/*
 * boot.h - the loaders of xbt-run, apart from any VM: a kernel image (multiboot v1 or a
 * Linux bzImage), its modules or initrd and a command line go into a plain buffer that
 * stands for guest physical RAM, and the loader says what the vCPU must hold at entry.
 *
 * xbt-run gives the VM's RAM (xbt_vm_ram) and applies the entry state through the xbt
 * API (boot_xbt.c); the loaders' fuzz target (tests/fuzz/fuzz_loaders.c) gives a
 * malloc'd buffer.  Every size and offset a file states is checked before it is used:
 * a malformed input ends in -1 and one line of text in err, nothing is written outside
 * [ram->mem, ram->mem + ram->size), and nothing is read outside the files.
 */
#ifndef XBT_TOOLS_BOOT_H
#define XBT_TOOLS_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Guest physical RAM [0, size) at mem.  The loaders need at least BOOT_MIN_RAM (their
   tables live below 1 MiB, the kernel at 1 MiB) and at most BOOT_MAX_RAM. */
#define BOOT_MIN_RAM (2ull << 20)
#define BOOT_MAX_RAM (3ull << 30)
struct boot_ram {
    uint8_t *mem;
    uint64_t size;
};

/* A file's contents, and its name for messages. */
struct boot_blob {
    const char *name;
    const uint8_t *data;
    size_t len;
};

/* A multiboot module: its contents and its string (the command line the kernel sees). */
struct boot_mod {
    struct boot_blob file;
    const char *string;
};
#define BOOT_MAX_MODULES 64

/*
 * The vCPU state at entry: every general register zero but those named here, EFLAGS,
 * GDTR and IDTR as given; with load_selectors, CS = cs and DS, ES, SS, FS, GS = ds
 * (flat descriptors of the GDT the loader wrote); else the selectors stay as they are.
 */
struct boot_entry {
    uint32_t eip, eax, ebx, esi, eflags;
    uint32_t gdt_base, idt_base;
    uint16_t gdt_limit, idt_limit;
    bool load_selectors;
    uint16_t cs, ds;
};

/* Whether an image is a Linux bzImage ("HdrS" at 0x202); else it is taken as multiboot. */
bool boot_is_bzimage(const uint8_t *img, size_t len);
/* A bzImage whose kernel may run moved from its link address (relocatable_kernel,
   protocol 2.05 on; KASLR moves it): its kernel_alignment, a power of two of at least
   4 KiB; 0 for any other image or an alignment that is not such a power. */
uint32_t boot_bz_reloc_align(const uint8_t *img, size_t len);

/* loader.c: multiboot v1 (ELF32 by program headers, or the a.out kludge). */
int boot_multiboot(const struct boot_ram *ram, const struct boot_blob *kernel,
                   const char *cmdline, const struct boot_mod *mods, int nmods,
                   struct boot_entry *entry, char *err, size_t errlen);

/* linux.c: the Linux 32-bit boot protocol (2.06 or later).  initrd may be NULL. */
int boot_linux(const struct boot_ram *ram, const struct boot_blob *kernel,
               const char *cmdline, const struct boot_blob *initrd,
               struct boot_entry *entry, char *err, size_t errlen);

/* Formats a one-line message into err (control characters of names become '?'); -1. */
int boot_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Little-endian reads from an image; the caller has checked the bounds. */
static inline uint16_t boot_rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t boot_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void boot_wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

#endif
