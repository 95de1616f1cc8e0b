/*
 * sensitive.h - rules of sensitive instructions that the fast callouts (callouts_fast.c)
 * and the full ones (callouts.c, far.c, excp.c) both apply, written once.  Static inline
 * and general registers only: callouts_fast.c may call no function of another file.
 * The rest of the fast path (descriptor and stack reads, segment checks) is checked
 * against the full handlers by tests/guests/fast-full.sh.
 */
#ifndef XBT_RUNTIME_SENSITIVE_H
#define XBT_RUNTIME_SENSITIVE_H

#include "vcpu.h"

/* MOV from CRn: false for a control register the virtual CPU does not have (#UD). */
static inline bool xbt_cr_read(const struct xbt_vcpu *v, unsigned n, uint32_t *val)
{
    switch (n) {
    case 0: *val = v->arch.cr0; return true;
    case 2: *val = v->arch.cr2; return true;
    case 3: *val = v->arch.cr3; return true;
    case 4: *val = v->arch.cr4; return true;
    default: return false;
    }
}

/* The EFLAGS bits a POPF of `size` bytes may change at privilege `cpl` with the system
   flags `eflags_sys` (ctx.eflags_sys): IOPL at CPL 0 only, IF where CPL <= IOPL (an
   IRET's are these and RF).  A constant `cpl` folds it to a constant. */
static inline uint32_t xbt_popf_mask(unsigned cpl, uint32_t eflags_sys, unsigned size)
{
    uint32_t mask = XBT_EFLAGS_ARITH | XBT_EFLAGS_TF | XBT_EFLAGS_NT | XBT_EFLAGS_AC |
                    XBT_EFLAGS_ID;
    uint32_t iopl = (eflags_sys & XBT_EFLAGS_IOPL) >> XBT_EFLAGS_IOPL_SHIFT;
    if (cpl == 0)
        mask |= XBT_EFLAGS_IOPL;
    if (cpl <= iopl)
        mask |= XBT_EFLAGS_IF;
    return size == 2 ? mask & 0xFFFF : mask;
}

/* EFLAGS bits of `mask` from `value`, into the three places the vCPU keeps them
   (arithmetic flags, IF as ctx.vif, the rest); the bit the virtual CPU does not
   implement (RF) stays clear, and bit 1 set.  VM changes only where `mask` names it
   (an IRET from CPL 0, a task switch, an event leaving virtual-8086 mode, the
   embedder): no POPF or IRET mask does. */
static inline void xbt_eflags_write(struct xbt_vcpu *v, uint32_t value, uint32_t mask)
{
    uint32_t cur = (v->ctx.eflags & XBT_EFLAGS_ARITH) | v->ctx.vif | v->ctx.eflags_sys;
    uint32_t nv = (cur & ~mask) | (value & mask);
    nv &= XBT_EFLAGS_ARITH | XBT_EFLAGS_TF | XBT_EFLAGS_IF | XBT_EFLAGS_IOPL | XBT_EFLAGS_NT |
          XBT_EFLAGS_AC | XBT_EFLAGS_ID | XBT_EFLAGS_VM;
    v->ctx.eflags = nv & XBT_EFLAGS_ARITH;
    v->ctx.vif = nv & XBT_EFLAGS_IF;
    v->ctx.eflags_sys = (nv & ~(XBT_EFLAGS_ARITH | XBT_EFLAGS_IF)) | XBT_EFLAGS_FIXED;
}

/* Real-address mode (CR0.PE clear).  The CPL is 0 there (v->arch.cpl is kept so). */
static inline bool xbt_real_mode(const struct xbt_vcpu *v)
{
    return !(v->arch.cr0 & XBT_CR0_PE);
}

/* A segment register load in real mode (MOV, POP, LDS..LSS, far transfers, interrupts):
   selector and base = selector << 4, nothing read, nothing checked.  The limit and the
   other hidden attributes stay what the last protected-mode load left (big or "unreal"
   mode relies on it; QEMU TCG does the same), so a CS loaded here keeps its D bit.  A
   register that was unusable (null in protected mode) has nothing worth keeping: it
   gets the attributes it has after a reset (64 KiB writable data, 16-bit), which keeps
   the translator's limit checks from refusing every access through it. */
static inline void xbt_real_seg(struct xbt_vcpu *v, int seg, uint16_t sel)
{
    xbt_segment *s = &v->arch.seg[seg];
    if (s->unusable) {
        *s = (xbt_segment){ 0 };
        s->limit = 0xFFFF;
        s->type = seg == XBT_CS ? 0xB : 0x3;
        s->s = 1;
        s->present = 1;
    }
    s->selector = sel;
    s->base = (uint32_t)sel << 4;
    v->ctx.seg_sel[seg] = sel;
    v->ctx.seg_base[seg] = s->base;
    v->ctx.seg_limit[seg] = s->limit;
}

/* Virtual-8086 mode (EFLAGS.VM in protected mode; SDM vol. 3 ch. 20).  The CPL is 3
   there (v->arch.cpl is kept so); VM with PE clear (an embedder's odd state) is real
   mode, as the processor ignores VM then. */
static inline bool xbt_v86(const struct xbt_vcpu *v)
{
    return (v->ctx.eflags_sys & XBT_EFLAGS_VM) && (v->arch.cr0 & XBT_CR0_PE);
}

/* Real mode or virtual-8086 mode: segment loads without descriptors. */
static inline bool xbt_seg_plain(const struct xbt_vcpu *v)
{
    return xbt_real_mode(v) || xbt_v86(v);
}

/* A segment register load in virtual-8086 mode (MOV, POP, LDS..LSS, far transfers,
   IRET, entering the mode): selector, base = selector << 4, and the whole hidden part
   rewritten as the SDM's 20.1.1 has it (limit 0xFFFF, byte granular, 16-bit, DPL 3,
   present, accessed; CS readable code, the others writable data), nothing read,
   nothing checked.  QEMU TCG gives every register data attributes; CS's type here only
   says what the register holds. */
static inline void xbt_v86_seg(struct xbt_vcpu *v, int seg, uint16_t sel)
{
    xbt_segment *s = &v->arch.seg[seg];
    *s = (xbt_segment){ 0 };
    s->selector = sel;
    s->base = (uint32_t)sel << 4;
    s->limit = 0xFFFF;
    s->type = seg == XBT_CS ? 0xB : 0x3;
    s->s = 1;
    s->dpl = 3;
    s->present = 1;
    v->ctx.seg_sel[seg] = sel;
    v->ctx.seg_base[seg] = s->base;
    v->ctx.seg_limit[seg] = s->limit;
}

/* The load real mode or virtual-8086 mode makes (xbt_seg_plain). */
static inline void xbt_plain_seg(struct xbt_vcpu *v, int seg, uint16_t sel)
{
    if (xbt_v86(v))
        xbt_v86_seg(v, seg, sel);
    else
        xbt_real_seg(v, seg, sel);
}

/* STI once its privilege check passed: IF set, and when it was clear an interrupt
   shadow over the next instruction (at `next_eip`). */
static inline void xbt_sti(struct xbt_vcpu *v, uint32_t next_eip)
{
    if (!v->ctx.vif) {
        v->arch.interrupt_shadow = true;
        v->arch.shadow_eip = next_eip;
        v->arch.shadow_ss = false;
    }
    v->ctx.vif = XBT_EFLAGS_IF;
}

/* A segment register's load: the vCPU's copy and the three fields translated code reads. */
static inline void xbt_seg_put(struct xbt_vcpu *v, int seg, const xbt_segment *g)
{
    v->arch.seg[seg] = *g;
    v->ctx.seg_sel[seg] = g->selector;
    v->ctx.seg_base[seg] = g->base;
    v->ctx.seg_limit[seg] = g->limit;
}

/* After a return to CPL cpl: ES, FS, GS and DS holding data or non-conforming code of a
   lower DPL become null (IRET, far RET). */
static inline void xbt_null_data_segs_below(struct xbt_vcpu *v, unsigned cpl)
{
    static const int segs[4] = { XBT_ES, XBT_FS, XBT_GS, XBT_DS };
    for (int i = 0; i < 4; i++) {
        const xbt_segment *g = &v->arch.seg[segs[i]];
        bool conforming = (g->type & 8) && (g->type & 4);
        if (!g->unusable && g->s && !conforming && g->dpl < cpl) {
            xbt_segment null = { 0 };
            null.unusable = 1;
            xbt_seg_put(v, segs[i], &null);
        }
    }
}

/* SYSENTER (enter) or SYSEXIT once their checks passed (not real mode, IA32_SYSENTER_CS
   not null, SYSEXIT at CPL 0): flat CS and SS from IA32_SYSENTER_CS (+8, +16, +24) with
   no descriptor read, as the SDM specifies; SYSENTER clears IF, VM and RF and takes ESP
   and EIP from their MSRs, SYSEXIT takes them from ECX and EDX. */
static inline void xbt_sysenter_exit(struct xbt_vcpu *v, bool enter)
{
    uint16_t base = (uint16_t)(v->arch.msr_sysenter_cs & 0xFFFC);
    uint8_t dpl = enter ? 0 : 3;
    xbt_segment cs = { 0 }, ss = { 0 };
    cs.limit = ss.limit = 0xFFFFFFFFu;
    cs.type = 0xB;
    ss.type = 0x3;
    cs.s = ss.s = 1;
    cs.present = ss.present = 1;
    cs.db = ss.db = 1;
    cs.g = ss.g = 1;
    cs.dpl = ss.dpl = dpl;
    cs.selector = (uint16_t)(enter ? base : (base + 16) | 3);
    ss.selector = (uint16_t)(enter ? base + 8 : (base + 24) | 3);
    xbt_seg_put(v, XBT_CS, &cs);
    xbt_seg_put(v, XBT_SS, &ss);
    v->dx.kentries += enter && v->arch.cpl == 3; /* adaptive mode's measure */
    v->arch.cpl = dpl;
    if (enter) {
        xbt_eflags_write(v, 0, XBT_EFLAGS_IF | XBT_EFLAGS_VM | XBT_EFLAGS_RF);
        v->ctx.gpr[XBT_ESP] = (uint32_t)v->arch.msr_sysenter_esp;
        v->ctx.eip = (uint32_t)v->arch.msr_sysenter_eip;
    } else {
        v->ctx.gpr[XBT_ESP] = v->ctx.gpr[XBT_ECX];
        v->ctx.eip = v->ctx.gpr[XBT_EDX];
    }
}

#endif
