/*
 * cpumodel.c - the virtual CPU that every guest instruction sees, translated or run
 * directly: its CPUID leaves and its model-specific registers, in one table each.
 *
 * The model is an Intel family 6 CPU (vendor "GenuineIntel", family 6, model 15,
 * stepping 1: a Core 2) in legacy (32-bit) mode, restricted to what xbt implements:
 *
 *   leaf 0     max leaf 0x16, "GenuineIntel"
 *   leaf 1     EAX 0x000006F1; EBX: one logical processor, initial APIC ID 0;
 *              ECX: SSE3 SSSE3 SSE4.1 SSE4.2, hypervisor;
 *              EDX: FPU PSE TSC MSR PAE MCE CX8 SEP MCA PGE CMOV PAT MMX FXSR SSE SSE2, and
 *              APIC when the embedder models a local APIC (XBT_VM_LOCAL_APIC)
 *   leaf 7.0   ECX: UMIP (bit 2), RDPID (bit 22); EDX: IA32_ARCH_CAPABILITIES (bit 29)
 *   leaf 0x15  the TSC's frequency as a ratio to a 1 GHz crystal (ECX: 1,000,000,000 Hz;
 *              EBX/EAX: the host TSC's rate, measured once, as a fraction whose
 *              numerator times the crystal's kHz fits 32 bits, as Linux computes it),
 *              the rate of the local APIC timer of xbt-run's platform at divide 1
 *   leaf 0x16  base and maximum frequency in MHz (the TSC's), bus 100 MHz
 *              (without these a guest calibrates the TSC against the PIT, whose reads
 *              are exits here: Linux gave up on the TSC now and then and ran from the
 *              PIT, three port I/O exits per clock read, no vDSO time)
 *   0x40000000 the hypervisor leaf: max 0x40000000, signature "xbtVirtualCP" (EBX ECX EDX)
 *   0x80000000 max extended leaf 0x80000008
 *   0x80000001 ECX: LAHF/SAHF (bit 0); EDX: RDTSCP (bit 27).  No SYSCALL (Intel reports
 *              it in 64-bit mode only; SYSCALL/SYSRET are #UD here), no NX, no long mode
 *   0x80000002-0x80000004  the brand string "xbt virtual CPU (Core 2 class)"
 *   0x80000008 EAX 0x2024: 36 physical address bits (PAE's, the walker's), 32 linear
 *   others     zero (leaves 2-6, 8-0x14 and 0x80000005-0x80000007 included)
 *
 * Implemented but not in the model: SMEP and SMAP (leaf 7.0 EBX bits 7 and 20; CR4.SMEP,
 * CR4.SMAP, CLAC and STAC), for their cost to a guest kernel that uses SMAP (a STAC/CLAC
 * pair around every user copy empties the K-window of user pages: docs/ARCHITECTURE.md,
 * "SMEP and SMAP"); an embedder's CPUID policy adds them (xbt-run --cpu max).
 *
 * Not in the model, so #UD or absent as on a CPU without them: XSAVE/AVX (the guest
 * kernel could not save their state), SYSCALL, NX (the walker has no XD bit), long
 * mode, MTRRs, SMAP/SMEP (an embedder's policy may add them: xbt-run --cpu max), PCID, VME (CR4.VME and CR4.PVI are reserved: virtual-8086
 * mode is the SDM's no-VME one).  (PAT selects memory types, which mean nothing here:
 * the walker ignores the PAT bits.)  Directly executed code never runs CPUID, XGETBV,
 * RDTSCP, RDPID, SGDT, SIDT, SLDT, SMSW or STR natively (direct.c translates the pages
 * that hold them) nor runs at all while CR4.TSD is set, so it sees this model too.  An embedder's CPUID
 * policy (xbt_vcpu_set_cpuid, policy.c) replaces the model's leaves within their masks;
 * what goes with a CPUID bit follows it: IA32_APIC_BASE (APIC), IA32_ARCH_CAPABILITIES,
 * the machine-check MSRs (MCA), IA32_TSC_AUX (RDTSCP or RDPID), RDTSCP and RDPID
 * themselves (#UD), CR4.MCE and CR4.UMIP (reserved: #GP).
 *
 * MSRs (anything else: #GP, as the hardware raises for an MSR it does not have):
 *
 *   0x10   IA32_TIME_STAMP_COUNTER  the host TSC plus a per-vCPU offset (writes set it)
 *   0x17   IA32_PLATFORM_ID         reads 0, #GP on write (read-only)
 *   0x1B   IA32_APIC_BASE           0xFEE00900 at reset (BSP, enabled); only with a local
 *                                   APIC (XBT_VM_LOCAL_APIC); reserved bits #GP
 *   0x8B   IA32_BIOS_SIGN_ID        microcode revision: reads 0, writes ignored
 *   0x10A  IA32_ARCH_CAPABILITIES   RDCL_NO (read-only)
 *   0x174-0x176 SYSENTER_CS/ESP/EIP
 *   0x179  IA32_MCG_CAP             6 banks; no MCG_CTL, CMCI, LMCE (read-only)
 *   0x17A  IA32_MCG_STATUS          bits 2:0 (RIPV EIPV MCIP) stored, the rest #GP
 *   0x1A0  IA32_MISC_ENABLE         stored; bit 22 (Limit CPUID Maxval) makes CPUID
 *                                   leaf 0 report 2 and leaves above 2 answer as leaf 2
 *   0x277  IA32_PAT                 0x0007040600070406 at reset; a reserved memory type
 *                                   (2, 3, 8-255) in any byte #GP
 *   0x400-0x417 IA32_MCi_CTL/STATUS/ADDR/MISC, banks 0-5: CTL all 0s or all 1s (the
 *                                   SDM's rule for family 6), STATUS reads 0 and takes
 *                                   only 0 (no machine check ever reaches a guest),
 *                                   ADDR and MISC stored
 *   0xC0000080 IA32_EFER            SCE (bit 0) stored (SYSCALL stays #UD outside
 *                                   64-bit mode, as on Intel); LME, LMA, NXE and the
 *                                   rest reserved: #GP (no long mode, no NX), as a CPU
 *                                   without them has; reads 0 at reset
 *   0xC0000103 IA32_TSC_AUX         bits 31:0 (RDTSCP's ECX, RDPID's register), 63:32
 *                                   reserved; with RDTSCP or RDPID in CPUID only
 *
 * RDTSCP: the TSC RDTSC reads (host TSC plus the vCPU's offset) and TSC_AUX in ECX;
 * CR4.TSD makes RDTSC and RDTSCP #GP outside CPL 0 (virtual-8086 mode included).
 * RDPID r32: TSC_AUX at any CPL and in every mode.  CR4.UMIP: SGDT, SIDT, SLDT, SMSW and
 * STR #GP(0) outside CPL 0 (SLDT and STR stay #UD in real and virtual-8086 mode).
 */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "runtime/runner.h"
#include "runtime/vcpu.h"

/* CPUID.1:EDX and :ECX bits of the model. */
#define CPUID1_EDX (XBT_BIT(0) | XBT_BIT(3) | XBT_BIT(4) | XBT_BIT(5) | XBT_BIT(6) | XBT_BIT(8) | \
                    XBT_BIT(7) | XBT_BIT(11) | XBT_BIT(13) | XBT_BIT(14) | XBT_BIT(15) |           \
                    XBT_BIT(16) | XBT_BIT(23) | XBT_BIT(24) | XBT_BIT(25) | XBT_BIT(26))
#define CPUID1_EDX_APIC XBT_BIT(9)
#define CPUID1_EDX_MCA XBT_BIT(14)
#define CPUID1_ECX (XBT_BIT(0) | XBT_BIT(9) | XBT_BIT(19) | XBT_BIT(20) | XBT_BIT(31))
#define CPUID7_ECX_UMIP XBT_BIT(2)
#define CPUID7_ECX_RDPID XBT_BIT(22)
#define CPUIDX1_EDX_RDTSCP XBT_BIT(27)
#define XBT_BIT(n) (1u << (n))

#define MSR_EFER 0xC0000080u
#define MISC_ENABLE_LIMIT_CPUID (1ull << 22)
#define MSR_TSC_AUX 0xC0000103u
#define EFER_SCE 1u /* the only EFER bit of the model: no LME/LMA (no long mode), no NXE */

/* The brand string (leaves 0x80000002-0x80000004, 48 bytes with the NUL padding), as
   Linux prints it in /proc/cpuinfo. */
static const char brand[48] = "xbt virtual CPU (Core 2 class)";

/* The model's local APIC (XBT_VM_LOCAL_APIC), where the embedder's CPUID policy does
   not hide it: CPUID.1:EDX.APIC and IA32_APIC_BASE go together. */
static bool local_apic(const struct xbt_vcpu *v)
{
    return (v->vm->cfg.flags & XBT_VM_LOCAL_APIC) &&
           (xbt_feature(v, XBT_FEAT_1_EDX) & CPUID1_EDX_APIC);
}

/* ---- machine-check architecture -------------------------------------------------------
   MCE and MCA with XBT_MC_BANKS banks that never report an error (no machine check
   reaches a guest here): IA32_MCG_CAP (the bank count; no MCG_CTL, CMCI, LMCE or
   extended registers), IA32_MCG_STATUS (RIPV EIPV MCIP, stored), and per bank MCi_CTL
   (all 0s or all 1s: the SDM's rule for family 6), MCi_STATUS (reads 0; only 0 may be
   written), MCi_ADDR and MCi_MISC (stored).  Hidden MCA (the CPUID policy): all #GP. */
#define MSR_MCG_CAP 0x179u
#define MSR_MCG_STATUS 0x17Au
#define MSR_MC0_CTL 0x400u

static bool mca(const struct xbt_vcpu *v)
{
    return xbt_feature(v, XBT_FEAT_1_EDX) & CPUID1_EDX_MCA;
}

/* The bank register `index` names: its bank and which of CTL STATUS ADDR MISC (0-3). */
static bool mc_bank_reg(const struct xbt_vcpu *v, uint32_t index, unsigned *bank, unsigned *reg)
{
    if (!mca(v) || index < MSR_MC0_CTL || index >= MSR_MC0_CTL + 4 * XBT_MC_BANKS)
        return false;
    *bank = (index - MSR_MC0_CTL) / 4;
    *reg = (index - MSR_MC0_CTL) % 4;
    return true;
}

static bool mca_read(const struct xbt_vcpu *v, uint32_t index, uint64_t *value)
{
    unsigned b, r;
    if (mca(v) && (index == MSR_MCG_CAP || index == MSR_MCG_STATUS)) {
        *value = index == MSR_MCG_CAP ? XBT_MC_BANKS : v->arch.mcg_status;
        return true;
    }
    if (!mc_bank_reg(v, index, &b, &r))
        return false;
    *value = r == 0 ? v->arch.mc_ctl[b] : r == 1 ? 0 : r == 2 ? v->arch.mc_addr[b]
                                                              : v->arch.mc_misc[b];
    return true;
}

static bool mca_write(struct xbt_vcpu *v, uint32_t index, uint64_t value)
{
    unsigned b, r;
    if (mca(v) && index == MSR_MCG_STATUS) {
        if (value & ~7ull) /* bits 63:3 reserved (no LMCE) */
            return false;
        v->arch.mcg_status = value;
        return true;
    }
    if (!mc_bank_reg(v, index, &b, &r)) /* MCG_CAP: read-only */
        return false;
    switch (r) {
    case 0:
        if (value != 0 && value != ~0ull)
            return false;
        v->arch.mc_ctl[b] = value;
        return true;
    case 1: return value == 0;
    case 2: v->arch.mc_addr[b] = value; return true;
    default: v->arch.mc_misc[b] = value; return true;
    }
}

/* IA32_TSC_AUX exists where CPUID names an instruction that reads it (SDM: RDTSCP or
   RDPID). */
static bool tsc_aux(const struct xbt_vcpu *v)
{
    return (xbt_feature(v, XBT_FEAT_X1_EDX) & CPUIDX1_EDX_RDTSCP) ||
           (xbt_feature(v, XBT_FEAT_7_ECX) & CPUID7_ECX_RDPID);
}

/* The host TSC's rate in Hz, measured once against CLOCK_MONOTONIC over 20 ms (the
   sample pairs taken where reading both was quickest: within about a microsecond, so
   the rate is good to about 1e-5 or better). */
static uint64_t tsc_rate;

static void tsc_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t best = ~0ull;
    for (int i = 0; i < 5; i++) {
        uint64_t a = __rdtsc();
        uint64_t t = xbt_now_ns();
        uint64_t b = __rdtsc();
        if (b - a < best) {
            best = b - a;
            *tsc = a + (b - a) / 2;
            *ns = t;
        }
    }
}

static void measure_tsc(void)
{
    uint64_t t0 = 0, n0 = 0, t1 = 0, n1 = 0;
    tsc_pair(&t0, &n0);
    struct timespec d = { 0, 20000000 };
    while (nanosleep(&d, &d) != 0) {
    }
    tsc_pair(&t1, &n1);
    tsc_rate = n1 > n0 ? (uint64_t)((double)(t1 - t0) * 1e9 / (double)(n1 - n0)) : 0;
    if (tsc_rate < 100000000ull) /* a TSC below 100 MHz: not believable */
        tsc_rate = 0;
}

static uint64_t host_tsc_hz(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, measure_tsc);
    return tsc_rate;
}

/* Leaf 0x15: TSC = crystal * EBX / EAX with the 1 GHz crystal; EBX below 4,295 (Linux
   multiplies it by the crystal's kHz in 32 bits). */
static void tsc_ratio(uint32_t *num, uint32_t *den)
{
    double r = (double)host_tsc_hz() / 1e9, best = 1e9;
    *num = *den = 0;
    if (r <= 0)
        return;
    for (uint32_t q = 1; q < 4295; q++) {
        double p = r * q + 0.5;
        if (p >= 4295)
            break;
        uint32_t pi = (uint32_t)p;
        double e = (double)pi / q - r;
        if (e < 0)
            e = -e;
        if (pi && e < best) {
            best = e;
            *num = pi, *den = q;
        }
    }
}

void xbt_cpuid_model(struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    uint32_t a = 0, b = 0, c = 0, d = 0;
    switch (leaf) {
    case 0:
        a = 0x16;
        memcpy(&b, "Genu", 4), memcpy(&d, "ineI", 4), memcpy(&c, "ntel", 4);
        break;
    case 1:
        a = 0x000006F1;
        /* One logical processor per package; the initial APIC ID is the vCPU's index
           (the local APIC ID xbt-run and the MP/ACPI tables give it). */
        b = 0x00010000 | v->idx << 24;
        c = CPUID1_ECX;
        d = CPUID1_EDX | ((v->vm->cfg.flags & XBT_VM_LOCAL_APIC) ? CPUID1_EDX_APIC : 0);
        break;
    case 7:
        /* IA32_ARCH_CAPABILITIES exists (MSR 0x10A: RDCL_NO).  Guest user code never has
           guest kernel pages in its address space (the D- and U-windows hold user pages
           only), so a Meltdown-style read has nothing to read, and a guest kernel need
           not isolate its page tables (Linux's PTI would switch CR3 at every entry and
           exit: the 686-pae kernel's 100 fork+exec took 2.6 s with it, 0.3 s without). */
        if (sub == 0) {
            c = CPUID7_ECX_UMIP | CPUID7_ECX_RDPID;
            d = XBT_BIT(29);
        }
        break;
    case 0x15:
        tsc_ratio(&b, &a);
        c = b ? 1000000000u : 0;
        break;
    case 0x16:
        a = b = (uint32_t)((host_tsc_hz() + 500000) / 1000000);
        c = 100;
        break;
    case 0x40000000:
        /* The hypervisor leaf (CPUID.1:ECX.hypervisor is set), as VMware's and KVM's:
           the highest hypervisor leaf and the signature "xbtVirtualCP". */
        a = 0x40000000;
        memcpy(&b, "xbtV", 4), memcpy(&c, "irtu", 4), memcpy(&d, "alCP", 4);
        break;
    case 0x80000000:
        a = 0x80000008; /* EBX ECX EDX reserved: zero on Intel */
        break;
    case 0x80000001:
        /* LAHF/SAHF (valid in every mode xbt runs) and RDTSCP.  No SYSCALL (Intel
           reports it only in 64-bit mode), no NX (the walker has no XD bit), no long
           mode. */
        c = XBT_BIT(0);
        d = CPUIDX1_EDX_RDTSCP;
        break;
    case 0x80000002:
    case 0x80000003:
    case 0x80000004:
        memcpy(out, brand + 16 * (leaf - 0x80000002), 16);
        return;
    case 0x80000008:
        a = 0x2024; /* 36 physical address bits (PAE's), 32 linear */
        break;
    default:
        break;
    }
    out[0] = a, out[1] = b, out[2] = c, out[3] = d;
}

/* One leaf of the embedder's policy (policy.c) or of the model. */
static void cpuid_leaf(struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    if (!xbt_cpuid_policy(v, leaf, sub, out))
        xbt_cpuid_model(v, leaf, sub, out);
}

/* CPUID as the guest sees it.  A basic leaf above the highest (leaf 0's EAX) and an
   extended one above the highest extended (0x80000000's EAX) answer as the highest
   basic leaf does, as Intel's CPUs (and QEMU) do; the hypervisor range
   0x40000000-0x7FFFFFFF is left to its leaves, and a leaf the embedder's policy lists
   answers as listed (KVM's rule).  IA32_MISC_ENABLE's Limit CPUID Maxval (bit 22)
   makes the highest basic leaf 2 (firmware may set it for old OSes; Linux clears it
   at boot). */
void xbt_cpuid(struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    uint32_t top[4];
    cpuid_leaf(v, 0, 0, top);
    uint32_t max_basic = top[0];
    bool limited = (v->arch.msr_misc_enable & MISC_ENABLE_LIMIT_CPUID) && max_basic > 2;
    bool listed = xbt_cpuid_policy_lists(v, leaf, sub);
    if (limited)
        max_basic = 2;
    if (leaf >= 0x80000000u && !listed) {
        uint32_t ext[4];
        cpuid_leaf(v, 0x80000000u, 0, ext);
        if (leaf > ext[0] || ext[0] < 0x80000000u)
            leaf = max_basic;
    } else if (leaf < 0x40000000u && leaf > max_basic && (!listed || limited)) {
        leaf = max_basic;
    }
    cpuid_leaf(v, leaf, sub, out);
    if (leaf == 0)
        out[0] = max_basic;
}

void xbt_cpuid_answer(struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    xbt_cpuid(v, leaf, sub, out);
    struct xbt_cpuid_hit *h = &v->cpuid_hit[xbt_cpuid_slot(leaf, sub)];
    *h = (struct xbt_cpuid_hit){ leaf, sub, v->cpuid_gen, { out[0], out[1], out[2], out[3] },
                                 true };
    v->ctx.cpuid_nkey = -((uint64_t)sub << 32 | leaf);
    memcpy(v->ctx.cpuid_r, out, 16);
}

void xbt_cpuid_refresh(struct xbt_vcpu *v)
{
    v->cpuid_gen++;
    uint64_t key = -v->ctx.cpuid_nkey;
    uint32_t r[4];
    xbt_cpuid_answer(v, (uint32_t)key, (uint32_t)(key >> 32), r);
}

/* The model's leaves (the others read zero), for xbt_vcpu_get_cpuid. */
size_t xbt_cpuid_model_list(struct xbt_vcpu *v, xbt_cpuid_entry *e, size_t max)
{
    static const struct { uint32_t leaf, sub, flags; } leaves[] = {
        { 0, 0, 0 }, { 1, 0, 0 }, { 7, 0, XBT_CPUID_INDEXED }, { 0x15, 0, 0 },
        { 0x16, 0, 0 }, { 0x40000000, 0, 0 }, { 0x80000000, 0, 0 }, { 0x80000001, 0, 0 },
        { 0x80000002, 0, 0 }, { 0x80000003, 0, 0 }, { 0x80000004, 0, 0 },
        { 0x80000008, 0, 0 },
    };
    size_t n = sizeof leaves / sizeof leaves[0];
    for (size_t i = 0; i < n && i < max; i++) {
        uint32_t r[4];
        xbt_cpuid_model(v, leaves[i].leaf, leaves[i].sub, r);
        e[i] = (xbt_cpuid_entry){ leaves[i].leaf, leaves[i].sub, leaves[i].flags,
                                  r[0], r[1], r[2], r[3] };
    }
    return n;
}

bool xbt_msr_read(struct xbt_vcpu *v, uint32_t index, uint64_t *value)
{
    switch (index) {
    case 0x10: *value = __rdtsc() + v->ctx.tsc_offset; return true;
    case 0x17: *value = 0; return true;
    case 0x1B:
        if (!local_apic(v))
            return false;
        *value = v->arch.msr_apic_base;
        return true;
    case 0x8B: *value = 0; return true;
    case 0x10A: /* RDCL_NO (see CPUID 7), where CPUID says the MSR exists */
        if (!(xbt_feature(v, XBT_FEAT_7_EDX) & XBT_BIT(29)))
            return false;
        *value = 1;
        return true;
    case 0x174: *value = v->arch.msr_sysenter_cs; return true;
    case 0x175: *value = v->arch.msr_sysenter_esp; return true;
    case 0x176: *value = v->arch.msr_sysenter_eip; return true;
    case 0x1A0: *value = v->arch.msr_misc_enable; return true;
    case 0x277: *value = v->arch.msr_pat; return true;
    case MSR_EFER: *value = v->arch.msr_efer; return true;
    case MSR_TSC_AUX:
        if (!tsc_aux(v))
            return false;
        *value = v->arch.msr_tsc_aux;
        return true;
    default: return mca_read(v, index, value);
    }
}

static bool pat_valid(uint64_t value)
{
    for (int i = 0; i < 8; i++) {
        unsigned type = (unsigned)(value >> (8 * i)) & 0xFF;
        if (type == 2 || type == 3 || type > 7)
            return false;
    }
    return true;
}

bool xbt_msr_write(struct xbt_vcpu *v, uint32_t index, uint64_t value)
{
    switch (index) {
    case 0x10: v->ctx.tsc_offset = value - __rdtsc(); return true;
    case 0x1B:
        /* Bits 0-7, 9, 10 and 36-63 are reserved (a 36-bit physical address space). */
        if (!local_apic(v) || (value & ~0x0000000FFFFFF900ull))
            return false;
        if (value != v->arch.msr_apic_base)
            xbt_rshadow_forget(v); /* a read shadow bound to the APIC base */
        v->arch.msr_apic_base = value;
        return true;
    case 0x8B: return true;
    case 0x174: v->arch.msr_sysenter_cs = value & 0xFFFF; return true;
    case 0x175: v->arch.msr_sysenter_esp = value & 0xFFFFFFFF; return true;
    case 0x176: v->arch.msr_sysenter_eip = value & 0xFFFFFFFF; return true;
    case 0x1A0:
        v->arch.msr_misc_enable = value;
        xbt_cpuid_refresh(v); /* Limit CPUID Maxval */
        return true;
    case 0x277:
        if (!pat_valid(value))
            return false;
        v->arch.msr_pat = value;
        return true;
    case MSR_EFER:
        /* LME (no long mode here), LMA (read-only, and clear) and NXE (no NX) are
           reserved in this model, as on a CPU without them: #GP. */
        if (value & ~(uint64_t)EFER_SCE)
            return false;
        v->arch.msr_efer = value;
        return true;
    case MSR_TSC_AUX:
        if (!tsc_aux(v) || (value >> 32)) /* bits 63:32 reserved */
            return false;
        v->arch.msr_tsc_aux = value;
        return true;
    default: return mca_write(v, index, value); /* 0x17, 0x10A: read-only */
    }
}
