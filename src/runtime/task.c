/*
 * task.c - hardware task switches (Intel SDM vol. 3, chapter 7): JMP or CALL to a TSS or
 * through a task gate, an event through a task gate in the IDT, IRET with NT set back
 * through the TSS's link.  32- and 16-bit TSSs; a 32-bit TSS whose EFLAGS has VM is a
 * virtual-8086 task (segments loaded v86-style, CPL 3).
 *
 * Before the commit point everything that can fault is checked with the old task's
 * state untouched: the new TSS's limit and its whole image read, the old TSS's fields
 * and the descriptor bytes to be written walked for writing.  Then the old task's state
 * is saved, the busy bits and the link are written, TR, CR0.TS, CR3 (through the
 * runtime's CR3 path: windows and translations follow), EFLAGS, EIP and the registers
 * are loaded, and last LDTR and the segment registers with their checks: a fault there
 * is the new task's (the SDM's "in the context of the new task"), raised at its EIP.
 * The checks are made in QEMU's order (LDT, CS, SS, ES, DS, FS, GS); the SDM's table
 * 7-6 lists the conditions but no order.
 */
#include <string.h>

#include "vcpu.h"
#include "runtime/sensitive.h"
#include "runtime/xfer.h"

/* What a TSS holds for the task (16-bit: the low halves, no CR3, FS, GS, T). */
struct tss_image {
    uint32_t cr3, eip, eflags, gpr[8], trap;
    uint16_t seg[XBT_NSEG], ldt;
};

/* The range of the TSS the outgoing task's state is saved to. */
static void save_range(bool is32, uint32_t *at, uint32_t *len)
{
    *at = is32 ? 0x20 : 0x0E;
    *len = is32 ? 0x60 - 0x20 : 0x2A - 0x0E;
}

static uint32_t get32(const uint8_t *b, uint32_t at) { uint32_t x; memcpy(&x, b + at, 4); return x; }
static uint16_t get16(const uint8_t *b, uint32_t at) { uint16_t x; memcpy(&x, b + at, 2); return x; }

static bool read_image(struct xbt_vcpu *v, uint32_t base, bool is32, struct tss_image *t)
{
    uint8_t b[0x68];
    if (!xbt_read_lin(v, base, b, is32 ? 0x68 : 0x2C))
        return false;
    memset(t, 0, sizeof *t);
    if (is32) {
        t->cr3 = get32(b, 0x1C);
        t->eip = get32(b, 0x20);
        t->eflags = get32(b, 0x24);
        for (int i = 0; i < 8; i++)
            t->gpr[i] = get32(b, 0x28 + 4 * i);
        for (int i = 0; i < XBT_NSEG; i++)
            t->seg[i] = get16(b, 0x48 + 4 * i);
        t->ldt = get16(b, 0x60);
        t->trap = get16(b, 0x64) & 1;
    } else {
        t->eip = get16(b, 0x0E);
        t->eflags = get16(b, 0x10);
        for (int i = 0; i < 8; i++)
            t->gpr[i] = get16(b, 0x12 + 2 * i);
        for (int i = 0; i < 4; i++) /* ES CS SS DS; FS and GS become null (as QEMU) */
            t->seg[i] = get16(b, 0x22 + 2 * i);
        t->ldt = get16(b, 0x2A);
    }
    return true;
}

/* Saves the outgoing task's state into its TSS (checked writable before). */
static void save_state(struct xbt_vcpu *v, uint32_t eip, uint32_t eflags)
{
    bool is32 = v->arch.tr.type & 8;
    uint8_t b[0x60];
    uint32_t at, len;
    save_range(is32, &at, &len);
    xbt_read_lin(v, v->arch.tr.base + at, b + at, len); /* the words between stay as they are */
    if (is32) {
        memcpy(b + 0x20, &eip, 4);
        memcpy(b + 0x24, &eflags, 4);
        memcpy(b + 0x28, v->ctx.gpr, 32);
        for (int i = 0; i < XBT_NSEG; i++)
            memcpy(b + 0x48 + 4 * i, &v->arch.seg[i].selector, 2);
    } else {
        memcpy(b + 0x0E, &eip, 2);
        memcpy(b + 0x10, &eflags, 2);
        for (int i = 0; i < 8; i++)
            memcpy(b + 0x12 + 2 * i, &v->ctx.gpr[i], 2);
        for (int i = 0; i < 4; i++)
            memcpy(b + 0x22 + 2 * i, &v->arch.seg[i].selector, 2);
    }
    xbt_write_lin(v, v->arch.tr.base + at, b + at, len);
}

/* The byte of a GDT descriptor that holds its type (busy bit: 2). */
static uint32_t type_byte(const struct xbt_vcpu *v, uint16_t sel)
{
    return v->arch.gdtr.base + (sel & ~7u) + 5;
}

static void set_busy(struct xbt_vcpu *v, uint16_t sel, bool busy)
{
    xbt_update_lin8(v, type_byte(v, sel), busy ? 2 : 0, busy ? 0 : 2);
}

static void null_seg(struct xbt_vcpu *v, int seg, uint16_t sel)
{
    xbt_segment s = { 0 };
    s.selector = sel;
    s.unusable = 1;
    xbt_set_seg(v, seg, &s);
}

/* The new task's LDTR (after the commit: #TS with the LDT's selector). */
static int load_ldt(struct xbt_vcpu *v, uint16_t sel, uint32_t ext, uint32_t *err)
{
    *err = xbt_sel_err(sel, ext);
    if ((sel & ~3u) == 0)
        return XBT_X_DONE;
    if (sel & 4)
        return XBT_TS;
    uint64_t d;
    xbt_segment s;
    int r = xbt_desc_get(v, sel, XBT_TS, ext, &d, &s, err);
    if (r >= 0)
        return r;
    if (s.s || s.type != 2 || !s.present)
        return XBT_TS;
    v->arch.ldtr = s;
    return XBT_X_DONE;
}

/* One of the new task's segment registers, with table 7-6's checks (#TS; not present:
   #NP, for SS #SS). */
static int load_task_seg(struct xbt_vcpu *v, int seg, uint16_t sel, uint32_t ext, uint32_t *err)
{
    *err = xbt_sel_err(sel, ext);
    if ((sel & ~3u) == 0)
        return seg == XBT_CS || seg == XBT_SS ? XBT_TS : XBT_X_DONE;
    uint64_t d;
    xbt_segment s;
    int r = xbt_desc_get(v, sel, XBT_TS, ext, &d, &s, err);
    if (r >= 0)
        return r;
    unsigned rpl = sel & 3, dpl = s.dpl;
    if (seg == XBT_CS) {
        if (!xbt_is_code(&s) || (xbt_is_conforming(&s) ? dpl > rpl : dpl != rpl))
            return XBT_TS;
        if (!s.present)
            return XBT_NP;
    } else if (seg == XBT_SS) {
        if (!xbt_is_wdata(&s) || dpl != v->arch.cpl || rpl != v->arch.cpl)
            return XBT_TS;
        if (!s.present)
            return XBT_SSF;
    } else {
        if (!s.s || (xbt_is_code(&s) && !(s.type & 2)))
            return XBT_TS;
        if (!xbt_is_conforming(&s) && (dpl < v->arch.cpl || dpl < rpl))
            return XBT_TS;
        if (!s.present)
            return XBT_NP;
    }
    xbt_mark_accessed(v, sel, d);
    s.type |= 1;
    xbt_set_seg(v, seg, &s);
    return XBT_X_DONE;
}

/* Before the commit point: the new TSS's limit and image, the writes to come. */
static int precheck(struct xbt_vcpu *v, uint16_t sel, const xbt_segment *nt,
                    enum xbt_task_reason why, uint32_t ext, struct tss_image *img,
                    uint32_t *err)
{
    bool new32 = nt->type & 8, old32 = v->arch.tr.type & 8;
    *err = xbt_sel_err(sel, ext);
    if (nt->limit < (new32 ? 0x67u : 0x2Bu))
        return XBT_TS;
    v->pf_pending = false;
    if (!read_image(v, nt->base, new32, img))
        return xbt_mem_fault(v, XBT_TS, *err, err);
    uint32_t at, len;
    save_range(old32, &at, &len);
    bool ok = xbt_probe_lin(v, v->arch.tr.base + at, len, true, XBT_ACC_SYS);
    if (ok && (why == XBT_TASK_CALL || why == XBT_TASK_INT))
        ok = xbt_probe_lin(v, nt->base, 2, true, XBT_ACC_SYS);
    if (ok && (why == XBT_TASK_JMP || why == XBT_TASK_IRET) && (v->arch.tr.selector & ~7u))
        ok = xbt_probe_lin(v, type_byte(v, v->arch.tr.selector), 1, true, XBT_ACC_SYS);
    if (ok && why != XBT_TASK_IRET)
        ok = xbt_probe_lin(v, type_byte(v, sel), 1, true, XBT_ACC_SYS);
    if (!ok)
        return xbt_mem_fault(v, XBT_TS, *err, err);
    return XBT_X_DONE;
}

/* After the commit point: the new task's registers, then LDTR and the segments. */
static int load_task(struct xbt_vcpu *v, bool new32, const struct tss_image *img,
                     uint32_t ext, uint32_t *err)
{
    if (new32 && xbt_paging(v)) {
        v->arch.cr3 = img->cr3;
        xbt_cr3_changed(v); /* what MOV to CR3 does: windows, TLB, translations */
    }
    uint32_t keep = new32 ? 0 : 0xFFFF0000u;
    v->ctx.eip = img->eip;
    /* A 16-bit TSS has no VM bit: the new task is never in virtual-8086 mode. */
    xbt_set_eflags(v, img->eflags, new32 ? 0xFFFFFFFFu : 0xFFFFu | XBT_EFLAGS_VM);
    xbt_load_rf(v, new32 ? img->eflags : 0); /* the first instruction's breakpoint */
    for (int i = 0; i < 8; i++)
        v->ctx.gpr[i] = (v->ctx.gpr[i] & keep) | img->gpr[i];
    /* A 32-bit TSS whose EFLAGS has VM: a virtual-8086 task (CPL 3, segments loaded
       v86-style, no descriptor checks; the LDT still loaded, as the SDM's table 7-6 and
       QEMU have it). */
    bool v86 = new32 && (img->eflags & XBT_EFLAGS_VM);
    v->arch.cpl = v86 ? 3 : img->seg[XBT_CS] & 3;
    for (int i = 0; i < XBT_NSEG; i++) {
        if (v86)
            xbt_v86_seg(v, i, img->seg[i]);
        else
            null_seg(v, i, img->seg[i]);
    }
    memset(&v->arch.ldtr, 0, sizeof v->arch.ldtr);
    v->arch.ldtr.selector = img->ldt;
    v->arch.ldtr.unusable = 1;
    int r = load_ldt(v, img->ldt, ext, err);
    static const int order[XBT_NSEG] = { XBT_CS, XBT_SS, XBT_ES, XBT_DS, XBT_FS, XBT_GS };
    for (int i = 0; i < XBT_NSEG && r < 0 && !v86; i++)
        r = load_task_seg(v, order[i], img->seg[order[i]], ext, err);
    if (r >= 0)
        return r;
    if (v->ctx.eip > v->arch.seg[XBT_CS].limit) {
        *err = ext;
        return XBT_GP;
    }
    return XBT_X_DONE;
}

int xbt_task_switch(struct xbt_vcpu *v, uint16_t sel, uint64_t d, enum xbt_task_reason why,
                    uint32_t ret_eip, uint32_t ext, uint32_t *err, bool *moved)
{
    xbt_segment nt;
    xbt_seg_from_desc(&nt, sel, d);
    struct tss_image img;
    int r = precheck(v, sel, &nt, why, ext, &img, err);
    if (r != XBT_X_DONE)
        return r;
    /* Committed. */
    if (moved)
        *moved = true;
    uint32_t eflags = xbt_get_eflags(v);
    if (why == XBT_TASK_IRET)
        eflags &= ~XBT_EFLAGS_NT;
    if ((why == XBT_TASK_JMP || why == XBT_TASK_IRET) && (v->arch.tr.selector & ~7u))
        set_busy(v, v->arch.tr.selector, false);
    save_state(v, ret_eip, eflags);
    bool new32 = nt.type & 8;
    if (why == XBT_TASK_CALL || why == XBT_TASK_INT) {
        xbt_write_lin(v, nt.base, &v->arch.tr.selector, 2);
        img.eflags |= XBT_EFLAGS_NT;
    }
    if (why != XBT_TASK_IRET)
        set_busy(v, sel, true);
    nt.type |= 2;
    nt.selector = sel;
    v->arch.tr = nt;
    v->arch.cr0 |= XBT_CR0_TS;
    v->arch.dr[7] &= ~0x155u; /* the local breakpoint enables (L0-L3, LE) */
    xbt_watch_guest_sync(v);
    r = load_task(v, new32, &img, ext, err);
    if (r == XBT_X_DONE && img.trap) {
        v->arch.dr[6] |= XBT_DR6_BT; /* the debug trap of the new TSS's T bit */
        v->arch.tss_trap = true;
    }
    return r;
}

int xbt_task_gate(struct xbt_vcpu *v, uint64_t gate, enum xbt_task_reason why,
                  uint32_t ret_eip, uint32_t ext, uint32_t *err, bool *moved)
{
    uint16_t tsel = (uint16_t)(gate >> 16);
    *err = xbt_sel_err(tsel, ext);
    if (tsel & 4)
        return XBT_GP; /* a TSS is in the GDT (QEMU answers #TS here) */
    uint64_t d;
    xbt_segment s;
    int r = xbt_desc_get(v, tsel, XBT_GP, ext, &d, &s, err);
    if (r >= 0)
        return r;
    if (s.s || (s.type & 7) != 1) /* an available 16- or 32-bit TSS */
        return XBT_GP;
    if (!s.present)
        return XBT_NP;
    return xbt_task_switch(v, tsel, d, why, ret_eip, ext, err, moved);
}

int xbt_task_return(struct xbt_vcpu *v, uint32_t next_eip, uint32_t *err)
{
    uint16_t link = 0;
    v->pf_pending = false;
    if (!xbt_read_lin(v, v->arch.tr.base, &link, 2))
        return xbt_mem_fault(v, XBT_TS, xbt_sel_err(v->arch.tr.selector, 0), err);
    *err = xbt_sel_err(link, 0);
    if (link & 4)
        return XBT_TS;
    uint64_t d;
    xbt_segment s;
    int r = xbt_desc_get(v, link, XBT_TS, 0, &d, &s, err);
    if (r >= 0)
        return r;
    if (s.s || (s.type & 7) != 3) /* the task returned to is busy */
        return XBT_TS;
    if (!s.present)
        return XBT_NP;
    return xbt_task_switch(v, link, d, XBT_TASK_IRET, next_eip, 0, err, NULL);
}
