/*
 * run.c - the run loop: deliver interrupts, find or translate the next block, chain,
 * enter translated code, turn what comes back into guest events or embedder exits.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "vcpu.h"
#include "runtime/sensitive.h"
#include "shadow-mmu/walk.h"

/* Guest code bytes for the translator.  Paging on, each page is walked as an
   instruction fetch; where that fails the bytes end and the fault is remembered
   (v->fetch_pf), to be raised if the first instruction cannot be fetched.  The physical
   pages of the first and last byte are recorded for code protection. */
static uint32_t fetch_code(void *opaque, uint32_t eip, uint8_t *buf, uint32_t len)
{
    struct xbt_vcpu *v = opaque;
    uint32_t lin = v->arch.seg[XBT_CS].base + eip;
    uint32_t n = 0;
    while (n < len) {
        uint32_t l = lin + n, chunk = 4096 - (l & 0xFFF);
        if (chunk > len - n)
            chunk = len - n;
        uint64_t gpa = l;
        xbt_walk_result wr = { 0 };
        if (xbt_paging(v)) {
            if (!xbt_walk_lin(v, l, false, v->arch.cpl == 3, true, &wr)) {
                if (!wr.bus_error) {
                    v->fetch_pf = true;
                    v->fetch_pf_lin = l;
                    v->fetch_pf_err = wr.error_code;
                }
                break;
            }
            gpa = wr.gpa;
            if (!wr.global)
                xbt_smmu_code_nonglobal(v->mmu, l);
        }
        const uint8_t *h = xbt_phys_r(&v->vm->phys, gpa, chunk);
        if (!h)
            break;
        /* Several vCPUs: the page is write-protected everywhere before its bytes are
           read, so no write of another vCPU falls between (smp.c). */
        if (v->vm->n_vcpus > 1) {
            xbt_code_protect(v, (uint32_t)(gpa >> 12));
            if (v->flog_n < XBT_FETCH_LOG && chunk <= sizeof v->flog->bytes) {
                struct xbt_fetch_rec *r = &v->flog[v->flog_n++];
                *r = (struct xbt_fetch_rec){ gpa, l, chunk, { 0 } };
                memcpy(r->bytes, h, chunk);
            } else {
                xbt_code_chunks_mark(v->vm, gpa, chunk); /* not logged: all of it */
            }
        }
        memcpy(buf + n, h, chunk);
        xbt_pf_fetched(v, l >> 12, (uint32_t)(gpa >> 12));
        /* The block's first byte's page: its first fetch's, at the block's own EIP.  A
           later fetch (a CS base that is not page-aligned puts a block's EIPs on one
           page and its bytes on two) is not the first page's. */
        xbt_code_walk w = { (uint32_t)(gpa >> 12), wr.pde, wr.pte };
        if (n == 0 && eip == v->ctx.eip)
            v->fetch_first = w;
        v->fetch_last = w; /* (a chunk is within a page) */
        v->fetch_lin_last = (l + chunk - 1) >> 12;
        n += chunk;
    }
    return n;
}

static inline __attribute__((always_inline)) xbt_tmode current_mode(const struct xbt_vcpu *v)
{
    xbt_tmode m = { 0 };
    m.cpl = (uint8_t)v->arch.cpl;
    /* At CPL 3 too where GS moves cheaply: the U-window's code is then the K-window's
       (both through GS, which set_window points at the right one).  Where it does not,
       CPL 3 code with paging reaches the U-window below GS's K-window base (UK). */
    m.window = xbt_paging(v) && v->arch.cpl == 3 && xbt_gs_fixed() ? XBT_WINDOW_UK
                                                                   : XBT_WINDOW_K;
    for (int s = XBT_ES; s <= XBT_DS; s++)
        if (v->arch.seg[s].base)
            m.segbase_mask |= (uint8_t)(1u << s);
    for (int s = 0; s < XBT_NSEG; s++)
        if (xbt_seg_limit_checked(&v->arch.seg[s]))
            m.seglimit_mask |= (uint8_t)(1u << s);
    if (xbt_seg_null_checked(v, XBT_ES))
        m.segnull |= XBT_SN_ES;
    if (xbt_seg_null_checked(v, XBT_DS))
        m.segnull |= XBT_SN_DS;
    if (v->arch.cr0 & (XBT_CR0_TS | XBT_CR0_EM))
        m.flags |= XBT_TM_FPU_NM;
    if (!(v->arch.cr4 & XBT_CR4_OSFXSR))
        m.flags |= XBT_TM_NO_SSE;
    /* SSE generations the CPUID policy hides raise #UD (policy.c). */
    m.flags |= xbt_hidden_isa(v);
    /* 16-bit code and stack: the D/B bits of CS's and SS's hidden parts (real mode
       keeps what the last protected-mode load, or a real-mode load, left there). */
    if (!v->arch.seg[XBT_CS].db)
        m.size16 |= XBT_TS_CODE16;
    if (!v->arch.seg[XBT_SS].db)
        m.size16 |= XBT_TS_STACK16;
    if (xbt_v86(v))
        m.size16 |= XBT_TS_V86;
    if (v->arch.cr4 & XBT_CR4_SMAP)
        m.size16 |= XBT_TS_SMAP;
    if (v->dx.bounded)
        m.size16 |= XBT_TS_BOUNDED;
    return m;
}

uint32_t xbt_vcpu_mode_key(const struct xbt_vcpu *v)
{
    xbt_tmode m = current_mode(v);
    return xbt_tc_mode_key(&m);
}

/* A block was translated or found current on linear [lin0, lin1], its walks finding w0
   and w1 there. */
static void mark_code_seen(struct xbt_vcpu *v, uint32_t lin0, uint32_t lin1,
                           const xbt_code_walk *w0, const xbt_code_walk *w1)
{
    xbt_code_seen(v, lin0, lin1, w0, w1);
}

/* Physical page of a linear code address under the current mapping (with the entries
   the walk found), or false. */
static bool code_page(struct xbt_vcpu *v, uint32_t lin, xbt_code_walk *w)
{
    if (!xbt_paging(v)) {
        *w = (xbt_code_walk){ lin >> 12, 0, 0 };
        return true;
    }
    xbt_walk_result r;
    if (!xbt_walk_lin(v, lin, false, v->arch.cpl == 3, true, &r))
        return false;
    *w = (xbt_code_walk){ (uint32_t)(r.gpa >> 12), r.pde, r.pte };
    if (!r.global)
        xbt_smmu_code_nonglobal(v->mmu, lin);
    return true;
}

/* Whether a cached block may run in this mapping epoch: BC_CURRENT if its linear pages
   still map to the physical pages it was translated from; BC_ELSEWHERE if they map other
   pages (b stays: an alias, below); BC_UNFETCHABLE if they cannot be fetched from now
   (b stays too: a new process's text is demand-paged, and once the guest's #PF handler
   has mapped the same page-cache page again the block runs as it is: Debian's fork+exec
   loop translated the first block of every page of busybox it ran again in each
   process, 26 per fork+exec); BC_DROPPED if it went. */
enum { BC_CURRENT, BC_ELSEWHERE, BC_UNFETCHABLE, BC_DROPPED };
static int block_check(struct xbt_vcpu *v, xbt_block *b)
{
    uint32_t lin0 = v->arch.seg[XBT_CS].base + b->eip;
    if (lin0 == b->lin && xbt_block_fresh(v, b))
        return BC_CURRENT;
    if (lin0 != b->lin) {
        /* Another CS base, the same EIP: other bytes (on the same page, at another
           offset, they passed the page check below and ran as the old ones), and its
           chains lead where the old base put their targets. */
        xbt_vcpu_drop_block(v, b);
        return BC_DROPPED;
    }
    uint32_t lin1 = xbt_block_last(b); /* (lin0 is b->lin here) */
    xbt_code_walk p0, p1;
    bool ok = code_page(v, lin0, &p0) && code_page(v, lin1, &p1);
    /* The walk sets accessed bits, and a page table can be a page that held code: that
       write can drop b (or, with several vCPUs, carry out requests that drop others or
       flush the cache: lookup_current checks). */
    if (!b->valid)
        return BC_DROPPED;
    if (!ok)
        return BC_UNFETCHABLE;
    if (p0.page == b->page[0] && p1.page == b->page[1]) {
        mark_code_seen(v, lin0, lin1, &p0, &p1); /* (may start a new epoch: before) */
        b->epoch = v->mmu->tc_epoch;
        return BC_CURRENT;
    }
    return BC_ELSEWHERE;
}

/* Aliases.  The cache is keyed by EIP, and with address-space randomization every new
   process maps ld.so and libc at another of a few hundred places (8 bits of mmap
   randomization on i386), so an EIP it runs was often another process's, of other
   bytes.  That translation used to be dropped, and the new one made (mostly copied:
   share_block): each exec of Debian's /bin/true copied about 1,100 blocks and dropped
   about 400, and its blocks were as stale as soon as it exited.  Now a translation
   whose pages the current mapping does not give stays, as an alias of the EIP, and the
   lookup walks the EIP's aliases (newest first, the one that answers moved to the
   front): after a few hundred processes, most of a new one's layout has been seen and
   its blocks are there.  At most XBT_ALIASES are kept per EIP and mode: the one a
   walk finds beyond them goes (a guest that maps ever new bytes at one EIP costs a
   bounded walk). */
#define XBT_ALIASES 8

/* The cached block at EIP eip in mode key that may run now, or NULL.  block_check's walk
   can drop blocks or flush the cache (its accessed-bit writes): after a flush no record
   seen before may be touched, and the walk goes on only from a block still valid. */
static xbt_block *lookup_current(struct xbt_vcpu *v, uint32_t eip, uint32_t key)
{
    uint32_t flushes = xbt_tc_flushes(v->tc);
    xbt_block *b = xbt_tc_lookup(v->tc, eip, key);
    for (uint32_t n = 0; b; n++) {
        int r = block_check(v, b);
        if (xbt_tc_flushes(v->tc) != flushes)
            return NULL;
        if (r == BC_CURRENT) {
            if (n)
                xbt_tc_prefer(v->tc, b);
            return b;
        }
        if (r == BC_UNFETCHABLE)
            return NULL; /* (the same linear page for every alias) */
        if (r == BC_ELSEWHERE && n + 1 >= XBT_ALIASES) {
            xbt_vcpu_drop_block(v, b);
            return NULL;
        }
        /* From a dropped b too: its links stay readable until a flush, but the next one
           found may have gone with it (then translate). */
        b = xbt_tc_lookup_next(v->tc, b);
        if (b && !b->valid)
            return NULL;
    }
    return NULL;
}

/* The table has an entry in EIP's 4 MiB region (its regions_present). */
static void region_note(struct xbt_ibl_set *set, uint32_t eip)
{
    uint32_t r = eip >> 22;
    set->regions_present[r >> 3] |= (uint8_t)(1u << (r & 7));
}

static void ibl_reset_set(struct xbt_ibl_set *set)
{
    for (uint32_t k = 0; k < set->n_used; k++) {
        uint32_t slot = set->used[k];
        xbt_ibl_clear(&set->t[slot]);
        set->listed[slot >> 3] = 0; /* (every listed slot's byte: the whole bitmap) */
    }
    set->n_used = 0;
    set->stale = false;
    set->prune_dropped = set->prune_regions_any = false;
    memset(set->prune_regions, 0, sizeof set->prune_regions);
    memset(set->regions_present, 0, sizeof set->regions_present);
}

/* A table forgets, in one pass over the entries it filled, those that may no longer
   lead where they say (noted by ibl_note_prune): the entries whose EIP lies in a 4 MiB
   region whose mapping epoch changed, and, when the cache's drop log overflowed, the
   entries into blocks that were dropped (host code stays in place until a flush, so
   each entry's block is found by its host address).  The list of filled entries loses
   the empty ones.  A table whose code has a CS base, where EIP is not the linear
   address, forgets everything at a region change instead. */
static void ibl_prune(struct xbt_ibl_set *set, struct xbt_tcache *tc)
{
    const uint8_t *regions = set->prune_regions_any ? set->prune_regions : NULL;
    bool dropped = set->prune_dropped;
    if (set->stale)
        return;
    if (regions && ((set->key >> 4) & (1u << XBT_CS))) {
        ibl_reset_set(set);
        return;
    }
    /* No walk where no entry lies in those regions. */
    bool walk = !regions || dropped;
    for (uint32_t i = 0; i < sizeof set->regions_present && !walk; i++)
        walk = (regions[i] & set->regions_present[i]) != 0;
    if (walk)
        memset(set->regions_present, 0, sizeof set->regions_present);
    uint32_t keep = 0;
    for (uint32_t k = 0; walk && k < set->n_used; k++) {
        uint32_t idx = set->used[k];
        struct xbt_ibl_entry *e = &set->t[idx];
        bool gone = e->tag >> 32; /* empty (a logged drop cleared it) */
        if (!gone) {
            uint32_t r = (uint32_t)e->tag >> 22;
            gone = regions && (regions[r >> 3] & (1u << (r & 7)));
        }
        if (!gone && dropped) {
            const xbt_block *b = xbt_tc_block_at(tc, e->host);
            gone = !b || !b->valid || (uint64_t)(uintptr_t)b->host != e->host;
        }
        if (gone) {
            xbt_ibl_clear(e);
            set->listed[idx >> 3] &= (uint8_t)~(1u << (idx & 7));
        } else {
            set->used[keep++] = idx;
            region_note(set, (uint32_t)e->tag);
        }
    }
    if (walk)
        set->n_used = keep;
    if (regions)
        memset(set->prune_regions, 0, sizeof set->prune_regions);
    set->prune_dropped = set->prune_regions_any = false;
}

/* Something every table must forget: blocks the cache dropped (its log) or regions that
   changed their mapping epoch (v->ibl_bump). */
static bool ibl_must_forget(const struct xbt_vcpu *v)
{
    return v->ibl_bump_pending || xbt_tc_drops_logged(v->tc);
}

/* What every table must forget before its next use (v->ibl_bump, the cache's drop
   log); the current one forgets regions now, the others when they are selected again
   (pruning all four at every invalidation was 3% of a glibc exec loop).  The entries
   into dropped blocks go at once, in every table, each found by its EIP, unless the log
   overflowed: then each table looks at every entry's block when next used. */
static void ibl_note_prune(struct xbt_vcpu *v)
{
    const struct xbt_tc_dropped *log;
    uint32_t n = xbt_tc_take_drops(v->tc, &log);
    for (int k = 0; k < XBT_IBL_SETS; k++) {
        struct xbt_ibl_set *set = &v->ibl_sets[k];
        if (set->stale)
            continue;
        if (!log)
            set->prune_dropped = true;
        else
            for (uint32_t i = 0; i < n; i++) {
                /* Its entry and its victim entry (the only places its EIP can be); a
                   cleared entry stays listed until the next pruning. */
                uint32_t slots[2] = { log[i].eip & (XBT_IBL_ENTRIES - 1),
                                      xbt_ibl_victim_slot(log[i].eip) };
                for (int j = 0; j < 2; j++) {
                    struct xbt_ibl_entry *e = &set->t[slots[j]];
                    if (!(e->tag >> 32) && e->host == log[i].host)
                        xbt_ibl_clear(e);
                }
            }
        if (v->ibl_bump_pending) {
            set->prune_regions_any = true;
            for (uint32_t i = 0; i < sizeof v->ibl_bump; i++)
                set->prune_regions[i] |= v->ibl_bump[i];
        }
    }
    if (v->ibl_bump_pending)
        memset(v->ibl_bump, 0, sizeof v->ibl_bump);
    v->ibl_bump_pending = false;
}

/* Every table forgets its entries (the current one now, the others when next used). */
static void ibl_reset(struct xbt_vcpu *v)
{
    for (int k = 0; k < XBT_IBL_SETS; k++)
        v->ibl_sets[k].stale = true;
    ibl_reset_set(v->ibl_cur);
}

/* Makes the table of mode `key` current (the least recently used one is taken over
   for a new key). */
static void ibl_select(struct xbt_vcpu *v, uint32_t key)
{
    struct xbt_ibl_set *set = v->ibl_cur;
    if (set->key != key) {
        struct xbt_ibl_set *lru = &v->ibl_sets[0];
        set = NULL;
        for (int k = 0; k < XBT_IBL_SETS; k++) {
            if (v->ibl_sets[k].key == key)
                set = &v->ibl_sets[k];
            if (v->ibl_sets[k].stamp < lru->stamp)
                lru = &v->ibl_sets[k];
        }
        if (!set) {
            set = lru;
            set->key = key;
            set->stale = true;
        }
        v->ibl_cur = set;
        v->ibl = set->t;
    }
    set->stamp = ++v->ibl_clock;
    /* Its entries are EIPs, offsets in CS: under another CS base (a far transfer in real
       mode, where the mode key does not name the base) they lead to the wrong code. */
    if (set->cs_base != v->arch.seg[XBT_CS].base) {
        set->cs_base = v->arch.seg[XBT_CS].base;
        set->stale = true;
    }
    if (set->stale)
        ibl_reset_set(set);
}

/* Entry `slot` of the table is (about to be) filled: on its list, once. */
static void ibl_list(struct xbt_ibl_set *set, uint32_t slot)
{
    if (!(set->listed[slot >> 3] & (1u << (slot & 7)))) {
        set->listed[slot >> 3] |= (uint8_t)(1u << (slot & 7));
        set->used[set->n_used++] = slot;
    }
}

/* Set `set` learns that EIP eip leads to host code `host` (ibl_fill's table update). */
static void ibl_put(struct xbt_ibl_set *set, uint32_t eip, uint64_t host)
{
    uint32_t idx = eip & (XBT_IBL_ENTRIES - 1);
    struct xbt_ibl_entry *e = &set->t[idx];
    if (!(e->tag >> 32) && (uint32_t)e->tag != eip) {
        /* Another target with the same low 16 bits: it moves to its victim entry (gcc's
           cc1 missed 430,000 times on such pairs in the macro compile). */
        uint32_t vs = xbt_ibl_victim_slot((uint32_t)e->tag);
        ibl_list(set, vs);
        set->t[vs] = *e;
    }
    ibl_list(set, idx);
    e->tag = eip;
    e->host = host;
    region_note(set, eip); /* (a victim keeps its tag: its region is there) */
}

/* The entries in the regions of `take` leave every table that is not about to forget
   them anyway (their region's pruning pending), in one walk of each table whose entries
   may lie there; each is appended to its region's list in v->ibl_alt (`bank` * 1024 +
   region) where that region is also in `keep` (at most 4,096 a region). */
static void ibl_take_regions(struct xbt_vcpu *v, const uint8_t *take, const uint8_t *keep,
                             uint32_t bank)
{
    for (uint32_t i = 0; i < XBT_IBL_SETS; i++) {
        struct xbt_ibl_set *set = &v->ibl_sets[i];
        if (set->stale)
            continue;
        bool any = false;
        for (uint32_t k = 0; k < 128 && !any; k++)
            any = (take[k] & set->regions_present[k] & (uint8_t)~set->prune_regions[k]) != 0;
        if (!any)
            continue;
        if ((set->key >> 4) & (1u << XBT_CS)) { /* EIPs under a CS base: all go */
            for (uint32_t k = 0; k < 128; k++)
                set->prune_regions[k] |= take[k];
            set->prune_regions_any = true;
            continue;
        }
        uint32_t kept = 0;
        for (uint32_t j = 0; j < set->n_used; j++) {
            uint32_t idx = set->used[j];
            struct xbt_ibl_entry *e = &set->t[idx];
            uint32_t r = (uint32_t)e->tag >> 22;
            uint8_t bit = (uint8_t)(1u << (r & 7));
            if ((e->tag >> 32) || !(take[r >> 3] & bit) || (set->prune_regions[r >> 3] & bit)) {
                set->used[kept++] = idx;
                continue;
            }
            struct xbt_ibl_alt *to = (keep[r >> 3] & bit) ? &v->ibl_alt[bank * 1024 + r] : NULL;
            if (to && to->n == to->cap && to->cap < 4096) {
                uint32_t cap = to->cap ? to->cap * 2 : 64;
                struct xbt_ibl_saved *nv = realloc(to->v, cap * sizeof *nv);
                if (nv)
                    to->v = nv, to->cap = cap;
            }
            if (to && to->n < to->cap)
                to->v[to->n++] = (struct xbt_ibl_saved){ (uint32_t)e->tag, set->key, e->host };
            xbt_ibl_clear(e);
            set->listed[idx >> 3] &= (uint8_t)~(1u << (idx & 7));
        }
        set->n_used = kept;
    }
}

/* The entries of `from` (taken from region r) go back into the tables of their modes,
   each whose block is still the one it led to (valid, at that host address, for that
   EIP and mode, within the region: not one dropped meanwhile), none after a flush. */
static void ibl_put_back(struct xbt_vcpu *v, uint32_t r, const struct xbt_ibl_alt *from)
{
    uint8_t bit = (uint8_t)(1u << (r & 7));
    if (from->flushes != xbt_tc_flushes(v->tc) || xbt_debug_any_bp(v))
        return;
    for (uint32_t j = 0; j < from->n; j++) {
        const struct xbt_ibl_saved *e = &from->v[j];
        const xbt_block *b = xbt_tc_block_at(v->tc, e->host);
        if (!b || !b->valid || (uint64_t)(uintptr_t)b->host != e->host || b->eip != e->eip ||
            b->mode_key != e->key || b->lin >> 22 != r || xbt_block_last(b) >> 22 != r)
            continue;
        for (uint32_t i = 0; i < XBT_IBL_SETS; i++) {
            struct xbt_ibl_set *set = &v->ibl_sets[i];
            if (set->key == e->key && !set->stale && !(set->prune_regions[r >> 3] & bit) &&
                set->cs_base == 0)
                ibl_put(set, e->eip, e->host);
        }
    }
}

/*
 * The inline lookup tables follow the shadow MMU's regions (smmu.h): a region that goes
 * absent at a CR3 load takes its entries out, kept (v->ibl_alt[1024 + r]) for a load that
 * finds it as it was (region_unhidden: they go back) or that sets its context aside; a
 * region whose context is set aside (region_alt_keep) takes out its entries (or those kept
 * while it was absent) and keeps them with it (v->ibl_alt[r]); one made current again
 * (region_alt_restore) gets back those kept with it.  Those blocks are the context's,
 * checked under tables that map it as it was: as safe to enter as its chains.  Other
 * regions with a new epoch forget their entries as before (v->ibl_bump).  (Without this,
 * a shell's return from each child it waited for missed its return sites and its
 * libraries' again.)  false: no memory for the lists (the caller forgets as before).
 */
bool xbt_ibl_regions_changed(struct xbt_vcpu *v)
{
    const xbt_smmu *m = v->mmu;
    if (!v->ibl_alt && !(v->ibl_alt = calloc(3 * 1024, sizeof *v->ibl_alt)))
        return false;
    /* What the tables are still to forget reaches them first, so that no entry taken
       out below is one of those (an INVLPG's new epoch, then at once an event through a
       task gate to tables without the region and back: the entries were kept and put
       back, found in review, tests/guests/ibl_taskgate.c). */
    if (v->ibl_stale)
        for (int k = 0; k < XBT_IBL_SETS; k++)
            v->ibl_sets[k].stale = true;
    if (ibl_must_forget(v))
        ibl_note_prune(v);
    /* Taken out: the regions that went absent (kept as they are, bank 1) and those whose
       context changes (the one that leaves kept where it is set aside, bank 2). */
    const uint8_t *hidden = m->region_hidden, *keep = m->region_alt_keep;
    uint8_t swap[128];
    bool any_hidden = false, any_swap = false;
    uint32_t now = xbt_tc_flushes(v->tc);
    for (uint32_t i = 0; i < 128; i++) {
        swap[i] = keep[i] | m->region_alt_restore[i];
        any_hidden |= hidden[i] != 0;
        any_swap |= swap[i] != 0;
        for (uint8_t b = hidden[i] | keep[i]; b; b &= (uint8_t)(b - 1)) {
            uint32_t r = i * 8 + (uint32_t)__builtin_ctz(b);
            struct xbt_ibl_alt *hid = &v->ibl_alt[1024 + r], *taken = &v->ibl_alt[2048 + r];
            if (hidden[i] & (1u << (r & 7))) {
                hid->n = 0; /* (a region absent since the last load is not hidden again) */
                hid->flushes = now;
            } else {
                /* The context that leaves: its entries kept while it was absent (then
                   the tables have none of it), or those in the tables. */
                struct xbt_ibl_alt t = *taken;
                t.n = 0;
                if (hid->n && hid->flushes == now) {
                    t = *hid;
                    *hid = *taken;
                    hid->n = 0;
                }
                *taken = t;
                taken->flushes = now;
            }
        }
    }
    if (any_hidden)
        ibl_take_regions(v, hidden, hidden, 1);
    if (any_swap)
        ibl_take_regions(v, swap, keep, 2);
    for (uint32_t i = 0; i < 128; i++) {
        uint8_t any = m->region_bumped[i] | m->region_unhidden[i];
        for (; any; any &= (uint8_t)(any - 1)) {
            uint32_t r = i * 8 + (uint32_t)__builtin_ctz(any);
            uint8_t bit = (uint8_t)(1u << (r & 7));
            struct xbt_ibl_alt *alt = &v->ibl_alt[r], *hid = &v->ibl_alt[1024 + r],
                               *taken = &v->ibl_alt[2048 + r];
            if (m->region_unhidden[i] & bit) {
                ibl_put_back(v, r, hid);
                hid->n = 0;
                continue;
            }
            hid->n = 0; /* a new epoch: what was kept while it was absent is not its */
            bool back = m->region_alt_restore[i] & bit;
            if (back)
                ibl_put_back(v, r, alt);
            if (keep[i] & bit) {
                struct xbt_ibl_alt t = *alt; /* the one taken goes where it is set aside */
                *alt = *taken;
                t.n = 0;
                *taken = t;
            } else if (back) {
                alt->n = 0; /* restored, nothing set aside in its place */
            } /* (else a plain new epoch: the tables forget the region, ibl_bump) */
        }
    }
    return true;
}

void xbt_ibl_drop_alt(struct xbt_vcpu *v, const uint8_t *bitmap)
{
    for (uint32_t r = 0; v->ibl_alt && r < 1024; r++)
        if (!bitmap || (bitmap[r >> 3] & (1u << (r & 7)))) {
            v->ibl_alt[r].n = 0;
            if (!bitmap)
                v->ibl_alt[1024 + r].n = 0;
        }
}

/* The current table learns that EIP t->eip leads to block t (cached and current), unless
   t's code ends in another 4 MiB region or a breakpoint is on it. */
static void ibl_fill(struct xbt_vcpu *v, const xbt_block *t)
{
    if (t->lin != v->arch.seg[XBT_CS].base + t->eip)
        return;
    if ((t->lin >> 22) != (xbt_block_last(t) >> 22))
        return; /* its end in another 4 MiB region, which the pruning does not look at */
    if (xbt_debug_any_bp(v) && xbt_debug_is_bp(v, t->lin))
        return; /* a breakpoint: indirect branches there leave to the dispatcher */
    ibl_put(v->ibl_cur, t->eip, (uint64_t)(uintptr_t)t->host);
}

/* The inline lookup missed the target of an indirect branch (at ctx.eip): the table
   learns it if its block is cached and current, or else once find_block has made it
   current or translated it (ibl_pending: a new target missed twice before). */
static void ibl_learn(struct xbt_vcpu *v, uint32_t key)
{
    v->stats.ibl_misses++;
    xbt_block *t = xbt_tc_lookup(v->tc, v->ctx.eip, key);
    if (t && t->lin == v->arch.seg[XBT_CS].base + t->eip && xbt_block_fresh(v, t)) {
        ibl_fill(v, t);
        return;
    }
    v->ibl_pending = true;
    v->ibl_pending_eip = v->ctx.eip;
    v->ibl_pending_key = key;
}

/* The block at ctx.eip into v->tb as a relocated copy of a cached translation of the
   same physical bytes at another EIP (translator.h, xbt_tblock_relocate), with
   fetch_first/last set as a translation sets them.  0: none to copy (translate it);
   -1: the copy differs from a fresh translation (XBT_CHECK_SHARED; v->exit is set). */
static int share_block(struct xbt_vcpu *v, const xbt_tmode *m, uint32_t key,
                       const xbt_block **from_out)
{
    xbt_vm *vm = v->vm;
    if (vm->no_share || v->xl.path || v->xl.prof || v->xl.block_count)
        return 0;
    uint32_t lin = v->arch.seg[XBT_CS].base + v->ctx.eip;
    xbt_code_walk p0, p1;
    if (!code_page(v, lin, &p0))
        return 0;
    xbt_block *src = xbt_tc_find_relocatable(v->tc, p0.page, lin & 0xFFF, key, v->ctx.eip);
    if (!src)
        return 0;
    /* Not where an MMIO site may be (its translation has the site's callout).  Fault
       sites belong to the physical bytes (pfsite.c): the copy has the checks a fresh
       translation here would have. */
    if (xbt_mmio_site_page(v, lin) || xbt_mmio_site_page(v, lin + src->guest_len))
        return 0;
    /* Its second page (the bytes of a last instruction that crosses, or only the
       translator's look-ahead) must be the one it was made from as well. */
    p1 = p0;
    if (src->page[1] != src->page[0] || (lin & 0xFFF) + src->guest_len > 4096) {
        uint32_t next = (lin & ~0xFFFu) + 4096;
        if (!next || !code_page(v, next, &p1) || p1.page != src->page[1])
            return 0;
    }
    v->tb->code = v->tbuf;
    v->tb->code_cap = XBT_BLOCK_MAX_CODE;
    if (!xbt_tc_get_tblock(src, v->tb))
        return 0;
    uint32_t from = v->tb->eip;
    xbt_tblock_relocate(v->tb, v->ctx.eip);
    if (vm->check_shared) {
        static _Thread_local uint8_t code[XBT_BLOCK_MAX_CODE];
        static _Thread_local xbt_tblock fresh;
        fresh.code = code;
        fresh.code_cap = sizeof code;
        v->fetch_pf = false;
        const char *what =
            xbt_translate_block(&v->xl, m, v->ctx.eip, fetch_code, v, &fresh) != XBT_T_OK
                ? "the fresh translation fails"
                : xbt_tblock_diff(&fresh, v->tb);
        if (what) {
            xbt_set_internal_error(v, v->ctx.eip, "XBT_CHECK_SHARED: the block at %08x copied "
                                   "from %08x differs from its fresh translation: %s",
                                   v->ctx.eip, from, what);
            return -1;
        }
    }
    v->fetch_first = p0;
    v->fetch_last = p1;
    v->fetch_lin_last = (lin + (v->tb->guest_len ? v->tb->guest_len - 1 : 0)) >> 12;
    v->stats.blocks_shared++;
    *from_out = src;
    return 1;
}

/* Translates the block at ctx.eip into v->tb, with the translator's settings as they are. */
static enum xbt_tstatus translate_tb(struct xbt_vcpu *v, const xbt_tmode *m)
{
    v->tb->code = v->tbuf;
    v->tb->code_cap = XBT_BLOCK_MAX_CODE;
    v->fetch_pf = false;
    v->flog_n = 0;
    return xbt_translate_block(&v->xl, m, v->ctx.eip, fetch_code, v, v->tb);
}

/* Several vCPUs: the bytes of block b (a trace: all it fetched) marked as code for the
   others' writes beside code (smp.c), then compared with what the translator read: a
   write that another vCPU made between the read and the mark, believing it beside
   code, shows here.  false: they differ. */
static bool code_marked(struct xbt_vcpu *v, const xbt_block *b)
{
    uint64_t b0 = b->lin, b1 = (uint64_t)b->lin + v->tb->guest_len;
    if (v->xl.path)
        b0 = 0, b1 = 1ull << 32;
    bool same = true;
    for (uint32_t i = 0; i < v->flog_n; i++) {
        const struct xbt_fetch_rec *r = &v->flog[i];
        uint64_t o0 = r->lin > b0 ? r->lin : b0, o1 = (uint64_t)r->lin + r->len;
        if (o1 > b1)
            o1 = b1;
        if (o0 >= o1)
            continue;
        uint32_t off = (uint32_t)(o0 - r->lin), n = (uint32_t)(o1 - o0);
        xbt_code_chunks_mark(v->vm, r->gpa + off, n);
        if (memcmp(v->vm->phys.view + r->gpa + off, r->bytes + off, n) != 0)
            same = false;
    }
    return same;
}

/* The perf map's buffered lines and the jitdump's records out (whichever the VM has). */
static void perf_flush(xbt_vm *vm)
{
    if (vm->perfmap)
        xbt_perfmap_flush(vm->perfmap);
    if (vm->jitdump)
        xbt_jitdump_flush(vm->jitdump);
}

/* Translates the block at ctx.eip into the cache.  NULL with v->exit set on failure. */
void xbt_vcpu_flush_translations(struct xbt_vcpu *v)
{
    xbt_vm *vm = v->vm;
    xbt_tc_flush(v->tc);
    perf_flush(vm); /* a generation of the map is complete */
    ibl_reset(v);
    v->unlinked = NULL;
    if (v->trace.rec_n)
        v->trace.rec_n = 0; /* its blocks are gone */
    xbt_unprotect_all(v);
    memset(v->mmu->code_own, 0, sizeof v->mmu->code_own); /* no code of its own left */
}

void xbt_unprotect_all(struct xbt_vcpu *v)
{
    const xbt_phys *ph = &v->vm->phys;
    for (const struct xbt_slot *s = NULL; (s = xbt_phys_next(ph, s)) != NULL;)
        for (uint64_t p = s->gpa >> 12; p < (s->gpa + s->size) >> 12; p++)
            if (v->vm->code_prot[p] & v->bit)
                xbt_unprotect_code_page(v->mmu, (uint32_t)p, v->bit);
}

static xbt_block *translate_once(struct xbt_vcpu *v, const xbt_tmode *m, uint32_t key)
{
    xbt_vm *vm = v->vm;
    /* Timed in TSC ticks (xbt_vcpu_get_stats converts): two clock_gettime calls per
       block were 2% of a glibc exec loop on this VM host. */
    uint64_t t0 = __builtin_ia32_rdtsc();
    enum xbt_tstatus ts = XBT_T_OK;
    v->flog_n = 0; /* a relocated copy reads nothing: its source's bytes are marked */
    /* A copy made for another EIP knows nothing of breakpoints at this one. */
    const xbt_block *from = NULL; /* a copy's source (set when share_block copies) */
    int shared = xbt_debugging(v) ? 0 : share_block(v, m, key, &from);
    if (shared < 0)
        return NULL;
    if (!shared)
        ts = translate_tb(v, m);
    v->translate_ticks += __builtin_ia32_rdtsc() - t0;
    if (v->xl.path && ts != XBT_T_OK)
        return NULL; /* a trace that cannot be laid out: the caller goes on without it */
    if (ts == XBT_T_FETCH_FAULT) {
        if (v->fetch_pf) {
            /* The first instruction's bytes are on a page the guest cannot fetch. */
            v->arch.cr2 = v->fetch_pf_lin;
            v->fetch_raised = true;
            if (!xbt_raise(v, XBT_PF, true, v->fetch_pf_err, v->ctx.eip))
                v->fetch_raised = false; /* triple fault: the exit is set */
            return NULL;
        }
        xbt_set_internal_error(v, v->ctx.eip,
                               "guest EIP %08x is outside RAM (no MMIO execution)", v->ctx.eip);
        return NULL;
    }
    if (ts != XBT_T_OK) {
        xbt_set_internal_error(v, v->ctx.eip, "translation failed at %08x: %s", v->ctx.eip,
                               v->tb->error);
        return NULL;
    }
    /* Physical pages of the block's first and last byte (paging off: the linear ones),
       with the entries their walks checked: the pages the bytes were read from (a
       second walk could see a page table another vCPU changed since).  The translator
       reads the next page only for an instruction that crosses into it, so the last
       fetch is normally the last byte's; not always where the CS base is not
       page-aligned (the translator's page is EIP's), and then the last byte's page is
       walked.  A trace's bytes need not end with its last fetch: walk both ends. */
    xbt_code_walk w0 = v->fetch_first, w1 = v->fetch_last;
    uint32_t first = v->arch.seg[XBT_CS].base + v->tb->eip;
    uint32_t last = first + (v->tb->guest_len ? v->tb->guest_len - 1 : 0);
    if (v->xl.path) {
        if (!code_page(v, first, &w0) || !code_page(v, last, &w1))
            return NULL; /* its pages are no longer mapped: no trace */
    } else if ((first ^ last) >> 12 == 0) {
        w1 = w0;
    } else if (v->fetch_lin_last != last >> 12 && !code_page(v, last, &w1)) {
        return NULL; /* (cannot be: its bytes were just read) */
    }
    xbt_block *b = xbt_tc_insert(v->tc, v->tb, key, first, w0.page, w1.page, from);
    if (!b) {
        /* Full: flush everything and try once more (the guest keeps running; a copy
           with a map of its own, its source gone). */
        xbt_vcpu_flush_translations(v);
        b = xbt_tc_insert(v->tc, v->tb, key, first, w0.page, w1.page, NULL);
        if (!b) {
            xbt_set_internal_error(v, v->ctx.eip, "translation cache too small for one block");
            return NULL;
        }
    }
    if (vm->perfmap || vm->jitdump) {
        char name[XBT_PERF_NAME_MAX]; /* one symbol lookup for both */
        if (vm->syms.relocated && m->cpl == 0 && xbt_paging(v))
            xbt_symtab_settle(&vm->syms, b->lin); /* (the first such block decides) */
        xbt_perf_block_name(name, &vm->syms, b->eip, m->cpl, v->xl.path != NULL);
        if (vm->perfmap)
            xbt_perfmap_add(vm->perfmap, b->host, b->host_len, name);
        if (vm->jitdump)
            xbt_jitdump_add(vm->jitdump, b->host, b->host_len, name);
    }
    mark_code_seen(v, first, last, &w0, &w1); /* (may start a new epoch: before) */
    b->epoch = v->mmu->tc_epoch;
    xbt_code_protect(v, w0.page);
    xbt_code_protect(v, w1.page);
    if (vm->n_vcpus > 1 && !code_marked(v, b))
        v->mbox.n_inval = XBT_MBOX_INVAL_LOG + 1; /* changed meanwhile: translate() tries again */
    return b;
}

/* Whether block b, just made, may hold bytes another vCPU wrote while they were read:
   a request dropped blocks of one of its pages meanwhile (smp.c), or of more pages
   than the log holds, or b itself went.  A trace's pages in between are not known:
   any drop counts. */
static bool translated_stale(const struct xbt_vcpu *v, const xbt_block *b)
{
    const struct xbt_vcpu_mbox *mb = &v->mbox;
    if (!b->valid || mb->n_inval > XBT_MBOX_INVAL_LOG || (v->xl.path && mb->n_inval))
        return true;
    for (uint32_t i = 0; i < mb->n_inval; i++)
        if (mb->inval_page[i] == b->page[0] || mb->inval_page[i] == b->page[1])
            return true;
    return false;
}

/* translate_once, again where another vCPU wrote code while this one translated (the
   bytes read may be the old ones: smp.c carried out a drop meanwhile).  A trace is
   not tried again.  NULL with smc.single set: starved, the instruction runs alone. */
static xbt_block *translate(struct xbt_vcpu *v, const xbt_tmode *m, uint32_t key)
{
    for (int tries = 0;; tries++) {
        v->mbox.n_inval = 0;
        xbt_block *b = translate_once(v, m, key);
        if (!b || !translated_stale(v, b))
            return b;
        xbt_vcpu_drop_block(v, b);
        if (v->xl.path)
            return NULL;
        if (tries == 64) {
            /* Starved: other vCPUs keep writing the page (their own code beside this).
               The instruction runs alone, uncached (single_step), and the next one is
               translated afresh: progress, where an error once ended the run. */
            v->smc.single = true;
            return NULL;
        }
    }
}

/* Completes an IN or INS whose data the embedder supplied in the exit record. */
static void complete_in(struct xbt_vcpu *v)
{
    uint32_t data = v->exit.io.data;
    unsigned size = v->pio.in_reg_size & 7;
    if (v->pio.in_reg_size & 0x80) {
        /* INS: the data goes to ES:(E)DI, RAM or MMIO (the store exit comes next); a REP
           INS of io_count elements into one page of RAM (checked at the exit). */
        uint32_t m = v->pio.ins_mask, n = v->pio.count > 1 ? v->pio.count : 1;
        uint32_t *edi = &v->ctx.gpr[XBT_EDI];
        xbt_store_lin(v, v->arch.seg[XBT_ES].base + (*edi & m),
                      n > 1 ? (const void *)v->pio.buf : (const void *)&data, n * size);
        v->pf_pending = false; /* checked when the INS ran (callouts.c) */
        int step = (v->ctx.eflags & XBT_EFLAGS_DF) ? -(int)size : (int)size;
        xbt_str_add(edi, m, (uint32_t)step * n);
        if (v->pio.ins_rep && (v->ctx.gpr[XBT_ECX] & m))
            xbt_str_add(&v->ctx.gpr[XBT_ECX], m, (uint32_t)-n);
        v->pio.count = 1;
    } else {
        uint32_t *eax = &v->ctx.gpr[XBT_EAX];
        if (size == 1)
            *eax = (*eax & ~0xFFu) | (data & 0xFF);
        else if (size == 2)
            *eax = (*eax & ~0xFFFFu) | (data & 0xFFFF);
        else
            *eax = data;
    }
    v->pio.in_pending = false;
}

/* A data write to a page holding translated code: snapshot the page, run the writing
   instruction alone (smc_single) with the page writable, then smc_data_end. */
void xbt_smc_data_begin(struct xbt_vcpu *v, uint32_t page, uint32_t lin, bool paged)
{
    memcpy(v->smc.shadow, v->vm->phys.view + ((uint64_t)page << 12), 4096);
    v->stats.smc_data_writes++;
    v->smc.data = true;
    v->smc.data_page = page;
    v->smc.data_lin = lin;
    v->smc.data_paged = paged;
    v->smc.single = true;
}

/* After the single step: if it changed code bytes after all (a string instruction
   reaching past the first 16 bytes), the page's translations go; otherwise the page is
   protected again (paging: its mapping dropped, to come back read-only). */
static void smc_data_end(struct xbt_vcpu *v)
{
    xbt_vm *vm = v->vm;
    v->smc.data = false;
    const uint8_t *now = vm->phys.view + ((uint64_t)v->smc.data_page << 12);
    if (memcmp(now, v->smc.shadow, 4096) != 0) {
        uint32_t first = 0, last = 4095;
        while (now[first] == v->smc.shadow[first])
            first++;
        while (now[last] == v->smc.shadow[last])
            last--;
        if (xbt_code_at(v, v->smc.data_page, first, last - first + 1)) {
            xbt_code_written(vm, v, (uint64_t)v->smc.data_page << 12, 4096, true);
            if (v->smc.data_paged)
                xbt_window_drop(v->mmu, v->smc.data_lin & ~0xFFFu, 4096);
            return;
        }
    }
    if (!v->mmu->code_prot[v->smc.data_page])
        return; /* invalidated meanwhile */
    if (v->smc.data_paged)
        xbt_window_drop(v->mmu, v->smc.data_lin & ~0xFFFu, 4096);
    else
        xbt_identity_protect(v->mmu, v->smc.data_page, false);
}

/* Translated code is about to run: with several vCPUs it counts as in translated code
   from here (smp.c); false: requests or a kick came meanwhile (a kick while in_tc was
   clear sends no signal: signals.c), through the dispatcher first. */
static inline bool tc_enter(struct xbt_vcpu *v)
{
    xbt_smap_sync(v); /* EFLAGS.AC clear: no user page in the K-window (mmu.c) */
    if (v->vm->n_vcpus < 2)
        return true;
    atomic_store(&v->mbox.in_tc, true);
    if (!xbt_mbox_pending(v) && !atomic_load(&v->kick))
        return true;
    atomic_store(&v->mbox.in_tc, false);
    return false;
}

/* Translated code has returned to C (tc_enter's other half). */
static inline void tc_leave(struct xbt_vcpu *v)
{
    atomic_store_explicit(&v->mbox.in_tc, false, memory_order_release);
}

/* A host fault in translated code, turned into a guest event.  false: exit recorded. */
static bool handle_fault(struct xbt_vcpu *v)
{
    int sig = v->fault_sig;
    v->stats.host_faults++;
    tc_leave(v);
    if (sig < 0) {
        xbt_set_internal_error(v, v->ctx.eip, "host signal %d outside a guest instruction "
                               "(rip %#llx)", -sig, (unsigned long long)v->fault_rip);
        return false;
    }
    uint32_t eip = v->ctx.eip;
    switch (sig) {
    case SIGSEGV: {
        /* In the K-window, or (paging on) the U-window: the shadow MMU's route. */
        uint64_t a = v->fault_addr, k = (uintptr_t)v->mmu->kbase, u = (uintptr_t)v->mmu->ubase;
        if (v->fault_ukfast && (u - a - 1 < XBT_UWIN_UNDER ||
                                a - u - (4ull << 30) < XBT_UWIN_BELOW - (4ull << 30))) {
            /* Below the U-window or in its guard page: a fast-form sum reg + disp that
               wrapped at 4 GiB (translator.h, uk_wrap_site).  The instruction runs
               alone with the LEA, and is translated so from now on (pfsite.c). */
            xbt_uk_wrap_note(v, v->arch.seg[XBT_CS].base + eip);
            v->smc.single = true;
            return true;
        }
        int win = a - k < (4ull << 30) ? XBT_WINDOW_K
                  : a - u < (4ull << 30) && xbt_paging(v) ? XBT_WINDOW_U : -1;
        if (win < 0)
            return xbt_raise(v, XBT_GP, true, 0, eip);
        /* A guest #PF or a fill: counts towards making the instruction a fault site. */
        uint64_t before = v->stats.page_faults + v->stats.hidden_faults;
        uint32_t lin_eip = v->arch.seg[XBT_CS].base + eip; /* before a #PF's delivery */
        uint32_t lin = (uint32_t)(a - (win == XBT_WINDOW_K ? k : u));
        if (v->fault_maskmov >= 0) {
            /* A masked store: which of its bytes the host CPU names differs between
               hosts (a Xeon with AVX-512 names byte 8 of a MASKMOVDQU that stores bytes 0
               and 2 of a page not present).  The guest sees the store's first byte in
               the faulting page, as for any other access. */
            uint32_t s = (uint32_t)v->fault_maskmov, pg = lin & ~0xFFFu;
            if (lin - s < 16)
                lin = s - pg < 0x1000 ? s : pg;
        }
        int rc = xbt_window_fault(v, win, lin);
        if (rc != XBT_WF_EXIT && v->stats.page_faults + v->stats.hidden_faults != before)
            xbt_pf_note_fault(v, lin_eip);
        return rc != XBT_WF_EXIT;
    }
    case SIGFPE:
        if (v->fault_code == FPE_INTDIV || v->fault_code == FPE_INTOVF)
            return xbt_raise(v, XBT_DE, false, 0, eip);
        return xbt_raise(v, (v->arch.cr4 & XBT_CR4_OSXMMEXCPT) ? XBT_XM : XBT_MF, false, 0, eip);
    case SIGILL:
        return xbt_raise(v, XBT_UDV, false, 0, eip);
    case SIGTRAP:
        return xbt_raise(v, XBT_DB, false, 0, eip);
    default:
        return xbt_raise(v, XBT_GP, true, 0, eip);
    }
}

/* The fault handlers leave by siglongjmp.  They are installed with SA_NODEFER, so the
   signal mask needs no restoring (a system call per run saved), except under
   ThreadSanitizer: its wrapper of every handler blocks the signal while the handler
   runs, whatever SA_NODEFER says, and the next fault in translated code would then
   kill the process (measured: the second SIGSEGV of smc.elf, the second SIGFPE of
   exceptions.elf). */
#if defined(__SANITIZE_THREAD__)
#define FAULT_JMP_SAVEMASK 1
#else
#define FAULT_JMP_SAVEMASK 0
#endif

/* Per thread: the GS base last set for translated code.  The check costs a system
   call, so a run that returns for every port access (an IN exit) does it once per
   thread. */
static __thread uintptr_t thread_gs_base;

/* Whether this host lets user space set the GS base itself (FSGSBASE: WRGSBASE). */
static bool host_wrgsbase(void)
{
    /* Atomic: several vCPU threads may be the first at once (each finds the same). */
    static _Atomic int fsgsbase = -1;
    int f = atomic_load_explicit(&fsgsbase, memory_order_relaxed);
    if (f < 0) {
        f = (getauxval(AT_HWCAP2) & 2) != 0; /* HWCAP2_FSGSBASE */
        atomic_store_explicit(&fsgsbase, f, memory_order_relaxed);
    }
    return f;
}

/* GS stays at the K-window's base at every privilege (translated CPL 3 code is UK):
   where GS moves only by arch_prctl (19,500 cycles on a PVM guest, two per guest system
   call), or when XBT_GS=fixed asks for it; XBT_GS=switch asks for the switched layout.
   Decided once per process, so every translation of a VM agrees. */
bool xbt_gs_fixed(void)
{
    static _Atomic int fixed = -1;
    int f = atomic_load_explicit(&fixed, memory_order_relaxed);
    if (f < 0) {
        const char *e = getenv("XBT_GS");
        f = e && !strcmp(e, "fixed") ? 1 : e && !strcmp(e, "switch") ? 0 : !host_wrgsbase();
        atomic_store_explicit(&fixed, f, memory_order_relaxed);
    }
    return f;
}

/* Whether a switch between window sets should be avoided where little is lost (the
   shadow MMU's keep_set): it moves the GS base, which without WRGSBASE is a host system
   call.  XBT_WSET=keep or XBT_WSET=lru overrides. */
bool xbt_set_switch_dear(void)
{
    const char *e = getenv("XBT_WSET");
    if (e && !strcmp(e, "keep"))
        return true;
    if (e && !strcmp(e, "lru"))
        return false;
    return !host_wrgsbase();
}

/* The GS base translated code needs now, and the window ctx->kbase names (the one of
   the current privilege, which callouts and the string rewrites use). */
static uint8_t *gs_target(const struct xbt_vcpu *v)
{
    return xbt_gs_fixed() ? v->mmu->kbase : xbt_current_window(v);
}

/* Points GS at gs_target and ctx->kbase (and the fault-site probe table) at the window
   of the current privilege.  WRGSBASE when the host kernel allows it, else arch_prctl. */
static bool set_window(struct xbt_vcpu *v)
{
    uint8_t *w = xbt_current_window(v), *gs = gs_target(v);
    v->ctx.kbase = (uint64_t)(uintptr_t)w;
    v->ctx.pf_probe = (uint64_t)(uintptr_t)
        v->mmu->cur->wmap[w == v->mmu->ubase ? XBT_WINDOW_U : XBT_WINDOW_K].probe;
    if (thread_gs_base == (uintptr_t)gs)
        return true;
    if (host_wrgsbase())
        __asm__ volatile("wrgsbase %0" : : "r"((uint64_t)(uintptr_t)gs) : "memory");
    else if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)(uintptr_t)gs) != 0)
        return false;
    thread_gs_base = (uintptr_t)gs;
    return true;
}

/* ---- traces (NET-style, as in Dynamo and DynamoRIO) ---------------------------------
   A block entered through a backward direct branch is a trace head; its entries are
   counted in the dispatcher (the backward branch stays unchained meanwhile).  At
   XBT_TRACE_HOT the blocks that run next are recorded, unchained and with the inline
   lookup off, until the path comes back to the head, reaches another trace or has
   XBT_TRACE_MAX_BLOCKS blocks; the translator then lays the path out as one block with
   the hot direction of each conditional branch falling through, calls followed and
   indirect branches guarded by the target seen (translator.h).  A block entered by an
   exit of a trace is a head too (NET's "exits from existing traces").  A callout that
   leaves translated code, an interrupt or exception or a mode change on the way gives
   the head up. */
#define XBT_TRACE_HOT 50

static uint64_t trace_events(const struct xbt_vcpu *v)
{
    uint64_t n = v->stats.interrupts;
    for (int i = 0; i < 32; i++)
        n += v->stats.exceptions[i];
    return n;
}

void xbt_vcpu_drop_block_at(struct xbt_vcpu *v, uint64_t pc)
{
    xbt_block *b = xbt_tc_block_at(v->tc, pc);
    if (b && b->valid)
        xbt_vcpu_drop_block(v, b);
}

bool xbt_page_bit_set(uint8_t **bits, uint32_t lin)
{
    if (!*bits && !(*bits = calloc(1, 1u << 17)))
        return false;
    (*bits)[lin >> 15] |= (uint8_t)(1u << ((lin >> 12) & 7));
    return true;
}

void xbt_vcpu_drop_block(struct xbt_vcpu *v, xbt_block *b)
{
    if (v->unlinked == b)
        v->unlinked = NULL;
    xbt_tc_drop(v->tc, b);
}

static void trace_abort(struct xbt_vcpu *v)
{
    xbt_block *h = v->trace.rec_n
                       ? xbt_tc_lookup(v->tc, v->trace.rec_path[0], v->trace.rec_key)
                       : NULL;
    if (h && !h->tstate)
        h->tstate = 2;
    v->trace.rec_n = 0;
    v->stats.trace_aborts++;
}

/* The dispatcher is about to run b: record it, or close the path and build the trace
   (returned instead of b), or give up.  NULL: translation failed (exit recorded). */
static xbt_block *trace_step(struct xbt_vcpu *v, xbt_block *b, const xbt_tmode *m, uint32_t key,
                             uint64_t *chain_site)
{
    if (key != v->trace.rec_key || trace_events(v) != v->trace.rec_events) {
        trace_abort(v);
        return b;
    }
    if (b->eip != v->trace.rec_path[0] && b->tstate != 1 && v->trace.rec_n < XBT_TRACE_MAX_BLOCKS) {
        v->trace.rec_path[v->trace.rec_n++] = b->eip;
        return b;
    }
    /* Back at the head, at an existing trace or at the size bound: lay the path out
       (its last block's exits lead on as usual). */
    uint32_t n = v->trace.rec_n;
    v->trace.rec_n = 0;
    xbt_block *h = lookup_current(v, v->trace.rec_path[0], key);
    if (!h)
        return b;
    bool at_head = h == b;
    xbt_vcpu_drop_block(v, h); /* the head's chains go; they come back to the trace */
    v->xl.path = v->trace.rec_path;
    v->xl.path_n = n;
    uint32_t eip = v->ctx.eip;
    v->ctx.eip = v->trace.rec_path[0];
    v->xl.prof = NULL;
    if (v->vm->cfg.flags & XBT_VM_TRACE_PROFILE) {
        if (!v->trace.prof_pool) {
            v->trace.prof_pool = calloc((size_t)XBT_PROF_TRACES * XBT_PROF_STRIDE, 8);
            v->trace.prof_info = calloc(XBT_PROF_TRACES, sizeof *v->trace.prof_info);
        }
        if (v->trace.prof_pool && v->trace.prof_info && v->trace.prof_n < XBT_PROF_TRACES)
            v->xl.prof = &v->trace.prof_pool[(size_t)v->trace.prof_n * XBT_PROF_STRIDE];
    }
    xbt_tc_stats before, after;
    xbt_tc_get_stats(v->tc, &before);
    xbt_block *t = translate(v, m, key); /* a trace never raises or stops the VM */
    xbt_tc_get_stats(v->tc, &after);
    if (after.flushes != before.flushes)
        *chain_site = 0; /* the exit we came by is gone */
    v->ctx.eip = eip;
    v->xl.path = NULL;
    v->xl.path_n = 0;
    bool profiled = v->xl.prof != NULL;
    v->xl.prof = NULL;
    if (t) {
        t->tstate = 1;
        v->stats.traces++;
        v->stats.trace_blocks += v->tb->path_used;
        v->stats.trace_guards += v->tb->stats.trace_guards;
        if (profiled)
            v->trace.prof_info[v->trace.prof_n++] =
                (struct xbt_prof_info){ v->trace.rec_path[0], v->tb->path_used };
        if (at_head)
            return t;
    } else {
        v->stats.trace_aborts++; /* the head comes back as a plain block */
    }
    /* What runs now is the block at ctx.eip (a full cache was flushed meanwhile, or the
       head that was b is gone): looked up again, or translated. */
    xbt_block *n2 = lookup_current(v, eip, key);
    if (n2)
        return n2;
    return translate(v, m, key);
}

/* ---- the run loop, in the steps of QEMU's cpu_exec ----------------------------------
   Each step returns 0 to go on to the next one, or what the loop does now:
   XBT_LEAVE_DISPATCH (round again, with no exit to chain: an event was delivered, or the
   guest ran elsewhere), XBT_LEAVE_EXIT (v->exit holds an exit for the embedder), or the
   value translated code left with (XBT_JIT_EXIT_DIRECT: chain the exit it took). */

static inline int dispatch_or_exit(bool ok)
{
    return ok ? XBT_LEAVE_DISPATCH : XBT_LEAVE_EXIT;
}

/* What translated code needs of this thread and vCPU: the alternate signal stack, the
   scratch page for uncached single steps, the GS base.  false: internal error. */
static bool run_setup(struct xbt_vcpu *v)
{
    if (!xbt_thread_altstack()) {
        xbt_set_internal_error(v, v->ctx.eip, "cannot set up an alternate signal stack");
        return false;
    }
    if (!v->smc.exec) {
        /* The scratch code page for uncached single steps: executable here, writable
           through a second mapping elsewhere (nothing is both), as the cache. */
        if (!xbt_tc_map_code(XBT_BLOCK_MAX_CODE, &v->smc.exec, &v->smc.exec_w)) {
            v->smc.exec = v->smc.exec_w = NULL;
            xbt_set_internal_error(v, v->ctx.eip, "cannot map a scratch code page");
            return false;
        }
        if (v->vm->perfmap)
            xbt_perfmap_add(v->vm->perfmap, v->smc.exec, XBT_BLOCK_MAX_CODE, "xbt:single-step");
    }
    if (!set_window(v)) {
        xbt_set_internal_error(v, v->ctx.eip, "cannot set the GS base (arch_prctl)");
        return false;
    }
    return true;
}

/* Finishes the instruction the last exit stopped in, with the embedder's answer (an IN's
   data, an MMIO read's).  false: the same instruction makes its next exit at once, or
   failed; v->exit holds it. */
static bool finish_exit(struct xbt_vcpu *v)
{
    if (v->pio.in_pending)
        complete_in(v);
    if (v->pol.msr_pending)
        xbt_msr_exit_complete(v); /* an MSR the embedder handles (policy.c) */
    if (v->mmio.pending && !xbt_mmio_complete(v)) {
        v->stats.exits[XBT_EXIT_INTERNAL_ERROR]++;
        return false; /* v->exit holds the reason */
    }
    if (v->mmio.exit_ready) { /* MMIO to MMIO: MOVS's write, CMPS's second read */
        v->mmio.exit_ready = false;
        v->stats.exits[XBT_EXIT_MMIO]++;
        return false;
    }
    if (xbt_callout_mmio_store(v)) { /* a callout's second (third ...) MMIO store */
        v->stats.exits[XBT_EXIT_MMIO]++;
        return false;
    }
    return true;
}

/* set_window where the window changed since the last dispatch (a CPL switch, an MMIO
   step); compared first, as this is per dispatch.  false: internal error. */
static bool follow_window(struct xbt_vcpu *v)
{
    if (((uintptr_t)xbt_current_window(v) == v->ctx.kbase &&
         (uintptr_t)gs_target(v) == thread_gs_base) || set_window(v))
        return true;
    xbt_set_internal_error(v, v->ctx.eip, "cannot set the GS base");
    return false;
}

/* What the last step left: a triple fault, an MMIO instruction's step, the data write on
   a code page, the block a recording unlinked; then a stop request. */
static int begin_dispatch(struct xbt_vcpu *v)
{
    if (v->arch.shutdown) { /* a triple fault whose reporter went on (excp.c) */
        memset(&v->exit, 0, sizeof v->exit);
        v->exit.reason = XBT_EXIT_SHUTDOWN;
        return XBT_LEAVE_EXIT;
    }
    if (v->mmio.step_active && xbt_mmio_step_finish(v))
        return XBT_LEAVE_EXIT; /* the MMIO store of the instruction that just ran */
    if (v->mmio.run) {
        if (!follow_window(v))
            return XBT_LEAVE_EXIT;
        xbt_mmio_step_prepare(v);
        if (v->exit.reason == XBT_EXIT_INTERNAL_ERROR)
            return XBT_LEAVE_EXIT;
    }
    if (v->smc.data && !v->smc.single)
        smc_data_end(v); /* the data write on a code page has run (or was undone) */
    if (xbt_mbox_pending(v))
        xbt_mbox_run(v); /* other vCPUs' requests (smp.c) */
    if (v->pfs.sweep_due)
        xbt_pf_sweep(v); /* fault sites that ran hot without callouts (pfsite.c) */
    if (v->unlinked) {
        xbt_tc_relink_out(v->tc, v->unlinked);
        v->unlinked = NULL;
    }
    v->ctx.ibl_table = (uint64_t)(uintptr_t)v->ibl;
    /* Plain loads and stores on this per-dispatch path (xchg costs ~20 cycles); the
       interrupt source's own lock orders the kick flag against its state. */
    if (atomic_load_explicit(&v->stop, memory_order_relaxed)) {
        atomic_store(&v->stop, false);
        v->exit.reason = XBT_EXIT_STOPPED;
        return XBT_LEAVE_EXIT;
    }
    atomic_store_explicit(&v->kick, false, memory_order_relaxed);
    return 0;
}

/* handle-interrupt: an NMI, an interrupt from the embedder's source, the interrupt
   window the embedder asked for, HLT. */
static int handle_interrupt(struct xbt_vcpu *v)
{
    /* The STI / MOV SS shadow covers exactly one instruction: run that one alone
       (uncached), so a loop starting right after STI still takes interrupts. */
    if (v->arch.interrupt_shadow) {
        if (v->ctx.eip != v->arch.shadow_eip)
            v->arch.interrupt_shadow = false;
        else
            v->smc.single = true;
    }
    if (!v->arch.nmi_blocked && !v->arch.interrupt_shadow &&
        atomic_load_explicit(&v->nmi_pending, memory_order_relaxed)) {
        /* An NMI: whatever IF says; NMIs stay blocked until the next IRET. */
        atomic_store(&v->nmi_pending, false);
        v->arch.nmi_blocked = true;
        v->stats.interrupts++;
        return dispatch_or_exit(xbt_deliver_interrupt(v, XBT_NMI, false, v->ctx.eip,
                                                      v->ctx.eip));
    }
    if (v->ctx.vif && !v->arch.interrupt_shadow && v->irq_fn) {
        /* The gates open before the poll (a kick after it closes them again); only
           a poll that finds nothing proves that nothing is pending. */
        __atomic_store_n(&v->ctx.intr_gate, (uint64_t)(uintptr_t)xbt_jit_intr_open,
                         __ATOMIC_SEQ_CST);
        int vec = v->irq_fn(v->irq_opaque);
        if (vec >= 0) {
            v->ctx.intr_gate = (uint64_t)(uintptr_t)xbt_jit_intr_pending;
            return dispatch_or_exit(xbt_deliver_interrupt(v, vec & 0xFF, false, v->ctx.eip,
                                                          v->ctx.eip));
        }
    } else if (!v->irq_fn && !v->irq_window_req) {
        v->ctx.intr_gate = (uint64_t)(uintptr_t)xbt_jit_intr_open; /* no source */
    }
    if (v->irq_window_req && v->ctx.vif && !v->arch.interrupt_shadow) {
        v->irq_window_req = false; /* the embedder injects now */
        memset(&v->exit, 0, sizeof v->exit);
        v->exit.reason = XBT_EXIT_IRQ_WINDOW;
        return XBT_LEAVE_EXIT;
    }
    if (v->arch.halted) {
        v->exit.reason = XBT_EXIT_HLT;
        return XBT_LEAVE_EXIT;
    }
    return 0;
}

/* Guest user code runs directly (direct.c) until a host signal brings it back, unless
   an instruction must run alone here; 0: translated code runs. */
static int run_direct(struct xbt_vcpu *v)
{
    if (v->arch.cpl != 3) { /* back in the kernel: user code may run directly */
        v->dx.sticky = v->dx.bounded = false;
        v->dx.crossed = ~0u;
    }
    if (!v->smc.single && !v->arch.interrupt_shadow && xbt_direct_wanted(v)) {
        if (!xbt_direct_run(v))
            return XBT_LEAVE_EXIT;
        if (v->dx.xlate)
            v->smc.single = true; /* that one instruction, translated */
        return XBT_LEAVE_DISPATCH;
    }
    v->dx.xlate = false;
    return 0;
}

/* The mode translated code runs in now (its window, its cache key) and that mode's
   inline lookup table, which forgets first what it must. */
static int enter_mode(struct xbt_vcpu *v, xbt_tmode *m, uint32_t *key, uint64_t *chain_site)
{
    if (!follow_window(v))
        return XBT_LEAVE_EXIT;
    *m = current_mode(v);
    *key = xbt_tc_mode_key(m);
    if (ibl_must_forget(v)) {
        /* Blocks were invalidated (self-modifying code, a code page reused) or
           regions changed their mapping epoch: the tables keep their other entries
           (a reset of all cost the kernel's table thousands of misses per Linux
           fork). */
        ibl_note_prune(v);
    }
    if (*key != v->ibl_cur->key || v->ibl_stale || v->ibl_cur->stale ||
        v->ibl_cur->cs_base != v->arch.seg[XBT_CS].base) {
        /* An inline lookup table holds blocks of one mode and CS base only, and none
           that were invalidated; it survives across runs otherwise. */
        if (v->ibl_stale) {
            for (int k = 0; k < XBT_IBL_SETS; k++)
                v->ibl_sets[k].stale = true;
            v->ibl_stale = false;
        }
        ibl_select(v, *key);
        /* The table translated code reads is this mode's from the first block on
           (it was set in begin_dispatch, before the switch: the first block of a new
           mode looked up its indirect branches in the other mode's table). */
        v->ctx.ibl_table = (uint64_t)(uintptr_t)v->ibl;
        *chain_site = 0;
    }
    if (v->ibl_cur->prune_dropped || v->ibl_cur->prune_regions_any)
        ibl_prune(v->ibl_cur, v->tc);
    return 0;
}

/* One instruction, not cached, with its page writable (an MMIO site's too, when its
   access is to RAM this time: as it is, no callout): a write to translated code, an
   interrupt shadow, an instruction direct execution hands over. */
static int single_step(struct xbt_vcpu *v, const xbt_tmode *m)
{
    if (v->trace.rec_n)
        trace_abort(v);
    v->smc.single = false;
    uint32_t saved = v->xl.max_insns;
    bool (*site)(void *, uint32_t) = v->xl.mmio_site;
    uint16_t (*pf_site)(void *, uint32_t) = v->xl.pf_site;
    bool (*wrap_site)(void *, uint32_t) = v->xl.uk_wrap_site;
    v->xl.max_insns = 1;
    v->xl.mmio_site = NULL;
    v->xl.pf_site = NULL;
    v->xl.uk_wrap_site = NULL; /* every address wrapped with a LEA */
    /* The guest's single-step and data breakpoints: a trap per iteration (watch.c). */
    v->xl.rep_one = v->tf.stepping || v->dbg.wstep_rep1;
    v->xl.rep_one_made = false;
    enum xbt_tstatus ts = translate_tb(v, m);
    bool one_iteration = v->xl.rep_one_made;
    v->xl.rep_one = false;
    v->xl.max_insns = saved;
    v->xl.mmio_site = site;
    v->xl.pf_site = pf_site;
    v->xl.uk_wrap_site = wrap_site;
    if (ts == XBT_T_FETCH_FAULT && v->fetch_pf) {
        /* The instruction's bytes are on a page the guest cannot fetch. */
        v->arch.cr2 = v->fetch_pf_lin;
        return dispatch_or_exit(xbt_raise(v, XBT_PF, true, v->fetch_pf_err, v->ctx.eip));
    }
    if (ts == XBT_T_FETCH_FAULT) {
        xbt_set_internal_error(v, v->ctx.eip, "guest EIP %08x is outside RAM (no MMIO "
                               "execution)", v->ctx.eip);
        return XBT_LEAVE_EXIT;
    }
    if (ts != XBT_T_OK) {
        xbt_set_internal_error(v, v->ctx.eip, "translation failed: %s", v->tb->error);
        return XBT_LEAVE_EXIT;
    }
    memcpy(v->smc.exec_w, v->tb->code, v->tb->code_len);
    if (!tc_enter(v)) {
        v->smc.single = true; /* after the requests: this instruction alone again */
        return XBT_LEAVE_DISPATCH;
    }
    uint32_t eip = v->ctx.eip;
    uint16_t cs = v->arch.seg[XBT_CS].selector;
    /* Its indirect branch (a stepped RET) leaves too: with the mode's table it ran on in
       cached code, past the guest's single-step trap (found 2026-12-02, tfstep_ibl.c).
       begin_dispatch sets the table again. */
    v->ctx.ibl_table = (uint64_t)(uintptr_t)v->ibl_miss;
    int rc = xbt_jit_enter(&v->ctx, v->smc.exec);
    tc_leave(v);
    v->arch.interrupt_shadow = false; /* the covered instruction has run */
    if (one_iteration && v->ctx.eip == eip && v->arch.seg[XBT_CS].selector == cs &&
        (rc == XBT_JIT_EXIT_DIRECT || rc == XBT_JIT_EXIT_INDIRECT))
        xbt_rep_iteration(v);
    return rc;
}

/* The block the dispatcher entered last, with the cache's flush count when it was
   found: the exit that comes back unchained is most often its own (a block's first
   run), which xbt_tc_find_site then finds without its search by address; and an exit
   of an older generation (a flush while the next block was looked up or translated)
   is not chained at all: its address may hold another block's exit now. */
struct chain_hint {
    const xbt_block *b;
    uint32_t flushes;
};

/* Chains the exit at chain_site to b, or, where b is a trace head (the target of a
   backward branch or of an exit from a trace), counts it unchained until it is hot and
   then starts recording. */
static void chain_block(struct xbt_vcpu *v, xbt_block *b, uint32_t key, uint64_t chain_site,
                        const struct chain_hint *hint)
{
    xbt_vm *vm = v->vm;
    xbt_block *from;
    uint32_t exit;
    if ((vm->cfg.flags & XBT_VM_NO_CHAIN) || hint->flushes != xbt_tc_flushes(v->tc) ||
        !xbt_tc_find_site(v->tc, chain_site, hint->b, &from, &exit))
        return;
    /* Only within a mode: an exit after a callout that changed the mode (a segment
       load, CLTS) is taken in translated code only when the mode is the block's again
       (callouts.c, callout_body; callouts_fast.c, load_data_seg); chained to a block
       of the other mode, it ran that block's code under this one (a DS base ignored:
       segsw.c, found by review). */
    if (from->mode_key != key)
        return;
    if (from->exits[exit].kind == XBT_EXIT_ICACHE_MISS) {
        /* An indirect JMP's inline cache missed: it learns b (not while a trace is
           recorded: every exit then comes back here), and its hit side is chained
           below as any exit. */
        if (v->trace.rec_n || !xbt_tc_icache_learn(v->tc, from, exit, b))
            return;
        exit++;
    }
    if (xbt_debug_any_bp(v) && xbt_debug_is_bp(v, b->lin))
        return; /* entered through the dispatcher, which stops there */
    if ((vm->cfg.flags & XBT_VM_TRACES) && b->tstate == 0 && !xbt_debugging(v) &&
        (b->eip <= from->eip || from->tstate == 1) && !v->trace.rec_n) {
        uint32_t hot = vm->cfg.trace_threshold ? vm->cfg.trace_threshold : XBT_TRACE_HOT;
        if (++b->head_count >= hot) {
            v->trace.rec_n = 1;
            v->trace.rec_path[0] = b->eip;
            v->trace.rec_key = key;
            v->trace.rec_events = trace_events(v);
        }
    } else if (!v->trace.rec_n) {
        xbt_tc_chain(v->tc, from, exit, b);
    }
}

/* find-block: the block at ctx.eip in this mode, cached and current or translated now
   (or the trace a recording closes with it), chained to the exit we came by.  0: *bp. */
static int find_block(struct xbt_vcpu *v, const xbt_tmode *m, uint32_t key,
                      uint64_t *chain_site, const struct chain_hint *hint, xbt_block **bp)
{
    xbt_block *b = lookup_current(v, v->ctx.eip, key);
    if (!b && !(b = translate(v, m, key))) {
        if (v->smc.single)
            return XBT_LEAVE_DISPATCH; /* starved: the instruction alone (translate) */
        if (!v->fetch_raised)
            return XBT_LEAVE_EXIT;
        v->fetch_raised = false; /* #PF on the code fetch, delivered */
        return XBT_LEAVE_DISPATCH;
    }
    if (v->trace.rec_n && !(b = trace_step(v, b, m, key, chain_site)))
        return v->smc.single ? XBT_LEAVE_DISPATCH : XBT_LEAVE_EXIT;
    if (ibl_must_forget(v)) {
        /* A translation carried out other vCPUs' requests meanwhile (smp.c: a vCPU
           waiting for its protection requests does its own) and dropped blocks: the
           lookup table forgets them before b runs, as at the next dispatch, or an
           indirect branch in b could reach a translation of bytes rewritten since. */
        ibl_note_prune(v);
        if (v->ibl_cur->prune_dropped || v->ibl_cur->prune_regions_any)
            ibl_prune(v->ibl_cur, v->tc);
    }
    if (v->ibl_pending) {
        /* The target of the indirect branch that missed, now current or translated. */
        v->ibl_pending = false;
        if (v->ibl_pending_eip == v->ctx.eip && v->ibl_pending_key == key && !v->trace.rec_n &&
            v->ibl_cur->key == key && b->eip == v->ctx.eip && b->mode_key == key)
            ibl_fill(v, b);
    }
    if (*chain_site)
        chain_block(v, b, key, *chain_site, hint);
    *bp = b;
    return 0;
}

/* execute-block: enters b and returns how translated code left it. */
static int execute_block(struct xbt_vcpu *v, xbt_block *b, uint32_t key)
{
    b->execs++;
    if (b->tstate == 1)
        v->stats.trace_entries++;
    if (v->trace.rec_n) {
        /* Recording: every block comes back to the dispatcher (its exits and the
           inline lookup are off for this run; begin_dispatch relinks them). */
        v->ctx.ibl_table = (uint64_t)(uintptr_t)v->ibl_miss;
        if (!v->unlinked) {
            xbt_tc_unlink_out(v->tc, b);
            v->unlinked = b;
        }
    }
    if (!tc_enter(v))
        return XBT_LEAVE_DISPATCH;
    int rc;
    if (v->vm->direct_ok && v->arch.cpl == 3 && !xbt_adapt_promoted(v)) {
        /* Adaptive mode: how long this address space's user code runs between
           kernel entries (two RDTSCs, a tenth of a system call's time: not where
           nothing can be promoted). */
        uint64_t t0 = __builtin_ia32_rdtsc();
        if (!v->dx.adapt_burst && t0 - v->dx.base_tsc > v->vm->adapt_ticks)
            t0 = xbt_adapt_base(v); /* at most once per threshold's time */
        rc = xbt_jit_enter(&v->ctx, b->host);
        xbt_adapt_account(v, __builtin_ia32_rdtsc() - t0);
    } else {
        v->dx.adapt_burst = 0; /* a kernel entry ends the burst */
        rc = xbt_jit_enter(&v->ctx, b->host);
    }
    tc_leave(v);
    if (v->trace.rec_n && rc != XBT_JIT_EXIT_DIRECT && rc != XBT_JIT_EXIT_INDIRECT)
        trace_abort(v); /* a callout, an exception or a fault on the way */
    if (rc == XBT_JIT_EXIT_INDIRECT)
        ibl_learn(v, key);
    return rc;
}

/* The DR6 bits of the guest's instruction breakpoints at CS:EIP (none while RF). */
static uint32_t guest_bp_hits(const struct xbt_vcpu *v)
{
    uint32_t lin = v->arch.seg[XBT_CS].base + v->ctx.eip, hit = 0;
    if (v->arch.rf)
        return 0;
    for (uint32_t i = 0; i < v->dbg.n_gbp; i++)
        if (v->dbg.gbp[i] == lin)
            hit |= 1u << v->dbg.gbp_dr[i];
    return hit;
}

/* The guest's instruction breakpoints (SDM vol. 3 18.3.1.1): before the instruction at
   an enabled one's address, a #DB fault with its DR6 bits and the instruction's own EIP,
   unless EFLAGS.RF (an IRET's) says not now.  Checked after the pending traps and
   interrupts (the SDM's priorities: a code breakpoint comes after them).  RF is cleared
   when an instruction completes (guest_insn_end), not before: a re-run of the same
   instruction (a hidden fault, a kick) does not take its breakpoint again. */
static int guest_breakpoint(struct xbt_vcpu *v)
{
    /* The instruction MOV or POP SS shields takes no code breakpoint (as Intel's
       processors, the vendor of the CPU model; kvm-unit-tests' emulator checks it). */
    if (v->arch.interrupt_shadow && v->arch.shadow_ss && v->ctx.eip == v->arch.shadow_eip)
        return 0;
    uint32_t hit = v->dbg.n_gbp ? guest_bp_hits(v) : 0;
    if (!hit)
        return 0;
    v->arch.dr[6] |= hit;
    return dispatch_or_exit(xbt_raise(v, XBT_DB, false, 0, v->ctx.eip));
}

/* The debugger's stops: after a single step, or before an instruction at a breakpoint
   (once: the run after the stop starts with it).  Single-step runs each instruction
   alone, uncached. */
static int debug_stop(struct xbt_vcpu *v)
{
    uint32_t lin = v->arch.seg[XBT_CS].base + v->ctx.eip;
    uint32_t why = 0;
    if (v->dbg.stepped) {
        v->dbg.stepped = false;
        why = XBT_DEBUG_STEP;
    } else if (v->dbg.resume && lin == v->dbg.resume_lin) {
        v->dbg.resume = false;
    } else if (xbt_debug_is_embedder_bp(v, lin)) {
        why = XBT_DEBUG_BREAKPOINT;
    }
    if (why) {
        v->dbg.resume = true; /* continuing runs this instruction */
        v->dbg.resume_lin = lin;
        memset(&v->exit, 0, sizeof v->exit);
        v->exit.reason = XBT_EXIT_DEBUG;
        v->exit.debug.eip = v->ctx.eip;
        v->exit.debug.linear = lin;
        v->exit.debug.why = why;
        return XBT_LEAVE_EXIT;
    }
    v->dbg.resume = false;
    if (v->dbg.step) {
        v->smc.single = true;
        v->dbg.stepped = true;
    }
    return 0;
}

/*
 * The guest's single-step (EFLAGS.TF, SDM vol. 3 18.3.1.4) in translated code; directly
 * executed user code has it from the host CPU (direct.c: TF in the host's EFLAGS, its
 * SIGTRAP a #DB).  TF is looked at before each instruction: set, the instruction runs
 * alone (REP string instructions one iteration each, translator.h rep_one), and once it
 * completed the #DB trap is raised at the next dispatch, before external interrupts,
 * with DR6.BS set and the next instruction's EIP.  So POPF or IRET that set TF trap only
 * after the instruction that follows them, and one that clears it traps after itself.
 * No trap (guest_insn_end): after an instruction that faulted or entered a handler
 * (INT n, INT3, INTO, ICEBP), after HLT, and after MOV or POP to SS until the
 * instruction it shields has run.
 *
 * guest_insn_start: before an instruction that TF steps or RF covers, where it starts
 * (its completion decides the trap and RF's end).  A stepped one runs alone.
 */
static void guest_insn_start(struct xbt_vcpu *v, bool tf)
{
    v->tf.open = true;
    v->tf.stepping = tf;
    v->tf.eip = v->ctx.eip;
    v->tf.cs = v->arch.seg[XBT_CS].selector;
    v->tf.faulted = v->tf.ss_loaded = v->tf.rf_loaded = v->tf.iter_done = false;
    if (tf)
        v->smc.single = true;
}

/* After it left translated code with rc, or (rc 0) when the run loop is entered again
   with it open: after a host fault (handle_fault may have completed it: an MMIO store)
   or a run exit (the embedder completed it: an MMIO load, an MSR).  It completed if it
   left by a block exit or moved EIP or CS, or completed an iteration of REP INS/OUTS
   (EIP stays on it); else it runs again (a hidden fault, a kick), and a run exit with
   nothing moved keeps it open until the next run.  Completion ends RF (unless the
   instruction loaded it: IRET, a task switch) and, when it was stepped and neither faulted nor entered a handler (INT n, INT3,
   INTO and ICEBP clear TF there: no trap, as current processors and QEMU TCG do) nor
   loaded SS nor halted, makes the single-step trap due. */
static void guest_insn_end(struct xbt_vcpu *v, int rc)
{
    bool went = v->ctx.eip != v->tf.eip || v->arch.seg[XBT_CS].selector != v->tf.cs;
    bool iteration = v->tf.iter_done && !went, moved = went || iteration;
    if (rc == XBT_LEAVE_EXIT && !moved)
        return; /* open across the exit */
    bool done = rc == XBT_JIT_EXIT_DIRECT || rc == XBT_JIT_EXIT_INDIRECT || moved;
    v->tf.open = false;
    if (done) {
        /* (Between two iterations RF stays set: xbt_rep_iteration.) */
        if (!iteration && !v->tf.rf_loaded)
            v->arch.rf = false;
        v->tf.pending = v->tf.stepping && !v->tf.faulted && !v->tf.ss_loaded &&
                        !v->arch.halted && !v->arch.shutdown;
    }
    v->tf.stepping = false;
}

/* The single-step trap, with the DR6 bits of instruction breakpoints at the next
   instruction (as QEMU TCG reports them together). */
static int guest_tf_trap(struct xbt_vcpu *v)
{
    v->tf.pending = false;
    v->arch.dr[6] |= XBT_DR6_BS | (v->dbg.n_gbp ? guest_bp_hits(v) : 0);
    return dispatch_or_exit(xbt_raise(v, XBT_DB, false, 0, v->ctx.eip));
}

/* The dispatcher.  A function of its own, not inlined into xbt_vcpu_run: a host fault in
   translated code leaves it by siglongjmp, and nothing of it outlives that (the exit the
   faulting block was to take is not chained). */
static __attribute__((noinline)) void run_loop(struct xbt_vcpu *v)
{
    uint64_t chain_site = 0; /* the exit the last block took, to chain to the next */
    struct chain_hint hint = { NULL, 0 }; /* the block entered last */
    if (v->tf.open)
        guest_insn_end(v, 0); /* after a host fault or a run exit */
    for (;;) {
        v->stats.dispatches++;
        xbt_tc_prefetch(v->tc, v->ctx.eip, v->ibl_cur->key);
        xbt_sti_shadow_settle(v); /* an inline STI's shadow over a restarted instruction */
        if (v->vm->adapt_demote && v->vm->direct_ok)
            xbt_adapt_mark(v);
        xbt_tmode m;
        uint32_t key = 0;
        xbt_block *b = NULL;
        int rc = begin_dispatch(v);
        if (!rc && (v->dbg.n_wp || v->dbg.wstep || v->dbg.whit || v->dbg.ghit))
            rc = xbt_watch_dispatch(v); /* watchpoints: a step's page out, a hit's stop */
        if (!rc && (v->pol.exc_pending || v->pol.irq_pending))
            rc = xbt_policy_deliver(v); /* what the embedder injected */
        if (!rc && xbt_debugging(v))
            rc = debug_stop(v);
        if (!rc && v->tf.pending)
            rc = guest_tf_trap(v); /* the single-step trap of the instruction that ran */
        if (!rc)
            rc = handle_interrupt(v);
        if (!rc && v->dbg.n_gbp)
            rc = guest_breakpoint(v);
        if (!rc)
            rc = run_direct(v);
        if (!rc && __builtin_expect(v->refill.ttl != 0, 0))
            xbt_pf_refill(v); /* the instruction a guest #PF left: its page in first */
        if (!rc)
            rc = enter_mode(v, &m, &key, &chain_site);
        bool tf = !rc && (v->ctx.eflags_sys & XBT_EFLAGS_TF);
        bool watch = tf || (!rc && v->arch.rf);
        if (watch)
            guest_insn_start(v, tf);
        if (!rc && !v->smc.single)
            rc = find_block(v, &m, key, &chain_site, &hint, &b);
        uint32_t found_in = xbt_tc_flushes(v->tc); /* the generation b and its exits are of */
        if (!rc)
            rc = b ? execute_block(v, b, key) : single_step(v, &m);
        if (watch)
            guest_insn_end(v, rc);
        if (rc == XBT_LEAVE_EXIT)
            return;
        chain_site = rc == XBT_JIT_EXIT_DIRECT ? v->ctx.exit_site : 0;
        hint = (struct chain_hint){ b, found_in };
    }
}

xbt_status xbt_vcpu_run(xbt_vcpu *v, xbt_exit **exitp)
{
    if (!v || !exitp)
        return XBT_E_INVAL;
    *exitp = &v->exit;
    if (!atomic_load_explicit(&v->vm->started, memory_order_relaxed))
        atomic_store(&v->vm->started, true); /* no more vCPUs (xbt_vcpu_create) */
    /* The embedder ran since the last exit: its devices may have raised an interrupt
       without a kick.  The first gate leaves to the dispatcher, whose poll decides.
       Atomic: xbt_vcpu_kick stores the same value from other threads. */
    __atomic_store_n(&v->ctx.intr_gate, (uint64_t)(uintptr_t)xbt_jit_intr_pending,
                     __ATOMIC_RELAXED);
    /* The embedder may have changed what the read shadow's TLB entries relied on
       (memory slots, the shadow, registers): they are made again by the next site. */
    xbt_rshadow_forget(v);
    if (!run_setup(v) || !finish_exit(v))
        return XBT_OK;
    /* Producers fill their member of the exit record; here only the reason resets. */
    v->exit.reason = XBT_EXIT_NONE;
    v->arch.shutdown = false;
    xbt_current_vcpu = v;
    v->thread = pthread_self();
    if (v->pfb.timer_on)
        xbt_pf_sampler_follow(v); /* the fault sites' sampler: this thread's CPU time */
    atomic_store(&v->running, true);
    /* A host fault in translated code comes back here (signals.c): turned into a guest
       event, the loop goes on; an internal error or a triple fault ends the run. */
    if (!sigsetjmp(v->fault_jmp, FAULT_JMP_SAVEMASK) || (v->fault_sig != 0 && handle_fault(v)))
        run_loop(v);
    atomic_store(&v->mbox.in_tc, false);
    atomic_store(&v->running, false);
    xbt_runner_unpin_thread(); /* the embedder's thread as it came */
    /* The map is written at the quieter exits (HLT, stop, the end of the guest), not at
       the frequent I/O ones: the lines of a run are on disk when the embedder stops. */
    xbt_vm *vm = v->vm;
    if (v->exit.reason != XBT_EXIT_IO && v->exit.reason != XBT_EXIT_MMIO)
        perf_flush(vm);
    v->stats.exits[v->exit.reason < 16 ? v->exit.reason : 0]++;
    return XBT_OK;
}

size_t xbt_stats_format(const xbt_stats *caller, char *buf, size_t size)
{
    /* Only the counters within the caller's size; the others read as 0. */
    xbt_stats all;
    memset(&all, 0, sizeof all);
    if (caller)
        memcpy(&all, caller, caller->size < sizeof all ? caller->size : sizeof all);
    const xbt_stats *st = &all;
    size_t n = 0;
    char none[1]; /* where nothing is written: measuring only (buf NULL or full) */
#define OUT(...)                                                                       \
    do {                                                                               \
        bool room = buf && n < size;                                                   \
        int w = snprintf(room ? buf + n : none, room ? size - n : 0, __VA_ARGS__);     \
        if (w > 0)                                                                     \
            n += (size_t)w;                                                            \
    } while (0)
    OUT("translation: %llu blocks (%llu of them copies relocated from another address), "
        "%llu guest insns, %llu host bytes, %.3f ms\n",
        (unsigned long long)st->blocks, (unsigned long long)st->blocks_shared,
        (unsigned long long)st->guest_insns_translated,
        (unsigned long long)st->block_bytes, (double)st->translate_ns / 1e6);
    if (st->adapt_promotions)
        OUT("adaptive: %llu address spaces promoted to direct execution (user code ran long "
            "between kernel entries), %llu sent back (slower there between kernel "
            "entries)\n", (unsigned long long)st->adapt_promotions,
            (unsigned long long)st->adapt_demotions);
    OUT("cache: %llu lookups, %.1f%% hits, %llu chains (%llu past a PC thunk, %llu past an "
        "x87/SSE load), %llu unchains, "
        "%llu ibl misses, %llu flushes, %llu invalidations, %llu dispatches, %llu "
        "targets learned by indirect JMPs' caches\n",
        (unsigned long long)st->lookups,
        st->lookups ? 100.0 * (double)st->lookup_hits / (double)st->lookups : 0.0,
        (unsigned long long)st->chains, (unsigned long long)st->thunk_chains,
        (unsigned long long)st->fpu_chains, (unsigned long long)st->unchains,
        (unsigned long long)st->ibl_misses, (unsigned long long)st->flushes,
        (unsigned long long)st->invalidations, (unsigned long long)st->dispatches,
        (unsigned long long)st->jmp_cache_learns);
    OUT("events: %llu interrupts, %llu host faults\n", (unsigned long long)st->interrupts,
        (unsigned long long)st->host_faults);
    if (st->refills)
        OUT("paging: %llu pages put in a window after the guest's fault handler, before "
            "the faulting instruction ran again (a host fault saved each)\n",
            (unsigned long long)st->refills);
    if (st->smc_data_writes || st->smc_data_pages)
        OUT("code pages: %llu writes beside code run alone with the page writable; %llu "
            "times a page was made data again at the %uth such write\n",
            (unsigned long long)st->smc_data_writes, (unsigned long long)st->smc_data_pages,
            XBT_SMC_DATA_LIMIT);
    OUT("paging: %llu hidden faults, %llu guest page faults, %llu window drops, %llu code "
        "pages invalidated; at CR3 loads %llu mappings re-checked, %llu dropped (entries "
        "changed)\n",
        (unsigned long long)st->hidden_faults, (unsigned long long)st->page_faults,
        (unsigned long long)st->window_drops, (unsigned long long)st->code_page_invalidations,
        (unsigned long long)st->wrec_checked, (unsigned long long)st->wrec_dropped);
    if (st->set_keeps)
        OUT("paging: %llu CR3 loads kept the current window set (no GS base move)\n",
            (unsigned long long)st->set_keeps);
    if (st->fault_sites)
        OUT("paging: %llu fault sites (instructions that check their page before the "
            "access), %llu taken back (hot, no callouts), %llu of their accesses soft (a churning "
            "page reached without the window)\n", (unsigned long long)st->fault_sites,
            (unsigned long long)st->fault_sites_back, (unsigned long long)st->soft_accesses);
    if (st->uk_wraps)
        OUT("paging: %llu sums reg + disp of user code wrapped at 4 GiB (host faults; each "
            "instruction then translated with the wrap)\n", (unsigned long long)st->uk_wraps);
    if (st->code_page_protects)
        OUT("paging: %llu pages became code pages, %llu of them emptied every window (their "
            "writable mappings were not all known)\n",
            (unsigned long long)st->code_page_protects,
            (unsigned long long)st->code_protect_resets);
    OUT("traces: %llu built (%.1f blocks each), %llu recordings given up, %llu dispatcher "
        "entries\n", (unsigned long long)st->traces,
        st->traces ? (double)st->trace_blocks / (double)st->traces : 0.0,
        (unsigned long long)st->trace_aborts, (unsigned long long)st->trace_entries);
    if (st->traces)
        OUT("traces: %llu indirect branches guarded\n", (unsigned long long)st->trace_guards);
    if (st->trace_execs)
        OUT("traces profiled: %llu entries, %llu side exits (%.1f%%); plain blocks: %llu "
            "entries (%.1f%% of all entries were into traces)\n",
            (unsigned long long)st->trace_execs, (unsigned long long)st->trace_side_exits,
            100.0 * (double)st->trace_side_exits / (double)st->trace_execs,
            (unsigned long long)st->block_execs,
            100.0 * (double)st->trace_execs / (double)(st->trace_execs + st->block_execs));
    OUT("direct: %llu entries, %llu exits (%llu kicks, %llu system calls), %llu "
        "instructions run translated after a trap\n",
        (unsigned long long)st->direct_entries, (unsigned long long)st->direct_exits,
        (unsigned long long)st->direct_kicks, (unsigned long long)st->direct_syscalls,
        (unsigned long long)st->direct_xlate);
    if (st->direct_entries)
        OUT("direct: %llu runner processes started, %llu parked, %llu killed (left guest "
            "semantics or stopped answering); %llu D-window requests, %llu waited for "
            "(%.1f ms), parking %.1f ms; %llu jumps into pages run translated; %llu pages "
            "mapped after the guest's fault handler; runners placed on the vCPU's host CPU "
            "%llu times; %llu pages with a sensitive pattern scanned, %llu of them "
            "answered by the verdict cache; %llu pages mapped before a fault asked (a "
            "working set predicted)\n",
            (unsigned long long)st->direct_runner_starts, (unsigned long long)st->direct_parks,
            (unsigned long long)st->direct_escapes, (unsigned long long)st->direct_map_requests,
            (unsigned long long)st->direct_sync_waits, (double)st->direct_wait_ns / 1e6,
            (double)st->direct_park_ns / 1e6, (unsigned long long)st->direct_crossings,
            (unsigned long long)st->direct_refaults_saved,
            (unsigned long long)st->direct_runner_moves,
            (unsigned long long)st->direct_page_scans, (unsigned long long)st->direct_scan_hits,
            (unsigned long long)st->direct_predicted);
    static const char *const reasons[] = { "none", "io", "mmio", "hlt", "shutdown", "debug",
                                           "internal-error", "stopped", "irq-window",
                                           "msr" };
    OUT("exits:");
    for (int i = 0; i < (int)(sizeof reasons / sizeof reasons[0]); i++)
        if (st->exits[i])
            OUT(" %s=%llu", reasons[i], (unsigned long long)st->exits[i]);
    OUT("\ncallouts:");
    for (int i = 0; i < XBT_CO_COUNT && i < 96; i++)
        if (st->callouts[i])
            OUT(" %s=%llu", xbt_callout_name((unsigned)i), (unsigned long long)st->callouts[i]);
    OUT("\ncallouts by the fast handlers: %llu", (unsigned long long)st->fast_callouts);
    if (st->pause_yields)
        OUT("\npause-loop yields: %llu (spin loops on PAUSE that gave the host CPU away)",
            (unsigned long long)st->pause_yields);
    if (st->mmio_handled || st->pio_handled)
        OUT("\nanswered by the embedder's handlers without an exit: %llu MMIO, %llu port "
            "I/O", (unsigned long long)st->mmio_handled, (unsigned long long)st->pio_handled);
    OUT("\nexceptions:");
    for (int i = 0; i < 32; i++)
        if (st->exceptions[i])
            OUT(" #%d=%llu", i, (unsigned long long)st->exceptions[i]);
    OUT("\n");
#undef OUT
    return n;
}
