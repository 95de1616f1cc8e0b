/*
 * bench_translate - translation speed over real code: the .text of a 32-bit ELF
 * (default /usr/lib32/libc.so.6, Debian's libc6-i386), translated block after block
 * with the public translate-only API, no listing.  Five repetitions; prints the median
 * guest instructions per second, blocks per second and host bytes per guest byte, and
 * appends a CSV line to bench/results/translate.csv (date, CPU, figures).
 *
 *   bench_translate [ELF] [CSV]
 */
#define _GNU_SOURCE
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xbt/xbt.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *p = strchr(line, ':');
            if (p) {
                snprintf(buf, n, "%s", p + 2);
                buf[strcspn(buf, "\n")] = 0;
            }
            break;
        }
    if (f)
        fclose(f);
    for (char *p = buf; *p; p++)
        if (*p == ',')
            *p = ' ';
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/usr/lib32/libc.so.6";
    const char *csv = argc > 2 ? argv[2] : NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_translate: %s: cannot open (install libc6-i386)\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *img = malloc((size_t)len);
    if (!img || fread(img, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "bench_translate: cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    const Elf32_Ehdr *eh = (const Elf32_Ehdr *)img;
    if ((size_t)len < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
        eh->e_ident[EI_CLASS] != ELFCLASS32 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf32_Shdr) > (size_t)len) {
        fprintf(stderr, "bench_translate: %s is not a usable ELF32 file\n", path);
        return 1;
    }
    const Elf32_Shdr *sh = (const Elf32_Shdr *)(img + eh->e_shoff);
    const char *names = (const char *)img + sh[eh->e_shstrndx].sh_offset;
    const Elf32_Shdr *text = NULL;
    for (int i = 0; i < eh->e_shnum; i++)
        if (!strcmp(names + sh[i].sh_name, ".text"))
            text = &sh[i];
    if (!text || text->sh_offset + text->sh_size > (size_t)len) {
        fprintf(stderr, "bench_translate: no .text in %s\n", path);
        return 1;
    }
    const uint8_t *code = img + text->sh_offset;
    size_t size = text->sh_size;

    enum { REPS = 5 };
    double secs[REPS];
    uint64_t insns = 0, blocks = 0, host = 0, callouts = 0;
    for (int rep = 0; rep < REPS; rep++) {
        xbt_translate_opts o = XBT_TRANSLATE_OPTS_INIT;
        o.want_listing = 0;
        insns = blocks = host = callouts = 0;
        double t0 = now();
        size_t off = 0;
        while (off < size) {
            xbt_translation *t;
            xbt_status s = xbt_translate(code + off, size - off, text->sh_addr + (uint32_t)off, &o, &t);
            if (s != XBT_OK) {
                xbt_translation_free(t);
                break;
            }
            insns += t->n_insns;
            blocks++;
            host += t->code_len;
            callouts += t->n_callouts;
            off += t->guest_len;
            xbt_translation_free(t);
        }
        secs[rep] = now() - t0;
    }
    qsort(secs, REPS, sizeof secs[0], cmp);
    double med = secs[REPS / 2];
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("translation speed over %s .text (%zu bytes), median of %d runs:\n", path, size, REPS);
    printf("  %llu guest instructions in %llu blocks, %.3f s\n", (unsigned long long)insns,
           (unsigned long long)blocks, med);
    printf("  %.2f M guest instructions/s, %.0f blocks/s\n", (double)insns / med / 1e6,
           (double)blocks / med);
    printf("  %.2f host bytes per guest byte, %llu callout sites\n", (double)host / (double)size,
           (unsigned long long)callouts);
    printf("  cpu: %s\n", cpu);
    if (csv) {
        FILE *o = fopen(csv, "a");
        if (o) {
            time_t tt = time(NULL);
            char date[32];
            strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
            fprintf(o, "%s,%s,%s,%zu,%llu,%llu,%.4f,%.0f,%.3f,%llu\n", date, cpu, path, size,
                    (unsigned long long)insns, (unsigned long long)blocks, med,
                    (double)insns / med, (double)host / (double)size,
                    (unsigned long long)callouts);
            fclose(o);
        }
    }
    free(img);
    return 0;
}
