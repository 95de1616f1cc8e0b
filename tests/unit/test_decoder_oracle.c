/*
 * test_decoder_oracle.c - Capstone as an independent oracle for the decoder: every
 * instruction of a real 32-bit binary's .text (Debian's libc6-i386) is decoded by
 * xbt_decode (Zydis) and by Capstone, and the lengths must agree wherever both accept
 * the bytes; then a seeded random-byte sweep compares the same way.  Where only one
 * decoder accepts an instruction the case is counted and printed, not failed: the
 * two disagree on some rare encodings by design (xbt also refuses what the virtual
 * CPU lacks, such as AVX), and the counts are bounded below.
 */
#include <capstone/capstone.h>
#include <check.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/decoder.h"

#define LIBC32 "/usr/lib32/libc.so.6"

static xbt_decoder dec;
static csh cs;

struct tally {
    unsigned both, len_mismatch, only_xbt, only_cs, shown;
};

/* Compares one position; returns the number of bytes to advance. */
static unsigned compare_at(const uint8_t *p, size_t n, uint32_t addr, struct tally *t)
{
    xbt_insn in;
    enum xbt_decode_status ds = xbt_decode(&dec, p, n, addr, &in);
    bool x_ok = ds == XBT_DECODE_OK && in.iclass != XBT_IC_UNDEFINED;
    cs_insn *ci = NULL;
    size_t count = cs_disasm(cs, p, n < 15 ? n : 15, addr, 1, &ci);
    bool c_ok = count == 1;
    unsigned adv = 1;
    if (x_ok && c_ok) {
        t->both++;
        if (in.length != ci[0].size) {
            t->len_mismatch++;
            if (t->shown++ < 10) {
                fprintf(stderr, "length mismatch at %08x: xbt %u, capstone %u (%s %s):", addr,
                        in.length, ci[0].size, ci[0].mnemonic, ci[0].op_str);
                for (unsigned i = 0; i < 15 && i < n; i++)
                    fprintf(stderr, " %02x", p[i]);
                fprintf(stderr, "\n");
            }
        }
        adv = in.length;
    } else if (x_ok) {
        t->only_xbt++;
        adv = in.length;
    } else if (c_ok) {
        t->only_cs++;
        if (t->shown++ < 10)
            fprintf(stderr, "only capstone decodes %08x: %s %s (%u bytes)\n", addr,
                    ci[0].mnemonic, ci[0].op_str, ci[0].size);
        adv = ci[0].size;
    }
    if (ci)
        cs_free(ci, count);
    return adv ? adv : 1;
}

static void setup(void)
{
    xbt_decoder_init(&dec);
    ck_assert_int_eq(cs_open(CS_ARCH_X86, CS_MODE_32, &cs), CS_ERR_OK);
}

static void teardown(void) { cs_close(&cs); }

START_TEST(libc_text)
{
    FILE *f = fopen(LIBC32, "rb");
    if (!f) {
        printf("SKIP: %s not installed (Debian's libc6-i386)\n", LIBC32);
        return;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *img = malloc((size_t)len);
    ck_assert_ptr_nonnull(img);
    ck_assert_uint_eq(fread(img, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    const Elf32_Ehdr *eh = (const Elf32_Ehdr *)img;
    const Elf32_Shdr *sh = (const Elf32_Shdr *)(img + eh->e_shoff);
    const char *names = (const char *)img + sh[eh->e_shstrndx].sh_offset;
    const Elf32_Shdr *text = NULL;
    for (int i = 0; i < eh->e_shnum; i++)
        if (!strcmp(names + sh[i].sh_name, ".text"))
            text = &sh[i];
    ck_assert_ptr_nonnull(text);
    struct tally t = { 0 };
    size_t off = 0;
    while (off < text->sh_size)
        off += compare_at(img + text->sh_offset + off, text->sh_size - off,
                          text->sh_addr + (uint32_t)off, &t);
    printf("libc .text: %u instructions both decode, %u length mismatches, %u only xbt, "
           "%u only capstone\n", t.both, t.len_mismatch, t.only_xbt, t.only_cs);
    ck_assert_uint_gt(t.both, 400000);
    ck_assert_uint_eq(t.len_mismatch, 0);
    /* Compiler output: the decoders should agree almost everywhere. */
    ck_assert_uint_lt(t.only_xbt + t.only_cs, t.both / 1000);
    free(img);
}
END_TEST

START_TEST(random_bytes)
{
    uint64_t s = 0x853c49e6748fea9bull;
    uint8_t buf[16];
    struct tally t = { 0 };
    for (int i = 0; i < 200000; i++) {
        for (int k = 0; k < 16; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            buf[k] = (uint8_t)s;
        }
        compare_at(buf, sizeof buf, 0x1000, &t);
    }
    printf("random bytes: %u both decode, %u length mismatches, %u only xbt, %u only "
           "capstone\n", t.both, t.len_mismatch, t.only_xbt, t.only_cs);
    ck_assert_uint_gt(t.both, 100000);
    ck_assert_uint_eq(t.len_mismatch, 0);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("decoder-oracle");
    TCase *tc = tcase_create("capstone");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, libc_text);
    tcase_add_test(tc, random_bytes);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
