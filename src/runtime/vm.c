/*
 * vm.c - VM and vCPU objects: guest RAM (one memfd), the K-window, register access.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vcpu.h"

static __thread const char *last_host_error = "";

const char *xbt_last_host_error(void)
{
    return last_host_error;
}

#define GIB (1ull << 30)

xbt_status xbt_vm_create(const xbt_vm_config *cfg, xbt_vm **out)
{
    if (!out || !cfg)
        return XBT_E_INVAL;
    *out = NULL;
    if (cfg->ram_size == 0 || (cfg->ram_size & 0xFFF) || cfg->ram_size > 3 * GIB ||
        cfg->user_mode > XBT_USER_ADAPTIVE)
        return XBT_E_INVAL;
    if (!xbt_signals_init()) {
        last_host_error = "cannot install signal handlers";
        return XBT_E_HOST;
    }
    xbt_vm *vm = calloc(1, sizeof *vm);
    if (!vm)
        return XBT_E_NOMEM;
    vm->cfg = *cfg;
    vm->ram_size = cfg->ram_size;
    vm->memfd = memfd_create("xbt-guest-ram", MFD_CLOEXEC);
    if (vm->memfd < 0 || ftruncate(vm->memfd, (off_t)vm->ram_size) != 0) {
        last_host_error = "memfd_create/ftruncate failed";
        goto host_fail;
    }
    vm->ram = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->memfd, 0);
    if (vm->ram == MAP_FAILED) {
        vm->ram = NULL;
        last_host_error = "cannot map guest RAM";
        goto host_fail;
    }
    /* Window sets, one per recent address space: each a K-window and a user window of
       4 GiB aligned to 4 GiB, carved from 8 GiB PROT_NONE reservations. */
    for (int k = 0; k < XBT_WSETS; k++) {
        struct xbt_wset *w = calloc(1, sizeof *w);
        if (!w || !(w->rec = malloc(XBT_WREC_CAP * sizeof *w->rec))) {
            free(w);
            last_host_error = "cannot allocate the window sets";
            goto host_fail;
        }
        vm->wset[k] = w;
        w->cr3 = ~0u;
        w->kreserve = mmap(NULL, 8 * GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
        w->ureserve = mmap(NULL, 8 * GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
        if (w->kreserve == MAP_FAILED || w->ureserve == MAP_FAILED) {
            if (w->kreserve == MAP_FAILED)
                w->kreserve = NULL;
            if (w->ureserve == MAP_FAILED)
                w->ureserve = NULL;
            last_host_error = "cannot reserve 16 GiB of address space for a window set";
            goto host_fail;
        }
        w->kbase = (uint8_t *)(((uintptr_t)w->kreserve + 4 * GIB - 1) & ~(4 * GIB - 1));
        w->ubase = (uint8_t *)(((uintptr_t)w->ureserve + 4 * GIB - 1) & ~(4 * GIB - 1));
    }
    vm->cur = vm->wset[0];
    vm->kbase = vm->cur->kbase;
    vm->ubase = vm->cur->ubase;
    /* Paging off: guest linear == physical, so RAM is mapped 1:1 at the window base. */
    if (mmap(vm->kbase, vm->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
             vm->memfd, 0) == MAP_FAILED) {
        last_host_error = "cannot map guest RAM into the K-window";
        goto host_fail;
    }
    vm->cur->identity = true;
    vm->code_prot = calloc(vm->ram_size >> 12, 1);
    uint64_t tcs = cfg->tcache_size ? cfg->tcache_size : 64ull << 20;
    vm->tc = xbt_tc_create(tcs);
    if (!vm->code_prot || !vm->tc) {
        last_host_error = "cannot allocate the translation cache above 4 GiB";
        goto host_fail;
    }
    if (cfg->user_mode != XBT_USER_STRICT) {
        const char *why = NULL;
        if (!xbt_direct_vm_init(vm, &why))
            snprintf(vm->direct_why, sizeof vm->direct_why, "%s", why);
    }
    *out = vm;
    return XBT_OK;
host_fail:
    xbt_vm_destroy(vm);
    return XBT_E_HOST;
}

void xbt_vm_destroy(xbt_vm *vm)
{
    if (!vm)
        return;
    if (vm->vcpu)
        xbt_vcpu_destroy(vm->vcpu);
    xbt_direct_vm_destroy(vm);
    xbt_tc_destroy(vm->tc);
    free(vm->code_prot);
    for (int k = 0; k < XBT_WSETS; k++) {
        struct xbt_wset *w = vm->wset[k];
        if (!w)
            continue;
        if (w->kreserve)
            munmap(w->kreserve, 8 * GIB);
        if (w->ureserve)
            munmap(w->ureserve, 8 * GIB);
        free(w->rec);
        free(w);
    }
    if (vm->ram)
        munmap(vm->ram, vm->ram_size);
    if (vm->memfd >= 0)
        close(vm->memfd);
    free(vm);
}

uint8_t *xbt_vm_ram(xbt_vm *vm)
{
    return vm ? vm->ram : NULL;
}

uint64_t xbt_vm_ram_size(const xbt_vm *vm)
{
    return vm ? vm->ram_size : 0;
}

/* Code pages are write-protected in the window.  Paging off, the window address of a
   physical page is the page itself; paging on, any number of linear pages may map it,
   so protecting drops every mapping (they come back read-only on the next touch) and
   unprotecting leaves the remapping to the next write fault. */
void xbt_protect_code_page(xbt_vm *vm, uint32_t page)
{
    if ((uint64_t)page >= vm->ram_size >> 12 || vm->code_prot[page])
        return;
    vm->code_prot[page] = 1;
    if (vm->window_paged) {
        xbt_window_reset(vm);
    } else {
        mprotect(vm->kbase + ((uint64_t)page << 12), 4096, PROT_READ);
        xbt_direct_window_drop(vm, page << 12, 4096); /* remapped read-only on demand */
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
    return win == XBT_WIN_DIRECT ? &vm->dmap : &w->wmap[win];
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
static void wset_clear(struct xbt_wset *w)
{
    if (wmap_take(&w->wmap[XBT_WIN_KERNEL], 0, 4ull << 30) || w->identity)
        unmap_range(w->kbase, 0, 4ull << 30);
    if (wmap_take(&w->wmap[XBT_WIN_USER], 0, 4ull << 30))
        unmap_range(w->ubase, 0, 4ull << 30);
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
    if (wmap_take(&w->wmap[win], lin, len))
        unmap_range(win == XBT_WIN_USER ? w->ubase : w->kbase, lin, len);
    (void)vm;
}

void xbt_window_reset(xbt_vm *vm)
{
    bool paged = vm->vcpu && xbt_paging(vm->vcpu);
    for (int k = 0; k < XBT_WSETS; k++) {
        wset_clear(vm->wset[k]);
        vm->wset[k]->cr3 = ~0u;
    }
    if (paged)
        vm->cur->cr3 = vm->vcpu->cr3 & ~0xFFFu; /* what the fills from now on mirror */
    if (wmap_take(&vm->dmap, 0, 4ull << 30))
        xbt_direct_window_drop(vm, 0, 4ull << 30);
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
    xbt_wmap_note(vm, window == vm->ubase ? XBT_WIN_USER : XBT_WIN_KERNEL, lin, len);
    return true;
}

bool xbt_window_map(xbt_vm *vm, uint8_t *window, uint32_t lin, uint64_t gpa, bool writable)
{
    return xbt_window_map_range(vm, window, lin & ~0xFFFu, gpa & ~0xFFFull, 4096, writable);
}

void xbt_window_drop(xbt_vm *vm, uint32_t lin, uint32_t len)
{
    wset_drop(vm, vm->cur, XBT_WIN_KERNEL, lin, len);
    wset_drop(vm, vm->cur, XBT_WIN_USER, lin, len);
    if (wmap_take(&vm->dmap, lin, len))
        xbt_direct_window_drop(vm, lin, len);
}

void xbt_window_drop_all(xbt_vm *vm, uint32_t lin, uint32_t len)
{
    for (int k = 0; k < XBT_WSETS; k++) {
        wset_drop(vm, vm->wset[k], XBT_WIN_KERNEL, lin, len);
        wset_drop(vm, vm->wset[k], XBT_WIN_USER, lin, len);
    }
    if (wmap_take(&vm->dmap, lin, len))
        xbt_direct_window_drop(vm, lin, len);
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
            wset_drop(vm, w, XBT_WIN_KERNEL, r << 22, 4u << 20); /* nothing global here */
            wset_drop(vm, w, XBT_WIN_USER, r << 22, 4u << 20);
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
            wset_drop(vm, w, XBT_WIN_KERNEL, (r << 22) + (p << 12), (q - p) << 12);
            wset_drop(vm, w, XBT_WIN_USER, (r << 22) + (p << 12), (q - p) << 12);
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
/* A D-window mapping of this address space, still what its page tables say: map it
   again right away (the D-window holds one address space at a time, so a switch
   empties it; this saves the user code a host fault per page it touches again).
   Writable as the fill made it: RW in both entries and D set, no translated code. */
static void direct_replay(xbt_vm *vm, const struct xbt_wrec *e, uint32_t pde)
{
    uint64_t gpa = e->big ? (pde & 0xFFC00000u) : (e->pte0 & ~0xFFFu);
    uint32_t len = (uint32_t)e->npages << 12;
    if (gpa + len > vm->ram_size)
        return;
    uint32_t leaf = e->big ? pde : e->pte0;
    bool writable = (pde & 2) && (leaf & 2) && (leaf & 0x40);
    for (uint64_t p = gpa >> 12; p < (gpa + len) >> 12 && writable; p++)
        if (vm->code_prot[p])
            writable = false;
    xbt_direct_window_map_range(vm, e->lin, gpa, len, writable);
}

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
        if (ok) {
            w->rec[keep++] = *e;
            if (e->win == XBT_WIN_DIRECT)
                direct_replay(vm, e, pde);
            continue;
        }
        if (e->win != XBT_WIN_DIRECT) /* the D-window was emptied by the switch */
            wset_drop(vm, w, e->win, e->lin, (uint64_t)e->npages << 12);
    }
    w->n_rec = keep;
}

void xbt_window_switch(xbt_vm *vm, uint32_t cr3)
{
    if (wmap_take(&vm->dmap, 0, 4ull << 30))
        xbt_direct_window_drop(vm, 0, 4ull << 30);
    cr3 &= ~0xFFFu;
    struct xbt_wset *w = NULL, *lru = NULL;
    for (int k = 0; k < XBT_WSETS; k++) {
        struct xbt_wset *c = vm->wset[k];
        if (c->cr3 == cr3)
            w = c;
        if (c != vm->cur && (!lru || c->stamp < lru->stamp))
            lru = c;
    }
    if (w) {
        wset_revalidate(vm, w);
    } else {
        /* A new address space takes over the least recently used set: its non-global
           mappings go, its global ones (the kernel's) stay, as a TLB keeps them. */
        w = lru ? lru : vm->cur;
        wset_drop_nonglobal(vm, w);
        w->cr3 = cr3;
    }
    w->stamp = ++vm->wclock;
    vm->cur = w;
    vm->kbase = w->kbase;
    vm->ubase = w->ubase;
}

uint32_t xbt_vm_user_mode(const xbt_vm *vm, const char **why)
{
    if (why)
        *why = NULL;
    if (!vm)
        return XBT_USER_STRICT;
    if (vm->cfg.user_mode == XBT_USER_STRICT || vm->direct_ok)
        return vm->cfg.user_mode;
    if (why)
        *why = vm->direct_why[0] ? vm->direct_why : "direct execution is not available";
    return XBT_USER_STRICT;
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
    v->ibl_stale = true;
    v->unlinked = NULL;
}

void xbt_mapping_changed(struct xbt_vcpu *v, uint32_t lin, uint32_t len)
{
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

void xbt_cr3_changed(struct xbt_vcpu *v)
{
    v->stats.window_drops++;
    bool pge = v->cr4 & XBT_CR4_PGE;
    xbt_window_switch(v->vm, v->cr3);
    /* A region keeps its epoch when its directory entry is the same present 4 MiB page
       (with CR4.PSE) as when its code was last checked: nothing in it can differ.  Any
       other entry (a page table, whose contents may have changed) starts a new one. */
    memset(v->region_bumped, 0, sizeof v->region_bumped);
    for (uint32_t r = 0; r < 1024; r++) {
        if (!(v->code_region[r >> 3] & (1u << (r & 7))))
            continue;
        uint32_t pde = xbt_region_pde(v, r);
        bool big = (v->cr4 & XBT_CR4_PSE) && (pde & 0x81) == 0x81;
        bool global_code = pge && !(v->region_code_ng[r >> 3] & (1u << (r & 7)));
        if (pde != v->region_pde[r] || !(big || global_code))
            v->region_bumped[r >> 3] |= (uint8_t)(1u << (r & 7));
        v->region_pde[r] = pde;
    }
    bump_regions(v);
}

xbt_status xbt_vm_invalidate(xbt_vm *vm, uint64_t gpa, size_t len)
{
    if (!vm || gpa > vm->ram_size || len > vm->ram_size - gpa)
        return XBT_E_INVAL;
    if (len == 0)
        return XBT_OK;
    for (uint64_t p = gpa >> 12; p <= (gpa + len - 1) >> 12; p++) {
        if (vm->code_prot[p]) {
            xbt_tc_invalidate_page(vm->tc, (uint32_t)p);
            xbt_unprotect_code_page(vm, (uint32_t)p);
            if (vm->vcpu)
                vm->vcpu->ibl_stale = true; /* its entries may name dropped blocks */
        }
    }
    return XBT_OK;
}

xbt_status xbt_vm_write_phys(xbt_vm *vm, uint64_t gpa, const void *src, size_t len)
{
    xbt_status s = xbt_vm_invalidate(vm, gpa, len);
    if (s != XBT_OK || !src)
        return s ? s : XBT_E_INVAL;
    memcpy(vm->ram + gpa, src, len);
    return XBT_OK;
}

xbt_status xbt_vm_read_phys(xbt_vm *vm, uint64_t gpa, void *dst, size_t len)
{
    if (!vm || !dst || gpa > vm->ram_size || len > vm->ram_size - gpa)
        return XBT_E_INVAL;
    memcpy(dst, vm->ram + gpa, len);
    return XBT_OK;
}

/* ---- vCPU -------------------------------------------------------------------------- */

static void flat_seg(xbt_segment *s, uint16_t sel, uint8_t type)
{
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->base = 0;
    s->limit = 0xFFFFFFFF;
    s->type = type;
    s->s = 1;
    s->present = 1;
    s->db = 1;
    s->g = 1;
}

xbt_status xbt_vcpu_create(xbt_vm *vm, xbt_vcpu **out)
{
    if (!vm || !out)
        return XBT_E_INVAL;
    *out = NULL;
    if (vm->vcpu)
        return XBT_E_INVAL; /* one vCPU per VM for now */
    xbt_vcpu *v = NULL;
    if (posix_memalign((void **)&v, 64, sizeof *v) != 0)
        return XBT_E_NOMEM;
    memset(v, 0, sizeof *v);
    v->vm = vm;
    bool ok = (v->ibl_miss = aligned_alloc(64, XBT_IBL_ENTRIES * sizeof *v->ibl_miss)) != NULL;
    for (int k = 0; k < XBT_IBL_SETS; k++) {
        v->ibl_sets[k].key = ~0u;
        ok = ok && (v->ibl_sets[k].t = aligned_alloc(64, XBT_IBL_ENTRIES * sizeof *v->ibl)) != NULL;
    }
    if (!ok) {
        for (int k = 0; k < XBT_IBL_SETS; k++)
            free(v->ibl_sets[k].t);
        free(v->ibl_miss);
        free(v);
        return XBT_E_NOMEM;
    }
    for (uint32_t i = 0; i < XBT_IBL_ENTRIES; i++) {
        v->ibl_miss[i].tag = 1ull << 32;
        v->ibl_miss[i].host = (uint64_t)(uintptr_t)xbt_jit_exit_indirect;
        for (int k = 0; k < XBT_IBL_SETS; k++) {
            v->ibl_sets[k].t[i].tag = 1ull << 32;
            v->ibl_sets[k].t[i].host = (uint64_t)(uintptr_t)xbt_jit_exit_indirect;
        }
    }
    v->ibl_cur = &v->ibl_sets[0];
    v->ibl = v->ibl_cur->t;
    xbt_translator_init(&v->xl);
    struct xbt_jit_ctx *c = &v->ctx;
    c->exit_direct = (uint64_t)(uintptr_t)xbt_jit_exit_direct;
    c->exit_indirect = (uint64_t)(uintptr_t)xbt_jit_exit_indirect;
    c->callout = (uint64_t)(uintptr_t)xbt_jit_callout;
    c->callout_fn = (uint64_t)(uintptr_t)xbt_callout_entry;
    c->fpu_entry = (uint64_t)(uintptr_t)xbt_jit_fpu_load;
    c->fpu_loaded = 0;
    c->ibl_table = (uint64_t)(uintptr_t)v->ibl;
    c->kbase = (uint64_t)(uintptr_t)vm->kbase;
    c->eflags_sys = 0x2;
    c->vif = 0;
    c->eflags = 0x2;
    /* A clean x87/SSE image: FCW 0x37F, MXCSR 0x1F80. */
    uint16_t fcw = 0x37F;
    uint32_t mxcsr = 0x1F80;
    memcpy(c->fpu, &fcw, 2);
    memcpy(c->fpu + 24, &mxcsr, 4);
    uint32_t mxcsr_mask = 0xFFFF;
    memcpy(c->fpu + 28, &mxcsr_mask, 4);
    /* Protected mode, paging off, flat segments (the multiboot entry state). */
    v->cr0 = XBT_CR0_PE | XBT_CR0_ET;
    flat_seg(&v->seg[XBT_CS], 0x08, 0xB);
    for (int s = 0; s < XBT_NSEG; s++) {
        if (s != XBT_CS)
            flat_seg(&v->seg[s], 0x10, 0x3);
        c->seg_sel[s] = v->seg[s].selector;
        c->seg_limit[s] = v->seg[s].limit;
    }
    v->ldtr.type = 2;
    v->tr.type = 0xB;
    v->tr.present = 1;
    v->gdtr.limit = 0xFFFF;
    v->idtr.limit = 0xFFFF;
    v->msr_apic_base = 0xFEE00900;
    v->msr_pat = 0x0007040600070406ull;
    vm->vcpu = v;
    *out = v;
    return XBT_OK;
}

void xbt_vcpu_destroy(xbt_vcpu *v)
{
    if (!v)
        return;
    if (v->vm && v->vm->vcpu == v)
        v->vm->vcpu = NULL;
    for (int k = 0; k < XBT_IBL_SETS; k++)
        free(v->ibl_sets[k].t);
    free(v->ibl_miss);
    free(v->avx_area);
    if (v->mmio_scratch) {
        munmap(v->mmio_scratch, 4096);
        close(v->mmio_scratch_fd);
    }
    free(v);
}

xbt_status xbt_vcpu_get_regs(xbt_vcpu *v, xbt_regs *r)
{
    if (!v || !r)
        return XBT_E_INVAL;
    const uint32_t *g = v->ctx.gpr;
    *r = (xbt_regs){ g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], v->ctx.eip,
                     xbt_get_eflags(v) };
    return XBT_OK;
}

xbt_status xbt_vcpu_set_regs(xbt_vcpu *v, const xbt_regs *r)
{
    if (!v || !r)
        return XBT_E_INVAL;
    uint32_t *g = v->ctx.gpr;
    g[0] = r->eax, g[1] = r->ecx, g[2] = r->edx, g[3] = r->ebx;
    g[4] = r->esp, g[5] = r->ebp, g[6] = r->esi, g[7] = r->edi;
    v->ctx.eip = r->eip;
    xbt_set_eflags(v, r->eflags, 0xFFFFFFFF);
    v->io_in_pending = false;
    v->mmio_pending = false;
    v->halted = false;          /* new state from the embedder ends a HLT */
    v->interrupt_shadow = false;
    return XBT_OK;
}

xbt_status xbt_vcpu_get_sregs(xbt_vcpu *v, xbt_sregs *s)
{
    if (!v || !s)
        return XBT_E_INVAL;
    s->es = v->seg[XBT_ES], s->cs = v->seg[XBT_CS], s->ss = v->seg[XBT_SS];
    s->ds = v->seg[XBT_DS], s->fs = v->seg[XBT_FS], s->gs = v->seg[XBT_GS];
    s->tr = v->tr, s->ldt = v->ldtr, s->gdt = v->gdtr, s->idt = v->idtr;
    s->cr0 = v->cr0, s->cr2 = v->cr2, s->cr3 = v->cr3, s->cr4 = v->cr4;
    memcpy(s->dr, v->dr, sizeof s->dr);
    return XBT_OK;
}

xbt_status xbt_vcpu_set_sregs(xbt_vcpu *v, const xbt_sregs *s)
{
    if (!v || !s)
        return XBT_E_INVAL;
    if ((s->cr0 & XBT_CR0_PG) && !(s->cr0 & XBT_CR0_PE))
        return XBT_E_INVAL;
    bool paging_was = xbt_paging(v);
    uint32_t cr3_was = v->cr3, cr4_was = v->cr4, cr0_was = v->cr0;
    v->seg[XBT_ES] = s->es, v->seg[XBT_CS] = s->cs, v->seg[XBT_SS] = s->ss;
    v->seg[XBT_DS] = s->ds, v->seg[XBT_FS] = s->fs, v->seg[XBT_GS] = s->gs;
    for (int i = 0; i < XBT_NSEG; i++) {
        v->ctx.seg_sel[i] = v->seg[i].selector;
        v->ctx.seg_base[i] = v->seg[i].base;
        v->ctx.seg_limit[i] = v->seg[i].limit;
    }
    v->cpl = v->seg[XBT_CS].dpl;
    v->tr = s->tr, v->ldtr = s->ldt, v->gdtr = s->gdt, v->idtr = s->idt;
    v->cr0 = s->cr0 | XBT_CR0_ET, v->cr2 = s->cr2, v->cr3 = s->cr3, v->cr4 = s->cr4;
    memcpy(v->dr, s->dr, sizeof v->dr);
    if (paging_was != xbt_paging(v) ||
        (xbt_paging(v) && (cr3_was != v->cr3 || ((cr4_was ^ v->cr4) & 0x90) ||
                           ((cr0_was ^ v->cr0) & 0x10000))))
        xbt_paging_changed(v);
    return XBT_OK;
}

xbt_status xbt_vcpu_get_msr(xbt_vcpu *v, uint32_t index, uint64_t *value)
{
    if (!v || !value)
        return XBT_E_INVAL;
    extern bool xbt_msr_read(xbt_vcpu *v, uint32_t index, uint64_t *value);
    return xbt_msr_read(v, index, value) ? XBT_OK : XBT_E_INVAL;
}

xbt_status xbt_vcpu_set_msr(xbt_vcpu *v, uint32_t index, uint64_t value)
{
    if (!v)
        return XBT_E_INVAL;
    extern bool xbt_msr_write(xbt_vcpu *v, uint32_t index, uint64_t value);
    return xbt_msr_write(v, index, value) ? XBT_OK : XBT_E_INVAL;
}

xbt_status xbt_vcpu_set_irq_source(xbt_vcpu *v, xbt_irq_fn fn, void *opaque)
{
    if (!v)
        return XBT_E_INVAL;
    v->irq_fn = fn;
    v->irq_opaque = opaque;
    return XBT_OK;
}

xbt_status xbt_vcpu_get_stats(xbt_vcpu *v, xbt_stats *st)
{
    if (!v || !st)
        return XBT_E_INVAL;
    *st = v->stats;
    xbt_tc_stats t;
    xbt_tc_get_stats(v->vm->tc, &t);
    st->blocks = t.blocks;
    st->block_bytes = t.block_bytes;
    st->guest_insns_translated = t.guest_insns;
    st->chains = t.chains;
    st->unchains = t.unchains;
    st->lookups = t.lookups;
    st->lookup_hits = t.hits;
    st->flushes = t.flushes;
    st->invalidations = t.invalidations;
    return XBT_OK;
}
