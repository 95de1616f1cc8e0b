/*
 * tasks.c - hardware task switches (issue 18), compared with QEMU TCG: JMP and CALL to a
 * TSS, CALL through a task gate, INT n and exceptions (#GP with its error code, #DF)
 * through task gates in the IDT, IRET with NT back through the link; the outgoing
 * task's state saved in its TSS, the busy bits, NT and the link, CR0.TS, CR3 from the
 * new TSS with paging on, LDTR, a 16-bit TSS; the #GP/#NP/#TS cases of busy, absent and
 * short TSSs and of a bad link; a #TS raised in the new task's context (its SS) handled
 * by a task of its own that repairs the TSS and resumes it; the T bit.
 *
 * QEMU TCG ignores the TSS's T bit (no #DB after the switch); the SDM raises #DB before
 * the new task's first instruction: that check expects each peer's answer.
 */
#include "lib/guest.h"

struct tss16 {
    u16 link, sp0, ss0, sp1, ss1, sp2, ss2, ip, flags, ax, cx, dx, bx, sp, bp, si, di;
    u16 es, cs, ss, ds, ldt;
} __attribute__((packed));

#define SEL_TSSA   (13 << 3) /* the main task */
#define SEL_TSSB   (14 << 3) /* the task the tests switch to */
#define SEL_TSSC   (15 << 3) /* the #TS task */
#define SEL_GATEB  (17 << 3) /* task gate to B */
#define SEL_GATEA  (18 << 3) /* task gate to A (busy while A runs) */
#define SEL_TSSE   (19 << 3) /* a 16-bit TSS */
#define SEL_TSSSM  (20 << 3) /* a 32-bit TSS with a limit below 0x67 */
#define SEL_TSSNP  (21 << 3) /* a TSS not present */
#define SEL_LDTB   (22 << 3) /* task B's LDT */
#define SEL_CODEB  (23 << 3) /* code based so that task E's 16-bit IP reaches it */
#define SEL_GATENP (24 << 3) /* task gate not present */
#define IDX(sel) ((sel) >> 3)

static struct tss32 tss_a, tss_b, tss_c, tss_small;
static struct tss16 tss_e;
static u8 bstack[4096] __attribute__((aligned(16)));
static u8 cstack[4096] __attribute__((aligned(16)));
static u64 ldt_b[2] __attribute__((aligned(8)));
static volatile u32 ldt_target[4] = { 0x1d71d7, 0, 0, 0 };
#define TOP(s) ((u32)(s) + sizeof(s))

static void set_tss_desc(int idx, const void *tss, u32 limit, u8 type, u8 dpl, int present)
{
    gdt_set(idx, (u32)tss, limit, (u8)((present ? 0x80 : 0) | (dpl << 5) | type), 0);
}

static void set_task_gate(u64 *slot, u16 tss_sel, u8 dpl, int present)
{
    *slot = ((u64)tss_sel << 16) | ((u64)((present ? 0x80 : 0) | (dpl << 5) | 0x5) << 40);
}

static u32 desc_type(u32 sel) { return (u32)(gdt[IDX(sel)] >> 40) & 0xf; }

/* ---- task A's side: a switch with known registers ------------------------------------------ */
enum { A_LJMP_B, A_LCALL_B, A_LCALL_GATE, A_INT40, A_GP, A_DF, A_LJMP_E, A_LCALL_B2 };
volatile u32 a_kind, a_target, a_esp, a_flags, a_regs[8], a_insn;
extern const u32 a_table[], a_next[];
u32 a_switch(u32 kind);
#define A_REGS "\tmovl $0xa0a0a001, %eax\n\tmovl $0xa0a0a002, %ecx\n\tmovl $0xa0a0a003, %edx\n" \
               "\tmovl $0xa0a0a004, %ebx\n\tmovl $0xa0a0a006, %ebp\n\tmovl $0xa0a0a007, %esi\n" \
               "\tmovl $0xa0a0a008, %edi\n"
__asm__(".text\n.globl a_switch\na_switch:\n"
        "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
        "\tmovl 20(%esp), %eax\n\tmovl a_table(,%eax,4), %eax\n\tmovl %eax, a_target\n"
        "\tmovl %esp, a_esp\n"
        "\tpushfl\n\tpopl a_flags\n"
        A_REGS
        "\tjmp *a_target\n"
        "a_k0:\tljmp $0x70, $0\n"        /* SEL_TSSB */
        "a_n0:\tjmp a_after\n"
        "a_k1:\tlcall $0x70, $0\n"
        "a_n1:\tjmp a_after\n"
        "a_k2:\tlcall $0x88, $0x1234\n"  /* SEL_GATEB: the offset is ignored */
        "a_n2:\tjmp a_after\n"
        "a_k3:\tint $0x40\n"
        "a_n3:\tjmp a_after\n"
        "a_k4:\tljmp $0x10, $0\n"        /* #GP(0x10) through the task gate */
        "a_n4:\tjmp a_after\n"
        "a_k5:\tint $0x41\n"             /* #NP, #NP again: #DF through the task gate */
        "a_n5:\tjmp a_after\n"
        "a_k6:\tljmp $0x98, $0\n"        /* SEL_TSSE, 16-bit */
        "a_n6:\tjmp a_after\n"
        "a_k7:\tlcall $0x70, $0\n"
        "a_n7:\tjmp a_after\n"
        "a_after:\n"
        "\tmovl %eax, a_regs\n\tmovl %ecx, a_regs+4\n\tmovl %edx, a_regs+8\n"
        "\tmovl %ebx, a_regs+12\n\tmovl %esp, a_regs+16\n\tmovl %ebp, a_regs+20\n"
        "\tmovl %esi, a_regs+24\n\tmovl %edi, a_regs+28\n"
        "\tmovl a_esp, %esp\n"
        "\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n\tret\n"
        ".data\n.globl a_table\na_table:\n\t.long a_k0, a_k1, a_k2, a_k3, a_k4, a_k5, a_k6, a_k7\n"
        ".globl a_next\na_next:\n\t.long a_n0, a_n1, a_n2, a_n3, a_n4, a_n5, a_n6, a_n7\n"
        ".text\n");

static const u32 a_known[8] = { 0xa0a0a001, 0xa0a0a002, 0xa0a0a003, 0xa0a0a004, 0,
                                0xa0a0a006, 0xa0a0a007, 0xa0a0a008 };

/* A's registers back as they were at the switch (from its TSS). */
static void check_a_back(const char *what)
{
    u32 same = 1;
    for (int i = 0; i < 8; i++)
        if (i != 4)
            same &= a_regs[i] == a_known[i];
    printf("-- back in task A after %s\n", what);
    CHECK(same, "  A's registers restored from its TSS");
    CHECK_EQ(a_regs[4], a_esp, "  A's ESP restored");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    CHECK(cr0 & 8, "  CR0.TS set by the task switch");
    __asm__ volatile("clts");
    u32 tr = 0;
    __asm__ volatile("str %w0" : "+r"(tr));
    CHECK_EQ(tr & 0xffff, SEL_TSSA, "  TR is A's");
    CHECK_EQ(desc_type(SEL_TSSA), 0xb, "  A busy");
}

/* A's TSS got A's state: EIP `eip`, the registers, ESP, EFLAGS, the selectors. */
static void check_a_saved(u32 eip)
{
    CHECK_EQ(tss_a.eip, eip, "  A's TSS: EIP");
    CHECK(tss_a.eax == a_known[0] && tss_a.ecx == a_known[1] && tss_a.edx == a_known[2] &&
              tss_a.ebx == a_known[3] && tss_a.ebp == a_known[5] && tss_a.esi == a_known[6] &&
              tss_a.edi == a_known[7], "  A's TSS: general registers");
    CHECK_EQ(tss_a.esp, a_esp, "  A's TSS: ESP");
    CHECK_EQ(tss_a.eflags & ~0x10000u, a_flags, "  A's TSS: EFLAGS");
    CHECK(tss_a.cs == SEL_CODE && tss_a.ss == SEL_DATA && tss_a.ds == SEL_DATA &&
              tss_a.es == SEL_DATA, "  A's TSS: selectors");
}

/* ---- task B's side ----------------------------------------------------------------------- */
volatile u32 b_regs[8], b_top, b_eflags, b_tr, b_ran, b_link, b_type_a, b_type_b, b_ds0;
volatile u32 b_ldtr, b_paged, b_a_eip, b_ds;
static volatile u32 b_exit_iret, b_fix_a; /* how B ends; patch A's EIP by this much */
void task_b_entry(void);
void task_b_c(void);
/* B's entry: its registers as the TSS loaded them (DS may be the LDT's: every store
   here goes through SS), DS's byte 0 when DS is the LDT's selector 4, then C. */
__asm__(".text\n.globl task_b_entry\ntask_b_entry:\n"
        "\tmovl %eax, %ss:b_regs\n\tmovl %ecx, %ss:b_regs+4\n\tmovl %edx, %ss:b_regs+8\n"
        "\tmovl %ebx, %ss:b_regs+12\n\tmovl %esp, %ss:b_regs+16\n\tmovl %ebp, %ss:b_regs+20\n"
        "\tmovl %esi, %ss:b_regs+24\n\tmovl %edi, %ss:b_regs+28\n"
        "\tmovl (%esp), %eax\n\tmovl %eax, %ss:b_top\n"
        "\tpushfl\n\tpopl %ss:b_eflags\n"
        "\tmovl %ds, %eax\n\tmovl %eax, %ss:b_ds\n\tcmpw $4, %ax\n\tjne 1f\n"
        "\tmovl %ds:0, %eax\n\tmovl %eax, %ss:b_ds0\n"
        "1:\tmovl $0x10, %eax\n\tmovl %eax, %ds\n\tmovl %eax, %es\n"
        "\tcall task_b_c\n\tud2\n");

static volatile u32 *paged_probe;
extern const u8 b_after_iret[], b_after_ljmp[];
__attribute__((noinline)) void task_b_c(void)
{
    b_ran++;
    u32 tr = 0, ldtr = 0;
    __asm__ volatile("str %w0" : "+r"(tr));
    __asm__ volatile("sldt %w0" : "+r"(ldtr));
    b_tr = tr & 0xffff;
    b_ldtr = ldtr & 0xffff;
    b_link = tss_b.link;
    b_type_a = desc_type(SEL_TSSA);
    b_type_b = desc_type(SEL_TSSB);
    b_a_eip = tss_a.eip;
    if (paged_probe)
        b_paged = *paged_probe;
    tss_a.eip += b_fix_a;
    if (b_exit_iret)
        __asm__ volatile("iret\n.globl b_after_iret\nb_after_iret:" ::: "memory");
    else /* to SEL_TSSA */
        __asm__ volatile("ljmp $0x68, $0\n.globl b_after_ljmp\nb_after_ljmp:" ::: "memory");
    for (;;)
        ;
}

static void reset_b(void)
{
    memset(&tss_b, 0, sizeof tss_b);
    tss_b.link = 0x5555;
    tss_b.eip = (u32)task_b_entry;
    tss_b.esp = TOP(bstack);
    tss_b.eflags = 0x2;
    tss_b.eax = 0xb0b0b001, tss_b.ecx = 0xb0b0b002, tss_b.edx = 0xb0b0b003;
    tss_b.ebx = 0xb0b0b004, tss_b.ebp = 0xb0b0b006, tss_b.esi = 0xb0b0b007;
    tss_b.edi = 0xb0b0b008;
    tss_b.cs = SEL_CODE;
    tss_b.ss = tss_b.ds = tss_b.es = tss_b.fs = tss_b.gs = SEL_DATA;
    tss_b.iomap = sizeof tss_b;
    set_tss_desc(IDX(SEL_TSSB), &tss_b, sizeof tss_b - 1, 0x9, 0, 1);
    b_exit_iret = 0, b_fix_a = 0, b_ran = 0, b_ds0 = 0, b_paged = 0;
    for (int i = 0; i < 8; i++)
        b_regs[i] = 0;
}

static void check_b_entry(const char *what)
{
    printf("-- task B entered by %s\n", what);
    CHECK_EQ(b_ran, 1, "  B ran once");
    CHECK(b_regs[0] == 0xb0b0b001 && b_regs[1] == 0xb0b0b002 && b_regs[2] == 0xb0b0b003 &&
              b_regs[3] == 0xb0b0b004 && b_regs[5] == 0xb0b0b006 && b_regs[6] == 0xb0b0b007 &&
              b_regs[7] == 0xb0b0b008, "  B's registers from its TSS");
    CHECK_EQ(b_tr, SEL_TSSB, "  TR is B's");
}

static void test_jmp(void)
{
    reset_b();
    a_switch(A_LJMP_B);
    check_b_entry("JMP");
    CHECK_EQ(b_regs[4], TOP(bstack), "  B's ESP from its TSS");
    CHECK_EQ(b_eflags & 0x4000, 0, "  NT clear (JMP)");
    CHECK_EQ(b_link, 0x5555, "  B's link not written (JMP)");
    CHECK_EQ(b_type_a, 0x9, "  A no longer busy (JMP)");
    CHECK_EQ(b_type_b, 0xb, "  B busy");
    CHECK_EQ(b_a_eip, a_next[A_LJMP_B], "  A's TSS: EIP after the JMP");
    check_a_saved(a_next[A_LJMP_B]);
    check_a_back("B's JMP to A");
    CHECK_EQ(desc_type(SEL_TSSB), 0x9, "  B no longer busy (JMP)");
    CHECK_EQ(tss_b.eip, (u32)b_after_ljmp, "  B's TSS: EIP after its JMP");
}

/* CALL (to the TSS or through a task gate) or INT n through a task gate; B returns with
   IRET through its link. */
static void test_nested(u32 kind, const char *what)
{
    reset_b();
    b_exit_iret = 1;
    a_switch(kind);
    check_b_entry(what);
    CHECK(b_eflags & 0x4000, "  NT set in B (nested)");
    CHECK_EQ(b_link, SEL_TSSA, "  B's link is A");
    CHECK_EQ(b_type_a, 0xb, "  A still busy (nested)");
    CHECK_EQ(b_type_b, 0xb, "  B busy");
    CHECK_EQ(b_a_eip, a_next[kind], "  A's TSS: EIP after the instruction");
    check_a_saved(a_next[kind]);
    check_a_back("B's IRET");
    CHECK_EQ(desc_type(SEL_TSSB), 0x9, "  B not busy after its IRET");
    CHECK_EQ(tss_b.eip, (u32)b_after_iret, "  B's TSS: EIP after its IRET");
    CHECK_EQ(tss_b.eflags & 0x4000, 0, "  B's TSS: NT clear in the state IRET saved");
}

/* Exceptions through a task gate: #GP pushes its error code on B's stack; a #DF (two
   #NPs: INT n through a gate not present, then #NP's own gate not present) pushes 0.
   B moves A past the instruction and returns. */
static void test_exception_gates(void)
{
    u64 saved13 = idt[13], saved11 = idt[11], saved8 = idt[8];
    set_task_gate(&idt[13], SEL_TSSB, 0, 1);
    reset_b();
    b_exit_iret = 1;
    b_fix_a = 7; /* ljmp ptr16:32 */
    a_switch(A_GP);
    idt[13] = saved13;
    check_b_entry("#GP through a task gate");
    CHECK_EQ(b_top, SEL_DATA, "  #GP's error code on B's stack");
    CHECK_EQ(b_regs[4], TOP(bstack) - 4, "  one dword pushed");
    CHECK_EQ(b_link, SEL_TSSA, "  B's link is A");
    CHECK_EQ(b_a_eip, a_table[A_GP], "  A's TSS: EIP of the faulting instruction");
    check_a_back("#GP's task");

    idt_set(0x41, isr_table[0x21], SEL_CODE, 0xe, 0);
    idt[0x41] &= ~(1ull << 47);
    idt[11] &= ~(1ull << 47);
    set_task_gate(&idt[8], SEL_TSSB, 0, 1);
    reset_b();
    b_exit_iret = 1;
    b_fix_a = 2; /* int n */
    a_switch(A_DF);
    idt[11] = saved11, idt[8] = saved8, idt[0x41] = 0;
    check_b_entry("#DF through a task gate");
    CHECK_EQ(b_top, 0, "  #DF's error code 0 on B's stack");
    CHECK_EQ(b_regs[4], TOP(bstack) - 4, "  one dword pushed");
    CHECK_EQ(b_a_eip, a_table[A_DF], "  A's TSS: EIP of the instruction");
    check_a_back("#DF's task");
}

/* Busy, absent and short TSSs, a bad link: nothing changes, the fault names the TSS. */
static void fault_check(u32 vec, u32 err, const char *name)
{
    char b1[80], b2[80];
    u32 n = 0;
    for (const char *p = name; *p && n < 60; p++)
        b1[n] = b2[n] = *p, n++;
    memcpy(b1 + n, ": vector", 9);
    memcpy(b2 + n, ": error", 8);
    CHECK_EQ(fault.vector, vec, b1);
    CHECK_EQ(fault.err, err, b2);
}

static volatile u32 nt_eip;
static void iret_nt_probe(void)
{
    fault.vector = 0xff;
    __asm__ volatile("movl $1f, fault+16\n\tmovl $2f, fault+20\n\tmovl $1f, nt_eip\n"
                     "\tpushfl\n\torl $0x4000, (%%esp)\n\tpopfl\n"
                     "1:\tiret\n"
                     "2:\tpushfl\n\tandl $0xffffbfff, (%%esp)\n\tpopfl\n" ::: "memory", "cc");
}

static void test_bad_tasks(void)
{
    TRY_FAULT("ljmp $0x68, $0", NOFAULT);
    fault_check(13, SEL_TSSA, "ljmp to the busy current TSS: #GP");
    TRY_FAULT("lcall $0x68, $0", NOFAULT);
    fault_check(13, SEL_TSSA, "lcall to a busy TSS: #GP");
    TRY_FAULT("lcall $0x90, $0", NOFAULT);
    fault_check(13, SEL_TSSA, "lcall through a task gate to a busy TSS: #GP(TSS)");
    TRY_FAULT("ljmp $0xa8, $0", NOFAULT);
    fault_check(11, SEL_TSSNP, "ljmp to a TSS not present: #NP");
    TRY_FAULT("ljmp $0xa0, $0", NOFAULT);
    fault_check(10, SEL_TSSSM, "ljmp to a TSS with a limit below 0x67: #TS");
    reset_b();
    TRY_FAULT("ljmp $0x73, $0", NOFAULT);
    fault_check(13, SEL_TSSB, "ljmp to a DPL 0 TSS with RPL 3: #GP");
    TRY_FAULT("lcall $0xc0, $0", NOFAULT);
    fault_check(11, SEL_GATENP, "lcall through a task gate not present: #NP(gate)");
    u64 saved = idt[0x40];
    set_task_gate(&idt[0x40], SEL_TSSA, 0, 1);
    TRY_FAULT("int $0x40", NOFAULT);
    fault_check(13, SEL_TSSA, "int n through a task gate to a busy TSS: #GP(TSS)");
    idt[0x40] = saved;
    tss_a.link = SEL_TSSB;
    iret_nt_probe();
    fault_check(10, SEL_TSSB, "iret with NT, link to an available TSS: #TS(link)");
    CHECK_EQ(fault.eip, nt_eip, "  at the iret");
    tss_a.link = SEL_DATA;
    iret_nt_probe();
    fault_check(10, SEL_DATA, "iret with NT, link to a data segment: #TS(link)");
    tss_a.link = SEL_LDT_DATA;
    iret_nt_probe();
    fault_check(10, SEL_LDT_DATA & ~3, "iret with NT, link in the LDT: #TS(link)");
    tss_a.link = 0;
    u32 tr = 0;
    __asm__ volatile("str %w0" : "+r"(tr));
    CHECK_EQ(tr & 0xffff, SEL_TSSA, "after the faults: still task A");
    CHECK(desc_type(SEL_TSSA) == 0xb && desc_type(SEL_TSSB) == 0x9, "  busy bits unchanged");
}

/* #TS in the new task's context: B's SS is a code segment.  The #TS goes through a task
   gate to C, which repairs B's TSS and returns to B; B returns to A. */
volatile u32 c_err, c_link, c_b_eip, c_b_ss, c_ran;
void task_c_entry(void);
__asm__(".text\n.globl task_c_entry\ntask_c_entry:\n"
        "\tincl c_ran\n\tpopl c_err\n"
        "\tmovzwl tss_c, %eax\n\tmovl %eax, c_link\n"
        "\tmovl tss_b+0x20, %eax\n\tmovl %eax, c_b_eip\n"
        "\tmovzwl tss_b+0x50, %eax\n\tmovl %eax, c_b_ss\n"
        "\tmovw $0x10, tss_b+0x50\n"
        "\tmovl $task_b_entry, tss_b+0x20\n" /* see test_fault_in_new_task */
        "\tiret\n\tud2\n");

static void reset_task(struct tss32 *t, u32 eip, u32 esp)
{
    memset(t, 0, sizeof *t);
    t->eip = eip, t->esp = esp, t->eflags = 0x2;
    t->cs = SEL_CODE;
    t->ss = t->ds = t->es = t->fs = t->gs = SEL_DATA;
    t->iomap = sizeof *t;
}

static void test_fault_in_new_task(void)
{
    u64 saved10 = idt[10];
    reset_task(&tss_c, (u32)task_c_entry, TOP(cstack));
    set_tss_desc(IDX(SEL_TSSC), &tss_c, sizeof tss_c - 1, 0x9, 0, 1);
    set_task_gate(&idt[10], SEL_TSSC, 0, 1);
    reset_b();
    tss_b.ss = SEL_CODE;
    b_exit_iret = 1;
    c_ran = 0;
    a_switch(A_LCALL_B2);
    idt[10] = saved10;
    printf("-- #TS loading task B's SS, handled by task C\n");
    CHECK_EQ(c_ran, 1, "  C ran");
    CHECK_EQ(c_err, SEL_CODE, "  #TS(B's SS)");
    CHECK_EQ(c_link, SEL_TSSB, "  C's link is B: the fault was B's");
    /* The fault is B's, before its first instruction: B's TSS holds that EIP.  QEMU TCG
       raises it with the EIP of the CALL in A (it restores the instruction's state), so C
       sets B's EIP itself before resuming it. */
    CHECK_EQ(c_b_eip, on_qemu_tcg() ? a_table[A_LCALL_B2] : (u32)task_b_entry,
             "  B's TSS: B's first instruction (QEMU: the CALL's EIP)");
    CHECK_EQ(c_b_ss, SEL_CODE, "  B's TSS: the SS selector that failed");
    check_b_entry("C's IRET after the repair");
    CHECK_EQ(b_link, SEL_TSSA, "  B's link still A");
    check_a_back("B's IRET");
    CHECK_EQ(desc_type(SEL_TSSC), 0x9, "  C not busy");
}

/* The T bit: #DB before the new task's first instruction (QEMU ignores it). */
static volatile u32 db_count, db_eip, db_dr6;
static void db_handler(struct frame *f)
{
    db_count++;
    db_eip = f->eip;
    __asm__ volatile("mov %%dr6, %0" : "=r"(db_dr6));
}

static void test_trap_bit(u32 kind, const char *what)
{
    reset_b();
    tss_b.trap = 1;
    b_exit_iret = kind != A_LJMP_B;
    db_count = 0;
    set_handler(1, db_handler);
    a_switch(kind);
    set_handler(1, 0);
    __asm__ volatile("mov %0, %%dr6" : : "r"(0));
    check_b_entry(what);
    if (on_qemu_tcg()) {
        CHECK_EQ(db_count, 0, "  QEMU TCG: no #DB for the T bit");
    } else {
        CHECK_EQ(db_count, 1, "  #DB after the switch");
        CHECK_EQ(db_eip, (u32)task_b_entry, "  before B's first instruction");
        CHECK(db_dr6 & 0x8000, "  DR6.BT");
    }
    check_a_back("B's return");
}

/* EFLAGS.RF from the new TSS: an instruction breakpoint on B's first instruction is not
   taken when B's TSS has RF, and is (once: the handler sets RF) when it has not. */
static void db_rf_handler(struct frame *f)
{
    db_handler(f);
    f->eflags |= 0x10000u;
}

static void test_rf_from_tss(u32 eflags, u32 want, const char *what)
{
    reset_b();
    tss_b.eflags = eflags;
    db_count = 0;
    set_handler(1, db_rf_handler);
    /* G0: a task switch clears the local enables */
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr7" : : "r"((u32)task_b_entry), "r"(2u)
                     : "memory");
    a_switch(A_LJMP_B);
    __asm__ volatile("mov %0, %%dr7\n\tmov %0, %%dr6" : : "r"(0u) : "memory");
    set_handler(1, 0);
    check_b_entry(what);
    CHECK_EQ(db_count, want, "  code breakpoints at B's first instruction");
    if (want)
        CHECK_EQ(db_eip, (u32)task_b_entry, "  the #DB at B's first instruction");
    check_a_back("B's JMP to A");
}

/* CR3 from the new TSS with paging on: page Q maps to R in B's address space. */
static u32 pd1[1024] __attribute__((aligned(4096))), pd2[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096))), pt2[1024] __attribute__((aligned(4096)));
static volatile u32 page_q[1024] __attribute__((aligned(4096)));
static volatile u32 page_r[1024] __attribute__((aligned(4096)));

static void test_cr3(void)
{
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | 3;
    for (u32 i = 0; i < 4; i++)
        pd1[i] = pd2[i] = (u32)pt[i] | 3;
    u32 q = (u32)page_q >> 12;
    memcpy(pt2, pt[q / 1024], sizeof pt2);
    pt2[q % 1024] = (u32)page_r | 3;
    pd2[q / 1024] = (u32)pt2 | 3;
    page_q[0] = 0x1111, page_r[0] = 0x2222;
    reset_b();
    b_exit_iret = 1;
    tss_a.cr3 = (u32)pd1;
    tss_b.cr3 = (u32)pd2;
    paged_probe = page_q;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd1) : "memory");
    u32 cr0, cr3;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");
    a_switch(A_LCALL_B);
    u32 mine = page_q[0];
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 & ~0x80000000u) : "memory");
    paged_probe = 0;
    check_b_entry("CALL with paging on");
    CHECK_EQ(b_paged, 0x2222, "  B ran in its own address space (CR3 from its TSS)");
    CHECK_EQ(mine, 0x1111, "  A's address space back");
    CHECK_EQ(cr3, (u32)pd1, "  CR3 is A's again");
    check_a_back("B's IRET (paging on)");
}

/* LDTR from the new TSS: B's DS is LDT selector 4. */
static void test_ldt(void)
{
    ldt_b[0] = (((u32)ldt_target & 0xffffffull) << 16) | 0xfff | (0x92ull << 40) |
               ((u64)((u32)ldt_target >> 24) << 56);
    gdt_set(IDX(SEL_LDTB), (u32)ldt_b, sizeof ldt_b - 1, 0x82, 0);
    reset_b();
    b_exit_iret = 1;
    tss_b.ldt = SEL_LDTB;
    tss_b.ds = 0x04;
    a_switch(A_LCALL_B);
    check_b_entry("CALL to a task with an LDT");
    CHECK_EQ(b_ldtr, SEL_LDTB, "  LDTR from B's TSS");
    CHECK_EQ(b_ds & 0xffff, 0x04, "  DS from B's LDT");
    CHECK_EQ(b_ds0, 0x1d71d7, "  through the LDT's descriptor");
    u32 ldtr = 0;
    __asm__ volatile("sldt %w0" : "+r"(ldtr));
    CHECK_EQ(ldtr & 0xffff, SEL_LDT, "  A's LDTR back from its TSS");
}

/* A 16-bit TSS: IP, FLAGS and the low halves of the registers; the high halves stay. */
volatile u32 e_regs[8], e_fs, e_tr;
void task_e_entry(void);
extern const u8 e_after_ljmp[];
__asm__(".text\n.globl task_e_entry\ntask_e_entry:\n"
        "\tmovl %eax, e_regs\n\tmovl %ecx, e_regs+4\n\tmovl %edx, e_regs+8\n"
        "\tmovl %ebx, e_regs+12\n\tmovl %esp, e_regs+16\n\tmovl %ebp, e_regs+20\n"
        "\tmovl %esi, e_regs+24\n\tmovl %edi, e_regs+28\n"
        "\tmovl %fs, %eax\n\tmovl %eax, e_fs\n"
        "\tstr %ax\n\tmovl %eax, e_tr\n"
        "\tljmp $0x68, $0\n"
        ".globl e_after_ljmp\ne_after_ljmp:\n\tud2\n");

static void test_tss16(void)
{
    u32 base = (u32)task_e_entry & ~0xffffu;
    gdt_set(IDX(SEL_CODEB), base, 0xfffff, 0x9a, 0xc);
    memset(&tss_e, 0, sizeof tss_e);
    tss_e.ip = (u16)((u32)task_e_entry - base);
    tss_e.flags = 0x2;
    tss_e.ax = 0xe001, tss_e.cx = 0xe002, tss_e.dx = 0xe003, tss_e.bx = 0xe004;
    tss_e.sp = 0xe005, tss_e.bp = 0xe006, tss_e.si = 0xe007, tss_e.di = 0xe008;
    tss_e.cs = SEL_CODEB;
    tss_e.ss = tss_e.ds = tss_e.es = SEL_DATA;
    set_tss_desc(IDX(SEL_TSSE), &tss_e, sizeof tss_e - 1, 0x1, 0, 1);
    a_switch(A_LJMP_E);
    printf("-- JMP to a 16-bit TSS\n");
    CHECK_EQ(e_tr & 0xffff, SEL_TSSE, "  TR is E's");
    CHECK(e_regs[0] == 0xa0a0e001 && e_regs[1] == 0xa0a0e002 && e_regs[2] == 0xa0a0e003 &&
              e_regs[3] == 0xa0a0e004 && e_regs[5] == 0xa0a0e006 && e_regs[6] == 0xa0a0e007 &&
              e_regs[7] == 0xa0a0e008, "  low halves from the TSS, high halves kept");
    CHECK_EQ(e_regs[4], (a_esp & 0xffff0000u) | 0xe005, "  SP from the TSS");
    CHECK_EQ(e_fs & 0xffff, 0, "  FS null");
    CHECK_EQ(tss_e.ip, ((u32)e_after_ljmp - base) & 0xffff, "  E's TSS: IP after its JMP");
    CHECK_EQ(tss_e.ax, SEL_TSSE, "  E's TSS: AX (E's last STR)");
    CHECK_EQ(tss_e.bx, 0xe004, "  E's TSS: BX");
    CHECK_EQ(desc_type(SEL_TSSE), 0x1, "  E not busy after its JMP");
    check_a_saved(a_next[A_LJMP_E]);
    check_a_back("E's JMP");
}

void main(void)
{
    reset_task(&tss_a, 0, 0);
    tss_a.ldt = SEL_LDT;
    set_tss_desc(IDX(SEL_TSSA), &tss_a, sizeof tss_a - 1, 0x9, 0, 1);
    set_task_gate(&gdt[IDX(SEL_GATEB)], SEL_TSSB, 0, 1);
    set_task_gate(&gdt[IDX(SEL_GATEA)], SEL_TSSA, 0, 1);
    set_task_gate(&gdt[IDX(SEL_GATENP)], SEL_TSSB, 0, 0);
    memset(&tss_small, 0, sizeof tss_small);
    set_tss_desc(IDX(SEL_TSSSM), &tss_small, 0x60, 0x9, 0, 1);
    set_tss_desc(IDX(SEL_TSSNP), &tss_small, sizeof tss_small - 1, 0x9, 0, 0);
    __asm__ volatile("lldt %w0" : : "r"((u16)SEL_LDT));
    __asm__ volatile("ltr %w0" : : "r"((u16)SEL_TSSA));
    set_task_gate(&idt[0x40], SEL_TSSB, 0, 1);

    test_jmp();
    test_nested(A_LCALL_B, "CALL to the TSS");
    test_nested(A_LCALL_GATE, "CALL through a task gate");
    test_nested(A_INT40, "INT n through a task gate in the IDT");
    test_exception_gates();
    test_bad_tasks();
    test_fault_in_new_task();
    test_trap_bit(A_LJMP_B, "JMP to a TSS with the T bit");
    test_trap_bit(A_INT40, "INT n through a task gate to a TSS with the T bit");
    test_rf_from_tss(0x2, 1, "JMP to a TSS, a code breakpoint on B's first instruction");
    test_rf_from_tss(0x10002, 0, "JMP to a TSS whose EFLAGS has RF, the same breakpoint");
    test_cr3();
    test_ldt();
    test_tss16();
}
