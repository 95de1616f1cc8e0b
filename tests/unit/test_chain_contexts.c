/*
 * test_chain_contexts.c - the shadow MMU's mapping epochs and the translation cache's
 * chains together, as the runtime joins them (src/runtime/mmu.c, epochs_bumped and
 * xbt_code_seen: the same calls, in the same order): random CR3 loads among address
 * spaces that map one 4 MiB region to different frames (a shell and the programs it
 * runs, each at 0x400000), page table entries changed with and without INVLPG, the
 * region's directory entry taken away and given back without a load, blocks checked and
 * chained as the dispatcher does.  After every step: every block that can run without a
 * walk (fresh), and every block a chain leads to from one that can run, is on the frame
 * the current tables map at its address, but where the entry changed since the last
 * CR3 load or INVLPG of it (a TLB may still hold the old translation).  Contexts set
 * aside (smmu.h, region_alt_*) keep their chains; none of those may become reachable.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "shadow-mmu/smmu.h"
#include "tcache/tcache.h"

#define RAM (16u << 20)
#define PG  0x80000000u
#define P   0x001u
#define RW  0x002u
#define US  0x004u
#define A   0x020u
#define D   0x040u

#define NDIR    4
#define NPAGE   8                /* pages of region 1 (0x400000) the test uses */
#define NFRAME  6                /* frames they map (0x200000 + 4 KiB f) */
#define NOUT    3                /* pages of region 2 (one table shared by all) */
#define PD(k)   (0x100000u + (uint32_t)(k) * 0x2000u)
#define PT(k)   (0x101000u + (uint32_t)(k) * 0x2000u)
#define PT_OUT  0x120000u
#define FRAME(f) (0x200000u + (uint32_t)(f) * 0x1000u)
#define OUT_FRAME(i) (0x300000u + (uint32_t)(i) * 0x1000u)

static xbt_smmu *m;
static xbt_tcache *tc;
static uint8_t *ram;
static xbt_phys phys;

static uint32_t *word(uint32_t gpa) { return (uint32_t *)(void *)(ram + gpa); }

static bool d_drop(void *o, unsigned set, uint32_t lin, uint64_t len)
{
    (void)o, (void)set, (void)lin, (void)len;
    return true;
}

static int d_map(void *o, uint32_t lin, uint64_t gpa, uint32_t len, bool w, int64_t fetch)
{
    (void)o, (void)lin, (void)gpa, (void)len, (void)w, (void)fetch;
    return XBT_DMAP_FAIL;
}

static void d_park(void *o, unsigned set) { (void)o, (void)set; }

static uint8_t code[64];

/* A block of 16 bytes at lin (flat: EIP = lin) on physical pages page0 and page1 (its
   first and last byte's), one exit. */
static xbt_block *insert(uint32_t lin, uint32_t page0, uint32_t page1)
{
    xbt_tblock tb;
    memset(&tb, 0, sizeof tb);
    memset(code, 0x90, sizeof code);
    code[0] = 0xE9; /* jmp rel32 -> its stub at 5 */
    memset(code + 1, 0, 4);
    tb.eip = lin;
    tb.guest_len = 16;
    tb.n_insns = 1;
    tb.code = code;
    tb.code_len = sizeof code;
    tb.body_len = 5;
    tb.n_exits = 1;
    tb.exits[0] = (struct xbt_texit){ 1, 5, lin + 100, XBT_EXIT_JMP, 0, XBT_ALT_NONE, 0 };
    tb.n_map = 1;
    tb.map[0] = (struct xbt_pcmap){ 0, lin, 0, 0, 0 };
    return xbt_tc_insert(tc, &tb, 7, lin, page0, page1, NULL);
}

static xbt_smmu_regs regs;

/* The page the current tables map lin to, with the entries a walk finds; false: none. */
static bool walk(uint32_t lin, xbt_code_walk *w)
{
    uint32_t pde = *word((regs.cr3 & ~0xFFFu) + (lin >> 22) * 4);
    if (!(pde & P))
        return false;
    uint32_t pte = *word((pde & ~0xFFFu) + ((lin >> 12) & 0x3FF) * 4);
    if (!(pte & P))
        return false;
    *w = (xbt_code_walk){ pte >> 12, pde, pte };
    return true;
}

/* What the runtime does after the shadow MMU changed epochs (mmu.c, epochs_bumped). */
static void bumped(int what)
{
    if (what == XBT_SMMU_UNCHANGED)
        return;
    if (what == XBT_SMMU_ALL) {
        xbt_tc_unchain_all(tc);
        return;
    }
    uint8_t plain[sizeof m->region_bumped];
    for (uint32_t i = 0; i < sizeof plain; i++)
        plain[i] = m->region_bumped[i] & (uint8_t)~(m->region_alt_keep[i] | m->region_alt_restore[i]);
    xbt_tc_unchain_regions(tc, plain);
    xbt_tc_switch_regions(tc, m->region_alt_keep, m->region_alt_restore);
    xbt_tc_unchain_into(tc, m->region_hidden);
}

static uint32_t revives, drops;

/* A block checked on its page (mmu.c, xbt_code_seen; run.c, block_check). */
static void seen(xbt_block *b, const xbt_code_walk *w0, const xbt_code_walk *w1)
{
    xbt_smmu_code_seen(m, regs, b->lin, b->lin + 15, w0, w1);
    revives += m->region_revived;
    drops += m->region_alt_drop_any;
    if (m->region_revived) {
        m->region_revived = false;
        bumped(XBT_SMMU_REGIONS);
    }
    if (m->region_alt_drop_any) {
        xbt_tc_drop_alt(tc, m->region_alt_drop);
        memset(m->region_alt_drop, 0, sizeof m->region_alt_drop);
        m->region_alt_drop_any = false;
    }
    b->epoch = m->tc_epoch;
}

static bool fresh(const xbt_block *b)
{
    return xbt_smmu_fresh(m, b->lin, b->guest_len, b->epoch);
}

/* The linear pages the test uses: region 1's first NPAGE, its last (0x7FF000, where a
   block crosses into region 2) and region 2's first NOUT; an index for each. */
#define EDGE 0x7FF000u
#define NLIN (NPAGE + 1 + NOUT)
static uint32_t lin_index(uint32_t lin)
{
    uint32_t pg = lin >> 12;
    if (pg >= 0x400 && pg < 0x400 + NPAGE)
        return pg - 0x400;
    if (pg == EDGE >> 12)
        return NPAGE;
    ck_assert_uint_lt(pg - 0x800, NOUT);
    return NPAGE + 1 + (pg - 0x800);
}
static bool stale_ok[NLIN]; /* entry changed in the current tables since its flush */

/* Where blocks start: in region 1's pages, across its end into region 2, in region 2. */
static uint32_t start_of(uint32_t k)
{
    k %= NPAGE + 1 + NOUT;
    if (k < NPAGE)
        return 0x400010u + k * 0x1000u;
    if (k == NPAGE)
        return EDGE + 0xFF8u; /* 0x7FFFF8: 8 bytes in each region */
    return 0x800010u + (k - NPAGE - 1) * 0x1000u;
}

#define NBLK 512
static xbt_block *blk[NBLK];
static uint32_t nblk;

/* The dispatcher reaches the code at lin: the block made from the frames mapped there
   now, checked (or made), unless it is fresh; NULL where a page is not mapped. */
static xbt_block *reach(uint32_t lin)
{
    xbt_code_walk w0, w1;
    if (!walk(lin, &w0) || !walk(lin + 15, &w1))
        return NULL;
    xbt_block *b = NULL;
    for (uint32_t i = 0; i < nblk && !b; i++)
        if (blk[i]->lin == lin && blk[i]->page[0] == w0.page && blk[i]->page[1] == w1.page)
            b = blk[i];
    bool made = !b;
    if (made) {
        ck_assert_uint_lt(nblk, NBLK);
        b = blk[nblk++] = insert(lin, w0.page, w1.page); /* translated: seen as checked */
    }
    ck_assert_ptr_nonnull(b);
    if (made || !fresh(b))
        seen(b, &w0, &w1);
    return b;
}

/* Whether block b is on the frames the current tables map at its pages. */
static bool on_its_frames(const xbt_block *b)
{
    xbt_code_walk w0, w1;
    return walk(b->lin, &w0) && walk(b->lin + 15, &w1) && w0.page == b->page[0] &&
           w1.page == b->page[1];
}

/* The property: from every fresh block, along chains, only blocks on their frames. */
static void assert_sound(int step)
{
    xbt_block *queue[NBLK];
    bool queued[NBLK] = { false };
    uint32_t qn = 0;
    for (uint32_t i = 0; i < nblk; i++)
        if (fresh(blk[i])) {
            queued[i] = true;
            queue[qn++] = blk[i];
        }
    for (uint32_t k = 0; k < qn; k++) {
        xbt_block *b = queue[k];
        if (stale_ok[lin_index(b->lin)] || stale_ok[lin_index(b->lin + 15)])
            continue; /* may still run as the TLB had it: nothing follows from it */
        ck_assert_msg(on_its_frames(b),
                      "step %d: block at %08x (frames %05x %05x) can run, its pages map "
                      "elsewhere", step, b->lin, b->page[0], b->page[1]);
        xbt_block *t = b->chained_to[0];
        for (uint32_t i = 0; t && i < nblk; i++)
            if (blk[i] == t && !queued[i]) {
                queued[i] = true;
                queue[qn++] = t;
            }
    }
}

static void setup(void)
{
    const char *why = NULL;
    ck_assert_msg(xbt_phys_init(&phys, &why), "%s", why ? why : "");
    xbt_mem_region r0 = { 0, 0, 0, RAM, -1, 0, 0 };
    ck_assert_int_eq(xbt_phys_set(&phys, &r0), XBT_OK);
    ram = phys.view;
    m = calloc(1, sizeof *m);
    ck_assert_msg(xbt_smmu_init(m, &phys, &why), "%s", why ? why : "");
    m->dwin = (struct xbt_smmu_dwin){ NULL, d_drop, d_map, d_park };
    tc = xbt_tc_create(1u << 24);
    ck_assert_ptr_nonnull(tc);
    nblk = 0;
    memset(stale_ok, 0, sizeof stale_ok);
}

static void teardown(void)
{
    xbt_tc_destroy(tc);
    xbt_smmu_destroy(m);
    free(m);
    xbt_phys_destroy(&phys);
}

/* Directory k maps region 1 through its own table, page p to frame (p + k) mod NFRAME
   (directory 0 and 2 alike: a shell and its forked child), its last page to frame k mod
   2; region 2 through one shared table.  Directory 0 loaded. */
static void tables(void)
{
    for (int k = 0; k < NDIR; k++) {
        memset(ram + PD(k), 0, 4096);
        memset(ram + PT(k), 0, 4096);
        *word(PD(k) + 1 * 4) = PT(k) | P | RW | US | A;
        *word(PD(k) + 2 * 4) = PT_OUT | P | RW | US | A;
        for (uint32_t p = 0; p < NPAGE; p++)
            *word(PT(k) + p * 4) = FRAME((p + (k == 2 ? 0 : (uint32_t)k)) % NFRAME) | P | US | A;
        *word(PT(k) + 0x3FF * 4) = FRAME((uint32_t)k % 2) | P | US | A;
    }
    for (uint32_t i = 0; i < NOUT; i++)
        *word(PT_OUT + i * 4) = OUT_FRAME(i) | P | US | A;
    regs = (xbt_smmu_regs){ PG | 0x11, PD(0), 0 };
    xbt_window_reset(m, regs);
    bumped(xbt_smmu_cr3_changed(m, regs));
}

static void run_random(uint32_t seed, int steps)
{
    tables();
    int cur = 0;
    uint32_t keeps = 0, restores = 0;
    revives = drops = 0;
    for (int step = 0; step < steps; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 4, op = r % 16, p = (r >> 4) % NPAGE, q = (r >> 8) % 16;
        uint32_t k = (r >> 12) % NDIR, f = (r >> 14) % NFRAME;
        if (op < 6) {
            /* Code runs at one place, then at another, and the exit the first took is
               chained to the second, as the dispatcher does: each found by a lookup
               that checks it, unless fresh. */
            xbt_block *from = reach(start_of(q)), *to = reach(start_of(r >> 20));
            if (from && to && !from->chained_to[0])
                xbt_tc_chain(tc, from, 0, to);
        } else if (op < 9) { /* a CR3 load */
            cur = (int)k;
            regs.cr3 = PD(k);
            bumped(xbt_smmu_cr3_changed(m, regs));
            for (uint32_t i = 0; i < sizeof m->region_alt_keep; i++) {
                keeps += (uint32_t)__builtin_popcount(m->region_alt_keep[i]);
                restores += (uint32_t)__builtin_popcount(m->region_alt_restore[i]);
            }
            memset(stale_ok, 0, sizeof stale_ok);
        } else if (op < 12) {
            /* An entry of region 1 changes (another frame, or not present), the INVLPG
               maybe left out (then the TLB may keep the old one until a flush). */
            uint32_t lin = (r >> 17) % 6 == 0 ? EDGE : 0x400000u + p * 0x1000u;
            uint32_t e = (r >> 18) % 5 == 0 ? 0 : FRAME(f) | P | US | A;
            *word(PT(k) + ((lin >> 12) & 0x3FF) * 4) = e;
            /* (Under a directory entry that is missing no TLB entry can be made: a
               change there needs no flush, unless the entry went after the load.) */
            if ((int)k == cur && *word(PD(k) + 4)) {
                if ((r >> 21) & 1) {
                    bumped(xbt_smmu_mapping_changed(m, regs, lin, 4096));
                    stale_ok[lin_index(lin)] = false;
                } else {
                    stale_ok[lin_index(lin)] = true;
                }
            }
        } else if (op < 14) {
            /* Region 1's or 2's directory entry taken away, or given back (no flush is
               needed for a new entry; one taken away may be used from the TLB until
               the next load). */
            uint32_t reg = 1 + ((r >> 17) & 1), at = PD(k) + reg * 4;
            bool give = *word(at) == 0;
            *word(at) = give ? ((reg == 1 ? PT(k) : PT_OUT) | P | RW | US | A) : 0;
            if ((int)k == cur && !give)
                for (uint32_t i = 0; i < NLIN; i++)
                    if ((reg == 1) == (i <= NPAGE))
                        stale_ok[i] = true;
        } else if (op == 14 && (r >> 18) % 8 == 0) { /* everything flushed */
            bumped(xbt_smmu_mapping_changed(m, regs, 0, 0));
            memset(stale_ok, 0, sizeof stale_ok);
        }
        bool any_drop = false;
        for (uint32_t i = 0; i < sizeof m->region_alt_drop; i++)
            any_drop |= m->region_alt_drop[i] != 0;
        ck_assert_msg(!any_drop && !m->region_revived, "step %d: a request not taken", step);
        assert_sound(step);
    }
    /* The paths this test is for were taken. */
    ck_assert_uint_gt(keeps, 10);
    ck_assert_uint_gt(restores, 10);
    ck_assert_uint_gt(revives, 10);
    ck_assert_uint_gt(drops, 0);
}

/* Both regions of a block across their border absent at a load, mapped again without
   one (a page of the first now another frame), and that block checked first: both get
   a new epoch, the chains among the first's blocks go or are set aside with it, and a
   block of it on its old frame, checked, does not chain into the page that moved (each
   revive cleared what the other had marked: found in review). */
START_TEST(revive_of_two_regions_at_once)
{
    tables();
    xbt_block *a = reach(start_of(0)), *b = reach(start_of(1));
    ck_assert(a && b && reach(start_of(NPAGE)));
    xbt_tc_chain(tc, a, 0, b);
    *word(PD(1) + 4) = *word(PD(1) + 8) = 0;
    regs.cr3 = PD(1);
    bumped(xbt_smmu_cr3_changed(m, regs));
    *word(PT(1) + 0) = FRAME(0) | P | US | A;       /* a's frame, as in directory 0 */
    *word(PT(1) + 4) = FRAME(5) | P | US | A;       /* b's page: another frame */
    *word(PT(1) + 0x3FF * 4) = FRAME(0) | P | US | A; /* the border block's, as in 0 */
    *word(PD(1) + 4) = PT(1) | P | RW | US | A;
    *word(PD(1) + 8) = PT_OUT | P | RW | US | A;
    ck_assert_ptr_nonnull(reach(start_of(NPAGE)));
    ck_assert_ptr_eq(reach(start_of(0)), a);
    assert_sound(0);
}
END_TEST

START_TEST(random_switches_keep_chains_sound)
{
    static const uint32_t seeds[] = { 1, 12345, 0x5eed2001, 0xdecafbad, 77, 4242 };
    for (unsigned i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        if (i) {
            teardown();
            setup();
        }
        run_random(seeds[i], 20000);
    }
    /* A longer soak by hand: XBT_CHAIN_SOAK=N runs N more seeds (N * 20,000 steps). */
    const char *e = getenv("XBT_CHAIN_SOAK");
    unsigned long n = e ? strtoul(e, NULL, 0) : 0;
    for (unsigned long k = 0; k < n; k++) {
        teardown();
        setup();
        run_random((uint32_t)(0x50a50000u + k * 2654435761u), 20000);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chain_contexts");
    TCase *t = tcase_create("core");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, revive_of_two_regions_at_once);
    tcase_add_test(t, random_switches_keep_chains_sound);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
