/*
 * test_smmu.c - the shadow MMU as a unit of its own: linked with src/shadow-mmu alone (no
 * runtime), it maps guest RAM (a memfd) into real host windows, and what the host MMU
 * then allows is probed with loads and stores that may fault.  Covered: the identity
 * K-window with paging off and its code pages read-only; fills after a walk (a run of
 * neighbours that map alike, a 4 MiB page whole, clean pages read-only); code pages
 * under paging found through the reverse map (every writable alias dropped, other
 * mappings kept); CR3 switches (non-global mappings dropped, kept on a switch back when
 * the entries are unchanged, global ones kept with CR4.PGE); INVLPG and the mapping
 * epochs translations are checked by; the D-window through the runtime's operations.
 */
#define _GNU_SOURCE
#include <check.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shadow-mmu/smmu.h"

#define RAM (16u << 20)
#define PG   0x80000000u
#define PSE  0x10u
#define PGE  0x80u
#define P    0x001u
#define RW   0x002u
#define US   0x004u
#define A    0x020u
#define D    0x040u
#define PS   0x080u
#define G    0x100u

static xbt_smmu *m;
static uint8_t *ram;
static xbt_phys phys;

/* ---- probing the host MMU ------------------------------------------------------------ */

static sigjmp_buf probe_jmp;
static volatile int probing;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    if (probing)
        siglongjmp(probe_jmp, 1);
    abort();
}

/* Whether a load (or a store of the byte already there) at p succeeds. */
static bool can(volatile uint8_t *p, bool write)
{
    probing = 1;
    if (sigsetjmp(probe_jmp, 1)) {
        probing = 0;
        return false;
    }
    uint8_t b = *p;
    if (write)
        *p = b;
    probing = 0;
    return true;
}

static bool can_read(uint32_t lin) { return can(m->kbase + lin, false); }
static bool can_write(uint32_t lin) { return can(m->kbase + lin, true); }

/* ---- the D-window's operations, recorded ------------------------------------------- */

static unsigned d_drops, d_parks, d_maps;
static uint32_t d_last_lin;
static uint32_t d_min; /* below it the mock refuses (mmap_min_addr) */

static bool d_drop(void *o, unsigned set, uint32_t lin, uint64_t len)
{
    (void)o, (void)set, (void)len;
    d_drops++;
    d_last_lin = lin;
    return true;
}

static int d_map(void *o, uint32_t lin, uint64_t gpa, uint32_t len, bool w, int64_t fetch)
{
    (void)o, (void)fetch;
    if (lin < d_min)
        return XBT_DMAP_FAIL;
    d_maps++;
    xbt_wmap_note(m, XBT_WINDOW_D, lin, len); /* as the runtime's xbt_direct_map does */
    if (w && m->window_paged)
        xbt_rmap_note(m, XBT_WINDOW_D, lin, gpa, len);
    return XBT_DMAP_OK;
}

static void d_park(void *o, unsigned set)
{
    (void)o, (void)set;
    d_parks++;
}

/* ---- guest page tables in RAM --------------------------------------------------------- */

static uint32_t *word(uint32_t gpa) { return (uint32_t *)(ram + gpa); }

/* What a walk of lin through directory pd finds (4 KiB pages, no PAE): as a block's
   walk reports it to xbt_smmu_code_seen. */
static xbt_code_walk walked(uint32_t pd, uint32_t lin)
{
    uint32_t pde = *word(pd + (lin >> 22) * 4);
    uint32_t pte = *word((pde & ~0xFFFu) + ((lin >> 12) & 0x3FF) * 4);
    return (xbt_code_walk){ pte >> 12, pde, pte };
}

/* Maps lin -> gpa with 4 KiB pages in directory pd, the page table at pt. */
static void map4k(uint32_t pd, uint32_t pt, uint32_t lin, uint32_t gpa, uint32_t flags)
{
    *word(pd + (lin >> 22) * 4) = pt | P | RW | US | A;
    *word(pt + ((lin >> 12) & 0x3FF) * 4) = gpa | flags;
}

/* Windows reset and a CR3 load of regs, then a block at lin (16 bytes, 4 KiB pages under
   directory pd) checked there: the epoch it was checked at. */
static uint32_t check_block(xbt_smmu_regs regs, uint32_t pd, uint32_t lin)
{
    xbt_window_reset(m, regs);
    xbt_smmu_cr3_changed(m, regs);
    uint32_t epoch = m->tc_epoch;
    xbt_code_walk w = walked(pd, lin);
    xbt_smmu_code_seen(m, regs, lin, lin + 15, &w, &w);
    return epoch;
}

static bool rd32(void *o, uint64_t gpa, uint32_t *v)
{
    (void)o;
    if (gpa + 4 > RAM)
        return false;
    memcpy(v, ram + gpa, 4);
    return true;
}

static bool wr32(void *o, uint64_t gpa, uint32_t v)
{
    (void)o;
    if (gpa + 4 > RAM)
        return false;
    memcpy(ram + gpa, &v, 4);
    return true;
}

/* What the runtime does with a host fault at lin: walk, then fill (writable when the
   walk allows it and the page is dirty or this is a write, and not a code page). */
static int fault(xbt_smmu_regs regs, int win, uint32_t lin, bool write)
{
    xbt_walk_req q = { regs.cr0, regs.cr3, regs.cr4, lin, write, win != XBT_WINDOW_K, false, false };
    xbt_walk_result r;
    ck_assert_msg(xbt_walk(&q, rd32, wr32, NULL, &r), "walk of %08x failed", lin);
    bool writable = r.writable && (r.dirty || write) && !m->code_prot[r.gpa >> 12];
    return xbt_smmu_fill(m, regs, win, lin, &r, writable, false, true);
}

/* A read-only K-window fill of lin after its walk, with another vCPU's write of
   `value` to the table entry at `entry` in between (the walk saw the entry before). */
static int fill_raced(xbt_smmu_regs regs, uint32_t lin, uint32_t *entry, uint32_t value)
{
    xbt_walk_req q = { regs.cr0, regs.cr3, regs.cr4, lin, false, false, false, false };
    xbt_walk_result r;
    ck_assert_msg(xbt_walk(&q, rd32, wr32, NULL, &r), "walk of %08x failed", lin);
    *entry = value;
    return xbt_smmu_fill(m, regs, XBT_WINDOW_K, lin, &r, false, false, true);
}

static void setup(void)
{
    struct sigaction sa = { 0 };
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    const char *why = NULL;
    ck_assert_msg(xbt_phys_init(&phys, &why), "%s", why ? why : "");
    xbt_mem_region r0 = { 0, 0, 0, RAM, -1, 0, 0 }; /* guest RAM: slot 0 at 0 */
    ck_assert_int_eq(xbt_phys_set(&phys, &r0), XBT_OK);
    ram = phys.view;
    m = calloc(1, sizeof *m);
    ck_assert_msg(xbt_smmu_init(m, &phys, &why), "%s", why ? why : "");
    m->dwin = (struct xbt_smmu_dwin){ NULL, d_drop, d_map, d_park };
    d_drops = d_parks = d_maps = 0;
}

static void teardown(void)
{
    xbt_smmu_destroy(m);
    free(m);
    xbt_phys_destroy(&phys);
}

static const xbt_smmu_regs OFF = { 0x11, 0, 0 };

START_TEST(identity_with_paging_off)
{
    ram[0x5000] = 0xAB;
    ck_assert_int_eq(m->kbase[0x5000], 0xAB);
    m->kbase[0x6000] = 0xCD; /* the window is RAM itself */
    ck_assert_int_eq(ram[0x6000], 0xCD);
    ck_assert(!can_read(RAM)); /* nothing past RAM */
    xbt_protect_code_page(m, 0x6, 1);
    ck_assert(can_read(0x6000));
    ck_assert(!can_write(0x6000));
    ck_assert(can_write(0x7000));
    xbt_unprotect_code_page(m, 0x6, 1);
    ck_assert(can_write(0x6000));
    /* A reset (paging still off) keeps code pages read-only. */
    xbt_protect_code_page(m, 0x8, 1);
    xbt_window_reset(m, OFF);
    ck_assert(!can_write(0x8000));
    ck_assert(can_write(0x9000));
}
END_TEST

#define PD1 0x100000u
#define PT1 0x101000u
#define PD2 0x102000u
#define PT2 0x103000u
#define PD3 0x104000u
#define PT3 0x105000u

START_TEST(fill_runs_and_dirty_bits)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
    /* 0x400000.. -> 0x200000..: 4 pages accessed and dirty, then one clean one. */
    for (uint32_t i = 0; i < 4; i++)
        map4k(PD1, PT1, 0x400000 + i * 4096, 0x200000 + i * 4096, P | RW | A | D);
    map4k(PD1, PT1, 0x404000, 0x204000, P | RW | A);
    xbt_window_reset(m, regs);
    ck_assert(!can_read(0x401000));
    ck_assert_int_eq(fault(regs, XBT_WINDOW_K, 0x401000, false), XBT_DMAP_OK);
    /* The neighbours that map alike came in with it; the clean page did not. */
    ram[0x203010] = 0x5A;
    ck_assert(can_write(0x400000) && can_write(0x403000));
    ck_assert_int_eq(m->kbase[0x403010], 0x5A);
    ck_assert(!can_read(0x404000));
    /* A read of the clean page maps it read-only: the first write comes back. */
    ck_assert_int_eq(fault(regs, XBT_WINDOW_K, 0x404000, false), XBT_DMAP_OK);
    ck_assert(can_read(0x404000) && !can_write(0x404000));
    ck_assert_int_eq(fault(regs, XBT_WINDOW_K, 0x404000, true), XBT_DMAP_OK);
    ck_assert(can_write(0x404000));
    ck_assert_uint_eq(*word(PT1 + 4 * 4) & D, D); /* the walk set the dirty bit */
}
END_TEST

START_TEST(large_page_whole)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, PSE };
    *word(PD1 + 2 * 4) = 0x400000 | P | RW | A | D | PS; /* 0x800000 -> 0x400000, 4 MiB */
    xbt_window_reset(m, regs);
    ck_assert_int_eq(fault(regs, XBT_WINDOW_K, 0x812345, false), XBT_DMAP_OK);
    ck_assert(can_write(0x800000) && can_write(0xBFF000));
    ram[0x7FF000] = 0x77;
    ck_assert_int_eq(m->kbase[0xBFF000], 0x77);
    /* Its two 2 MiB units are marked, so that an INVLPG there drops all of it (the
       runtime widens the range); a range drop takes exactly the range. */
    ck_assert_uint_eq(m->pse_region[0], (1u << 4) | (1u << 5));
    ck_assert_int_eq(xbt_smmu_mapping_changed(m, regs, 0x900000, 4096), XBT_SMMU_UNCHANGED);
    ck_assert(!can_read(0x900000) && can_read(0x800000) && can_read(0xBFF000));
}
END_TEST

START_TEST(code_page_drops_its_writable_aliases)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
    /* Two linear aliases of RAM page 0x300000, and an unrelated page. */
    map4k(PD1, PT1, 0x400000, 0x300000, P | RW | A | D);
    map4k(PD1, PT1, 0x410000, 0x300000, P | RW | A | D);
    map4k(PD1, PT1, 0x420000, 0x301000, P | RW | A | D);
    xbt_window_reset(m, regs);
    fault(regs, XBT_WINDOW_K, 0x400000, true);
    fault(regs, XBT_WINDOW_K, 0x410000, true);
    fault(regs, XBT_WINDOW_K, 0x420000, true);
    ck_assert(can_write(0x400000) && can_write(0x410000) && can_write(0x420000));
    xbt_protect_code_page(m, 0x300, 1);
    ck_assert_uint_eq(m->code_protect_resets, 0); /* the reverse map knew both */
    ck_assert(!can_read(0x400000) && !can_read(0x410000));
    ck_assert(can_write(0x420000)); /* untouched */
    /* Mapped again, a code page comes back read-only. */
    fault(regs, XBT_WINDOW_K, 0x400000, true);
    ck_assert(can_read(0x400000) && !can_write(0x400000));
}
END_TEST

START_TEST(code_page_with_lost_aliases_resets)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
    for (uint32_t k = 0; k < 3; k++) /* three aliases: more than the reverse map keeps */
        map4k(PD1, PT1, 0x400000 + k * 0x10000, 0x300000, P | RW | A | D);
    map4k(PD1, PT1, 0x480000, 0x305000, P | RW | A | D);
    xbt_window_reset(m, regs);
    for (uint32_t k = 0; k < 3; k++)
        fault(regs, XBT_WINDOW_K, 0x400000 + k * 0x10000, true);
    fault(regs, XBT_WINDOW_K, 0x480000, true);
    xbt_protect_code_page(m, 0x300, 1);
    ck_assert_uint_eq(m->code_protect_resets, 1);
    for (uint32_t k = 0; k < 3; k++)
        ck_assert(!can_read(0x400000 + k * 0x10000));
    ck_assert(!can_read(0x480000)); /* everything went */
}
END_TEST

START_TEST(cr3_switch_with_tlb_semantics)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, PGE }, b = { PG | 0x11, PD2, PGE };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);         /* non-global */
    map4k(PD1, PT1, 0x401000, 0x201000, P | RW | A | D | G);     /* global */
    map4k(PD2, PT2, 0x400000, 0x250000, P | RW | A | D);
    xbt_window_reset(m, a);
    fault(a, XBT_WINDOW_K, 0x400000, false);
    fault(a, XBT_WINDOW_K, 0x401000, false);
    ck_assert(can_read(0x400000) && can_read(0x401000));
    /* Another address space: another set (the least recently used one). */
    xbt_smmu_cr3_changed(m, b);
    ck_assert(!can_read(0x400000));
    ck_assert_uint_eq(d_parks, 1);
    fault(b, XBT_WINDOW_K, 0x400000, false);
    ram[0x250000] = 0x42;
    ck_assert_int_eq(m->kbase[0x400000], 0x42);
    /* Back to A, entries unchanged: its mappings were kept and re-checked. */
    xbt_smmu_cr3_changed(m, a);
    ram[0x200000] = 0x17;
    ck_assert(can_read(0x400000) && can_read(0x401000));
    ck_assert_int_eq(m->kbase[0x400000], 0x17);
    ck_assert_uint_ge(m->wrec_checked, 1);
    /* Away, A's entry changed, back: the mapping is dropped, not used stale. */
    xbt_smmu_cr3_changed(m, b);
    *word(PT1) = 0x260000 | P | RW | A | D;
    xbt_smmu_cr3_changed(m, a);
    ck_assert(!can_read(0x400000));
    ck_assert_uint_ge(m->wrec_dropped, 1);
}
END_TEST

START_TEST(epochs_follow_code)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    map4k(PD1, PT1, 0x401000, 0x201000, P | RW | A | D);
    xbt_window_reset(m, regs);
    /* A block translated from 0x400100..0x40010f at the current epoch. */
    uint32_t epoch = m->tc_epoch;
    xbt_code_walk w = walked(PD1, 0x400100);
    xbt_smmu_code_seen(m, regs, 0x400100, 0x40010f, &w, &w);
    ck_assert(xbt_smmu_fresh(m, 0x400100, 16, epoch));
    /* INVLPG of a page without code: nothing to check again. */
    ck_assert_int_eq(xbt_smmu_mapping_changed(m, regs, 0x401000, 4096), XBT_SMMU_UNCHANGED);
    ck_assert(xbt_smmu_fresh(m, 0x400100, 16, epoch));
    /* INVLPG of the code page: its region gets a new epoch. */
    ck_assert_int_eq(xbt_smmu_mapping_changed(m, regs, 0x400000, 4096), XBT_SMMU_REGIONS);
    ck_assert(m->region_bumped[0] & 2);
    ck_assert(!xbt_smmu_fresh(m, 0x400100, 16, epoch));
    /* A CR3 load of the same tables keeps the epoch (the block's page became live again
       at its check, with the entry it was checked under); with the code's entry
       changed, not. */
    xbt_smmu_cr3_changed(m, regs);
    epoch = m->tc_epoch;
    xbt_smmu_code_seen(m, regs, 0x400100, 0x40010f, &w, &w); /* checked again */
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, regs), XBT_SMMU_UNCHANGED);
    ck_assert(xbt_smmu_fresh(m, 0x400100, 16, epoch));
    *word(PT1) = 0x270000 | P | RW | A | D;
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, regs), XBT_SMMU_REGIONS);
    ck_assert(!xbt_smmu_fresh(m, 0x400100, 16, epoch));
    /* Everything: the all-epoch. */
    epoch = m->tc_epoch;
    ck_assert_int_eq(xbt_smmu_mapping_changed(m, regs, 0, 0), XBT_SMMU_ALL);
    ck_assert(!xbt_smmu_fresh(m, 0x12345000, 16, epoch));
}
END_TEST

/* Another vCPU points a code page's entry at another frame between the walk a block
   was translated (or checked) by and xbt_smmu_code_seen, then this vCPU loads the same
   CR3 (Linux's TLB shootdown by a full flush): the block must not stay fresh (the
   page's first check compares the entry with the frame the walk found). */
START_TEST(entry_changed_between_walk_and_seen)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    xbt_window_reset(m, regs);
    xbt_smmu_cr3_changed(m, regs);
    uint32_t epoch = m->tc_epoch;           /* a block translated from frame 0x200 */
    xbt_code_walk w = walked(PD1, 0x400100);
    *word(PT1) = 0x270000 | P | RW | A | D; /* the other vCPU's write */
    xbt_smmu_code_seen(m, regs, 0x400100, 0x40010f, &w, &w);
    int r = xbt_smmu_cr3_changed(m, regs);
    ck_assert_msg(r == XBT_SMMU_REGIONS && !xbt_smmu_fresh(m, 0x400100, 16, epoch),
                  "block from 0x200000 still fresh after a CR3 load mapping 0x270000 (r=%d)", r);
}
END_TEST

/* The same with only a U/S bit changed in between, of the last-level entry or of the
   directory entry (the frame stays): a user block walked while its page was a user
   page must not stay fresh across a CR3 load that makes it a supervisor page (the
   snapshot and the key are compared with the entries the walk checked, not only its
   frame; found in review: the snapshot took the new entry). */
START_TEST(us_changed_between_walk_and_seen)
{
    for (int level = 0; level < 2; level++) {
        xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
        memset(ram + PD1, 0, 4096);
        map4k(PD1, PT1, 0x400000, 0x200000, P | RW | US | A | D);
        xbt_window_reset(m, regs);
        xbt_smmu_cr3_changed(m, regs);
        uint32_t epoch = m->tc_epoch; /* a user block translated from frame 0x200 */
        xbt_code_walk w = walked(PD1, 0x400100);
        ck_assert(w.pde & w.pte & US);
        *word(level ? PD1 + 4 : PT1) &= ~US; /* the other vCPU's write */
        xbt_smmu_code_seen(m, regs, 0x400100, 0x40010f, &w, &w);
        int r = xbt_smmu_cr3_changed(m, regs);
        ck_assert_msg(r == XBT_SMMU_REGIONS && !xbt_smmu_fresh(m, 0x400100, 16, epoch),
                      "user block still fresh after a CR3 load that made its %s "
                      "supervisor (r=%d)", level ? "directory entry" : "page", r);
    }
}
END_TEST

/* The same with PAE (8-byte entries; the PDPT at PD3, the directory at PD2, the table at
   PT2): a U/S bit of the last-level or the directory entry, then a 2 MiB page's frame
   (beside a half that is not present; then beside another 2 MiB page), changed between
   the walk and the note; and each unchanged keeps its epoch (a 2 MiB half beside another
   kind of half took a new epoch at every CR3 load before 2026-12-05). */
static uint64_t *qword(uint32_t gpa) { return (uint64_t *)(void *)(ram + gpa); }
START_TEST(pae_changed_between_walk_and_seen)
{
    const uint32_t lin = 0x40400100u; /* PDPT entry 1, directory entry 2 and 3 beside */
    for (int c = 0; c < 4; c++) {
        xbt_smmu_regs regs = { PG | 0x11, PD3, XBT_CR4_PAE };
        memset(ram + PD3, 0, 4096);
        memset(ram + PD2, 0, 4096);
        memset(ram + PT2, 0, 4096);
        *qword(PD3 + 8) = PD2 | P;
        uint32_t di = (lin >> 21) & 0x1FF;
        if (c < 2) {
            *qword(PD2 + di * 8) = PT2 | P | RW | US | A;
            *qword(PT2 + ((lin >> 12) & 0x1FF) * 8) = 0x200000 | P | RW | US | A | D;
        } else {
            *qword(PD2 + di * 8) = 0x600000 | P | RW | US | A | D | PS;
            if (c == 3)
                *qword(PD2 + (di + 1) * 8) = 0xC00000 | P | RW | US | A | D | PS;
        }
        xbt_window_reset(m, regs);
        xbt_smmu_cr3_changed(m, regs);
        uint32_t epoch = m->tc_epoch;
        uint32_t pde = (uint32_t)*qword(PD2 + di * 8);
        uint32_t pte = c < 2 ? (uint32_t)*qword(PT2 + ((lin >> 12) & 0x1FF) * 8) : pde;
        uint32_t frame = c < 2 ? 0x200 : 0x600 + ((lin >> 12) & 0x1FF);
        xbt_code_walk w = { frame, pde, pte };
        /* the other vCPU's write */
        if (c == 0)
            *qword(PT2 + ((lin >> 12) & 0x1FF) * 8) &= ~(uint64_t)US;
        else if (c == 1)
            *qword(PD2 + di * 8) &= ~(uint64_t)US;
        else
            *qword(PD2 + di * 8) = 0xA00000 | P | RW | US | A | D | PS;
        xbt_smmu_code_seen(m, regs, lin, lin + 15, &w, &w);
        int r = xbt_smmu_cr3_changed(m, regs);
        ck_assert_msg(r == XBT_SMMU_REGIONS && !xbt_smmu_fresh(m, lin, 16, epoch),
                      "PAE case %d: block still fresh after a CR3 load (r=%d)", c, r);
        /* Unchanged between walk and note: the epoch is kept. */
        xbt_smmu_cr3_changed(m, regs);
        epoch = m->tc_epoch;
        pde = (uint32_t)*qword(PD2 + di * 8);
        pte = c < 2 ? (uint32_t)*qword(PT2 + ((lin >> 12) & 0x1FF) * 8) : pde;
        frame = c < 2 ? 0x200 : 0xA00 + ((lin >> 12) & 0x1FF);
        w = (xbt_code_walk){ frame, pde, pte };
        xbt_smmu_code_seen(m, regs, lin, lin + 15, &w, &w);
        ck_assert_msg(xbt_smmu_cr3_changed(m, regs) == XBT_SMMU_UNCHANGED &&
                          xbt_smmu_fresh(m, lin, 16, epoch),
                      "PAE case %d: an unchanged block lost its epoch at a CR3 load", c);
    }
}
END_TEST

/* A region of code that the next directory does not map at all (an exiting process's
   switch away, the kernel's own directory): its blocks are not fresh there, and a load
   back to tables that map it as before gives them their epoch again; one that maps it
   otherwise, or an INVLPG of its page meanwhile, does not. */
START_TEST(absent_region_keeps_its_epoch)
{
    for (int c = 0; c < 3; c++) {
        xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
        memset(ram + PD1, 0, 4096);
        memset(ram + PD2, 0, 4096);
        map4k(PD1, PT1, 0x400000, 0x200000, P | RW | US | A | D);
        map4k(PD2, PT2, 0x800000, 0x300000, P | RW | US | A | D); /* not region 1 */
        uint32_t epoch = check_block(a, PD1, 0x400100);
        ck_assert_int_eq(xbt_smmu_cr3_changed(m, b), XBT_SMMU_REGIONS);
        ck_assert(m->region_hidden[0] & 2);
        ck_assert(!xbt_smmu_fresh(m, 0x400100, 16, epoch));
        if (c == 1)
            *word(PT1) = 0x270000 | P | RW | US | A | D; /* changed meanwhile */
        if (c == 2)
            ck_assert_int_eq(xbt_smmu_mapping_changed(m, b, 0x400000, 4096),
                             XBT_SMMU_REGIONS);
        if (c == 0) {
            /* Mapped again in b without a CR3 load (a new entry needs no flush), a block
               checked there (the runtime may chain into it), unmapped, and a load that
               finds it absent again: hidden again, so that those chains go (found in
               review). */
            *word(PD2 + 4) = PT1 | P | RW | US | A;
            xbt_code_walk wb = walked(PD2, 0x400100);
            xbt_smmu_code_seen(m, b, 0x400100, 0x40010f, &wb, &wb);
            epoch = m->tc_epoch; /* the block's, checked (a new epoch: revived) */
            *word(PD2 + 4) = 0;
            ck_assert_int_eq(xbt_smmu_cr3_changed(m, b), XBT_SMMU_REGIONS);
            ck_assert_msg(m->region_hidden[0] & 2, "checked while absent, not hidden again");
            ck_assert_int_eq(xbt_smmu_cr3_changed(m, b), XBT_SMMU_UNCHANGED);
        }
        xbt_smmu_cr3_changed(m, a);
        if (c == 0)
            ck_assert_msg(xbt_smmu_fresh(m, 0x400100, 16, epoch),
                          "the block lost its epoch across a directory without its region");
        else
            ck_assert_msg(!xbt_smmu_fresh(m, 0x400100, 16, epoch),
                          "case %d: a stale block is fresh after the load back", c);
    }
}
END_TEST

static bool bit1(const uint8_t *bitmap) { return bitmap[0] & 2; }

/* Region 1 holds a shell's code under one directory and a program's under another (both
   at 0x400000, other frames): each load between them sets the context that leaves aside
   and makes the one set aside current again, its live pages with it; a page of the one
   set aside checked on its frame under the current tables gives it up; a context whose
   frame the new tables map at its page is not set aside. */
START_TEST(contexts_set_aside_and_restored)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 }, c = { PG | 0x11, PD3, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | US | A);
    map4k(PD1, PT1, 0x401000, 0x201000, P | US | A);
    map4k(PD2, PT2, 0x400000, 0x300000, P | US | A);
    map4k(PD3, PT3, 0x400000, 0x200000, P | US | A); /* a's frame at a's page */
    map4k(PD3, PT3, 0x401000, 0x250000, P | US | A);
    check_block(a, PD1, 0x400100);
    xbt_code_walk w = walked(PD1, 0x401100);
    xbt_smmu_code_seen(m, a, 0x401100, 0x40110f, &w, &w);
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, b), XBT_SMMU_REGIONS);
    ck_assert(bit1(m->region_bumped) && bit1(m->region_alt_keep) && !bit1(m->region_alt_restore));
    w = walked(PD2, 0x400100);
    xbt_smmu_code_seen(m, b, 0x400100, 0x40010f, &w, &w);
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, a), XBT_SMMU_REGIONS);
    ck_assert(bit1(m->region_alt_keep) && bit1(m->region_alt_restore));
    /* a's live pages are back without a check: an INVLPG of one gives a new epoch. */
    ck_assert_int_eq(xbt_smmu_mapping_changed(m, a, 0x401000, 4096), XBT_SMMU_REGIONS);
    check_block(a, PD1, 0x400100);
    w = walked(PD1, 0x401100);
    xbt_smmu_code_seen(m, a, 0x401100, 0x40110f, &w, &w);
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, b), XBT_SMMU_REGIONS);
    ck_assert(bit1(m->region_alt_keep) && bit1(m->region_alt_restore)); /* b's back */
    /* b maps a's frame at a's page without a flush (a new entry), and a block is
       checked there: a's context could run, it is given up. */
    map4k(PD2, PT2, 0x401000, 0x201000, P | US | A);
    ck_assert(!m->region_alt_drop_any);
    w = walked(PD2, 0x401100);
    xbt_smmu_code_seen(m, b, 0x401100, 0x40110f, &w, &w);
    ck_assert(m->region_alt_drop_any && bit1(m->region_alt_drop) && !bit1(m->region_alt));
    m->region_alt_drop_any = false;
    m->region_alt_drop[0] = 0;
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, a), XBT_SMMU_REGIONS);
    ck_assert(!bit1(m->region_alt_restore));
    /* c maps a's first page to its frame: a is not set aside for c. */
    check_block(a, PD1, 0x400100);
    w = walked(PD1, 0x401100);
    xbt_smmu_code_seen(m, a, 0x401100, 0x40110f, &w, &w);
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, c), XBT_SMMU_REGIONS);
    ck_assert(bit1(m->region_bumped) && !bit1(m->region_alt_keep));
}
END_TEST

/* A region absent at a load (an exec'd program's directory before ld.so maps its
   libraries there) and mapped again without one: the first block checked there gives
   it a new epoch, with the context that waited set aside, and blocks checked after it
   are fresh (they were not until the next load). */
START_TEST(absent_region_mapped_again_gets_an_epoch)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    memset(ram + PD2, 0, 4096);
    map4k(PD1, PT1, 0x400000, 0x200000, P | US | A);
    map4k(PD2, PT2, 0x800000, 0x300000, P | US | A); /* not region 1 */
    check_block(a, PD1, 0x400100);
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, b), XBT_SMMU_REGIONS);
    ck_assert(bit1(m->region_hidden));
    map4k(PD2, PT2, 0x400000, 0x310000, P | US | A); /* its table, no load */
    xbt_code_walk w = walked(PD2, 0x400100);
    xbt_smmu_code_seen(m, b, 0x400100, 0x40010f, &w, &w);
    ck_assert(m->region_revived && bit1(m->region_bumped) && bit1(m->region_alt_keep));
    ck_assert_uint_ne(m->region_epoch[1], XBT_EPOCH_ABSENT);
    ck_assert(xbt_smmu_fresh(m, 0x400100, 16, m->tc_epoch));
    m->region_revived = false;
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, a), XBT_SMMU_REGIONS);
    ck_assert(bit1(m->region_alt_restore)); /* a's context again */
}
END_TEST

/* A directory entry with PS set while CR4.PSE is clear points to a page table (the
   walk ignores PS then): a block on one of its pages keeps its epoch across a CR3 load
   of the same tables (it was treated as a large page that had no table entry, and the
   region took a new epoch at every load). */
START_TEST(ps_without_pse_is_a_table)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    *word(PD1 + 4) |= 0x80; /* PS */
    uint32_t epoch = check_block(regs, PD1, 0x400100);
    ck_assert_int_eq(xbt_smmu_cr3_changed(m, regs), XBT_SMMU_UNCHANGED);
    ck_assert(xbt_smmu_fresh(m, 0x400100, 16, epoch));
}
END_TEST

START_TEST(d_window_through_the_runtime)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
    map4k(PD1, PT1, 0x400000, 0x300000, P | RW | US | A | D);
    xbt_window_reset(m, regs);
    ck_assert_int_eq(fault(regs, XBT_WINDOW_D, 0x400000, true), XBT_DMAP_OK);
    ck_assert_uint_eq(d_maps, 1);
    /* The page becomes code: its writable D-window mapping is dropped there. */
    xbt_protect_code_page(m, 0x300, 1);
    ck_assert_uint_eq(d_drops, 1);
    ck_assert_uint_eq(d_last_lin, 0x400000);
    /* Dropped once: a second drop finds nothing mapped and asks the runtime nothing. */
    xbt_window_drop(m, 0x400000, 4096);
    ck_assert_uint_eq(d_drops, 1);
}
END_TEST

/* Another vCPU turns the faulting entry into a swap entry between the walk and the
   fill: no neighbour is compared with it, so nothing is mapped beside the page and a
   not-present neighbour's bits (the OS's) stay as they are (found in review: its
   accessed flag was set and it was mapped). */
START_TEST(fill_after_the_entry_changed)
{
    xbt_smmu_regs regs = { PG | 0x11, PD1, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A);
    map4k(PD1, PT1, 0x401000, 0x201000, RW);
    xbt_window_reset(m, regs);
    ck_assert_int_eq(fill_raced(regs, 0x400000, word(PT1), 0x200000 | RW | A), XBT_DMAP_OK);
    ck_assert_uint_eq(*word(PT1 + 4), 0x201000 | RW);
    ck_assert(!can_read(0x401000));
}
END_TEST

/* Another vCPU points the faulting entry at another frame between the walk and the
   fill.  The window maps the frame the walk found, so the record must describe that
   entry: a CR3 switch away and back then finds the entry changed and drops the
   mapping.  A record read from the table after the fill described the new entry and
   kept the old frame mapped (found in review). */
START_TEST(record_is_what_was_mapped)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    map4k(PD2, PT2, 0x400000, 0x250000, P | RW | A | D);
    xbt_window_reset(m, a);
    ck_assert_int_eq(fill_raced(a, 0x400000, word(PT1), 0x260000 | P | RW | A | D),
                     XBT_DMAP_OK);
    ram[0x200000] = 0x11;
    ck_assert_int_eq(m->kbase[0x400000], 0x11); /* the walk's frame, as a TLB would */
    xbt_smmu_cr3_changed(m, b);
    xbt_smmu_cr3_changed(m, a);
    ck_assert(!can_read(0x400000));
    ck_assert_uint_ge(m->wrec_dropped, 1);
}
END_TEST

/* Review: the D-window's run reaches below mmap_min_addr, so the page goes in alone;
   its record must be the page's own entry, not the lowest neighbour's. */
START_TEST(alone_after_min_addr_records_its_own_entry)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    map4k(PD1, PT1, 0xF000, 0x20F000, P | RW | US | A | D);
    map4k(PD1, PT1, 0x10000, 0x210000, P | RW | US | A | D);
    map4k(PD2, PT2, 0x400000, 0x250000, P | RW | A | D);
    xbt_window_reset(m, a);
    d_min = 0x10000;
    ck_assert_int_eq(fault(a, XBT_WINDOW_D, 0x10000, false), XBT_DMAP_OK);
    d_min = 0;
    /* The guest points 0x10000 at the neighbour's frame, same flags, then flushes by
       switching away and back. */
    *word(PT1 + 0x10 * 4) = 0x20F000 | P | RW | US | A | D;
    unsigned drops = d_drops;
    uint64_t dropped = m->wrec_dropped;
    xbt_smmu_cr3_changed(m, b);
    xbt_smmu_cr3_changed(m, a);
    ck_assert_msg(m->wrec_dropped > dropped || d_drops > drops,
                  "stale D-window mapping of 0x10000 (frame 0x210000) kept");
}
END_TEST

/* With keep_set on, address space a's page 0x400000 filled, then a CR3 load to b: the
   current set is kept (its K-window returned). */
static uint8_t *keep_into(xbt_smmu_regs a, xbt_smmu_regs b)
{
    xbt_window_reset(m, a);
    m->keep_set = true;
    fault(a, XBT_WINDOW_K, 0x400000, false);
    uint8_t *k = m->kbase;
    xbt_smmu_cr3_changed(m, b);
    ck_assert_ptr_eq(m->kbase, k);
    return k;
}

/* Where a set switch is dear (m->keep_set: it moves the host GS base), a CR3 load to
   an address space that maps what the current set holds re-keys the current set: same
   windows, the mappings kept, the old address space's runner parked; a switch back
   does the same. */
START_TEST(keep_set_when_alike)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    *word(PD2 + 1 * 4) = PT1 | P | RW | US | A; /* B shares A's table */
    uint8_t *k = keep_into(a, b);
    ck_assert(can_read(0x400000));
    ck_assert_uint_eq(m->set_keeps, 1);
    ck_assert_uint_eq(d_parks, 1);
    xbt_smmu_cr3_changed(m, a);
    ck_assert_ptr_eq(m->kbase, k);
    ck_assert(can_read(0x400000));
    ck_assert_uint_eq(m->set_keeps, 2);
}
END_TEST

/* B shares A's table, but B's directory entry was never used by a walk (its accessed
   flag clear): the CR3 load sets the flag, as a speculative fill of the
   paging-structure caches may, and keeps the set with its mapping, instead of a switch
   to a set of B's own (a host system call where the GS base moves by arch_prctl).  The
   flag is the only difference allowed: a directory entry without the user right is
   another mapping. */
START_TEST(keep_set_sets_directory_accessed)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    uint32_t pde = *word(PD1 + 1 * 4);
    ck_assert_uint_eq(pde & A, A);
    *word(PD2 + 1 * 4) = pde & ~A;
    keep_into(a, b);
    ck_assert(can_read(0x400000));
    ck_assert_uint_eq(m->set_keeps, 1);
    ck_assert_uint_eq(*word(PD2 + 1 * 4), pde);
    ck_assert_uint_eq(m->spec_pt, PD2);
    /* Back to A, then to B again with B's entry also lacking the user right: another
       mapping, the flag left clear and the page dropped. */
    xbt_smmu_cr3_changed(m, a);
    *word(PD2 + 1 * 4) = (pde & ~(A | US));
    xbt_smmu_cr3_changed(m, b);
    ck_assert(!can_read(0x400000));
    ck_assert_uint_eq(*word(PD2 + 1 * 4), pde & ~(A | US));
}
END_TEST

/* Not a large page's entry: it maps the page itself, and a guest aging its pages
   (clear the flag, reload CR3) would find it set again at every load.  The mapping
   goes instead, as for any changed entry. */
START_TEST(keep_set_leaves_large_page_accessed)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, PSE }, b = { PG | 0x11, PD2, PSE };
    uint32_t big = 0x400000 | P | RW | A | D | PS; /* 0x800000 -> 0x400000, 4 MiB */
    *word(PD1 + 2 * 4) = big;
    *word(PD2 + 2 * 4) = big & ~A;
    xbt_window_reset(m, a);
    m->keep_set = true;
    ck_assert_int_eq(fault(a, XBT_WINDOW_K, 0x812345, false), XBT_DMAP_OK);
    xbt_smmu_cr3_changed(m, b);
    ck_assert_uint_eq(*word(PD2 + 2 * 4), big & ~A);
    ck_assert(!can_read(0x812000));
}
END_TEST

/* Nor in a directory page that holds translated code (a guest write there must be seen
   as one): the record counts as changed, the flag stays clear. */
START_TEST(keep_set_leaves_code_directory_alone)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    uint32_t pde = *word(PD1 + 1 * 4);
    *word(PD2 + 1 * 4) = pde & ~A;
    xbt_protect_code_page(m, PD2 >> 12, 1);
    keep_into(a, b);
    ck_assert_uint_eq(*word(PD2 + 1 * 4), pde & ~A);
    ck_assert(!can_read(0x400000));
    xbt_unprotect_code_page(m, PD2 >> 12, 1);
}
END_TEST

/* One mapping differs: the set is kept and that mapping dropped, never used stale. */
START_TEST(keep_set_drops_what_differs)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    map4k(PD2, PT2, 0x400000, 0x250000, P | RW | A | D);
    keep_into(a, b);
    ck_assert(!can_read(0x400000));
    fault(b, XBT_WINDOW_K, 0x400000, false);
    ram[0x250000] = 0x42;
    ck_assert_int_eq(m->kbase[0x400000], 0x42);
    xbt_smmu_cr3_changed(m, a);
    ck_assert(!can_read(0x400000));
}
END_TEST

/* More than XBT_KEEP_DROPS mappings differ: a set of its own, as without keep_set. */
START_TEST(keep_set_switches_when_much_differs)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    for (uint32_t i = 0; i < 4; i++) { /* apart: four records */
        map4k(PD1, PT1, 0x400000 + i * 0x2000, 0x200000 + i * 0x2000, P | RW | A | D);
        map4k(PD2, PT2, 0x400000 + i * 0x2000, 0x250000 + i * 0x2000, P | RW | A | D);
    }
    xbt_window_reset(m, a);
    m->keep_set = true;
    for (uint32_t i = 0; i < 4; i++)
        fault(a, XBT_WINDOW_K, 0x400000 + i * 0x2000, false);
    ck_assert_uint_eq(m->cur->n_rec, 4);
    uint8_t *k = m->kbase;
    xbt_smmu_cr3_changed(m, b);
    ck_assert_ptr_ne(m->kbase, k);
    ck_assert_uint_eq(m->set_keeps, 0);
    xbt_smmu_cr3_changed(m, a); /* back to A's own set, its mappings re-checked */
    ck_assert_ptr_eq(m->kbase, k);
    ck_assert(can_read(0x400000) && can_read(0x406000));
}
END_TEST

/* The cached set of the address space the current set took over loses its key (one
   set per address space: the current one) and is the next one a new address space
   takes over, its mappings re-checked against that one's tables. */
START_TEST(keep_set_unkeys_the_other_set)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 }, c = { PG | 0x11, PD3, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    map4k(PD2, PT2, 0x400000, 0x200000, P | RW | A | D); /* alike, in a table of its own */
    map4k(PD3, PT3, 0x400000, 0x260000, P | RW | A | D);
    xbt_window_reset(m, a);
    fault(a, XBT_WINDOW_K, 0x400000, false);
    xbt_smmu_cr3_changed(m, b); /* keep_set off: B gets a set of its own */
    fault(b, XBT_WINDOW_K, 0x400000, false);
    struct xbt_wset *bs = m->cur;
    xbt_smmu_cr3_changed(m, a);
    m->keep_set = true;
    xbt_smmu_cr3_changed(m, b); /* A's set maps all that B's does: kept */
    ck_assert_uint_eq(m->set_keeps, 1);
    ck_assert_ptr_ne(m->cur, bs);
    for (int k = 0; k < XBT_WSETS; k++)
        ck_assert(m->wset[k] == m->cur || m->wset[k]->cr3 != PD2);
    ram[0x200000] = 0x11;
    ck_assert_int_eq(bs->kbase[0x400000], 0x11); /* still mapped there, unkeyed */
    m->keep_set = false;
    xbt_smmu_cr3_changed(m, c); /* a new address space: takes B's old set over */
    ck_assert_ptr_eq(m->cur, bs);
    ram[0x260000] = 0x22;
    ck_assert(!can_read(0x400000) || m->kbase[0x400000] == 0x22);
}
END_TEST

/* Review: the D-window's non-global mappings are the old address space's runner's: a
   kept set loses them even where the new tables map alike (as a take-over does). */
START_TEST(keep_set_drops_the_d_window)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | US | A | D);
    *word(PD2 + 1 * 4) = PT1 | P | RW | US | A; /* B shares A's table */
    xbt_window_reset(m, a);
    m->keep_set = true;
    ck_assert_int_eq(fault(a, XBT_WINDOW_D, 0x400000, false), XBT_DMAP_OK);
    ck_assert(xbt_wmap_has(&m->cur->dmap, 0x400000));
    unsigned drops = d_drops;
    xbt_smmu_cr3_changed(m, b);
    ck_assert_uint_eq(m->set_keeps, 1);
    ck_assert(!xbt_wmap_has(&m->cur->dmap, 0x400000));
    ck_assert_uint_gt(d_drops, drops);
}
END_TEST

/* Review: two records dropped out of four (not the last ones): the two others stay
   recorded, so that the next CR3 load still re-checks them (a record lost by the
   compaction would leave its mapping unchecked for good). */
START_TEST(keep_set_two_drops_keep_the_rest_recorded)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 },
                  c = { PG | 0x11, PD3, 0 };
    for (uint32_t i = 0; i < 4; i++) { /* apart: four records */
        uint32_t lin = 0x400000 + i * 0x2000;
        map4k(PD1, PT1, lin, 0x200000 + i * 0x2000, P | RW | A | D);
        /* B: pages 0 and 1 differ, 2 and 3 alike */
        map4k(PD2, PT2, lin, (i < 2 ? 0x250000 : 0x200000) + i * 0x2000, P | RW | A | D);
        map4k(PD3, PT3, lin, 0x260000 + i * 0x2000, P | RW | A | D); /* C: all differ */
    }
    xbt_window_reset(m, a);
    m->keep_set = true;
    for (uint32_t i = 0; i < 4; i++)
        fault(a, XBT_WINDOW_K, 0x400000 + i * 0x2000, false);
    uint8_t *k = m->kbase;
    xbt_smmu_cr3_changed(m, b); /* 2 drops: kept */
    ck_assert_ptr_eq(m->kbase, k);
    ck_assert_uint_eq(m->set_keeps, 1);
    ck_assert(!can_read(0x400000) && !can_read(0x402000));
    ck_assert(can_read(0x404000) && can_read(0x406000));
    ck_assert_uint_eq(m->cur->n_rec, 2);
    m->keep_set = false;
    xbt_smmu_cr3_changed(m, c); /* C takes another set */
    xbt_smmu_cr3_changed(m, b); /* back to B's (the kept) set: re-checked */
    ck_assert_ptr_eq(m->kbase, k);
    for (uint32_t lin = 0x404000; lin <= 0x406000; lin += 0x2000) {
        *word(PT2 + ((lin >> 12) & 0x3FF) * 4) = 0x270000 | P | RW | A | D;
        xbt_smmu_cr3_changed(m, b); /* B's entry changed: a reload drops the mapping */
        ck_assert_msg(!can_read(lin), "%08x stale after its entry changed", lin);
    }
}
END_TEST

/* Review: a set whose records overflowed holds mappings no record describes: never
   kept (emulated: the last fill's record lost as at XBT_WREC_CAP). */
START_TEST(keep_set_not_with_overflow)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    map4k(PD1, PT1, 0x400000, 0x200000, P | RW | A | D);
    map4k(PD2, PT2, 0x400000, 0x250000, P | RW | A | D);
    xbt_window_reset(m, a);
    m->keep_set = true;
    fault(a, XBT_WINDOW_K, 0x400000, false);
    m->cur->n_rec--;
    m->cur->rec_overflow = true;
    xbt_smmu_cr3_changed(m, b);
    ck_assert_uint_eq(m->set_keeps, 0);
    ck_assert(!can_read(0x400000));
}
END_TEST

/* Review: B's cached set maps a page of its own that A's set does not: keeping A's set
   for B would give it up (a refault), so B's set is switched to. */
START_TEST(keep_set_not_when_the_cached_set_maps_more)
{
    xbt_smmu_regs a = { PG | 0x11, PD1, 0 }, b = { PG | 0x11, PD2, 0 };
    for (uint32_t i = 0; i < 3; i++)
        map4k(PD1, PT1, 0x400000 + i * 0x2000, 0x200000 + i * 0x2000, P | RW | A | D);
    *word(PD2 + 1 * 4) = PT1 | P | RW | US | A;          /* B shares A's table ... */
    map4k(PD2, PT2, 0x800000, 0x250000, P | RW | A | D); /* ... and has a page of its own */
    xbt_window_reset(m, a);
    for (uint32_t i = 0; i < 3; i++)
        fault(a, XBT_WINDOW_K, 0x400000 + i * 0x2000, false);
    xbt_smmu_cr3_changed(m, b);
    fault(b, XBT_WINDOW_K, 0x800000, false);
    xbt_smmu_cr3_changed(m, a);
    m->keep_set = true;
    xbt_smmu_cr3_changed(m, b); /* A's 3 records alike in B, B's set has 1 more page */
    ck_assert_uint_eq(m->set_keeps, 0);
    ck_assert(can_read(0x800000));
}
END_TEST

/* The property the random tests check after every step: in window `wi` (0: K, 1: U) at
   host base b, each page mapped at 0x400000 + 4 KiB k (but those whose entry changed
   since the last CR3 load) shows the frame entry k of table pt names (frame f of
   0x200000 + 4 KiB f holds f + 1 in its first byte), and is writable only with a dirty
   entry (in the U-window a writable one too). */
static void assert_not_stale(int step, const uint8_t *b, int wi, uint32_t pt,
                             const bool *changed, uint32_t npages)
{
    for (uint32_t k = 0; k < npages; k++) {
        uint32_t l = 0x400000 + k * 0x1000, pte = *word(pt + k * 4);
        if (changed[k] || !can((volatile uint8_t *)b + l, false))
            continue;
        ck_assert_msg(pte & P, "step %d window %d: page %u mapped, entry not present", step,
                      wi, k);
        ck_assert_msg(b[l] == (uint8_t)(((pte & ~0xFFFu) - 0x200000) / 0x1000 + 1),
                      "step %d window %d: page %u shows frame %u, the entry names %08x", step,
                      wi, k, b[l] - 1, pte);
        ck_assert_msg(!can((volatile uint8_t *)b + l, true) ||
                          ((pte & D) && (wi == 0 || (pte & RW))),
                      "step %d window %d: page %u writable, entry %08x", step, wi, k, pte);
    }
}

/* Random CR3 loads among six address spaces (more than the sets: new ones take sets
   over), entry changes, fills and both set policies mixed (keep_set toggled at
   random): after every step, no page the window
   maps may show another frame than the current tables name, but where the entry
   changed in the current address space since its last CR3 load (a TLB may still hold
   the old translation until then).  Each frame's first byte names it. */
START_TEST(random_switches_never_stale)
{
    const uint32_t pds[6] = { PD1, PD2, PD3, 0x106000u, 0x108000u, 0x10a000u },
                   pts[6] = { PT1, PT2, PT3, 0x107000u, 0x109000u, 0x10b000u };
    const uint32_t base = 0x400000, npages = 16, nframes = 8;
    for (uint32_t f = 0; f < nframes; f++)
        ram[0x200000 + f * 0x1000] = (uint8_t)(f + 1);
    for (int d = 0; d < 6; d++)
        for (uint32_t p = 0; p < npages; p++)
            map4k(pds[d], pts[d], base + p * 0x1000, 0x200000 + (p % nframes) * 0x1000,
                  P | RW | A | D);
    int cur = 0;
    bool stale_ok[16] = { false };
    xbt_smmu_regs regs = { PG | 0x11, pds[0], 0 };
    xbt_window_reset(m, regs);
    uint32_t seed = 12345;
    for (int step = 0; step < 8000; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 8, op = r % 8, p = (r >> 3) % npages, d = (r >> 7) % 6;
        uint32_t lin = base + p * 0x1000;
        if (op < 2) { /* an entry changes: another frame, maybe not present or clean */
            uint32_t f = (r >> 9) % nframes, kind = (r >> 12) % 4;
            uint32_t flags = kind == 0 ? 0 : kind == 1 ? (P | RW) : kind == 2 ? (P | RW | A)
                                                                                : (P | RW | A | D);
            *word(pts[d] + p * 4) = (0x200000 + f * 0x1000) | flags;
            if ((int)d == cur)
                stale_ok[p] = true;
        } else if (op < 4) { /* a CR3 load, the policy picked at random */
            m->keep_set = (r >> 15) & 1;
            cur = (int)d;
            regs.cr3 = pds[d];
            xbt_smmu_cr3_changed(m, regs);
            memset(stale_ok, 0, sizeof stale_ok);
        } else if (!can_read(lin)) { /* an access: a fill where the walk allows it */
            xbt_walk_req q = { regs.cr0, regs.cr3, regs.cr4, lin, (r >> 16) & 1, false, false, false };
            xbt_walk_result w;
            if (xbt_walk(&q, rd32, wr32, NULL, &w))
                xbt_smmu_fill(m, regs, XBT_WINDOW_K, lin, &w, w.writable && (w.dirty || q.write),
                              false, true);
        }
        assert_not_stale(step, m->kbase, 0, pts[cur], stale_ok, npages);
    }
    ck_assert_uint_gt(m->set_keeps, 0);
}
END_TEST

/* The same check over runs of consecutive frames (so that re-checks find runs with one
   page changed, which split_run cuts up), in the K- and U-window, with entries changed a
   page at a time (not present, clean, read-only, another frame): after every step no
   mapped page shows another frame than the current tables name (but where the entry
   changed since the last CR3 load), nor is writable with a clean entry, nor writable in
   the U-window with a read-only one.  Several seeds, 3 to 6 directories. */
static void stale_runs(uint32_t seed, int steps, int ndirs, uint32_t npages)
{
    const uint32_t pds[6] = { PD1, PD2, PD3, 0x106000u, 0x108000u, 0x10a000u },
                   pts[6] = { PT1, PT2, PT3, 0x107000u, 0x109000u, 0x10b000u };
    const uint32_t base = 0x400000, nframes = 64;
    for (uint32_t f = 0; f < nframes; f++)
        ram[0x200000 + f * 0x1000] = (uint8_t)(f + 1);
    for (int d = 0; d < 6; d++) {
        memset(ram + pts[d], 0, 4096);
        memset(ram + pds[d], 0, 4096);
        for (uint32_t p = 0; p < npages; p++)
            map4k(pds[d], pts[d], base + p * 0x1000, 0x200000 + p * 0x1000, P | RW | US | A | D);
    }
    int cur = 0;
    bool changed[2][64] = { { false } };
    xbt_smmu_regs regs = { PG | 0x11, pds[0], 0 };
    xbt_window_reset(m, regs);
    for (int step = 0; step < steps; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 4, op = r % 10, p = (r >> 4) % npages, d = (r >> 10) % ndirs;
        uint32_t lin = base + p * 0x1000;
        int win = (r >> 20) & 1 ? XBT_WINDOW_U : XBT_WINDOW_K;
        uint8_t *wb = win == XBT_WINDOW_U ? m->ubase : m->kbase;
        if (op < 2) { /* an entry changes */
            uint32_t f = (r >> 13) % 3 == 0 ? (r >> 15) % nframes : p, kind = (r >> 21) % 6;
            uint32_t flags = kind == 0   ? 0
                             : kind == 1 ? (P | RW | US)
                             : kind == 2 ? (P | RW | US | A)
                             : kind == 3 ? (P | US | A)
                                         : (P | RW | US | A | D);
            *word(pts[d] + p * 4) = (0x200000 + f * 0x1000) | flags;
            if ((int)d == cur)
                changed[0][p] = changed[1][p] = true;
        } else if (op < 4) { /* a CR3 load, either policy */
            m->keep_set = (r >> 23) & 1;
            cur = (int)d;
            regs.cr3 = pds[d];
            xbt_smmu_cr3_changed(m, regs);
            memset(changed, 0, sizeof changed);
        } else if (!can(wb + lin, false) || ((r >> 22) & 1 && !can(wb + lin, true))) {
            bool wr = (r >> 22) & 1; /* a fill, as a host fault makes it */
            xbt_walk_req q = { regs.cr0, regs.cr3, regs.cr4, lin, wr, win == XBT_WINDOW_U,
                               false, false };
            xbt_walk_result w;
            if (xbt_walk(&q, rd32, wr32, NULL, &w))
                xbt_smmu_fill(m, regs, win, lin, &w, w.writable && (w.dirty || q.write), false,
                              true);
        }
        for (int wi = 0; wi < 2; wi++)
            assert_not_stale(step, wi ? m->ubase : m->kbase, wi, pts[cur], changed[wi], npages);
    }
}

START_TEST(random_runs_never_stale)
{
    for (uint32_t s = 1; s <= 6; s++)
        stale_runs(s * 7919u, 1500, 3 + (int)(s % 4), 16 + (s % 3) * 16);
    ck_assert_uint_gt(m->set_keeps, 0);
    ck_assert_uint_gt(m->run_splits, 0); /* split_run had runs to cut */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shadow_mmu");
    TCase *tc = tcase_create("windows");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60); /* the random tests probe by faults: seconds under load */
    tcase_add_test(tc, identity_with_paging_off);
    tcase_add_test(tc, fill_runs_and_dirty_bits);
    tcase_add_test(tc, large_page_whole);
    tcase_add_test(tc, code_page_drops_its_writable_aliases);
    tcase_add_test(tc, code_page_with_lost_aliases_resets);
    tcase_add_test(tc, cr3_switch_with_tlb_semantics);
    tcase_add_test(tc, epochs_follow_code);
    tcase_add_test(tc, entry_changed_between_walk_and_seen);
    tcase_add_test(tc, us_changed_between_walk_and_seen);
    tcase_add_test(tc, ps_without_pse_is_a_table);
    tcase_add_test(tc, pae_changed_between_walk_and_seen);
    tcase_add_test(tc, absent_region_keeps_its_epoch);
    tcase_add_test(tc, contexts_set_aside_and_restored);
    tcase_add_test(tc, absent_region_mapped_again_gets_an_epoch);
    tcase_add_test(tc, d_window_through_the_runtime);
    tcase_add_test(tc, fill_after_the_entry_changed);
    tcase_add_test(tc, record_is_what_was_mapped);
    tcase_add_test(tc, alone_after_min_addr_records_its_own_entry);
    tcase_add_test(tc, keep_set_when_alike);
    tcase_add_test(tc, keep_set_sets_directory_accessed);
    tcase_add_test(tc, keep_set_leaves_large_page_accessed);
    tcase_add_test(tc, keep_set_leaves_code_directory_alone);
    tcase_add_test(tc, keep_set_drops_what_differs);
    tcase_add_test(tc, keep_set_switches_when_much_differs);
    tcase_add_test(tc, keep_set_unkeys_the_other_set);
    tcase_add_test(tc, keep_set_drops_the_d_window);
    tcase_add_test(tc, keep_set_two_drops_keep_the_rest_recorded);
    tcase_add_test(tc, keep_set_not_with_overflow);
    tcase_add_test(tc, keep_set_not_when_the_cached_set_maps_more);
    tcase_add_test(tc, random_switches_never_stale);
    tcase_add_test(tc, random_runs_never_stale);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
