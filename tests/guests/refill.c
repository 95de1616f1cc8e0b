/*
 * refill.c - a page fault's handler fixes the entry and returns to the faulting
 * instruction (xbt: the page goes into its window before the instruction runs again,
 * mmu.c's xbt_pf_refill, only where the access now succeeds without the walk setting an
 * accessed or dirty bit).  Each case below runs at CPL 0 and at CPL 3, each time with an
 * instruction of its own (one that faults twice would become a fault site: pfsite.c),
 * and checks what the guest can see: the value loaded or the frame the store reached,
 * the faults' count, error codes and CR2, the entry's accessed and dirty bits.
 *   present     not present; the handler maps it present and accessed (and dirty for a
 *               store): the access goes on
 *   no-dirty    a store; the handler maps it writable and accessed, not dirty: the store
 *               must set D
 *   no-accessed a load; the handler maps it present, A clear: the load must set A
 *   read-only   a store to a read-only page; the handler moves it to another frame,
 *               still read-only (a second #PF, the new frame untouched), then writable
 *   supervisor  (CPL 3) a load; the handler maps it supervisor-only first (a second #PF),
 *               then user
 *   cr3         a load; the handler loads another directory, in which the page is
 *               present on another frame: the load reads that frame
 *   skip        a load; the handler steps over the instruction: nothing is loaded, the
 *               page stays not present; the instruction then loads from another page,
 *               its first page present but not accessed: it stays unaccessed
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define U 4u
#define A 0x20u
#define D 0x40u
#define VA     0x40000000u /* pt_hi's (pt_hi2's in pd2) 4 MiB */
#define FRAME  0x00800000u /* page n: FRAME + n * 4096 */
#define FRAME2 0x00A00000u /* the other frames */
#define PRESET 0xDEADBEEFu /* EAX before a load that is skipped */

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pd2[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096))); /* identity 0..16 MiB, user too */
static u32 pt_hi[1024] __attribute__((aligned(4096)));
static u32 pt_hi2[1024] __attribute__((aligned(4096)));
static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));

/* Accessor n: ldN loads [addr] into EAX (EAX = preset before), stN stores value. */
#define ACCESSORS(n)                                                                        \
    u32 ld##n(u32 addr, u32 preset);                                                        \
    void st##n(u32 addr, u32 value);                                                        \
    extern u8 ld##n##_at[], st##n##_at[];                                                   \
    __asm__(".text\n.globl ld" #n "\nld" #n ":\n\tmovl 4(%esp), %ecx\n\tmovl 8(%esp), %eax\n" \
            ".globl ld" #n "_at\nld" #n "_at:\n\tmovl (%ecx), %eax\n\tret\n"               \
            ".globl st" #n "\nst" #n ":\n\tmovl 4(%esp), %ecx\n\tmovl 8(%esp), %edx\n"     \
            ".globl st" #n "_at\nst" #n "_at:\n\tmovl %edx, (%ecx)\n\tret\n");
ACCESSORS(0) ACCESSORS(1) ACCESSORS(2) ACCESSORS(3) ACCESSORS(4) ACCESSORS(5) ACCESSORS(6)
ACCESSORS(7) ACCESSORS(8) ACCESSORS(9) ACCESSORS(10) ACCESSORS(11) ACCESSORS(12)
ACCESSORS(13) ACCESSORS(14) ACCESSORS(15)
static u32 (*const lds[16])(u32, u32) = { ld0, ld1, ld2, ld3, ld4, ld5, ld6, ld7,
                                          ld8, ld9, ld10, ld11, ld12, ld13, ld14, ld15 };
static void (*const sts[16])(u32, u32) = { st0, st1, st2, st3, st4, st5, st6, st7,
                                           st8, st9, st10, st11, st12, st13, st14, st15 };
static u8 *const ld_ats[16] = { ld0_at, ld1_at, ld2_at, ld3_at, ld4_at, ld5_at, ld6_at,
                                ld7_at, ld8_at, ld9_at, ld10_at, ld11_at, ld12_at,
                                ld13_at, ld14_at, ld15_at };
static u8 *const st_ats[16] = { st0_at, st1_at, st2_at, st3_at, st4_at, st5_at, st6_at,
                                st7_at, st8_at, st9_at, st10_at, st11_at, st12_at,
                                st13_at, st14_at, st15_at };

enum { C_PRESENT_LD, C_PRESENT_ST, C_NO_DIRTY, C_NO_ACCESSED, C_READ_ONLY, C_SUPERVISOR,
       C_CR3, C_SKIP, C_COUNT };
static const char *const names[C_COUNT] = { "present (load)", "present (store)", "no-dirty",
                                            "no-accessed", "read-only", "supervisor", "cr3",
                                            "skip" };

/* The case being run (read by the handler and by the user-mode side). */
static volatile u32 c_case, c_page, c_fn, c_store, c_value, c_result;
static volatile u32 pf_count, pf_err[4], pf_cr2[4], pf_eip[4];

static u32 page_va(u32 n) { return VA + (n << 12); }

static void pf_handler(struct frame *f)
{
    u32 cr2 = read_cr2(), k = pf_count++;
    if (k < 4) {
        pf_err[k] = f->err;
        pf_cr2[k] = cr2;
        pf_eip[k] = f->eip;
    }
    if (cr2 != page_va(c_page) || k >= 2) {
        printf("FAIL unexpected #PF at eip %x cr2 %x err %x (case %s, fault %u)\n", f->eip, cr2,
               f->err, names[c_case], k + 1);
        guest_exit();
    }
    u32 n = c_page, fr = FRAME + (n << 12), fr2 = FRAME2 + (n << 12);
    switch (c_case) {
    case C_PRESENT_LD:
        pt_hi[n] = fr | P | U | A; /* not present before: nothing cached, no INVLPG */
        break;
    case C_PRESENT_ST:
        pt_hi[n] = fr | P | W | U | A | D;
        break;
    case C_NO_DIRTY:
        pt_hi[n] = fr | P | W | U | A;
        break;
    case C_NO_ACCESSED:
        pt_hi[n] = fr | P | U;
        break;
    case C_READ_ONLY:
        pt_hi[n] = k == 0 ? (fr2 | P | U | A) : (fr2 | P | W | U | A | D);
        invlpg(cr2);
        break;
    case C_SUPERVISOR:
        pt_hi[n] = k == 0 ? (fr | P | A) : (fr | P | U | A);
        invlpg(cr2);
        break;
    case C_CR3:
        write_cr3((u32)pd2); /* the page is present there, on its other frame */
        break;
    case C_SKIP:
        f->eip += 2; /* movl (%ecx), %eax */
        break;
    }
}

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0)
        user_return(f);
}

static void access(void)
{
    u32 va = page_va(c_page);
    if (c_store)
        sts[c_fn](va, c_value);
    else
        c_result = lds[c_fn](va, PRESET);
}

static void user_side(void)
{
    access();
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
    for (;;)
        ;
}

/* what = "<case> at <level>: <check>" */
static void label(char *what, const char *name, const char *lvl, const char *check_name)
{
    const char *parts[4] = { name, " at ", lvl, ": " };
    u32 k = 0;
    for (int i = 0; i < 4; i++)
        for (const char *q = parts[i]; *q; q++)
            what[k++] = *q;
    for (const char *q = check_name; *q && k < 111; q++)
        what[k++] = *q;
    what[k] = 0;
}

static u32 frame_word(u32 frame) { return *(volatile u32 *)frame; }

/* One case at one privilege level: its page n, its accessor n. */
static void run_case(u32 c, int user)
{
    u32 n = c * 2 + (u32)user, fr = FRAME + (n << 12), fr2 = FRAME2 + (n << 12);
    char what[112];
    const char *lvl = user ? "CPL 3" : "CPL 0";
    u32 u = user ? 4u : 0u;
    *(volatile u32 *)fr = 0x1000 + n;
    *(volatile u32 *)fr2 = 0x2000 + n;
    pt_hi[n] = c == C_READ_ONLY ? (fr | P | U | A) : 0;
    pt_hi2[n] = fr2 | P | W | U | A | D;
    invlpg(page_va(n));
    c_case = c, c_page = n, c_fn = n, c_result = 0;
    c_store = c == C_PRESENT_ST || c == C_NO_DIRTY || c == C_READ_ONLY;
    c_value = 0x5A000000u + n;
    pf_count = 0;
    if (user)
        user_run(user_side, (u32)(ustack + sizeof ustack));
    else
        access();
    write_cr3((u32)pd); /* (the cr3 case's handler left pd2) */
    u32 want_faults = (c == C_READ_ONLY || c == C_SUPERVISOR) ? 2 : 1;
    printf("%s at %s: %u fault(s), err %x %x, result %x\n", names[c], lvl, pf_count, pf_err[0],
           pf_err[1], c_store ? frame_word(c == C_READ_ONLY ? fr2 : fr) : c_result);
    label(what, names[c], lvl, "fault count");
    check_eq(pf_count, want_faults, what);
    label(what, names[c], lvl, "CR2 and EIP");
    u32 at = c_store ? (u32)st_ats[n] : (u32)ld_ats[n];
    check(pf_cr2[0] == page_va(n) && pf_eip[0] == at, what);
    u32 err0 = (c_store ? 2u : 0u) | u | (c == C_READ_ONLY ? 1u : 0u);
    label(what, names[c], lvl, "first error code");
    check_eq(pf_err[0], err0, what);
    if (want_faults == 2) {
        label(what, names[c], lvl, "second error code");
        check_eq(pf_err[1], err0 | 1u, what); /* present now: a protection fault */
        label(what, names[c], lvl, "second CR2 and EIP (the same instruction again)");
        check(pf_cr2[1] == page_va(n) && pf_eip[1] == at, what);
    }
    label(what, names[c], lvl, "what the access reached");
    switch (c) {
    case C_PRESENT_LD:
    case C_NO_ACCESSED:
    case C_SUPERVISOR:
        check_eq(c_result, 0x1000 + n, what);
        break;
    case C_PRESENT_ST:
    case C_NO_DIRTY:
        check_eq(frame_word(fr), c_value, what);
        break;
    case C_READ_ONLY:
        check(frame_word(fr2) == c_value && frame_word(fr) == 0x1000 + n, what);
        break;
    case C_CR3:
        check_eq(c_result, 0x2000 + n, what);
        break;
    case C_SKIP:
        check(c_result == PRESET && pt_hi[n] == 0, what);
        break;
    }
    if (c == C_SKIP) {
        /* The skipped instruction runs again, on another page, with its first page
           present now but never accessed: that page must stay so (a stale match of
           xbt's record of the fault may map it only as a TLB could: accessed). */
        u32 other = 31, fo = FRAME + (other << 12);
        *(volatile u32 *)fo = 0x3000 + n;
        pt_hi[other] = fo | P | U | A;
        pt_hi[n] = fr | P | U;
        invlpg(page_va(other));
        c_page = other;
        c_result = 0;
        pf_count = 0;
        if (user)
            user_run(user_side, (u32)(ustack + sizeof ustack));
        else
            access();
        label(what, names[c], lvl, "the same instruction on another page");
        check(c_result == 0x3000 + n && pf_count == 0, what);
        label(what, names[c], lvl, "its first page left unaccessed");
        check_eq(pt_hi[n] & (A | D), 0, what);
        pt_hi[n] = 0;
        pt_hi[other] = 0;
        invlpg(page_va(n));
        invlpg(page_va(other));
    }
    label(what, names[c], lvl, "accessed and dirty bits");
    u32 e = c == C_CR3 ? pt_hi2[n] : pt_hi[n], ad = e & (A | D);
    if (c == C_SKIP)
        check_eq(e, 0, what);
    else if (c_store || c == C_CR3)
        check_eq(ad, A | D, what);
    else
        check_eq(ad, A, what); /* a load sets A (no-accessed) and never D */
}

void main(void)
{
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | P | W | U;
    for (u32 i = 0; i < 4; i++)
        pd[i] = pd2[i] = (u32)pt[i] | P | W | U;
    pd[VA >> 22] = (u32)pt_hi | P | W | U;
    pd2[VA >> 22] = (u32)pt_hi2 | P | W | U;
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(14, pf_handler);
    write_cr3((u32)pd);
    u32 cr0 = read_cr0();
    write_cr0(cr0 | 0x80010000u); /* PG, WP: CPL 0 stores honour read-only pages */
    for (u32 c = 0; c < C_COUNT; c++)
        for (int user = 0; user < 2; user++)
            if (c != C_SUPERVISOR || user)
                run_case(c, user);
    write_cr0(cr0);
}
