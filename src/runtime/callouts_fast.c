/*
 * callouts_fast.c - the callouts that run with the guest's x87/SSE state still live in
 * the host registers: the frequent, simple ones (POPF, CLI, STI, MOV to and from CR2/CR3,
 * MOV from CR0/CR4, RDTSC, RDTSCP, RDPID, MOV and POP to DS/ES/FS/GS, IRET to CPL 0) at
 * CPL 0, and the two halves of a system call: INT n to ring 0 (from CPL 3 too) and IRET
 * from CPL 0 to CPL 3.  In
 * real mode MOV and POP to DS/ES/FS/GS load selector and base (sensitive.h); IRET
 * declines there, and POPF, POP Sreg and IRET decline on a 16-bit stack (SS.B clear).
 *
 * WARNING: this file is compiled with -mgeneral-regs-only and must stay self-contained:
 * no calls to libc or to any function of another file (their code may use vector
 * registers, e.g. glibc's memcpy), so nothing here can touch the guest's x87/SSE
 * registers (the rules it shares with the full handlers are sensitive.h's static inline
 * functions, compiled in here).  Anything unusual returns XBT_FAST_DECLINE, and the stub
 * then saves the x87/SSE state and runs the full handler (callouts.c), which has every
 * rule.
 *
 * Measured on the nanobenchmark guest: a PUSHF/POPF pair 303 -> 47 cycles, a CR3 write
 * 288 -> 32 cycles, when the fxsave64/fxrstor64 pair of the full path is skipped.
 */
#include "vcpu.h"
#include "runtime/sensitive.h"

#define XBT_FAST_DONE 0
#define XBT_FAST_DECLINE 1
#define XBT_FAST_LEAVE 2 /* ctx.eip changed: leave to the dispatcher (jit_stubs.S) */

int xbt_callout_fast(struct xbt_jit_ctx *ctx);

static inline int done(struct xbt_vcpu *v, const struct xbt_callout_site *s)
{
    v->stats.callouts[s->kind]++;
    v->stats.fast_callouts++;
    v->ctx.eip = s->eip + s->len;
    /* A kick while this ran found RIP outside translated code: leave now instead. */
    if (__atomic_load_n((const bool *)&v->kick, __ATOMIC_RELAXED))
        return XBT_FAST_LEAVE;
    return XBT_FAST_DONE;
}

static inline uint32_t reg_get(const struct xbt_vcpu *v, uint8_t r)
{
    return v->ctx.gpr[r & 7];
}

/* Guest linear [lin, lin + len) as host memory, if it is there without a walk or a fault:
   paging off, RAM; paging on, pages the K-window has mapped now (a mapping the window
   holds is a TLB entry: using it is what the CPU would do).  NULL: the full handler
   (also for a range that wraps at 4 GiB, which the full handler walks page by page). */
static const uint8_t *lin_ptr(const struct xbt_vcpu *v, uint32_t lin, uint32_t len)
{
    const xbt_vm *vm = v->vm;
    if ((uint64_t)lin + len > (1ull << 32))
        return NULL; /* wraps at 4 GiB: the window is not contiguous there */
    if (!(v->arch.cr0 & XBT_CR0_PG))
        return len && xbt_phys_ram(&vm->phys, lin, len) ? vm->phys.view + lin : NULL;
    const struct xbt_wmap *m = &v->mmu->cur->wmap[XBT_WINDOW_K];
    for (uint32_t p = lin >> 12; p <= (uint32_t)(((uint64_t)lin + len - 1) >> 12); p++)
        if (!(m->page[p >> 6] & (1ull << (p & 63))))
            return NULL;
    return v->mmu->kbase + lin;
}

/* The GDT descriptor of sel (nonzero index, TI=0), read without a walk; false: the
   full handler decides. */
static bool gdt_desc(const struct xbt_vcpu *v, uint32_t sel, uint64_t *d)
{
    uint32_t index = sel & ~7u;
    if ((sel & 4) || index == 0 || index + 7 > v->arch.gdtr.limit)
        return false;
    const uint8_t *p = lin_ptr(v, v->arch.gdtr.base + index, 8);
    if (!p)
        return false;
    __builtin_memcpy(d, p, 8);
    return true;
}

/* Base and limit (granularity applied) of a descriptor, as excp.c's xbt_seg_from_desc
   computes them (this file cannot call it). */
static inline uint32_t desc_base(uint64_t d)
{
    return (uint32_t)((d >> 16) & 0xFFFFFF) | (uint32_t)((d >> 56) & 0xFF) << 24;
}

static inline uint32_t desc_limit(uint64_t d)
{
    uint32_t limit = (uint32_t)(d & 0xFFFF) | (uint32_t)((d >> 48) & 0xF) << 16;
    return ((d >> 55) & 1) ? (limit << 12) | 0xFFF : limit;
}

/* The segment register contents of descriptor d loaded with selector sel (excp.c's
   xbt_seg_from_desc, which this file cannot call). */
static inline xbt_segment seg_of(uint16_t sel, uint64_t d)
{
    xbt_segment g;
    g.selector = sel;
    g.base = desc_base(d);
    g.g = (d >> 55) & 1;
    g.limit = desc_limit(d);
    g.type = (uint8_t)((d >> 40) & 0xF);
    g.s = (d >> 44) & 1;
    g.dpl = (uint8_t)((d >> 45) & 3);
    g.present = (d >> 47) & 1;
    g.db = (d >> 54) & 1;
    g.avl = (d >> 52) & 1;
    g.unusable = 0;
    return g;
}

/* Guest linear [lin, lin + len) as host memory to write.  Paging on: if the K-window
   maps every page of it writable now (its probe bytes, which the shadow MMU keeps with
   the bitmap): a store there is what translated code makes through the same mapping
   (no page holding translated code, no clean page of a dirty log, the guest's dirty
   flag set).  Paging off (one vCPU: with more, a write beside another's translation
   needs the fences of xbt_code_recheck): RAM, not ROM, no clean page of a dirty log
   (xbt_phys_write_ok) and no page this or another cache holds code from (xbt_code_page:
   the VM's code_prot, which every shadow MMU of the runtime shares, and code_own),
   which is what a store through the identity K-window may reach without a fault.
   NULL: the full handler. */
static uint8_t *lin_ptr_w(const struct xbt_vcpu *v, uint32_t lin, uint32_t len)
{
    if ((uint64_t)lin + len > (1ull << 32) || !len)
        return NULL;
    uint32_t last = (uint32_t)(((uint64_t)lin + len - 1) >> 12);
    if (!(v->arch.cr0 & XBT_CR0_PG)) {
        const xbt_vm *vm = v->vm;
        if (vm->n_vcpus != 1)
            return NULL;
        for (uint32_t p = lin >> 12; p <= last; p++)
            if (!xbt_phys_write_ok(&vm->phys, p) || xbt_code_page(v->mmu, p))
                return NULL;
        return vm->phys.view + lin;
    }
    const uint8_t *probe = v->mmu->cur->wmap[XBT_WINDOW_K].probe;
    for (uint32_t p = lin >> 12; p <= last; p++)
        if (probe[p] != XBT_PROBE_WRITE)
            return NULL;
    return v->mmu->kbase + lin;
}

/* A code segment descriptor present and already accessed (the full handler sets the
   accessed flag), of privilege dpl and not conforming. */
static inline bool code_desc_ok(uint64_t d, unsigned dpl)
{
    uint32_t type = (d >> 40) & 0xF;
    return ((d >> 44) & 1) && ((d >> 47) & 1) && (type & 8) && !(type & 4) && (type & 1) &&
           ((d >> 45) & 3) == dpl;
}

/* A writable data segment descriptor present and accessed, of privilege dpl (the
   checks of a stack segment load). */
static inline bool stack_desc_ok(uint64_t d, unsigned dpl)
{
    uint32_t type = (d >> 40) & 0xF;
    return ((d >> 44) & 1) && ((d >> 47) & 1) && !(type & 8) && (type & 2) && (type & 1) &&
           ((d >> 45) & 3) == dpl;
}

/*
 * INT n through a 32-bit interrupt or trap gate to a ring-0, non-conforming code
 * segment (intr.c's through_gate, the common case only): from CPL 3 with the ring-0
 * stack of the TSS, from CPL 0 on the current stack; protected mode, paging on or off.
 * Everything it reads is readable without a walk (lin_ptr), the frame writable without
 * one (lin_ptr_w), SS flat (expand-up, 4 GiB, 32-bit); anything else, real mode and
 * every fault included, is the full handler's.  The checks are the
 * SDM's for this case; none fails silently here: a fault declines before any change.
 */
static __attribute__((noinline)) int fast_int(struct xbt_vcpu *v,
                                             const struct xbt_callout_site *s)
{
    unsigned cpl = v->arch.cpl;
    uint32_t eflags = (v->ctx.eflags & XBT_EFLAGS_ARITH) | v->ctx.vif | v->ctx.eflags_sys |
                      XBT_EFLAGS_FIXED;
    if ((cpl != 0 && cpl != 3) || xbt_real_mode(v) ||
        (eflags & (XBT_EFLAGS_VM | XBT_EFLAGS_TF)) || (v->arch.cr4 & XBT_CR4_SMAP))
        return XBT_FAST_DECLINE;
    uint32_t vector = s->imm & 0xFF, off = vector * 8;
    if (off + 7 > v->arch.idtr.limit)
        return XBT_FAST_DECLINE;
    const uint8_t *gp = lin_ptr(v, v->arch.idtr.base + off, 8);
    if (!gp)
        return XBT_FAST_DECLINE;
    uint64_t g;
    __builtin_memcpy(&g, gp, 8);
    uint32_t gtype = (g >> 40) & 0x1F; /* with the S bit */
    if ((gtype != 0xE && gtype != 0xF) || ((g >> 45) & 3) < cpl || !((g >> 47) & 1))
        return XBT_FAST_DECLINE; /* a task gate, #GP or #NP */
    uint16_t csel = (uint16_t)(g >> 16);
    uint32_t target = (uint32_t)(g & 0xFFFF) | (uint32_t)(g >> 48) << 16;
    uint64_t cd;
    if (!gdt_desc(v, csel, &cd) || !code_desc_ok(cd, 0) || target > desc_limit(cd))
        return XBT_FAST_DECLINE;
    xbt_segment ss;
    uint32_t esp;
    if (cpl == 3) { /* the ring-0 stack: ESP0 and SS0 of a 32-bit TSS */
        const xbt_segment *tr = &v->arch.tr;
        if (tr->unusable || !tr->present || !(tr->type & 8) || tr->limit < 11)
            return XBT_FAST_DECLINE;
        const uint8_t *tp = lin_ptr(v, tr->base + 4, 6);
        uint16_t ssel;
        uint64_t sd;
        if (!tp)
            return XBT_FAST_DECLINE;
        __builtin_memcpy(&esp, tp, 4);
        __builtin_memcpy(&ssel, tp + 4, 2);
        if ((ssel & 3) != 0 || !gdt_desc(v, ssel, &sd) || !stack_desc_ok(sd, 0))
            return XBT_FAST_DECLINE;
        ss = seg_of(ssel, sd);
    } else {
        ss = v->arch.seg[XBT_SS];
        esp = v->ctx.gpr[XBT_ESP];
    }
    uint32_t n = cpl == 3 ? 5 : 3;
    if (ss.unusable || !ss.db || ss.limit != 0xFFFFFFFFu || (ss.type & 4) || esp < n * 4)
        return XBT_FAST_DECLINE; /* not flat, or the frame would wrap */
    esp -= n * 4;
    uint8_t *fp = lin_ptr_w(v, ss.base + esp, n * 4);
    if (!fp)
        return XBT_FAST_DECLINE;
    /* Committed: the frame (EIP, CS, EFLAGS[, ESP, SS] upwards), then the registers. */
    uint32_t w[5] = { s->eip + s->len, v->arch.seg[XBT_CS].selector, eflags,
                      v->ctx.gpr[XBT_ESP], v->arch.seg[XBT_SS].selector };
    __builtin_memcpy(fp, w, n * 4);
    if (cpl == 3)
        xbt_seg_put(v, XBT_SS, &ss);
    v->ctx.gpr[XBT_ESP] = esp;
    xbt_segment cs = seg_of(csel & 0xFFFC, cd);
    xbt_seg_put(v, XBT_CS, &cs);
    v->dx.kentries += cpl == 3; /* adaptive mode's measure */
    v->arch.cpl = 0;
    v->ctx.eip = target;
    /* Interrupt gates clear IF; both clear TF, NT, RF and VM. */
    uint32_t clear = XBT_EFLAGS_TF | XBT_EFLAGS_NT | XBT_EFLAGS_RF | XBT_EFLAGS_VM;
    if (!(gtype & 1))
        clear |= XBT_EFLAGS_IF;
    xbt_eflags_write(v, 0, clear);
    xbt_shadow_end(v);
    if (vector < 32)
        v->stats.exceptions[vector]++;
    v->stats.callouts[s->kind]++;
    v->stats.fast_callouts++;
    return XBT_FAST_LEAVE;
}

/*
 * IRET from CPL 0 to CPL 3 (far.c's xbt_iret and return_to, the common case only): a
 * 32-bit frame of EIP, CS, EFLAGS, ESP, SS on a flat stack in the K-window, CS a
 * non-conforming DPL 3 code segment and SS a DPL 3 stack segment of the GDT, both
 * already accessed, EIP within CS's limit, no return to virtual-8086 mode (the caller
 * checked NT and VM).  Then the data segments the new CPL may not use are nulled.
 */
static __attribute__((noinline)) int fast_iret_user(struct xbt_vcpu *v,
                                                   const struct xbt_callout_site *s,
                                                   uint32_t esp, const uint32_t *head)
{
    if (v->arch.cr4 & XBT_CR4_SMAP)
        return XBT_FAST_DECLINE; /* EFLAGS.AC may change: the full handler syncs (mmu.c) */
    const uint8_t *p = lin_ptr(v, v->arch.seg[XBT_SS].base + esp + 12, 8);
    if (!p || esp > 0xFFFFFFFFu - 20)
        return XBT_FAST_DECLINE;
    uint32_t o[2]; /* ESP, SS */
    __builtin_memcpy(o, p, 8);
    uint16_t csel = (uint16_t)head[1], ssel = (uint16_t)o[1];
    uint64_t cd, sd;
    if (!gdt_desc(v, csel, &cd) || !code_desc_ok(cd, 3) || head[0] > desc_limit(cd) ||
        (ssel & 3) != 3 || !gdt_desc(v, ssel, &sd) || !stack_desc_ok(sd, 3))
        return XBT_FAST_DECLINE;
    /* Committed.  EFLAGS first, with what CPL 0 may change. */
    xbt_eflags_write(v, head[2], xbt_popf_mask(0, v->ctx.eflags_sys, 4));
    xbt_load_rf(v, head[2]);
    v->arch.cpl = 3;
    xbt_segment cs = seg_of(csel, cd), ss = seg_of(ssel, sd);
    xbt_seg_put(v, XBT_CS, &cs);
    xbt_seg_put(v, XBT_SS, &ss);
    v->ctx.gpr[XBT_ESP] = o[0];
    v->ctx.eip = head[0];
    xbt_null_data_segs_below(v, 3);
    v->stats.callouts[s->kind]++;
    v->stats.fast_callouts++;
    return XBT_FAST_LEAVE;
}

/* What data segment `seg` contributes to the translation mode (run.c, current_mode): a
   base that is not 0 (ES and DS; FS and GS always add theirs), a limit that is
   checked, a null selector in ES or DS. */
static inline unsigned seg_mode_bits(const struct xbt_vcpu *v, int seg)
{
    const xbt_segment *g = &v->arch.seg[seg];
    return (seg <= XBT_DS && g->base ? 1u : 0u) | (xbt_seg_limit_checked(g) ? 2u : 0u) |
           (xbt_seg_null_checked(v, seg) ? 4u : 0u);
}

/* Done; but a load that changed the mode leaves for the dispatcher, as the full handler
   does (callouts.c, callout_body): the block's exit may be chained to a block of the
   mode it had. */
static inline int seg_done(struct xbt_vcpu *v, const struct xbt_callout_site *s, int seg,
                           unsigned before)
{
    int r = done(v, s);
    return seg_mode_bits(v, seg) != before ? XBT_FAST_LEAVE : r;
}

/* MOV/POP to DS, ES, FS or GS at CPL 0 with a selector whose descriptor is readable
   without a walk, present, already accessed, and allowed (the checks of MOV Sreg);
   anything else, or a null selector, is the full handler's. */
static int load_data_seg(struct xbt_vcpu *v, const struct xbt_callout_site *s, uint32_t sel,
                         uint32_t new_esp)
{
    int seg = s->reg2;
    if (seg != XBT_DS && seg != XBT_ES && seg != XBT_FS && seg != XBT_GS)
        return XBT_FAST_DECLINE;
    sel &= 0xFFFF;
    unsigned before = seg_mode_bits(v, seg);
    if (xbt_real_mode(v)) { /* selector and base only (sensitive.h) */
        xbt_real_seg(v, seg, (uint16_t)sel);
        v->ctx.gpr[XBT_ESP] = new_esp;
        return seg_done(v, s, seg, before);
    }
    uint64_t d;
    if (!gdt_desc(v, sel, &d))
        return XBT_FAST_DECLINE;
    uint32_t type = (d >> 40) & 0xF, dpl = (d >> 45) & 3, rpl = sel & 3;
    bool code = type & 8, rw = type & 2, conforming = code && (type & 4);
    if (!((d >> 44) & 1) || !((d >> 47) & 1) || !(type & 1) || (code && !rw) ||
        (!conforming && rpl > dpl))
        return XBT_FAST_DECLINE; /* system, not present, not accessed, or a fault */
    xbt_segment g = seg_of((uint16_t)sel, d);
    xbt_seg_put(v, seg, &g);
    v->ctx.gpr[XBT_ESP] = new_esp;
    return seg_done(v, s, seg, before);
}

int xbt_callout_fast(struct xbt_jit_ctx *ctx)
{
    struct xbt_vcpu *v = (struct xbt_vcpu *)ctx;
    const struct xbt_callout_site *s = (const struct xbt_callout_site *)(uintptr_t)ctx->callout_site;
    if (v->no_fast_callouts || s->kind >= 96 || v->dbg.n_wp)
        return XBT_FAST_DECLINE;
    /* INT at CPL 0 or 3 (a system call), paging on or off (fast_int apart, so that its
       frame is not every fast callout's prologue). */
    if (s->kind == XBT_CO_INT)
        return fast_int(v, s);
    /* SYSENTER from any CPL, SYSEXIT at CPL 0: their #GP(0) (real mode, a null
       IA32_SYSENTER_CS) is the full handler's. */
    if (s->kind == XBT_CO_SYSENTER || (s->kind == XBT_CO_SYSEXIT && v->arch.cpl == 0)) {
        if (xbt_real_mode(v) || (v->arch.msr_sysenter_cs & 0xFFFC) == 0)
            return XBT_FAST_DECLINE;
        xbt_sysenter_exit(v, s->kind == XBT_CO_SYSENTER);
        v->stats.callouts[s->kind]++;
        v->stats.fast_callouts++;
        return XBT_FAST_LEAVE;
    }
    if (v->arch.cpl != 0)
        return XBT_FAST_DECLINE;
    switch (s->kind) { /* the kinds of xbt_co_fast_kind (abi.h): only those reach here */
    case XBT_CO_CLI:
        v->ctx.vif = 0;
        return done(v, s);
    case XBT_CO_STI:
        xbt_sti(v, s->eip + s->len);
        return done(v, s);
    case XBT_CO_POPF: {
        unsigned size = s->opsize == 2 ? 2 : 4;
        uint32_t esp = v->ctx.gpr[XBT_ESP];
        uint64_t lin = (uint64_t)v->arch.seg[XBT_SS].base + esp;
        if ((v->arch.cr0 & XBT_CR0_PG) || !v->arch.seg[XBT_SS].db ||
            !xbt_phys_ram(&v->vm->phys, lin, size))
            return XBT_FAST_DECLINE; /* paging (a walk), a fault, or a 16-bit SP to wrap */
        uint32_t val = 0;
        __builtin_memcpy(&val, v->vm->phys.view + lin, size); /* inlined: a 2- or 4-byte load */
        xbt_eflags_write(v, val, xbt_popf_mask(0, v->ctx.eflags_sys, size));
        v->ctx.gpr[XBT_ESP] = esp + size;
        int r = done(v, s);
        /* TF set: the dispatcher steps from the next instruction on (run.c). */
        return (v->ctx.eflags_sys & XBT_EFLAGS_TF) ? XBT_FAST_LEAVE : r;
    }
    case XBT_CO_MOV_TO_CR:
        if (s->reg2 == 2) {
            v->arch.cr2 = reg_get(v, s->reg);
            return done(v, s);
        }
        if (s->reg2 == 3 && !(v->arch.cr0 & XBT_CR0_PG)) {
            v->arch.cr3 = reg_get(v, s->reg); /* paging off: no TLB to flush */
            return done(v, s);
        }
        return XBT_FAST_DECLINE; /* CR0/CR4 change the mode */
    case XBT_CO_MOV_FROM_CR: {
        uint32_t val;
        if (!xbt_cr_read(v, s->reg2, &val))
            return XBT_FAST_DECLINE;
        v->ctx.gpr[s->reg & 7] = val;
        return done(v, s);
    }
    case XBT_CO_MOV_TO_SREG:
        if (s->flags & XBT_COF_HAS_MEM)
            return XBT_FAST_DECLINE;
        return load_data_seg(v, s, reg_get(v, s->reg), v->ctx.gpr[XBT_ESP]);
    case XBT_CO_POP_SREG: {
        unsigned size = s->opsize == 2 ? 2 : 4;
        uint32_t esp = v->ctx.gpr[XBT_ESP];
        const uint8_t *p = lin_ptr(v, v->arch.seg[XBT_SS].base + esp, size);
        if (!p || v->ctx.seg_limit[XBT_SS] != 0xFFFFFFFFu || !v->arch.seg[XBT_SS].db)
            return XBT_FAST_DECLINE;
        uint16_t sel;
        __builtin_memcpy(&sel, p, 2);
        return load_data_seg(v, s, sel, esp + size);
    }
    case XBT_CO_IRET: {
        v->arch.nmi_blocked = false; /* even if the IRET faults (SDM 6.7.1) */
        /* 32-bit IRET to the same CS at CPL 0 (an interrupt handler's return inside the
           kernel): the stack readable without a walk, no task return, the code
           segment's descriptor still what CS holds. */
        if (s->opsize == 2 || (v->ctx.eflags_sys & XBT_EFLAGS_NT) || xbt_real_mode(v) ||
            v->ctx.seg_limit[XBT_SS] != 0xFFFFFFFFu || !v->arch.seg[XBT_SS].db ||
            (v->arch.seg[XBT_SS].type & 4) || v->arch.seg[XBT_SS].unusable)
            return XBT_FAST_DECLINE; /* (expand-down: every offset is beyond the limit) */
        uint32_t esp = v->ctx.gpr[XBT_ESP];
        const uint8_t *p = lin_ptr(v, v->arch.seg[XBT_SS].base + esp, 12);
        if (!p)
            return XBT_FAST_DECLINE;
        uint32_t frame[3];
        __builtin_memcpy(frame, p, 12);
        if (frame[2] & XBT_EFLAGS_VM)
            return XBT_FAST_DECLINE; /* to virtual-8086 mode: the full handler's answer */
        const xbt_segment *cs = &v->arch.seg[XBT_CS];
        uint32_t sel = frame[1] & 0xFFFF;
        uint64_t d;
        if ((sel & 3) == 3)
            return fast_iret_user(v, s, esp, frame);
        if (sel != cs->selector || (sel & 7) || !gdt_desc(v, sel, &d))
            return XBT_FAST_DECLINE;
        uint32_t base = desc_base(d), limit = desc_limit(d);
        uint32_t type = ((d >> 40) & 0xF) | 1;
        if (!((d >> 44) & 1) || !((d >> 47) & 1) || !(type & 8) || ((d >> 45) & 3) != 0 ||
            base != cs->base || limit != cs->limit || type != cs->type ||
            ((d >> 54) & 1) != cs->db)
            return XBT_FAST_DECLINE; /* changed or unusual: load_cs has every rule */
        /* EFLAGS as xbt_iret writes them (RF apart: run.c). */
        xbt_eflags_write(v, frame[2], xbt_popf_mask(0, v->ctx.eflags_sys, 4));
        xbt_load_rf(v, frame[2]);
        v->ctx.gpr[XBT_ESP] = esp + 12;
        v->ctx.eip = frame[0];
        v->stats.callouts[s->kind]++;
        v->stats.fast_callouts++;
        return XBT_FAST_LEAVE;
    }
    case XBT_CO_RDTSC:    /* CPL 0: CR4.TSD does not apply */
    case XBT_CO_RDTSCP: { /* (Linux's ordered TSC read, clocksource and vDSO, with it) */
        /* Only the model's RDTSCP: a CPUID policy may hide it (#UD: the full handler). */
        if (s->kind == XBT_CO_RDTSCP && v->pol.cpuid_set && !(v->pol.fx1_edx & (1u << 27)))
            return XBT_FAST_DECLINE;
        uint32_t lo, hi;
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        uint64_t t = (((uint64_t)hi << 32) | lo) + v->ctx.tsc_offset;
        v->ctx.gpr[XBT_EAX] = (uint32_t)t;
        v->ctx.gpr[XBT_EDX] = (uint32_t)(t >> 32);
        if (s->kind == XBT_CO_RDTSCP)
            v->ctx.gpr[XBT_ECX] = (uint32_t)v->arch.msr_tsc_aux;
        return done(v, s);
    }
    case XBT_CO_PAUSE:
        xbt_pause_loop(v); /* (a kick during its yield: done leaves) */
        return done(v, s);
    case XBT_CO_CPUID: { /* an answer the full handler gave under the same inputs */
        uint32_t *g = v->ctx.gpr;
        const struct xbt_cpuid_hit *h = &v->cpuid_hit[xbt_cpuid_slot(g[XBT_EAX], g[XBT_ECX])];
        if (!h->valid || h->leaf != g[XBT_EAX] || h->sub != g[XBT_ECX] ||
            h->gen != v->cpuid_gen)
            return XBT_FAST_DECLINE;
        g[XBT_EAX] = h->r[0], g[XBT_EBX] = h->r[1], g[XBT_ECX] = h->r[2], g[XBT_EDX] = h->r[3];
        return done(v, s);
    }
    default:
        return XBT_FAST_DECLINE;
    }
}
