/*
 * smap.c - SMEP and SMAP (SDM vol. 3, 4.6): run with "expect=max" on a CPU that has
 * them (QEMU -cpu max, xbt-run --cpu max), with "expect=none" on one that has not.
 *
 * With them: supervisor reads and writes of a user page fault with EFLAGS.AC clear
 * (error code P, W for a write, never U), succeed after STAC or a POPF that sets AC,
 * fault again after CLAC (also within one block: the K-window must have let the page
 * go), AC kept by an interrupt (only real mode clears it), cleared by its handler and
 * set again by its IRET; a callout's store (SGDT)
 * follows the same rule; an LDT in a user page is an implicit supervisor access that
 * faults at CPL 0 and at CPL 3 whatever AC says; CLAC and STAC at CPL 3 are #UD;
 * SMEP: a CPL 0 jump to a user page faults with I/D (also to a page that is not
 * present), code translated from that page before SMEP was set no longer runs, and
 * runs again once SMEP is clear.  Without them: CPUID says so, CR4.SMEP and CR4.SMAP
 * are reserved (#GP(0)) and CLAC/STAC are #UD.
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define U 4u
#define AC 0x40000u
#define CR4_SMEP (1u << 20)
#define CR4_SMAP (1u << 21)
#define UBASE 0x40000000u /* user alias of physical 0..4 MiB */
#define ALIAS(p) ((u32)(p) + UBASE)

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096))); /* identity 0..16 MiB, supervisor */
static u32 pt_user[1024] __attribute__((aligned(4096)));
static volatile u32 upage[1024] __attribute__((aligned(4096)));
static u64 ldt_page[512] __attribute__((aligned(4096)));
static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[4096] __attribute__((aligned(4096)));
static volatile u32 u_vec, u_err, u_eip, u_cr2, h_ac, h_vec, h_err;

static void stac(void) { __asm__ volatile("stac" ::: "memory", "cc"); }
static void clac(void) { __asm__ volatile("clac" ::: "memory", "cc"); }
static void popf_ac(int on)
{
    if (on)
        __asm__ volatile("pushfl\n\torl $0x40000, (%%esp)\n\tpopfl" ::: "memory", "cc");
    else
        __asm__ volatile("pushfl\n\tandl $~0x40000, (%%esp)\n\tpopfl" ::: "memory", "cc");
}

/* User code (run at its user alias: position independent). */
void u_clac(void), u_stac(void), u_ldt(void), smep_fn(void);
__asm__(".text\n.align 16\n.globl u_clac\nu_clac:\n\tclac\n\tud2\n"
        ".globl u_stac\nu_stac:\n\tstac\n\tud2\n"
        /* EAX: an LDT selector; AC set first (it does not matter for implicit accesses) */
        ".globl u_ldt\nu_ldt:\n\tpushfl\n\torl $0x40000, (%esp)\n\tpopfl\n"
        "\tmovw %ax, %fs\n\tud2\n"
        ".globl smep_fn\nsmep_fn:\n\tmovl $42, %eax\n\tret\n");

/* #UD and #PF: from CPL 3 recorded and back to the kernel; at CPL 0 an expected fault
   (TRY_FAULT) resumed after its instruction. */
static void trap(struct frame *f)
{
    if (f->cs & 3) {
        u_vec = f->vector, u_err = f->err, u_eip = f->eip, u_cr2 = read_cr2();
        user_return(f);
        return;
    }
    fault.count++;
    fault.vector = f->vector, fault.err = f->err, fault.eip = f->eip;
    f->eip = fault.resume;
    fault.resume = 0;
}

/* INT 0x30: what a handler sees of AC (protected-mode delivery keeps it: only real
   mode's clears it), a read of the user page with it, then with AC cleared. */
static void int30(struct frame *f)
{
    (void)f;
    h_ac = read_eflags() & AC;
    TRY_FAULT("cmpl $0, (%0)", "r"(ALIAS(&upage[1])));
    h_vec = fault.vector;
    clac();
    TRY_FAULT("cmpl $0, (%0)", "r"(ALIAS(&upage[1])));
    h_err = fault.vector << 8 | fault.err;
}

static void run_user(void (*fn)(void), u32 eax)
{
    u_vec = u_err = u_eip = u_cr2 = 0xffffffffu;
    user_enter(ALIAS(fn), ALIAS(ustack + sizeof ustack), eax);
}

static void check_pf(u32 err, u32 cr2, const char *name)
{
    CHECK_EQ(fault.vector, 14, name);
    CHECK_EQ(fault.err, err, "  its error code");
    CHECK_EQ(read_cr2(), cr2, "  its CR2");
}

static void smap_data(void)
{
    u32 a = ALIAS(&upage[0]);
    upage[0] = 0x1234;
    clac();
    TRY_FAULT("cmpl $0, (%0)", "r"(a));
    check_pf(P, a, "SMAP, AC=0: a read of a user page is #PF");
    TRY_FAULT("movl $5, (%0)", "r"(a));
    check_pf(P | W, a, "SMAP, AC=0: a write to a user page is #PF");
    CHECK_EQ(upage[0], 0x1234, "  and did not write");
    upage[2] = 9;
    CHECK_EQ(upage[2], 9, "SMAP, AC=0: the supervisor page of the same memory works");

    stac();
    fault.count = 0;
    CHECK_EQ(*(volatile u32 *)a, 0x1234, "STAC: the user page reads");
    *(volatile u32 *)a = 0x5678;
    CHECK_EQ(upage[0], 0x5678, "STAC: the user page is written");
    CHECK_EQ(fault.count, 0, "  without a fault");
    clac();
    TRY_FAULT("cmpl $0, (%0)", "r"(a));
    check_pf(P, a, "CLAC after the user page was used: #PF again");

    /* One block: STAC, a read, CLAC, a read. */
    TRY_FAULT("stac\n\tcmpl $0, (%0)\n\tclac\n\tcmpl $0, (%0)", "r"(a));
    check_pf(P, a, "STAC, read, CLAC, read in one block: the second read is #PF");
    CHECK_EQ(read_eflags() & AC, 0, "  AC clear");

    popf_ac(1);
    fault.count = 0;
    CHECK_EQ(*(volatile u32 *)a, 0x5678, "POPF setting AC: the user page reads");
    CHECK_EQ(fault.count, 0, "  without a fault");
    popf_ac(0);
    TRY_FAULT("cmpl $0, (%0)", "r"(a));
    check_pf(P, a, "POPF clearing AC: #PF again");

    /* An interrupt keeps AC; the handler clears it, its IRET sets it again. */
    stac();
    (void)*(volatile u32 *)ALIAS(&upage[1]);
    __asm__ volatile("int $0x30" ::: "memory");
    CHECK_EQ(h_ac, AC, "INT keeps AC for its handler (protected mode)");
    CHECK_EQ(h_vec, 0xffffffffu, "  whose read of the user page works");
    CHECK_EQ(h_err, 14 << 8 | P, "  and after its CLAC is #PF");
    CHECK_EQ(read_eflags() & AC, AC, "IRET restores AC");
    fault.count = 0;
    (void)*(volatile u32 *)ALIAS(&upage[1]);
    CHECK_EQ(fault.count, 0, "  and the user page reads again");

    /* A callout's store (SGDT) is an explicit access. */
    clac();
    TRY_FAULT("sgdt (%0)", "r"(ALIAS(&upage[8])));
    check_pf(P | W, ALIAS(&upage[8]), "SMAP, AC=0: SGDT to a user page is #PF");
    stac();
    fault.count = 0;
    upage[8] = 0;
    __asm__ volatile("sgdt (%0)" : : "r"(ALIAS(&upage[8])) : "memory");
    CHECK(fault.count == 0 && (upage[8] & 0xffff) == GDT_ENTRIES * 8 - 1,
          "STAC: SGDT to a user page stores the limit");
    clac();
}

/* An LDT in a user page: loading a segment reads it, an implicit supervisor access. */
static void smap_implicit(void)
{
    ldt_page[0] = 0x00cff3000000ffffull; /* flat data, DPL 3, accessed (no A write) */
    ldt_page[1] = 0x00cf93000000ffffull; /* flat data, DPL 0, accessed */
    gdt_set(13, ALIAS(ldt_page), 15, 0x82, 0);
    __asm__ volatile("lldt %w0" : : "r"((u16)(13 * 8)));
    clac();
    TRY_FAULT("movw %w0, %%fs", "r"((u16)0x0c));
    check_pf(P, ALIAS(&ldt_page[1]), "SMAP, AC=0: a descriptor from an LDT in a user page: #PF");
    stac();
    fault.vector = 0xffffffffu;
    TRY_FAULT("movw %w0, %%fs", "r"((u16)0x0c));
    if (on_qemu_tcg()) /* QEMU TCG lets AC=1 cover implicit accesses at CPL 0 */
        CHECK_EQ(fault.vector, 0xffffffffu, "SMAP, AC=1: the LDT read (QEMU TCG: allowed)");
    else
        check_pf(P, ALIAS(&ldt_page[1]), "SMAP, AC=1: the LDT read is implicit: #PF anyway");
    clac();
    __asm__ volatile("movw %w0, %%fs" : : "r"((u16)SEL_DATA));

    run_user(u_ldt, 0x07);
    CHECK_EQ(u_vec, 14, "CPL 3, AC=1: a descriptor from an LDT in a user page: #PF");
    CHECK_EQ(u_err, P, "  error code: a supervisor read");
    CHECK_EQ(u_cr2, ALIAS(&ldt_page[0]), "  CR2");
    __asm__ volatile("lldt %w0" : : "r"((u16)0));
}

static void cpl3_ud(void)
{
    run_user(u_clac, 0);
    CHECK(u_vec == 6 && u_eip == ALIAS(u_clac), "CLAC at CPL 3: #UD");
    run_user(u_stac, 0);
    CHECK(u_vec == 6 && u_eip == ALIAS(u_stac), "STAC at CPL 3: #UD");
}

static void smep(void)
{
    u32 fn = ALIAS(smep_fn), r = 0;
    write_cr4(read_cr4() & ~CR4_SMEP);
    __asm__ volatile("call *%1" : "=a"(r) : "r"(fn) : "memory", "cc");
    CHECK_EQ(r, 42, "SMEP clear: CPL 0 runs code from a user page");
    write_cr4(read_cr4() | CR4_SMEP);
    TRY_FAULT("jmp *%0", "r"(fn));
    check_pf(P | 0x10, fn, "SMEP: a CPL 0 jump to a user page is #PF with I/D");
    CHECK_EQ(fault.eip, fn, "  at the target");
    TRY_FAULT("jmp *%0", "r"(0x7fff0000u));
    check_pf(0x10, 0x7fff0000u, "SMEP: a jump to a page not present: I/D set");
    CHECK_EQ(*(volatile u32 *)ALIAS(&smep_fn), *(volatile u32 *)(void *)smep_fn,
             "SMEP (SMAP clear): data reads of a user page work");
    write_cr4(read_cr4() & ~CR4_SMEP);
    r = 0;
    __asm__ volatile("call *%1" : "=a"(r) : "r"(fn) : "memory", "cc");
    CHECK_EQ(r, 42, "SMEP clear again: the user page's code runs");
}

static void with_features(void)
{
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | P | W;
    for (u32 i = 0; i < 1024; i++)
        pt_user[i] = (i << 12) | P | W | U;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | P | W | U; /* the table entries decide */
    pd[UBASE >> 22] = (u32)pt_user | P | W | U;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80010000u) : "memory"); /* PG WP */
    tss_init((u32)kstack + sizeof kstack);
    clac();
    write_cr4(read_cr4() | CR4_SMAP | CR4_SMEP);
    CHECK_EQ(read_cr4() & (CR4_SMAP | CR4_SMEP), CR4_SMAP | CR4_SMEP, "CR4.SMAP and SMEP set");
    smap_data();
    smap_implicit();
    cpl3_ud();
    write_cr4(read_cr4() & ~CR4_SMAP);
    stac();
    clac();
    fault.count = 0;
    CHECK_EQ(*(volatile u32 *)ALIAS(&upage[0]), 0x5678, "SMAP clear: AC=0 reads a user page");
    CHECK_EQ(fault.count, 0, "  without a fault");
    smep();
}

static void without_features(void)
{
    /* QEMU 7.2's TCG never comes back from a MOV to CR4 that sets a reserved bit (any
       of them: PKE too), so only xbt is asked. */
    if (!on_qemu_tcg()) {
        TRY_FAULT("mov %0, %%cr4", "r"(read_cr4() | CR4_SMEP));
        CHECK(fault.vector == 13 && fault.err == 0, "no SMEP: CR4.SMEP reserved (#GP(0))");
        TRY_FAULT("mov %0, %%cr4", "r"(read_cr4() | CR4_SMAP));
        CHECK(fault.vector == 13 && fault.err == 0, "no SMAP: CR4.SMAP reserved (#GP(0))");
    }
    TRY_FAULT("clac", NOFAULT);
    CHECK_EQ(fault.vector, 6, "no SMAP: CLAC is #UD");
    TRY_FAULT("stac", NOFAULT);
    CHECK_EQ(fault.vector, 6, "no SMAP: STAC is #UD");
    CHECK_EQ(read_eflags() & AC, 0, "  AC unchanged");
}

void main(void)
{
    char expect[8] = "";
    cmdline_value("expect", expect, sizeof expect);
    int max = !memcmp(expect, "max", 4);
    CHECK(max || !memcmp(expect, "none", 5), "the command line says expect=max or none");
    u32 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    CHECK_EQ(b & ((1u << 7) | (1u << 20)), max ? (1u << 7) | (1u << 20) : 0,
             "CPUID.7.0:EBX SMEP and SMAP as expected");
    set_handler(6, trap);
    set_handler(14, trap);
    set_handler(0x30, int30);
    if (max)
        with_features();
    else
        without_features();
    guest_exit();
}
