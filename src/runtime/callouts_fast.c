/*
 * callouts_fast.c - the callouts that run with the guest's x87/SSE state still live in
 * the host registers: the frequent, simple ones (POPF, CLI, STI, MOV to and from CR2/CR3,
 * MOV from CR0/CR4, RDTSC, RDTSCP, RDPID, MOV and POP to DS/ES/FS/GS, IRET to CPL 0) at
 * CPL 0.  In
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
    if (xbt_real_mode(v)) { /* selector and base only (sensitive.h) */
        xbt_real_seg(v, seg, (uint16_t)sel);
        v->ctx.gpr[XBT_ESP] = new_esp;
        return done(v, s);
    }
    uint64_t d;
    if (!gdt_desc(v, sel, &d))
        return XBT_FAST_DECLINE;
    uint32_t type = (d >> 40) & 0xF, dpl = (d >> 45) & 3, rpl = sel & 3;
    bool code = type & 8, rw = type & 2, conforming = code && (type & 4);
    if (!((d >> 44) & 1) || !((d >> 47) & 1) || !(type & 1) || (code && !rw) ||
        (!conforming && rpl > dpl))
        return XBT_FAST_DECLINE; /* system, not present, not accessed, or a fault */
    xbt_segment g;
    g.selector = (uint16_t)sel;
    g.base = desc_base(d);
    g.g = (d >> 55) & 1;
    g.limit = desc_limit(d);
    g.type = (uint8_t)type;
    g.s = 1;
    g.dpl = (uint8_t)dpl;
    g.present = 1;
    g.db = (d >> 54) & 1;
    g.avl = (d >> 52) & 1;
    g.unusable = 0;
    v->arch.seg[seg] = g;
    v->ctx.seg_sel[seg] = g.selector;
    v->ctx.seg_base[seg] = g.base;
    v->ctx.seg_limit[seg] = g.limit;
    v->ctx.gpr[XBT_ESP] = new_esp;
    return done(v, s);
}

int xbt_callout_fast(struct xbt_jit_ctx *ctx)
{
    struct xbt_vcpu *v = (struct xbt_vcpu *)ctx;
    const struct xbt_callout_site *s = (const struct xbt_callout_site *)(uintptr_t)ctx->callout_site;
    if (v->arch.cpl != 0 || v->no_fast_callouts || s->kind >= 96 || v->dbg.n_wp)
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
        return done(v, s);
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
            v->ctx.seg_limit[XBT_SS] != 0xFFFFFFFFu || !v->arch.seg[XBT_SS].db)
            return XBT_FAST_DECLINE;
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
        if (sel != cs->selector || (sel & 7) || !gdt_desc(v, sel, &d))
            return XBT_FAST_DECLINE;
        uint32_t base = desc_base(d), limit = desc_limit(d);
        uint32_t type = ((d >> 40) & 0xF) | 1;
        if (!((d >> 44) & 1) || !((d >> 47) & 1) || !(type & 8) || ((d >> 45) & 3) != 0 ||
            base != cs->base || limit != cs->limit || type != cs->type ||
            ((d >> 54) & 1) != cs->db)
            return XBT_FAST_DECLINE; /* changed or unusual: load_cs has every rule */
        /* EFLAGS as xbt_iret writes them (its RF bit is one the vCPU does not have). */
        xbt_eflags_write(v, frame[2], xbt_popf_mask(0, v->ctx.eflags_sys, 4));
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
