/*
 * test_walk.c - the guest page walker against the SDM's rules: 4 KiB and 4 MiB pages,
 * PSE off ignoring PS, not-present entries at both levels, U/S and R/W with and without
 * CR0.WP, error codes, accessed and dirty bits (where and when they are set), global
 * pages with and without CR4.PGE, PSE-36 high bits, a reserved bit, tables outside RAM,
 * SMEP and SMAP.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "shadow-mmu/walk.h"

#define MEM_SIZE (1u << 20)
static uint32_t mem[MEM_SIZE / 4]; /* guest physical memory: 1 MiB */
static unsigned writes;

static bool rd(void *o, uint64_t gpa, uint32_t *v)
{
    (void)o;
    if (gpa + 4 > MEM_SIZE)
        return false;
    *v = mem[gpa / 4];
    return true;
}

static bool wr(void *o, uint64_t gpa, uint32_t v)
{
    (void)o;
    if (gpa + 4 > MEM_SIZE)
        return false;
    mem[gpa / 4] = v;
    writes++;
    return true;
}

#define PD 0x10000u  /* page directory */
#define PT 0x11000u  /* one page table */
#define PG  0x80000000u
#define WP  0x00010000u
#define PSE 0x10u
#define PGE 0x80u

static void setup(void)
{
    memset(mem, 0, sizeof mem);
    writes = 0;
}

static uint32_t *pde(uint32_t lin) { return &mem[(PD + (lin >> 22) * 4) / 4]; }
static uint32_t *pte(uint32_t lin) { return &mem[(PT + ((lin >> 12) & 0x3ff) * 4) / 4]; }

static bool walk(uint32_t cr0, uint32_t cr4, uint32_t lin, bool w, bool u, xbt_walk_result *r)
{
    xbt_walk_req q = { cr0 | 1, PD, cr4, lin, w, u, false, false };
    return xbt_walk(&q, rd, wr, NULL, r);
}

/* A supervisor access with SMAP's mark (smap) or an instruction fetch (fetch). */
static bool walk_sup(uint32_t cr0, uint32_t cr4, uint32_t lin, bool w, bool fetch, bool smap,
                     xbt_walk_result *r)
{
    xbt_walk_req q = { cr0 | 1, PD, cr4, lin, w, false, fetch, smap };
    return xbt_walk(&q, rd, wr, NULL, r);
}

START_TEST(paging_off_is_identity)
{
    xbt_walk_result r;
    ck_assert(walk(0, 0, 0x12345678, true, false, &r));
    ck_assert_uint_eq(r.gpa, 0x12345678);
    ck_assert_uint_eq(writes, 0);
}
END_TEST

START_TEST(small_page_and_ad_bits)
{
    *pde(0x00401000) = PT | 0x7;       /* P RW US */
    *pte(0x00401000) = 0x00055000 | 0x7;
    xbt_walk_result r;
    ck_assert(walk(PG, 0, 0x00401abc, false, false, &r));
    ck_assert_uint_eq(r.gpa, 0x00055abc);
    ck_assert_uint_eq(r.page_size, 4096);
    ck_assert_uint_eq(*pde(0x00401000) & 0x20, 0x20); /* A in the PDE */
    ck_assert_uint_eq(*pte(0x00401000) & 0x60, 0x20); /* A, no D after a read */
    ck_assert(!r.dirty);
    ck_assert(walk(PG, 0, 0x00401abc, true, false, &r));
    ck_assert_uint_eq(*pte(0x00401000) & 0x60, 0x60); /* D after a write */
    ck_assert(r.dirty);
    ck_assert_uint_eq(*pde(0x00401000) & 0x40, 0); /* the PDE's D is never set for 4K */
    ck_assert_uint_eq(r.pte_gpa, PT + 1 * 4);
    /* The entries as the walk checked and left them (what a fill records). */
    ck_assert_uint_eq(r.pde, PT | 0x27);
    ck_assert_uint_eq(r.pte, 0x00055000 | 0x67);
}
END_TEST

START_TEST(not_present_levels)
{
    xbt_walk_result r;
    ck_assert(!walk(PG, 0, 0x00800000, true, true, &r));
    ck_assert_uint_eq(r.error_code, 0x6); /* not present, write, user */
    *pde(0x00800000) = PT | 0x7;
    ck_assert(!walk(PG, 0, 0x00800000, false, false, &r));
    ck_assert_uint_eq(r.error_code, 0x0);
    /* As on QEMU: the PDE's A is set once the walk reaches the table, even if the PTE
       is not present. */
    ck_assert_uint_eq(*pde(0x00800000) & 0x20, 0x20);
}
END_TEST

START_TEST(rights_and_wp)
{
    *pde(0x00400000) = PT | 0x7;
    *pte(0x00400000) = 0x00060000 | 0x1;  /* present, read-only, supervisor */
    xbt_walk_result r;
    ck_assert(!walk(PG, 0, 0x00400000, false, true, &r));
    ck_assert_uint_eq(r.error_code, 0x5); /* present, read, user */
    ck_assert(!walk(PG, 0, 0x00400000, true, true, &r));
    ck_assert_uint_eq(r.error_code, 0x7);
    ck_assert_uint_eq(*pte(0x00400000) & 0x20, 0); /* no A bit on a failed check */
    ck_assert(walk(PG, 0, 0x00400000, true, false, &r)); /* WP=0: kernel writes anyway */
    ck_assert(r.writable);
    ck_assert(!walk(PG | WP, 0, 0x00400000, true, false, &r));
    ck_assert_uint_eq(r.error_code, 0x3); /* present, write, supervisor */
    /* User page, but the directory entry is supervisor-only: the AND of both levels. */
    *pte(0x00400000) = 0x00060000 | 0x7;
    *pde(0x00400000) = PT | 0x3;
    ck_assert(!walk(PG, 0, 0x00400000, false, true, &r));
    ck_assert_uint_eq(r.error_code, 0x5);
    ck_assert(walk(PG, 0, 0x00400000, false, false, &r));
    ck_assert(!r.user);
}
END_TEST

#define SMEP 0x100000u
#define SMAP 0x200000u

/* SDM vol. 3, 4.6.1: SMEP refuses supervisor fetches from user pages (I/D in every
   fetch fault while it is on), SMAP the marked supervisor data accesses to them (writes
   too with CR0.WP clear); supervisor pages and unmarked accesses are unaffected. */
START_TEST(smep_and_smap)
{
    *pde(0x00400000) = PT | 0x7;
    *pte(0x00400000) = 0x00060000 | 0x7; /* user, writable */
    *pte(0x00401000) = 0x00061000 | 0x3; /* supervisor, writable */
    xbt_walk_result r;
    ck_assert(walk_sup(PG, 0, 0x00400000, false, true, false, &r)); /* SMEP off */
    ck_assert(!walk_sup(PG, SMEP, 0x00400000, false, true, false, &r));
    ck_assert_uint_eq(r.error_code, 0x11); /* present, fetch */
    ck_assert(walk_sup(PG, SMEP, 0x00401000, false, true, false, &r));
    ck_assert(walk_sup(PG, SMEP, 0x00400000, false, false, true, &r)); /* data: SMEP no */
    ck_assert(!walk_sup(PG, SMEP, 0x00802000, false, true, false, &r));
    ck_assert_uint_eq(r.error_code, 0x10); /* not present, fetch: I/D with SMEP */
    ck_assert(!walk_sup(PG, 0, 0x00802000, false, true, false, &r));
    ck_assert_uint_eq(r.error_code, 0x0); /* no SMEP, no NX: no I/D */
    ck_assert(!walk(PG, SMEP, 0x00802000, false, true, &r)); /* not a fetch: no I/D */
    ck_assert_uint_eq(r.error_code, 0x4);

    ck_assert(!walk_sup(PG | WP, SMAP, 0x00400000, false, false, true, &r));
    ck_assert_uint_eq(r.error_code, 0x1);
    ck_assert(!walk_sup(PG, SMAP, 0x00400000, true, false, true, &r)); /* WP=0 too */
    ck_assert_uint_eq(r.error_code, 0x3);
    ck_assert(walk_sup(PG, SMAP, 0x00400000, true, false, false, &r)); /* AC=1, say */
    ck_assert(walk_sup(PG, SMAP, 0x00401000, true, false, true, &r)); /* supervisor page */
    ck_assert(walk_sup(PG, 0, 0x00400000, true, false, true, &r));    /* CR4.SMAP clear */
    ck_assert(walk(PG, SMAP | SMEP, 0x00400000, true, true, &r));     /* a user access */
    ck_assert(walk_sup(PG, SMAP, 0x00400000, false, true, true, &r)); /* fetch: SMEP's */
}
END_TEST

START_TEST(large_pages)
{
    *pde(0x00c00000) = 0x01000000 | 0x80 | 0x7 | 0x100; /* 4 MiB at 16 MiB, global */
    xbt_walk_result r;
    ck_assert(walk(PG, PSE, 0x00c12345, true, true, &r));
    ck_assert_uint_eq(r.gpa, 0x01012345);
    ck_assert_uint_eq(r.page_size, 4u << 20);
    ck_assert_uint_eq(*pde(0x00c00000) & 0x60, 0x60); /* A and D in the PDE */
    ck_assert(!r.global);                              /* CR4.PGE clear */
    ck_assert_uint_eq(r.pde, 0x01000000 | 0x80 | 0x67 | 0x100); /* both: the one entry */
    ck_assert_uint_eq(r.pte, r.pde);
    ck_assert(walk(PG, PSE | PGE, 0x00c12345, false, false, &r));
    ck_assert(r.global);
    /* PSE-36: bits 20:13 are physical bits 39:32. */
    *pde(0x01000000) = 0x01400000 | (0x3u << 13) | 0x80 | 0x3;
    ck_assert(walk(PG, PSE, 0x01000010, false, false, &r));
    ck_assert_uint_eq(r.gpa, 0x301400010ull);
    /* Bit 21 is reserved: a fault with RSVD and P. */
    *pde(0x01400000) = 0x01800000 | (1u << 21) | 0x80 | 0x3;
    ck_assert(!walk(PG, PSE, 0x01400000, false, false, &r));
    ck_assert_uint_eq(r.error_code, 0x9);
    /* Without CR4.PSE the PS bit is ignored: the entry points to a page table. */
    *pde(0x01800000) = PT | 0x80 | 0x7;
    *pte(0x01800000) = 0x00070000 | 0x7;
    ck_assert(walk(PG, 0, 0x01800004, false, false, &r));
    ck_assert_uint_eq(r.gpa, 0x00070004);
}
END_TEST

START_TEST(tables_outside_ram)
{
    *pde(0x00400000) = 0x7fff0000 | 0x7; /* the page table is not in RAM */
    xbt_walk_result r;
    ck_assert(!walk(PG, 0, 0x00400000, false, false, &r));
    ck_assert(r.bus_error);
}
END_TEST

/* ---- PAE: PDPT at 0x12000 (+0x20 for a second one), directory 0x13000, table 0x14000 */
#define PDPT 0x12000u
#define PAE_PD 0x13000u
#define PAE_PT 0x14000u
#define PAE 0x20u
static void set64(uint32_t gpa, uint64_t v)
{
    mem[gpa / 4] = (uint32_t)v;
    mem[gpa / 4 + 1] = (uint32_t)(v >> 32);
}
static uint64_t get64(uint32_t gpa) { return mem[gpa / 4] | (uint64_t)mem[gpa / 4 + 1] << 32; }
static bool walk_pae(uint32_t cr3, uint32_t cr4, uint32_t lin, bool w, bool u,
                     xbt_walk_result *r)
{
    xbt_walk_req q = { PG | 1, cr3, cr4 | PAE, lin, w, u, false, false };
    return xbt_walk(&q, rd, wr, NULL, r);
}

START_TEST(pae_small_page_and_ad_bits)
{
    /* lin 0x40201000: PDPTE 1, PDE 1, PTE 1. */
    set64(PDPT + 8, PAE_PD | 1);
    set64(PAE_PD + 8, PAE_PT | 0x7);
    set64(PAE_PT + 8, 0x55000 | 0x7);
    xbt_walk_result r;
    ck_assert(walk_pae(PDPT, 0, 0x40201234, false, true, &r));
    ck_assert_uint_eq(r.gpa, 0x55234);
    ck_assert_uint_eq(r.page_size, 4096);
    ck_assert(r.user && r.writable && !r.dirty);
    ck_assert_uint_eq(get64(PAE_PD + 8) & 0x60, 0x20);  /* directory: A */
    ck_assert_uint_eq(get64(PAE_PT + 8) & 0x60, 0x20);  /* table: A, not D */
    ck_assert_uint_eq(get64(PDPT + 8), PAE_PD | 1);     /* PDPTE: no A bit in PAE */
    ck_assert(walk_pae(PDPT, 0, 0x40201000, true, false, &r));
    ck_assert_uint_eq(get64(PAE_PT + 8) & 0x60, 0x60);  /* a write: D */
    ck_assert(r.dirty);
    /* The CR3 low bits select a PDPT inside the page (32-byte aligned). */
    set64(PDPT + 0x20 + 8, PAE_PD | 1);
    ck_assert(walk_pae(PDPT + 0x20, 0, 0x40201000, false, false, &r));
    ck_assert_uint_eq(r.gpa, 0x55000);
}
END_TEST

START_TEST(pae_large_page_global_and_faults)
{
    set64(PDPT, PAE_PD | 1);
    set64(PAE_PD + 2 * 8, 0x00400000 | 0x80 | 0x100 | 0x3); /* lin 0x00400000: 2 MiB, G */
    xbt_walk_result r;
    ck_assert(walk_pae(PDPT, PGE, 0x005abcde, false, false, &r));
    ck_assert_uint_eq(r.gpa, 0x005abcde);
    ck_assert_uint_eq(r.page_size, 2u << 20);
    ck_assert(r.global && !r.user);
    ck_assert(!walk_pae(PDPT, 0, 0x005abcde, false, true, &r)); /* supervisor page */
    ck_assert_uint_eq(r.error_code, XBT_PF_P | XBT_PF_U);
    /* Not present at each level. */
    ck_assert(!walk_pae(PDPT, 0, 0x80000000, true, false, &r)); /* PDPTE 2 clear */
    ck_assert_uint_eq(r.error_code, XBT_PF_W);
    ck_assert(!walk_pae(PDPT, 0, 0x00800000, false, false, &r)); /* PDE 4 clear */
    ck_assert_uint_eq(r.error_code, 0);
    /* Reserved bits: above MAXPHYADDR (36), bit 63 (no NX), bits 20:13 of a 2 MiB PDE,
       PDPTE bits 1-2 and 5-8. */
    set64(PAE_PD + 3 * 8, PAE_PT | 0x3);
    set64(PAE_PT, 0x66000 | 0x3 | (1ull << 45));
    ck_assert(!walk_pae(PDPT, 0, 0x00600000, false, false, &r));
    ck_assert_uint_eq(r.error_code, XBT_PF_P | XBT_PF_RSVD);
    set64(PAE_PT, 0x66000 | 0x3 | (1ull << 63));
    ck_assert(!walk_pae(PDPT, 0, 0x00600000, true, false, &r));
    ck_assert_uint_eq(r.error_code, XBT_PF_P | XBT_PF_W | XBT_PF_RSVD);
    set64(PAE_PT, 0x66000 | 0x3);
    ck_assert(walk_pae(PDPT, 0, 0x00600000, false, false, &r));
    set64(PAE_PD + 2 * 8, 0x00400000 | 0x80 | 0x3 | (1u << 13));
    ck_assert(!walk_pae(PDPT, 0, 0x00400000, false, false, &r));
    ck_assert(r.error_code & XBT_PF_RSVD);
    set64(PDPT + 3 * 8, PAE_PD | 1 | 2);
    ck_assert(!walk_pae(PDPT, 0, 0xc0000000, false, false, &r));
    ck_assert_uint_eq(r.error_code, XBT_PF_P | XBT_PF_RSVD);
    /* A 36-bit physical address beyond 4 GiB is returned as such (no RAM there). */
    set64(PAE_PT + 8, 0x123456000ull | 0x3);
    ck_assert(walk_pae(PDPT, 0, 0x00601000, false, false, &r));
    ck_assert_uint_eq(r.gpa, 0x123456000ull);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("walk");
    TCase *tc = tcase_create("32-bit paging");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, paging_off_is_identity);
    tcase_add_test(tc, small_page_and_ad_bits);
    tcase_add_test(tc, not_present_levels);
    tcase_add_test(tc, rights_and_wp);
    tcase_add_test(tc, smep_and_smap);
    tcase_add_test(tc, large_pages);
    tcase_add_test(tc, tables_outside_ram);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("PAE paging");
    tcase_add_checked_fixture(tp, setup, NULL);
    tcase_add_test(tp, pae_small_page_and_ad_bits);
    tcase_add_test(tp, pae_large_page_global_and_faults);
    suite_add_tcase(s, tp);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
