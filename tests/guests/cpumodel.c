/*
 * cpumodel.c - the CPU model's newer parts as a guest kernel sees them: IA32_EFER in
 * legacy mode, RDTSCP, RDPID and IA32_TSC_AUX, CR4.TSD for RDTSC/RDTSCP, CR4.UMIP with
 * SGDT, SIDT, SLDT, SMSW and STR at CPL 0 and CPL 3, the machine-check registers, and
 * the extended CPUID leaves.  Every feature check follows CPUID, so the guest runs on
 * QEMU's qemu32 CPU with the features added (GUEST_QEMU_CPU in CMakeLists.txt).
 *
 * Where QEMU TCG departs from the SDM the check says so and expects QEMU's answer on
 * QEMU (on_qemu_tcg): its WRMSR ignores EFER bits the CPU lacks instead of raising
 * #GP (so SCE does not stick on a CPU without SYSCALL, LME and NXE are dropped), and
 * stores all 64 bits of IA32_TSC_AUX (bits 63:32 are reserved: #GP), and its RDMSR of
 * IA32_TSC_AUX reads 0 (QEMU 7.2; RDTSCP there does return the value written).  QEMU 7.2
 * TCG has no RDPID: its checks run on xbt only.  QEMU 7.2 stores IA32_MISC_ENABLE's Limit
 * CPUID Maxval (bit 22) without limiting leaf 0 to 2 as the SDM says (checked on xbt).
 */
#include "lib/guest.h"

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));

static void cpuid2(u32 leaf, u32 sub, u32 r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}


/* RDMSR / WRMSR that may fault: the vector (0xffffffff: none). */
static u32 rdmsr_try(u32 index, u64 *value)
{
    u32 lo = 0, hi = 0;
    fault.vector = 0xffffffffu;
    __asm__ volatile("movl $1f, fault+16\n\tmovl $2f, fault+20\n1:\trdmsr\n2:"
                     : "+a"(lo), "+d"(hi) : "c"(index) : "memory", "cc");
    *value = (u64)hi << 32 | lo;
    return fault.vector;
}

static u32 wrmsr_try(u32 index, u64 value)
{
    TRY_FAULT("wrmsr", "c"(index), "a"((u32)value), "d"((u32)(value >> 32)));
    return fault.vector;
}

static int has_rdtscp, has_rdpid, has_umip;

/* ---- EFER -------------------------------------------------------------------------- */

static void check_efer(void)
{
    u32 x1[4];
    u64 v = ~0ull;
    cpuid2(0x80000001u, 0, x1);
    int sce_sticks = !on_qemu_tcg() || (x1[3] & (1u << 11)); /* QEMU: only with SYSCALL */
    CHECK_EQ(rdmsr_try(0xC0000080u, &v), 0xffffffffu, "rdmsr EFER: no fault");
    CHECK_EQ((u32)v & (1u << 10), 0, "EFER.LMA clear (legacy mode)");
    CHECK_EQ(wrmsr_try(0xC0000080u, v | 1), 0xffffffffu, "wrmsr EFER.SCE: no fault");
    u64 w = 0;
    rdmsr_try(0xC0000080u, &w);
    CHECK_EQ((u32)w & 1, sce_sticks, "EFER.SCE reads back as written");
    /* SYSCALL outside 64-bit mode on Intel: #UD whatever EFER.SCE says. */
    TRY_FAULT("syscall", NOFAULT);
    CHECK_EQ(fault.vector, 6, "syscall with EFER.SCE set (legacy mode): #UD");
    static const struct { u32 bit; const char *name; } rsvd[] = {
        { 8, "wrmsr EFER.LME without long mode: #GP" },
        { 11, "wrmsr EFER.NXE without NX: #GP" },
        { 2, "wrmsr EFER bit 2 (reserved): #GP" },
    };
    for (unsigned i = 0; i < sizeof rsvd / sizeof rsvd[0]; i++) {
        if ((rsvd[i].bit == 11 && (x1[3] & (1u << 20))) || (rsvd[i].bit == 8 && (x1[3] & (1u << 29))))
            continue; /* the CPU has NX / long mode */
        u32 vec = wrmsr_try(0xC0000080u, v | (1ull << rsvd[i].bit));
        CHECK_EQ(vec, on_qemu_tcg() ? 0xffffffffu : 13u, rsvd[i].name);
        rdmsr_try(0xC0000080u, &w);
        CHECK_EQ((u32)w & (1u << rsvd[i].bit), 0, "the reserved EFER bit stays clear");
    }
    wrmsr_try(0xC0000080u, v);
}

/* ---- RDTSCP, RDPID, IA32_TSC_AUX ------------------------------------------------------- */

static void check_tsc_aux(void)
{
    if (!has_rdtscp && !has_rdpid) {
        u64 v;
        CHECK_EQ(rdmsr_try(0xC0000103u, &v), 13, "no RDTSCP/RDPID: IA32_TSC_AUX #GP");
        return;
    }
    CHECK_EQ(wrmsr_try(0xC0000103u, 0x12345678u), 0xffffffffu, "wrmsr TSC_AUX");
    u64 v = 0;
    rdmsr_try(0xC0000103u, &v);
    CHECK_EQ((u32)v, on_qemu_tcg() ? 0 : 0x12345678u, "TSC_AUX reads back");
    u32 vec = wrmsr_try(0xC0000103u, 0x100000000ull | 0x55u);
    CHECK_EQ(vec, on_qemu_tcg() ? 0xffffffffu : 13u, "wrmsr TSC_AUX bit 32 (reserved): #GP");
    wrmsr_try(0xC0000103u, 0x12345678u);
    if (has_rdtscp) {
        u32 lo, hi, c;
        u64 t0 = rdtsc();
        __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(c));
        u64 t1 = rdtsc(), tp = (u64)hi << 32 | lo;
        CHECK_EQ(c, 0x12345678u, "rdtscp: ECX = TSC_AUX");
        CHECK(t0 <= tp && tp <= t1, "rdtscp: the TSC RDTSC reads, between two RDTSCs");
    }
    if (has_rdpid) {
        u32 r = 0;
        __asm__ volatile(".byte 0xf3, 0x0f, 0xc7, 0xf9" : "=c"(r)); /* rdpid ecx */
        CHECK_EQ(r, 0x12345678u, "rdpid ecx = TSC_AUX");
    }
}

/* ---- user mode: CR4.TSD and CR4.UMIP at CPL 3 ------------------------------------------- */

/* What the user probes saw: the vector of each (0xffffffff: none), by index of probe. */
enum { P_RDTSC, P_RDTSCP, P_RDPID, P_SGDT, P_SIDT, P_SLDT, P_SMSW, P_STR, P_SMSWM, P_N };
static volatile u32 seen[P_N];
u8 dt_buf[6];
u16 sel_buf;

/* TRY_FAULT for an instruction that writes EAX, ECX or EDX. */
#define TRY_X(insn)                                                                  \
    do {                                                                             \
        fault.vector = 0xffffffffu;                                                  \
        __asm__ volatile("movl $1f, fault+16\n\tmovl $2f, fault+20\n1:\t" insn "\n2:\n" \
                         ::: "eax", "ecx", "edx", "memory", "cc");                   \
    } while (0)

/* Each probe once, its vector into seen[] (from CPL 3: user_probes; from CPL 0 too). */
#define PROBE(i, insn)               \
    do {                             \
        TRY_X(insn);                 \
        seen[i] = fault.vector;      \
    } while (0)
static void probes(void)
{
    PROBE(P_RDTSC, "rdtsc");
    if (has_rdtscp)
        PROBE(P_RDTSCP, "rdtscp");
    if (has_rdpid)
        PROBE(P_RDPID, ".byte 0xf3, 0x0f, 0xc7, 0xf8"); /* rdpid eax */
    PROBE(P_SGDT, "sgdt dt_buf");
    PROBE(P_SIDT, "sidt dt_buf");
    PROBE(P_SLDT, "sldt %%ax");
    PROBE(P_SMSW, "smsw %%eax");
    PROBE(P_STR, "str %%ax");
    PROBE(P_SMSWM, "smsw sel_buf");
}

static void user_probes(void)
{
    probes();
    __asm__ volatile("int $0x80" ::: "memory");
}

static void back_to_kernel(struct frame *f)
{
    user_return(f);
}

static void run_probes(int user)
{
    for (int i = 0; i < P_N; i++)
        seen[i] = 0xffffffffu;
    if (user)
        user_enter((u32)user_probes, (u32)(ustack + sizeof ustack), 0);
    else
        probes();
}

static void set_cr4(u32 v)
{
    __asm__ volatile("mov %0, %%cr4" : : "r"(v));
}

static void check_user(void)
{
    static const char *const names[P_N] = { "rdtsc", "rdtscp", "rdpid", "sgdt", "sidt",
                                            "sldt", "smsw r32", "str", "smsw m16" };
    u32 cr4 = read_cr4();
    /* CR4.TSD: RDTSC and RDTSCP #GP at CPL 3; RDPID is not affected. */
    set_cr4(cr4 | 4);
    run_probes(1);
    set_cr4(cr4);
    for (int i = P_RDTSC; i <= P_RDPID; i++) {
        if ((i == P_RDTSCP && !has_rdtscp) || (i == P_RDPID && !has_rdpid))
            continue;
        u32 want = i == P_RDPID ? 0xffffffffu : 13u;
        printf("%s\n", names[i]);
        CHECK_EQ(seen[i], want, i == P_RDPID ? "CR4.TSD=1, CPL 3: rdpid runs"
                                              : "CR4.TSD=1, CPL 3: #GP");
    }
    /* CR4.TSD clear, UMIP clear: all run at CPL 3. */
    run_probes(1);
    for (int i = 0; i < P_N; i++)
        if (!((i == P_RDTSCP && !has_rdtscp) || (i == P_RDPID && !has_rdpid))) {
            printf("%s\n", names[i]);
            CHECK_EQ(seen[i], 0xffffffffu, "CR4.TSD=0 UMIP=0, CPL 3: no fault");
        }
    if (!has_umip) {
        TRY_FAULT("mov %0, %%cr4", "r"(cr4 | 0x800));
        CHECK_EQ(fault.vector, 13, "CR4.UMIP without UMIP in CPUID: #GP");
        return;
    }
    TRY_FAULT("mov %0, %%cr4", "r"(cr4 | 0x800));
    CHECK_EQ(fault.vector, 0xffffffffu, "CR4.UMIP set");
    CHECK_EQ(read_cr4() & 0x800, 0x800, "CR4.UMIP reads back");
    /* CPL 0: UMIP does not apply. */
    run_probes(0);
    for (int i = P_SGDT; i < P_N; i++) {
        printf("%s\n", names[i]);
        CHECK_EQ(seen[i], 0xffffffffu, "CR4.UMIP=1, CPL 0: no fault");
    }
    run_probes(1);
    set_cr4(cr4);
    for (int i = P_SGDT; i < P_N; i++) {
        printf("%s\n", names[i]);
        CHECK_EQ(seen[i], 13, "CR4.UMIP=1, CPL 3: #GP");
    }
    CHECK_EQ(seen[P_RDTSC], 0xffffffffu, "CR4.UMIP=1, CPL 3: rdtsc runs");
}

/* ---- machine check, extended leaves ------------------------------------------------------ */

static void check_mca(void)
{
    u32 l1[4];
    cpuid2(1, 0, l1);
    if (!(l1[3] & (1u << 14)))
        return;
    u64 cap = 0, st = 1;
    CHECK_EQ(rdmsr_try(0x179, &cap), 0xffffffffu, "rdmsr MCG_CAP");
    u32 banks = (u32)cap & 0xff;
    CHECK(banks > 0 && banks < 32, "MCG_CAP: 1 to 31 banks");
    rdmsr_try(0x401, &st);
    CHECK_EQ((u32)st | (u32)(st >> 32), 0, "MC0_STATUS reads 0 (no machine check)");
    CHECK_EQ(wrmsr_try(0x401, 0), 0xffffffffu, "wrmsr MC0_STATUS 0");
    CHECK_EQ(wrmsr_try(0x400 + 4 * (banks - 1), ~0ull), 0xffffffffu, "wrmsr last MCi_CTL all ones");
    TRY_FAULT("mov %0, %%cr4", "r"(read_cr4() | 0x40));
    CHECK_EQ(fault.vector, 0xffffffffu, "CR4.MCE set");
    set_cr4(read_cr4() & ~0x40u);
}

static void check_ext_leaves(void)
{
    u32 r[4], brand[12];
    cpuid2(0x80000000u, 0, r);
    CHECK(r[0] >= 0x80000004u && r[0] < 0x80000100u, "CPUID 0x80000000: extended leaves");
    for (u32 i = 0; i < 3; i++)
        cpuid2(0x80000002u + i, 0, brand + 4 * i);
    CHECK(((const char *)brand)[0] != 0 && ((const char *)brand)[47] == 0, "brand string");
    printf("brand: %s\n", (const char *)brand);
    if (r[0] >= 0x80000008u) {
        cpuid2(0x80000008u, 0, r);
        CHECK((r[0] & 0xff) >= 32 && (r[0] & 0xff) <= 52, "CPUID 0x80000008: physical bits");
    }
    cpuid2(0x80000001u, 0, r);
    CHECK_EQ(r[3] & (1u << 29), 0, "no long mode (a 32-bit VM)");
}

/* A leaf above its range's highest answers as the highest basic leaf does (SDM vol. 2A,
   CPUID: "If a value entered for CPUID.EAX is higher than the maximum input value for
   basic or extended function ... the data for the highest basic information leaf is
   returned"); IA32_MISC_ENABLE bit 22 (Limit CPUID Maxval) makes leaf 0 report 2. */
static void check_leaf_ranges(void)
{
    u32 l0[4], top[4], r[4], x0[4];
    cpuid2(0, 0, l0);
    cpuid2(l0[0], 0, top);
    cpuid2(l0[0] + 1, 0, r);
    printf("max basic %x: %x %x %x %x; above: %x %x %x %x\n", l0[0], top[0], top[1], top[2],
           top[3], r[0], r[1], r[2], r[3]);
    CHECK(r[0] == top[0] && r[1] == top[1] && r[2] == top[2] && r[3] == top[3],
          "CPUID above the highest basic leaf: the highest basic leaf's data");
    cpuid2(0x80000000u, 0, x0);
    cpuid2(x0[0] + 1, 0, r);
    printf("max ext %x; above: %x %x %x %x\n", x0[0], r[0], r[1], r[2], r[3]);
    CHECK(r[0] == top[0] && r[1] == top[1] && r[2] == top[2] && r[3] == top[3],
          "CPUID above the highest extended leaf: the highest basic leaf's data");
    u64 misc;
    CHECK_EQ(rdmsr_try(0x1a0, &misc), 0xffffffffu, "rdmsr IA32_MISC_ENABLE");
    CHECK_EQ((u32)misc & (1u << 22), 0, "Limit CPUID Maxval clear at reset");
    /* Leaf 0 just before the write: an answer the VMM remembers (xbt answers a repeated
       CPUID inline) must not survive it. */
    cpuid2(0, 0, r);
    CHECK_EQ(r[0], l0[0], "leaf 0 again, just before the write");
    CHECK_EQ(wrmsr_try(0x1a0, misc | 1u << 22), 0xffffffffu, "wrmsr Limit CPUID Maxval");
    cpuid2(0, 0, r);
    printf("leaf 0 with Limit CPUID Maxval: %x\n", r[0]);
    CHECK_EQ(r[0], l0[0] > 2 && !on_qemu_tcg() ? 2u : l0[0], "Limit CPUID Maxval: leaf 0 reports 2");
    u32 l2[4];
    cpuid2(2, 0, l2);
    cpuid2(l0[0], 0, r);
    if (l0[0] > 2 && !on_qemu_tcg())
        CHECK(r[0] == l2[0] && r[1] == l2[1] && r[2] == l2[2] && r[3] == l2[3],
              "Limit CPUID Maxval: a leaf above 2 answers as leaf 2");
    CHECK_EQ(wrmsr_try(0x1a0, misc), 0xffffffffu, "wrmsr IA32_MISC_ENABLE back");
    cpuid2(0, 0, r);
    CHECK_EQ(r[0], l0[0], "Limit CPUID Maxval cleared: leaf 0 as before");
}

void main(void)
{
    u32 x1[4], l7[4];
    cpuid2(0x80000001u, 0, x1);
    cpuid2(7, 0, l7);
    has_rdtscp = (x1[3] >> 27) & 1;
    has_rdpid = (l7[2] >> 22) & 1;
    has_umip = (l7[2] >> 2) & 1;
    printf("rdtscp %d rdpid %d umip %d\n", has_rdtscp, has_rdpid, has_umip);
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, back_to_kernel);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    check_ext_leaves();
    check_leaf_ranges();
    check_efer();
    check_tsc_aux();
    check_mca();
    check_user();
}
