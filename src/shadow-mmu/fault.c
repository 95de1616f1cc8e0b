/*
 * fault.c - host faults in a window with guest paging on: hidden faults filled (runs of
 * pages, 4 MiB pages, read-only until dirty), true guest page faults raised, MMIO and
 * writes to pages holding translated code handed on.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "runtime/vcpu.h"
#include "shadow-mmu/walk.h"

/*
 * A host fault in the K-window with guest paging on: a hidden fault (the page is mapped
 * in the guest's tables, just not yet in the window: map it and retry), a true guest
 * page fault (#PF with CR2 and the error code), MMIO, or a write to a page holding
 * translated code.  Clean pages are mapped read-only so that the first write comes back
 * here and sets the dirty bit.  Returns 1 (handled), 0 (an exit is recorded) or 2 (the
 * D-window cannot take it: the translator runs the instruction), as vcpu.h says.
 */
int xbt_paged_fault(struct xbt_vcpu *v, int win, uint32_t lin)
{
    xbt_vm *vm = v->vm;
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
    if (write && vm->code_prot[page] && win != XBT_WINDOW_D) {
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
    } else if (write && vm->code_prot[page]) {
        v->smc_single = true; /* direct: the translator runs it (below) */
    }
    bool writable = r.writable && (r.dirty || write) && (!vm->code_prot[page] || data_write);
    /* The D-window keeps W^X: an instruction fetch maps the page read-only and
       executable, a later write read-write again (direct.c). */
    bool fetch = win == XBT_WINDOW_D && (v->fault_err & XBT_PF_I) && !write, xlate = false;
    if (fetch)
        writable = false;
    if (r.page_size > 4096)
        for (uint32_t u = (lin & ~(r.page_size - 1)) >> 21;
             u < ((lin & ~(r.page_size - 1)) >> 21) + (r.page_size >> 21); u++)
            vm->pse_region[u >> 3] |= (uint8_t)(1u << (u & 7));
    if (r.page_size > 4096 && !fetch) {
        /* A 4 MiB (PAE: 2 MiB) guest page (Linux maps its lowmem so): one host mapping
           for all of it when it is all RAM and holds no translated code, instead of a
           fault and a VMA per 4 KiB.  Its one dirty bit covers all of it. */
        uint32_t size = r.page_size;
        uint64_t g0 = r.gpa & ~(uint64_t)(size - 1);
        uint32_t l0 = lin & ~(size - 1);
        if (g0 + size <= vm->ram_size && !v->smc_single &&
            !memchr(vm->code_prot + (g0 >> 12), 1, size >> 12)) {
            bool ok;
            if (win == XBT_WINDOW_D)
                ok = xbt_direct_window_map_range(vm, l0, g0, size, writable);
            else
                ok = xbt_window_map_range(vm, win == XBT_WINDOW_U ? vm->ubase : vm->kbase, l0,
                                          g0, size, writable);
            if (ok) {
                xbt_window_note(vm, win, l0, size, r.global, xbt_region_pde_raw(v, l0 >> 22),
                                0, true);
                v->stats.hidden_faults++;
                return 1;
            }
        }
    }
    /* Neighbours in the same page table that the guest has already accessed (A set,
       and D set if this mapping is writable), with the same rights and physically
       contiguous, go in with the same host mapping: one mmap (and one VMA) instead of a
       fault each, and no accessed or dirty bit is skipped, as those are set already.
       Linux maps much of its lowmem with 4 KiB pages in order. */
    uint32_t lo = lin & ~0xFFFu, hi = lo + 4096;
    uint64_t glo = r.gpa & ~0xFFFull;
    /* Entries are 4 bytes (1,024 a table) or, with PAE, 8 bytes (512 a table); with
       PAE a neighbour's upper half must equal this entry's (whose reserved bits the
       walk checked), so nothing a walk would refuse is mapped. */
    bool pae = xbt_pae(v);
    uint32_t es = pae ? 8 : 4, n_ent = pae ? 512 : 1024;
    uint64_t amask = pae ? 0x0000000FFFFFF000ull : 0xFFFFF000ull;
    if (r.page_size == 4096 && r.pte_gpa + es <= vm->ram_size) {
        uint64_t pte0 = 0;
        memcpy(&pte0, vm->ram + r.pte_gpa, es);
        const uint64_t same = XBT_PTE_P | XBT_PTE_RW | XBT_PTE_US | XBT_PTE_A | XBT_PTE_D |
                              XBT_PTE_G | (pae ? 0xFFFFFFF000000000ull : 0);
        uint64_t pt_page = r.pte_gpa & ~0xFFFull;
        uint32_t idx = (uint32_t)(r.pte_gpa & 0xFFF) / es;
        if ((pte0 & XBT_PTE_A) && (!writable || (pte0 & XBT_PTE_D))) {
            for (uint32_t k = idx + 1; k < n_ent && hi - lo < (64u << 12); k++) {
                uint64_t pte = 0;
                memcpy(&pte, vm->ram + pt_page + k * es, es);
                uint64_t g = glo + (hi - lo);
                if ((pte & same) != (pte0 & same) || (pte & amask) != g ||
                    g + 4096 > vm->ram_size || vm->code_prot[g >> 12])
                    break;
                hi += 4096;
            }
            for (uint32_t k = idx; k-- > 0 && hi - lo < (64u << 12);) {
                uint64_t pte = 0;
                memcpy(&pte, vm->ram + pt_page + k * es, es);
                if (glo < 4096)
                    break;
                uint64_t g = glo - 4096;
                if ((pte & same) != (pte0 & same) || (pte & amask) != g ||
                    vm->code_prot[g >> 12])
                    break;
                lo -= 4096;
                glo = g;
            }
        }
    }
    if (win == XBT_WINDOW_D) {
        if (v->smc_single) {
            /* The writing instruction runs once translated, with the page writable. */
            v->smc_single = false;
            return 2;
        }
        int64_t at = fetch ? (int64_t)lin : -1;
        int rc = xbt_direct_map(vm, lo, glo, hi - lo, writable, at);
        if (rc == XBT_DMAP_FAIL) { /* the run reaches below mmap_min_addr: the page alone */
            lo = lin & ~0xFFFu;
            hi = lo + 4096;
            rc = xbt_direct_map(vm, lo, r.gpa & ~0xFFFull, 4096, writable, at);
        }
        if (rc == XBT_DMAP_FAIL)
            return 2; /* below mmap_min_addr */
        if (rc == XBT_DMAP_XLATE) {
            /* Code the host CPU would answer for the virtual one (CPUID ...): this page
               runs translated in this address space; the run stays mapped (noted
               below, so that TLB flushes drop it). */
            xbt_direct_page_translated(v, v->ctx.eip);
            xlate = true;
        }
    } else if (!xbt_window_map_range(vm, win == XBT_WINDOW_U ? vm->ubase : vm->kbase, lo, glo,
                                     hi - lo, writable)) {
        xbt_set_internal_error(v, v->ctx.eip, "cannot map guest page %08x", lin);
        return 0;
    }
    {
        uint32_t pte_lo = 0;
        uint64_t at = (r.pte_gpa & ~0xFFFull) + ((lo >> 12) & 0x3FF) * 4;
        if (r.page_size == 4096 && !pae && at + 4 <= vm->ram_size)
            memcpy(&pte_lo, vm->ram + at, 4);
        xbt_window_note(vm, win, lo, hi - lo, r.global, xbt_region_pde_raw(v, lo >> 22), pte_lo,
                        r.page_size != 4096);
    }
    v->stats.hidden_faults++;
    return xlate ? 2 : 1;
}
