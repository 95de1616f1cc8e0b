/*
 * policy.c - what the embedder decides beyond run and exit (xbt.h, API 1.4): a CPUID
 * policy within the CPU model, the MSRs it handles itself (XBT_EXIT_MSR), and events it
 * injects (an external interrupt, an exception).
 *
 * CPUID: the policy's entries replace the model (cpumodel.c) for every CPUID the guest
 * runs (translated code's callout; directly run user code never executes CPUID natively,
 * direct.c).  Each entry is checked against its leaf's mask (allowed_bits, the table in
 * xbt.h) so that the guest is never told of a feature xbt does not provide.  The feature
 * words other parts consult (SSE for the translator's mode, CR4's reserved bits, the
 * APIC and ARCH_CAPABILITIES MSRs) come from xbt_feature.
 *
 * Injection: the events wait in v->pol until a dispatch where no instruction is in the
 * middle of its emulation (an MMIO step, a write beside translated code, an instruction
 * handed over by direct execution); an exception is then raised as a fault at the
 * current EIP through excp.c's nesting rules (#DF, triple fault), an interrupt delivered
 * as the interrupt source's are, once IF=1 and no shadow.
 */
#include <string.h>

#include "vcpu.h"

/* ---- CPUID ---------------------------------------------------------------------------- */

#define LEAF1_ECX 0x80180201u /* SSE3 SSSE3 SSE4.1 SSE4.2 hypervisor */
#define LEAF1_EDX 0x0781E9F9u /* FPU PSE TSC MSR PAE MCE CX8 SEP MCA PGE CMOV PAT MMX FXSR SSE
                                 SSE2 */
#define LEAF1_EDX_APIC 0x200u
#define LEAF7_EDX 0x20000000u /* IA32_ARCH_CAPABILITIES */
#define LEAF7_ECX 0x00400004u /* UMIP RDPID */
#define LEAFX1_ECX 0x1u       /* LAHF/SAHF */
#define LEAFX1_EDX 0x08000000u /* RDTSCP */
#define LEAFX8_EAX 0x2024u    /* 36 physical, 32 linear address bits: any subset of these
                                 bits says no more than the model has */
#define LEAF7_EBX 0x00100080u /* SMEP SMAP: not in the model, an embedder may add them */

/* The bits an entry of this leaf may set, EAX EBX ECX EDX into m[] (all zero: the leaf
   must read zero). */
static void allowed_bits(const struct xbt_vcpu *v, const xbt_cpuid_entry *e, uint32_t m[4])
{
    uint32_t f = e->function;
    m[0] = m[1] = m[2] = m[3] = 0;
    if (f == 0 || f == 2 || f == 4 || f == 0x15 || f == 0x16 || (f >> 8) == 0x400000 ||
        f == 0x80000000u || (f >= 0x80000002u && f <= 0x80000004u)) {
        m[0] = m[1] = m[2] = m[3] = ~0u; /* information, no feature */
    } else if (f == 1) {
        m[0] = m[1] = ~0u;
        m[2] = LEAF1_ECX;
        m[3] = LEAF1_EDX | ((v->vm->cfg.flags & XBT_VM_LOCAL_APIC) ? LEAF1_EDX_APIC : 0);
    } else if (f == 7 && (e->flags & XBT_CPUID_INDEXED) && e->index == 0) {
        m[1] = LEAF7_EBX;
        m[2] = LEAF7_ECX;
        m[3] = LEAF7_EDX;
    } else if (f == 0x80000001u) {
        m[0] = ~0u;
        m[2] = LEAFX1_ECX;
        m[3] = LEAFX1_EDX;
    } else if (f == 0x80000008u) {
        m[0] = LEAFX8_EAX;
    }
}

/* The entry that answers leaf/sub, or NULL. */
static const xbt_cpuid_entry *find_entry(const xbt_cpuid_entry *e, size_t n, uint32_t leaf,
                                         uint32_t sub)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].function == leaf && (!(e[i].flags & XBT_CPUID_INDEXED) || e[i].index == sub))
            return &e[i];
    return NULL;
}

/* An entry that answers the same CPUID as an earlier one (a duplicate), or a flag
   beyond XBT_CPUID_INDEXED: the policy is ambiguous. */
static bool entry_ambiguous(const xbt_cpuid_entry *e, size_t i)
{
    if (e[i].flags & ~XBT_CPUID_INDEXED)
        return true;
    for (size_t k = 0; k < i; k++) {
        if (e[k].function != e[i].function)
            continue;
        bool ki = e[k].flags & XBT_CPUID_INDEXED, ii = e[i].flags & XBT_CPUID_INDEXED;
        if (!ki || !ii || e[k].index == e[i].index)
            return true;
    }
    return false;
}

xbt_status xbt_vcpu_get_cpuid(xbt_vcpu *v, xbt_cpuid_entry *entries, size_t max, size_t *n)
{
    if (!v || !n || (max && !entries))
        return XBT_E_INVAL;
    size_t have;
    if (v->pol.cpuid_set) {
        have = v->pol.n_cpuid;
        memcpy(entries, v->pol.cpuid, (have < max ? have : max) * sizeof *entries);
    } else {
        have = xbt_cpuid_model_list(v, entries, max);
    }
    *n = have;
    return max && max < have ? XBT_E_INVAL : XBT_OK;
}

xbt_status xbt_vcpu_set_cpuid(xbt_vcpu *v, const xbt_cpuid_entry *entries, size_t n)
{
    if (!v || (n && !entries) || n > XBT_MAX_CPUID_ENTRIES)
        return XBT_E_INVAL;
    for (size_t i = 0; i < n; i++) {
        uint32_t m[4];
        allowed_bits(v, &entries[i], m);
        const uint32_t r[4] = { entries[i].eax, entries[i].ebx, entries[i].ecx, entries[i].edx };
        for (int k = 0; k < 4; k++)
            if (r[k] & ~m[k])
                return XBT_E_INVAL; /* a feature xbt does not provide */
        if (entry_ambiguous(entries, i))
            return XBT_E_INVAL;
    }
    memcpy(v->pol.cpuid, entries, n * sizeof *entries);
    v->pol.n_cpuid = (uint32_t)n;
    v->pol.cpuid_set = true;
    const xbt_cpuid_entry *l1 = find_entry(entries, n, 1, 0);
    const xbt_cpuid_entry *l7 = find_entry(entries, n, 7, 0);
    const xbt_cpuid_entry *x1 = find_entry(entries, n, 0x80000001u, 0);
    v->pol.f1_ecx = l1 ? l1->ecx : 0;
    v->pol.f1_edx = l1 ? l1->edx : 0;
    v->pol.f7_ecx = l7 ? l7->ecx : 0;
    v->pol.f7_ebx = l7 ? l7->ebx : 0;
    v->pol.f7_edx = l7 ? l7->edx : 0;
    v->pol.fx1_edx = x1 ? x1->edx : 0;
    xbt_cpuid_refresh(v); /* the remembered answers are stale */
    return XBT_OK;
}

bool xbt_cpuid_policy(const struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    if (!v->pol.cpuid_set)
        return false;
    const xbt_cpuid_entry *e = find_entry(v->pol.cpuid, v->pol.n_cpuid, leaf, sub);
    out[0] = e ? e->eax : 0, out[1] = e ? e->ebx : 0;
    out[2] = e ? e->ecx : 0, out[3] = e ? e->edx : 0;
    return true;
}

bool xbt_cpuid_policy_lists(const struct xbt_vcpu *v, uint32_t leaf, uint32_t sub)
{
    return v->pol.cpuid_set && find_entry(v->pol.cpuid, v->pol.n_cpuid, leaf, sub);
}

uint32_t xbt_feature(const struct xbt_vcpu *v, int which)
{
    const struct xbt_vcpu_policy *p = &v->pol;
    switch (which) {
    case XBT_FEAT_1_ECX: return p->cpuid_set ? p->f1_ecx : LEAF1_ECX;
    case XBT_FEAT_1_EDX: return p->cpuid_set ? p->f1_edx : LEAF1_EDX | LEAF1_EDX_APIC;
    case XBT_FEAT_7_EBX: return p->cpuid_set ? p->f7_ebx : 0; /* SMEP SMAP: the embedder's */
    case XBT_FEAT_7_ECX: return p->cpuid_set ? p->f7_ecx : LEAF7_ECX;
    case XBT_FEAT_X1_EDX: return p->cpuid_set ? p->fx1_edx : LEAFX1_EDX;
    default: return p->cpuid_set ? p->f7_edx : LEAF7_EDX;
    }
}

uint8_t xbt_hidden_isa(const struct xbt_vcpu *v)
{
    if (!v->pol.cpuid_set)
        return 0;
    uint32_t d = v->pol.f1_edx, c = v->pol.f1_ecx;
    return (uint8_t)((d & (1u << 25) ? 0 : XBT_TM_HIDE_SSE) |
                     (d & (1u << 26) ? 0 : XBT_TM_HIDE_SSE2) |
                     (c & (1u << 0) ? 0 : XBT_TM_HIDE_SSE3) |
                     (c & (1u << 9) ? 0 : XBT_TM_HIDE_SSSE3) |
                     (c & (1u << 19) ? 0 : XBT_TM_HIDE_SSE41) |
                     (c & (1u << 20) ? 0 : XBT_TM_HIDE_SSE42));
}

uint32_t xbt_cr4_hidden(const struct xbt_vcpu *v)
{
    uint32_t d = xbt_feature(v, XBT_FEAT_1_EDX), r = 0;
    if (!(d & (1u << 3)))
        r |= XBT_CR4_PSE;
    if (!(d & (1u << 6)))
        r |= XBT_CR4_PAE;
    if (!(d & (1u << 7)))
        r |= XBT_CR4_MCE;
    if (!(d & (1u << 13)))
        r |= XBT_CR4_PGE;
    if (!(d & (1u << 24)))
        r |= XBT_CR4_OSFXSR;
    if (!(d & (1u << 25)))
        r |= XBT_CR4_OSXMMEXCPT;
    if (!(xbt_feature(v, XBT_FEAT_7_ECX) & (1u << 2)))
        r |= XBT_CR4_UMIP;
    uint32_t b7 = xbt_feature(v, XBT_FEAT_7_EBX);
    if (!(b7 & (1u << 7)))
        r |= XBT_CR4_SMEP;
    if (!(b7 & (1u << 20)))
        r |= XBT_CR4_SMAP;
    return r;
}

/* ---- MSR exits ------------------------------------------------------------------------ */

xbt_status xbt_vm_set_msr_exits(xbt_vm *vm, const uint32_t *indices, size_t n)
{
    if (!vm || (n && !indices))
        return XBT_E_INVAL;
    uint32_t tmp[XBT_MAX_MSR_EXITS], k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t j = 0;
        while (j < k && tmp[j] != indices[i])
            j++;
        if (j < k)
            continue; /* named twice */
        if (k == XBT_MAX_MSR_EXITS)
            return XBT_E_INVAL;
        tmp[k++] = indices[i];
    }
    memcpy(vm->msr_exits, tmp, k * sizeof *tmp);
    vm->n_msr_exits = k;
    return XBT_OK;
}

bool xbt_msr_exit(struct xbt_vcpu *v, bool write, uint32_t next_eip)
{
    const xbt_vm *vm = v->vm;
    uint32_t index = v->ctx.gpr[XBT_ECX], i = 0;
    while (i < vm->n_msr_exits && vm->msr_exits[i] != index)
        i++;
    if (i == vm->n_msr_exits)
        return false;
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_MSR;
    v->exit.msr.index = index;
    v->exit.msr.is_write = write;
    if (write)
        v->exit.msr.data = (uint64_t)v->ctx.gpr[XBT_EDX] << 32 | v->ctx.gpr[XBT_EAX];
    v->pol.msr_pending = true;
    v->pol.msr_next = next_eip;
    return true;
}

void xbt_msr_exit_complete(struct xbt_vcpu *v)
{
    v->pol.msr_pending = false;
    if (v->exit.msr.inject_gp) {
        /* A fault of the instruction (EIP stays at it), delivered at the next dispatch
           before anything else the embedder injected. */
        v->pol.exc_pending = true;
        v->pol.exc_vec = XBT_GP;
        v->pol.exc_has_err = true;
        v->pol.exc_err = 0;
        return;
    }
    if (!v->exit.msr.is_write) {
        v->ctx.gpr[XBT_EAX] = (uint32_t)v->exit.msr.data;
        v->ctx.gpr[XBT_EDX] = (uint32_t)(v->exit.msr.data >> 32);
    }
    v->ctx.eip = v->pol.msr_next;
}

/* ---- injection ------------------------------------------------------------------------ */

/* EFLAGS.IF=1 and no STI / MOV SS shadow over the next instruction. */
static bool can_take_interrupt(const struct xbt_vcpu *v)
{
    return v->ctx.vif && !xbt_in_shadow(v);
}

xbt_status xbt_vcpu_inject_interrupt(xbt_vcpu *v, int vector)
{
    if (!v || vector < 0 || vector > 255 || v->pol.irq_pending || !can_take_interrupt(v))
        return XBT_E_INVAL;
    v->pol.irq_pending = true;
    v->pol.irq_vec = (uint8_t)vector;
    return XBT_OK;
}

static bool vector_has_error(int vector)
{
    return vector == XBT_DF || (vector >= XBT_TS && vector <= XBT_PF) || vector == XBT_AC;
}

xbt_status xbt_vcpu_inject_exception(xbt_vcpu *v, int vector, int has_error,
                                     uint32_t error_code)
{
    if (!v || vector < 0 || vector > 31 || vector == XBT_NMI || v->pol.exc_pending ||
        v->pol.msr_pending || (has_error != 0) != vector_has_error(vector))
        return XBT_E_INVAL;
    v->pol.exc_pending = true;
    v->pol.exc_vec = (uint8_t)vector;
    v->pol.exc_has_err = has_error != 0;
    v->pol.exc_err = has_error ? error_code : 0;
    return XBT_OK;
}

int xbt_policy_deliver(struct xbt_vcpu *v)
{
    /* Not while an instruction is half done: it completes first. */
    if (v->mmio.run || v->mmio.step_active || v->smc.single || v->smc.data)
        return 0;
    if (v->pol.exc_pending) {
        v->pol.exc_pending = false;
        bool ok = xbt_raise(v, v->pol.exc_vec, v->pol.exc_has_err, v->pol.exc_err, v->ctx.eip);
        v->arch.halted = false; /* a fault ends a HLT even when it became a shutdown */
        return ok ? XBT_LEAVE_DISPATCH : XBT_LEAVE_EXIT;
    }
    if (v->pol.irq_pending && can_take_interrupt(v)) {
        v->pol.irq_pending = false;
        xbt_shadow_end(v);
        return xbt_deliver_interrupt(v, v->pol.irq_vec, false, v->ctx.eip, v->ctx.eip)
                   ? XBT_LEAVE_DISPATCH
                   : XBT_LEAVE_EXIT;
    }
    return 0;
}
