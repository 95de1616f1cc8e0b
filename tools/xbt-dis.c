/*
 * xbt-dis - the rewrite listing tool: guest bytes in, for each guest instruction its
 * class and the host instructions it became.  Uses the public API only.
 *
 *   xbt-dis [options] -x "8b 44 24 04 c3"     hex bytes on the command line
 *   xbt-dis [options] -f code.bin             a flat binary
 *   xbt-dis [options] -e prog.elf [-s .text]  an ELF32 section (default .text)
 * options:
 *   -a ADDR    guest address of the first byte (default 0x1000, or the section's)
 *   -c 0|3     guest CPL (default 0)
 *   -d         for the D-window: guest addresses as host addresses, no GS (-u: the same,
 *              its old name)
 *   -k         user code for the U-window below GS's K-window base (XBT_WINDOW_UK: how
 *              xbt runs translated user code where GS moves only by a system call)
 *   -m MASK    nonzero segment bases (bit 0 ES, 1 CS, 2 SS, 3 DS)
 *   -n N       at most N guest instructions per block
 *   -l LEN     translate at most LEN bytes of the input
 *   -t         as if CR0.TS were set (x87/SSE become #NM callouts)
 *   -L MASK    segments with a limit below 4 GiB (bit 0 ES .. bit 5 GS): checked
 *   -S         as if CR4.OSFXSR were clear (SSE is #UD)
 *   -16        16-bit code and stack (real mode, CS.D and SS.B clear)
 *   -q         summary only (translation statistics, no listing)
 * Blocks are translated one after the other, each starting where the last ended
 * (a linear sweep), so a whole section is listed.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xbt/xbt.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: xbt-dis [-a addr] [-c cpl] [-d|-k] [-t] [-S] [-16] [-m mask] [-L mask] [-n insns] [-l len] [-q]\n"
            "               (-x HEX | -f FILE | -e ELF [-s SECTION])\n");
    exit(2);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "xbt-dis: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

static uint8_t *parse_hex(const char *s, size_t *len)
{
    uint8_t *buf = malloc(strlen(s) / 2 + 1);
    size_t n = 0;
    int nib = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9') v = *s - '0';
        else if (*s >= 'a' && *s <= 'f') v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F') v = *s - 'A' + 10;
        else if (*s == ' ' || *s == ',' || *s == ':' || *s == '\n' || *s == '\t') continue;
        else {
            fprintf(stderr, "xbt-dis: bad hex digit '%c'\n", *s);
            free(buf);
            return NULL;
        }
        if (nib < 0)
            nib = v;
        else
            buf[n++] = (uint8_t)(nib << 4 | v), nib = -1;
    }
    if (nib >= 0) {
        fprintf(stderr, "xbt-dis: odd number of hex digits\n");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Extracts section `name` of an ELF32 x86 file; sets *addr to its address. */
static uint8_t *elf_section(const uint8_t *img, size_t len, const char *name, size_t *out_len,
                            uint32_t *addr)
{
    if (len < sizeof(Elf32_Ehdr) || memcmp(img, ELFMAG, SELFMAG) != 0) {
        fprintf(stderr, "xbt-dis: not an ELF file\n");
        return NULL;
    }
    const Elf32_Ehdr *eh = (const Elf32_Ehdr *)img;
    if (eh->e_ident[EI_CLASS] != ELFCLASS32 || eh->e_machine != EM_386) {
        fprintf(stderr, "xbt-dis: not a 32-bit x86 ELF file\n");
        return NULL;
    }
    if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf32_Shdr) ||
        eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf32_Shdr) > len ||
        eh->e_shstrndx >= eh->e_shnum) {
        fprintf(stderr, "xbt-dis: malformed section headers\n");
        return NULL;
    }
    const Elf32_Shdr *sh = (const Elf32_Shdr *)(img + eh->e_shoff);
    const Elf32_Shdr *strs = &sh[eh->e_shstrndx];
    if (strs->sh_offset + (size_t)strs->sh_size > len) {
        fprintf(stderr, "xbt-dis: malformed string table\n");
        return NULL;
    }
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_name >= strs->sh_size)
            continue;
        const char *n = (const char *)img + strs->sh_offset + sh[i].sh_name;
        if (strnlen(n, strs->sh_size - sh[i].sh_name) == strs->sh_size - sh[i].sh_name)
            continue;
        if (strcmp(n, name) != 0)
            continue;
        if (sh[i].sh_type == SHT_NOBITS || sh[i].sh_offset + (size_t)sh[i].sh_size > len) {
            fprintf(stderr, "xbt-dis: section %s has no bytes in the file\n", name);
            return NULL;
        }
        uint8_t *buf = malloc(sh[i].sh_size ? sh[i].sh_size : 1);
        memcpy(buf, img + sh[i].sh_offset, sh[i].sh_size);
        *out_len = sh[i].sh_size;
        *addr = sh[i].sh_addr;
        return buf;
    }
    fprintf(stderr, "xbt-dis: no section %s\n", name);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *hex = NULL, *file = NULL, *elf = NULL, *section = ".text";
    xbt_translate_opts o = XBT_TRANSLATE_OPTS_INIT;
    uint32_t addr = 0x1000;
    int have_addr = 0, quiet = 0;
    size_t limit = (size_t)-1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-x") && v) hex = v, i++;
        else if (!strcmp(a, "-f") && v) file = v, i++;
        else if (!strcmp(a, "-e") && v) elf = v, i++;
        else if (!strcmp(a, "-s") && v) section = v, i++;
        else if (!strcmp(a, "-a") && v) addr = (uint32_t)strtoul(v, NULL, 0), have_addr = 1, i++;
        else if (!strcmp(a, "-c") && v) o.cpl = (uint32_t)strtoul(v, NULL, 0), i++;
        else if (!strcmp(a, "-m") && v) o.segbase_mask = (uint32_t)strtoul(v, NULL, 0), i++;
        else if (!strcmp(a, "-n") && v) o.max_insns = (uint32_t)strtoul(v, NULL, 0), i++;
        else if (!strcmp(a, "-l") && v) limit = strtoul(v, NULL, 0), i++;
        else if (!strcmp(a, "-d") || !strcmp(a, "-u")) o.window = XBT_WINDOW_D;
        else if (!strcmp(a, "-k")) o.window = XBT_WINDOW_UK;
        else if (!strcmp(a, "-t")) o.flags |= XBT_TRANSLATE_FPU_NM;
        else if (!strcmp(a, "-L") && v) o.seglimit_mask = (uint32_t)strtoul(v, NULL, 0), i++;
        else if (!strcmp(a, "-S")) o.flags |= XBT_TRANSLATE_NO_SSE;
        else if (!strcmp(a, "-16")) o.flags |= XBT_TRANSLATE_CODE16 | XBT_TRANSLATE_STACK16;
        else if (!strcmp(a, "-q")) quiet = 1;
        else usage();
    }
    if (!!hex + !!file + !!elf != 1)
        usage();
    size_t len = 0;
    uint8_t *bytes = NULL;
    if (hex)
        bytes = parse_hex(hex, &len);
    else if (file)
        bytes = read_file(file, &len);
    else {
        size_t ilen;
        uint8_t *img = read_file(elf, &ilen);
        uint32_t saddr = 0;
        if (img)
            bytes = elf_section(img, ilen, section, &len, &saddr);
        free(img);
        if (!have_addr)
            addr = saddr;
    }
    if (!bytes)
        return 1;
    if (len > limit)
        len = limit;
    o.want_listing = !quiet;

    size_t off = 0;
    unsigned long blocks = 0, insns = 0, host = 0, callouts = 0, faults = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = 0;
    while (off < len) {
        xbt_translation *t;
        xbt_status s = xbt_translate(bytes + off, len - off, addr + (uint32_t)off, &o, &t);
        if (s == XBT_E_FAULT) {
            /* The input ends inside an instruction. */
            if (!quiet)
                printf("%08x  (truncated instruction at the end of the input)\n",
                       addr + (uint32_t)off);
            faults++;
            xbt_translation_free(t);
            break;
        }
        if (s != XBT_OK) {
            fprintf(stderr, "xbt-dis: at %08x: %s: %s\n", addr + (uint32_t)off, xbt_strerror(s),
                    t ? t->error : "");
            xbt_translation_free(t);
            rc = 1;
            break;
        }
        if (!quiet)
            fputs(t->listing, stdout);
        blocks++;
        insns += t->n_insns;
        host += t->code_len;
        callouts += t->n_callouts;
        off += t->guest_len;
        xbt_translation_free(t);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (quiet)
        printf("%zu guest bytes, %lu blocks, %lu insns, %lu host bytes (%.2f per guest byte), "
               "%lu callouts, %.3f s\n",
               off, blocks, insns, host, off ? (double)host / (double)off : 0.0, callouts, secs);
    free(bytes);
    return rc;
}
