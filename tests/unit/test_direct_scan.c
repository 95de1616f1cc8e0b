/*
 * test_direct_scan.c - the scan that keeps pages with host-sensitive instructions out of
 * direct execution (runtime/direct.c, xbt_direct_page_sensitive), for CR4.UMIP's
 * instructions: SGDT, SIDT, SLDT, SMSW and STR are found wherever code executes them (a
 * page's middle, its first bytes, across its end), and their byte patterns inside other
 * instructions' immediates ("mov eax, 0xf00" holds 0F 00 00, SLDT [eax]) are not taken
 * for them, which would send most pages of ordinary code to the translator.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "runtime/vcpu.h"

/* Ordinary code whose immediates hold the patterns: 0F 00 00 (SLDT [eax]), 0F 01 05
   (SGDT [disp32]), 0F 01 E0 (SMSW eax), 0F 00 C8 (STR eax). */
static const uint8_t filler[][7] = {
    { 5, 0xB8, 0x00, 0x0F, 0x00, 0x00 },       /* mov eax, 0xf00 */
    { 2, 0x89, 0xC2 },                         /* mov edx, eax */
    { 5, 0x3D, 0x00, 0x0F, 0x01, 0x05 },       /* cmp eax, 0x05010f00 */
    { 3, 0x8B, 0x45, 0x08 },                   /* mov eax, [ebp+8] */
    { 6, 0x81, 0xC1, 0x0F, 0x01, 0xE0, 0x00 }, /* add ecx, 0xe0010f */
    { 2, 0x01, 0xD0 },                         /* add eax, edx */
    { 5, 0xBA, 0x0F, 0x00, 0xC8, 0x00 },       /* mov edx, 0xc8000f */
    { 3, 0xC1, 0xE0, 0x02 },                   /* shl eax, 2 */
};

/* Code like the filler in which a few decodes started 24-64 bytes back land on the
   0F 01 05 at offset 74 (inside "cmp eax, 0x05010f00"), most step over it: one landing
   decode is not enough (Debian's libc has 32 such finds). */
static const uint8_t decoy[100] = {
    0x01, 0xD0, 0x8B, 0x84, 0x24, 0x0F, 0x00, 0x00, 0xC1, 0xE0, 0x02, 0xBA, 0x0F, 0x00,
    0xC8, 0x00, 0x3D, 0x00, 0x0F, 0x01, 0x05, 0x31, 0xC0, 0xB8, 0x00, 0x0F, 0x00, 0x00,
    0x8B, 0x84, 0x24, 0x0F, 0x00, 0x00, 0x8B, 0x84, 0x24, 0x0F, 0x00, 0x00, 0x50, 0x8D,
    0x44, 0x24, 0x10, 0x3D, 0x00, 0x0F, 0x01, 0x05, 0xC1, 0xE0, 0x02, 0x31, 0xC0, 0x3D,
    0x00, 0x0F, 0x01, 0x05, 0x3D, 0x00, 0x0F, 0x01, 0x05, 0x01, 0xD0, 0x3D, 0x00, 0x0F,
    0x01, 0x05, 0x3D, 0x00, 0x0F, 0x01, 0x05, 0x0F, 0x84, 0x00, 0x0F, 0x00, 0x00, 0x3D,
    0x00, 0x0F, 0x01, 0x05, 0x0F, 0xB6, 0xC0, 0x8B, 0x45, 0x08, 0x8D, 0x44, 0x24, 0x10,
    0x89, 0xC2,
};

static const struct { const char *name; uint8_t len, b[7]; } umip_insn[] = {
    { "sgdt [0x12345678]", 7, { 0x0F, 0x01, 0x05, 0x78, 0x56, 0x34, 0x12 } },
    { "sidt [0x12345678]", 7, { 0x0F, 0x01, 0x0D, 0x78, 0x56, 0x34, 0x12 } },
    { "smsw esi", 3, { 0x0F, 0x01, 0xE6 } },
    { "str cx", 4, { 0x66, 0x0F, 0x00, 0xC9 } },
    { "sldt si", 4, { 0x66, 0x0F, 0x00, 0xC6 } },
};

/* Fills guest RAM from offset o to the end of page 1 with the filler, `insn` (len bytes;
   NULL: none) at the first instruction boundary from offset `at`, NOPs after; the page
   where insn starts (0 for none). */
static unsigned fill_code(uint8_t *ram, unsigned o, const uint8_t *insn, unsigned len,
                          unsigned at)
{
    unsigned i = 0, page = 0;
    bool placed = !insn;
    while (o < 8192 - 16) {
        if (!placed && o >= at) {
            memcpy(ram + o, insn, len);
            page = o / 4096;
            o += len;
            placed = true;
            continue;
        }
        const uint8_t *f = filler[i++ % (sizeof filler / sizeof filler[0])];
        memcpy(ram + o, f + 1, f[0]);
        o += f[0];
    }
    memset(ram + o, 0x90, 8192 - o);
    return page;
}

/* Two pages of code at gpa 0: 40 bytes of "mov edx, eax; add eax, edx" (a page's first
   32 bytes have too little context: any find there counts), the decoy, then filler; with
   umip_insn[k] (k < 0: none) at the first instruction boundary from offset `at`;
   whether the page where it starts is sensitive (page 0 for none; the page after it
   following it). */
static bool page_with(xbt_vm *vm, int k, unsigned at)
{
    uint8_t *ram = xbt_vm_ram(vm);
    for (unsigned j = 0; j < 40; j += 4)
        memcpy(ram + j, "\x89\xC2\x01\xD0", 4);
    memcpy(ram + 40, decoy, sizeof decoy);
    unsigned page = fill_code(ram, 40 + sizeof decoy, k < 0 ? NULL : umip_insn[k].b,
                              k < 0 ? 0 : umip_insn[k].len, at);
    return xbt_direct_page_sensitive(vm, page * 4096u, page ? 0 : ~0ull, page * 4096u + 4096);
}

START_TEST(umip_instructions_found_not_imagined)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 1u << 20;
    xbt_vm *vm;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    ck_assert_msg(!page_with(vm, -1, 0), "immediates holding the patterns taken for code");
    static const unsigned where[] = { 140, 145, 180, 2000, 4080, 4090, 4093, 4097, 4100,
                                      4113, 4127 };
    for (size_t k = 0; k < sizeof umip_insn / sizeof umip_insn[0]; k++)
        for (size_t w = 0; w < sizeof where / sizeof where[0]; w++)
            ck_assert_msg(page_with(vm, (int)k, where[w]), "%s near offset %u not found",
                          umip_insn[k].name, where[w]);
    xbt_vm_destroy(vm);
}
END_TEST

/* The verdicts are kept by the bytes scanned (a keyed hash of the page and the next
   page's first 16 bytes), not by the address: the same bytes elsewhere are answered from
   the cache with the same verdict, and a page whose bytes change is scanned again. */
START_TEST(verdicts_kept_by_content)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 1u << 20;
    xbt_vm *vm;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    uint8_t *ram = xbt_vm_ram(vm);
    ck_assert(page_with(vm, 0, 2000)); /* pages 0-1: SGDT in page 0 */
    uint64_t scans = vm->scans, hits = vm->scan_hits;
    memcpy(ram + 0x10000, ram, 4096);
    memcpy(ram + 0x11000, ram + 4096, 4096);
    ck_assert(xbt_direct_page_sensitive(vm, 0x10000, ~0ull, 0x11000));
    ck_assert_uint_eq(vm->scans, scans + 1);
    ck_assert_uint_eq(vm->scan_hits, hits + 1);
    /* The SGDT at 0x10000 + its offset becomes the decoy's bytes: no longer sensitive,
       though the address was answered from the cache a moment ago. */
    ck_assert(!page_with(vm, -1, 0));
    memcpy(ram + 0x10000, ram, 4096);
    memcpy(ram + 0x11000, ram + 4096, 4096);
    ck_assert(!xbt_direct_page_sensitive(vm, 0x10000, ~0ull, 0x11000));
    ck_assert_uint_eq(vm->scan_hits, hits + 2); /* the decoy page's verdict, kept too */
    ram[0x10000 + 3000] ^= 0x01; /* one byte changed: scanned again, not a hit */
    (void)xbt_direct_page_sensitive(vm, 0x10000, ~0ull, 0x11000);
    ck_assert_uint_eq(vm->scan_hits, hits + 2);
    xbt_vm_destroy(vm);
}
END_TEST

/* The instructions the host answers from its own state wherever they are (SENS_ANY):
   found at every offset of a page of NOPs, those in the vector scan's lane boundaries
   and across the page's end included (RDPID's F3 as the page's last byte); the same
   bytes starting in the next page leave this one alone; a page without any of their
   patterns (code full of other 0F instructions) is answered without a scan. */
START_TEST(host_answered_instructions_at_every_offset)
{
    static const struct { const char *name; uint8_t len, b[4]; } any[] = {
        { "cpuid", 2, { 0x0F, 0xA2 } },
        { "xgetbv", 3, { 0x0F, 0x01, 0xD0 } },
        { "rdtscp", 3, { 0x0F, 0x01, 0xF9 } },
        { "rdpkru", 3, { 0x0F, 0x01, 0xEE } },
        { "wrpkru", 3, { 0x0F, 0x01, 0xEF } },
        { "rdpid eax", 4, { 0xF3, 0x0F, 0xC7, 0xF8 } },
    };
    static const unsigned where[] = { 0, 1, 14, 15, 16, 17, 31, 32, 33, 2047, 4079, 4080,
                                      4092, 4093, 4094, 4095, 4096, 4097 };
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 1u << 20;
    xbt_vm *vm;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    uint8_t *ram = xbt_vm_ram(vm);
    for (size_t k = 0; k < sizeof any / sizeof any[0]; k++)
        for (size_t w = 0; w < sizeof where / sizeof where[0]; w++) {
            memset(ram, 0x90, 8192);
            memcpy(ram + where[w], any[k].b, any[k].len);
            ck_assert_msg(xbt_direct_page_sensitive(vm, 0, ~0ull, 4096) == (where[w] < 4096),
                          "%s at offset %u: page 0 %s", any[k].name, where[w],
                          where[w] < 4096 ? "not sensitive" : "sensitive");
        }
    /* jcc rel32, movzx, setcc, cmovcc, imul, bswap: 0F everywhere, no pattern. */
    static const uint8_t plain[] = { 0x0F, 0x84, 0x10, 0x00, 0x00, 0x00, 0x0F, 0xB6, 0xC0,
                                     0x0F, 0x94, 0xC0, 0x0F, 0x44, 0xC2, 0x0F, 0xAF, 0xC2,
                                     0x0F, 0xC8 };
    for (unsigned o = 0; o + sizeof plain <= 8192; o += sizeof plain)
        memcpy(ram + o, plain, sizeof plain);
    uint64_t scans = vm->scans;
    ck_assert(!xbt_direct_page_sensitive(vm, 0, ~0ull, 4096));
    ck_assert(!xbt_direct_page_sensitive(vm, 4096, 0, 8192));
    ck_assert_uint_eq(vm->scans, scans);
    xbt_vm_destroy(vm);
}
END_TEST

/* A page's first bytes are decoded in the context of the previous page's last bytes:
   "call rel32" whose rel32 holds 0F 01 8B (SIDT [ebx+disp32]) at offset 17 of a page,
   as in two of Debian's cc1's hottest pages, is no SIDT when the code before it is
   known; without the previous page any find in the first 32 bytes counts; a real SIDT
   there is found in context.  The previous page's bytes are part of what the verdict is
   kept by. */
START_TEST(first_bytes_decoded_after_previous_page)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 1u << 20;
    xbt_vm *vm;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    uint8_t *ram = xbt_vm_ram(vm);
    static const uint8_t call[] = { 0xE8, 0x3D, 0x41, 0x0F, 0x01, 0x8B, 0x4C, 0x24, 0x10 };
    static const uint8_t sidt[] = { 0x0F, 0x01, 0x8B, 0x00, 0x10, 0x00, 0x00, 0x90, 0x90 };
    for (int real = 0; real < 2; real++) {
        /* The 0F at 4096 + 15 .. 4096 + 25. */
        ck_assert_uint_eq(fill_code(ram, 0, real ? sidt : call, sizeof call, 4096 + 12), 1);
        ck_assert_msg(xbt_direct_page_sensitive(vm, 4096, 0, 8192) == real,
                      real ? "a SIDT in a page's first bytes not found"
                           : "a call's rel32 in a page's first bytes taken for a SIDT");
        ck_assert_msg(xbt_direct_page_sensitive(vm, 4096, ~0ull, 8192),
                      "a find in the first bytes without context must count");
    }
    xbt_vm_destroy(vm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("direct_scan");
    TCase *tc = tcase_create("umip");
    tcase_add_test(tc, umip_instructions_found_not_imagined);
    tcase_add_test(tc, verdicts_kept_by_content);
    tcase_add_test(tc, host_answered_instructions_at_every_offset);
    tcase_add_test(tc, first_bytes_decoded_after_previous_page);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
