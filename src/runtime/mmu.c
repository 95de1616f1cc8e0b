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

/* The regions the shadow MMU gave a new epoch (m->region_bumped): chains into their
   blocks undone, and the inline lookup tables forget their entries there (run.c, before
   the next block runs).  Everything: all chains and tables. */
static void epochs_bumped(struct xbt_vcpu *v, int what)
{
    xbt_smmu *m = v->mmu;
    if (what == XBT_SMMU_UNCHANGED)
        return;
    v->unlinked = NULL;
    if (what == XBT_SMMU_ALL) {
        xbt_tc_unchain_all(v->vm->tc);
        v->ibl_stale = true;
        return;
    }
    xbt_tc_unchain_regions(v->vm->tc, m->region_bumped);
    for (uint32_t i = 0; i < sizeof v->ibl_bump; i++)
        v->ibl_bump[i] |= m->region_bumped[i];
    v->ibl_bump_pending = true;
}

void xbt_mapping_changed(struct xbt_vcpu *v, uint32_t lin, uint32_t len)
{
    xbt_stlb_flush(v);
    v->stats.window_drops++;
    epochs_bumped(v, xbt_smmu_mapping_changed(v->mmu, xbt_paging_regs(v), lin, len));
}

void xbt_paging_changed(struct xbt_vcpu *v)
{
    xbt_mapping_changed(v, 0, 0);
}

void xbt_cr3_changed(struct xbt_vcpu *v)
{
    xbt_stlb_flush(v);
    v->stats.window_drops++;
    epochs_bumped(v, xbt_smmu_cr3_changed(v->mmu, xbt_paging_regs(v)));
}

/*
 * A host fault in a window with guest paging on: a hidden fault (the page is mapped
 * in the guest's tables, just not yet in the window: map it and retry), a true guest
 * page fault (#PF with CR2 and the error code), MMIO, or a write to a page holding
 * translated code.  Clean pages are mapped read-only so that the first write comes back
 * here and sets the dirty bit.  Returns 1 (handled), 0 (an exit is recorded) or 2 (the
 * D-window cannot take it: the translator runs the instruction), as vcpu.h says.
 */
int xbt_paged_fault(struct xbt_vcpu *v, int win, uint32_t lin)
{
    xbt_vm *vm = v->vm;
    xbt_smmu *m = v->mmu;
    bool write = v->fault_err & XBT_PF_W;
    bool user = win != XBT_WINDOW_K;
    xbt_walk_result r;
    if (!xbt_walk_lin(v, lin, write, user, false, &r)) {
        if (r.bus_error) {
            xbt_set_internal_error(v, v->ctx.eip, "guest page tables for %08x are not in RAM",
                                   lin);
            return 0;
        }
        v->cr2 = lin;
        v->stats.page_faults++;
        return xbt_raise(v, XBT_PF, true, r.error_code, v->ctx.eip) ? 1 : 0;
    }
    if (r.gpa >= vm->ram_size) {
        if (win == XBT_WINDOW_D)
            return 2; /* the translator runs the access and makes the MMIO exit */
        xbt_mmio_note_fault(v);
        xbt_mmio_begin(v, lin, r.gpa);
        return (v->mmio_run || v->mmio_raised) ? 1 : 0; /* a step to run, or an exception */
    }
    uint32_t page = (uint32_t)(r.gpa >> 12);
    bool data_write = false;
    if (write && m->code_prot[page] && win == XBT_WINDOW_D)
        return 2; /* the writing instruction runs once translated, the page writable */
    if (write && m->code_prot[page]) {
        uint32_t off = lin & 0xFFF, len = 4096 - off < 16 ? 4096 - off : 16;
        if (!xbt_tc_page_range_has_code(vm->tc, page, off, len)) {
            xbt_smc_data_begin(v, page, lin, true);
            data_write = true;
        } else {
            /* Self-modifying code through any alias: drop the page's translations and
               run the writing instruction alone, uncached, with the page writable. */
            xbt_vm_invalidate(vm, r.gpa & ~0xFFFull, 4096);
            v->smc_single = true;
        }
    }
    bool writable = r.writable && (r.dirty || write) && (!m->code_prot[page] || data_write);
    /* The D-window keeps W^X: an instruction fetch maps the page read-only and
       executable, a later write read-write again (direct.c). */
    bool fetch = win == XBT_WINDOW_D && (v->fault_err & XBT_PF_I) && !write;
    if (fetch)
        writable = false;
    int rc = xbt_smmu_fill(m, xbt_paging_regs(v), win, lin, &r, writable, fetch, !v->smc_single);
    if (rc == XBT_DMAP_FAIL && win != XBT_WINDOW_D) {
        xbt_set_internal_error(v, v->ctx.eip, "cannot map guest page %08x", lin);
        return 0;
    }
    if (rc == XBT_DMAP_FAIL)
        return 2; /* below mmap_min_addr */
    v->stats.hidden_faults++;
    if (rc == XBT_DMAP_XLATE) {
        /* Code the host CPU would answer for the virtual one (CPUID ...): this page
           runs translated in this address space. */
        xbt_direct_page_translated(v, v->ctx.eip);
        return 2;
    }
    return 1;
}
