/*
 * vmm_malformed.c - xbt-run against malformed kernels, initrds, modules and options.
 *
 *   vmm_malformed XBT_RUN
 *
 * Each case is a command line over files generated here (tests/fuzz/bootgen.c makes
 * well-formed images, which the cases break one field at a time; symbol files for
 * --perf-map's names are broken in their own ways) and says what must
 * happen: a refusal, with exactly one line on stderr ("xbt-run: ...") and exit status
 * 64 (options) or 66 (files and images); or a boot, whose guest reports through
 * isa-debug-exit what the loader gave it (the exit status), with nothing on stderr.
 * No case may end by a signal or hang.  State files for --restore: one saved here (a
 * counting guest stopped by SIGUSR1 with --save, also on three vCPUs), which restores
 * and finishes, then truncated and damaged in its header, the library's stream and the
 * devices' sections (their checksum made right again, so that each device's checks see
 * the damage).  Prints one line per case (with what xbt-run printed); fails if any case
 * differs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bootgen.h"

#define USAGE 64
#define NOIMAGE 66
#define CASE_SECONDS 30

static const char *xbt_run;
static bool expect_note; /* a boot that must say one "xbt-run: note: " line */
static int accept_boot;  /* a refusal case that may also boot silently to this status */
static char dir[256];
static int verbose = 1, failures, cases, refusals, boots;

/* ---- files ----------------------------------------------------------------------- */

/* Strings made for the cases live until cleanup() (a LeakSanitizer build checks). */
static char *owned[1024];
static unsigned n_owned;

static char *own(char *p)
{
    if (!p || n_owned == sizeof owned / sizeof owned[0])
        abort();
    return owned[n_owned++] = p;
}

static char *path(const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    return own(p);
}

static char *wfile(const char *name, const uint8_t *b, size_t n)
{
    char *p = path(name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(b, 1, n, f) != n) || fclose(f) != 0) {
        perror(p);
        exit(2);
    }
    return p;
}

/* A sparse file of `size` bytes whose first byte is `first`. */
static char *sparse(const char *name, uint64_t size, uint8_t first)
{
    char *p = wfile(name, &first, 1);
    if (truncate(p, (off_t)size) != 0) {
        perror(p);
        exit(2);
    }
    return p;
}

/* ---- one case ------------------------------------------------------------------- */

static int translated_runs; /* runs whose user code the host could not run directly */

/* On a host that runs no 32-bit code every boot in xbt-run's default (adaptive) user
   mode says so in one note (src/runtime/compat32.c); that note is about the host, not
   the input, so it is taken out of err[0..n) (counted, reported at the end) before the
   checks.  Returns the new length. */
static size_t drop_user_mode_note(char *err, size_t n)
{
    static const char note[] = "xbt-run: note: guest user code runs translated (strict mode): ";
    char *at = strstr(err, note);
    if (!at || (at != err && at[-1] != '\n'))
        return n;
    char *end = strchr(at, '\n');
    end = end ? end + 1 : err + n;
    memmove(at, end, (size_t)(err + n - end) + 1);
    translated_runs++;
    return n - (size_t)(end - at);
}

/* Runs xbt-run with args (NULL-terminated) and checks the outcome: want is the exit
   status; a refusal (64 or 66) must print exactly one "xbt-run: " line, a boot none. */
static void run_case(const char *name, int want, const char *const *args)
{
    char *argv[80];
    int argc = 0;
    argv[argc++] = (char *)xbt_run;
    for (int i = 0; args[i] && argc < 79; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        abort();
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(pfd[1], 2);
        execv(xbt_run, argv);
        _exit(127);
    }
    close(pfd[1]);
    char err[8192];
    size_t n = 0;
    time_t start = time(NULL);
    bool hung = false;
    for (;;) {
        struct pollfd p = { pfd[0], POLLIN, 0 };
        int r = poll(&p, 1, 1000);
        if (r > 0) {
            ssize_t k = read(pfd[0], err + n, sizeof err - 1 - n);
            if (k <= 0)
                break;
            n += (size_t)k;
            if (n == sizeof err - 1)
                break;
        }
        if (time(NULL) - start > CASE_SECONDS) {
            hung = true;
            kill(pid, SIGKILL); /* our own child */
            break;
        }
    }
    err[n] = 0;
    n = drop_user_mode_note(err, n);
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    cases++;
    char why[256] = "";
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += err[i] == '\n';
    bool refusal = want == USAGE || want == NOIMAGE;
    if (accept_boot && !hung && WIFEXITED(st) && WEXITSTATUS(st) == accept_boot && !n) {
        want = accept_boot; /* damage the restore did not need to see */
        refusal = false;
    }
    if (hung)
        snprintf(why, sizeof why, "no exit after %d s", CASE_SECONDS);
    else if (WIFSIGNALED(st))
        snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(st));
    else if (WEXITSTATUS(st) != want)
        snprintf(why, sizeof why, "exit status %d, expected %d", WEXITSTATUS(st), want);
    else if (refusal && (lines != 1 || strncmp(err, "xbt-run: ", 9) || err[n - 1] != '\n'))
        snprintf(why, sizeof why, "%d lines on stderr, expected one \"xbt-run: \" line", lines);
    else if (!refusal && expect_note && (lines != 1 || strncmp(err, "xbt-run: note: ", 15)))
        snprintf(why, sizeof why, "%d lines on stderr, expected one \"xbt-run: note: \" line",
                 lines);
    else if (!refusal && !expect_note && n)
        snprintf(why, sizeof why, "a boot that printed on stderr");
    if (*why) {
        failures++;
        printf("FAIL %-44s %s\n", name, why);
        printf("     stderr: %s%s", n ? err : "(nothing)\n", n && err[n - 1] != '\n' ? "\n" : "");
    } else {
        refusal ? refusals++ : boots++;
        if (verbose)
            printf("ok   %-44s %d  %s", name, want, n ? err : "\n");
    }
}

#define RUN(name, want, ...) run_case(name, want, (const char *const[]){ __VA_ARGS__, NULL })

/* ---- the images ------------------------------------------------------------------ */

static uint8_t img[1 << 16];

static char *elf_file(const char *name, uint32_t load, uint8_t value, uint32_t bss,
                      void (*edit)(uint8_t *, size_t *))
{
    uint8_t code[16];
    size_t cn = bg_code_exit(code, value);
    size_t n = bg_elf(img, sizeof img, load, code, cn, bss);
    if (edit)
        edit(img, &n);
    return wfile(name, img, n);
}

static char *kludge_file(const char *name, uint32_t load, uint32_t bss, bool mods,
                         void (*edit)(uint8_t *, size_t *))
{
    uint8_t code[16];
    size_t cn = mods ? bg_code_exit_mods(code) : bg_code_exit(code, 0x21);
    size_t n = bg_kludge(img, sizeof img, load, code, cn, bss);
    if (edit)
        edit(img, &n);
    return wfile(name, img, n);
}

static char *bz_file(const char *name, uint32_t init_size, void (*edit)(uint8_t *, size_t *))
{
    uint8_t code[16];
    size_t cn = bg_code_exit_initrd(code);
    size_t n = bg_bzimage(img, sizeof img, code, cn, init_size);
    if (edit)
        edit(img, &n);
    return wfile(name, img, n);
}

/* Edits: each breaks one thing. */
#define SYMS_LINE_CASE 10000
/* Section headers said to be past the end of the file (the loader does not need them). */
static void sh_broken(uint8_t *b, size_t *n)
{
    (void)n;
    bg_w32(b + 32, 0x7fffff00);  /* e_shoff */
    bg_w16(b + 46, 40);          /* e_shentsize */
    bg_w16(b + 48, 3);           /* e_shnum */
}
#define PH(off) (img + BG_ELF_PHOFF + (off))
static void e_nomagic(uint8_t *b, size_t *n) { (void)n; b[1] = 'X'; }
static void e_class64(uint8_t *b, size_t *n) { (void)n; b[4] = 2; }
static void e_bigend(uint8_t *b, size_t *n) { (void)n; b[5] = 2; }
static void e_x8664(uint8_t *b, size_t *n) { (void)n; bg_w16(b + 18, 62); }
static void e_dyn(uint8_t *b, size_t *n) { (void)n; bg_w16(b + 16, 3); }
static void e_phent0(uint8_t *b, size_t *n) { (void)n; bg_w16(b + 42, 0); }
static void e_phnum0(uint8_t *b, size_t *n) { (void)n; bg_w16(b + 44, 0); }
static void e_phoff_far(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 28, 0x7fffff00); }
static void e_phnum_big(uint8_t *b, size_t *n) { (void)n; bg_w16(b + 44, 0xffff); }
static void e_phoff_wrap(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 28, 0xffffffe0u); }
static void p_off_far(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(4), 0x10000000); }
static void p_off_wrap(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(4), 0xfffffff0u); }
static void p_filesz_big(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(16), 0x100); bg_w32(PH(20), 0x100); }
static void p_file_gt_mem(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(20), 2); }
static void p_paddr0(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(12), 0); }
static void p_paddr_low(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(12), 0xff0); }
static void p_paddr_top(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(12), 0xfffff000u); bg_w32(PH(20), 0x2000); }
static void p_paddr_wrap(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(12), 0xfffffffcu); }
static void p_memsz_huge(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(20), 0xffffffffu); }
static void p_ram_end(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(12), (64u << 20) - 4); }
static void p_noload(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(0), 4); }
static void p_memsz0(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(PH(20), 0); bg_w32(PH(16), 0); }
static void e_trunc70(uint8_t *b, size_t *n) { (void)b; *n = BG_ELF_MBHDR + 12; }
static void e_trunc_code(uint8_t *b, size_t *n) { (void)b; *n = BG_ELF_CODE + 2; }
static void mb_badsum(uint8_t *b, size_t *n) { (void)n; b[BG_ELF_MBHDR + 8] ^= 1; }
static void mb_flags_bit3(uint8_t *b, size_t *n)
{
    (void)n;
    bg_w32(b + BG_ELF_MBHDR + 4, 0xb);
    bg_w32(b + BG_ELF_MBHDR + 8, 0u - 0x1BADB002u - 0xb);
}
/* A second segment overlapping the first in memory. */
static void p_overlap(uint8_t *b, size_t *n)
{
    bg_w16(b + 44, 2);
    memcpy(PH(32), PH(0), 32);
    bg_w32(PH(32 + 12), 0x100004);
    bg_w32(PH(32 + 8), 0x100004);
    (void)n;
}
/* Two disjoint segments, the entry as a virtual address of the second (mapped high). */
static void p_two_high(uint8_t *b, size_t *n)
{
    bg_w16(b + 44, 2);
    memcpy(PH(32), PH(0), 32);
    bg_w32(PH(32 + 8), 0xc0200000u);  /* p_vaddr */
    bg_w32(PH(32 + 12), 0x200000);    /* p_paddr */
    bg_w32(b + 24, 0xc0200000u);      /* e_entry: virtual */
    (void)n;
}
/* The header moved to the end of the first 8 KiB, or just past it. */
static void mb_at(uint8_t *b, size_t *n, size_t at)
{
    uint8_t h[12];
    memcpy(h, b + BG_ELF_MBHDR, 12);
    memset(b + BG_ELF_MBHDR, 0, 12);
    if (*n < at + 12) {
        memset(b + *n, 0, at + 12 - *n);
        *n = at + 12;
    }
    memcpy(b + at, h, 12);
}
static void mb_at_8180(uint8_t *b, size_t *n) { mb_at(b, n, 8180); }
static void mb_at_8184(uint8_t *b, size_t *n) { mb_at(b, n, 8184); }
static void mb_at_8192(uint8_t *b, size_t *n) { mb_at(b, n, 8192); }
static void mb_unaligned(uint8_t *b, size_t *n) { mb_at(b, n, BG_ELF_MBHDR + 2); }

#define KL(off) (img + (off))
static void k_hdr_below(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(12), 0xfff00); }
static void k_hdr_far(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(12), 0x100100); }
static void k_end_below(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(20), 0xfff00); }
static void k_end_far(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(20), 0x180000); }
static void k_end_wrap(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(20), 0xffffffffu); }
static void k_end0(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(20), 0); }
static void k_bss_below(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(24), 0x100010); }
static void k_bss_huge(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(24), 0xfffffff0u); }
static void k_bss_ram(uint8_t *b, size_t *n) { (void)b; (void)n; bg_w32(KL(24), (64u << 20) + 1); }
static void k_trunc20(uint8_t *b, size_t *n) { (void)b; *n = 20; }
static void k_load_low(uint8_t *b, size_t *n)
{
    (void)n;
    bg_w32(b + 12, 0x800);
    bg_w32(b + 16, 0x800);
    bg_w32(b + 20, 0);
    bg_w32(b + 24, 0);
}
static void k_load_top(uint8_t *b, size_t *n)
{
    (void)n;
    bg_w32(b + 12, 0xfffffff0u);
    bg_w32(b + 16, 0xfffffff0u);
    bg_w32(b + 20, 0);
    bg_w32(b + 24, 0);
}

static void z_ver205(uint8_t *b, size_t *n) { (void)n; bg_w16(b + 0x206, 0x0205); }
static void z_jump0(uint8_t *b, size_t *n) { (void)n; b[0x201] = 0; }
static void z_jump_ff(uint8_t *b, size_t *n) { (void)n; b[0x201] = 0xff; }
static void z_sects_big(uint8_t *b, size_t *n) { (void)n; b[0x1f1] = 200; }
static void z_syssize_big(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x1f4, 0x10000000); }
static void z_syssize0(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x1f4, 0); }
static void z_not_high(uint8_t *b, size_t *n) { (void)n; b[0x211] = 0; }
static void z_init_huge(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x260, 0xffffffffu); }
static void z_pref_huge(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x25c, 0xffffffffu); }
static void z_pref_ram(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x258, 64u << 20); }
static void z_rdmax_tiny(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x22c, 0x1000); }
static void z_rdmax_0(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x22c, 0); }
static void z_rdmax_4m(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x22c, 0x3fffff); }
static void z_cmdmax_10(uint8_t *b, size_t *n) { (void)n; bg_w32(b + 0x238, 10); }
static void z_cut(uint8_t *b, size_t *n, size_t at) { (void)b; *n = at; }
static void z_cut_206(uint8_t *b, size_t *n) { z_cut(b, n, 0x206); }
static void z_cut_207(uint8_t *b, size_t *n) { z_cut(b, n, 0x207); }
static void z_cut_210(uint8_t *b, size_t *n) { z_cut(b, n, 0x210); }
static void z_cut_230(uint8_t *b, size_t *n) { z_cut(b, n, 0x230); }
static void z_cut_263(uint8_t *b, size_t *n) { z_cut(b, n, 0x263); }
static void z_cut_pm(uint8_t *b, size_t *n) { z_cut(b, n, BG_BZ_PM); }
static void z_cut_pm1(uint8_t *b, size_t *n) { z_cut(b, n, BG_BZ_PM + 1); }
/* Protocol 2.06: no init_size, no pref_address; the header ends after cmdline_size. */
static void z_v206(uint8_t *b, size_t *n)
{
    bg_w16(b + 0x206, 0x0206);
    b[0x201] = 0x3a; /* ends at 0x23c */
    memset(b + 0x23c, 0, 0x30);
    (void)n;
}

/* ---- the cases ------------------------------------------------------------------ */

/* Each value of vals given to option `opt` (with the kernel k) is refused as a usage
   error. */
static void bad_values(const char *opt, const char *const *vals, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s '%s'", opt, vals[i]);
        RUN(name, USAGE, opt, vals[i], k);
    }
}

static void option_cases(const char *k)
{
    static const char *const bad_mem[] = { "0", "1", "3073", "-1", "12abc", "", " 8", "0x",
                                           "99999999999999999999999", "8.5", "+8", "1e2" };
    bad_values("--mem", bad_mem, sizeof bad_mem / sizeof *bad_mem, k);
    RUN("--mem twice", USAGE, "--mem", "64", "--mem", "64", k);
    static const char *const bad_time[] = { "inf", "nan", "-1", "0", "1e10", "1x", "", "0x10",
                                            " 5", "infinity", "1e-400", "+5", "." };
    bad_values("--timeout", bad_time, sizeof bad_time / sizeof *bad_time, k);
    RUN("--timeout twice", USAGE, "--timeout", "5", "--timeout", "5", k);
    static const char *const bad_tc[] = { "0", "-1", "inf", "nan", "2000", "0.001", "abc", "" };
    bad_values("--tcache", bad_tc, sizeof bad_tc / sizeof *bad_tc, k);
    RUN("--tcache twice", USAGE, "--tcache", "8", "--tcache", "8", k);
    static const char *const bad_gdb[] = { "0", "-1", "65536", "70000", "abc", "", "1 2",
                                           "0x", "99999999999999999999" };
    bad_values("--gdb", bad_gdb, sizeof bad_gdb / sizeof *bad_gdb, k);
    RUN("--gdb twice", USAGE, "--gdb", "5", "--gdb", "6", k);
    static const char *const bad_smp[] = { "0", "9", "x", "", "-1", "2x", " 2", "0x9", "1.5",
                                           "cpus=2", "99999999999999999999" };
    bad_values("--smp", bad_smp, sizeof bad_smp / sizeof *bad_smp, k);
    RUN("--smp twice", USAGE, "--smp", "1", "--smp", "1", k);
    static const char *const bad_cpu[] = { "", "qemu64", "max,", "max,smap", "max,+", "-smap",
                                           "max,+avx", "default,+smap,", "max,,+smep",
                                           "MAX", "max ,+smep", "max,+smap\n" };
    bad_values("--cpu", bad_cpu, sizeof bad_cpu / sizeof *bad_cpu, k);
    RUN("--cpu twice", USAGE, "--cpu", "max", "--cpu", "default", k);
    RUN("--smp 2 with --restore", USAGE, "--smp", "0x2", "--restore", "s");
    static const char *const bad_th[] = { "0", "-5", "abc", "4294967296", "" };
    for (size_t i = 0; i < sizeof bad_th / sizeof *bad_th; i++) {
        char name[64];
        snprintf(name, sizeof name, "--trace-threshold '%s'", bad_th[i]);
        RUN(name, USAGE, "--traces", "--trace-threshold", bad_th[i], k);
    }
    RUN("--trace-threshold without --traces", USAGE, "--trace-threshold", "10", k);
    RUN("--trace-threshold twice", USAGE, "--traces", "--trace-threshold", "10",
        "--trace-threshold", "10", k);
    RUN("--traces with --no-traces", USAGE, "--no-traces", "--traces", k);
    RUN("--trace-profile with --no-traces", USAGE, "--trace-profile", "--no-traces", k);
    RUN("--user-mode fast", USAGE, "--user-mode", "fast", k);
    RUN("--user-mode ''", USAGE, "--user-mode", "", k);
    RUN("--user-mode twice", USAGE, "--user-mode", "strict", "--user-mode", "direct", k);
    RUN("unknown long option", USAGE, "--bogus", k);
    RUN("unknown short option", USAGE, "-z", k);
    RUN("missing argument", USAGE, k, "--mem");
    RUN("--append twice", USAGE, "-a", "x", "--append", "y", k);
    RUN("--initrd ''", USAGE, "--initrd", "", k);
    RUN("--initrd twice", USAGE, "--initrd", "a", "--initrd", "b", k);
    RUN("--module ''", USAGE, "--module", "", k);
    RUN("--module ' x'", USAGE, "--module", " x", k);
    const char *m17[40];
    int j = 0;
    for (int i = 0; i < 17; i++) {
        m17[j++] = "--module";
        m17[j++] = k;
    }
    m17[j++] = k;
    m17[j] = NULL;
    run_case("17 modules", USAGE, m17);
    RUN("two kernels", USAGE, k, k);
    RUN("empty kernel name", USAGE, "");
}

static void file_cases(void)
{
    RUN("missing kernel", NOIMAGE, path("nonexistent"));
    RUN("directory as kernel", NOIMAGE, dir);
    RUN("/dev/null as kernel", NOIMAGE, "/dev/null");
    RUN("/dev/zero as kernel", NOIMAGE, "/dev/zero");
    char *fifo = path("fifo");
    if (mkfifo(fifo, 0600) == 0)
        RUN("FIFO as kernel", NOIMAGE, fifo);
    RUN("empty kernel", NOIMAGE, wfile("empty", img, 0));
    static const uint8_t one = 0x02;
    RUN("1-byte kernel", NOIMAGE, wfile("one", &one, 1));
    RUN("11-byte kernel with the magic", NOIMAGE,
        wfile("eleven", (const uint8_t *)"\x02\xb0\xad\x1b\x03\x00\x00\x00\xfb\x4f\x52", 11));
    uint8_t rnd[100];
    for (int i = 0; i < 100; i++)
        rnd[i] = (uint8_t)(i * 37 + 11);
    RUN("100 random bytes", NOIMAGE, wfile("random", rnd, 100));
    memset(img, 0, 8192);
    RUN("8 KiB of zeros", NOIMAGE, wfile("zeros", img, 8192));
    RUN("kernel larger than RAM", NOIMAGE, "--mem", "16", sparse("huge", 40u << 20, 0x7f));
}

static void elf_cases(void)
{
    const uint32_t L = 0x100000;
    struct { const char *name; void (*edit)(uint8_t *, size_t *); } bad[] = {
        { "ELF: no magic", e_nomagic }, { "ELF: ELFCLASS64", e_class64 },
        { "ELF: big-endian", e_bigend }, { "ELF: x86-64", e_x8664 }, { "ELF: ET_DYN", e_dyn },
        { "ELF: e_phentsize 0", e_phent0 }, { "ELF: e_phnum 0", e_phnum0 },
        { "ELF: e_phoff beyond the file", e_phoff_far }, { "ELF: 65535 phdrs", e_phnum_big },
        { "ELF: e_phoff wraps", e_phoff_wrap }, { "ELF: p_offset beyond the file", p_off_far },
        { "ELF: p_offset + p_filesz wraps", p_off_wrap },
        { "ELF: p_filesz beyond the file", p_filesz_big },
        { "ELF: p_filesz > p_memsz", p_file_gt_mem }, { "ELF: p_paddr 0", p_paddr0 },
        { "ELF: p_paddr in the first page", p_paddr_low }, { "ELF: p_paddr at 4G-4K", p_paddr_top },
        { "ELF: p_paddr + p_memsz wraps", p_paddr_wrap }, { "ELF: p_memsz 4G-1", p_memsz_huge },
        { "ELF: segment past the end of RAM", p_ram_end }, { "ELF: no PT_LOAD", p_noload },
        { "ELF: only an empty segment", p_memsz0 }, { "ELF: overlapping segments", p_overlap },
        { "ELF: cut after the headers", e_trunc70 }, { "ELF: cut inside the code", e_trunc_code },
        { "multiboot: bad checksum", mb_badsum }, { "multiboot: flag bit 3", mb_flags_bit3 },
        { "multiboot: header at 8184", mb_at_8184 }, { "multiboot: header at 8192", mb_at_8192 },
        { "multiboot: unaligned header", mb_unaligned },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char f[32];
        snprintf(f, sizeof f, "elf%zu", i);
        RUN(bad[i].name, NOIMAGE, "--mem", "64", elf_file(f, L, 0x21, 0, bad[i].edit));
    }
    RUN("ELF: --initrd with multiboot", NOIMAGE, "--initrd", elf_file("rd", L, 0, 0, NULL),
        elf_file("elfk", L, 0x21, 0, NULL));
    /* Must boot: the guest's exit value proves it ran where the loader put it. */
    RUN("boot: ELF", 0x43, elf_file("ok1", L, 0x21, 0, NULL));
    RUN("boot: ELF at 0xa0000", 0x45, elf_file("ok2", 0xa0000, 0x22, 0, NULL));
    RUN("boot: ELF with 1 MiB of bss", 0x47, elf_file("ok3", L, 0x23, 1u << 20, NULL));
    RUN("boot: ELF, header at 8180", 0x49, elf_file("ok4", L, 0x24, 0, mb_at_8180));
    RUN("boot: ELF, entry virtual", 0x4b, elf_file("ok5", L, 0x25, 0, p_two_high));
    RUN("boot: ELF at the end of 2 MiB", 0x4d, "--mem", "2",
        elf_file("ok6", (2u << 20) - 0x1000, 0x26, 0xff0, NULL));
    /* Low kernels (kvm-unit-tests' realmode.flat is at 32 KiB): the loader's GDT and
       information move to a free gap, or the kernel is refused when none is 64 KiB. */
    RUN("boot: ELF at 32 KiB over the usual information area", 0x4f,
        elf_file("ok7", 0x8000, 0x27, 0x10000, NULL));
    RUN("boot: ELF at 4 KiB", 0x51, elf_file("ok8", 0x1000, 0x28, 0, NULL));
    RUN("ELF: low memory left without 64 KiB for the information", NOIMAGE,
        elf_file("full", 0x8000, 0x29, 0x90000, NULL));
}

static void kludge_cases(void)
{
    const uint32_t L = 0x100000;
    struct { const char *name; void (*edit)(uint8_t *, size_t *); } bad[] = {
        { "kludge: header_addr below load_addr", k_hdr_below },
        { "kludge: header_addr past its offset", k_hdr_far },
        { "kludge: load_end below load_addr", k_end_below },
        { "kludge: load_end beyond the file", k_end_far },
        { "kludge: load_end 4G-1", k_end_wrap },
        { "kludge: bss_end below load_end", k_bss_below },
        { "kludge: bss_end 4G-16", k_bss_huge }, { "kludge: bss past RAM", k_bss_ram },
        { "kludge: truncated header", k_trunc20 }, { "kludge: load at 2K", k_load_low },
        { "kludge: load at 4G-16", k_load_top },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char f[32];
        snprintf(f, sizeof f, "kl%zu", i);
        RUN(bad[i].name, NOIMAGE, "--mem", "64", kludge_file(f, L, 0, false, bad[i].edit));
    }
    RUN("boot: kludge", 0x43, kludge_file("klok1", L, 0, false, NULL));
    RUN("boot: kludge with bss", 0x43, kludge_file("klok2", L, 0x10000, false, NULL));
    RUN("boot: kludge, load_end 0", 0x43, kludge_file("klok3", L, 0, false, k_end0));
    /* Modules: the guest exits with mods_count. */
    char *k = kludge_file("klmods", L, 0, true, NULL);
    char *m1 = wfile("mod1", (const uint8_t *)"module one", 10);
    char *m0 = wfile("mod0", img, 0);
    RUN("boot: no module", 1, k);
    RUN("boot: 3 modules", 7, "--module", m1, "--module", m0, "--module", m1, k);
    const char *m16[40];
    int j = 0;
    for (int i = 0; i < 16; i++) {
        m16[j++] = "--module";
        m16[j++] = m1;
    }
    m16[j++] = k;
    m16[j] = NULL;
    run_case("boot: 16 modules", 33, m16);
    RUN("module missing", NOIMAGE, "--module", path("nonexistent"), k);
    RUN("module is a directory", NOIMAGE, "--module", dir, k);
    RUN("module larger than RAM", NOIMAGE, "--mem", "16", "--module",
        sparse("bigmod", 20u << 20, 1), k);
    char *m40 = sparse("mod40", 40u << 20, 1);
    RUN("modules beyond RAM together", NOIMAGE, "--mem", "64", "--module", m40, "--module",
        m40, k);
}

static void bz_cases(void)
{
    const uint32_t I = 0x200000;
    uint8_t rd0 = 0x5a;
    char *rd = wfile("initrd", &rd0, 1);
    char *rd_empty = wfile("initrd0", img, 0);
    struct { const char *name; void (*edit)(uint8_t *, size_t *); } bad[] = {
        { "bzImage: cut at 0x206", z_cut_206 }, { "bzImage: cut at 0x207", z_cut_207 },
        { "bzImage: cut at 0x210", z_cut_210 }, { "bzImage: cut at 0x230", z_cut_230 },
        { "bzImage: cut at 0x263", z_cut_263 }, { "bzImage: no protected-mode code", z_cut_pm },
        { "bzImage: 1 byte of code", z_cut_pm1 }, { "bzImage: protocol 2.05", z_ver205 },
        { "bzImage: header ends at 0x202", z_jump0 },
        { "bzImage: 200 setup sectors", z_sects_big }, { "bzImage: syssize too big", z_syssize_big },
        { "bzImage: LOADED_HIGH clear", z_not_high }, { "bzImage: init_size 4G-1", z_init_huge },
        { "bzImage: pref_address 2^64-ish", z_pref_huge },
        { "bzImage: pref_address at the end of RAM", z_pref_ram },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char f[32];
        snprintf(f, sizeof f, "bz%zu", i);
        RUN(bad[i].name, NOIMAGE, "--mem", "64", "--initrd", rd, bz_file(f, I, bad[i].edit));
    }
    char *bz = bz_file("bzok", I, NULL);
    RUN("bzImage: initrd larger than RAM", NOIMAGE, "--mem", "64", "--initrd",
        sparse("bigrd", 100u << 20, 0x5a), bz);
    RUN("bzImage: initrd as large as RAM", NOIMAGE, "--mem", "64", "--initrd",
        sparse("rd64", 64u << 20, 0x5a), bz);
    RUN("bzImage: initrd_addr_max 0x1000", NOIMAGE, "--mem", "64", "--initrd", rd,
        bz_file("bzmax", I, z_rdmax_tiny));
    RUN("bzImage: initrd_addr_max 0", NOIMAGE, "--mem", "64", "--initrd", rd,
        bz_file("bzmax0", I, z_rdmax_0));
    RUN("bzImage: empty initrd", NOIMAGE, "--initrd", rd_empty, bz);
    RUN("bzImage: missing initrd", NOIMAGE, "--initrd", path("nonexistent"), bz);
    RUN("bzImage: initrd is a directory", NOIMAGE, "--initrd", dir, bz);
    RUN("bzImage: kernel needs more RAM", NOIMAGE, "--mem", "2", bz_file("bzbig", 4u << 20, NULL));
    RUN("bzImage: command line over cmdline_size", NOIMAGE, "-a", "console=ttyS0 quiet",
        bz_file("bzcl", I, z_cmdmax_10));
    RUN("bzImage: --module", NOIMAGE, "--module", rd, bz);
    RUN("boot: bzImage with an initrd", 0xb5, "--initrd", rd, bz);
    /* No initrd: the stub reads the byte at address 0, the BIOS IVT's first (the low
       byte of F000:FF53, firmware.c): status (0x53 << 1) | 1. */
    RUN("boot: bzImage without an initrd", 0xa7, bz);
    RUN("boot: bzImage in 2 MiB", 0xb5, "--mem", "2", "--initrd", rd, bz_file("bz2m", 0x80000, NULL));
    RUN("boot: initrd below initrd_addr_max 4M-1", 0xb5, "--mem", "64", "--initrd", rd,
        bz_file("bz4m", I, z_rdmax_4m));
    RUN("boot: header said to end at 0x301", 0xb5, "--initrd", rd, bz_file("bzff", I, z_jump_ff));
    RUN("boot: bzImage, syssize 0", 0xb5, "--initrd", rd, bz_file("bzss0", I, z_syssize0));
    RUN("boot: bzImage, protocol 2.06", 0xb5, "--initrd", rd, bz_file("bz206", I, z_v206));
    RUN("boot: command line of cmdline_size", 0xb5, "-a", "0123456789", "--initrd", rd,
        bz_file("bzcl10", I, z_cmdmax_10));
}

static void accepted_cases(const char *k)
{
    RUN("boot: --mem 0x40", 0x43, "--mem", "0x40", k);
    RUN("boot: --timeout 1e3", 0x43, "--timeout", "1e3", k);
    RUN("boot: --smp 1", 0x43, "--smp", "1", k);
    RUN("boot: --tcache 0.004", 0x43, "--tcache", "0.004", k);
    RUN("boot: --traces --trace-threshold 0x10", 0x43, "--traces", "--trace-threshold", "0x10", k);
    RUN("boot: --user-mode strict, repeated flags", 0x43, "--user-mode", "strict", "--no-chain",
        "--no-chain", k);
    static char longline[120000];
    memset(longline, 'x', sizeof longline - 1);
    RUN("boot: a 120,000-byte command line", 0x43, "-a", longline, k);
    /* ACPI S3 and its resume (acpi_pm.c, xbt-run.c resume_s3): the FACS's waking vector
       (FACS at 0xf0200) points at a real-mode stub at 0x1000 that writes 0x42 to the
       debug-exit port; RTC_EN and the RTC alarm (every second) armed; SLP_TYP 1 with
       SLP_EN; the code spins after it.  Status (0x42 << 1) | 1 only if the vCPU woke at
       the vector in real mode. */
    static const uint8_t s3[] = {
        0xc7, 0x05, 0x0c, 0x02, 0x0f, 0x00, 0x00, 0x10, 0x00, 0x00, /* [0xf020c] = 0x1000 */
        0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0xb0, 0x42, 0xe6, 0xf4, /* mov al,0x42; out */
        0xc6, 0x05, 0x04, 0x10, 0x00, 0x00, 0xf4,                   /* hlt */
        0x66, 0xba, 0x02, 0x06, 0x66, 0xb8, 0x00, 0x04, 0x66, 0xef, /* PM1_EN = RTC_EN */
        0xb0, 0x01, 0xe6, 0x70, 0xb0, 0xc0, 0xe6, 0x71,             /* alarm: any second */
        0xb0, 0x03, 0xe6, 0x70, 0xb0, 0xc0, 0xe6, 0x71,
        0xb0, 0x05, 0xe6, 0x70, 0xb0, 0xc0, 0xe6, 0x71,
        0xb0, 0x0b, 0xe6, 0x70, 0xe4, 0x71, 0x0c, 0x20, 0x88, 0xc4, /* register B |= AIE */
        0xb0, 0x0b, 0xe6, 0x70, 0x88, 0xe0, 0xe6, 0x71,
        0x66, 0xba, 0x04, 0x06, 0x66, 0xb8, 0x00, 0x24, 0x66, 0xef, /* PM1_CNT: S3 */
        0xeb, 0xfe,
    };
    size_t sn = bg_elf(img, sizeof img, 0x100000, s3, sizeof s3, 0);
    RUN("boot: ACPI S3, resumed by the RTC alarm", 0x85, "--timeout", "20",
        wfile("s3", img, sn));
    /* With APs (waiting for start-up): they stay parked, vCPU 0 resumes. */
    RUN("boot: ACPI S3 on 3 vCPUs, resumed on vCPU 0", 0x85, "--smp", "3", "--timeout", "20",
        wfile("s3", img, sn));
    /* PM1_EN and PM1_CNT in one 32-bit OUT at 0x602: still an S3 that resumes (a port
       handler inside the run must not swallow it). */
    uint8_t s3w[sizeof s3];
    memcpy(s3w, s3, sizeof s3);
    static const uint8_t wide[] = { 0x66, 0xba, 0x02, 0x06,             /* mov dx, 0x602 */
                                    0xb8, 0x00, 0x04, 0x00, 0x24,       /* EN 0x400, CNT */
                                    0xef, 0xeb, 0xfe };                 /* out; jmp $ */
    memcpy(s3w + sizeof s3 - sizeof wide, wide, sizeof wide);
    sn = bg_elf(img, sizeof img, 0x100000, s3w, sizeof s3w, 0);
    RUN("boot: S3 entered by a 32-bit OUT at PM1_EN", 0x85, "--timeout", "20",
        wfile("s3w", img, sn));
    /* Waking vector 0: nothing to resume at, the machine resets (status 4). */
    uint8_t s3z[sizeof s3];
    memcpy(s3z, s3, sizeof s3);
    memset(s3z + 6, 0, 4);
    sn = bg_elf(img, sizeof img, 0x100000, s3z, sizeof s3z, 0);
    expect_note = true;
    RUN("boot: S3 with waking vector 0 resets", 4, "--timeout", "20", wfile("s3z", img, sn));
    expect_note = false;
    /* A guest that never ends: --timeout stops it (exit 124, registers dumped). */
    static const uint8_t spin[] = { 0xeb, 0xfe };
    size_t n = bg_elf(img, sizeof img, 0x100000, spin, sizeof spin, 0);
    char *loop = wfile("spin", img, n);
    /* Not a refusal and not silent: only the status and the absence of a signal count. */
    char *argv[8] = { (char *)xbt_run, "--timeout", "0.2", loop, NULL };
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        execv(xbt_run, argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    cases++;
    if (WIFSIGNALED(st) || WEXITSTATUS(st) != 124) {
        failures++;
        printf("FAIL %-44s status %d signal %d, expected 124\n", "--timeout 0.2 stops a loop",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    } else {
        boots++;
        if (verbose)
            printf("ok   %-44s 124\n", "--timeout 0.2 stops a loop");
    }
}

/* --perf-map and --symbols: options, symbol files of every kind of wrong, and boots. */
static void symbol_cases(const char *k)
{
    char *map = path("perf.map");
    char *pm = NULL;
    if (asprintf(&pm, "--perf-map=%s", map) < 0)
        abort();
    own(pm);
    RUN("--symbols without --perf-map", USAGE, "--symbols", k, k);
    RUN("--perf-map= (empty)", USAGE, "--perf-map=", k);
    RUN("--perf-map twice", USAGE, pm, pm, k);
    RUN("--symbols ''", USAGE, pm, "--symbols", "", k);
    RUN("--symbols missing", NOIMAGE, pm, "--symbols", path("nonexistent"), k);
    RUN("--symbols a directory", NOIMAGE, pm, "--symbols", dir, k);
    RUN("--symbols a FIFO", NOIMAGE, pm, "--symbols", path("fifo"), k);
    static const struct { const char *name, *text; } bad[] = {
        { "--symbols empty", "" },
        { "--symbols Debian's placeholder System.map",
          "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n" },
        { "--symbols 64-bit addresses", "ffffffff81000000 T startup_64\n" },
        { "--symbols data only", "c1000000 D x\n" },
        { "--symbols garbage line", "c1000000 T x\nthis is not a symbol list\n" },
        { "--symbols control byte in a name", "c1000000 T a\033[2Jb\n" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char f[32];
        snprintf(f, sizeof f, "syms%zu", i);
        RUN(bad[i].name, NOIMAGE, pm, "--symbols",
            wfile(f, (const uint8_t *)bad[i].text, strlen(bad[i].text)), k);
    }
    uint8_t rnd[4096];
    for (size_t i = 0; i < sizeof rnd; i++)
        rnd[i] = (uint8_t)(i * 131 + 7);
    RUN("--symbols random bytes", NOIMAGE, pm, "--symbols", wfile("symsrnd", rnd, sizeof rnd), k);
    RUN("--symbols an ELF without a symbol table", NOIMAGE, pm, "--symbols", k, k);
    static char huge[SYMS_LINE_CASE];
    memset(huge, 'c', sizeof huge);
    RUN("--symbols a 10,000-byte line", NOIMAGE, pm, "--symbols",
        wfile("symslong", (const uint8_t *)huge, sizeof huge), k);
    /* Accepted: the guest boots as without them, silently. */
    static const char good[] = "00100000 T start\n00100004 00000010 t inner\n         U x\n";
    char *gf = wfile("symsok", (const uint8_t *)good, sizeof good - 1);
    RUN("boot: --perf-map=FILE --symbols", 0x43, pm, "--symbols", gf, k);
    RUN("boot: --perf-map=FILE, two --symbols", 0x43, pm, "--symbols", gf, "--symbols", gf, k);
    /* A kernel whose section table is broken: it boots, without names, and says so. */
    expect_note = true;
    RUN("boot: --perf-map, broken section table", 0x43, pm,
        elf_file("badsh", 0x100000, 0x21, 0, sh_broken));
    expect_note = false;
}

static void cleanup(void)
{
    char *cmd;
    if (*dir && asprintf(&cmd, "rm -rf '%s'", dir) >= 0) {
        if (system(cmd) != 0)
            fprintf(stderr, "vmm_malformed: could not remove %s\n", dir);
        free(cmd);
    }
    while (n_owned)
        free(owned[--n_owned]);
}

/* ---- save and restore ------------------------------------------------------------- */

static uint64_t fnv64(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* A guest counting ECX down from 2^32-1 (seconds), then exiting with 0x20 | CPUID.1:ECX's
   SSE3 bit (status 0x43 with SSE3, 0x41 without): saved by SIGUSR1 0.3 s into its loop,
   with --cpu `cpu` unless NULL.  The file's bytes in *len, or NULL (a failure counted). */
static uint8_t *saved_state(const char *disk, bool cont, bool smp, const char *cpu, size_t *len)
{
    static const uint8_t count[] = { 0xb9, 0xff, 0xff, 0xff, 0xff, 0x49, 0x75, 0xfd,
                                     0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, /* cpuid 1 */
                                     0x89, 0xc8, 0x24, 0x01, 0x0c, 0x20, /* al = 0x20 | SSE3 */
                                     0xe6, 0xf4, 0xeb, 0xfe };
    size_t n = bg_elf(img, sizeof img, 0x100000, count, sizeof count, 0);
    char *guest = wfile("count", img, n), *state = path("state");
    char *argv[8] = { (char *)xbt_run, "--save", state, guest, NULL };
    if (disk) /* a disk file, which the state names */
        argv[3] = "--disk", argv[4] = (char *)disk, argv[5] = guest;
    if (cont) /* the guest runs on after the save, to its end */
        argv[3] = "--save-continue", argv[4] = guest;
    if (smp) /* three vCPUs, the APs waiting for start-up */
        argv[3] = "--smp", argv[4] = "3", argv[5] = guest;
    if (cpu) /* a CPUID other than the model's, which the restore must give it again */
        argv[3] = "--cpu", argv[4] = (char *)cpu, argv[5] = guest;
    int st = 0;
    /* A loaded host may not have set up xbt-run's handler yet: a later signal then. */
    for (long wait_ms = 300; wait_ms <= 2400; wait_ms *= 2) {
        pid_t pid = fork();
        if (pid == 0) {
            int nul = open("/dev/null", O_RDWR);
            dup2(nul, 0);
            dup2(nul, 1);
            dup2(nul, 2);
            execv(xbt_run, argv);
            _exit(127);
        }
        nanosleep(&(struct timespec){ wait_ms / 1000, (wait_ms % 1000) * 1000000 }, NULL);
        kill(pid, SIGUSR1); /* our own child */
        waitpid(pid, &st, 0);
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGUSR1)
            break;
    }
    cases++;
    FILE *f = fopen(state, "rb");
    uint8_t *b = malloc(64u << 20);
    *len = f && b ? fread(b, 1, 64u << 20, f) : 0;
    if (f)
        fclose(f);
    if (WIFSIGNALED(st) || WEXITSTATUS(st) != (cont ? 0x43 : 0) || *len < 1000) {
        failures++;
        printf("FAIL %-44s status %d signal %d, %zu bytes saved\n", "--save on SIGUSR1",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0, *len);
        free(b);
        return NULL;
    }
    boots++;
    if (verbose)
        printf("ok   %-44s %d  (%zu bytes)\n", cont ? "--save --save-continue on SIGUSR1"
               : "--save on SIGUSR1", cont ? 0x43 : 0, *len);
    return own((char *)b) ? b : NULL;
}

static void restore_case(const char *name, int want, const uint8_t *b, size_t n)
{
    char *f = wfile("damaged", b, n);
    RUN(name, want, "--restore", f);
}

static void state_cases(const char *k)
{
    RUN("--save ''", USAGE, "--save", "", k);
    RUN("--restore ''", USAGE, "--restore", "");
    RUN("--save twice", USAGE, "--save", "a", "--save", "b", k);
    RUN("--save-continue without --save", USAGE, "--save-continue", k);
    RUN("--restore twice", USAGE, "--restore", "a", "--restore", "b");
    RUN("--restore with a kernel", USAGE, "--restore", "a", k);
    RUN("--restore with --mem", USAGE, "--restore", "a", "--mem", "64");
    RUN("--restore with --append", USAGE, "--restore", "a", "-a", "x");
    RUN("--restore with --disk", USAGE, "--restore", "a", "--disk", k);
    RUN("--restore of a missing file", NOIMAGE, "--restore", path("no-such-state"));
    RUN("--restore of a kernel", NOIMAGE, "--restore", k);
    size_t n;
    /* With a disk: restored while the disk file is there, refused when it is gone. */
    char *disk = sparse("state-disk", 1 << 20, 0);
    uint8_t *s = saved_state(disk, false, false, NULL, &n);
    if (!s)
        return;
    restore_case("--restore: a state with a disk finishes", 0x43, s, n);
    unlink(disk);
    restore_case("--restore: its disk file is gone", NOIMAGE, s, n);
    if ((s = saved_state(NULL, true, false, NULL, &n)) != NULL)
        restore_case("--restore: a state saved on the way finishes", 0x43, s, n);
    if ((s = saved_state(NULL, false, true, NULL, &n)) != NULL)
        restore_case("--restore: a state of three vCPUs finishes", 0x43, s, n);
    RUN("--restore with --smp", USAGE, "--restore", "a", "--smp", "2");
    if ((s = saved_state(NULL, false, false, "default,-sse3", &n)) != NULL) {
        restore_case("--restore: the saved CPUID (-sse3) holds", 0x41, s, n);
        char *f = wfile("cpu-state", s, n);
        RUN("--restore of a CPUID with --cpu", USAGE, "--restore", f, "--cpu", "max");
    }
    s = saved_state(NULL, false, false, NULL, &n);
    if (!s)
        return;
    restore_case("--restore: the saved state finishes", 0x43, s, n);
    uint8_t *t = malloc(n);
    if (!t)
        abort();
    own((char *)t);
    const size_t cuts[] = { 0, 7, 12, 20, 40, 60, 100, 200, n / 2, n - 200, n - 17, n - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char name[64];
        snprintf(name, sizeof name, "--restore: cut at %zu of %zu", cuts[i], n);
        restore_case(name, NOIMAGE, s, cuts[i]);
    }
    const size_t flips[] = { 0, 8, 12, 16, 20, 24, 28, 29, 30, 32, 36, 40, 72, 90, n / 2, n - 10 };
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        char name[64];
        memcpy(t, s, n);
        t[flips[i]] ^= 0x41;
        snprintf(name, sizeof name, "--restore: byte %zu changed", flips[i]);
        accept_boot = 0x43; /* some header bytes (the save's time) need not matter */
        restore_case(name, NOIMAGE, t, n);
        accept_boot = 0;
    }
    /* The devices' part: u64 length, u64 checksum, the sections, at the end. */
    size_t at = n - 17; /* a length of at least 1 (the last bytes are zeros) */
    while (at > 0) {
        uint64_t len;
        memcpy(&len, s + at, 8);
        if (len == n - at - 16)
            break;
        at--;
    }
    /* Its sections (u32 tag, u32 length): each device's first fields are damaged in
       turn, then anything anywhere. */
    size_t blob = at + 16, len = n - blob, sec[32], nsec = 0;
    for (size_t o = 0; o + 8 <= len && nsec < 32;) {
        uint32_t l;
        memcpy(&l, s + blob + o + 4, 4);
        sec[nsec++] = o;
        o += 8 + (size_t)l;
    }
    srand(4);
    accept_boot = 0x43;
    for (int i = 0; i < 120; i++) {
        char name[64];
        memcpy(t, s, n);
        for (int j = 0; j < 1 + i % 3; j++) {
            size_t o = sec[(size_t)i % nsec] + (size_t)rand() % 72;
            size_t off = i < 90 ? o : (size_t)rand() % len;
            if (off < len)
                t[blob + off] = (uint8_t)rand();
        }
        uint64_t sum = fnv64(t + blob, len);
        memcpy(t + at + 8, &sum, 8);
        snprintf(name, sizeof name, "--restore: devices damaged (%d)", i);
        restore_case(name, NOIMAGE, t, i % 7 == 6 ? n - (size_t)rand() % 64 : n);
    }
    accept_boot = 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: vmm_malformed XBT_RUN\n");
        return 2;
    }
    xbt_run = argv[1];
    snprintf(dir, sizeof dir, "%s/xbt-malformed.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    atexit(cleanup);
    char *k = elf_file("good", 0x100000, 0x21, 0, NULL);
    option_cases(k);
    file_cases();
    elf_cases();
    kludge_cases();
    bz_cases();
    symbol_cases(k);
    accepted_cases(k);
    state_cases(k);
    printf("xbt-run against malformed input: %d cases, %d refused with one line, %d booted, "
           "%d failed\n", cases, refusals, boots, failures);
    if (translated_runs)
        printf("note: %d runs said guest user code runs translated (this host cannot run it "
               "directly); that note was not counted against them\n", translated_runs);
    return failures ? 1 : 0;
}
