/*
 * smmu.h - the shadow MMU: what the host MMU maps for guest linear addresses, below the
 * runtime.
 *
 * Guest linear pages are mapped onto guest RAM (a memfd) in host windows: the K-window
 * (guest code at CPL 0, and paging off), the U-window (strict-mode user code: user pages
 * only) and the D-window (directly executed user code, in a runner process that the
 * runtime owns: this unit keeps its bookkeeping and asks the runtime, through struct
 * xbt_smmu_dwin, to map and drop there).  Mappings are kept per address space (window
 * sets keyed by CR3) and dropped or re-checked with TLB semantics (CR3 loads, INVLPG,
 * global pages).  Mapping epochs by 4 MiB region tell the translation cache which
 * translations must be checked against the guest's tables again; pages holding
 * translated code are write-protected (a reverse map finds their writable mappings).
 *
 * The unit knows the guest's paging registers only as the arguments it is given (struct
 * xbt_smmu_regs) and guest memory only as its slots (phys.h: each slot's file and the
 * host view of all of them); it includes nothing of src/runtime.  window.c: windows,
 * sets, epochs, code pages; fault.c: filling a window after the runtime's walk of a host
 * fault; phys.c: the slots.
 */
#ifndef XBT_SHADOW_MMU_SMMU_H
#define XBT_SHADOW_MMU_SMMU_H

#include <stdbool.h>
#include <stdint.h>

#include "arch.h"
#include "shadow-mmu/phys.h"
#include "shadow-mmu/walk.h"
#include "xbt/xbt.h"

/* What a window maps, by linear page, and by 4 MiB region (for cheap scans).  The K-
   and U-windows also keep a byte per linear page (`probe`, 1 MiB each) that translated
   code reads: XBT_PROBE_READ where the page is mapped read-only, XBT_PROBE_WRITE where
   it is mapped writable, 0 where it is not mapped (the page bit clear).  Fault sites'
   inline checks read it (runtime/pfsite.c); it is kept with the page bits, by the same
   functions, so it never says mapped where the window is not, and a page made read-only
   is always dropped first.  NULL for the D-window. */
#define XBT_PROBE_READ 1
#define XBT_PROBE_WRITE 3
struct xbt_wmap { uint64_t page[1u << 14]; uint8_t region[128]; uint8_t *probe; };

/* A window mapping made from a non-global entry: what it was derived from, so that a
   CR3 load (a TLB flush) can keep it if the entries are still the same. */
struct xbt_wrec {
    uint32_t lin;      /* first linear page */
    uint32_t pde;      /* the directory entry then */
    uint32_t pte0;     /* the first page's table entry then (4 KiB pages) */
    uint16_t npages;   /* a run of pages whose entries are pte0 + k * 4096 */
    uint8_t win;       /* XBT_WINDOW_K or XBT_WINDOW_U */
    uint8_t big : 1;   /* a 4 MiB page (PAE: 2 MiB): the directory entry says it all */
    uint8_t pae : 1;   /* made under PAE: 8-byte entries below a PDPTE, whose upper halves
                          must be 0 (pde and pte0 hold the lower ones) */
};
_Static_assert(sizeof(struct xbt_wrec) == 16, "records stay 16 bytes (re-checked at every "
                                              "CR3 load)");

/* One address space's K- and U-window: a CR3 switch back to an address space whose set
   is cached re-checks its non-global mappings against the page tables instead of
   refilling them by faults (the design's per-address-space windows).  Each set has a
   D-window too, in the runner process the runtime keeps for it (by idx). */
#define XBT_WSETS 4
/* The user window lies this far below the K-window's base: 4 GiB and a guard page, so
   translated CPL 3 code reaches it through the K-window's GS base (translate.c, the
   U-window below K) and an access running past its top faults in the guard instead of
   touching the K-window. */
#define XBT_UWIN_BELOW XBT_WINDOW_UK_BELOW
/* The reservation goes on this far below the user window, unmapped: translated user
   code's fast form (translator.h, uk_wrap_site) lands there when reg + disp wraps below
   0 (disp >= XBT_UK_FAST_DISP_MIN), and faults. */
#define XBT_UWIN_UNDER (64u << 10)
#define XBT_WSET_RESERVE (17ull << 30)
#define XBT_WREC_CAP 8192
struct xbt_wset {
    uint8_t *reserve;                 /* XBT_WSET_RESERVE bytes, PROT_NONE: */
    uint8_t *kbase;                   /* K-window: 4 GiB, aligned to 4 GiB */
    uint8_t *ubase;                   /* user window (translated CPL 3 code): 4 GiB ending
                                         a guard page below kbase (XBT_UWIN_BELOW) */
    uint32_t cr3;                     /* the page directory it mirrors (~0: none) */
    uint64_t stamp;                   /* last use */
    bool identity;                    /* the K-window holds RAM 1:1 (paging off) */
    /* Mappings from global entries and from others, by linear page and region. */
    uint64_t g_page[1u << 14], ng_page[1u << 14];
    uint8_t g_region[128], ng_region[128];
    struct xbt_wmap wmap[2];          /* what the K- and U-window map (by enum xbt_window) */
    struct xbt_wmap dmap;             /* what its D-window maps */
    uint32_t *frame[2];               /* K- and U-window: the guest page each linear page
                                         was last mapped onto, + 1 (valid where the
                                         window's map has the page) */
    struct xbt_wrec *rec;             /* the non-global mappings, for re-checking */
    struct xbt_wrec *gone;            /* scratch: the records a re-check drops */
    uint32_t n_rec;
    bool rec_overflow;                /* too many: a switch back drops them all */
    uint32_t gen;                     /* bumped when the set goes to another address space */
    uint8_t idx;                      /* its index in xbt_smmu.wset */
};

/* Window `win` (enum xbt_window) of set w: what it maps. */
static inline struct xbt_wmap *xbt_wmap_of(struct xbt_wset *w, int win)
{
    return win == XBT_WINDOW_D ? &w->dmap : &w->wmap[win];
}
static inline bool xbt_wmap_has(const struct xbt_wmap *m, uint32_t lin)
{
    uint32_t p = lin >> 12;
    return (m->page[p >> 6] >> (p & 63)) & 1;
}

/* Where a guest physical page is mapped writable in the windows: up to two linear
   pages, each with the windows that map it there (bit 3 * set + window: the K-, user
   and D-windows of each set); XBT_RMAP_LOST when there were more.  Entries may be stale
   (the window dropped the page since): a stale one costs a needless drop at most.
   Making the page a code page drops exactly these mappings, or every window when the
   entry was lost. */
struct xbt_rmap { uint32_t lin[2]; uint16_t who[2]; };
#define XBT_RMAP_LOST 0x8000u
_Static_assert(XBT_WSETS * 3 <= 15, "xbt_rmap.who has a bit per set and window");

/* The D-windows live in runner processes the runtime owns (runtime/direct.c). */
enum { XBT_DMAP_FAIL = 0, XBT_DMAP_OK = 1, XBT_DMAP_XLATE = 2 };
struct xbt_smmu_dwin {
    void *opaque;
    /* Drops [lin, lin + len) from set `set`'s D-window; false: the set's D-window is
       gone altogether (its runner had to be killed). */
    bool (*drop)(void *opaque, unsigned set, uint32_t lin, uint64_t len);
    /* Maps [lin, lin + len) of the current set's D-window onto RAM at gpa (the runtime's
       xbt_direct_map: XBT_DMAP_*; `fetch` is the linear address of an instruction fetch
       that faulted, -1 for none). */
    int (*map)(void *opaque, uint32_t lin, uint64_t gpa, uint32_t len, bool writable,
               int64_t fetch);
    /* Set `set`'s address space stops being current: its user code must not run on. */
    void (*park)(void *opaque, unsigned set);
};

/* The guest's paging registers, as the shadow MMU needs them. */
typedef struct xbt_smmu_regs { uint32_t cr0, cr3, cr4; } xbt_smmu_regs;
static inline bool xbt_smmu_paging(xbt_smmu_regs r) { return r.cr0 & XBT_CR0_PG; }
static inline bool xbt_smmu_pae(xbt_smmu_regs r) { return r.cr4 & XBT_CR4_PAE; }
/* The address space CR3 names: its page directory (PAE: its 32-byte PDPT, several of
   which may share a page). */
static inline uint32_t xbt_smmu_as_key(xbt_smmu_regs r)
{
    return r.cr3 & (xbt_smmu_pae(r) ? ~0x1Fu : ~0xFFFu);
}

typedef struct xbt_smmu {
    /* Guest physical memory: the slots' files the windows map (ROM and clean pages of
       dirty-logged slots read-only), and the VMM's own view of them. */
    xbt_phys *phys;
    struct xbt_smmu_dwin dwin;

    struct xbt_wset *wset[XBT_WSETS];
    struct xbt_wset *cur;      /* the current address space's windows */
    uint64_t wclock;
    uint8_t *kbase;            /* K-window of cur: guest linear 0 */
    uint8_t *ubase;            /* user window of cur (paging on, CPL 3): user pages only */
    bool window_paged;         /* the K-window holds linear (paged) mappings */
    /* 2 MiB units where some window mapping came from a large guest page (a 4 MiB page
       marks its two units, a PAE 2 MiB page its one): an INVLPG there drops that whole
       large page (one TLB entry in hardware), elsewhere one 4 KiB page. */
    uint8_t pse_region[256];
    struct xbt_rmap *rmap;     /* per guest physical page (see struct xbt_rmap) */
    /* Per guest physical page: which vCPUs' translation caches hold code from it (bit k:
       vCPU k; 1 with one vCPU); non-zero: write-protected in every window.  Shared by
       the shadow MMUs of a VM's vCPUs (set before xbt_smmu_init; else its own). */
    uint8_t *code_prot;
    bool own_code_prot;

    /* Mapping epochs by 4 MiB region: a block checked at epoch E is current while
       neither of its regions (nor everything, all_epoch) changed after E.  A CR3 load
       keeps a region's epoch where its code is global, or its key is the same large
       page, or its live pages map as their blocks were checked (window.c,
       region_reload): the kernel's code keeps its chains across process switches. */
    uint32_t tc_epoch;               /* bumped when linear-to-physical mappings may change */
    uint32_t region_epoch[1024], all_epoch;
    uint64_t region_key[1024][3];    /* the entries its code was checked under (A and D
                                        masked): its directory entry; PAE: its PDPTE and
                                        its two directory entries (xbt_region_key) */
    uint32_t *region_ptes[1024];     /* allocated at a region's first check with paging
                                        on: a page table's 1,024 entries (frame, P
                                        and U/S), then 32 words of bits, its live pages
                                        (blocks checked on them in its current epoch: a
                                        superset), whose entry is the one their blocks
                                        were checked under unless the region moved */
    uint8_t region_live_any[128];    /* regions with a live page */
    uint8_t region_code_moved[128];  /* a block was checked since under another entry */
    uint8_t code_region[128];        /* regions translated code came from */
    uint8_t region_bumped[128];      /* the regions the last change bumped */
    /* Regions with code that the current tables do not map at all (no directory entry;
       PAE: no PDPTE or neither directory entry) have region_epoch ~0u (XBT_EPOCH_ABSENT:
       none of their blocks is fresh): nothing of them can run, and their blocks wait
       with their epoch saved (region_saved_epoch) and region_key, live pages and
       snapshots as they were.  A CR3 load that maps the region again as they say gives
       the saved epoch back (window.c, region_reload). */
#define XBT_EPOCH_ABSENT (~0u)
    uint8_t region_hidden[128];      /* the regions the last CR3 load made absent: chains
                                        into them from elsewhere go (tcache.h,
                                        xbt_tc_unchain_into) */
    bool region_revived;             /* a region absent at the last load was checked: it
                                        has a new epoch (region_bumped and region_alt_*
                                        say as after a load; xbt_smmu_code_seen) */
    uint8_t region_unhidden[128];    /* the regions the last CR3 load found as they were
                                        when they went absent: their saved epoch back */
    uint32_t region_saved_epoch[1024];
    /* A region's context set aside.  A CR3 load that gives a region a new epoch because
       another process's code is there now (a shell and the program it ran, both PIE at
       0x400000, or their libraries at one place) keeps the chains among the old code's
       blocks, both ends within the region, when that code cannot run under the new
       tables (none of its live pages is mapped to the same frame there), with its key,
       snapshots and live pages here; a later load whose tables map it as they say makes
       it current again, with a new epoch and its chains, and the context it replaces is
       set aside in turn.  Chains into it from elsewhere and the inline lookups' entries
       go at each switch, as for a region that moved; a block of it checked under other
       tables on the same frame (its page mapped again without a CR3 load) gives it up
       (region_alt_drop: its chains go before that block runs).  One per region. */
    uint32_t *region_alt_ptes[1024]; /* as region_ptes: snapshots, then live pages */
    uint64_t region_alt_key[1024][3];
    uint8_t region_alt[128];         /* regions with a context set aside */
    uint8_t region_alt_keep[128];    /* the last change set the current context aside */
    uint8_t region_alt_restore[128]; /* the last change made the one set aside current */
    uint8_t region_alt_drop[128];    /* contexts given up since the runtime last looked */
    bool region_alt_drop_any;
    uint8_t region_code_ng[128];     /* regions whose code was checked through a
                                        non-global entry (a CR3 load may change it) */
    /* Physical pages this vCPU's own cache may hold code from: its code_prot bit as it
       set it, cleared only when it drops its blocks of the page (or flushes).  Several
       vCPUs: another vCPU's write clears every bit of code_prot first and asks for the
       drops after (smp.c), so between the two a vCPU may find the page without bits
       and still hold translations of it: this bit says so.  1 bit per 4 KiB page. */
    uint8_t code_own[1u << 17];
    /* Physical pages below 4 GiB that directly run guest code has faulted in read-only
       (code, read-only data: a D-window fill of an entry without the write right),
       never cleared: a later such fill maps the other entries of its page table that
       name one of them at once (fault.c, d_predict).  1 bit per 4 KiB page. */
    uint8_t d_hot[1u << 17];
    uint64_t d_predicted; /* pages d_predict mapped */

    /* The page table whose accessed flags the last xbt_smmu_fill set for neighbours of
       the faulting page (fault.c, xbt_smmu_spec_accessed), or the directory page whose
       entries' flags a CR3 load's re-check set (window.c, rec_dir), or XBT_SPEC_PT_NONE
       (each fill and each CR3 load starts with it): the runtime looks again for other
       vCPUs' code there after either. */
    uint64_t spec_pt;
    /* Set during xbt_smmu_cr3_changed: a re-check of a window set against the new
       tables may set a directory entry's accessed flag (window.c, rec_dir). */
    bool spec_dir;

    /* A switch to another window set is dear (it moves the host GS base by a system
       call): a CR3 load may re-key the current set instead (window.c, keep_current). */
    bool keep_set;

    /* Linear pages whose mapping churns: a re-check at a CR3 load found their table
       entry changed and dropped them from a window (a process's stack page, demand-paged
       anew in each process; a page two address spaces map differently).  A soft fault
       site reaches such a page without filling the window (runtime/pfsite.c), up to
       XBT_CHURN_USES accesses between two CR3 loads (`churn_epoch` counts them): beyond,
       the page is hot in this address space and the window takes it (one fill, and a
       drop at the next switch, against a callout per access).  Also a page that an
       INVLPG dropped from a window again (`inv`: the pages the last INVLPGs dropped):
       kmap_local's slots, through which a HIGHPTE kernel reaches every user page table
       (Debian's 686 kernel: a map, a few accesses and an INVLPG, 160 times per
       fork+exec).  Hints only: direct-mapped by page, page + 1 (0: empty). */
#define XBT_CHURN_LOG2 6
#define XBT_CHURN_USES 64
    struct xbt_churn {
        uint32_t page1, uses, epoch;
    } churn[1u << XBT_CHURN_LOG2], inv[1u << XBT_CHURN_LOG2];
    uint32_t churn_epoch;
    uint32_t inv_prev; /* the page of the last one-page INVLPG (window.c, teardown_len) */

    /* Several vCPUs (the runtime sets it when the VM gets its second): every change of a
       populated host page-table entry is then a TLB flush on the other CPUs too,
       60,000-106,000 cycles on this host against 10,000-14,000 alone
       (docs/ARCHITECTURE.md, "Several vCPUs").  So a page the walk would let the access
       write but whose dirty flag is clear is read without a host mapping where a soft
       site reads it (`clean`: up to XBT_CHURN_USES reads per slot between two CR3
       loads), and a fill made read-only because its entry is clean maps that page
       alone, none of its clean neighbours: their first write would make each such a
       change (mprotect to writable), where a page not yet mapped costs a fresh
       mapping. */
    bool clean_alone;
    struct xbt_churn clean[1u << XBT_CHURN_LOG2];

    /* Statistics. */
    uint64_t wrec_checked, wrec_dropped, code_protects, code_protect_resets, set_keeps;
    uint64_t run_splits; /* split_run's cuts (window.c) */
} xbt_smmu;
#define XBT_SPEC_PT_NONE (~0ull)

/* Sets the accessed flag of the paging-structure entry at guest physical pte_gpa (es
   bytes, read as `pte`) by a compare-exchange, as a processor's speculative fill may;
   false where it changed meanwhile, is not RAM, or m->spec_pt names another page (the
   page written is left in m->spec_pt for the runtime's recheck of other vCPUs' code).
   The caller keeps page tables that hold translated code out. */
bool xbt_smmu_spec_accessed(xbt_smmu *m, uint64_t pte_gpa, uint64_t pte, uint32_t es);

/* Creation: window sets reserved (8 GiB each for the K- and U-window), per-page tables
   for the 4 GiB of guest physical addresses, over the slots of phys.  false with *why. */
bool xbt_smmu_init(xbt_smmu *m, xbt_phys *phys, const char **why);
void xbt_smmu_destroy(xbt_smmu *m);

/* Code pages are write-protected in the windows (unprotecting leaves the remapping to
   the next write fault).  `bit` is the vCPU's in code_prot: protecting sets it (and
   write-protects this shadow MMU's windows when it was not set) and returns the old
   bits (other vCPUs' windows are the runtime's to protect: runtime/smp.c);
   unprotecting clears `bits` and, paging off, makes the page writable again in this
   MMU's identity window once no bit is left. */
uint8_t xbt_protect_code_page(xbt_smmu *m, uint32_t page, uint8_t bit);
void xbt_unprotect_code_page(xbt_smmu *m, uint32_t page, uint8_t bits);
/* The code_prot bits of `page`.  Other vCPUs' threads set and clear them atomically
   meanwhile: an atomic load (a plain byte load on x86) keeps that a defined race, one
   ThreadSanitizer does not report. */
static inline uint8_t xbt_code_bits(const xbt_smmu *m, uint64_t page)
{
    return __atomic_load_n(&m->code_prot[page], __ATOMIC_RELAXED);
}
/* Whether this vCPU's own cache may hold code from `page` (code_own). */
static inline bool xbt_code_own(const xbt_smmu *m, uint64_t page)
{
    return (m->code_own[page >> 3] >> (page & 7)) & 1;
}
static inline void xbt_code_own_clear(xbt_smmu *m, uint64_t page)
{
    m->code_own[page >> 3] &= (uint8_t)~(1u << (page & 7));
}
/* Whether `page` must not be mapped writable in this vCPU's windows: some vCPU's cache
   holds code from it, or this one's still may (code_own: its drop is on the way). */
static inline bool xbt_code_page(const xbt_smmu *m, uint64_t page)
{
    return xbt_code_bits(m, page) || xbt_code_own(m, page);
}
/* Whether any of the n physical pages from `page` on holds translated code. */
static inline bool xbt_code_in(const xbt_smmu *m, uint64_t page, uint64_t n)
{
    for (uint64_t q = 0; q < n; q++)
        if (xbt_code_page(m, page + q))
            return true;
    return false;
}

/* Guest physical page `page` is written through no window until it faults again: its
   writable mappings in every window (the reverse map; every window when it lost track)
   are dropped, or paging off, the identity K-window's page made read-only and the
   D-window's dropped.  For dirty logs (xbt_vm_get_dirty_log). */
void xbt_smmu_write_protect(xbt_smmu *m, uint64_t page);

/* Paging off: the identity K-window's page made writable (a write beside translated
   code runs alone) or read-only again. */
void xbt_identity_protect(xbt_smmu *m, uint32_t page, bool writable);
/* Paging off: the identity K-window's page made inaccessible (a watched page, until
   xbt_identity_protect gives it back). */
void xbt_identity_hide(xbt_smmu *m, uint32_t page);
/* A one-page file (the MMIO scratch page) mapped at linear page lin of a window, over
   whatever was there (an MMIO address: nothing); and taken away again. */
bool xbt_window_map_scratch(xbt_smmu *m, uint8_t *window, uint32_t lin, int fd);
void xbt_window_unmap_scratch(xbt_smmu *m, uint8_t *window, uint32_t lin);
/* Drop every mapping of every set (and, paging off, map RAM 1:1 again with the code
   pages read-only). */
void xbt_window_reset(xbt_smmu *m, xbt_smmu_regs regs);
/* Map [lin, lin + len) of the K-window (window == m->kbase) or U-window onto RAM. */
bool xbt_window_map_range(xbt_smmu *m, uint8_t *window, uint32_t lin, uint64_t gpa,
                          uint32_t len, bool writable);
/* [lin, lin + len) leaves the current set's windows; every set's. */
void xbt_window_drop(xbt_smmu *m, uint32_t lin, uint32_t len);
void xbt_window_drop_all(xbt_smmu *m, uint32_t lin, uint32_t len);
/* [lin, lin + len) leaves the K-window of every set (SMAP: user pages it got while
   EFLAGS.AC was set); translations and the other windows are not concerned. */
void xbt_window_drop_k(xbt_smmu *m, uint32_t lin, uint64_t len);
/* Window `win` of the current set now maps [lin, lin + len) (onto gpa: writable ones
   go in the reverse map). */
void xbt_wmap_note(xbt_smmu *m, int win, uint32_t lin, uint32_t len);
/* The same for a page made writable in place (its probe byte says so). */
void xbt_wmap_note_writable(xbt_smmu *m, int win, uint32_t lin, uint32_t len);
void xbt_rmap_note(xbt_smmu *m, int win, uint32_t lin, uint64_t gpa, uint32_t len);
/* Window `win` of the current set was filled with [lin, lin + len) from a global entry
   or not (then with the entries it came from, for re-checking at a CR3 load: the
   directory entry, the first page's table entry, or a large page's). */
void xbt_window_note(xbt_smmu *m, int win, uint32_t lin, uint32_t len, bool global, bool pae,
                     uint32_t pde, uint32_t pte0, bool big);
/* Set `set`'s D-window is gone altogether (its runner process ended): nothing of it is
   mapped any more. */
void xbt_smmu_dwin_lost(xbt_smmu *m, unsigned set);
/* A CR3 load: the windows become those of address space as_key (cached: its non-global
   mappings re-checked against its page tables). */
void xbt_window_switch(xbt_smmu *m, uint32_t as_key);
/* Whether linear page lin's mapping churns (struct xbt_smmu's churn) and has not been
   used XBT_CHURN_USES times since the last CR3 load: counts a use. */
bool xbt_window_churns(xbt_smmu *m, uint32_t lin);
/* A soft read of linear page lin, writable for the walk and clean (struct xbt_smmu's
   clean): whether it may go without the window, counting a use of its slot. */
bool xbt_window_clean_read(xbt_smmu *m, uint32_t lin);

/* Epochs.  A mapping change: [lin, lin + len) (len 0: everything) leaves the windows of
   every set; returns whether translations may be affected: then m->region_bumped (a
   range) or m->all_epoch (everything) has a new epoch, and the runtime unchains and
   forgets lookups into those regions (xbt_smmu_unchain_all when all). */
enum { XBT_SMMU_UNCHANGED = 0, XBT_SMMU_REGIONS = 1, XBT_SMMU_ALL = 2 };
int xbt_smmu_mapping_changed(xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin, uint32_t len);
/* Whether the current tables map linear lin with a large page (4 MiB with CR4.PSE, 2 MiB
   with PAE): an INVLPG there invalidates every TLB entry for that page. */
bool xbt_smmu_large_at(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin);
/* A CR3 load (regs hold the new CR3): windows switched, and the regions with code whose
   mapping may differ get a new epoch (m->region_bumped), and those it does not map at
   all wait with their epoch saved (m->region_hidden: chains into them go);
   XBT_SMMU_REGIONS if any of either.  Of the regions bumped, those marked in
   m->region_alt_keep had their context set aside (the chains among its blocks within
   the region stay, the others go), those in m->region_alt_restore had the context set
   aside before made current again (its chains are the region's again): tcache.h,
   xbt_tc_switch_regions. */
int xbt_smmu_cr3_changed(xbt_smmu *m, xbt_smmu_regs regs);
/* A page of a block's code as the block's own walk found it: the physical page, and
   the low halves of the directory entry and of the last-level entry the walk checked
   (xbt_walk_result's pde and pte; both the directory entry for a large page, 0 with
   paging off). */
typedef struct xbt_code_walk {
    uint32_t page, pde, pte;
} xbt_code_walk;
/* A block was translated or found current on linear [lin0, lin1] under the current
   tables: its regions become code and its pages live for the epoch checks (an INVLPG
   of a page that is not live, a CR3 load that changes only such pages: no new epoch).
   w0 and w1: what the block's walks found for lin0 and lin1.  After it: when
   m->region_revived, a region the last CR3 load found absent was mapped again without
   a load and got a new epoch (region_bumped, region_alt_keep and region_alt_restore as
   after a load): the runtime does what it does after a load and clears the flag.  When
   m->region_alt_drop_any, the regions in m->region_alt_drop gave up the context they
   had set aside (a page of it checked on its frame under the current tables): the
   runtime undoes its chains (xbt_tc_drop_alt) before the block checked runs, and
   clears both. */
void xbt_smmu_code_seen(xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin0, uint32_t lin1,
                        const xbt_code_walk *w0, const xbt_code_walk *w1);

/* A block's walk of lin went through a non-global entry (a CR3 load may change it). */
static inline void xbt_smmu_code_nonglobal(xbt_smmu *m, uint32_t lin)
{
    m->region_code_ng[lin >> 25] |= (uint8_t)(1u << ((lin >> 22) & 7));
}
/* A block of linear [lin, lin + len) checked at epoch `epoch` may run without a walk:
   none of its regions changed since. */
static inline bool xbt_smmu_fresh(const xbt_smmu *m, uint32_t lin, uint32_t len,
                                  uint32_t epoch)
{
    uint32_t l1 = lin + (len ? len - 1 : 0);
    return m->all_epoch <= epoch && m->region_epoch[lin >> 22] <= epoch &&
           m->region_epoch[l1 >> 22] <= epoch;
}
/* The directory entry of a 4 MiB region under regs (0 with PAE or paging off); the
   same with A and D masked. */
uint32_t xbt_region_pde_raw(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t region);
uint32_t xbt_region_pde(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t region);

/* A host fault at `lin` in window `win` that the runtime's walk (r) found to be RAM the
   access may reach: fills the window (with the guest's neighbouring pages where they
   map alike; a large page whole).  `writable`: map it writable; `fetch`: the D-window
   fault was an instruction fetch (mapped read-only and executable, W^X).  `allow_large`:
   a large page may go in whole (no translated code in it, no write being handled).
   Returns XBT_DMAP_OK, XBT_DMAP_XLATE (a D-window page whose code must run translated:
   mapped without execute permission) or XBT_DMAP_FAIL (the D-window cannot hold it:
   below mmap_min_addr; the K- or U-window: the host's mmap failed). */
int xbt_smmu_fill(xbt_smmu *m, xbt_smmu_regs regs, int win, uint32_t lin,
                  const xbt_walk_result *r, bool writable, bool fetch, bool allow_large);

#endif
