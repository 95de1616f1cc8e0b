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

#include "runtime/vcpu.h"

static bool wmap_take(struct xbt_wmap *m, uint32_t lin, uint64_t len);

static void wset_drop(xbt_vm *vm, struct xbt_wset *w, int win, uint32_t lin, uint64_t len);

static bool wmap_has(const struct xbt_wmap *m, uint32_t lin)
{
    uint32_t p = lin >> 12;
    return (m->page[p >> 6] >> (p & 63)) & 1;
}

/* The windows of `who` (struct xbt_rmap) that still map linear page lin. */
static uint16_t rmap_live(const xbt_vm *vm, uint32_t lin, uint16_t who)
{
    for (int b = 0; b < XBT_WSETS * 3; b++)
        if ((who & (1u << b)) && !wmap_has(b % 3 == XBT_WINDOW_D ? &vm->wset[b / 3]->dmap
                                                                : &vm->wset[b / 3]->wmap[b % 3],
                                           lin))
            who &= (uint16_t)~(1u << b);
    return who;
}

void xbt_rmap_note(xbt_vm *vm, int win, uint32_t lin, uint64_t gpa, uint32_t len)
{
    uint16_t bit = (uint16_t)(1u << (vm->cur->idx * 3 + win));
    for (uint32_t off = 0; off < len; off += 4096) {
        uint64_t p = (gpa + off) >> 12;
        if (p >= vm->ram_size >> 12)
            break;
        struct xbt_rmap *e = &vm->rmap[p];
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
            if (!e->who[k] || !(e->who[k] = rmap_live(vm, e->lin[k], e->who[k]))) {
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
void xbt_protect_code_page(xbt_vm *vm, uint32_t page)
{
    if ((uint64_t)page >= vm->ram_size >> 12 || vm->code_prot[page])
        return;
    vm->code_prot[page] = 1;
    vm->code_protects++;
    if (vm->window_paged) {
        struct xbt_rmap *e = &vm->rmap[page];
        if (e->who[0] & XBT_RMAP_LOST) {
            vm->code_protect_resets++;
            xbt_window_reset(vm);
        } else {
            for (int k = 0; k < 2; k++)
                for (int b = 0; b < XBT_WSETS * 3; b++)
                    if (e->who[k] & (1u << b))
                        wset_drop(vm, vm->wset[b / 3], b % 3, e->lin[k], 4096);
        }
        memset(e, 0, sizeof *e);
    } else {
        mprotect(vm->kbase + ((uint64_t)page << 12), 4096, PROT_READ);
        if (wmap_take(&vm->cur->dmap, page << 12, 4096)) /* remapped read-only on demand */
            xbt_direct_window_drop(vm, page << 12, 4096);
    }
}

void xbt_unprotect_code_page(xbt_vm *vm, uint32_t page)
{
    if ((uint64_t)page >= vm->ram_size >> 12 || !vm->code_prot[page])
        return;
    vm->code_prot[page] = 0;
    if (!vm->window_paged)
        mprotect(vm->kbase + ((uint64_t)page << 12), 4096, PROT_READ | PROT_WRITE);
}

uint8_t *xbt_current_window(const struct xbt_vcpu *v)
{
    return (xbt_paging(v) && v->cpl == 3) ? v->vm->ubase : v->vm->kbase;
}

static struct xbt_wmap *wmap_of(xbt_vm *vm, struct xbt_wset *w, int win)
{
    (void)vm;
    return win == XBT_WINDOW_D ? &w->dmap : &w->wmap[win];
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

void xbt_wmap_note(xbt_vm *vm, int win, uint32_t lin, uint32_t len)
{
    struct xbt_wmap *m = wmap_of(vm, vm->cur, win);
    bits_set(m->page, m->region, lin, len);
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
            continue;
        }
        for (uint64_t p = a >> 12; p < (b + 4095) >> 12; p++) {
            uint64_t mask = 1ull << (p & 63);
            if (m->page[p >> 6] & mask) {
                any = true;
                m->page[p >> 6] &= ~mask;
            }
        }
    }
    return any;
}

static void unmap_range(uint8_t *base, uint32_t lin, uint64_t len)
{
    mmap(base + lin, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
         -1, 0);
}

/* Empties a window set (its address space assignment stays). */
static void wset_clear(xbt_vm *vm, struct xbt_wset *w)
{
    if (wmap_take(&w->wmap[XBT_WINDOW_K], 0, 4ull << 30) || w->identity)
        unmap_range(w->kbase, 0, 4ull << 30);
    if (wmap_take(&w->wmap[XBT_WINDOW_U], 0, 4ull << 30))
        unmap_range(w->ubase, 0, 4ull << 30);
    if (wmap_take(&w->dmap, 0, 4ull << 30))
        xbt_direct_set_drop(vm, w, 0, 4ull << 30);
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

static void wset_drop(xbt_vm *vm, struct xbt_wset *w, int win, uint32_t lin, uint64_t len)
{
    if (win == XBT_WINDOW_D) {
        if (wmap_take(&w->dmap, lin, len))
            xbt_direct_set_drop(vm, w, lin, len);
    } else if (wmap_take(&w->wmap[win], lin, len)) {
        unmap_range(win == XBT_WINDOW_U ? w->ubase : w->kbase, lin, len);
    }
}

/* [lin, lin + len) leaves all three windows of set w. */
static void wset_drop3(xbt_vm *vm, struct xbt_wset *w, uint32_t lin, uint64_t len)
{
    wset_drop(vm, w, XBT_WINDOW_K, lin, len);
    wset_drop(vm, w, XBT_WINDOW_U, lin, len);
    wset_drop(vm, w, XBT_WINDOW_D, lin, len);
}

void xbt_window_reset(xbt_vm *vm)
{
    bool paged = vm->vcpu && xbt_paging(vm->vcpu);
    for (int k = 0; k < XBT_WSETS; k++) {
        wset_clear(vm, vm->wset[k]);
        vm->wset[k]->cr3 = ~0u;
    }
    if (paged)
        vm->cur->cr3 = xbt_as_key(vm->vcpu); /* what the fills from now on mirror */
    memset(vm->pse_region, 0, sizeof vm->pse_region);
    vm->window_paged = paged;
    if (paged)
        return;
    mmap(vm->kbase, vm->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, vm->memfd, 0);
    vm->cur->identity = true;
    for (uint64_t p = 0; p < vm->ram_size >> 12; p++)
        if (vm->code_prot[p])
            mprotect(vm->kbase + (p << 12), 4096, PROT_READ);
}

bool xbt_window_map_range(xbt_vm *vm, uint8_t *window, uint32_t lin, uint64_t gpa,
                          uint32_t len, bool writable)
{
    void *at = window + lin;
    if (mmap(at, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED | MAP_FIXED, vm->memfd,
             (off_t)gpa) != at)
        return false;
    xbt_wmap_note(vm, window == vm->ubase ? XBT_WINDOW_U : XBT_WINDOW_K, lin, len);
    if (writable && vm->window_paged)
        xbt_rmap_note(vm, window == vm->ubase ? XBT_WINDOW_U : XBT_WINDOW_K, lin, gpa, len);
    return true;
}

bool xbt_window_map(xbt_vm *vm, uint8_t *window, uint32_t lin, uint64_t gpa, bool writable)
{
    return xbt_window_map_range(vm, window, lin & ~0xFFFu, gpa & ~0xFFFull, 4096, writable);
}

void xbt_window_drop(xbt_vm *vm, uint32_t lin, uint32_t len)
{
    wset_drop3(vm, vm->cur, lin, len);
}

void xbt_window_drop_all(xbt_vm *vm, uint32_t lin, uint32_t len)
{
    for (int k = 0; k < XBT_WSETS; k++)
        wset_drop3(vm, vm->wset[k], lin, len);
}

void xbt_window_note(xbt_vm *vm, int win, uint32_t lin, uint32_t len, bool global,
                     uint32_t pde, uint32_t pte0, bool big)
{
    struct xbt_wset *w = vm->cur;
    if (global) {
        bits_set(w->g_page, w->g_region, lin, len);
        return;
    }
    bits_set(w->ng_page, w->ng_region, lin, len);
    if (vm->vcpu && xbt_pae(vm->vcpu)) {
        /* Records hold 32-bit entries: with PAE a switch back drops the address space's
           non-global mappings instead of re-checking them. */
        w->rec_overflow = true;
        return;
    }
    if (w->n_rec == XBT_WREC_CAP) {
        w->rec_overflow = true;
        return;
    }
    w->rec[w->n_rec++] = (struct xbt_wrec){ lin, pde, pte0, (uint16_t)(len >> 12), (uint8_t)win,
                                            big };
}

/* Drops every mapping of w that did not come from a global entry (the way a CR3 load
   flushes a TLB), by the bitmaps. */
static void wset_drop_nonglobal(xbt_vm *vm, struct xbt_wset *w)
{
    for (uint32_t r = 0; r < 1024; r++) {
        uint8_t bit = (uint8_t)(1u << (r & 7));
        if (!(w->ng_region[r >> 3] & bit))
            continue;
        w->ng_region[r >> 3] &= (uint8_t)~bit;
        uint64_t *ng = &w->ng_page[r * 16];
        if (!(w->g_region[r >> 3] & bit)) {
            wset_drop3(vm, w, r << 22, 4u << 20); /* nothing global here */
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
            wset_drop3(vm, w, (r << 22) + (p << 12), (q - p) << 12);
            p = q;
        }
        memset(ng, 0, 128);
    }
    w->n_rec = 0;
    w->rec_overflow = false;
}

static bool ram32(const xbt_vm *vm, uint64_t gpa, uint32_t *v)
{
    if (gpa + 4 > vm->ram_size)
        return false;
    memcpy(v, vm->ram + gpa, 4);
    return true;
}

/* A TLB flush of w's address space: each non-global mapping stays if the directory and
   table entries it came from are unchanged (accessed and dirty bits included: a guest
   that clears them gets them set again by the next access), else it is dropped. */
static void wset_revalidate(xbt_vm *vm, struct xbt_wset *w)
{
    if (w->rec_overflow) {
        wset_drop_nonglobal(vm, w);
        return;
    }
    uint64_t pd = w->cr3 & ~0xFFFu;
    uint32_t keep = 0;
    for (uint32_t k = 0; k < w->n_rec; k++) {
        struct xbt_wrec *e = &w->rec[k];
        uint32_t pde;
        bool ok = ram32(vm, pd + (e->lin >> 22) * 4, &pde) && pde == e->pde;
        if (ok && !e->big) {
            uint64_t pt = pde & ~0xFFFu;
            for (uint32_t i = 0; i < e->npages && ok; i++) {
                uint32_t pte;
                ok = ram32(vm, pt + (((e->lin >> 12) + i) & 0x3FF) * 4, &pte) &&
                     pte == e->pte0 + i * 4096;
            }
        }
        vm->wrec_checked++;
        if (ok) {
            w->rec[keep++] = *e; /* still mapped in its window (the runner's included) */
            continue;
        }
        vm->wrec_dropped++;
        wset_drop(vm, w, e->win, e->lin, (uint64_t)e->npages << 12);
    }
    w->n_rec = keep;
}

void xbt_window_switch(xbt_vm *vm, uint32_t cr3)
{
    struct xbt_wset *w = NULL, *lru = NULL;
    for (int k = 0; k < XBT_WSETS; k++) {
        struct xbt_wset *c = vm->wset[k];
        if (c->cr3 == cr3)
            w = c;
        if (c != vm->cur && (!lru || c->stamp < lru->stamp))
            lru = c;
    }
    /* The outgoing address space's user code must not run on in its runner while
       another is current: its page tables may change without a flush the VMM sees. */
    if (w != vm->cur)
        xbt_runner_park(&vm->cur->runner);
    if (w) {
        wset_revalidate(vm, w);
    } else {
        /* A new address space takes over the least recently used set: its non-global
           mappings go, its global ones (the kernel's) stay, as a TLB keeps them. */
        w = lru ? lru : vm->cur;
        wset_drop_nonglobal(vm, w);
        w->cr3 = cr3;
        w->gen++;
    }
    w->stamp = ++vm->wclock;
    vm->cur = w;
    vm->kbase = w->kbase;
    vm->ubase = w->ubase;
}

/* New epoch for the regions marked in region_bumped; chains into their blocks undone. */
static void bump_regions(struct xbt_vcpu *v)
{
    uint32_t e = ++v->tc_epoch;
    bool any = false;
    for (uint32_t r = 0; r < 1024; r++)
        if (v->region_bumped[r >> 3] & (1u << (r & 7))) {
            v->region_epoch[r] = e;
            v->region_code_ng[r >> 3] &= (uint8_t)~(1u << (r & 7));
            any = true;
        }
    if (!any)
        return;
    xbt_tc_unchain_regions(v->vm->tc, v->region_bumped);
    /* The inline lookup tables forget their entries into these regions only (run.c,
       before the next block runs). */
    for (uint32_t i = 0; i < sizeof v->ibl_bump; i++)
        v->ibl_bump[i] |= v->region_bumped[i];
    v->ibl_bump_pending = true;
    v->unlinked = NULL;
}

void xbt_mapping_changed(struct xbt_vcpu *v, uint32_t lin, uint32_t len)
{
    xbt_stlb_flush(v);
    xbt_vm *vm = v->vm;
    v->stats.window_drops++;
    if (len == 0)
        xbt_window_reset(vm);
    else
        xbt_window_drop_all(vm, lin, len); /* global mappings live in every set */
    /* Translations are keyed by linear EIP and depend only on the physical bytes: they
       stay cached, but none runs or is linked again before the run loop has checked
       that its linear pages still map to the physical pages it was made from.  An
       INVLPG of pages no translation came from changes nothing for them. */
    if (len != 0) {
        memset(v->region_bumped, 0, sizeof v->region_bumped);
        bool code = false;
        for (uint32_t p = lin >> 12; p <= (lin + len - 1) >> 12; p++)
            if (v->code_lin[p >> 3] & (1u << (p & 7))) {
                code = true;
                v->region_bumped[p >> 13] |= (uint8_t)(1u << ((p >> 10) & 7));
            }
        if (code)
            bump_regions(v);
        return;
    }
    v->all_epoch = ++v->tc_epoch;
    xbt_tc_unchain_all(vm->tc);
    v->ibl_stale = true;
    v->unlinked = NULL;
}

void xbt_paging_changed(struct xbt_vcpu *v)
{
    xbt_mapping_changed(v, 0, 0);
}

/* Whether the code pages of region r map as they did at the last CR3 load: the same
   page table entries (A and D aside) for every linear page translated code came from.
   The snapshot is refreshed either way.  A page newly holding code compares against
   whatever the snapshot had (a new epoch, conservatively).  Sound together with
   region_code_moved: between two CR3 loads with the same table, every block checked in
   the region read that table, and one that read an entry other than the snapshot's
   forces the new epoch; so a region that keeps its epoch has only blocks checked under
   the entries it has now. */
static bool ram64(const xbt_vm *vm, uint64_t gpa, uint64_t *v)
{
    if (gpa + 8 > vm->ram_size)
        return false;
    memcpy(v, vm->ram + gpa, 8);
    return true;
}

void xbt_region_key(struct xbt_vcpu *v, uint32_t r, uint64_t key[3])
{
    key[0] = key[1] = key[2] = 0;
    if (!xbt_paging(v))
        return;
    if (!xbt_pae(v)) {
        key[0] = xbt_region_pde(v, r);
        return;
    }
    uint64_t pdpte;
    if (!ram64(v->vm, (uint64_t)(v->cr3 & ~0x1Fu) + (r >> 8) * 8, &pdpte) ||
        !(pdpte & XBT_PTE_P))
        return;
    key[0] = pdpte;
    uint64_t pd = pdpte & 0x0000000FFFFFF000ull;
    for (int k = 0; k < 2; k++)
        if (ram64(v->vm, pd + ((r & 255) * 2 + (uint32_t)k) * 8, &key[1 + k]))
            key[1 + k] &= ~(uint64_t)(XBT_PTE_A | XBT_PTE_D);
}

/* The same, with the region's key already read. */
static bool code_pte_in(struct xbt_vcpu *v, const uint64_t key[3], uint32_t lin, uint32_t *pte)
{
    if (!xbt_pae(v)) {
        uint32_t pde = (uint32_t)key[0];
        uint64_t at = (uint64_t)(pde & ~0xFFFu) + ((lin >> 12) & 0x3FF) * 4;
        if (!(pde & XBT_PTE_P) || (pde & XBT_PTE_PS) || !ram32(v->vm, at, pte))
            return false;
        *pte &= ~(XBT_PTE_A | XBT_PTE_D);
        return true;
    }
    uint64_t pde = key[1 + ((lin >> 21) & 1)], e;
    uint64_t at = (pde & 0x0000000FFFFFF000ull) + ((lin >> 12) & 0x1FF) * 8;
    if (!(pde & XBT_PTE_P) || (pde & XBT_PTE_PS) || !ram64(v->vm, at, &e) || (e >> 32))
        return false;
    *pte = (uint32_t)e & ~(XBT_PTE_A | XBT_PTE_D);
    return true;
}

bool xbt_code_pte(struct xbt_vcpu *v, uint32_t lin, uint32_t *pte)
{
    uint64_t key[3];
    xbt_region_key(v, lin >> 22, key);
    return code_pte_in(v, key, lin, pte);
}

static bool region_code_same(struct xbt_vcpu *v, uint32_t r, const uint64_t key[3])
{
    if (!v->region_ptes[r]) {
        v->region_ptes[r] = calloc(1024, 4);
        if (!v->region_ptes[r])
            return false;
    }
    uint32_t *snap = v->region_ptes[r];
    bool same = true;
    for (uint32_t w = 0; w < 128; w++) {
        uint8_t bits = v->code_lin[r * 128 + w];
        while (bits) {
            uint32_t i = w * 8 + (uint32_t)__builtin_ctz(bits);
            bits &= (uint8_t)(bits - 1);
            uint32_t pte = 0;
            if (!code_pte_in(v, key, (r << 22) | (i << 12), &pte) || !(pte & XBT_PTE_P)) {
                same = false; /* a large page or no table here: nothing to compare */
                snap[i] = 0;
                continue;
            }
            if (snap[i] != pte) {
                same = false;
                snap[i] = pte;
            }
        }
    }
    return same;
}

void xbt_cr3_changed(struct xbt_vcpu *v)
{
    xbt_stlb_flush(v);
    v->stats.window_drops++;
    bool pge = v->cr4 & XBT_CR4_PGE;
    xbt_window_switch(v->vm, xbt_as_key(v));
    /* A region keeps its epoch when all its code was checked under global entries
       (CR4.PGE: they survive the load), or its paging-structure entries (the directory
       entry; PAE: the PDPTE and both directory entries) are what its code was checked
       under and they name a large page (nothing in it can differ) or tables in which
       every code page's entry is what it was at the last CR3 load.  Anything else
       starts a new epoch. */
    memset(v->region_bumped, 0, sizeof v->region_bumped);
    for (uint32_t r = 0; r < 1024; r++) {
        if (!(v->code_region[r >> 3] & (1u << (r & 7))))
            continue;
        uint64_t key[3];
        xbt_region_key(v, r, key);
        bool same_key = memcmp(key, v->region_key[r], sizeof key) == 0;
        const uint64_t large = XBT_PTE_P | XBT_PTE_PS; /* a present large page */
        bool big = xbt_pae(v) ? (key[1] & large) == large && (key[2] & large) == large
                              : (v->cr4 & XBT_CR4_PSE) && (key[0] & large) == large;
        bool global_code = pge && !(v->region_code_ng[r >> 3] & (1u << (r & 7)));
        bool moved = v->region_code_moved[r >> 3] & (1u << (r & 7));
        v->region_code_moved[r >> 3] &= (uint8_t)~(1u << (r & 7));
        bool same_table = same_key && !big && (key[0] & XBT_PTE_P) &&
                          region_code_same(v, r, key) && !moved;
        /* Global translations survive a CR3 load whatever the new tables say. */
        if (!(global_code || (same_key && (big || same_table))))
            v->region_bumped[r >> 3] |= (uint8_t)(1u << (r & 7));
        memcpy(v->region_key[r], key, sizeof key);
    }
    bump_regions(v);
}
