/*
 * smp.h - more than one CPU for the guest test kernels: the CPUs the firmware lists (ACPI
 * MADT and the MP configuration table), the application processors started the way the
 * SDM's MP initialization protocol starts them (INIT, SIPI, SIPI through the local APIC's
 * ICR, a real-mode trampoline below 1 MiB: smp16.S), and work handed to them.
 *
 * Each AP runs ap_main (smp.c) on a stack of its own with the BSP's GDT and IDT, its
 * local APIC software-enabled, interrupts off, and waits for work from smp_call.  Only
 * CPU 0 (the BSP) prints and makes checks: the check counters are not shared safely.
 */
#ifndef GUEST_SMP_H
#define GUEST_SMP_H

#include "pc.h"

#define SMP_MAX 8           /* CPUs the guests handle */
#define SMP_TRAMP 0x7000u   /* the trampoline: below the multiboot loaders' 0x8f00/0x9000 */
#define SMP_SPURIOUS 0x3f   /* the spurious vector each CPU's SVR names (a library stub) */

typedef void (*smp_fn)(int cpu);

struct smp_cpu {
    u32 apic_id;               /* from the firmware's tables */
    volatile u32 online;       /* ap_main reached (CPU 0: always) */
    volatile u32 starts;       /* times ap_main was entered (a restart counts again) */
    volatile u32 apic_reg_id;  /* the local APIC ID register, bits 31-24 */
    volatile u32 cpuid_id;     /* CPUID.1:EBX[31:24], the initial APIC ID */
    volatile u32 tramp_cs;     /* CS the trampoline ran with (SIPI vector << 8) */
    volatile u32 esp, cr0, cs; /* as ap_main saw them */
    volatile u32 svr_at_start; /* the APIC's SVR before ap_main enabled it */
    volatile u32 arrival;      /* the trampoline's arrival number (picks the stack) */
    volatile smp_fn work;      /* smp_call's function, cleared when it returns */
};

extern struct smp_cpu smp_cpus[SMP_MAX];
extern int smp_ncpus;                /* CPUs listed (MADT, else MP table); cpu 0 = BSP */
extern volatile u32 smp_arrivals;    /* APs that entered the trampoline's 32-bit part */
extern u8 ap_stacks[];               /* smp16.S: AP_STACKS stacks of AP_STACK_SIZE */
#define AP_STACKS 16
#define AP_STACK_SIZE 8192

/* The enabled processors' APIC IDs from the MADT or the MP table: how many (at most max),
   or -1 when the table is missing.  *bsp_id (MP only, may be NULL): the entry marked BSP. */
int smp_madt_ids(u32 *ids, int max);
int smp_mp_ids(u32 *ids, int max, u32 *bsp_id);

/* Finds the CPUs (MADT, else MP), starts every AP with INIT, SIPI, SIPI (vector
   SMP_TRAMP >> 12) and waits up to 5 s for each (a loaded host may leave a vCPU thread
   unscheduled that long); returns how many CPUs are online, the BSP included. */
int smp_boot(void);
/* smp_boot for the guests that test something else: checks that at least two CPUs are
   listed and every one came up; nonzero if so (else the guest returns at once). */
int smp_boot_all(void);
/* INIT, SIPI, SIPI to one APIC ID with the trampoline at page vector << 12; waits up to
   max_us for cpu's starts count to pass its value before; nonzero if it did. */
int smp_start_ap(int cpu, u32 vector, u32 max_us);

/* Runs fn(cpu) on AP cpu (asynchronous); smp_join waits until it returned. */
void smp_call(int cpu, smp_fn fn);
void smp_join(int cpu);
/* fn(i) on every online CPU i, CPU 0 (the caller) included; returns when all have. */
void smp_all(smp_fn fn);
/* The number of this CPU (index into smp_cpus) by its APIC ID register. */
int smp_self(void);

/* An IPI: waits until the ICR is idle, then ICR2 = dest << 24 and ICR = low. */
void smp_ipi(u32 dest_apic_id, u32 low);
/* The local APIC enabled (SVR) with SMP_SPURIOUS, TPR 0: ap_main does it on each AP. */
void smp_apic_on(void);

/* The "cpus=N" word of the command line (run-guest.sh's GUEST_SMP), or 0. */
int smp_expected(void);

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void mfence(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void serialize(void)
{
    u32 a = 0, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d) : : "memory");
}
static inline void reload_cr3(void)
{
    u32 cr3;
    __asm__ volatile("movl %%cr3, %0; movl %0, %%cr3" : "=r"(cr3) : : "memory");
}
/* This CPU's paging on: CR4.PSE, CR3 = pd, CR0.PG (the SMP paging guests). */
static inline void smp_paging_on(const u32 *pd)
{
    u32 r;
    __asm__ volatile("movl %%cr4, %0; orl $0x10, %0; movl %0, %%cr4" : "=r"(r));
    __asm__ volatile("movl %0, %%cr3" : : "r"(pd) : "memory");
    __asm__ volatile("movl %%cr0, %0; orl $0x80000000, %0; movl %0, %%cr0" : "=r"(r) : : "memory");
}
/* Elapsed time on the PM timer beyond its 24-bit wrap (4.7 s): read it more often than
   that.  smp_clock_start, then smp_clock_us as often as wanted. */
struct smp_clock { u32 last, ticks; };
void smp_clock_start(struct smp_clock *c);
u32 smp_clock_us(struct smp_clock *c);
/* Busy-waits (pause) until *p == v or about max_us pass; nonzero if it did.  Polls
   the PM timer only every 256 spins: port reads are slow on every peer. */
int smp_wait_eq(volatile u32 *p, u32 v, u32 max_us);

#endif
