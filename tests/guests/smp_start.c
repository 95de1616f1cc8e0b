/*
 * smp_start.c - AP start-up (issue 16): the CPUs the firmware lists in the ACPI MADT and
 * in the MP configuration table (a subset of the MADT's, see below), each AP started by
 * INIT, SIPI, SIPI with the real-mode trampoline of lib/smp16.S (vector = page number of
 * the trampoline), which enters protected mode and calls C on a stack of its own.  Each AP
 * reports its local APIC ID register and CPUID's initial APIC ID; all listed CPUs must
 * come up (exactly "cpus=N" of the command line when run-guest.sh passes GUEST_SMP),
 * each with the APIC state an INIT leaves (SVR 0xff: software-disabled).
 * Then work handed to each AP, and a running AP sent INIT, SIPI, SIPI again with a
 * trampoline on another page: it restarts there (SDM vol. 3, "MP Initialization").
 */
#include "lib/smp.h"

#define TRAMP2 0x6000u

static volatile u32 work_out[SMP_MAX];

static void square(int cpu)
{
    work_out[cpu] = (u32)(cpu * cpu + 1000) + smp_cpus[cpu].apic_reg_id;
}

/* The work only APs run, after the BSP's INIT, SIPI, SIPI are over: gdb.smp_start.ap_work
   breaks and single-steps here.  Not at ap_main: an AP reaches it after the first SIPI,
   and the second may then be pending while gdb has the CPUs stopped; QEMU TCG's single
   step takes that SIPI (ignored by a running AP) as the step and reports the AP still at
   the breakpoint (since QEMU 5.1 a step that handles an interrupt stops before the next
   instruction: "tcg/cpu-exec: precise single-stepping after an interrupt"). */
void ap_work(int cpu)
{
    square(cpu);
}

/* Every one of a's n IDs is among b's m. */
static int subset(const u32 *a, int n, const u32 *b, int m)
{
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < m; j++)
            found |= a[i] == b[j];
        if (!found)
            return 0;
    }
    return 1;
}

void main(void)
{
    u32 madt[SMP_MAX], mp[SMP_MAX], bsp = 0xff;
    int n_madt = smp_madt_ids(madt, SMP_MAX);
    int n_mp = smp_mp_ids(mp, SMP_MAX, &bsp);
    int want = smp_expected();
    printf("smp_start: MADT lists %d CPUs, the MP table %d, command line cpus=%d\n", n_madt,
           n_mp, want);
    CHECK(n_madt > 0, "MADT found with processor entries");
    CHECK(n_mp > 0, "MP configuration table found with processor entries");
    /* SeaBIOS lists only the first logical CPU of each package in its MP table (QEMU's
       -smp 2 is one package of two cores: one entry); the MADT lists them all. */
    CHECK(subset(mp, n_mp, madt, n_madt), "every CPU of the MP table is in the MADT");
    CHECK(n_madt >= 2, "at least two CPUs listed");
    if (want)
        CHECK_EQ(n_madt, want, "as many CPUs as the command line's cpus=N");
    u32 self = apic_read(APIC_ID) >> 24;
    CHECK_EQ(bsp, self, "the MP table's BSP entry is this CPU");

    int online = smp_boot();
    printf("smp_start: %d of %d CPUs online, %u arrivals\n", online, smp_ncpus, smp_arrivals);
    CHECK_EQ(online, smp_ncpus, "every listed CPU came up");
    CHECK_EQ(smp_arrivals, smp_ncpus - 1, "each AP entered the trampoline once");
    int ids_ok = 1, cpuid_ok = 1, distinct = 1, stack_ok = 1, mode_ok = 1, cs_ok = 1, svr_ok = 1;
    for (int i = 0; i < smp_ncpus; i++) {
        struct smp_cpu *c = &smp_cpus[i];
        printf("smp_start: cpu %d table APIC ID %u, register %u, CPUID initial %u", i,
               c->apic_id, c->apic_reg_id, c->cpuid_id);
        if (i)
            printf(", trampoline CS %x, esp %x, cr0 %x", c->tramp_cs, c->esp, c->cr0);
        printf("\n");
        ids_ok &= c->apic_reg_id == c->apic_id;
        cpuid_ok &= c->cpuid_id == c->apic_reg_id;
        for (int j = 0; j < i; j++)
            distinct &= smp_cpus[j].apic_reg_id != c->apic_reg_id;
        if (!i)
            continue;
        u32 lo = (u32)ap_stacks + c->arrival * AP_STACK_SIZE;
        stack_ok &= c->esp > lo && c->esp <= lo + AP_STACK_SIZE;
        /* PE set, CD and NW cleared by the trampoline, PG off. */
        mode_ok &= (c->cr0 & 0xe0000001u) == 1 && c->cs == SEL_CODE;
        cs_ok &= c->tramp_cs == (SMP_TRAMP >> 4);
        svr_ok &= c->svr_at_start == 0xff;
    }
    CHECK(ids_ok, "each CPU's APIC ID register matches its table entry");
    CHECK(cpuid_ok, "CPUID initial APIC ID equals the APIC ID register on each CPU");
    CHECK(distinct, "APIC IDs are distinct");
    CHECK(stack_ok, "each AP runs C on a stack of its own");
    CHECK(mode_ok, "APs run in 32-bit protected mode (PE, CD/NW clear, flat CS)");
    CHECK(cs_ok, "each AP started at CS = vector << 8 (the trampoline's page)");
    /* INIT resets the local APIC but its ID: SVR 0xff, software-disabled (SDM vol. 3,
       "Local APIC State After an INIT Reset"). */
    CHECK(svr_ok, "each AP's APIC came out of INIT software-disabled (SVR 0xff)");

    for (int i = 1; i < smp_ncpus; i++)
        smp_call(i, ap_work);
    square(0);
    for (int i = 1; i < smp_ncpus; i++)
        smp_join(i);
    int work_ok = 1;
    for (int i = 0; i < smp_ncpus; i++)
        work_ok &= work_out[i] == (u32)(i * i + 1000) + smp_cpus[i].apic_reg_id;
    CHECK(work_ok, "every CPU ran work handed to it");

    /* INIT puts a running AP back into wait-for-SIPI; the SIPIs' vector picks the page. */
    if (smp_ncpus >= 2) {
        memcpy((void *)TRAMP2, (void *)SMP_TRAMP, 0x100);
        int cpu = smp_ncpus - 1;
        u32 arrivals = smp_arrivals;
        CHECK(smp_start_ap(cpu, TRAMP2 >> 12, 5000000), "INIT, SIPI, SIPI restart a running AP");
        CHECK_EQ(smp_cpus[cpu].starts, 2, "the restarted AP entered ap_main a second time");
        CHECK_EQ(smp_cpus[cpu].tramp_cs, TRAMP2 >> 4, "it started on the new vector's page");
        CHECK_EQ(smp_arrivals, arrivals + 1, "once (the second SIPI was ignored)");
        CHECK_EQ(smp_cpus[cpu].svr_at_start, 0xff,
                 "INIT reset the running AP's enabled APIC (SVR 0xff)");
        work_out[cpu] = 0;
        smp_call(cpu, square);
        smp_join(cpu);
        CHECK_EQ(work_out[cpu], (u32)(cpu * cpu + 1000) + smp_cpus[cpu].apic_reg_id,
                 "the restarted AP runs work again");
    }
}
