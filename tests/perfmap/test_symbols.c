/*
 * test_symbols.c - xbt-run's guest symbol loader (tools/vmm/symbols.c): nm listings in
 * each form, an ELF32 symbol table, and malformed input of both kinds, which must end
 * in -1 with one line of text (never a crash, never a read outside the buffer: this
 * test is built with AddressSanitizer where the compiler has it), and 20,000 seeded
 * mutations of valid files, whose symbols must all be well-formed when accepted.
 */
#include <check.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbols.h"

struct got {
    int n;
    uint32_t addr[8], size[8];
    char name[8][SYMS_NAME_MAX + 1];
    int bad; /* a symbol passed on that breaks the contract */
};

static int collect(void *opaque, uint32_t addr, uint32_t size, const char *name, char *err,
                   size_t errlen)
{
    (void)err;
    (void)errlen;
    struct got *g = opaque;
    size_t n = strlen(name);
    if (n == 0 || n > SYMS_NAME_MAX || (uint64_t)addr + size > (1ull << 32))
        g->bad++;
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x21 || name[i] > 0x7e)
            g->bad++;
    if (g->n < 8) {
        g->addr[g->n] = addr;
        g->size[g->n] = size;
        strcpy(g->name[g->n], name);
    }
    g->n++;
    return 0;
}

/* One line, no line break, starting with the file's name (or the ELF's). */
static void check_one_line(const char *err, const char *fname)
{
    ck_assert_msg(*err, "no message");
    ck_assert_msg(!strchr(err, '\n'), "message with a line break: %s", err);
    ck_assert_msg(!strncmp(err, fname, strlen(fname)), "message without the file name: %s",
                  err);
}

static long parse_nm(const char *text, size_t len, struct got *g, char *err, size_t errlen)
{
    struct boot_blob f = { "map", (const uint8_t *)text, len };
    memset(g, 0, sizeof *g);
    err[0] = 0;
    return syms_parse_nm(&f, collect, g, err, errlen);
}

START_TEST(nm_forms)
{
    static const char text[] =
        "c1000000 T startup_32\n"
        "c1000100 D some_data\n"                     /* not code: skipped */
        "\n"
        "         U undefined_here\n"                /* nm's undefined: skipped */
        "c1000200 00000040 t with_size\r\n"          /* nm -S, CRLF */
        "c1000300 W weak_one\n"
        "f8a01000 t module_func\t[ext4]\n"           /* kallsyms */
        "C1000400 T UPPER_HEX";                      /* no final line break */
    struct got g;
    char err[256];
    ck_assert_int_eq(parse_nm(text, sizeof text - 1, &g, err, sizeof err), 5);
    ck_assert_int_eq(g.bad, 0);
    ck_assert_str_eq(g.name[0], "startup_32");
    ck_assert_uint_eq(g.addr[0], 0xc1000000u);
    ck_assert_uint_eq(g.size[0], 0);
    ck_assert_str_eq(g.name[1], "with_size");
    ck_assert_uint_eq(g.size[1], 0x40);
    ck_assert_str_eq(g.name[2], "weak_one");
    ck_assert_str_eq(g.name[3], "module_func");
    ck_assert_uint_eq(g.addr[3], 0xf8a01000u);
    ck_assert_uint_eq(g.addr[4], 0xc1000400u);
}
END_TEST

START_TEST(nm_long_name_is_cut)
{
    char text[600] = "c1000000 T ";
    memset(text + 11, 'x', 400);
    text[411] = 0;
    struct got g;
    char err[256];
    ck_assert_int_eq(parse_nm(text, strlen(text), &g, err, sizeof err), 1);
    ck_assert_uint_eq(strlen(g.name[0]), SYMS_NAME_MAX);
}
END_TEST

START_TEST(nm_malformed)
{
    static const struct { const char *what, *text; size_t len; } bad[] = {
        { "empty file", "", 0 },
        { "only data symbols", "c1000000 D x\nc1000004 B y\n", 0 },
        { "Debian's placeholder System.map",
          "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n", 0 },
        { "two fields", "c1000000 T\n", 0 },
        { "one field", "c1000000\n", 0 },
        { "not hexadecimal", "zz000000 T foo\n", 0 },
        { "0x prefix", "0xc1000000 T foo\n", 0 },
        { "64-bit address", "ffffffff81000000 T startup_64\n", 0 },
        { "17 digits", "00000000c10000000 T foo\n", 0 },
        { "past 4 GiB with its size", "c1000000 ff000000 T foo\n", 0 },
        { "size not hexadecimal", "c1000000 4g T foo\n", 0 },
        { "two-letter type", "c1000000 TT foo\n", 0 },
        { "type a digit", "c1000000 7 foo\n", 0 },
        { "six fields", "c1000000 T foo bar baz qux\n", 0 },
        { "four fields, no module", "c1000000 T foo bar\n", 0 },
        { "control byte in a name", "c1000000 T fo\001o\n", 0 },
        { "non-ASCII name", "c1000000 T caf\xc3\xa9\n", 0 },
        { "a NUL byte", "c1000000 T foo\nc1000004 T b\0r\n", 29 },
        { "good line then garbage", "c1000000 T foo\n\x7f" "ELF\x01\x01\x01\n", 0 },
        { "undefined line without spaces", "U foo\n", 0 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct got g;
        char err[256];
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        long r = parse_nm(bad[i].text, len, &g, err, sizeof err);
        ck_assert_msg(r == -1, "%s: accepted (%ld symbols)", bad[i].what, r);
        check_one_line(err, "map");
    }
    /* A line of more than SYMS_LINE_MAX bytes. */
    static char longline[SYMS_LINE_MAX + 100];
    memset(longline, 'a', sizeof longline);
    struct got g;
    char err[256];
    ck_assert_int_eq(parse_nm(longline, sizeof longline, &g, err, sizeof err), -1);
    check_one_line(err, "map");
}
END_TEST

static int refuse(void *opaque, uint32_t addr, uint32_t size, const char *name, char *err,
                  size_t errlen)
{
    (void)opaque;
    (void)addr;
    (void)size;
    snprintf(err, errlen, "map: no room for %s", name);
    return -1;
}

/* The callback's refusal (xbt-run's: the VM refused the symbol) ends the parse with the
   callback's message. */
START_TEST(callback_refusal)
{
    static const char text[] = "c1000000 T startup_32\n";
    struct boot_blob f = { "map", (const uint8_t *)text, sizeof text - 1 };
    char err[256] = "";
    ck_assert_int_eq(syms_parse_nm(&f, refuse, NULL, err, sizeof err), -1);
    ck_assert_str_eq(err, "map: no room for startup_32");
}
END_TEST

/* ---- ELF ----------------------------------------------------------------------------- */

enum { STRTAB_OFF = 64, SYMTAB_OFF = 128, NSYMS = 8, SHOFF = 512, NSECT = 5, ELF_LEN = SHOFF + NSECT * 40 };
static const char strtab[] = "\0func_a\0label_b\0data_c\0notype_data\0undef_f\0abs_f";

static uint8_t elf[ELF_LEN];

static Elf32_Shdr *sect(int i) { return (Elf32_Shdr *)(elf + SHOFF + 40 * i); }
static Elf32_Sym *sym(int i) { return (Elf32_Sym *)(elf + SYMTAB_OFF + 16 * i); }
static uint32_t str(const char *s)
{
    for (uint32_t i = 1; i < sizeof strtab; i++)
        if (!strcmp(strtab + i, s))
            return i;
    return 0;
}

/* Sections: null, .text (code), .data, .symtab, .strtab; symbols: a function and a
   label in .text (the two passed on), an object and a label in .data, an undefined
   function, an absolute one, a function without a name. */
static void build_elf(void)
{
    memset(elf, 0, sizeof elf);
    Elf32_Ehdr *eh = (Elf32_Ehdr *)elf;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS32;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_ident[EI_VERSION] = EV_CURRENT;
    eh->e_type = ET_EXEC;
    eh->e_machine = EM_386;
    eh->e_shoff = SHOFF;
    eh->e_shentsize = sizeof(Elf32_Shdr);
    eh->e_shnum = NSECT;
    eh->e_ehsize = sizeof *eh;
    *sect(1) = (Elf32_Shdr){ .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
                             .sh_addr = 0x100000, .sh_size = 0x100 };
    *sect(2) = (Elf32_Shdr){ .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_WRITE,
                             .sh_addr = 0x200000, .sh_size = 0x100 };
    *sect(3) = (Elf32_Shdr){ .sh_type = SHT_SYMTAB, .sh_offset = SYMTAB_OFF,
                             .sh_size = NSYMS * 16, .sh_link = 4, .sh_entsize = 16 };
    *sect(4) = (Elf32_Shdr){ .sh_type = SHT_STRTAB, .sh_offset = STRTAB_OFF,
                             .sh_size = sizeof strtab };
    memcpy(elf + STRTAB_OFF, strtab, sizeof strtab);
    *sym(1) = (Elf32_Sym){ str("func_a"), 0x100000, 0x20, ELF32_ST_INFO(STB_GLOBAL, STT_FUNC), 0, 1 };
    *sym(2) = (Elf32_Sym){ str("label_b"), 0x100020, 0, ELF32_ST_INFO(STB_LOCAL, STT_NOTYPE), 0, 1 };
    *sym(3) = (Elf32_Sym){ str("data_c"), 0x200000, 4, ELF32_ST_INFO(STB_GLOBAL, STT_OBJECT), 0, 2 };
    *sym(4) = (Elf32_Sym){ str("notype_data"), 0x200004, 0, ELF32_ST_INFO(STB_LOCAL, STT_NOTYPE), 0, 2 };
    *sym(5) = (Elf32_Sym){ str("undef_f"), 0, 0, ELF32_ST_INFO(STB_GLOBAL, STT_FUNC), 0, SHN_UNDEF };
    *sym(6) = (Elf32_Sym){ str("abs_f"), 0x1234, 0, ELF32_ST_INFO(STB_GLOBAL, STT_FUNC), 0, SHN_ABS };
    *sym(7) = (Elf32_Sym){ 0, 0x100040, 4, ELF32_ST_INFO(STB_LOCAL, STT_FUNC), 0, 1 };
}

static long parse_elf(size_t len, struct got *g, char *err, size_t errlen)
{
    struct boot_blob f = { "kernel.elf", elf, len };
    memset(g, 0, sizeof *g);
    err[0] = 0;
    return syms_parse_elf(&f, collect, g, err, errlen);
}

START_TEST(elf_symbols)
{
    build_elf();
    struct got g;
    char err[256];
    struct boot_blob f = { "kernel.elf", elf, sizeof elf };
    ck_assert(syms_is_elf(&f));
    ck_assert_int_eq(parse_elf(sizeof elf, &g, err, sizeof err), 2);
    ck_assert_str_eq(g.name[0], "func_a");
    ck_assert_uint_eq(g.addr[0], 0x100000);
    ck_assert_uint_eq(g.size[0], 0x20);
    ck_assert_str_eq(g.name[1], "label_b");
    ck_assert_uint_eq(g.addr[1], 0x100020);
    /* Stripped, or without section headers: no symbols, no error. */
    sect(3)->sh_type = SHT_PROGBITS;
    ck_assert_int_eq(parse_elf(sizeof elf, &g, err, sizeof err), 0);
    build_elf();
    ((Elf32_Ehdr *)elf)->e_shoff = 0;
    ck_assert_int_eq(parse_elf(sizeof elf, &g, err, sizeof err), 0);
}
END_TEST

static void shentsize(void) { ((Elf32_Ehdr *)elf)->e_shentsize = 39; }
static void shoff_far(void) { ((Elf32_Ehdr *)elf)->e_shoff = ELF_LEN - 10; }
static void shoff_wrap(void) { ((Elf32_Ehdr *)elf)->e_shoff = 0xfffffff0u; }
static void shnum_big(void) { ((Elf32_Ehdr *)elf)->e_shnum = 0xffff; }
static void symsize_odd(void) { sect(3)->sh_size = 17; }
static void symoff_far(void) { sect(3)->sh_offset = 0x7fffffff; }
static void symoff_wrap(void) { sect(3)->sh_offset = 0xffffff00u; sect(3)->sh_size = 0x200; }
static void entsize(void) { sect(3)->sh_entsize = 24; }
static void link_far(void) { sect(3)->sh_link = 99; }
static void strtab_type(void) { sect(4)->sh_type = SHT_PROGBITS; }
static void strtab_far(void) { sect(4)->sh_size = 0x10000; }
static void name_far(void) { sym(1)->st_name = 0x1000; }
static void name_unterminated(void) { sect(4)->sh_size = str("label_b") + 3; }
static void value_wrap(void) { sym(1)->st_value = 0xfffffff0u; }
static void name_control(void) { elf[STRTAB_OFF + str("func_a") + 1] = 1; }
static void class64(void) { elf[EI_CLASS] = ELFCLASS64; }
static void bigendian(void) { elf[EI_DATA] = ELFDATA2MSB; }

START_TEST(elf_malformed)
{
    static const struct { const char *what; void (*edit)(void); } bad[] = {
        { "e_shentsize 39", shentsize }, { "section headers past the end", shoff_far },
        { "e_shoff wraps", shoff_wrap }, { "65535 sections", shnum_big },
        { "symbol table of 17 bytes", symsize_odd }, { "symbol table past the end", symoff_far },
        { "symbol table offset wraps", symoff_wrap }, { "sh_entsize 24", entsize },
        { "sh_link 99", link_far }, { "string table not SHT_STRTAB", strtab_type },
        { "string table past the end", strtab_far }, { "st_name outside", name_far },
        { "a name runs past its table", name_unterminated },
        { "a symbol past 4 GiB", value_wrap }, { "a control byte in a name", name_control },
        { "ELFCLASS64", class64 }, { "big-endian", bigendian },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        build_elf();
        bad[i].edit();
        struct got g;
        char err[256];
        long r = parse_elf(sizeof elf, &g, err, sizeof err);
        ck_assert_msg(r == -1, "%s: accepted (%ld symbols)", bad[i].what, r);
        check_one_line(err, "kernel.elf");
    }
    build_elf();
    struct got g;
    char err[256];
    ck_assert_int_eq(parse_elf(20, &g, err, sizeof err), -1); /* shorter than its header */
    check_one_line(err, "kernel.elf");
}
END_TEST

/* Seeded mutations of both kinds of file: never a crash or an out-of-bounds read
   (AddressSanitizer), never a malformed symbol passed on, always one line on refusal. */
START_TEST(mutations)
{
    static const char nm[] = "c1000000 T startup_32\nc1000100 00000040 t with_size\n"
                             "c1000300 W weak_one\nf8a01000 t module_func\t[ext4]\n"
                             "c1000400 D data\n         U undef\n";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t buf[ELF_LEN];
    for (int iter = 0; iter < 20000; iter++) {
        int use_elf = iter & 1;
        size_t len = use_elf ? sizeof elf : sizeof nm - 1;
        if (use_elf) {
            build_elf();
            memcpy(buf, elf, len);
        } else {
            memcpy(buf, nm, len);
        }
        int flips = 1 + (int)(x % 8);
        for (int k = 0; k < flips; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            buf[(x >> 33) % len] = (uint8_t)(x >> 17);
        }
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        if ((x >> 40) % 4 == 0)
            len = (size_t)((x >> 20) % len); /* cut short */
        /* The exact length, in its own allocation: ASan sees a read past it. */
        uint8_t *heap = malloc(len ? len : 1);
        memcpy(heap, buf, len);
        struct boot_blob f = { "mutant", heap, len };
        struct got g = { 0 };
        char err[256] = "";
        long r = use_elf ? syms_parse_elf(&f, collect, &g, err, sizeof err)
                         : syms_parse_nm(&f, collect, &g, err, sizeof err);
        ck_assert_msg(r >= -1, "iteration %d: %ld", iter, r);
        if (r == -1)
            check_one_line(err, "mutant");
        else
            ck_assert_int_eq(g.n, r);
        ck_assert_msg(g.bad == 0, "iteration %d: a malformed symbol was passed on", iter);
        free(heap);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("symbols");
    TCase *tc = tcase_create("symbols");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, nm_forms);
    tcase_add_test(tc, nm_long_name_is_cut);
    tcase_add_test(tc, nm_malformed);
    tcase_add_test(tc, callback_refusal);
    tcase_add_test(tc, elf_symbols);
    tcase_add_test(tc, elf_malformed);
    tcase_add_test(tc, mutations);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
