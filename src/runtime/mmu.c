/*
 * mmu.c - the runtime's side of the shadow MMU (shadow-mmu/smmu.h): host faults in a
 * window walked against the guest's tables and turned into a fill, a guest #PF, an MMIO
 * access or the handling of a write to translated code; and the consequences of a
 * mapping change for what the runtime caches (chains, inline lookup tables, the
 * software TLB of its own accesses).
 */
#define _GNU_SOURCE
#include <string.h>

#include "runtime/vcpu.h"
#include "shadow-mmu/walk.h"

/* Walker callbacks for a walk that writes nothing: entries from RAM. */
bool xbt_vm_pt_read(void *opaque, uint64_t gpa, uint32_t *val)
{
    const xbt_vm *vm = opaque;
    const uint8_t *h = xbt_phys_r(&vm->phys, gpa, 4);
    if (!h)
        return false;
    memcpy(val, h, 4);
    return true;
}

static bool quiet_write(void *opaque, uint64_t gpa, uint32_t val)
{
    (void)opaque, (void)gpa, (void)val;
    return true; /* accessed and dirty bits stay as the guest left them */
}

static int probe_walked(struct xbt_vcpu *v, int win, uint32_t lin, bool write,
                        const xbt_walk_result *walk);

/* A walk that writes nothing and notes whether it would have written an entry. */
struct settled_walk {
    const xbt_vm *vm;
    bool would_write;
};

static bool settled_read(void *opaque, uint64_t gpa, uint32_t *val)
{
    return xbt_vm_pt_read((void *)((struct settled_walk *)opaque)->vm, gpa, val);
}

static bool settled_write(void *opaque, uint64_t gpa, uint32_t val)
{
    (void)gpa, (void)val;
    ((struct settled_walk *)opaque)->would_write = true;
    return true;
}

bool xbt_walk_settled(const struct xbt_vcpu *v, uint32_t lin, bool write, bool user,
                      bool fetch, xbt_walk_result *r)
{
    xbt_walk_req q = { v->arch.cr0, v->arch.cr3, v->arch.cr4, lin, write, user, fetch, false };
    struct settled_walk p = { v->vm, false };
    return xbt_walk(&q, settled_read, settled_write, &p, r) && !p.would_write;
}

bool xbt_walk_quiet(const struct xbt_vcpu *v, uint32_t lin, bool user, bool fetch,
                    xbt_walk_result *r)
{
    xbt_walk_req q = { v->arch.cr0, v->arch.cr3, v->arch.cr4, lin, false, user, fetch, false };
    return xbt_walk(&q, xbt_vm_pt_read, quiet_write, v->vm, r);
}

/* The regions the shadow MMU gave a new epoch (m->region_bumped): chains into their
   blocks undone, and the inline lookup tables forget their entries there (run.c, before
   the next block runs).  Everything: all chains and tables. */
static void epochs_bumped(struct xbt_vcpu *v, int what)
{
    xbt_smmu *m = v->mmu;
    if (what == XBT_SMMU_UNCHANGED)
        return;
    /* (v->unlinked stays: begin_dispatch relinks what is still chained, and a chain
       within pages survives the epoch, which would otherwise stay unpatched.) */
    if (what == XBT_SMMU_ALL) {
        xbt_tc_unchain_all(v->tc);
        v->ibl_stale = true;
        xbt_ibl_drop_alt(v, NULL);
        return;
    }
    /* Regions whose context was set aside or restored (smmu.h, region_alt_*) switch
       their chains; the others bumped lose every chain into them. */
    uint8_t plain[sizeof m->region_bumped];
    bool any = false;
    for (uint32_t i = 0; i < sizeof plain; i++) {
        plain[i] = m->region_bumped[i] & (uint8_t)~(m->region_alt_keep[i] | m->region_alt_restore[i]);
        any |= plain[i] != 0;
    }
    if (any)
        xbt_tc_unchain_regions(v->tc, plain);
    xbt_tc_switch_regions(v->tc, m->region_alt_keep, m->region_alt_restore);
    xbt_tc_unchain_into(v->tc, m->region_hidden);
    bool kept = xbt_ibl_regions_changed(v);
    for (uint32_t i = 0; i < sizeof v->ibl_bump; i++)
        v->ibl_bump[i] |= kept ? plain[i] : m->region_bumped[i] | m->region_hidden[i];
    v->ibl_bump_pending = true;
}

void xbt_code_seen(struct xbt_vcpu *v, uint32_t lin0, uint32_t lin1, const xbt_code_walk *w0,
                   const xbt_code_walk *w1)
{
    xbt_smmu *m = v->mmu;
    xbt_smmu_code_seen(m, xbt_paging_regs(v), lin0, lin1, w0, w1);
    if (m->region_revived) {
        /* A region absent at the last load, mapped again since: a new epoch. */
        m->region_revived = false;
        epochs_bumped(v, XBT_SMMU_REGIONS);
    }
    if (m->region_alt_drop_any) {
        /* A context set aside can run here now: its chains go before this block runs. */
        xbt_tc_drop_alt(v->tc, m->region_alt_drop);
        xbt_ibl_drop_alt(v, m->region_alt_drop);
        memset(m->region_alt_drop, 0, sizeof m->region_alt_drop);
        m->region_alt_drop_any = false;
    }
}

bool xbt_mapping_changed(struct xbt_vcpu *v, uint32_t lin, uint32_t len)
{
    xbt_stlb_flush(v);
    if (len == 0)
        v->smap.n = 0, v->smap.overflow = false; /* every window emptied */
    v->stats.window_drops++;
    int what = xbt_smmu_mapping_changed(v->mmu, xbt_paging_regs(v), lin, len);
    epochs_bumped(v, what);
    return what != XBT_SMMU_UNCHANGED;
}

void xbt_paging_changed(struct xbt_vcpu *v)
{
    xbt_mapping_changed(v, 0, 0);
}

static void spec_recheck(struct xbt_vcpu *v);

void xbt_cr3_changed(struct xbt_vcpu *v)
{
    xbt_stlb_flush(v);
    v->stats.window_drops++;
    epochs_bumped(v, xbt_smmu_cr3_changed(v->mmu, xbt_paging_regs(v)));
    spec_recheck(v); /* a directory entry's accessed flag set (shadow-mmu/window.c) */
}

/* Whether this data-beside-code write to physical page `page` makes the page data
   again (its translations dropped, as for self-modifying code) instead of one more
   round of a host fault, a single step with the page writable and a window drop, about
   100,000 cycles on this kind of host (a VM: each drop is an mmap): the
   XBT_SMC_DATA_LIMIT-th such write since the page was last made data (3 rounds, then
   the 4th write), at most XBT_SMC_DATA_GIVEUP times per page while its slot holds it.
   Linux patches its text early in its boot (alternatives, memcpy into pages whose
   other code already ran): 5,250 such writes, 91% of them to 169 pages that took 8 or
   more; now 1,330 rounds, pages made data again 340 times, whose code ran again from
   640 new translations (about 13,000 cycles each).  Those protect the page again.  A
   page whose hot code and data alternate would pay a drop and a retranslation of every
   block of it that runs after each 3 rounds (a review measured 2.8x its time with 40
   blocks, 7.7x with 300, and the cache filled with dropped code): after
   XBT_SMC_DATA_GIVEUP drops it keeps the rounds, as before. */
static bool data_written_often(struct xbt_vcpu *v, uint32_t page)
{
    uint32_t h = (page * 0x9E3779B1u) >> (32 - 8);
    _Static_assert(XBT_SMC_DATA_SLOTS == 1u << 8, "data_written_often's hash");
    if (v->smc.often[h].page1 != page + 1)
        v->smc.often[h].page1 = page + 1, v->smc.often[h].n = v->smc.often[h].made = 0;
    if (v->smc.often[h].made >= XBT_SMC_DATA_GIVEUP || ++v->smc.often[h].n < XBT_SMC_DATA_LIMIT)
        return false;
    v->smc.often[h].n = 0;
    v->smc.often[h].made++;
    v->stats.smc_data_pages++;
    return true;
}

/* A write to a page holding translated code, from translated code (K- or U-window) at
   linear lin of physical page `page`.  Data beside code (the 16 bytes at the fault hold
   no translated code): the page keeps its translations and the writing instruction runs
   alone with the page writable, compared afterwards (true: map it writable).
   Otherwise self-modifying code through any alias: the page's translations are dropped
   and the writing instruction runs alone, uncached. */
static bool code_page_write(struct xbt_vcpu *v, uint32_t page, uint32_t lin, bool paged)
{
    uint32_t off = lin & 0xFFF, len = 4096 - off < 16 ? 4096 - off : 16;
    xbt_code_own_drop(v, page); /* doomed already: not code to keep beside the data */
    /* One step at a time: while one is under way (a string store from one page's data
       into the next's, or through another alias) it keeps its snapshot, and this write
       takes the self-modifying code's way (a review found a second snapshot replacing
       the first, whose page then stayed writable with its translations; smc_data_end
       finds a page dropped meanwhile). */
    if (!xbt_code_at(v, page, off, len) && !v->smc.data && !data_written_often(v, page)) {
        xbt_smc_data_begin(v, page, lin, paged);
        return true;
    }
    xbt_code_written(v->vm, v, (uint64_t)page << 12, 4096, true);
    v->smc.single = true;
    return false;
}

/* No RAM at gpa: an MMIO access from translated code (or an internal error naming the
   instruction); from the D-window, the translator runs it and makes the exit. */
static int mmio_fault(struct xbt_vcpu *v, int win, uint32_t lin, uint64_t gpa)
{
    if (win == XBT_WINDOW_D)
        return XBT_WF_TRANSLATE;
    xbt_mmio_note_fault(v);
    xbt_mmio_begin(v, lin, gpa);
    return (v->mmio.run || v->mmio.raised || v->mmio.synced) ? XBT_WF_DONE : XBT_WF_EXIT;
}

/* Paging off: linear is physical, the K-window maps the slots 1:1 (code pages, ROM and
   clean pages of dirty-logged slots fault on a write) and the D-window takes every
   page. */
static int unpaged_fault(struct xbt_vcpu *v, int win, uint32_t lin)
{
    xbt_smmu *m = v->mmu;
    bool write = v->fault_err & XBT_PF_W;
    uint32_t page = lin >> 12;
    if (!xbt_gpa_mem(v->vm, lin, write))
        return mmio_fault(v, win, lin, lin); /* no RAM, or a write to ROM */
    if (write)
        xbt_phys_log(&v->vm->phys, lin, 1);
    if (win == XBT_WINDOW_D) {
        if (write && m->code_prot[page])
            xbt_code_written(v->vm, v, (uint64_t)page << 12, 4096, true);
        bool fetch = (v->fault_err & XBT_PF_I) && !write;
        bool writable = !m->code_prot[page] && !fetch && xbt_phys_write_ok(&v->vm->phys, page);
        int rc = xbt_direct_map(v->vm, lin & ~0xFFFu, lin & ~0xFFFu, 4096, writable,
                                fetch ? (int64_t)lin : -1);
        if (rc == XBT_DMAP_XLATE)
            xbt_direct_page_translated(v, v->ctx.eip);
        if (rc != XBT_DMAP_OK)
            return XBT_WF_TRANSLATE;
        v->stats.hidden_faults++;
        return XBT_WF_DONE;
    }
    bool watched = win == XBT_WINDOW_K && v->dbg.n_wp && xbt_watch_fault(v, lin, write, false);
    if (win == XBT_WINDOW_K && write && xbt_code_bits(m, page)) {
        if (code_page_write(v, page, lin, false))
            xbt_identity_protect(m, page, true); /* until the step is compared */
        return XBT_WF_DONE;
    }
    if (watched) { /* for the one instruction; a write after a read faults again */
        xbt_identity_protect(m, page, write);
        return XBT_WF_DONE;
    }
    if (win == XBT_WINDOW_K && write && (xbt_phys_kind(&v->vm->phys, lin) & XBT_PP_LOG)) {
        /* The first write to a page of a dirty-logged slot since its log was read
           (logged above): writable from now on. */
        xbt_identity_protect(m, page, true);
        return XBT_WF_DONE;
    }
    if (win == XBT_WINDOW_K && write && xbt_phys_write_ok(&v->vm->phys, page)) {
        /* Read-only for code that is gone: another vCPU's write dropped it (smp.c).
           Or code again: a translator set its bit since the test above (several
           vCPUs), and the write, run again, faults into code_page_write. */
        if (!xbt_code_bits(m, page) && xbt_code_before_writable(v, page))
            xbt_identity_protect(m, page, true); /* doomed code, drops in flight: smp.c */
        return XBT_WF_DONE;
    }
    return xbt_raise(v, XBT_GP, true, 0, v->ctx.eip) ? XBT_WF_DONE : XBT_WF_EXIT;
}

/*
 * SMAP.  With CR4.SMAP set and EFLAGS.AC clear the walk refuses the K-window every user
 * page (a guest #PF), so translated kernel code, which reaches guest memory only
 * through that window, touches none.  With AC set it may; each 4 MiB region where the
 * K-window got a user page is noted (a fill maps runs within one page table or one
 * large page, so within the region), and before K-window code runs with AC clear
 * again those regions leave the K-window (xbt_smap_sync: at the run loop's entry to a
 * block and after every full callout; the fast POPF declines a change of AC while
 * regions are noted).  Turning CR4.SMAP on empties every window.
 */
static void smap_note(struct xbt_vcpu *v, uint32_t lin)
{
    uint16_t region = (uint16_t)(lin >> 22);
    for (unsigned i = 0; i < v->smap.n; i++)
        if (v->smap.region[i] == region)
            return;
    if (v->smap.n < XBT_SMAP_REGIONS)
        v->smap.region[v->smap.n++] = region;
    else
        v->smap.overflow = true;
}

void xbt_smap_drop(struct xbt_vcpu *v)
{
    if (!xbt_paging(v)) {
        /* Nothing noted is mapped (a paging change emptied the windows), and the
           identity K-window must stay whole. */
    } else if (v->smap.overflow) {
        xbt_window_drop_k(v->mmu, 0, 1ull << 32);
    } else {
        for (unsigned i = 0; i < v->smap.n; i++)
            xbt_window_drop_k(v->mmu, (uint32_t)v->smap.region[i] << 22, 4u << 20);
    }
    v->smap.n = 0;
    v->smap.overflow = false;
    v->stats.window_drops++;
}

/*
 * A host fault in a window with guest paging on: a hidden fault (the page is mapped
 * in the guest's tables, just not yet in the window: map it and retry), a true guest
 * page fault (#PF with CR2 and the error code), MMIO, or a write to a page holding
 * translated code.  Clean pages are mapped read-only so that the first write comes back
 * here and sets the dirty bit.
 */
/* A walk of an access at lin refused it: the guest's #PF with CR2 and the walker's error
   code (true), or false with an exit recorded (page tables outside RAM, a triple
   fault). */
static bool walk_refused(struct xbt_vcpu *v, uint32_t lin, const xbt_walk_result *r)
{
    if (r->bus_error) {
        xbt_set_internal_error(v, v->ctx.eip, "guest page tables for %08x are not in RAM", lin);
        return false;
    }
    v->arch.cr2 = lin;
    v->stats.page_faults++;
    return xbt_raise(v, XBT_PF, true, r->error_code, v->ctx.eip);
}

/* A fill that set accessed flags in a page table for its neighbours (fault.c) wrote
   guest memory as a walk does: another vCPU that began translating code from that page
   after the fill's check may have read the old bytes (xbt_code_recheck). */
static void spec_recheck(struct xbt_vcpu *v)
{
    if (v->mmu->spec_pt != XBT_SPEC_PT_NONE)
        xbt_code_recheck(v->vm, v, v->mmu->spec_pt, 4096, true);
}

static int paged_fault(struct xbt_vcpu *v, int win, uint32_t lin)
{
    xbt_vm *vm = v->vm;
    xbt_smmu *m = v->mmu;
    bool write = v->fault_err & XBT_PF_W;
    bool user = win != XBT_WINDOW_K;
    xbt_walk_result r;
    if (!xbt_walk_lin(v, lin, write, user ? XBT_ACC_USER : XBT_ACC_SUP, false, &r)) {
        uint32_t eip = v->ctx.eip; /* the faulting instruction's (the handler's after) */
        uint16_t cs = v->arch.seg[XBT_CS].selector;
        if (!walk_refused(v, lin, &r))
            return XBT_WF_EXIT;
        if (win != XBT_WINDOW_D) { /* for the instruction's return: xbt_pf_refill */
            v->refill.ttl = XBT_REFILL_TTL;
            v->refill.lin = lin;
            v->refill.eip = eip;
            v->refill.cs = cs;
            v->refill.cr3 = v->arch.cr3;
            v->refill.win = (uint8_t)win;
            v->refill.write = write;
        }
        return XBT_WF_DONE;
    }
    if (!xbt_gpa_mem(vm, r.gpa, write))
        return mmio_fault(v, win, lin, r.gpa); /* no RAM, or a write to ROM */
    if (win == XBT_WINDOW_K && r.user && (v->arch.cr4 & XBT_CR4_SMAP))
        smap_note(v, lin); /* EFLAGS.AC is set: the walk let it in */
    uint32_t page = (uint32_t)(r.gpa >> 12);
    if (write)
        xbt_phys_log(&vm->phys, r.gpa, 1);
    bool data_write = false;
    bool watched = win != XBT_WINDOW_D && v->dbg.n_wp && xbt_watch_fault(v, lin, write, true);
    if (write && m->code_prot[page] && win == XBT_WINDOW_D)
        return XBT_WF_TRANSLATE; /* the writing instruction runs once translated */
    if (write && m->code_prot[page])
        data_write = code_page_write(v, page, lin, true);
    bool writable = r.writable && (r.dirty || write) && (!m->code_prot[page] || data_write) &&
                    xbt_phys_write_ok(&vm->phys, page) && (!watched || write);
    if (writable && !data_write && !xbt_code_before_writable(v, page))
        writable = false; /* code again: the write, run again, faults into code_page_write */
    /* The D-window keeps W^X: an instruction fetch maps the page read-only and
       executable, a later write read-write again (direct.c). */
    bool fetch = win == XBT_WINDOW_D && (v->fault_err & XBT_PF_I) && !write;
    if (fetch)
        writable = false;
    int rc = xbt_smmu_fill(m, xbt_paging_regs(v), win, lin, &r, writable, fetch, !v->smc.single);
    spec_recheck(v);
    if (rc == XBT_DMAP_FAIL && win != XBT_WINDOW_D) {
        xbt_set_internal_error(v, v->ctx.eip, "cannot map guest page %08x", lin);
        return XBT_WF_EXIT;
    }
    if (rc == XBT_DMAP_FAIL)
        return XBT_WF_TRANSLATE; /* below mmap_min_addr */
    if (v->dbg.n_wp && win != XBT_WINDOW_D)
        xbt_watch_filled(v); /* neighbours filled with it: watched pages out again */
    v->stats.hidden_faults++;
    if (rc == XBT_DMAP_XLATE) {
        /* Code the host CPU would answer for the virtual one (CPUID ...): this page
           runs translated in this address space. */
        xbt_direct_page_translated(v, v->ctx.eip);
        return XBT_WF_TRANSLATE;
    }
    return XBT_WF_DONE;
}

/*
 * A guest page fault raised for a host fault in a window is most often answered by a
 * handler that makes the page present (or writable) and returns to the faulting
 * instruction, which would then fault on the host a second time only for the window to
 * be filled: a host signal (about 6,000 cycles here) for nothing the guest sees.  So when
 * the dispatcher is about to run that instruction again (same EIP and CS, same CR3),
 * the page goes into the window first, as that second fault would map it, provided the
 * access now succeeds without the walk setting an accessed or dirty bit (Linux sets both
 * when it fixes a fault): a TLB may hold such an entry at any time.  The fill is a
 * hidden fault's, so neighbours that differ only by a clear accessed bit may join it
 * with A set (speculatively, as every fill does: SDM vol. 3, 4.10.2.3), and a store's
 * page is marked in the dirty log before the store; the record matches by CS:EIP, so
 * it may also serve a later run of the instruction that goes elsewhere: a speculative
 * fill as well.  Anything xbt_window_probe leaves to the fault (MMIO, a write to
 * translated code, watchpoints, SMAP) is left to it here too.  The same for directly
 * run code: direct.c, refault_map.
 */
void xbt_pf_refill(struct xbt_vcpu *v)
{
    if (--v->refill.ttl == 0 || v->ctx.eip != v->refill.eip ||
        v->arch.seg[XBT_CS].selector != v->refill.cs)
        return;
    v->refill.ttl = 0;
    xbt_walk_result r;
    bool user = v->refill.win != XBT_WINDOW_K;
    if (!xbt_paging(v) || v->arch.cr3 != v->refill.cr3 || (user && v->arch.cpl != 3) ||
        !xbt_walk_settled(v, v->refill.lin, v->refill.write, user, false, &r))
        return;
    if (probe_walked(v, v->refill.win, v->refill.lin, v->refill.write, &r) == XBT_WP_MAPPED)
        v->stats.refills++;
}

int xbt_window_fault(struct xbt_vcpu *v, int win, uint32_t lin)
{
    return xbt_paging(v) ? paged_fault(v, win, lin) : unpaged_fault(v, win, lin);
}

int xbt_window_soft(struct xbt_vcpu *v, int win, uint32_t lin, bool write, uint32_t size,
                    uint8_t **host)
{
    xbt_vm *vm = v->vm;
    /* One page; no watchpoint (the window's fault reports it). */
    if (!xbt_paging(v) || win == XBT_WINDOW_D || v->dbg.n_wp || size == 0 ||
        (lin & 0xFFF) + size > 4096 ||
        (win == XBT_WINDOW_K && (v->arch.cr4 & XBT_CR4_SMAP)))
        return xbt_window_probe(v, win, lin, write);
    if (!xbt_window_churns(v->mmu, lin)) {
        /* With several vCPUs, a read of a page the walk would let the access write but
           whose dirty flag is clear goes without the window too (struct xbt_smmu's
           clean): mapped read-only now, its first write would be a TLB flush on every
           CPU. */
        xbt_walk_result q;
        if (write || !v->mmu->clean_alone ||
            !xbt_walk_quiet(v, lin, win != XBT_WINDOW_K, false, &q) || !q.writable ||
            q.dirty || !xbt_window_clean_read(v->mmu, lin))
            return xbt_window_probe(v, win, lin, write);
    }
    /* The walk through the software TLB (excp.c: emptied at every TLB-flushing event, as
       a TLB is; a miss walks and sets the accessed and dirty flags); one it refuses is
       walked again by the probe, which raises the #PF. */
    uint64_t gpa;
    if (!xbt_lin_gpa(v, lin, write, win == XBT_WINDOW_K ? XBT_ACC_SUP : XBT_ACC_USER, &gpa))
        return xbt_window_probe(v, win, lin, write);
    /* A store as through a writable mapping (smp.c; as xbt_window_probe looks): no
       vCPU's bit on the page, then the writer rules (this vCPU's doomed code dropped,
       other writers' drops waited for, its own requests carried out), then still none.
       A translator that sets its bit after this look waits for this vCPU to leave
       translated code before it reads the bytes, and the store is made before that. */
    if (!xbt_gpa_mem(vm, gpa, write) ||
        (write && (xbt_code_page(v->mmu, gpa >> 12) ||
                   !xbt_code_before_writable(v, (uint32_t)(gpa >> 12)))))
        return XBT_WP_ACCESS; /* the window's fault decides (as xbt_window_probe) */
    uint8_t *h = write ? xbt_phys_w(&vm->phys, gpa, size) : xbt_phys_r(&vm->phys, gpa, size);
    if (!h)
        return XBT_WP_ACCESS;
    v->stats.soft_accesses++;
    *host = h;
    return XBT_WP_SOFT;
}

int xbt_window_probe(struct xbt_vcpu *v, int win, uint32_t lin, bool write)
{
    if (!xbt_paging(v) || win == XBT_WINDOW_D)
        return XBT_WP_ACCESS;
    xbt_walk_result r;
    if (!xbt_walk_lin(v, lin, write, win == XBT_WINDOW_K ? XBT_ACC_SUP : XBT_ACC_USER, false,
                      &r))
        return walk_refused(v, lin, &r) ? XBT_WP_RAISED : XBT_WP_EXIT;
    return probe_walked(v, win, lin, write, &r);
}

/* xbt_window_probe's fill after the walk r that allowed the access (paging on, K or U). */
static int probe_walked(struct xbt_vcpu *v, int win, uint32_t lin, bool write,
                        const xbt_walk_result *walk)
{
    xbt_vm *vm = v->vm;
    xbt_smmu *m = v->mmu;
    xbt_walk_result r = *walk;
    /* What paged_fault does beyond a plain fill is left to it: the access faults. */
    uint32_t page = (uint32_t)(r.gpa >> 12);
    if (!xbt_gpa_mem(vm, r.gpa, write) || (write && xbt_code_page(m, page)) || v->dbg.n_wp ||
        (win == XBT_WINDOW_K && r.user && (v->arch.cr4 & XBT_CR4_SMAP)))
        return XBT_WP_ACCESS;
    if (write)
        xbt_phys_log(&vm->phys, r.gpa, 1);
    bool writable = r.writable && (r.dirty || write) && !xbt_code_page(m, page) &&
                    xbt_phys_write_ok(&vm->phys, page);
    if (writable && !xbt_code_before_writable(v, page)) {
        if (write)
            return XBT_WP_ACCESS; /* code again: the access faults into paged_fault */
        writable = false;
    }
    int rc = xbt_smmu_fill(m, xbt_paging_regs(v), win, lin, &r, writable, false, !v->smc.single);
    spec_recheck(v);
    if (rc != XBT_DMAP_OK)
        return XBT_WP_ACCESS;
    v->stats.hidden_faults++;
    return XBT_WP_MAPPED;
}
