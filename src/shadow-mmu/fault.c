/*
 * fault.c - filling a window after a host fault: runs of pages the guest maps alike go
 * in with one host mapping, a large guest page whole, clean pages read-only until dirty
 * (the runtime decides that, walks the guest's tables and handles what is not a fill:
 * guest page faults, MMIO, writes to translated code; runtime/mmu.c).
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "shadow-mmu/smmu.h"

/* The D-window's map through the runtime (see struct xbt_smmu_dwin). */
static int d_map(xbt_smmu *m, uint32_t lin, uint64_t gpa, uint32_t len, bool writable,
                 int64_t fetch)
{
    return m->dwin.map ? m->dwin.map(m->dwin.opaque, lin, gpa, len, writable, fetch)
                       : XBT_DMAP_FAIL;
}

/* A write to a 4 KiB page the K- or U-window maps read-only onto the same guest page
   the walk found (its first write: the walk set the dirty bit): the mapping is made
   writable in place, one call instead of a mapping over the populated page.  The host
   still flushes its TLB for it (x86 Linux flushes on any change of a PTE's write bit):
   10,000-14,000 cycles on this host, 60,000-106,000 while another thread of the
   process runs on the other CPU (docs/ARCHITECTURE.md, "Several vCPUs": what it costs
   xv6 on 2 vCPUs). */
static bool upgrade_in_place(xbt_smmu *m, xbt_smmu_regs regs, int win, uint32_t lin,
                             const xbt_walk_result *r, const uint8_t *pt)
{
    uint32_t page = lin >> 12;
    struct xbt_wset *w = m->cur;
    uint8_t *window = win == XBT_WINDOW_U ? w->ubase : w->kbase;
    if (win == XBT_WINDOW_D || !pt || !xbt_wmap_has(&w->wmap[win], lin) ||
        w->frame[win][page] != (uint32_t)(r->gpa >> 12) + 1 ||
        mprotect(window + ((uint64_t)page << 12), 4096, PROT_READ | PROT_WRITE) != 0)
        return false;
    xbt_wmap_note_writable(m, win, page << 12, 4096); /* fault sites' probe byte */
    xbt_rmap_note(m, win, page << 12, r->gpa & ~0xFFFull, 4096);
    xbt_window_note(m, win, page << 12, 4096, r->global, xbt_smmu_pae(regs), r->pde, r->pte,
                    false);
    return true;
}

/* A neighbour whose entry lacks the accessed flag joins a run too, as a TLB fill may
   set it: the processor "may cache translations required for prefetches and for
   accesses that are a result of speculative execution that would never actually
   occur", setting any accessed flag that is not 1 before it caches one (SDM vol. 3A
   4.10.2.3).  xv6 gives each process fresh tables for its kernel mapping, all accessed
   flags clear, so each kernel page a new process touched was a fill of its own (one
   mmap each; usertests: 719,000 fills).  The flag goes in by a compare-exchange of the
   entry as it was read, so a change another vCPU made meanwhile is kept and ends the
   run; not in ROM, nor in a page table that holds translated code (the caller passes
   `spec` false then; the runtime rechecks the page for other vCPUs: m->spec_pt, so all
   such writes between two rechecks go to one page). */
bool xbt_smmu_spec_accessed(xbt_smmu *m, uint64_t pte_gpa, uint64_t pte, uint32_t es)
{
    if (m->spec_pt != XBT_SPEC_PT_NONE && m->spec_pt != (pte_gpa & ~0xFFFull))
        return false;
    uint8_t *h = (pte_gpa & (es - 1)) ? NULL : xbt_phys_w(m->phys, pte_gpa, es);
    if (!h)
        return false;
    bool ok;
    if (es == 8) {
        uint64_t old = pte;
        ok = __atomic_compare_exchange_n((uint64_t *)(void *)h, &old, pte | XBT_PTE_A, false,
                                         __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
    } else {
        uint32_t old = (uint32_t)pte;
        ok = __atomic_compare_exchange_n((uint32_t *)(void *)h, &old,
                                         (uint32_t)pte | XBT_PTE_A, false, __ATOMIC_SEQ_CST,
                                         __ATOMIC_RELAXED);
    }
    if (ok)
        m->spec_pt = pte_gpa & ~0xFFFull;
    return ok;
}

/* What a fill's neighbours are compared with (xbt_smmu_fill). */
struct run_scan {
    const uint8_t *pt;                /* the page table (read view) */
    uint64_t pt_gpa, pte0, same, amask;
    uint32_t es;                      /* entry size: 4, or 8 with PAE */
    uint8_t slot;
    bool writable, spec;              /* spec: accessed flags may be set (spec_accessed) */
    const struct xbt_wmap *have;
};

/* Whether entry k of the table, which would map frame g at linear page `at`, joins the
   run: alike in `same` (a clear accessed flag set first where `spec` allows), the next
   frame of the same slot, no code, writable if the run is, not mapped already.  *seen:
   the entry as it joined (its low half). */
static bool joins(xbt_smmu *m, const struct run_scan *s, uint32_t k, uint64_t g, uint32_t at,
                  uint32_t *seen_lo)
{
    uint64_t pte = 0;
    memcpy(&pte, s->pt + k * s->es, s->es);
    uint64_t seen = s->spec ? pte | XBT_PTE_A : pte;
    if ((seen & s->same) != (s->pte0 & s->same) || (pte & s->amask) != g ||
        (xbt_phys_kind(m->phys, g) & XBT_PP_SLOT) != s->slot || xbt_code_page(m, g >> 12) ||
        (s->writable && !xbt_phys_write_ok(m->phys, g >> 12)) || xbt_wmap_has(s->have, at))
        return false;
    *seen_lo = (uint32_t)seen;
    return (pte & XBT_PTE_A) || xbt_smmu_spec_accessed(m, s->pt_gpa + k * s->es, pte, s->es);
}

static bool d_hot(const xbt_smmu *m, uint64_t g)
{
    return g < (1ull << 32) && (m->d_hot[g >> 15] & (1u << ((g >> 12) & 7)));
}

/* Whether entry k of s's table maps a page d_predict takes: alike in run_scan's `same`
   with the faulting entry (present, user, read-only, accessed), a page directly run code
   faulted in before, in the same slot, not in the D-window yet.  (Translated code may
   come from it: mapped read-only, as the faulting page would be.)  *pte: the entry as
   checked; *g: its frame. */
static bool d_predicts(xbt_smmu *m, const struct run_scan *s, uint32_t k, uint32_t at,
                       uint64_t *pte, uint64_t *g)
{
    *pte = 0;
    memcpy(pte, s->pt + k * s->es, s->es);
    *g = *pte & s->amask;
    return (*pte & s->same) == (s->pte0 & s->same) && d_hot(m, *g) &&
           (xbt_phys_kind(m->phys, *g) & XBT_PP_SLOT) == s->slot && !xbt_wmap_has(s->have, at);
}

/*
 * A process's working set of code and read-only data, predicted.  Each new guest process
 * (a fork, an exec) starts with an empty D-window, and every page its code touches was
 * a hidden fault: an exit through two host context switches, 25-30 us here, for the
 * 60-odd pages of busybox that each of its processes runs (fill runs need physically
 * contiguous pages, and the page cache's are not).  Pages that such faults brought in
 * before are marked (d_hot); a fill of a read-only entry then maps the entries of the
 * same page table within XBT_PREDICT_SPAN of it that the guest has made present and
 * accessed, alike in every flag, and that name a marked page: one mapping request per
 * run of contiguous frames, no exit.  (The whole table cost as much as it saved: each
 * entry's mark is a cache miss, and the next fault looks again.)  The mappings are what
 * a TLB may cache (present, accessed entries); they are noted as any fill is, so a CR3
 * load or INVLPG drops them as usual.  A page marked and then reused for something else
 * costs one needless mapping at most, and only while some page table maps it read-only
 * to user code (docs/ARCHITECTURE.md, "A process's working set, predicted").
 */
#define XBT_PREDICT_SPAN 32
static void d_predict(xbt_smmu *m, const struct run_scan *s, uint32_t base, uint32_t lo,
                      uint32_t hi, bool global, bool pae, uint32_t pde)
{
    uint32_t n_ent = 4096 / s->es, kf = (lo - base) >> 12;
    uint32_t k0 = kf > XBT_PREDICT_SPAN ? kf - XBT_PREDICT_SPAN : 0;
    uint32_t k1 = kf + XBT_PREDICT_SPAN < n_ent ? kf + XBT_PREDICT_SPAN : n_ent;
    for (uint32_t k = k0; k < k1;) {
        uint32_t at = base + (k << 12);
        uint64_t pte, g;
        if ((at >= lo && at < hi) || !d_predicts(m, s, k, at, &pte, &g)) {
            k++;
            continue;
        }
        uint32_t n = 1;
        uint64_t pn, gn;
        while (k + n < k1 && !(at + (n << 12) >= lo && at + (n << 12) < hi) &&
               d_predicts(m, s, k + n, at + (n << 12), &pn, &gn) &&
               gn == g + ((uint64_t)n << 12))
            n++;
        if (d_map(m, at, g, n << 12, false, -1) == XBT_DMAP_OK) {
            xbt_window_note(m, XBT_WINDOW_D, at, n << 12, global, pae, pde, (uint32_t)pte,
                            false);
            m->d_predicted += n;
        }
        k += n;
    }
}

int xbt_smmu_fill(xbt_smmu *m, xbt_smmu_regs regs, int win, uint32_t lin,
                  const xbt_walk_result *r, bool writable, bool fetch, bool allow_large)
{
    m->spec_pt = XBT_SPEC_PT_NONE;
    bool pae = xbt_smmu_pae(regs);
    uint8_t *window = win == XBT_WINDOW_U ? m->ubase : m->kbase;
    if (r->page_size > 4096)
        for (uint32_t u = (lin & ~(r->page_size - 1)) >> 21;
             u < ((lin & ~(r->page_size - 1)) >> 21) + (r->page_size >> 21); u++)
            m->pse_region[u >> 3] |= (uint8_t)(1u << (u & 7));
    if (r->page_size > 4096 && !fetch) {
        /* A 4 MiB (PAE: 2 MiB) guest page (Linux maps its lowmem so): one host mapping
           for all of it when it is all RAM and holds no translated code, instead of a
           fault and a VMA per 4 KiB.  Its one dirty bit covers all of it. */
        uint32_t size = r->page_size;
        uint64_t g0 = r->gpa & ~(uint64_t)(size - 1);
        uint32_t l0 = lin & ~(size - 1);
        const struct xbt_slot *s = xbt_phys_slot(m->phys, g0);
        if (xbt_phys_one_slot(m->phys, g0, size) && allow_large &&
            (!writable || !(s->flags & (XBT_MEM_READONLY | XBT_MEM_LOG_DIRTY))) &&
            !xbt_code_in(m, g0 >> 12, size >> 12)) {
            bool ok = win == XBT_WINDOW_D
                          ? d_map(m, l0, g0, size, writable, -1) == XBT_DMAP_OK
                          : xbt_window_map_range(m, window, l0, g0, size, writable);
            if (ok) {
                xbt_window_note(m, win, l0, size, r->global, pae, r->pde, 0, true);
                return XBT_DMAP_OK;
            }
        }
    }
    /* Neighbours in the same page table that the guest has already accessed (A set,
       and D set if this mapping is writable), with the same rights and physically
       contiguous, go in with the same host mapping: one mmap (and one VMA) instead of a
       fault each, and no accessed or dirty bit is skipped, as those are set already.
       Linux maps much of its lowmem with 4 KiB pages in order. */
    uint32_t lo = lin & ~0xFFFu, hi = lo + 4096, pte_lo = r->pte;
    uint64_t glo = r->gpa & ~0xFFFull;
    /* Entries are 4 bytes (1,024 a table) or, with PAE, 8 bytes (512 a table); with
       PAE a neighbour's upper half must equal this entry's (whose reserved bits the
       walk checked), so nothing a walk would refuse is mapped. */
    uint32_t es = pae ? 8 : 4, n_ent = pae ? 512 : 1024;
    uint64_t amask = pae ? 0x0000000FFFFFF000ull : 0xFFFFF000ull;
    const xbt_phys *ph = m->phys;
    const uint8_t *pt = r->page_size == 4096 ? xbt_phys_r(ph, r->pte_gpa & ~0xFFFull, 4096)
                                             : NULL;
    uint8_t slot = xbt_phys_kind(ph, glo) & XBT_PP_SLOT;
    /* A neighbour this window maps already stays as it is: mapping over a populated
       host page costs a TLB shootdown (on this kind of host ten times a fresh mapping). */
    const struct xbt_wmap *have = xbt_wmap_of(m->cur, win);
    if (writable && upgrade_in_place(m, regs, win, lin, r, pt))
        return XBT_DMAP_OK;
    if (pt) {
        uint64_t pte0 = 0;
        memcpy(&pte0, pt + (r->pte_gpa & 0xFFF), es);
        uint64_t pt_gpa = r->pte_gpa & ~0xFFFull;
        const struct run_scan sc = {
            pt, pt_gpa, pte0,
            XBT_PTE_P | XBT_PTE_RW | XBT_PTE_US | XBT_PTE_A | XBT_PTE_D | XBT_PTE_G |
                (pae ? 0xFFFFFFF000000000ull : 0),
            amask, es, slot, writable, !xbt_code_page(m, pt_gpa >> 12), have,
        };
        uint32_t idx = (uint32_t)(r->pte_gpa & 0xFFF) / es;
        /* pte0 is read again here: another vCPU may have changed it since the walk
           checked it (to a swap entry, say, whose other bits are the OS's).  Its
           neighbours are compared with it, so it must still be what the walk allowed:
           present, this frame, no reserved bit (PAE: nothing above bit 35, as the
           virtual CPU has no NX), these rights (found in review). */
        bool still = (pte0 & XBT_PTE_P) && (pte0 & amask) == glo &&
                     !(pae && (pte0 >> 36)) && (!writable || (pte0 & XBT_PTE_RW)) &&
                     ((pte0 & XBT_PTE_US) != 0) == r->user;
        /* (With several vCPUs a read-only run of clean, writable entries is the page
           alone: struct xbt_smmu's clean_alone.) */
        bool clean = !writable && r->writable && !r->dirty;
        if (still && (pte0 & XBT_PTE_A) && (!writable || (pte0 & XBT_PTE_D)) &&
            !(clean && m->clean_alone)) {
            uint32_t seen;
            for (uint32_t k = idx + 1; k < n_ent && hi - lo < (64u << 12) &&
                                       joins(m, &sc, k, glo + (hi - lo), hi, &seen);
                 k++)
                hi += 4096;
            for (uint32_t k = idx; k-- > 0 && hi - lo < (64u << 12) && glo >= 4096 &&
                                   joins(m, &sc, k, glo - 4096, lo - 4096, &seen);) {
                lo -= 4096;
                glo -= 4096;
                pte_lo = seen;
            }
        }
        /* Directly run code's working set (d_predict): a read-only user entry marks its
           page, and the marked pages its table's neighbours name come in with it. */
        uint64_t g = r->gpa & ~0xFFFull;
        if (win == XBT_WINDOW_D && still && !writable && r->user && g < (1ull << 32) &&
            (pte0 & (XBT_PTE_RW | XBT_PTE_A)) == XBT_PTE_A) {
            m->d_hot[g >> 15] |= (uint8_t)(1u << ((g >> 12) & 7));
            d_predict(m, &sc, lin & ~((n_ent << 12) - 1), lo, hi, r->global, pae, r->pde);
        }
    }
    int rc = XBT_DMAP_OK;
    if (win == XBT_WINDOW_D) {
        int64_t at = fetch ? (int64_t)lin : -1;
        rc = d_map(m, lo, glo, hi - lo, writable, at);
        if (rc == XBT_DMAP_FAIL) { /* the run reaches below mmap_min_addr: the page alone */
            lo = lin & ~0xFFFu;
            hi = lo + 4096;
            pte_lo = r->pte; /* the page alone: its own entry */
            rc = d_map(m, lo, r->gpa & ~0xFFFull, 4096, writable, at);
        }
        if (rc == XBT_DMAP_FAIL)
            return XBT_DMAP_FAIL; /* below mmap_min_addr */
        /* XBT_DMAP_XLATE: the run stays mapped (noted below, so that TLB flushes drop
           it), without execute permission where its code must run translated. */
    } else if (!xbt_window_map_range(m, window, lo, glo, hi - lo, writable)) {
        return XBT_DMAP_FAIL;
    }
    /* The record is made of the entries as they were checked: the walk's for the
       faulting page, the neighbours' as they joined (a neighbour's is the run's first
       only when the run reaches below the faulting page).  Read from the table now, it
       could describe an entry another vCPU wrote after the check while the window maps
       the frame of the old one, and a CR3 load would keep that stale mapping. */
    xbt_window_note(m, win, lo, hi - lo, r->global, pae, r->pde, pte_lo, r->page_size != 4096);
    return rc;
}
