/*
 * window.c - the shadow MMU's windows: the K-, U- and D-window mappings of guest linear
 * pages onto guest RAM, kept per address space (window sets keyed by CR3), dropped and
 * re-checked with TLB semantics (CR3 loads, INVLPG, global pages), and the mapping epochs
 * that tell the translation cache which translations must be checked again.  The fills
 * themselves are in fault.c.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shadow-mmu/smmu.h"

/* Window fills up to this size are populated when mapped (xbt_window_map_range). */
#define XBT_FILL_POPULATE_MAX (64u << 12)

static bool wmap_take(struct xbt_wmap *m, uint32_t lin, uint64_t len);

static void wset_drop(xbt_smmu *m, struct xbt_wset *w, int win, uint32_t lin, uint64_t len);
static void unmap_range(uint8_t *base, uint32_t lin, uint64_t len);
static void window_reset(xbt_smmu *m, bool paged, uint32_t as_key);


/* The windows of `who` (struct xbt_rmap) that still map linear page lin. */
static uint16_t rmap_live(const xbt_smmu *m, uint32_t lin, uint16_t who)
{
    for (int b = 0; b < XBT_WSETS * 3; b++)
        if ((who & (1u << b)) && !xbt_wmap_has(xbt_wmap_of(m->wset[b / 3], b % 3), lin))
            who &= (uint16_t)~(1u << b);
    return who;
}

void xbt_rmap_note(xbt_smmu *m, int win, uint32_t lin, uint64_t gpa, uint32_t len)
{
    uint16_t bit = (uint16_t)(1u << (m->cur->idx * 3 + win));
    for (uint32_t off = 0; off < len; off += 4096) {
        uint64_t p = (gpa + off) >> 12;
        if (p >= XBT_PHYS_PAGES)
            break;
        struct xbt_rmap *e = &m->rmap[p];
        uint32_t l = lin + off;
        if (e->who[0] & XBT_RMAP_LOST)
            continue;
        int k = 0;
        while (k < 2 && !(e->who[k] && e->lin[k] == l))
            k++;
        if (k < 2) {
            e->who[k] |= bit;
            continue;
        }
        for (k = 0; k < 2; k++)
            if (!e->who[k] || !(e->who[k] = rmap_live(m, e->lin[k], e->who[k]))) {
                e->lin[k] = l;
                e->who[k] = bit;
                break;
            }
        if (k == 2)
            e->who[0] |= XBT_RMAP_LOST;
    }
}

/* Code pages are write-protected in the window.  Paging off, the window address of a
   physical page is the page itself; paging on, the page's writable mappings (its
   reverse map) are dropped, to come back read-only on the next touch, or every window
   when the reverse map lost track; unprotecting leaves the remapping to the next write
   fault. */
void xbt_smmu_write_protect(xbt_smmu *m, uint64_t page)
{
    if (page >= XBT_PHYS_PAGES)
        return;
    if (m->window_paged) {
        struct xbt_rmap *e = &m->rmap[page];
        if (e->who[0] & XBT_RMAP_LOST) {
            m->code_protect_resets++;
            window_reset(m, true, m->cur->cr3); /* the current address space's */
        } else {
            for (int k = 0; k < 2; k++)
                for (int b = 0; b < XBT_WSETS * 3; b++)
                    if (e->who[k] & (1u << b))
                        wset_drop(m, m->wset[b / 3], b % 3, e->lin[k], 4096);
        }
        memset(e, 0, sizeof *e);
    } else {
        if (m->cur->identity && m->phys->page[page])
            mprotect(m->kbase + (page << 12), 4096, PROT_READ);
        /* remapped read-only on demand */
        wset_drop(m, m->cur, XBT_WINDOW_D, (uint32_t)(page << 12), 4096);
    }
}

uint8_t xbt_protect_code_page(xbt_smmu *m, uint32_t page, uint8_t bit)
{
    if ((uint64_t)page >= XBT_PHYS_PAGES || !m->phys->page[page])
        return bit; /* nothing to protect: as if it were */
    uint8_t old = __atomic_fetch_or(&m->code_prot[page], bit, __ATOMIC_SEQ_CST);
    m->code_own[page >> 3] |= (uint8_t)(1u << (page & 7));
    if (!(old & bit)) {
        m->code_protects++;
        xbt_smmu_write_protect(m, page);
    }
    return old;
}

void xbt_unprotect_code_page(xbt_smmu *m, uint32_t page, uint8_t bits)
{
    if ((uint64_t)page >= XBT_PHYS_PAGES || !m->code_prot[page])
        return;
    if (__atomic_and_fetch(&m->code_prot[page], (uint8_t)~bits, __ATOMIC_SEQ_CST))
        return; /* another vCPU's code is still there */
    if (!m->window_paged && m->cur->identity && xbt_phys_write_ok(m->phys, page))
        mprotect(m->kbase + ((uint64_t)page << 12), 4096, PROT_READ | PROT_WRITE);
}

void xbt_identity_protect(xbt_smmu *m, uint32_t page, bool writable)
{
    if (m->window_paged || !m->cur->identity || page >= XBT_PHYS_PAGES || !m->phys->page[page])
        return;
    writable = writable && xbt_phys_write_ok(m->phys, page);
    mprotect(m->kbase + ((uint64_t)page << 12), 4096, PROT_READ | (writable ? PROT_WRITE : 0));
}

/* Paging off: every slot at its guest physical address in the current K-window, ROM,
   clean pages of logged slots and code pages read-only. */
static void identity_map(xbt_smmu *m)
{
    const xbt_phys *p = m->phys;
    for (const struct xbt_slot *s = NULL; (s = xbt_phys_next(p, s)) != NULL;) {
        bool rw = !(s->flags & (XBT_MEM_READONLY | XBT_MEM_LOG_DIRTY));
        mmap(m->kbase + s->gpa, s->size, PROT_READ | (rw ? PROT_WRITE : 0),
             MAP_SHARED | MAP_FIXED, s->fd, (off_t)s->fd_offset);
        for (uint64_t q = s->gpa >> 12; q < (s->gpa + s->size) >> 12; q++)
            if (m->code_prot[q])
                mprotect(m->kbase + (q << 12), 4096, PROT_READ);
            else if (!rw && xbt_phys_write_ok(p, q))
                mprotect(m->kbase + (q << 12), 4096, PROT_READ | PROT_WRITE);
    }
    m->cur->identity = true;
}

void xbt_identity_hide(xbt_smmu *m, uint32_t page)
{
    if ((uint64_t)page < XBT_PHYS_PAGES && m->phys->page[page] && !m->window_paged)
        mprotect(m->kbase + ((uint64_t)page << 12), 4096, PROT_NONE);
}

/* Linear page lin of window `window` maps something no fill made (the MMIO scratch
   page, then nothing): its frame is no longer known. */
static void frame_forget(xbt_smmu *m, const uint8_t *window, uint32_t lin)
{
    for (int k = 0; k < XBT_WSETS; k++) {
        struct xbt_wset *w = m->wset[k];
        if (window == w->kbase || window == w->ubase)
            w->frame[window == w->ubase][lin >> 12] = 0;
    }
}

bool xbt_window_map_scratch(xbt_smmu *m, uint8_t *window, uint32_t lin, int fd)
{
    frame_forget(m, window, lin);
    uint8_t *at = window + (lin & ~0xFFFu);
    return mmap(at, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == at;
}

void xbt_window_unmap_scratch(xbt_smmu *m, uint8_t *window, uint32_t lin)
{
    frame_forget(m, window, lin);
    unmap_range(window, lin & ~0xFFFu, 4096);
}


static void bits_set(uint64_t *page, uint8_t *region, uint32_t lin, uint32_t len)
{
    uint32_t p0 = lin >> 12, n = len >> 12;
    if (n == 1024 && !(p0 & 1023)) {
        memset(&page[p0 >> 6], 0xFF, 128);
    } else {
        for (uint32_t p = p0; p < p0 + n; p++)
            page[p >> 6] |= 1ull << (p & 63);
    }
    for (uint32_t r = lin >> 22; r <= (lin + len - 1) >> 22; r++)
        region[r >> 3] |= (uint8_t)(1u << (r & 7));
}

/* The probe bytes of [lin, lin + len) (struct xbt_wmap): what translated code's fault-
   site checks read. */
static void probe_set(struct xbt_wmap *map, uint32_t lin, uint64_t len, uint8_t val)
{
    if (map->probe)
        memset(map->probe + (lin >> 12), val, (size_t)(len >> 12));
}

static void wmap_note_rights(xbt_smmu *m, int win, uint32_t lin, uint32_t len, bool writable)
{
    struct xbt_wmap *map = xbt_wmap_of(m->cur, win);
    bits_set(map->page, map->region, lin, len);
    probe_set(map, lin, len, writable ? XBT_PROBE_WRITE : XBT_PROBE_READ);
}

void xbt_wmap_note(xbt_smmu *m, int win, uint32_t lin, uint32_t len)
{
    wmap_note_rights(m, win, lin, len, false);
}

void xbt_wmap_note_writable(xbt_smmu *m, int win, uint32_t lin, uint32_t len)
{
    wmap_note_rights(m, win, lin, len, true);
}

/* Whether map m has anything in [lin, lin + len); forgets that it does. */
static bool wmap_take(struct xbt_wmap *m, uint32_t lin, uint64_t len)
{
    bool any = false;
    uint64_t end = (uint64_t)lin + len;
    for (uint64_t r = lin >> 22; r < 1024 && (r << 22) < end; r++) {
        uint8_t bit = (uint8_t)(1u << (r & 7));
        if (!(m->region[r >> 3] & bit))
            continue;
        uint64_t a = (r << 22) > lin ? (r << 22) : lin;
        uint64_t b = ((r + 1) << 22) < end ? ((r + 1) << 22) : end;
        if (a == (r << 22) && b == ((r + 1) << 22)) {
            for (int w = 0; w < 16; w++)
                any |= m->page[r * 16 + w] != 0;
            memset(&m->page[r * 16], 0, 128);
            m->region[r >> 3] &= (uint8_t)~bit;
            probe_set(m, (uint32_t)(r << 22), 4u << 20, 0);
            continue;
        }
        for (uint64_t p = a >> 12; p < (b + 4095) >> 12; p++) {
            uint64_t mask = 1ull << (p & 63);
            if (m->page[p >> 6] & mask) {
                any = true;
                m->page[p >> 6] &= ~mask;
                if (m->probe)
                    m->probe[p] = 0;
            }
        }
    }
    return any;
}

/* The D-window of set w loses [lin, lin + len) (in its runner, when it had any of it); a
   runner that had to be killed to get there has no D-window left at all. */
static void d_drop(xbt_smmu *m, struct xbt_wset *w, uint32_t lin, uint64_t len)
{
    if (wmap_take(&w->dmap, lin, len) && m->dwin.drop &&
        !m->dwin.drop(m->dwin.opaque, w->idx, lin, len))
        xbt_smmu_dwin_lost(m, w->idx);
}

void xbt_smmu_dwin_lost(xbt_smmu *m, unsigned set)
{
    memset(&m->wset[set]->dmap, 0, sizeof m->wset[set]->dmap);
}

static void unmap_range(uint8_t *base, uint32_t lin, uint64_t len)
{
    mmap(base + lin, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
         -1, 0);
}

/* Empties a window set (its address space assignment stays). */
static void wset_clear(xbt_smmu *m, struct xbt_wset *w)
{
    if (wmap_take(&w->wmap[XBT_WINDOW_K], 0, 4ull << 30) || w->identity)
        unmap_range(w->kbase, 0, 4ull << 30);
    if (wmap_take(&w->wmap[XBT_WINDOW_U], 0, 4ull << 30))
        unmap_range(w->ubase, 0, 4ull << 30);
    d_drop(m, w, 0, 4ull << 30);
    w->identity = false;
    for (uint32_t r = 0; r < 1024; r++)
        if ((w->g_region[r >> 3] | w->ng_region[r >> 3]) & (1u << (r & 7))) {
            memset(&w->g_page[r * 16], 0, 128);
            memset(&w->ng_page[r * 16], 0, 128);
        }
    memset(w->g_region, 0, sizeof w->g_region);
    memset(w->ng_region, 0, sizeof w->ng_region);
    w->n_rec = 0;
    w->rec_overflow = false;
}

static void wset_drop(xbt_smmu *m, struct xbt_wset *w, int win, uint32_t lin, uint64_t len)
{
    if (win == XBT_WINDOW_D)
        d_drop(m, w, lin, len);
    else if (wmap_take(&w->wmap[win], lin, len)) {
        unmap_range(win == XBT_WINDOW_U ? w->ubase : w->kbase, lin, len);
    }
}

/* [lin, lin + len) leaves all three windows of set w. */
static void wset_drop3(xbt_smmu *m, struct xbt_wset *w, uint32_t lin, uint64_t len)
{
    wset_drop(m, w, XBT_WINDOW_K, lin, len);
    wset_drop(m, w, XBT_WINDOW_U, lin, len);
    wset_drop(m, w, XBT_WINDOW_D, lin, len);
}

/* Every set emptied; with paging on, the current one mirrors as_key from now on. */
static void window_reset(xbt_smmu *m, bool paged, uint32_t as_key)
{
    for (int k = 0; k < XBT_WSETS; k++) {
        wset_clear(m, m->wset[k]);
        m->wset[k]->cr3 = ~0u;
    }
    if (paged)
        m->cur->cr3 = as_key; /* what the fills from now on mirror */
    memset(m->pse_region, 0, sizeof m->pse_region);
    m->window_paged = paged;
    if (paged)
        return;
    identity_map(m);
}

void xbt_window_reset(xbt_smmu *m, xbt_smmu_regs regs)
{
    window_reset(m, xbt_smmu_paging(regs), xbt_smmu_as_key(regs));
}

bool xbt_window_map_range(xbt_smmu *m, uint8_t *window, uint32_t lin, uint64_t gpa,
                          uint32_t len, bool writable)
{
    void *at = window + lin;
    const struct xbt_slot *s = xbt_phys_slot(m->phys, gpa);
    /* Populated at once: the access that faulted is retried at once, and a host page
       fault to populate the page afterwards costs more than the mmap itself on a host
       that is a VM.  Not a large page's 4 MiB, of which little may be touched. */
    int populate = len <= XBT_FILL_POPULATE_MAX ? MAP_POPULATE : 0;
    if (!s || !xbt_phys_one_slot(m->phys, gpa, len) ||
        mmap(at, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED | MAP_FIXED | populate,
             s->fd, (off_t)(s->fd_offset + (gpa - s->gpa))) != at)
        return false;
    int win = window == m->ubase ? XBT_WINDOW_U : XBT_WINDOW_K;
    wmap_note_rights(m, win, lin, len, writable);
    uint32_t *frame = m->cur->frame[win];
    for (uint32_t k = 0; k < len >> 12; k++)
        frame[(lin >> 12) + k] = (uint32_t)(gpa >> 12) + k + 1;
    if (writable && m->window_paged)
        xbt_rmap_note(m, window == m->ubase ? XBT_WINDOW_U : XBT_WINDOW_K, lin, gpa, len);
    return true;
}

void xbt_window_drop(xbt_smmu *m, uint32_t lin, uint32_t len)
{
    wset_drop3(m, m->cur, lin, len);
}

void xbt_window_drop_all(xbt_smmu *m, uint32_t lin, uint32_t len)
{
    for (int k = 0; k < XBT_WSETS; k++)
        wset_drop3(m, m->wset[k], lin, len);
}

void xbt_window_drop_k(xbt_smmu *m, uint32_t lin, uint64_t len)
{
    for (int k = 0; k < XBT_WSETS; k++)
        wset_drop(m, m->wset[k], XBT_WINDOW_K, lin, len);
}

void xbt_window_note(xbt_smmu *m, int win, uint32_t lin, uint32_t len, bool global, bool pae,
                     uint32_t pde, uint32_t pte0, bool big)
{
    struct xbt_wset *w = m->cur;
    if (global) {
        bits_set(w->g_page, w->g_region, lin, len);
        return;
    }
    bits_set(w->ng_page, w->ng_region, lin, len);
    if (w->n_rec == XBT_WREC_CAP) {
        w->rec_overflow = true;
        return;
    }
    /* (A PAE run is the entries of one table, as a fill takes them: within 2 MiB.) */
    w->rec[w->n_rec++] = (struct xbt_wrec){ lin, pde, pte0, (uint16_t)(len >> 12), (uint8_t)win,
                                            big, pae };
}

/* Drops every mapping of w that did not come from a global entry (the way a CR3 load
   flushes a TLB), by the bitmaps. */
static void wset_drop_nonglobal(xbt_smmu *m, struct xbt_wset *w)
{
    for (uint32_t r = 0; r < 1024; r++) {
        uint8_t bit = (uint8_t)(1u << (r & 7));
        if (!(w->ng_region[r >> 3] & bit))
            continue;
        w->ng_region[r >> 3] &= (uint8_t)~bit;
        uint64_t *ng = &w->ng_page[r * 16];
        if (!(w->g_region[r >> 3] & bit)) {
            wset_drop3(m, w, r << 22, 4u << 20); /* nothing global here */
            memset(ng, 0, 128);
            continue;
        }
        uint32_t p = 0;
        while (p < 1024) {
            if (!(ng[p >> 6] & (1ull << (p & 63)))) {
                p++;
                continue;
            }
            uint32_t q = p;
            while (q < 1024 && (ng[q >> 6] & (1ull << (q & 63))))
                q++;
            wset_drop3(m, w, (r << 22) + (p << 12), (q - p) << 12);
            p = q;
        }
        memset(ng, 0, 128);
    }
    w->n_rec = 0;
    w->rec_overflow = false;
}

static bool ram32(const xbt_smmu *m, uint64_t gpa, uint32_t *v)
{
    const uint8_t *h = xbt_phys_r(m->phys, gpa, 4);
    if (!h)
        return false;
    memcpy(v, h, 4);
    return true;
}

static bool ram64(const xbt_smmu *m, uint64_t gpa, uint64_t *v)
{
    const uint8_t *h = xbt_phys_r(m->phys, gpa, 8);
    if (!h)
        return false;
    memcpy(v, h, 8);
    return true;
}

/* The table entries of a record's run of 4 KiB pages are still pte0 + k * 4096.  The
   table page is looked up once and its entries compared in a plain loop: a CR3 switch
   back re-checks thousands of them (xv6 maps its 224 MiB kernel with non-global 4 KiB
   pages in every address space: the per-entry lookup was a quarter of its run time). */
/* How many pages of run e have entries in table pt other than the run's, counted up to
   `stop` (a table outside RAM: `stop`), the first of them in *first. */
static uint32_t run_changed(const xbt_smmu *m, uint64_t pt, const struct xbt_wrec *e,
                            uint32_t stop, uint32_t *first)
{
    const uint8_t *h = xbt_phys_r(m->phys, pt, 4096);
    if (!h)
        return stop;
    /* A run made from clean entries is mapped read-only: an entry that became dirty
       since (the page's write fault mapped it writable with a record of its own) still
       maps it as the run does. */
    uint32_t mask = e->pae ? 0x1FF : 0x3FF;
    uint32_t base = (e->lin >> 12) & mask, want = e->pte0, n = 0;
    uint32_t dirty = (want & XBT_PTE_D) ? 0 : XBT_PTE_D;
    for (uint32_t i = 0; i < e->npages; i++, want += 4096) {
        /* Fixed-size copies (inlined: a copy of e->pae ? 8 : 4 bytes was a call to
           memcpy per entry, +15% on nano's cr3switch). */
        uint64_t pte = 0; /* PAE: the upper half must be 0, as it was */
        if (e->pae)
            memcpy(&pte, h + ((base + i) & mask) * 8, 8);
        else
            memcpy(&pte, h + ((base + i) & mask) * 4, 4);
        if (((uint32_t)pte & ~dirty) == want && !(pte >> 32))
            continue;
        if (n++ == 0)
            *first = i;
        if (n == stop)
            break;
    }
    return n;
}

/* The directory entry of record e's linear address in the address space `as` (its key,
   xbt_smmu_as_key: the directory's address; PAE: the PDPT's): PAE walks the PDPTE as a
   CR3 load reads it, present and pointing below 4 GiB, then an entry whose upper half
   is 0 (the record's was: its lower half is all it holds). */
static bool rec_dir(xbt_smmu *m, uint64_t as, const struct xbt_wrec *e, uint32_t *pde)
{
    uint64_t at = as + (e->lin >> 22) * 4, pdpte, v;
    uint32_t es = 4;
    if (!e->pae) {
        if (!ram32(m, at, pde))
            return false;
    } else {
        if (!ram64(m, as + (e->lin >> 30) * 8, &pdpte) || !(pdpte & XBT_PTE_P) ||
            (pdpte >> 32))
            return false;
        at = (pdpte & 0xFFFFF000u) + ((e->lin >> 21) & 0x1FF) * 8, es = 8;
        if (!ram64(m, at, &v) || (v >> 32))
            return false;
        *pde = (uint32_t)v;
    }
    /* An entry pointing to a table that lacks only the accessed flag the record was
       made with gets it, as a speculative fill of the paging-structure caches may set
       it (fault.c, xbt_smmu_spec_accessed): at a CR3 load only (m->spec_dir; the
       table it points to may be another page).  Not a large page's entry, which maps
       the page itself: a guest that clears its flag to age the page and reloads CR3
       would find it set again at every load.  So a directory that
       maps alike keeps the mappings without a walk through it first.  nano's
       cr3switch: two directories sharing their tables, one of them never walked for a
       page the other's set maps, cost a window-set switch each (a host system call where
       the GS base moves by arch_prctl: 20,000 cycles). */
    if (m->spec_dir && !e->big && !(*pde & XBT_PTE_A) &&
        ((*pde | XBT_PTE_A) & 0xFFFu) == (e->pde & 0xFFFu) &&
        !xbt_code_page(m, at >> 12) && xbt_smmu_spec_accessed(m, at, *pde, es))
        *pde |= XBT_PTE_A;
    return true;
}

/* The directory entry in address space `as` of record e, a run of 4 KiB pages, if it
   has the flags the record was made under (accessed bit included); false otherwise. */
static bool run_table(xbt_smmu *m, uint64_t as, const struct xbt_wrec *e, uint32_t *pde)
{
    return !e->big && rec_dir(m, as, e, pde) && (*pde & 0xFFFu) == (e->pde & 0xFFFu);
}

/* Whether record e still describes what w's address space (page directory pd) maps:
   a large page's directory entry is the same; a run of 4 KiB pages has a directory
   entry with the same flags (accessed bit included) and the same table entries.  The
   table itself may be another page: the mapping is made of the entries' values, not of
   where they are (xv6 gives every process its own tables for the same kernel mapping). */
static bool rec_unchanged(xbt_smmu *m, uint64_t as, struct xbt_wrec *e)
{
    uint32_t pde, first;
    if (e->big)
        return rec_dir(m, as, e, &pde) && pde == e->pde;
    if (!run_table(m, as, e, &pde) || run_changed(m, pde & ~0xFFFu, e, 1, &first))
        return false;
    e->pde = pde;
    return true;
}

/* A TLB flush of w's address space: each non-global mapping stays if the directory and
   table entries it came from are unchanged (accessed and dirty bits included: a guest
   that clears them gets them set again by the next access), else it is dropped.  w->cr3
   names the tables to check against: the set's own address space at a switch back, a
   new one when it takes the set over (`keep_d` false: the D-window, its runner's, loses
   every non-global mapping then, whatever the tables say). */
static int rec_order(const void *a, const void *b)
{
    const struct xbt_wrec *x = a, *y = b;
    if (x->win != y->win)
        return x->win < y->win ? -1 : 1;
    return x->lin < y->lin ? -1 : x->lin > y->lin;
}

/* Whether window `win` of w maps nothing in [lin, end) (at most 256 pages looked at). */
static bool window_empty(struct xbt_wset *w, int win, uint32_t lin, uint32_t end)
{
    if (end - lin > (256u << 12))
        return false;
    const struct xbt_wmap *map = xbt_wmap_of(w, win);
    for (; lin < end; lin += 4096)
        if (xbt_wmap_has(map, lin))
            return false;
    return true;
}

/* A page's slot in a table of 1 << XBT_CHURN_LOG2 hints (`churn`, `clean`). */
static uint32_t hint_index(uint32_t page)
{
    return (page * 0x9E3779B1u) >> (32 - XBT_CHURN_LOG2);
}

static struct xbt_churn *churn_slot(xbt_smmu *m, uint32_t page)
{
    return &m->churn[hint_index(page)];
}

static bool churn_has(xbt_smmu *m, uint32_t page)
{
    return churn_slot(m, page)->page1 == page + 1;
}

/* Whether record e's pages may be taken for churning ones: small runs only (a large one
   is a mapping that went, not one that comes and goes), not the D-window's. */
static bool rec_may_churn(const struct xbt_wrec *e)
{
    return !e->big && e->npages <= 4 && e->win != XBT_WINDOW_D;
}

/* Whether every page of record e churns (a soft site reaches them without the window). */
static bool rec_churns(xbt_smmu *m, const struct xbt_wrec *e)
{
    if (!rec_may_churn(e))
        return false;
    for (uint32_t i = 0; i < e->npages; i++)
        if (!churn_has(m, (e->lin >> 12) + i))
            return false;
    return true;
}

/* The pages of records a CR3 load's re-check dropped churn (rec_may_churn). */
static void churn_mark(xbt_smmu *m, const struct xbt_wrec *gone, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        if (!rec_may_churn(&gone[k]))
            continue;
        for (uint32_t i = 0; i < gone[k].npages; i++) {
            uint32_t page = (gone[k].lin >> 12) + i;
            struct xbt_churn *e = churn_slot(m, page);
            if (e->page1 != page + 1)
                *e = (struct xbt_churn){ page + 1, 0, m->churn_epoch };
        }
    }
}

bool xbt_window_churns(xbt_smmu *m, uint32_t lin)
{
    struct xbt_churn *e = churn_slot(m, lin >> 12);
    if (e->page1 != (lin >> 12) + 1)
        return false;
    if (e->epoch != m->churn_epoch) {
        e->epoch = m->churn_epoch;
        e->uses = 0;
    }
    return ++e->uses <= XBT_CHURN_USES;
}

/* The count is the slot's, not the page's: two pages that share a slot and are read in
   turn would otherwise reset each other's count for ever (found in review: 4,000 soft
   reads of two pages where 128 were meant).  So at most XBT_CHURN_USES reads per slot
   between two CR3 loads. */
bool xbt_window_clean_read(xbt_smmu *m, uint32_t lin)
{
    uint32_t page = lin >> 12;
    struct xbt_churn *e = &m->clean[hint_index(page)];
    if (e->epoch != m->churn_epoch)
        *e = (struct xbt_churn){ page + 1, 0, m->churn_epoch };
    e->page1 = page + 1;
    return ++e->uses <= XBT_CHURN_USES;
}

/* The n records' mappings leave w's windows in as few host calls as the windows allow:
   sorted by window and address, touching records (or ones apart only by pages the
   window does not map) dropped together.  Each drop of populated pages is a TLB
   shootdown on the host, which costs far more than the call. */
static void drop_records(xbt_smmu *m, struct xbt_wset *w, struct xbt_wrec *gone, uint32_t n)
{
    qsort(gone, n, sizeof *gone, rec_order);
    for (uint32_t k = 0; k < n;) {
        int win = gone[k].win;
        uint64_t lo = gone[k].lin, hi = lo + ((uint64_t)gone[k].npages << 12);
        for (k++; k < n && gone[k].win == win; k++) {
            uint64_t a = gone[k].lin, b = a + ((uint64_t)gone[k].npages << 12);
            if (a > hi && !window_empty(w, win, (uint32_t)hi, (uint32_t)a))
                break;
            hi = b > hi ? b : hi;
        }
        wset_drop(m, w, win, (uint32_t)lo, hi - lo);
    }
}

static void wset_revalidate(xbt_smmu *m, struct xbt_wset *w, bool keep_d)
{
    if (w->rec_overflow) {
        wset_drop_nonglobal(m, w);
        return;
    }
    uint64_t as = w->cr3; /* xbt_smmu_as_key's (~0u: none, nothing there) */
    uint32_t keep = 0, n_gone = 0;
    for (uint32_t k = 0; k < w->n_rec; k++) {
        struct xbt_wrec *e = &w->rec[k];
        bool ok = (keep_d || e->win != XBT_WINDOW_D) && rec_unchanged(m, as, e);
        m->wrec_checked++;
        if (ok) {
            w->rec[keep++] = *e; /* still mapped in its window (the runner's included) */
            continue;
        }
        m->wrec_dropped++;
        w->gone[n_gone++] = *e;
    }
    w->n_rec = keep;
    churn_mark(m, w->gone, n_gone);
    drop_records(m, w, w->gone, n_gone);
}

/* Whether everything w maps from its records, c maps alike (the same guest page, as
   writable, in the same window): c taking w's address space over then gives up none
   of w's non-global mappings.  Never for a D-window record (c's runner is another
   process), nor past XBT_KEEP_COVER pages looked at. */
#define XBT_KEEP_COVER 4096
static bool covers(xbt_smmu *m, const struct xbt_wset *c, const struct xbt_wset *w)
{
    uint32_t seen = 0;
    for (uint32_t k = 0; k < w->n_rec; k++) {
        const struct xbt_wrec *e = &w->rec[k];
        if (rec_churns(m, e))
            continue; /* reached without the window (soft sites): little to lose */
        if (e->win == XBT_WINDOW_D || (seen += e->npages) > XBT_KEEP_COVER)
            return false;
        const struct xbt_wmap *wm = &w->wmap[e->win], *cm = &c->wmap[e->win];
        for (uint32_t i = 0; i < e->npages; i++) {
            uint32_t p = (e->lin >> 12) + i, lin = p << 12;
            if (!xbt_wmap_has(wm, lin))
                continue; /* dropped from w since: nothing to lose */
            if (!xbt_wmap_has(cm, lin) || c->frame[e->win][p] != w->frame[e->win][p] ||
                cm->probe[p] != wm->probe[p])
                return false;
        }
    }
    return true;
}

/* Whether the current set should take the address space `cr3` over instead of a switch
   to another set (m->keep_set: a switch moves the GS base, a host system call of 20,000
   cycles where there is no WRGSBASE).  For a new address space (no set of its own: one
   is taken over either way), when a re-check against cr3's tables drops at most
   XBT_KEEP_DROPS of the current set's records, each a host call now and a fault if the
   address space left comes back, against the GS base move now and back.  For an
   address space with a cached set w, only when nothing of either is lost: no record
   of the current set drops and it maps everything w's records map (covers).  A looser
   rule cost xv6 8%: it passes through its scheduler's directory between processes,
   and each process gave its pages up there.  The re-check is the real one (a record
   whose table moved takes the new directory entry, as the take-over's would; harmless
   if the set is not kept: only the flags are compared), from the end of the list, where
   an address space's own recent pages tend to be; gone[] receives the indices of the
   records that fail, in descending order. */
#define XBT_KEEP_DROPS 2

/* Record k of c, a run of which exactly one page's table entry differs under directory
   pd, becomes that page alone; the unchanged pages before and after it become records
   of their own at the end.  The records describe the same mappings as before (nothing
   changes if the set is not kept after all): only the one page is then found changed
   (a page two address spaces map differently, inside the run of a kernel's own pages;
   nano's procswitch).  false: not such a run, or no room. */
static bool split_run(xbt_smmu *m, struct xbt_wset *c, uint64_t as, uint32_t k)
{
    struct xbt_wrec r = c->rec[k];
    uint32_t pde, bad;
    if (r.npages < 2 || c->n_rec + 2 > XBT_WREC_CAP || !run_table(m, as, &r, &pde) ||
        run_changed(m, pde & ~0xFFFu, &r, 2, &bad) != 1)
        return false;
    if (bad > 0)
        c->rec[c->n_rec++] = (struct xbt_wrec){ r.lin, r.pde, r.pte0, (uint16_t)bad, r.win, 0,
                                                r.pae };
    if (bad + 1 < r.npages)
        c->rec[c->n_rec++] = (struct xbt_wrec){ r.lin + ((bad + 1) << 12), r.pde,
                                                r.pte0 + ((bad + 1) << 12),
                                                (uint16_t)(r.npages - bad - 1), r.win, 0, r.pae };
    c->rec[k] = (struct xbt_wrec){ r.lin + (bad << 12), r.pde, r.pte0 + (bad << 12), 1, r.win,
                                   0, r.pae };
    m->run_splits++;
    return true;
}

static bool keep_current(xbt_smmu *m, uint32_t cr3, const struct xbt_wset *w,
                         uint32_t gone[XBT_KEEP_DROPS], uint32_t *n_gone)
{
    struct xbt_wset *c = m->cur;
    if (!m->keep_set || c->rec_overflow || (w && (w->rec_overflow || w->n_rec > c->n_rec)))
        return false;
    uint64_t as = cr3; /* xbt_smmu_as_key's */
    uint32_t n = 0;
    for (uint32_t k = c->n_rec; k-- > 0;) {
        struct xbt_wrec *e = &c->rec[k];
        if (e->win != XBT_WINDOW_D && rec_unchanged(m, as, e))
            continue;
        if (e->win != XBT_WINDOW_D)
            split_run(m, c, as, k); /* k: the one page that changed, where it is one */
        if (n == XBT_KEEP_DROPS || (w && !rec_churns(m, e))) {
            /* Towards a cached set only pages that churn may go: mapped differently in
               two address spaces, this one is, next time (soft sites reach it). */
            if (w)
                churn_mark(m, e, 1);
            return false;
        }
        gone[n++] = k;
    }
    *n_gone = n;
    return !w || covers(m, c, w);
}

/* The current set c keeps its records but those at gone[] (descending indices, which
   keep_current found changed under the new tables): they leave, in one drop, and the
   others stay in their order. */
static void keep_drop(xbt_smmu *m, struct xbt_wset *c, const uint32_t *gone, uint32_t n_gone)
{
    m->wrec_checked += c->n_rec;
    m->wrec_dropped += n_gone;
    m->set_keeps++;
    uint32_t kept = 0, g = n_gone;
    for (uint32_t k = 0; k < c->n_rec; k++) {
        if (g && k == gone[g - 1])
            c->gone[n_gone - g--] = c->rec[k];
        else
            c->rec[kept++] = c->rec[k];
    }
    c->n_rec = kept;
    churn_mark(m, c->gone, n_gone);
    drop_records(m, c, c->gone, n_gone);
}

void xbt_window_switch(xbt_smmu *m, uint32_t cr3)
{
    struct xbt_wset *w = NULL, *lru = NULL;
    for (int k = 0; k < XBT_WSETS; k++) {
        struct xbt_wset *c = m->wset[k];
        if (c->cr3 == cr3)
            w = c;
        if (c != m->cur && (!lru || c->stamp < lru->stamp))
            lru = c;
    }
    uint32_t gone[XBT_KEEP_DROPS], n_gone = 0;
    bool keep = w != m->cur && keep_current(m, cr3, w, gone, &n_gone);
    if (keep && w) { /* its mappings stay until a take-over re-checks them (~0u: no CR3) */
        w->cr3 = ~0u;
        w->stamp = 0;
    }
    /* The outgoing address space's user code must not run on in its runner while
       another is current: its page tables may change without a flush the VMM sees. */
    if (w != m->cur && m->dwin.park)
        m->dwin.park(m->dwin.opaque, m->cur->idx);
    if (w && !keep) {
        wset_revalidate(m, w, true);
    } else {
        /* A new address space takes over the least recently used set, or the current
           one where keep_current allows: its global mappings (the kernel's) stay, as a
           TLB keeps them, and so do the non-global ones the new tables map alike (a
           kernel mapped with non-global pages in every address space: xv6); the rest
           goes (for the current set, keep_current has already re-checked them). */
        struct xbt_wset *t = keep ? m->cur : lru ? lru : m->cur;
        t->cr3 = cr3;
        t->gen++;
        if (keep)
            keep_drop(m, t, gone, n_gone);
        else
            wset_revalidate(m, t, false);
        w = t;
    }
    w->stamp = ++m->wclock;
    m->churn_epoch++; /* soft sites count their uses of a churning page afresh */
    m->cur = w;
    m->kbase = w->kbase;
    m->ubase = w->ubase;
}

/* The live pages of region r (struct xbt_smmu's region_ptes): 32 words of bits after
   its 1,024 entries; NULL before its first check. */
static uint32_t *region_live(const xbt_smmu *m, uint32_t r)
{
    return m->region_ptes[r] ? m->region_ptes[r] + 1024 : NULL;
}

/* Whether linear page `page` may have blocks checked in its region's current epoch:
   live, or in a region with code and no live bits (its code was checked with paging
   off only, or their allocation failed). */
static bool page_live(const xbt_smmu *m, uint32_t page)
{
    uint32_t r = page >> 10;
    const uint32_t *live = region_live(m, r);
    if (!live)
        return m->code_region[r >> 3] & (1u << (r & 7));
    return live[(page >> 5) & 31] & (1u << (page & 31));
}

/* Region r has a new epoch: none of its blocks is current, no page of it live. */
static void forget_live(xbt_smmu *m, uint32_t r)
{
    uint32_t *live = region_live(m, r);
    if (live)
        memset(live, 0, 32 * sizeof *live);
    m->region_live_any[r >> 3] &= (uint8_t)~(1u << (r & 7));
}

static void region_key(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t r, uint64_t key[3]);

/* What the last change said (region_bumped, _hidden, _unhidden, _alt_keep,
   _alt_restore) is forgotten before the next says it. */
static void forget_changes(xbt_smmu *m)
{
    memset(m->region_bumped, 0, sizeof m->region_bumped);
    memset(m->region_hidden, 0, sizeof m->region_hidden);
    memset(m->region_unhidden, 0, sizeof m->region_unhidden);
    memset(m->region_alt_keep, 0, sizeof m->region_alt_keep);
    memset(m->region_alt_restore, 0, sizeof m->region_alt_restore);
}

/* New epoch for the regions marked in region_bumped (whether any was). */
static bool bump_regions(xbt_smmu *m)
{
    uint32_t e = ++m->tc_epoch;
    bool any = false;
    for (uint32_t i = 0; i < sizeof m->region_bumped; i++) {
        uint8_t bits = m->region_bumped[i];
        if (!bits)
            continue; /* a CR3 load usually bumps few regions, or none */
        any = true;
        m->region_code_ng[i] &= (uint8_t)~bits;
        m->region_code_moved[i] &= (uint8_t)~bits;
        for (; bits; bits &= (uint8_t)(bits - 1)) {
            uint32_t r = i * 8 + (uint32_t)__builtin_ctz(bits);
            uint8_t bit = (uint8_t)(1u << (r & 7));
            m->region_epoch[r] = e;
            if (m->region_alt_restore[i] & bit) {
                /* Its live pages and snapshots are the restored context's (they map as
                   they say), its code non-global. */
                m->region_live_any[i] |= bit;
                m->region_code_ng[i] |= bit;
            } else {
                forget_live(m, r);
            }
        }
    }
    return any;
}

/* The walker's view of guest RAM for entry_present: reads through the VMM's view, no
   writes (accessed and dirty bits stay as the guest left them). */
static bool pt_read(void *opaque, uint64_t gpa, uint32_t *val)
{
    return ram32(opaque, gpa, val);
}

static bool pt_no_write(void *opaque, uint64_t gpa, uint32_t val)
{
    (void)opaque, (void)gpa, (void)val;
    return true;
}

/* Whether the guest's tables map linear page lin (a supervisor read would find it
   present: it succeeds or faults on rights or reserved bits), by the guest page walker
   (with PAE, the PDPTEs as memory holds them, not as the last CR3 load read them: a
   guess either way, which only decides how much a drop takes). */
static bool entry_present(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin)
{
    const xbt_walk_req q = { .cr0 = regs.cr0, .cr3 = regs.cr3, .cr4 = regs.cr4, .lin = lin };
    xbt_walk_result r;
    return xbt_walk(&q, pt_read, pt_no_write, (void *)(uintptr_t)m, &r) ||
           (r.error_code & XBT_PF_P);
}

/* Whether some window set's K-window maps linear page lin. */
static bool some_kwin_has(const xbt_smmu *m, uint32_t lin)
{
    for (int k = 0; k < XBT_WSETS; k++)
        if (xbt_wmap_has(&m->wset[k]->wmap[XBT_WINDOW_K], lin))
            return true;
    return false;
}

/* How much an INVLPG of page lin drops: the page; and when the guest's tables no
   longer map it and the INVLPG before was of the page before it (a kernel tearing a
   mapping down a page at a time, an entry cleared and an INVLPG each: Linux's
   early_memunmap of 64 fixmap slots, 500 times while a boot copies a 124 MB initrd
   in 256 KiB chunks), also the pages after it in the same 4 MiB that a K-window maps:
   one host call per chunk instead of one per page.  Dropping a mapping early is what
   a TLB may always do; the INVLPGs that follow find nothing mapped. */
static uint32_t teardown_len(xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin)
{
    uint32_t page = lin >> 12, prev = m->inv_prev;
    m->inv_prev = page;
    if (!xbt_smmu_paging(regs) || prev + 1 != page || entry_present(m, regs, lin))
        return 4096;
    uint32_t q = lin + 4096;
    while ((q & 0x3FFFFFu) && some_kwin_has(m, q))
        q += 4096;
    return q - lin;
}

/* Whether a region's key (region_key) maps linear lin of the region with a large page:
   a 4 MiB page with CR4.PSE; with PAE, a 2 MiB page in lin's half. */
static bool key_large_at(xbt_smmu_regs regs, const uint64_t key[3], uint32_t lin)
{
    const uint64_t large = XBT_PTE_P | XBT_PTE_PS; /* a present large page */
    if (xbt_smmu_pae(regs))
        return (key[1 + ((lin >> 21) & 1)] & large) == large;
    return (regs.cr4 & XBT_CR4_PSE) && (key[0] & large) == large;
}

bool xbt_smmu_large_at(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin)
{
    if (!xbt_smmu_paging(regs))
        return false;
    uint64_t key[3];
    region_key(m, regs, lin >> 22, key);
    return key_large_at(regs, key, lin);
}

int xbt_smmu_mapping_changed(xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin, uint32_t len)
{
    forget_changes(m);
    if (len == 0) {
        /* (The runtime undoes every chain, those of contexts set aside too.) */
        memset(m->region_alt, 0, sizeof m->region_alt);
        memset(m->region_alt_drop, 0, sizeof m->region_alt_drop);
        m->region_alt_drop_any = false;
        xbt_window_reset(m, regs);
        m->all_epoch = ++m->tc_epoch;
        for (uint32_t r = 0; r < 1024; r++) {
            forget_live(m, r);
            if (m->region_epoch[r] == XBT_EPOCH_ABSENT)
                m->region_epoch[r] = m->all_epoch; /* (its saved one is not given back) */
        }
        memset(m->region_code_moved, 0, sizeof m->region_code_moved);
        return XBT_SMMU_ALL;
    }
    /* A page this INVLPG takes from the current set's K- or U-window for the second
       time churns (struct xbt_smmu's `inv`); one that churns starts its count of soft
       accesses again (a new mapping: kmap_local maps a page, a few accesses, unmaps). */
    if (len <= 4u << 12)
        for (uint32_t p = lin >> 12; p <= (lin + len - 1) >> 12; p++) {
            struct xbt_churn *c = churn_slot(m, p);
            if (c->page1 == p + 1) {
                *c = (struct xbt_churn){ p + 1, 0, m->churn_epoch };
                continue;
            }
            if (!xbt_wmap_has(&m->cur->wmap[XBT_WINDOW_K], p << 12) &&
                !xbt_wmap_has(&m->cur->wmap[XBT_WINDOW_U], p << 12))
                continue;
            struct xbt_churn *h = &m->inv[hint_index(p)];
            if (h->page1 != p + 1)
                h->page1 = p + 1;
            else
                *c = (struct xbt_churn){ p + 1, 0, m->churn_epoch };
        }
    /* Global mappings live in every set. */
    xbt_window_drop_all(m, lin, len == 4096 ? teardown_len(m, regs, lin) : len);
    /* Translations are keyed by linear EIP and depend only on the physical bytes: they
       stay cached, but none runs or is linked again before the run loop has checked
       that its linear pages still map to the physical pages it was made from.  An
       INVLPG of pages no current translation was checked on (no live page) changes
       nothing for them. */
    bool code = false;
    for (uint32_t p = lin >> 12; p <= (lin + len - 1) >> 12; p++)
        if (page_live(m, p)) {
            code = true;
            m->region_bumped[p >> 13] |= (uint8_t)(1u << ((p >> 10) & 7));
        }
    return code && bump_regions(m) ? XBT_SMMU_REGIONS : XBT_SMMU_UNCHANGED;
}

uint32_t xbt_region_pde_raw(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t region)
{
    if (xbt_smmu_pae(regs))
        return 0; /* no 32-bit directory entry (PAE regions: region_key) */
    uint64_t at = (uint64_t)(regs.cr3 & ~0xFFFu) + region * 4;
    uint32_t pde = 0;
    ram32(m, at, &pde);
    return pde;
}

uint32_t xbt_region_pde(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t region)
{
    if (!xbt_smmu_paging(regs))
        return 0; /* PAE: 0 as well (xbt_region_pde_raw); its key is region_key's */
    return xbt_region_pde_raw(m, regs, region) & ~0x60u; /* A and D change, the mapping not */
}

/* The paging-structure entries that decide how 4 MiB region r maps (A and D masked):
   its directory entry; PAE: its PDPTE and its two directory entries. */
static void region_key(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t r, uint64_t key[3])
{
    key[0] = key[1] = key[2] = 0;
    if (!xbt_smmu_paging(regs))
        return;
    if (!xbt_smmu_pae(regs)) {
        key[0] = xbt_region_pde(m, regs, r);
        return;
    }
    uint64_t pdpte;
    if (!ram64(m, (uint64_t)(regs.cr3 & ~0x1Fu) + (r >> 8) * 8, &pdpte) ||
        !(pdpte & XBT_PTE_P))
        return;
    key[0] = pdpte;
    uint64_t pd = pdpte & 0x0000000FFFFFF000ull;
    for (int k = 0; k < 2; k++)
        if (ram64(m, pd + ((r & 255) * 2 + (uint32_t)k) * 8, &key[1 + k]))
            key[1 + k] &= ~(uint64_t)(XBT_PTE_A | XBT_PTE_D);
}

/* What of a last-level entry decides what a fetch from its page runs: the frame, P and
   U/S (not R/W, A, D, the cache bits, G or the bits left to software: a page made
   read-only, or global, runs the same code). */
#define CODE_PTE_BITS (0xFFFFF000u | XBT_PTE_P | XBT_PTE_US)

/* The last-level entry of linear page lin reached through a page table, with its
   region's key already read (low half, CODE_PTE_BITS only; false for a large page, a
   missing entry or, with PAE, an entry with a nonzero upper half). */
static bool code_pte_in(const xbt_smmu *m, xbt_smmu_regs regs, const uint64_t key[3],
                        uint32_t lin, uint32_t *pte)
{
    if (!xbt_smmu_pae(regs)) {
        uint32_t pde = (uint32_t)key[0];
        uint64_t at = (uint64_t)(pde & ~0xFFFu) + ((lin >> 12) & 0x3FF) * 4;
        /* (PS without CR4.PSE is ignored: the entry points to a table, as the walk has it) */
        if (!(pde & XBT_PTE_P) || key_large_at(regs, key, lin) || !ram32(m, at, pte))
            return false;
        *pte &= CODE_PTE_BITS;
        return true;
    }
    uint64_t pde = key[1 + ((lin >> 21) & 1)], e;
    uint64_t at = (pde & 0x0000000FFFFFF000ull) + ((lin >> 12) & 0x1FF) * 8;
    if (!(pde & XBT_PTE_P) || (pde & XBT_PTE_PS) || !ram64(m, at, &e) || (e >> 32))
        return false;
    *pte = (uint32_t)e & CODE_PTE_BITS;
    return true;
}

/* Whether the live pages of region r (those with blocks checked in its current epoch)
   map as their blocks were checked: the same page table entries (CODE_PTE_BITS) as
   their snapshots, the entry each such page's first check found.  Sound together with
   region_code_moved: every block checked on a live page read its snapshot's entry or
   marked the region moved, so a region that keeps its epoch has only blocks checked
   under the entries it has now.  Pages that held code once but have no current block
   (other processes' code, freed memory at the same addresses) do not count: their
   blocks are checked again, and their page becomes live, before any of them runs. */
static bool ptes_same(xbt_smmu_regs regs, const xbt_smmu *m, uint32_t r, const uint64_t key[3],
                      const uint32_t *snap)
{
    if (!snap)
        return true; /* never checked with paging on: no current block */
    const uint32_t *live = snap + 1024;
    for (uint32_t w = 0; w < 32; w++) {
        /* A 2 MiB half (PAE; the other half is not one, or the region would be big and
           not compared here): its directory entry is in the key's shape, compared whole
           before this (region_reload), so its pages map as they did. */
        if (!(w & 15) && key_large_at(regs, key, (r << 22) | (w << 17))) {
            w += 15;
            continue;
        }
        for (uint32_t bits = live[w]; bits; bits &= bits - 1) {
            uint32_t i = w * 32 + (uint32_t)__builtin_ctz(bits), pte = 0;
            if (!code_pte_in(m, regs, key, (r << 22) | (i << 12), &pte) || pte != snap[i])
                return false; /* (the snapshot is present: a different entry) */
        }
    }
    return true;
}

static bool region_code_same(const xbt_smmu *m, xbt_smmu_regs regs, uint32_t r,
                             const uint64_t key[3])
{
    return ptes_same(regs, m, r, key, m->region_ptes[r]);
}

/* A region's key with the addresses of the tables it points to masked: two keys with
   the same shape map a region alike when the table entries read through them are the
   same (region_code_same compares those of code pages).  Non-PAE: a directory entry
   that is not a large page (CR4.PSE and PS) points to a table; PAE: the PDPTE always
   (its directory entries are in the key themselves), a directory entry unless PS. */
static void key_shape(xbt_smmu_regs regs, const uint64_t key[3], uint64_t out[3])
{
    const uint64_t large = XBT_PTE_P | XBT_PTE_PS;
    out[0] = key[0], out[1] = key[1], out[2] = key[2];
    if (!xbt_smmu_pae(regs)) {
        if (!((regs.cr4 & XBT_CR4_PSE) && (key[0] & large) == large))
            out[0] &= 0xFFFu;
        return;
    }
    const uint64_t addr = 0x000FFFFFFFFFF000ull;
    out[0] &= ~addr;
    for (int k = 1; k < 3; k++)
        if ((key[k] & large) != large)
            out[k] &= ~addr;
}

/* Whether a region's key maps nothing of it: no directory entry; PAE: no PDPTE, or
   neither of its two directory entries. */
static bool key_absent(xbt_smmu_regs regs, const uint64_t key[3])
{
    if (!(key[0] & XBT_PTE_P))
        return true;
    return xbt_smmu_pae(regs) && !(key[1] & XBT_PTE_P) && !(key[2] & XBT_PTE_P);
}

/* Whether a region's key maps it all with large pages (non-PAE: one 4 MiB page with
   CR4.PSE; PAE: two 2 MiB pages): the key itself is then the whole mapping. */
static bool key_big(xbt_smmu_regs regs, const uint64_t key[3])
{
    return key_large_at(regs, key, 0) && key_large_at(regs, key, 1u << 21);
}

static bool same_shape(xbt_smmu_regs regs, const uint64_t a[3], const uint64_t b[3])
{
    uint64_t x[3], y[3];
    key_shape(regs, a, x);
    key_shape(regs, b, y);
    return memcmp(x, y, sizeof x) == 0;
}

/* Whether a region's key points to page tables only (one of PAE's two directory entries
   may be missing): the region's contexts are set aside only then. */
static bool key_tables(xbt_smmu_regs regs, const uint64_t key[3])
{
    return !key_absent(regs, key) && !key_large_at(regs, key, 0) &&
           !key_large_at(regs, key, 1u << 21);
}

/* Whether none of the live pages in `snap` (a region's snapshots and live bits) is
   mapped to its snapshot's frame under `key`: no block of that context passes a check
   there.  (What keeps its chains out of reach is the check in note_code_pte, which gives
   the context up at the first block checked on such a page; this only spares setting
   aside a context that would be given up at once.) */
static bool ptes_apart(xbt_smmu_regs regs, const xbt_smmu *m, uint32_t r, const uint64_t key[3],
                       const uint32_t *snap)
{
    const uint32_t *live = snap + 1024;
    for (uint32_t w = 0; w < 32; w++)
        for (uint32_t bits = live[w]; bits; bits &= bits - 1) {
            uint32_t i = w * 32 + (uint32_t)__builtin_ctz(bits), pte = 0;
            if (code_pte_in(m, regs, key, (r << 22) | (i << 12), &pte) && (pte & XBT_PTE_P) &&
                pte >> 12 == snap[i] >> 12)
                return false;
        }
    return true;
}

/* Region r gets a new epoch at a CR3 load whose tables (key) map it otherwise: its
   context set aside where its blocks cannot run under them (region_alt_keep), the one set
   aside before made current where they map it as it says (region_alt_restore; struct
   xbt_smmu).  `moved`: a block was checked under other entries than the snapshots. */
static void set_aside(xbt_smmu *m, xbt_smmu_regs regs, uint32_t r, const uint64_t key[3],
                      bool moved)
{
    uint8_t bit = (uint8_t)(1u << (r & 7));
    if (!xbt_smmu_paging(regs) || !key_tables(regs, key))
        return;
    bool had = m->region_alt[r >> 3] & bit;
    bool restore = had && same_shape(regs, key, m->region_alt_key[r]) &&
                   ptes_same(regs, m, r, key, m->region_alt_ptes[r]);
    bool keep = !moved && m->region_ptes[r] && (m->region_live_any[r >> 3] & bit) &&
                key_tables(regs, m->region_key[r]) && ptes_apart(regs, m, r, key, m->region_ptes[r]);
    if (!keep && !restore)
        return; /* a plain new epoch; what was set aside stays so */
    uint32_t *cur = m->region_ptes[r];
    m->region_ptes[r] = m->region_alt_ptes[r]; /* restored, or emptied by bump_regions */
    m->region_alt_ptes[r] = cur;
    if (keep) {
        memcpy(m->region_alt_key[r], m->region_key[r], sizeof m->region_alt_key[r]);
        m->region_alt[r >> 3] |= bit;
        m->region_alt_keep[r >> 3] |= bit;
    } else {
        m->region_alt[r >> 3] &= (uint8_t)~bit;
    }
    if (restore)
        m->region_alt_restore[r >> 3] |= bit;
}

/* Region r (it holds translated code) at a CR3 load: marked in region_bumped unless its
   code's translations survive the load (xbt_smmu_cr3_changed says when). */
static void region_reload(xbt_smmu *m, xbt_smmu_regs regs, uint32_t r)
{
    bool pge = regs.cr4 & XBT_CR4_PGE;
    uint8_t bit = (uint8_t)(1u << (r & 7));
    uint64_t key[3];
    region_key(m, regs, r, key);
    bool global_code = pge && !(m->region_code_ng[r >> 3] & bit);
    /* Not mapped at all now: nothing of it can run (a fetch faults, so no block of it
       is checked meanwhile).  Its blocks wait, their epoch saved, for a load that maps
       the region again as region_key and the snapshots say; chains into them from
       elsewhere and the inline lookups' entries go (region_hidden), chains among them
       stay.  (cc1 and busybox's shell switch to directories without their regions,
       the kernel's own and an exiting process's, and back: each time a new epoch for
       their code, until 2026-12-05.) */
    if (!global_code && xbt_smmu_paging(regs) && key_absent(regs, key)) {
        if (m->region_epoch[r] != XBT_EPOCH_ABSENT) {
            m->region_hidden[r >> 3] |= bit;
            m->region_saved_epoch[r] = m->region_epoch[r];
            m->region_epoch[r] = XBT_EPOCH_ABSENT;
        }
        return;
    }
    if (m->region_epoch[r] == XBT_EPOCH_ABSENT) {
        m->region_epoch[r] = m->region_saved_epoch[r]; /* (a new one below if it moved) */
        m->region_unhidden[r >> 3] |= bit;              /* (unless bumped below) */
    }
    bool same_key = memcmp(key, m->region_key[r], sizeof key) == 0;
    bool big = key_big(regs, key);
    bool moved = m->region_code_moved[r >> 3] & bit;
    m->region_code_moved[r >> 3] &= (uint8_t)~bit;
    bool same_table = !big && (key[0] & XBT_PTE_P) && same_shape(regs, key, m->region_key[r]) &&
                      region_code_same(m, regs, r, key) && !moved;
    /* Global translations survive a CR3 load whatever the new tables say. */
    if (!(global_code || (same_key && big && !moved) || same_table)) {
        m->region_bumped[r >> 3] |= bit;
        set_aside(m, regs, r, key, moved);
    }
    memcpy(m->region_key[r], key, sizeof key);
}

int xbt_smmu_cr3_changed(xbt_smmu *m, xbt_smmu_regs regs)
{
    m->spec_pt = XBT_SPEC_PT_NONE;
    m->spec_dir = true;
    xbt_window_switch(m, xbt_smmu_as_key(regs));
    m->spec_dir = false;
    /* A region keeps its epoch when all its code was checked under global entries
       (CR4.PGE: they survive the load), or its paging-structure entries (the directory
       entry; PAE: the PDPTE and both directory entries) are what its code was checked
       under and they name a large page (nothing in it can differ) and no block was
       checked under others since, or they point to tables (the same ones or others:
       each process's own copy of the kernel's mapping, as xv6 has) in which every live
       page's entry is the one its blocks were checked under.  Anything else starts a
       new epoch.  The regions with code are found a
       byte of the bitmap at a time (a loop over all 1,024 was about half of a CR3
       switch that keeps its window set). */
    forget_changes(m);
    bool unhidden = false; /* (some region absent before the load: maybe back) */
    for (uint32_t i = 0; i < sizeof m->code_region; i++)
        for (uint8_t bits = m->code_region[i]; bits; bits &= (uint8_t)(bits - 1)) {
            uint32_t r = i * 8 + (uint32_t)__builtin_ctz(bits);
            unhidden |= m->region_epoch[r] == XBT_EPOCH_ABSENT;
            region_reload(m, regs, r);
        }
    bool hidden = false;
    for (uint32_t i = 0; unhidden && i < sizeof m->region_hidden; i++) {
        m->region_unhidden[i] &= (uint8_t)~m->region_bumped[i];
        hidden |= m->region_unhidden[i] != 0; /* (back as it was: entries to put back) */
    }
    for (uint32_t i = 0; i < sizeof m->region_hidden && !hidden; i++)
        hidden = m->region_hidden[i] != 0;
    return bump_regions(m) || hidden ? XBT_SMMU_REGIONS : XBT_SMMU_UNCHANGED;
}

/* A block was translated or re-checked on linear page lin under the current tables.
   The first such check since its region's last new epoch makes the page live, with
   the entry it found as its snapshot; a later one that finds another entry marks the
   region moved, and the next CR3 load gives it a new epoch (region_code_same).  The
   first check in a region with no live page takes the region's key too (no block of
   it is current: whatever key the last load found there, a process's region whose
   table came after the load, or none, is checked against the key its blocks now run
   under).  A region of large pages: the key is the mapping, a check under another
   key marks it moved.  (Until 2026-12-05 the snapshot was taken at each CR3 load for
   every page that had ever held code, and a page that came to hold code between two
   loads compared against an empty one: cc1 runs new code pages in most of its regions
   between two of its TLB flushes, and each flush, a CR3 load of the same directory,
   undid 5,000-38,000 chains.) */
static void note_code_pte(xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin,
                          const xbt_code_walk *wk)
{
    uint32_t r = lin >> 22, i = (lin >> 12) & 0x3FF;
    uint8_t bit = (uint8_t)(1u << (r & 7));
    if (!xbt_smmu_paging(regs))
        return; /* paging off: a CR3 load gives every region a new epoch */
    if (m->region_alt[r >> 3] & bit) {
        /* A page of the context set aside, on its frame: that context's blocks can run
           here, their chains too; it is given up (region_alt_drop). */
        const uint32_t *alt = m->region_alt_ptes[r];
        if ((alt[1024 + (i >> 5)] & (1u << (i & 31))) && alt[i] >> 12 == wk->page) {
            m->region_alt[r >> 3] &= (uint8_t)~bit;
            m->region_alt_drop[r >> 3] |= bit;
            m->region_alt_drop_any = true;
        }
    }
    if (!m->region_ptes[r] && !(m->region_ptes[r] = calloc(1024 + 32, 4))) {
        m->region_code_moved[r >> 3] |= bit; /* nothing to compare against */
        return;
    }
    uint64_t key[3];
    region_key(m, regs, r, key);
    uint32_t pte = 0, *live = region_live(m, r), w = i >> 5, b = 1u << (i & 31);
    if (!(m->region_live_any[r >> 3] & bit))
        memcpy(m->region_key[r], key, sizeof key);
    m->region_live_any[r >> 3] |= bit;
    bool first = !(live[w] & b);
    live[w] |= b; /* an INVLPG of it gives the region a new epoch from now on */
    /* A large page is one TLB entry: an INVLPG anywhere in it (its whole region, or its
       2 MiB half with PAE) must give the region a new epoch. */
    uint64_t frame = ~0ull; /* the frame a large page maps lin to */
    if (key_large_at(regs, key, lin)) {
        if (xbt_smmu_pae(regs)) {
            uint64_t pde = key[1 + ((lin >> 21) & 1)];
            memset(live + (i >> 9) * 16, 0xFF, 16 * sizeof *live);
            frame = ((pde & 0x000FFFFFFFE00000ull) >> 12) | ((lin >> 12) & 0x1FF);
        } else {
            memset(live, 0xFF, 32 * sizeof *live);
            frame = ((key[0] & 0xFFC00000u) >> 12) | ((key[0] & 0x1FE000u) << 7) | i;
        }
    }
    /* Each check is compared with what the block's own walk found (wk: the frame, the
       directory entry and the last-level entry): the entries read here come later, and
       another vCPU may have changed them in between (a frame, or only a U/S bit the
       walk checked: a snapshot or key that took the new entry would let a CR3 load keep
       a block walked under the old one). */
    uint32_t key_pde = (uint32_t)key[xbt_smmu_pae(regs) ? 1 + ((lin >> 21) & 1) : 0];
    if ((key_pde ^ wk->pde) & ~(uint32_t)(XBT_PTE_A | XBT_PTE_D)) {
        m->region_code_moved[r >> 3] |= bit;
        return;
    }
    if (key_big(regs, key)) {
        if (memcmp(key, m->region_key[r], sizeof key) != 0 || frame != wk->page)
            m->region_code_moved[r >> 3] |= bit;
        return;
    }
    if (!same_shape(regs, key, m->region_key[r])) {
        m->region_code_moved[r >> 3] |= bit;
        return;
    }
    if (frame != ~0ull) {
        /* PAE, a 2 MiB half beside a half that is not one: its directory entry, which
           the shape compares whole, is its mapping (region_code_same skips its pages). */
        if (frame != wk->page)
            m->region_code_moved[r >> 3] |= bit;
        return;
    }
    if (!code_pte_in(m, regs, key, lin, &pte) ||
        !(pte & XBT_PTE_P) || pte >> 12 != wk->page || pte != (wk->pte & CODE_PTE_BITS)) {
        m->region_code_moved[r >> 3] |= bit;
        return;
    }
    if (first)
        m->region_ptes[r][i] = pte;
    else if (pte != m->region_ptes[r][i])
        m->region_code_moved[r >> 3] |= bit;
}

static void mark_code_region(xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin)
{
    uint32_t r = lin >> 22;
    uint8_t bit = (uint8_t)(1u << (r & 7));
    if (!(m->code_region[r >> 3] & bit)) {
        m->code_region[r >> 3] |= bit;
        region_key(m, regs, r, m->region_key[r]);
    }
}

/* Region r, which the last CR3 load found absent, is mapped again without one (no TLB
   flush is needed for a new entry: an exec'd program's ld.so maps its libraries where
   the directory had nothing) and a block is checked there: the region gets a new epoch
   as at a load of these tables, the context that waited set aside or given up
   (set_aside), so that its blocks are fresh again once checked.  (Until 2026-12-05 no
   block of it was fresh until the next CR3 load, the checks went into the context that
   waited, and the next load that found the region absent again cut the chains made
   meanwhile.)  The runtime undoes chains as after a load (region_revived). */
static void region_revive(xbt_smmu *m, xbt_smmu_regs regs, uint32_t r)
{
    uint8_t bit = (uint8_t)(1u << (r & 7));
    uint64_t key[3];
    region_key(m, regs, r, key);
    m->region_epoch[r] = m->region_saved_epoch[r];
    bool moved = m->region_code_moved[r >> 3] & bit;
    m->region_code_moved[r >> 3] &= (uint8_t)~bit;
    m->region_bumped[r >> 3] |= bit;
    set_aside(m, regs, r, key, moved);
    memcpy(m->region_key[r], key, sizeof key);
}

void xbt_smmu_code_seen(xbt_smmu *m, xbt_smmu_regs regs, uint32_t lin0, uint32_t lin1,
                        const xbt_code_walk *w0, const xbt_code_walk *w1)
{
    /* Both of a block's regions may be revived: one set of bits for both (each revive
       clearing them lost the first one's, found in review). */
    uint32_t r0 = lin0 >> 22, r1 = lin1 >> 22;
    bool a0 = m->region_epoch[r0] == XBT_EPOCH_ABSENT, a1 = m->region_epoch[r1] == XBT_EPOCH_ABSENT;
    if ((a0 || a1) && xbt_smmu_paging(regs)) {
        forget_changes(m);
        if (a0)
            region_revive(m, regs, r0);
        if (a1 && r1 != r0)
            region_revive(m, regs, r1);
        bump_regions(m);
        m->region_revived = true;
    }
    mark_code_region(m, regs, lin0);
    mark_code_region(m, regs, lin1);
    note_code_pte(m, regs, lin0, w0);
    if ((lin1 ^ lin0) >> 12)
        note_code_pte(m, regs, lin1, w1);
}

#define GIB (1ull << 30)

bool xbt_smmu_init(xbt_smmu *m, xbt_phys *phys, const char **why)
{
    m->phys = phys;
    /* Window sets, one per recent address space: each a K-window and a user window of
       4 GiB, carved from one PROT_NONE reservation (the layout below). */
    for (int k = 0; k < XBT_WSETS; k++) {
        struct xbt_wset *w = calloc(1, sizeof *w);
        if (!w || !(w->rec = malloc(XBT_WREC_CAP * sizeof *w->rec)) ||
            !(w->gone = malloc(XBT_WREC_CAP * sizeof *w->gone)) ||
            !(w->frame[0] = calloc(1u << 20, sizeof *w->frame[0])) ||
            !(w->frame[1] = calloc(1u << 20, sizeof *w->frame[1]))) {
            if (w)
                free(w->rec), free(w->gone), free(w->frame[0]), free(w->frame[1]);
            free(w);
            *why = "cannot allocate the window sets";
            return false;
        }
        m->wset[k] = w;
        w->idx = (uint8_t)k;
        w->cr3 = ~0u;
        w->reserve = mmap(NULL, XBT_WSET_RESERVE, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (w->reserve == MAP_FAILED) {
            w->reserve = NULL;
            *why = "cannot reserve 17 GiB of address space for a window set";
            return false;
        }
        for (int win = XBT_WINDOW_K; win <= XBT_WINDOW_U; win++) {
            /* Untouched pages of the probe bytes cost no memory (fresh zero pages). */
            uint8_t *p = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            w->wmap[win].probe = p == MAP_FAILED ? NULL : p;
            if (!w->wmap[win].probe) {
                *why = "cannot allocate the window sets";
                return false;
            }
        }
        /* At least XBT_UWIN_UNDER of the reservation, [ubase, ubase + 4 GiB) the user
           window, a guard page, [kbase, kbase + 4 GiB) the K-window, then at least 4 GiB
           more of the reservation (accesses past the top fault there). */
        w->kbase = (uint8_t *)(((uintptr_t)w->reserve + XBT_UWIN_UNDER + XBT_UWIN_BELOW +
                                4 * GIB - 1) &
                               ~(4 * GIB - 1));
        w->ubase = w->kbase - XBT_UWIN_BELOW;
    }
    m->cur = m->wset[0];
    m->kbase = m->cur->kbase;
    m->ubase = m->cur->ubase;
    /* Per guest physical page (untouched pages cost no memory: calloc of this size
       is fresh zero pages). */
    if (!m->code_prot) {
        m->code_prot = calloc(XBT_PHYS_PAGES, 1);
        m->own_code_prot = true;
    }
    m->rmap = calloc(XBT_PHYS_PAGES, sizeof *m->rmap);
    if (!m->code_prot || !m->rmap) {
        *why = "cannot allocate the per-page tables of guest RAM";
        return false;
    }
    /* Paging off: guest linear == physical, so the slots are mapped 1:1 at the window
       base. */
    identity_map(m);
    return true;
}

void xbt_smmu_destroy(xbt_smmu *m)
{
    if (m->own_code_prot)
        free(m->code_prot);
    free(m->rmap);
    for (int r = 0; r < 1024; r++)
        free(m->region_ptes[r]), free(m->region_alt_ptes[r]);
    for (int k = 0; k < XBT_WSETS; k++) {
        struct xbt_wset *w = m->wset[k];
        if (!w)
            continue;
        if (w->reserve)
            munmap(w->reserve, XBT_WSET_RESERVE);
        free(w->rec);
        for (int win = XBT_WINDOW_K; win <= XBT_WINDOW_U; win++)
            if (w->wmap[win].probe)
                munmap(w->wmap[win].probe, 1u << 20);
        free(w->gone);
        free(w->frame[0]);
        free(w->frame[1]);
        free(w);
    }
}
