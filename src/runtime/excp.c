/*
 * excp.c - EFLAGS, guest linear memory with the rights of a privilege level,
 * descriptors, data segment loads, and the exception nesting rules (#DF, triple fault)
 * around the delivery of one event (intr.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vcpu.h"
#include "runtime/sensitive.h"
#include "runtime/xfer.h"
#include "shadow-mmu/walk.h"

uint32_t xbt_get_eflags(const struct xbt_vcpu *v)
{
    return (v->ctx.eflags & XBT_EFLAGS_ARITH) | v->ctx.vif | v->ctx.eflags_sys |
           XBT_EFLAGS_FIXED;
}

void xbt_set_eflags(struct xbt_vcpu *v, uint32_t value, uint32_t mask)
{
    xbt_eflags_write(v, value, mask);
}

void xbt_set_internal_error(struct xbt_vcpu *v, uint32_t eip, const char *fmt, ...)
{
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_INTERNAL_ERROR;
    v->exit.internal.eip = eip;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->exit.internal.message, sizeof v->exit.internal.message, fmt, ap);
    va_end(ap);
}

static bool pt_read(void *opaque, uint64_t gpa, uint32_t *val)
{
    struct xbt_vcpu *v = opaque;
    const uint8_t *h = xbt_phys_r(&v->vm->phys, gpa, 4);
    if (!h)
        return false;
    if (!(gpa & 3)) {
        /* One load, as the CPU reads an entry: other vCPUs' walks set A and D in it
           meanwhile (pt_write's atomic OR). */
        *val = __atomic_load_n((const uint32_t *)(const void *)h, __ATOMIC_RELAXED);
        return true;
    }
    memcpy(val, h, 4);
    return true;
}

static bool pt_write(void *opaque, uint64_t gpa, uint32_t val)
{
    struct xbt_vcpu *v = opaque;
    if (!xbt_phys_ram(&v->vm->phys, gpa, 4))
        return false;
    /* Accessed and dirty bits: the CPU's own write (logged); in ROM it goes nowhere, as
       a write to ROM does on a PC. */
    uint8_t *h = xbt_phys_w(&v->vm->phys, gpa, 4);
    if (!h)
        return true;
    if (v->vm->code_prot[gpa >> 12])
        xbt_code_written(v->vm, v, gpa, 4, true);
    /* The walker only ever sets the accessed and dirty bits; as the CPU does, with a
       locked OR: another vCPU may change the same entry meanwhile. */
    if (!(gpa & 3))
        __atomic_fetch_or((uint32_t *)(void *)h, val & (XBT_PTE_A | XBT_PTE_D), __ATOMIC_SEQ_CST);
    else
        memcpy(h, &val, 4);
    xbt_code_recheck(v->vm, v, gpa, 4, true);
    return true;
}

bool xbt_walk_lin(struct xbt_vcpu *v, uint32_t lin, bool write, int acc, bool fetch,
                  xbt_walk_result *r)
{
    xbt_walk_req q = { v->arch.cr0, v->arch.cr3, v->arch.cr4, lin, write,
                       acc == XBT_ACC_USER, fetch, !fetch && xbt_smap_applies(v, acc) };
    return xbt_walk(&q, pt_read, pt_write, v, r);
}

/* One linear access that stays within a page: its physical address, or false with a
   pending #PF (v->pf_*) or for memory that is not RAM (for a write: not RAM or ROM;
   the page's kind decides for all its bytes).  acc: enum xbt_acc.
   Successful walks are kept in a small software TLB (v->stlb) that every TLB-flushing
   event empties (xbt_stlb_flush: CR3 loads, INVLPG, paging mode changes): interrupt
   delivery reads the IDT, the GDT and writes the stack frame through here, each a walk
   before.  An entry walked with user rights serves supervisor accesses too (a page a
   CPL 3 access may read or write, the supervisor may as well), unless SMAP refuses the
   supervisor a user page (decided at each use: EFLAGS.AC changes without a flush). */
/* The walk of one access through the software TLB: true with its physical address
   (RAM or not), false for a #PF (pending in v->pf_* when pf) or a bus error.  An MMIO
   frame is kept too (mmio.c's sites look theirs up on every access). */
/* The miss, apart: with the walk's result on its stack it needs a frame and six saved
   registers, which the hit path paid too while they were one function (a tenth of a
   paged guest system call's time went into that prologue and epilogue). */
static __attribute__((noinline)) bool stlb_miss(struct xbt_vcpu *v, uint32_t lin, bool write,
                                                int acc, bool pf, uint64_t *gpa)
{
    struct xbt_stlb_entry *e = &v->stlb[(lin >> 12) & (XBT_STLB_SIZE - 1)];
    bool user = acc == XBT_ACC_USER;
    xbt_walk_result r;
    if (!xbt_walk_lin(v, lin, write, acc, false, &r)) {
        if (pf && !r.bus_error) {
            v->pf_pending = true;
            v->pf_lin = lin;
            v->pf_err = r.error_code;
        }
        return false;
    }
    *gpa = r.gpa;
    *e = (struct xbt_stlb_entry){ lin >> 12, (uint32_t)(r.gpa >> 12), v->stlb_gen,
                                  r.writable && r.dirty, user, r.user };
    return true;
}

static inline bool stlb_walk(struct xbt_vcpu *v, uint32_t lin, bool write, int acc, bool pf,
                             uint64_t *gpa)
{
    const struct xbt_stlb_entry *e = &v->stlb[(lin >> 12) & (XBT_STLB_SIZE - 1)];
    bool user = acc == XBT_ACC_USER;
    if (e->gen == v->stlb_gen && e->page == lin >> 12 && (!write || e->writable) &&
        (!user || e->user) && (user || !e->upage || !xbt_smap_applies(v, acc))) {
        *gpa = ((uint64_t)e->frame << 12) | (lin & 0xFFF);
        return true;
    }
    return stlb_miss(v, lin, write, acc, pf, gpa);
}

bool xbt_lin_gpa(struct xbt_vcpu *v, uint32_t lin, bool write, int acc, uint64_t *gpa)
{
    if (!xbt_paging(v)) {
        *gpa = lin;
        return true;
    }
    return stlb_walk(v, lin, write, acc, false, gpa);
}

static inline bool lin_page_paged(struct xbt_vcpu *v, uint32_t lin, bool write, int acc,
                                  uint64_t *gpa)
{
    return stlb_walk(v, lin, write, acc, true, gpa) && xbt_gpa_mem(v->vm, *gpa, write);
}

static inline bool lin_page(struct xbt_vcpu *v, uint32_t lin, bool write,
                            int acc, uint64_t *gpa)
{
    if (xbt_paging(v))
        return lin_page_paged(v, lin, write, acc, gpa);
    *gpa = lin;
    return xbt_gpa_mem(v->vm, lin, write);
}

void xbt_stlb_flush(struct xbt_vcpu *v)
{
    xbt_rshadow_forget(v);
    if (++v->stlb_gen == 0) { /* wrapped: make every entry stale for good */
        memset(v->stlb, 0, XBT_STLB_SIZE * sizeof *v->stlb);
        v->stlb_gen = 1;
    }
}

/* memcpy for the short copies of interrupt frames, descriptors and stack slots: GCC
   expands a bounded variable-size memcpy into REP MOVSQ, whose start-up cost was a
   fifth of a guest system call's time.  Overlapping fixed-size moves up to 16 bytes. */
static inline void copy_short(uint8_t *d, const uint8_t *s, uint32_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
        for (uint32_t k = 0; k < n; k++)
            d[k] = s[k];
    } else {
        memcpy(d, s, n);
    }
}

/* Guest linear memory, page by page; linear addresses wrap at 4 GiB. */
bool xbt_read_lin_as(struct xbt_vcpu *v, uint32_t lin, void *dst, uint32_t len, int acc)
{
    uint8_t *d = dst;
    if (v->dbg.n_wp)
        xbt_watch_access(v, lin, len, false);
    while (len) {
        uint32_t n = 4096 - (lin & 0xFFF);
        if (n > len)
            n = len;
        uint64_t gpa;
        if (!lin_page(v, lin, false, acc, &gpa))
            return false;
        copy_short(d, v->vm->phys.view + gpa, n); /* lin_page: RAM */
        d += n, lin += n, len -= n;
    }
    return true;
}

bool xbt_write_lin_as(struct xbt_vcpu *v, uint32_t lin, const void *src, uint32_t len,
                      int acc)
{
    const uint8_t *p = src;
    if (v->dbg.n_wp)
        xbt_watch_access(v, lin, len, true);
    while (len) {
        uint32_t n = 4096 - (lin & 0xFFF);
        if (n > len)
            n = len;
        uint64_t gpa;
        if (!lin_page(v, lin, true, acc, &gpa))
            return false;
        uint8_t *h = xbt_phys_w(&v->vm->phys, gpa, n); /* lin_page: RAM, not ROM */
        if (v->vm->code_prot[gpa >> 12])
            xbt_code_written(v->vm, v, gpa, n, true);
        copy_short(h, p, n);
        xbt_code_recheck(v->vm, v, gpa, n, true);
        p += n, lin += n, len -= n;
    }
    return true;
}

bool xbt_probe_lin(struct xbt_vcpu *v, uint32_t lin, uint32_t len, bool write, int acc)
{
    while (len) {
        uint32_t n = 4096 - (lin & 0xFFF);
        if (n > len)
            n = len;
        uint64_t gpa;
        if (!lin_page(v, lin, write, acc, &gpa))
            return false;
        lin += n, len -= n;
    }
    return true;
}

/* Implicit accesses to system structures (supervisor rights whatever the CPL; SMAP
   refuses them user pages whatever EFLAGS.AC says). */
bool xbt_read_lin(struct xbt_vcpu *v, uint32_t lin, void *dst, uint32_t len)
{
    return xbt_read_lin_as(v, lin, dst, len, XBT_ACC_SYS);
}

bool xbt_write_lin(struct xbt_vcpu *v, uint32_t lin, const void *src, uint32_t len)
{
    return xbt_write_lin_as(v, lin, src, len, XBT_ACC_SYS);
}

/* Reads the 8-byte descriptor for selector sel from the GDT or LDT.  false if the
   selector is beyond the table's limit (or the table is not in RAM, or a #PF is
   pending). */
bool xbt_read_descriptor(struct xbt_vcpu *v, uint16_t sel, uint64_t *desc)
{
    uint32_t index = sel & ~7u;
    uint32_t base, limit;
    if (sel & 4) {
        if (v->arch.ldtr.unusable || (v->arch.ldtr.selector & ~3u) == 0)
            return false;
        base = v->arch.ldtr.base;
        limit = v->arch.ldtr.limit;
    } else {
        base = v->arch.gdtr.base;
        limit = v->arch.gdtr.limit;
    }
    if (index + 7 > limit)
        return false;
    return xbt_read_lin(v, base + index, desc, 8);
}

int xbt_desc_get(struct xbt_vcpu *v, uint16_t sel, int vec, uint32_t ext, uint64_t *d,
                 xbt_segment *s, uint32_t *err)
{
    v->pf_pending = false;
    if (!xbt_read_descriptor(v, sel, d))
        return xbt_mem_fault(v, vec, xbt_sel_err(sel, ext), err);
    xbt_seg_from_desc(s, sel, *d);
    return XBT_X_DONE;
}

void xbt_seg_from_desc(xbt_segment *s, uint16_t sel, uint64_t d)
{
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->base = (uint32_t)((d >> 16) & 0xFFFFFF) | (uint32_t)((d >> 56) & 0xFF) << 24;
    uint32_t limit = (uint32_t)(d & 0xFFFF) | (uint32_t)((d >> 48) & 0xF) << 16;
    s->type = (d >> 40) & 0xF;
    s->s = (d >> 44) & 1;
    s->dpl = (d >> 45) & 3;
    s->present = (d >> 47) & 1;
    s->avl = (d >> 52) & 1;
    s->db = (d >> 54) & 1;
    s->g = (d >> 55) & 1;
    s->limit = s->g ? (limit << 12) | 0xFFF : limit;
}

static void set_seg(struct xbt_vcpu *v, int seg, const xbt_segment *s)
{
    xbt_seg_put(v, seg, s);
}

void xbt_set_seg(struct xbt_vcpu *v, int seg, const xbt_segment *s)
{
    set_seg(v, seg, s);
}

/* Sets and clears bits of the guest byte at linear lin with a locked operation, as the
   CPU updates descriptors (accessed and busy bits): another vCPU may write the same
   descriptor meanwhile.  false: not writable RAM (a #PF pending, or no RAM). */
bool xbt_update_lin8(struct xbt_vcpu *v, uint32_t lin, uint8_t set, uint8_t clear)
{
    uint64_t gpa;
    if (v->dbg.n_wp)
        xbt_watch_access(v, lin, 1, true);
    if (!lin_page(v, lin, true, false, &gpa))
        return false;
    uint8_t *h = xbt_phys_w(&v->vm->phys, gpa, 1); /* lin_page: RAM, not ROM */
    if (v->vm->code_prot[gpa >> 12])
        xbt_code_written(v->vm, v, gpa, 1, true);
    if (set)
        __atomic_fetch_or(h, set, __ATOMIC_SEQ_CST);
    if (clear)
        __atomic_fetch_and(h, (uint8_t)~clear, __ATOMIC_SEQ_CST);
    xbt_code_recheck(v->vm, v, gpa, 1, true);
    return true;
}

/* Sets the accessed bit of a descriptor, as the CPU does on a load.  A write that
   fails (the table on a page the walk refuses) is not the load's fault. */
void xbt_mark_accessed(struct xbt_vcpu *v, uint16_t sel, uint64_t d)
{
    if (d & (1ull << 40))
        return;
    uint32_t base = (sel & 4) ? v->arch.ldtr.base : v->arch.gdtr.base;
    bool pf = v->pf_pending;
    xbt_update_lin8(v, base + (sel & ~7u) + 5, 1, 0);
    v->pf_pending = pf;
}

void xbt_commit_cs(struct xbt_vcpu *v, uint16_t sel, uint64_t d, xbt_segment *s, unsigned rpl)
{
    xbt_mark_accessed(v, sel, d);
    s->selector = (uint16_t)((sel & ~3u) | rpl);
    s->type |= 1;
    set_seg(v, XBT_CS, s);
}

void xbt_null_inner_data_segs(struct xbt_vcpu *v)
{
    xbt_null_data_segs_below(v, v->arch.cpl); /* sensitive.h: the fast IRET's rule too */
}

/*
 * Loads data/stack segment register seg with selector sel, with the checks of MOV Sreg
 * (Intel SDM vol. 2, MOV): raises #GP/#SS/#NP with the selector as error code (or the
 * #PF met reading the descriptor) and returns false if the load faults.  In real mode
 * the load is the selector and its base only, and never faults; in virtual-8086 mode
 * also the fixed attributes (xbt_v86_seg).
 */
int xbt_seg_load(struct xbt_vcpu *v, int seg, uint16_t sel, uint32_t *err)
{
    if (xbt_seg_plain(v)) { /* real or v86 mode: no descriptor, no fault (sensitive.h) */
        *err = 0;
        xbt_plain_seg(v, seg, sel);
        return XBT_X_DONE;
    }
    uint32_t rpl = sel & 3;
    if ((sel & ~3u) == 0) {
        *err = 0;
        if (seg == XBT_SS)
            return XBT_GP;
        xbt_segment s;
        memset(&s, 0, sizeof s);
        s.selector = sel;
        s.unusable = 1;
        set_seg(v, seg, &s);
        return XBT_X_DONE;
    }
    uint64_t d;
    xbt_segment s;
    int r = xbt_desc_get(v, sel, XBT_GP, 0, &d, &s, err);
    if (r >= 0)
        return r;
    *err = sel & 0xFFFC;
    bool code = s.type & 8, rw = s.type & 2;
    if (seg == XBT_SS) {
        if (rpl != v->arch.cpl || !s.s || code || !rw || s.dpl != v->arch.cpl)
            return XBT_GP;
        if (!s.present)
            return XBT_SSF;
    } else {
        if (!s.s || (code && !rw))
            return XBT_GP;
        /* Data or non-conforming code: RPL and CPL must not exceed DPL. */
        bool conforming = code && (s.type & 4);
        if (!conforming && (rpl > s.dpl || v->arch.cpl > s.dpl))
            return XBT_GP;
        if (!s.present)
            return XBT_NP;
    }
    xbt_mark_accessed(v, sel, d);
    s.type |= 1;
    set_seg(v, seg, &s);
    return XBT_X_DONE;
}

bool xbt_load_seg(struct xbt_vcpu *v, int seg, uint16_t sel, uint32_t eip)
{
    uint32_t err;
    int r = xbt_seg_load(v, seg, sel, &err);
    if (r < 0)
        return true;
    if (r == XBT_PF) {
        v->arch.cr2 = v->pf_lin;
        v->pf_pending = false;
    }
    xbt_raise(v, r, true, err, eip);
    return false;
}

static bool has_error_code(int vector)
{
    return vector == XBT_DF || (vector >= XBT_TS && vector <= XBT_PF) || vector == XBT_AC;
}

/* The fault-class exceptions but #DB: #DE #BR #UD #NM #TS #NP #SS #GP #PF #MF #AC #XM. */
static bool rf_fault(int vector)
{
    return vector == XBT_DE || (vector >= 5 && vector <= 7) ||
           (vector >= XBT_TS && vector <= XBT_PF) || vector == XBT_MF || vector == XBT_AC ||
           vector == XBT_XM;
}

/* The double-fault rules (Intel SDM vol. 3, table 6-5): benign, contributory, #PF. */
static int fault_class(int vector)
{
    if (vector == XBT_DE || (vector >= XBT_TS && vector <= XBT_GP))
        return 1; /* contributory */
    if (vector == XBT_PF)
        return 2;
    return 0;
}

/* Delivers an event; a fault met while delivering it is delivered next by the nesting
   rules (a second contributory fault or a fault after a #PF: #DF; a fault while
   delivering #DF: shutdown).  fault_eip: what such a fault pushes (the instruction's
   own EIP: for INT n that is the INT, not the next instruction ret_eip; after a task
   switch committed, the new task's EIP). */
static bool raise_nested(struct xbt_vcpu *v, int vector, bool has_err, uint32_t err,
                         uint32_t ret_eip, uint32_t fault_eip, bool software, bool intr,
                         int depth)
{
    if (vector < 32)
        v->stats.exceptions[vector]++;
    /* A stepped instruction that faulted or entered a handler (INT n, INT3, INTO: they
       clear TF): no single-step trap after it (run.c). */
    v->tf.faulted = true;
    if (!software && vector != XBT_DB)
        v->dbg.ghit = 0; /* nor a data breakpoint's (the event's frame may hit one) */
    else if (!software)
        v->arch.dr[7] &= ~XBT_DR7_GD; /* the handler may use the debug registers */
    uint32_t second_err = 0;
    bool moved = false;
    /* A fault-class exception pushes RF set (SDM vol. 3 18.3.1.1: all but the #DB of an
       instruction breakpoint; of the #DBs, DR7.GD's, marked db_fault); an interrupt or
       a trap pushes RF as it is (intr.c). */
    v->arch.push_rf = !intr && !software &&
                      (rf_fault(vector) || (vector == XBT_DB && v->arch.db_fault));
    v->arch.db_fault = false;
    int second = xbt_deliver_event(v, vector, has_err, err, ret_eip, software, &second_err,
                                   &moved);
    if (second == XBT_X_DONE) {
        if (v->arch.tss_trap) { /* through a task gate to a TSS with the T bit: #DB, a trap */
            v->arch.tss_trap = false;
            return raise_nested(v, XBT_DB, false, 0, v->ctx.eip, v->ctx.eip, false, false, 0);
        }
        return true;
    }
    v->arch.tss_trap = false;
    if (second == XBT_X_EXIT)
        return false;
    if (vector == XBT_DF || depth >= 4) {
        memset(&v->exit, 0, sizeof v->exit);
        v->exit.reason = XBT_EXIT_SHUTDOWN; /* triple fault */
        v->arch.shutdown = true; /* whatever the caller does next, the vCPU stops */
        return false;
    }
    if (second == XBT_PF) {
        v->arch.cr2 = v->pf_lin;
        v->pf_pending = false;
    }
    if (moved)
        fault_eip = v->ctx.eip;
    int c1 = fault_class(vector), c2 = fault_class(second);
    if ((c1 == 1 && c2 == 1) || (c1 == 2 && c2 != 0))
        return raise_nested(v, XBT_DF, true, 0, fault_eip, fault_eip, false, false, depth + 1);
    return raise_nested(v, second, true, second_err, fault_eip, fault_eip, false, false,
                        depth + 1);
}

bool xbt_raise(struct xbt_vcpu *v, int vector, bool has_error, uint32_t error, uint32_t eip)
{
    if (!has_error_code(vector))
        has_error = false;
    return raise_nested(v, vector, has_error, error, eip, eip, false, false, 0);
}

bool xbt_deliver_interrupt(struct xbt_vcpu *v, int vector, bool software, uint32_t next_eip,
                           uint32_t fault_eip)
{
    if (!software)
        v->stats.interrupts++;
    /* INT n, INT3 and INTO check the gate's DPL and push the next EIP; an external
       interrupt pushes the EIP it interrupted (next_eip == fault_eip then). */
    return raise_nested(v, vector, false, 0, next_eip, fault_eip, software, true, 0);
}
