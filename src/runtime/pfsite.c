/*
 * pfsite.c - fault sites (issue 17): Adams and Agesen's adaptive translation applied to
 * memory.  A host fault in the K- or U-window costs a host signal (4,000-7,000 cycles
 * on this kind of host, itself a VM) before the shadow MMU walks the guest's tables and
 * fills the window or raises the guest's #PF (mmu.c).  A translated instruction whose
 * accesses keep ending so (XBT_PF_SITE_FAULTS times: a loop that touches a page the
 * guest keeps unmapped, a kernel's get_user on pages each new process touches first) is
 * translated again with a check of its page before the access (translate.c,
 * emit_pf_check: an explicit operand, the stack's top for PUSH, POP, CALL and RET, a
 * string instruction's first element): the probe byte of its linear page in the current
 * window (struct xbt_wmap's `probe`, kept by the shadow MMU with the window's own
 * bitmap, read through ctx.pf_probe) says whether the window maps it with the access's
 * rights.  If it does,
 * the access runs as before, a few instructions later.  If not, the XBT_CO_PFCHECK
 * callout walks the page as a host fault there would (xbt_window_probe): the guest's #PF
 * raised from the callout, or the window filled and the instruction run on, with no
 * host signal either way; what a host fault does beyond a plain fill (MMIO, a write to
 * translated code, watchpoints, SMAP's bookkeeping) it leaves to the access's own fault.
 *
 * Nothing here needs to be exact for the guest's sake: a probe byte that said "mapped"
 * where the window is not would only cost the host fault it saves, and one that said
 * "not mapped" a callout.  The shadow MMU keeps them exact anyway (window.c, with the
 * bitmap that the fast callouts read through as a TLB, which must be exact).
 *
 * A site whose blocks keep running while its check makes no callout is taken back
 * (pf_sweep): the check costs about 4 cycles where it finds the page, and an
 * instruction that faulted a few times while a data structure was first touched may
 * run millions of times after (the nano guest's byte loop of memset, checked 8,192
 * times per process of its forkwait benchmark with no callout: 15,400 -> 20,500 cycles
 * per process).  What a site costs is how often its check runs, which only a count in
 * the check itself would tell (a memory increment in a one-block loop: a store-
 * forwarding chain, slower than the check).  So the vCPU thread's own CPU time is
 * sampled instead (a timer of CLOCK_THREAD_CPUTIME_ID, every XBT_PF_SAMPLE_NS while
 * sites exist; signals.c, xbt_on_sample): a sample in translated code counts for each
 * site its block checks, and a site's callout sets its count back to 0.  A site with
 * XBT_PF_HOT samples since its last callout (twice as many for each time it was taken
 * back already) is no site again: every block that holds the instruction is dropped,
 * to be translated without the check when next entered.  A site that never runs hot
 * (a get_user that faults once per exec, Linux's many) is never taken back: timed
 * quiet periods alone took back 770 such sites over a Linux boot and 300 fork+exec,
 * which came back at their next faults, 5-10% slower.  If a site taken back faults
 * again, it is a site again at its next fault, and must run twice as hot to be taken
 * back again: a wrong guess costs a host fault and two translations of its blocks
 * (about 30,000 cycles) per XBT_PF_HOT << backs samples of CPU time in them.  (Adams
 * and Agesen's adaptive translation takes an instruction back when it stops
 * trapping.)  XBT_NO_PF_BACKS=1 keeps every site (the runs of fast-full.sh compare
 * their callout counts, which samples would make vary).
 *
 * The table is keyed by the instruction's guest physical address, so a site belongs to
 * the code's bytes wherever an address space maps them: a relocated copy of a block
 * (run.c, share_block) then has the checks a fresh translation at its new address
 * would have.  Keyed by linear EIP (until 2026-12), the sites of ld.so and libc, which
 * every process maps at another address, marked ever more linear pages on which no
 * copy was made: 85% of the blocks of a fork+exec loop were translated afresh.  When a
 * site is made, every block that holds the instruction goes, wherever it is mapped
 * (xbt_tc_drop_range: they lack its check, and so would copies of them); they come back
 * as copies of the checked translation.  (Dropping only the faulting block and leaving
 * the others to drop themselves at their own faults spent the site's few re-drops on
 * the first aliases: a page mapped at 16 addresses before the site was made kept
 * taking host faults through 8 of them, found by review.)  A physical page that later
 * holds other code keeps its sites, which only decides where checks are made.
 */

#include "runtime/vcpu.h"

#include <string.h>

#define SITE(v) ((const struct xbt_callout_site *)(uintptr_t)(v)->ctx.callout_site)

_Static_assert(XBT_PROBE_R == XBT_PROBE_READ && XBT_PROBE_W == XBT_PROBE_WRITE,
               "the probe bytes translated code reads are the shadow MMU's");

/* Taking sites back (pf_sweep): samples of the vCPU thread's CPU time every
   XBT_PF_SAMPLE_NS (vcpu.h); a site with XBT_PF_HOT << backs of them in its blocks since
   its last callout is taken back. */
#define XBT_PF_HOT 2u
#define XBT_PF_BACKS_MAX 10

/* Further host faults of a site's instruction that still drop their block: another
   block holding the instruction (one that starts at it, after an earlier fault) was
   translated before it became a site. */
#define XBT_PF_SITE_REDROPS 8

/* The record of the instruction at guest physical address gpa (add: made if missing).
   Open addressing over a window of XBT_PF_PROBE slots that are never emptied again: a
   new address takes a free slot, or the one with the fewest faults below
   XBT_PF_SITE_FAULTS (an instruction that faulted once or twice long ago); when every
   slot of the window is a site, none is made. */
#define XBT_PF_PROBE 8
static struct xbt_pf_site_rec *site_find(struct xbt_vcpu *v, uint32_t gpa, bool add)
{
    uint32_t h = (gpa * 0x9E3779B1u) >> (32 - XBT_PF_SITES_LOG2);
    struct xbt_pf_site_rec *victim = NULL;
    for (uint32_t k = 0; k < XBT_PF_PROBE; k++) {
        struct xbt_pf_site_rec *e = &v->pfs.sites[(h + k) & (XBT_PF_SITES - 1)];
        if (e->faults && e->gpa == gpa)
            return e;
        if (!e->faults) {
            victim = e;
            break;
        }
        if (e->faults < XBT_PF_SITE_FAULTS && (!victim || e->faults < victim->faults))
            victim = e;
    }
    if (!add || !victim)
        return NULL;
    /* A slot taken over keeps the chain it is in intact (it never becomes empty), so
       EIPs placed beyond it are still found. */
    *victim = (struct xbt_pf_site_rec){ .gpa = gpa };
    return victim;
}

/* The record a PFCHECK callout site's tag names (xbt_pf_site's answer, in imm_sel), or
   NULL: none. */
static struct xbt_pf_site_rec *site_of_tag(struct xbt_vcpu *v, uint16_t tag)
{
    return tag && tag <= XBT_PF_SITES ? &v->pfs.sites[tag - 1] : NULL;
}

/* Takes back the sites that ran hot without a callout: each block that holds the
   instruction is dropped and translated again without the check (xbt_pf_site says no
   for it now).  The record stays in its chain, one fault short of a site. */
void xbt_pf_sweep(struct xbt_vcpu *v)
{
    struct xbt_vcpu_pfs *p = &v->pfs;
    p->sweep_due = false;
    for (uint32_t i = 0; i < XBT_PF_SITES && v->pfb.n_sites; i++) {
        struct xbt_pf_site_rec *e = &p->sites[i];
        if (e->faults < XBT_PF_SITE_FAULTS || e->hot < XBT_PF_HOT << e->backs)
            continue;
        e->faults = XBT_PF_SITE_FAULTS - 1;
        e->hot = 0;
        if (e->backs < XBT_PF_BACKS_MAX)
            e->backs++;
        v->pfb.n_sites--;
        v->stats.fault_sites_back++;
        xbt_tc_drop_range(v->tc, e->gpa >> 12, e->gpa & 0xFFF, 1);
    }
    if (v->unlinked && !v->unlinked->valid)
        v->unlinked = NULL;
    if (!v->pfb.n_sites)
        xbt_pf_sampler_stop(v); /* no site left to sample for (the next one starts it) */
}

/* A sample of the vCPU thread's CPU time (signal context; signals.c): rip was running.
   In a valid block, each site the block checks (its XBT_CO_PFCHECK callouts' tags)
   counts it; one that ran hot enough makes a sweep due at the next dispatch, and the
   block's exits are unlinked as a kick unlinks them, so a loop of chained blocks comes
   back to the dispatcher.  The thread was in translated code, not in the C code that
   changes the records or the cache. */
void xbt_pf_sample(struct xbt_vcpu *v, uint64_t rip)
{
    struct xbt_vcpu_pfs *p = &v->pfs;
    if (!v->pfb.n_sites || !xbt_tc_contains(v->tc, rip))
        return;
    xbt_block *b = xbt_tc_block_at(v->tc, rip);
    if (!b || !b->valid)
        return;
    bool due = false;
    uint16_t last = 0;
    for (uint32_t i = 0; i < b->n_sites; i++) {
        struct xbt_callout_site s;
        memcpy(&s, b->host + b->sites_off + i * sizeof s, sizeof s);
        struct xbt_pf_site_rec *e = s.kind == XBT_CO_PFCHECK ? site_of_tag(v, s.imm_sel) : NULL;
        if (!e || s.imm_sel == last)
            continue; /* (an instruction's checks are in a row: a MOVS has two) */
        last = s.imm_sel;
        if (e->hot < UINT16_MAX)
            e->hot++;
        due |= e->faults >= XBT_PF_SITE_FAULTS && e->hot >= XBT_PF_HOT << e->backs;
    }
    if (due) {
        /* As a kick: the inline lookup misses too, so the block set in v->unlinked is
           left for the dispatcher whatever way the code goes on (a kick that comes next
           unlinks nothing of its own while v->unlinked is set: without the misses, a
           loop entered through an indirect branch kept the vCPU; found by review). */
        p->sweep_due = true;
        v->ctx.ibl_table = (uint64_t)(uintptr_t)v->ibl_miss;
        if (!v->unlinked) {
            xbt_tc_unlink_out(v->tc, b);
            v->unlinked = b;
        }
    }
}

void xbt_pf_fetched(struct xbt_vcpu *v, uint32_t lin, uint32_t page)
{
    struct xbt_vcpu_pfs *p = &v->pfs;
    uint32_t k = p->fmap[0].lin == lin ? 0 : p->fmap[1].lin == lin ? 1 : (p->fmap_next ^= 1);
    p->fmap[k].lin = lin;
    p->fmap[k].page = page;
}

/* The guest physical address of the instruction at eip that the translator is
   translating: its page is one of the last two fetched (a block's first and last), or
   else walked as the fetch walked it.  False: not known. */
static bool xlat_insn_gpa(struct xbt_vcpu *v, uint32_t eip, uint32_t *gpa)
{
    uint32_t lin = v->arch.seg[XBT_CS].base + eip, page;
    const struct xbt_vcpu_pfs *p = &v->pfs;
    if (p->fmap[0].lin == lin >> 12) {
        page = p->fmap[0].page;
    } else if (p->fmap[1].lin == lin >> 12) {
        page = p->fmap[1].page;
    } else {
        xbt_walk_result r;
        if (!xbt_walk_quiet(v, lin, v->arch.cpl == 3, true, &r) || r.gpa >> 32)
            return false;
        page = (uint32_t)(r.gpa >> 12);
    }
    *gpa = page << 12 | (lin & 0xFFF);
    return true;
}

/* The guest physical address of the translated instruction at linear lin whose host
   fault is being handled: where its block's bytes came from (a trace's pages between
   its first and last are not known).  False: not known (or not a translated
   instruction's own access: a step, a data write). */
static bool fault_insn_gpa(struct xbt_vcpu *v, uint32_t lin, uint32_t *gpa)
{
    if (v->smc.single || !xbt_tc_contains(v->tc, v->fault_rip))
        return false;
    const xbt_block *b = xbt_tc_block_at(v->tc, v->fault_rip);
    if (!b || !b->valid || lin - b->lin >= b->guest_len)
        return false;
    uint32_t page = (lin >> 12) == (b->lin >> 12)                     ? b->page[0]
                    : (lin >> 12) == (xbt_block_last(b) >> 12) ? b->page[1]
                                                                       : UINT32_MAX;
    if (page >= 1u << 20)
        return false;
    *gpa = page << 12 | (lin & 0xFFF);
    return true;
}

uint16_t xbt_pf_site(void *vcpu, uint32_t eip)
{
    struct xbt_vcpu *v = vcpu;
    const struct xbt_vcpu_pfs *p = &v->pfs;
    uint32_t gpa;
    if (!p->site_pages || !xlat_insn_gpa(v, eip, &gpa) || !xbt_page_bit(p->site_pages, gpa))
        return 0;
    const struct xbt_pf_site_rec *e = site_find(v, gpa, false);
    /* The tag: the record's index + 1, for its callouts and samples to find it. */
    return e && e->faults >= XBT_PF_SITE_FAULTS ? (uint16_t)(e - p->sites + 1) : 0;
}

void xbt_pf_note_fault(struct xbt_vcpu *v, uint32_t lin)
{
    uint32_t gpa;
    if (!v->xl.pf_site || !fault_insn_gpa(v, lin, &gpa))
        return;
    uint32_t page = gpa >> 12;
    struct xbt_pf_site_rec *e = site_find(v, gpa, true);
    if (!e || e->faults >= XBT_PF_SITE_FAULTS + XBT_PF_SITE_REDROPS ||
        ++e->faults < XBT_PF_SITE_FAULTS)
        return;
    if (!xbt_page_bit_set(&v->pfs.site_pages, gpa)) {
        e->faults--; /* not a site after all */
        return;
    }
    if (e->faults == XBT_PF_SITE_FAULTS) {
        v->stats.fault_sites++;
        e->hot = 0;
        if (v->pfb.n_sites++ == 0 && v->pfb.sample_ok)
            xbt_pf_sampler_start(v);
        /* Every block holding the instruction, at any address, is translated again when
           next entered (or copied from one that was), the access checked first. */
        xbt_tc_drop_range(v->tc, page, lin & 0xFFF, 1);
        if (v->unlinked && !v->unlinked->valid)
            v->unlinked = NULL;
    }
    /* Its block is translated again when next entered (one made before the site that
       still faults here: a trace, whose middle pages the range does not see). */
    xbt_vcpu_drop_block_at(v, v->fault_rip);
}

/* The bytes a string pointer's elements cover, from the first element at lin the way
   DF points: [*lo, *hi]; a range that passes 0 or 4 GiB is [0, 2^64 - 1], which
   shares a page with every other. */
static void string_range(const struct xbt_vcpu *v, uint32_t lin, uint32_t size, uint64_t bytes,
                         uint64_t *lo, uint64_t *hi)
{
    if (v->ctx.eflags & XBT_EFLAGS_DF) {
        uint64_t below = bytes - size;
        *lo = below > lin ? 0 : lin - below;
        *hi = below > lin ? UINT64_MAX : (uint64_t)lin + size - 1;
    } else {
        bool wraps = (uint64_t)lin + bytes - 1 > UINT32_MAX;
        *lo = wraps ? 0 : lin;
        *hi = wraps ? UINT64_MAX : (uint64_t)lin + bytes - 1;
    }
}

/* A soft string site's pointer (MOVS, STOS at CPL 0; translate.c, emit_soft_bias): the
   instruction's whole range for it, ECX elements (one without REP) from lin the way DF
   points.  On one page that the window does not map and whose mapping churns, the
   guest page itself (ctx->soft_ptr = its delta: host address - linear address); else
   the window base, after the probe of the first element's page as for any site.  The
   walk and a refusal's #PF are the first element's (CR2 = lin, not the range's low
   end; found by review).  A MOVS whose two ranges share a linear page goes
   through the window with both: the host's string copy sees two addresses of the same
   bytes otherwise, and an overlapping copy (EDI = ESI + 1) is not made element by
   element (found by review: 199 of 201 bytes wrong). */
static int string_soft(struct xbt_vcpu *v, const struct xbt_callout_site *s, int win,
                       uint32_t lin, bool write)
{
    uint64_t n = (s->flags & XBT_COF_REP) ? v->ctx.gpr[XBT_ECX] : 1;
    uint32_t size = s->imm & 0xFF;
    v->ctx.soft_ptr = v->ctx.kbase;
    if (n == 0)
        return XBT_WP_ACCESS; /* accesses nothing */
    uint64_t bytes = n * size, lo, hi;
    string_range(v, lin, size, bytes, &lo, &hi);
    if (s->imm & XBT_PF_SOFT_MOVS_DST) {
        uint64_t slo, shi;
        string_range(v, v->ctx.seg_base[s->seg] + v->ctx.gpr[XBT_ESI], size, bytes, &slo,
                     &shi);
        if (slo >> 12 <= hi >> 12 && lo >> 12 <= shi >> 12) { /* pages in common */
            v->ctx.soft_delta[0] = v->ctx.kbase; /* the source's, stored before this */
            return xbt_window_probe(v, win, lin, write);
        }
    }
    /* (A range that wraps at 4 GiB crosses a page.) */
    if (bytes > 4096 || (lo ^ lin) >> 12 || (hi ^ lin) >> 12)
        return xbt_window_probe(v, win, lin, write);
    /* The range is on lin's page: the first element's walk answers for all of it (the
       same rights, the same page logged dirty). */
    uint8_t *host = NULL;
    int r = xbt_window_soft(v, win, lin, write, size, &host);
    if (r == XBT_WP_SOFT)
        v->ctx.soft_ptr = (uint64_t)(uintptr_t)host - lin;
    return r;
}

int xbt_pf_callout(struct xbt_vcpu *v)
{
    const struct xbt_callout_site *s = SITE(v);
    int win = xbt_paging(v) && v->arch.cpl == 3 ? XBT_WINDOW_U : XBT_WINDOW_K;
    /* A REP string instruction with ECX 0 accesses nothing (its check does not know). */
    uint32_t lin = (uint32_t)v->ctx.callout_ea;
    bool write = s->flags & XBT_COF_WRITE;
    int r;
    struct xbt_pf_site_rec *e = site_of_tag(v, s->imm_sel);
    if (e)
        e->hot = 0; /* its record: not quiet */
    if ((s->flags & XBT_COF_SOFT) && (s->imm & XBT_PF_SOFT_STRING)) {
        r = string_soft(v, s, win, lin, write);
    } else if (s->flags & XBT_COF_SOFT) {
        /* A soft site goes on at ctx->soft_ptr: the guest page, or the window (which
           the probe may have filled, or whose fault decides). */
        uint8_t *host = NULL;
        r = xbt_window_soft(v, win, lin, write, s->imm, &host);
        v->ctx.soft_ptr = r == XBT_WP_SOFT ? (uint64_t)(uintptr_t)host : v->ctx.kbase + lin;
    } else {
        r = (s->flags & XBT_COF_REP) && !v->ctx.gpr[XBT_ECX]
                ? XBT_WP_ACCESS
                : xbt_window_probe(v, win, lin, write);
    }
    switch (r) {
    case XBT_WP_RAISED:
        return XBT_LEAVE_DISPATCH; /* to the guest's #PF handler */
    case XBT_WP_EXIT:
        return XBT_LEAVE_EXIT;
    default:
        /* On into the access (EIP stays the instruction's own); a kick that came
           meanwhile is taken first, and the instruction runs from the dispatcher. */
        if (atomic_load_explicit(&v->kick, memory_order_relaxed))
            return XBT_LEAVE_DISPATCH;
        return 0;
    }
}

/*
 * Wrap sites.  Translated user code under a fixed GS reaches [reg + disp] as
 * gs:[r9 + reg + disp] (translator.h, uk_wrap_site; emit.c): one instruction where the
 * LEA that wraps the sum at 4 GiB made two (the macro workload's cc phase 4.68 -> 4.42
 * s, medians of 10 interleaved runs).  A
 * sum that does wrap (a negative index register beside an absolute displacement,
 * common in compiled code) lands in the unmapped 64 KiB below the U-window or in the
 * guard page above it; the fault handler (run.c, handle_fault) sees XBT_MAP_UK_FAST on
 * the instruction, runs it alone translated with the LEA (exact: an access that then
 * straddles 4 GiB is the guard page's #GP as before) and marks it here, so that every
 * later translation of those bytes, at any address, takes the LEA.  Keyed by physical
 * address as fault sites are (relocated copies agree with fresh translations); a slot
 * taken over forgets a site, which then wraps once more.
 */
static uint32_t wrap_hash(uint32_t gpa)
{
    return (gpa * 0x9E3779B1u) >> (32 - 10);
}
_Static_assert(XBT_WRAP_SITES == 1u << 10, "wrap_hash");
_Static_assert(XBT_UWIN_UNDER >= -(int64_t)XBT_UK_FAST_DISP_MIN,
               "a sum wrapped below 0 stays in the unmapped room below the U-window");
_Static_assert(XBT_UK_FAST_DISP_MAX + 512 <= XBT_UWIN_BELOW - (4ull << 30),
               "a sum wrapped past 4 GiB, with a 512-byte operand, stays in the guard page");
_Static_assert(XBT_UWIN_UNDER + XBT_UWIN_BELOW + (12ull << 30) <= XBT_WSET_RESERVE,
               "the window set's reservation holds the room below, both windows, the "
               "alignment of the K-window and 4 GiB above it");

bool xbt_uk_wrap_site(void *vcpu, uint32_t eip)
{
    struct xbt_vcpu *v = vcpu;
    const struct xbt_vcpu_pfs *p = &v->pfs;
    uint32_t gpa;
    if (!p->wrap_pages || !xlat_insn_gpa(v, eip, &gpa) || !xbt_page_bit(p->wrap_pages, gpa))
        return false;
    uint32_t h = wrap_hash(gpa);
    for (uint32_t k = 0; k < XBT_PF_PROBE; k++) {
        uint32_t e = p->wrap[(h + k) & (XBT_WRAP_SITES - 1)];
        if (e == gpa + 1)
            return true;
        if (!e)
            return false;
    }
    return false;
}

void xbt_uk_wrap_note(struct xbt_vcpu *v, uint32_t lin)
{
    struct xbt_vcpu_pfs *p = &v->pfs;
    uint32_t gpa;
    v->stats.uk_wraps++;
    if (!fault_insn_gpa(v, lin, &gpa) || !xbt_page_bit_set(&p->wrap_pages, gpa))
        return; /* not marked: it runs alone each time its sum wraps */
    uint32_t h = wrap_hash(gpa), *slot = &p->wrap[h];
    for (uint32_t k = 0; k < XBT_PF_PROBE; k++) {
        uint32_t *e = &p->wrap[(h + k) & (XBT_WRAP_SITES - 1)];
        if (*e == gpa + 1 || !*e) {
            slot = e;
            break;
        }
    }
    *slot = gpa + 1;
    /* Every block holding the instruction goes (copies of them at other addresses
       too), to come back with its LEA. */
    xbt_tc_drop_range(v->tc, gpa >> 12, gpa & 0xFFF, 1);
    if (v->unlinked && !v->unlinked->valid)
        v->unlinked = NULL;
    xbt_vcpu_drop_block_at(v, v->fault_rip);
}
