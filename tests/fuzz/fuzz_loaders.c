/*
 * fuzz_loaders.c - arbitrary bytes through xbt-run's loaders (tools/vmm/boot.h): a
 * multiboot kernel with modules, or a Linux bzImage with an initrd, and a command line,
 * loaded into a buffer standing for guest RAM.  Contract checked: no access outside the
 * RAM buffer or the files (each ends at a PROT_NONE page, so this holds without a
 * sanitizer too), either a success whose entry state and boot tables point inside RAM,
 * or a failure with one line of text.
 *
 * Input: byte 0 flags (bit 0 Linux loader, bit 1 initrd, bits 2-3 modules, bit 4 the
 * kernel padded with zeros to a length from bytes 2-3, bit 5 the initrd a run of zeros
 * of that length, bit 6 a long command line, bit 7 none), byte 1 the RAM size (2 to
 * 8 MiB; 0xff: 1 MiB, below what the loaders accept), bytes 2-3 a length, then chunks of
 * a little-endian u16 length and bytes: the kernel, the initrd, the modules; the rest is
 * the command line.
 *
 * Built as a libFuzzer target (-DXBT_FUZZ=ON with clang) and, always, as a replay
 * driver (REPLAY_MAIN) that ctest runs over the corpus (records of u32 length + bytes)
 * plus generated inputs: well-formed images (bootgen.c) broken one field at a time.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "boot.h"
#include "bootgen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAGE 4096u
#define RAM_CAP (8u << 20)
#define BLOB_CAP (4u << 20)
#define NMODS_MAX 3

/* A reservation with PROT_NONE pages on both sides; `n` bytes at its end usable. */
struct guarded {
    uint8_t *lo;   /* first byte after the leading guard page */
    size_t cap;    /* bytes between the guards */
    size_t open;   /* bytes at the end currently read-write */
};

static void guarded_init(struct guarded *g, size_t cap)
{
    uint8_t *p = mmap(NULL, cap + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
                      MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        abort();
    g->lo = p + PAGE;
    g->cap = cap;
    g->open = 0;
}

/* n bytes ending right at the trailing guard; everything before them inaccessible. */
static uint8_t *guarded_tail(struct guarded *g, size_t n)
{
    size_t want = (n + PAGE - 1) & ~(size_t)(PAGE - 1);
    if (want > g->cap)
        abort();
    if (want != g->open) {
        if (mprotect(g->lo, g->cap - want, PROT_NONE) ||
            (want && mprotect(g->lo + g->cap - want, want, PROT_READ | PROT_WRITE)))
            abort();
        g->open = want;
    }
    return g->lo + g->cap - n;
}

static struct guarded g_ram, g_kernel, g_initrd, g_mods[NMODS_MAX];

static void init_once(void)
{
    static bool done;
    if (done)
        return;
    guarded_init(&g_ram, RAM_CAP);
    guarded_init(&g_kernel, BLOB_CAP + PAGE);
    guarded_init(&g_initrd, BLOB_CAP + PAGE);
    for (int i = 0; i < NMODS_MAX; i++)
        guarded_init(&g_mods[i], 1u << 16);
    done = true;
}

/* Takes the next chunk (u16 length, clamped to what is left). */
static const uint8_t *chunk(const uint8_t **p, size_t *left, size_t *n)
{
    if (*left < 2) {
        *n = 0;
        return *p;
    }
    size_t l = (size_t)((*p)[0] | (*p)[1] << 8);
    *p += 2;
    *left -= 2;
    if (l > *left)
        l = *left;
    const uint8_t *c = *p;
    *p += l;
    *left -= l;
    *n = l;
    return c;
}

static void check_error(const char *err)
{
    size_t n = strlen(err);
    if (n == 0 || n >= 512) {
        fprintf(stderr, "loader failed without a message\n");
        abort();
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)err[i] < 0x20) {
            fprintf(stderr, "loader message is more than one line: %s\n", err);
            abort();
        }
}

/* A NUL-terminated string at guest address a, inside [a, lim). */
static void check_string(const struct boot_ram *ram, uint32_t a, uint64_t lim)
{
    if (a == 0 || a >= lim || lim > ram->size || !memchr(ram->mem + a, 0, lim - a)) {
        fprintf(stderr, "boot string at %#x is not terminated below %#llx\n", a,
                (unsigned long long)lim);
        abort();
    }
}

static void check_multiboot(const struct boot_ram *ram, const struct boot_entry *e,
                            int nmods, const size_t *mod_len)
{
    /* The information follows the boot GDT (0x100 bytes after it), in low memory below
       0x9f000: at 0x9000 unless the kernel occupies that area (loader.c). */
    if (e->eax != 0x2BADB002u || e->ebx != e->gdt_base + 0x100 || e->ebx < 0x1100 ||
        e->ebx + 128 > 0x9f000)
        abort();
    const uint8_t *mbi = ram->mem + e->ebx;
    uint32_t flags = boot_rd32(mbi);
    check_string(ram, boot_rd32(mbi + 16), 0x9f000);
    if (nmods) {
        if (!(flags & 8) || boot_rd32(mbi + 20) != (uint32_t)nmods)
            abort();
        uint32_t t = boot_rd32(mbi + 24);
        if (t < e->ebx || t + 16u * nmods > 0x9f000)
            abort();
        for (int i = 0; i < nmods; i++) {
            uint32_t s = boot_rd32(ram->mem + t + 16 * i), end = boot_rd32(ram->mem + t + 16 * i + 4);
            if ((s & 0xfff) || s < 0x100000 || end < s || end > ram->size || end - s != mod_len[i]) {
                fprintf(stderr, "module %d at %#x-%#x (RAM %#llx)\n", i, s, end,
                        (unsigned long long)ram->size);
                abort();
            }
            check_string(ram, boot_rd32(ram->mem + t + 16 * i + 8), 0x9f000);
        }
    }
}

static void check_linux(const struct boot_ram *ram, const struct boot_entry *e, size_t rd_len)
{
    if (e->esi != 0x10000 || !e->load_selectors || e->cs != 0x10 || e->ds != 0x18)
        abort();
    const uint8_t *bp = ram->mem + e->esi;
    check_string(ram, boot_rd32(bp + 0x228), 0x90000);
    uint32_t at = boot_rd32(bp + 0x218), n = boot_rd32(bp + 0x21c);
    if (n != rd_len || (rd_len && (at < 0x100000 || (at & 0xfff) || (uint64_t)at + n > ram->size))) {
        fprintf(stderr, "initrd at %#x+%#x (RAM %#llx)\n", at, n, (unsigned long long)ram->size);
        abort();
    }
}

static unsigned outcomes[2][2]; /* [Linux][loaded] */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    init_once();
    uint8_t flags = data[0];
    uint64_t ramsz = data[1] == 0xff ? 1u << 20 : (2u << 20) + (data[1] % 25u) * (256u << 10);
    size_t pad = (size_t)(data[2] | data[3] << 8) * 64;
    const uint8_t *p = data + 4;
    size_t left = size - 4;

    struct boot_ram ram = { guarded_tail(&g_ram, ramsz), ramsz };
    size_t kn;
    const uint8_t *kd = chunk(&p, &left, &kn);
    size_t klen = (flags & 0x10) && pad > kn ? pad : kn;
    uint8_t *kb = guarded_tail(&g_kernel, klen);
    memcpy(kb, kd, kn);
    memset(kb + kn, 0, klen - kn);
    struct boot_blob kernel = { "kernel", kb, klen };

    size_t rn;
    const uint8_t *rdata = chunk(&p, &left, &rn);
    size_t rlen = (flags & 0x20) ? pad : rn;
    uint8_t *rb = guarded_tail(&g_initrd, rlen);
    if (flags & 0x20)
        memset(rb, 0, rlen);
    else
        memcpy(rb, rdata, rn);
    struct boot_blob initrd = { "initrd", rb, rlen };

    int nmods = (flags >> 2) & 3;
    struct boot_mod mods[NMODS_MAX];
    size_t mod_len[NMODS_MAX];
    for (int i = 0; i < nmods; i++) {
        size_t mn;
        const uint8_t *md = chunk(&p, &left, &mn);
        uint8_t *mb = guarded_tail(&g_mods[i], mn);
        memcpy(mb, md, mn);
        mods[i].file = (struct boot_blob){ "module", mb, mn };
        mods[i].string = (i & 1) ? NULL : "module args";
        mod_len[i] = mn;
    }
    static char line[1 << 17];
    size_t cl = left < sizeof line - 1 ? left : sizeof line - 1;
    memcpy(line, p, cl);
    line[cl] = 0;
    if (flags & 0x40) { /* a long one: past the kernels' limits and the area's */
        size_t n = pad < sizeof line - 1 ? pad : sizeof line - 1;
        memset(line + cl, 'x', n > cl ? n - cl : 0);
        line[n > cl ? n : cl] = 0;
    }
    const char *cmdline = (flags & 0x80) ? NULL : line;

    struct boot_entry e;
    char err[512] = "";
    bool linux_ = flags & 1;
    int rc = linux_ ? boot_linux(&ram, &kernel, cmdline, (flags & 2) ? &initrd : NULL, &e,
                                 err, sizeof err)
                    : boot_multiboot(&ram, &kernel, cmdline, mods, nmods, &e, err, sizeof err);
    outcomes[linux_][rc == 0]++;
    /* Any image: the relocation alignment is read in bounds and is 0 or a power of two
       of at least 4 KiB (xbt-run asks it of every bzImage it booted). */
    uint32_t align = boot_bz_reloc_align(kernel.data, kernel.len);
    if (align && (align < 4096 || (align & (align - 1))))
        abort();
    if (rc != 0)
        check_error(err);
    else if (linux_)
        check_linux(&ram, &e, (flags & 2) ? rlen : 0);
    else
        check_multiboot(&ram, &e, nmods, mod_len);
    return 0;
}

#ifdef REPLAY_MAIN

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Values that break size and address arithmetic. */
static uint32_t nasty(uint64_t ramsz)
{
    static const uint32_t v[] = { 0, 1, 0xffffffffu, 0x7fffffffu, 0x80000000u, 0xfffff000u,
                                  0xa0000, 0x9ffff, 0x100000, 0xfff, 0x1000, 0xffffu };
    switch (rnd() % 4) {
    case 0: return (uint32_t)ramsz - (rnd() % 3);
    case 1: return (uint32_t)ramsz + (rnd() % 0x3000) - 0x1000;
    case 2: return rnd();
    default: return v[rnd() % (sizeof v / sizeof v[0])];
    }
}

/* One generated input: a well-formed image of one of the three kinds, some fields
   broken, maybe truncated, with an initrd or modules and a command line. */
static size_t gen_input(uint8_t *in, size_t cap)
{
    static uint8_t img[1 << 16];
    uint8_t code[16];
    size_t cn, n;
    unsigned kind = rnd() % 3;
    uint8_t flags = (uint8_t)(rnd() & 0xfe) | (kind == 2);
    uint8_t ramb = (uint8_t)(rnd() % 8 ? rnd() % 25 : 0xff);
    uint64_t ramsz = ramb == 0xff ? 1u << 20 : (2u << 20) + ramb * (256u << 10);
    /* High, from 640 KiB on, or low (where the loader's area has to move). */
    uint32_t load = rnd() % 2   ? 0x100000
                    : rnd() % 2 ? 0xa0000 + (rnd() % 0x1000) * 0x1000
                                : 0x1000 + (rnd() % 0xa0) * 0x1000;
    if (kind == 0) {
        cn = bg_code_exit(code, 0);
        n = bg_elf(img, sizeof img, load, code, cn, rnd() % 0x10000);
    } else if (kind == 1) {
        cn = bg_code_exit_mods(code);
        n = bg_kludge(img, sizeof img, load, code, cn, rnd() % 2 ? rnd() % 0x10000 : 0);
    } else {
        cn = bg_code_exit_initrd(code);
        n = bg_bzimage(img, sizeof img, code, cn, rnd() % 2 ? rnd() % (8u << 20) : 0x200000);
    }
    /* Break a few 32-bit fields of the headers, or bytes anywhere in the first 0x300. */
    static const uint16_t elf_fields[] = { 24, 28, 32, 42, 44, 0x34, 0x38, 0x3c, 0x40, 0x44,
                                           0x48, 0x54, 0x58, 0x5c, 0x60, 0x64, BG_ELF_MBHDR + 4,
                                           BG_ELF_MBHDR + 8 };
    static const uint16_t kl_fields[] = { 4, 8, 12, 16, 20, 24, 28 };
    static const uint16_t bz_fields[] = { 0x1f0, 0x1f4, 0x200, 0x206, 0x210, 0x214, 0x218,
                                          0x22c, 0x238, 0x258, 0x25c, 0x260 };
    unsigned k = rnd() % 4;
    for (unsigned i = 0; i < k; i++) {
        uint32_t at;
        if (kind == 0)
            at = elf_fields[rnd() % (sizeof elf_fields / sizeof elf_fields[0])];
        else if (kind == 1)
            at = kl_fields[rnd() % (sizeof kl_fields / sizeof kl_fields[0])];
        else
            at = bz_fields[rnd() % (sizeof bz_fields / sizeof bz_fields[0])];
        if (rnd() % 4 == 0)
            img[(at + rnd() % 4) % n] = (uint8_t)rnd();
        else if (at + 4 <= n)
            bg_w32(img + at, nasty(ramsz));
    }
    if (rnd() % 5 == 0)
        n = rnd() % (n + 1); /* truncated */
    size_t o = 0;
    in[o++] = flags;
    in[o++] = ramb;
    uint16_t padw = (uint16_t)(rnd() % 4 ? rnd() % 2048 : rnd()); /* mostly small: fast */
    in[o++] = (uint8_t)padw;
    in[o++] = (uint8_t)(padw >> 8);
    if (n > cap - 64)
        n = cap - 64;
    in[o++] = (uint8_t)n;
    in[o++] = (uint8_t)(n >> 8);
    memcpy(in + o, img, n);
    o += n;
    unsigned chunks = 1 + ((flags >> 2) & 3);
    for (unsigned c = 0; c < chunks && o + 20 < cap; c++) {
        size_t l = rnd() % 16;
        in[o++] = (uint8_t)l;
        in[o++] = 0;
        for (size_t j = 0; j < l; j++)
            in[o++] = (uint8_t)rnd();
    }
    const char *cl = "console=ttyS0 quiet";
    size_t cll = strlen(cl);
    if (o + cll < cap) {
        memcpy(in + o, cl, cll);
        o += cll;
    }
    return o;
}

/* fuzz_loaders_replay --seeds DIR N: N generated inputs as files, a seed corpus. */
static int write_seeds(const char *dir, unsigned n)
{
    static uint8_t buf[1 << 17];
    rng_state = 0x9e3779b97f4a7c15ull;
    for (unsigned i = 0; i < n; i++) {
        size_t len = gen_input(buf, sizeof buf);
        char name[4096];
        snprintf(name, sizeof name, "%s/seed-%05u", dir, i);
        FILE *f = fopen(name, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
            perror(name);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--seeds"))
        return write_seeds(argv[2], (unsigned)strtoul(argv[3], NULL, 0));
    unsigned files = 0, gens = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 20000;
    static uint8_t buf[1 << 17];
    if (argc > 1) {
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
            fprintf(stderr, "fuzz_loaders_replay: %s: cannot open the corpus\n", argv[1]);
            return 1;
        }
        uint8_t hdr[4];
        while (fread(hdr, 1, 4, f) == 4) {
            uint32_t n = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24;
            if (n > sizeof buf || fread(buf, 1, n, f) != n) {
                fprintf(stderr, "fuzz_loaders_replay: %s: corrupt record\n", argv[1]);
                return 1;
            }
            LLVMFuzzerTestOneInput(buf, n);
            files++;
        }
        fclose(f);
    }
    rng_state = 0x2545f4914f6cdd1dull;
    unsigned randoms = 0;
    for (unsigned i = 0; i < gens; i++) {
        size_t n;
        if (i % 8 == 7) { /* plain random bytes, now and then */
            n = 4 + rnd() % 2048;
            for (size_t k = 0; k < n; k++)
                buf[k] = (uint8_t)rnd();
            randoms++;
        } else {
            n = gen_input(buf, sizeof buf);
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("loader fuzz replay: %u corpus inputs, %u generated (%u of them random bytes), "
           "no fault; multiboot %u loaded %u refused, Linux %u loaded %u refused\n", files, gens,
           randoms, outcomes[0][1], outcomes[0][0], outcomes[1][1], outcomes[1][0]);
    return 0;
}
#endif
