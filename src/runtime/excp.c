/*
 * excp.c - EFLAGS, descriptors, segment loads, and exception/interrupt delivery
 * through the guest IDT (protected mode, paging off, same-privilege gates for now).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vcpu.h"
#include "shadow-mmu/walk.h"

uint32_t xbt_get_eflags(const struct xbt_vcpu *v)
{
    return (v->ctx.eflags & XBT_EFLAGS_ARITH) | v->ctx.vif | v->ctx.eflags_sys | 0x2;
}

void xbt_set_eflags(struct xbt_vcpu *v, uint32_t value, uint32_t mask)
{
    uint32_t cur = xbt_get_eflags(v);
    uint32_t nv = (cur & ~mask) | (value & mask);
    /* Bits the virtual CPU implements: arithmetic, TF, IF, IOPL, NT, AC, ID. */
    nv &= XBT_EFLAGS_ARITH | XBT_EFLAGS_TF | XBT_EFLAGS_IF | XBT_EFLAGS_IOPL | XBT_EFLAGS_NT |
          XBT_EFLAGS_AC | XBT_EFLAGS_ID;
    v->ctx.eflags = nv & XBT_EFLAGS_ARITH;
    v->ctx.vif = nv & XBT_EFLAGS_IF;
    v->ctx.eflags_sys = (nv & ~(XBT_EFLAGS_ARITH | XBT_EFLAGS_IF)) | 0x2;
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
    if (gpa + 4 > v->vm->ram_size)
        return false;
    memcpy(val, v->vm->ram + gpa, 4);
    return true;
}

static bool pt_write(void *opaque, uint64_t gpa, uint32_t val)
{
    struct xbt_vcpu *v = opaque;
    if (gpa + 4 > v->vm->ram_size)
        return false;
    if (v->vm->code_prot[gpa >> 12])
        xbt_vm_invalidate(v->vm, gpa, 4);
    memcpy(v->vm->ram + gpa, &val, 4);
    return true;
}

bool xbt_walk_lin(struct xbt_vcpu *v, uint32_t lin, bool write, bool user, bool fetch,
                  xbt_walk_result *r)
{
    xbt_walk_req q = { v->cr0, v->cr3, v->cr4, lin, write, user, fetch };
    return xbt_walk(&q, pt_read, pt_write, v, r);
}

/* One linear access that stays within a page: its physical address, or false with a
   pending #PF (v->pf_*) or for memory that is not RAM.  Successful walks are kept in a
   small software TLB (v->stlb) that every TLB-flushing event empties (xbt_stlb_flush:
   CR3 loads, INVLPG, paging mode changes): interrupt delivery reads the IDT, the GDT
   and writes the stack frame through here, each a walk before. */
static __attribute__((noinline)) bool lin_page_paged(struct xbt_vcpu *v, uint32_t lin,
                                                     uint32_t len, bool write, uint64_t *gpa)
{
    {
        struct xbt_stlb_entry *e = &v->stlb[(lin >> 12) & (XBT_STLB_SIZE - 1)];
        if (e->gen == v->stlb_gen && e->page == lin >> 12 && (!write || e->writable)) {
            *gpa = ((uint64_t)e->frame << 12) | (lin & 0xFFF);
            return *gpa + len <= v->vm->ram_size;
        }
        xbt_walk_result r;
        if (!xbt_walk_lin(v, lin, write, false, false, &r)) {
            if (!r.bus_error) {
                v->pf_pending = true;
                v->pf_lin = lin;
                v->pf_err = r.error_code;
            }
            return false;
        }
        *gpa = r.gpa;
        if (r.gpa < v->vm->ram_size)
            *e = (struct xbt_stlb_entry){ lin >> 12, (uint32_t)(r.gpa >> 12), v->stlb_gen,
                                          r.writable && r.dirty };
    }
    return *gpa + len <= v->vm->ram_size;
}

static inline bool lin_page(struct xbt_vcpu *v, uint32_t lin, uint32_t len, bool write,
                            uint64_t *gpa)
{
    if (xbt_paging(v))
        return lin_page_paged(v, lin, len, write, gpa);
    *gpa = lin;
    return (uint64_t)lin + len <= v->vm->ram_size;
}

void xbt_stlb_flush(struct xbt_vcpu *v)
{
    if (++v->stlb_gen == 0) { /* wrapped: make every entry stale for good */
        memset(v->stlb, 0, sizeof v->stlb);
        v->stlb_gen = 1;
    }
}

/* Implicit and callout accesses to guest linear memory (supervisor rights). */
bool xbt_read_lin(struct xbt_vcpu *v, uint32_t lin, void *dst, uint32_t len)
{
    uint8_t *d = dst;
    while (len) {
        uint32_t n = 4096 - (lin & 0xFFF);
        if (n > len)
            n = len;
        uint64_t gpa;
        if (!lin_page(v, lin, n, false, &gpa))
            return false;
        memcpy(d, v->vm->ram + gpa, n);
        d += n, lin += n, len -= n;
    }
    return true;
}

bool xbt_write_lin(struct xbt_vcpu *v, uint32_t lin, const void *src, uint32_t len)
{
    const uint8_t *p = src;
    while (len) {
        uint32_t n = 4096 - (lin & 0xFFF);
        if (n > len)
            n = len;
        uint64_t gpa;
        if (!lin_page(v, lin, n, true, &gpa))
            return false;
        if (v->vm->code_prot[gpa >> 12])
            xbt_vm_invalidate(v->vm, gpa, n);
        memcpy(v->vm->ram + gpa, p, n);
        p += n, lin += n, len -= n;
    }
    return true;
}

/* Reads the 8-byte descriptor for selector sel from the GDT or LDT.  false if the
   selector is beyond the table's limit (or the table is not in RAM). */
bool xbt_read_descriptor(struct xbt_vcpu *v, uint16_t sel, uint64_t *desc)
{
    uint32_t index = sel & ~7u;
    uint32_t base, limit;
    if (sel & 4) {
        if (v->ldtr.unusable || v->ldtr.selector == 0)
            return false;
        base = v->ldtr.base;
        limit = v->ldtr.limit;
    } else {
        base = v->gdtr.base;
        limit = v->gdtr.limit;
    }
    if (index + 7 > limit)
        return false;
    return xbt_read_lin(v, base + index, desc, 8);
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
    v->seg[seg] = *s;
    v->ctx.seg_sel[seg] = s->selector;
    v->ctx.seg_base[seg] = s->base;
    v->ctx.seg_limit[seg] = s->limit;
}

void xbt_set_seg(struct xbt_vcpu *v, int seg, const xbt_segment *s)
{
    set_seg(v, seg, s);
}

/* Sets the accessed bit of a descriptor, as the CPU does on a load. */
static void mark_accessed(struct xbt_vcpu *v, uint16_t sel, uint64_t d)
{
    if (d & (1ull << 40))
        return;
    uint32_t base = (sel & 4) ? v->ldtr.base : v->gdtr.base;
    uint8_t b = (uint8_t)(((d >> 40) & 0xFF) | 1);
    xbt_write_lin(v, base + (sel & ~7u) + 5, &b, 1);
}

/*
 * Loads data/stack segment register seg with selector sel, with the checks of MOV Sreg
 * (Intel SDM vol. 2, MOV): raises #GP/#SS/#NP with the selector as error code and
 * returns false if the load faults.
 */
bool xbt_load_seg(struct xbt_vcpu *v, int seg, uint16_t sel, uint32_t eip)
{
    uint32_t rpl = sel & 3;
    if ((sel & ~3u) == 0) {
        if (seg == XBT_SS) {
            xbt_raise(v, XBT_GP, true, 0, eip);
            return false;
        }
        xbt_segment s;
        memset(&s, 0, sizeof s);
        s.selector = sel;
        s.unusable = 1;
        set_seg(v, seg, &s);
        return true;
    }
    uint64_t d;
    if (!xbt_read_descriptor(v, sel, &d)) {
        xbt_raise(v, XBT_GP, true, sel & 0xFFFC, eip);
        return false;
    }
    xbt_segment s;
    xbt_seg_from_desc(&s, sel, d);
    bool code = s.type & 8, rw = s.type & 2;
    if (seg == XBT_SS) {
        if (rpl != v->cpl || !s.s || code || !rw || s.dpl != v->cpl) {
            xbt_raise(v, XBT_GP, true, sel & 0xFFFC, eip);
            return false;
        }
        if (!s.present) {
            xbt_raise(v, XBT_SSF, true, sel & 0xFFFC, eip);
            return false;
        }
    } else {
        if (!s.s || (code && !rw)) {
            xbt_raise(v, XBT_GP, true, sel & 0xFFFC, eip);
            return false;
        }
        /* Data or non-conforming code: RPL and CPL must not exceed DPL. */
        bool conforming = code && (s.type & 4);
        if (!conforming && (rpl > s.dpl || v->cpl > s.dpl)) {
            xbt_raise(v, XBT_GP, true, sel & 0xFFFC, eip);
            return false;
        }
        if (!s.present) {
            xbt_raise(v, XBT_NP, true, sel & 0xFFFC, eip);
            return false;
        }
    }
    mark_accessed(v, sel, d);
    s.type |= 1;
    set_seg(v, seg, &s);
    return true;
}

/* Pushes a dword on the guest stack (SS base honoured).  false if not RAM. */
static bool push32(struct xbt_vcpu *v, uint32_t *esp, uint32_t val)
{
    *esp -= 4;
    return xbt_write_lin(v, v->seg[XBT_SS].base + *esp, &val, 4);
}

static bool has_error_code(int vector)
{
    return vector == XBT_DF || (vector >= XBT_TS && vector <= XBT_PF) || vector == XBT_AC;
}

/*
 * Delivers interrupt or exception `vector` through the IDT.  fault_eip is what an
 * exception pushes for a fault (the faulting instruction); next_eip what a software
 * interrupt or trap pushes.  Returns false if delivery itself failed (the caller then
 * raises #GP/#DF per the nesting rules via xbt_raise).
 */
static int deliver(struct xbt_vcpu *v, int vector, bool has_err, uint32_t err, uint32_t ret_eip,
                   bool check_dpl)
{
    if (!(v->cr0 & XBT_CR0_PE))
        return XBT_GP; /* real mode is not supported */
    uint32_t off = (uint32_t)vector * 8;
    if (off + 7 > v->idtr.limit)
        return XBT_GP;
    uint64_t g;
    if (!xbt_read_lin(v, v->idtr.base + off, &g, 8))
        return v->pf_pending ? XBT_PF : XBT_GP;
    uint32_t type = (g >> 40) & 0x1F, dpl = (g >> 45) & 3, present = (g >> 47) & 1;
    bool is32 = type == 0xE || type == 0xF, is16 = type == 0x6 || type == 0x7;
    if (!is32 && !is16)
        return XBT_GP; /* task gates and others: not supported, #GP as for a bad type */
    if (check_dpl && dpl < v->cpl)
        return XBT_GP;
    if (!present)
        return XBT_NP;
    uint16_t csel = (uint16_t)(g >> 16);
    uint32_t target = (uint32_t)(g & 0xFFFF) | (uint32_t)((g >> 48) & 0xFFFF) << 16;
    uint64_t cd;
    if ((csel & ~3u) == 0 || !xbt_read_descriptor(v, csel, &cd))
        return XBT_GP;
    xbt_segment cs;
    xbt_seg_from_desc(&cs, csel, cd);
    if (!cs.s || !(cs.type & 8) || cs.dpl > v->cpl)
        return XBT_GP;
    if (!cs.present)
        return XBT_NP;
    uint32_t eflags = xbt_get_eflags(v);
    uint32_t esp = v->ctx.gpr[XBT_ESP];
    if (cs.dpl < v->cpl && !(cs.type & 4)) {
        /* To an inner privilege level: the stack of that level from the TSS (SS0:ESP0
           for ring 0), then the old SS:ESP, EFLAGS, CS:EIP and the error code on it. */
        if (is16 || cs.dpl != 0 || v->tr.unusable || !v->tr.present)
            return XBT_GP;
        uint32_t esp0 = 0, ss0 = 0;
        if (!xbt_read_lin(v, v->tr.base + 4, &esp0, 4) ||
            !xbt_read_lin(v, v->tr.base + 8, &ss0, 2))
            return v->pf_pending ? XBT_PF : XBT_GP;
        uint64_t sd;
        xbt_segment ss;
        if ((ss0 & ~3u) == 0 || (ss0 & 3) != 0 || !xbt_read_descriptor(v, (uint16_t)ss0, &sd))
            return XBT_TS;
        xbt_seg_from_desc(&ss, (uint16_t)ss0, sd);
        if (!ss.s || (ss.type & 8) || !(ss.type & 2) || ss.dpl != 0)
            return XBT_TS;
        if (!ss.present)
            return XBT_SSF;
        uint32_t nesp = esp0;
        uint32_t words[6] = { v->seg[XBT_SS].selector, esp, eflags, v->seg[XBT_CS].selector,
                              ret_eip, err };
        int n = has_err ? 6 : 5;
        for (int i = 0; i < n; i++) {
            nesp -= 4;
            if (!xbt_write_lin(v, ss.base + nesp, &words[i], 4))
                return v->pf_pending ? XBT_PF : XBT_SSF;
        }
        ss.type |= 1;
        set_seg(v, XBT_SS, &ss);
        v->ctx.gpr[XBT_ESP] = nesp;
        v->cpl = 0;
        cs.selector = (uint16_t)(csel & ~3u);
        set_seg(v, XBT_CS, &cs);
    } else {
        if (cs.dpl != v->cpl && !(cs.type & 4))
            return XBT_GP;
        bool ok = push32(v, &esp, eflags) && push32(v, &esp, v->seg[XBT_CS].selector) &&
                  push32(v, &esp, ret_eip);
        if (ok && has_err)
            ok = push32(v, &esp, err);
        if (!ok)
            return v->pf_pending ? XBT_PF : XBT_SSF;
        v->ctx.gpr[XBT_ESP] = esp;
        cs.selector = (uint16_t)((csel & ~3u) | v->cpl);
        set_seg(v, XBT_CS, &cs);
    }
    if (is16)
        target &= 0xFFFF;
    v->ctx.eip = target;
    /* Interrupt gates clear IF; both clear TF, NT, RF (and VM). */
    uint32_t clear = XBT_EFLAGS_TF | XBT_EFLAGS_NT | XBT_EFLAGS_RF;
    if ((type & 1) == 0)
        clear |= XBT_EFLAGS_IF;
    xbt_set_eflags(v, 0, clear);
    v->halted = false;
    v->interrupt_shadow = false;
    return -1;
}

/*
 * IRET (32-bit) to an outer privilege level: after EIP, CS and EFLAGS the stack holds the
 * new ESP and SS.  Checks as the SDM's IRET pseudo-code: CS a code segment whose DPL is
 * its RPL (or lower for conforming), SS writable data with RPL = DPL = the new CPL;
 * data segments the new level may not use become null.  Returns -1 on success or the
 * vector of the fault (*err its error code).  esp points after the popped EFLAGS.
 * xbt_return_outer is the same for RETF too (has_flags false; esp after the popped CS
 * and the immediate), with 16- or 32-bit operands.
 */
int xbt_iret_outer(struct xbt_vcpu *v, uint32_t neip, uint16_t ncs, uint32_t nfl, uint32_t esp,
                   uint32_t *err)
{
    return xbt_return_outer(v, neip, ncs, true, nfl, esp, 4, err);
}

int xbt_return_outer(struct xbt_vcpu *v, uint32_t neip, uint16_t ncs, bool has_flags,
                     uint32_t nfl, uint32_t esp, unsigned osz, uint32_t *err)
{
    unsigned rpl = ncs & 3;
    uint32_t nesp = 0, nss = 0;
    *err = 0;
    if (!xbt_read_lin(v, v->seg[XBT_SS].base + esp, &nesp, osz) ||
        !xbt_read_lin(v, v->seg[XBT_SS].base + esp + osz, &nss, 2))
        return v->pf_pending ? XBT_PF : XBT_SSF;
    uint64_t cd, sd;
    xbt_segment cs, ss;
    *err = ncs & ~3u;
    if ((ncs & ~3u) == 0 || !xbt_read_descriptor(v, ncs, &cd))
        return XBT_GP;
    xbt_seg_from_desc(&cs, ncs, cd);
    if (!cs.s || !(cs.type & 8) || ((cs.type & 4) ? cs.dpl > rpl : cs.dpl != rpl))
        return XBT_GP;
    if (!cs.present)
        return XBT_NP;
    *err = nss & ~3u;
    if ((nss & ~3u) == 0 || (nss & 3) != rpl || !xbt_read_descriptor(v, (uint16_t)nss, &sd))
        return XBT_GP;
    xbt_seg_from_desc(&ss, (uint16_t)nss, sd);
    if (!ss.s || (ss.type & 8) || !(ss.type & 2) || ss.dpl != rpl)
        return XBT_GP;
    if (!ss.present)
        return XBT_SSF;
    /* Committed.  EFLAGS (IRET): the old CPL (0 here) may change IF and IOPL. */
    if (has_flags) {
        uint32_t mask = XBT_EFLAGS_ARITH | XBT_EFLAGS_TF | XBT_EFLAGS_NT | XBT_EFLAGS_AC |
                        XBT_EFLAGS_ID | XBT_EFLAGS_IF;
        if (v->cpl == 0)
            mask |= XBT_EFLAGS_IOPL;
        if (osz == 2)
            mask &= 0xFFFF;
        xbt_set_eflags(v, nfl, mask);
    }
    cs.type |= 1;
    ss.type |= 1;
    set_seg(v, XBT_CS, &cs);
    set_seg(v, XBT_SS, &ss);
    v->ctx.gpr[XBT_ESP] = nesp;
    v->ctx.eip = neip;
    v->cpl = rpl;
    for (int sg = 0; sg < XBT_NSEG; sg++) {
        if (sg == XBT_CS || sg == XBT_SS)
            continue;
        xbt_segment *d = &v->seg[sg];
        bool conforming_code = (d->type & 0xC) == 0xC;
        if (!d->unusable && d->s && !conforming_code && d->dpl < rpl) {
            xbt_segment null = { 0 };
            null.unusable = 1;
            set_seg(v, sg, &null);
        }
    }
    *err = 0;
    return -1;
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

/* fault_eip: what a fault met while delivering pushes (the instruction's own EIP: for
   INT n that is the INT, not the next instruction ret_eip). */
static bool raise_nested(struct xbt_vcpu *v, int vector, bool has_err, uint32_t err,
                         uint32_t ret_eip, uint32_t fault_eip, bool check_dpl, int depth)
{
    if (vector < 32)
        v->stats.exceptions[vector]++;
    int r = deliver(v, vector, has_err, err, ret_eip, check_dpl);
    if (r < 0)
        return true;
    if (vector == XBT_DF || depth >= 2) {
        memset(&v->exit, 0, sizeof v->exit);
        v->exit.reason = XBT_EXIT_SHUTDOWN; /* triple fault */
        return false;
    }
    int second = r;
    uint32_t second_err = 0;
    if (second == XBT_GP || second == XBT_NP || second == XBT_SSF)
        second_err = ((uint32_t)vector * 8 + 2) | (check_dpl ? 0 : 1); /* IDT bit, EXT */
    if (second == XBT_PF) {
        v->cr2 = v->pf_lin;
        second_err = v->pf_err;
        v->pf_pending = false;
    }
    int c1 = fault_class(vector), c2 = fault_class(second);
    if ((c1 == 1 && c2 == 1) || (c1 == 2 && c2 != 0))
        return raise_nested(v, XBT_DF, true, 0, fault_eip, fault_eip, false, depth + 1);
    return raise_nested(v, second, true, second_err, fault_eip, fault_eip, false, depth + 1);
}

bool xbt_raise(struct xbt_vcpu *v, int vector, bool has_error, uint32_t error, uint32_t eip)
{
    if (!has_error_code(vector))
        has_error = false;
    return raise_nested(v, vector, has_error, error, eip, eip, false, 0);
}

bool xbt_deliver_interrupt(struct xbt_vcpu *v, int vector, bool software, uint32_t next_eip,
                           uint32_t fault_eip)
{
    if (!software)
        v->stats.interrupts++;
    /* INT n, INT3 and INTO check the gate's DPL and push the next EIP; an external
       interrupt pushes the EIP it interrupted (next_eip == fault_eip then). */
    return raise_nested(v, vector, false, 0, next_eip, fault_eip, software, 0);
}
