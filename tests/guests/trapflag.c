/*
 * trapflag.c - the guest's own single-step (EFLAGS.TF, SDM vol. 3 18.3.1.4) in
 * translated code: the #DB handler records each trap's EIP and DR6, and every sequence
 * is checked against the EIPs the SDM gives.
 *   - POPF that sets TF: the first trap after the instruction that follows it; a POPF
 *     that clears TF traps after itself.
 *   - a straight line, a taken branch, a CALL and RET: one trap per instruction, at
 *     the EIP each went to; DR6.BS set.
 *   - a faulting instruction (DIV by 0): no trap for it, its #DE handler runs (and
 *     skips it), then stepping goes on.
 *   - REP MOVSB with ECX 3: a trap after each iteration (EIP the instruction's own
 *     twice, then the next); ECX 0: one trap at the next instruction; REPE CMPSB that
 *     stops at the second element: two traps.
 *   - MOV SS under TF: no trap until after the instruction it shields (QEMU TCG traps
 *     after the MOV SS too: checked on xbt and hardware only).
 *   - paging on: a store and a load to pages not yet mapped for the guest (on xbt a
 *     host fault each, the instruction run again): one trap each.
 *   - user mode: IRET to CPL 3 with TF in the frame; a trap after each user
 *     instruction, until a POPF clears TF.
 *   - data breakpoints (DR0-DR3 under DR7): a write breakpoint on a dword traps after
 *     the write (DR6.B0, the next EIP), not after a read or a write beside it; a
 *     read/write breakpoint on a byte traps after a read of it; two hit at once set
 *     both DR6 bits; with paging on, too; disabled in DR7, nothing.
 *   - an instruction breakpoint (DR0, R/W 00): a #DB fault before the instruction (its
 *     own EIP, DR6.B0) each time it is reached; the handler sets RF in its frame, so the
 *     instruction then runs once; none on the instruction MOV SS shields (xbt only).
 * Runs on QEMU TCG too (run-guest.sh), where the checks hold but the one named.
 */
#include "lib/guest.h"

#define MAXT 32
static volatile u32 teip[MAXT], tdr6[MAXT], ntraps, de_count;

static void db_handler(struct frame *f)
{
    u32 dr6;
    __asm__ volatile("mov %%dr6, %0" : "=r"(dr6));
    if (ntraps < MAXT) {
        teip[ntraps] = f->eip;
        tdr6[ntraps] = dr6;
    }
    ntraps++;
    __asm__ volatile("mov %0, %%dr6" : : "r"(0u));
}

static void de_handler(struct frame *f)
{
    de_count++;
    f->eip += 2; /* divl %ecx */
}

static void reset(void)
{
    ntraps = 0;
    for (int i = 0; i < MAXT; i++)
        teip[i] = tdr6[i] = 0;
}

/* The traps recorded against want[0..n-1], and DR6.BS in each. */
static void expect(const char *name, const u32 *want, u32 n)
{
    int ok = ntraps == n, bs = 1;
    for (u32 i = 0; i < n && i < MAXT; i++) {
        ok &= teip[i] == want[i];
        bs &= (tdr6[i] & 0x4000) != 0;
    }
    if (!ok) {
        printf("%s: %u traps:", name, ntraps);
        for (u32 i = 0; i < ntraps && i < MAXT; i++)
            printf(" %x", teip[i]);
        printf("; want %u:", n);
        for (u32 i = 0; i < n; i++)
            printf(" %x", want[i]);
        printf("\n");
    }
    CHECK(ok, name);
    CHECK(bs, "DR6.BS set at each single-step trap");
}

/* Labels of the stepped sequences (global so that C can take their addresses). */
extern u8 s1_a[], s1_b[], s1_c[], s1_d[], s1_e[], s1_ret[], s1_f[], s1_g[], s1_g2[], s1_h[],
    s1_end[];
extern u8 s2_a[], s2_b[], s2_c[], s2_c2[], s2_c3[], s2_d[];
extern u8 s3_rep[], s3_b[], s3_c[], s3_d[], s3_e[], s3_f[], s3_g[], s3_h[], s3_i[], s3_j[],
    s3_end[];
extern u8 s4_a[], s4_b[], s4_c[], s4_c2[], s4_c3[], s4_end[];
extern u8 s5_a[], s5_b[], s5_b2[], s5_c[], s5_d[];

#define L(name) ".globl " #name "\n" #name ":\t"
#define TF_ON "pushfl\n\torl $0x100, (%%esp)\n\tpopfl\n"

static void seq_straight(void)
{
    /* TF set by the POPF at s1_a: no trap after it; then one after each instruction,
       the last after the POPF that clears TF (s1_h). */
    __asm__ volatile(
        "pushfl\n\torl $0x100, (%%esp)\n"
        L(s1_a) "popfl\n"
        L(s1_b) "movl $5, %%eax\n"
        L(s1_c) "addl $1, %%eax\n"
        L(s1_d) "jmp s1_e\n\tud2\n"
        L(s1_e) "call s1_ret\n"
        L(s1_f) "jmp s1_g\n"
        L(s1_ret) "ret\n"
        L(s1_g) "pushfl\n"
        L(s1_g2) "andl $~0x100, (%%esp)\n"
        L(s1_h) "popfl\n"
        L(s1_end) "nop\n"
        : : : "eax", "memory", "cc");
}

static void seq_fault(void)
{
    /* s2_b divides by 0: #DE, no trap for it; the handler skips it. */
    __asm__ volatile(
        "xorl %%ecx, %%ecx\n\tmovl $1, %%eax\n\txorl %%edx, %%edx\n\t" TF_ON
        L(s2_a) "nop\n"
        L(s2_b) "divl %%ecx\n"
        L(s2_c) "pushfl\n"
        L(s2_c2) "andl $~0x100, (%%esp)\n"
        L(s2_c3) "popfl\n"
        L(s2_d) "nop\n"
        : : : "eax", "ecx", "edx", "memory", "cc");
}

static u8 src[16] = "abcdefghijklmno", dst[16], cmpa[8] = "xyzw", cmpb[8] = "xqzw";

static void seq_rep(void)
{
    __asm__ volatile(
        "cld\n\tmovl $3, %%ecx\n\tmovl %0, %%esi\n\tmovl %1, %%edi\n\t" TF_ON
        L(s3_rep) "rep movsb\n"
        L(s3_b) "xorl %%ecx, %%ecx\n"
        L(s3_c) "rep movsb\n"
        L(s3_d) "movl $4, %%ecx\n"
        L(s3_e) "movl %2, %%esi\n"
        L(s3_f) "movl %3, %%edi\n"
        L(s3_g) "repe cmpsb\n"
        L(s3_h) "pushfl\n"
        L(s3_i) "andl $~0x100, (%%esp)\n"
        L(s3_j) "popfl\n"
        L(s3_end) "nop\n"
        : : "i"(src), "i"(dst), "i"(cmpa), "i"(cmpb)
        : "ecx", "esi", "edi", "memory", "cc");
}

static u32 ss_sel __attribute__((used));
static void seq_movss(void)
{
    /* MOV SS at s4_a: no trap after it; the trap after s4_b, which it shields. */
    __asm__ volatile(
        "movl %%ss, %%eax\n\tmovl %%eax, ss_sel\n\t" TF_ON
        "nop\n"
        L(s4_a) "movw ss_sel, %%ss\n"
        L(s4_b) "nop\n"
        L(s4_c) "pushfl\n"
        L(s4_c2) "andl $~0x100, (%%esp)\n"
        L(s4_c3) "popfl\n"
        L(s4_end) "nop\n"
        : : : "eax", "memory", "cc");
}

/* Paging on (4 MiB identity pages): a store and a load to pages the VMM has not mapped
   for the guest yet (xbt: a host fault each, the instruction run again), one trap each. */
extern u8 s6_a[], s6_b[], s6_c[], s6_c2[], s6_c3[], s6_end[];
static u8 fresh[3][4096] __attribute__((aligned(4096)));
static u32 pd[1024] __attribute__((aligned(4096)));
static void seq_paged(void)
{
    __asm__ volatile(
        "movl $7, %%eax\n\t" TF_ON
        L(s6_a) "movl %%eax, %0\n"
        L(s6_b) "movl %1, %%edx\n"
        L(s6_c) "pushfl\n"
        L(s6_c2) "andl $~0x100, (%%esp)\n"
        L(s6_c3) "popfl\n"
        L(s6_end) "nop\n"
        : "=m"(fresh[0][8]) : "m"(fresh[2][12]) : "eax", "edx", "memory", "cc");
}

/* REP MOVSB with 16-bit addressing (the 0x67 prefix): a trap after each iteration too. */
extern u8 s9_rep[], s9_b[], s9_b2[], s9_b3[], s9_end[];
static void seq_rep16(void)
{
    __asm__ volatile(
        "movl $0x7000, %%esi\n\tmovl $0x7100, %%edi\n\tmovl $3, %%ecx\n\tcld\n\t" TF_ON
        L(s9_rep) "addr16 rep movsb\n"
        L(s9_b) "pushfl\n"
        L(s9_b2) "andl $~0x100, (%%esp)\n"
        L(s9_b3) "popfl\n"
        L(s9_end) "nop\n"
        : : : "ecx", "esi", "edi", "memory", "cc");
}

/* INT n stepped: the handler runs without TF and raises no trap (current processors and
   QEMU TCG); its IRET sets TF again, so the instruction after the INT traps. */
extern u8 s7_a[], s7_b[], s7_c[], s7_c2[], s7_c3[], s7_end[];
static void seq_int(void)
{
    __asm__ volatile(
        TF_ON
        L(s7_a) "int $0x31\n"
        L(s7_b) "nop\n"
        L(s7_c) "pushfl\n"
        L(s7_c2) "andl $~0x100, (%%esp)\n"
        L(s7_c3) "popfl\n"
        L(s7_end) "nop\n"
        : : : "memory", "cc");
}
static volatile u32 int31_count;
static void int31_handler(struct frame *f)
{
    (void)f;
    int31_count++;
}

/* MMIO stepped: a load and a store of the local APIC's TPR, one trap each. */
extern u8 s8_a[], s8_b[], s8_c[], s8_c2[], s8_c3[], s8_end[];
static void seq_mmio(void)
{
    __asm__ volatile(
        TF_ON
        L(s8_a) "movl 0xfee00080, %%eax\n"
        L(s8_b) "movl %%eax, 0xfee00080\n"
        L(s8_c) "pushfl\n"
        L(s8_c2) "andl $~0x100, (%%esp)\n"
        L(s8_c3) "popfl\n"
        L(s8_end) "nop\n"
        : : : "eax", "memory", "cc");
}

/* User mode: entered by IRET with TF in its EFLAGS (user_enter_flags); the first
   trap after the first user instruction, then one per instruction until the POPF at
   s5_c clears TF; INT 0x30 ends the run (TF clear by then). */
void user_steps(void);
__asm__(".text\n.globl user_steps\nuser_steps:\n"
        ".globl s5_a\ns5_a:\tmovl $1, %eax\n"
        ".globl s5_b\ns5_b:\tpushfl\n"
        ".globl s5_b2\ns5_b2:\tandl $~0x100, (%esp)\n"
        ".globl s5_c\ns5_c:\tpopfl\n"
        ".globl s5_d\ns5_d:\tmovl $0, %eax\n\tint $0x30\n");
static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[4096] __attribute__((aligned(16)));
static void exit_handler(struct frame *f) { user_return(f); }

/* ---- data breakpoints ---------------------------------------------------------------- */

static volatile u32 wvar[4] __attribute__((aligned(16)));
static volatile u8 bvar[8];
extern u8 d_w1[], d_w1_end[], d_r1_end[], d_both_end[];

static void set_dr(u32 dr0, u32 dr1, u32 dr7)
{
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr1\n\tmov %2, %%dr7"
                     : : "r"(dr0), "r"(dr1), "r"(dr7) : "memory");
}

/* DR7: L0 with R/W0 = 01 (write), LEN0 = 11 (4 bytes); L1 with R/W1 = 11 (read or
   write), LEN1 = 00 (1 byte). */
#define DR7_W0_4 (0x1u | 0x1u << 16 | 0x3u << 18)
#define DR7_RW1_1 (0x4u | 0x3u << 20)

static void data_breakpoints(const char *when)
{
    u32 x;
    reset();
    wvar[1] = 41;
    set_dr((u32)&wvar[1], (u32)&bvar[3], DR7_W0_4 | DR7_RW1_1);
    x = wvar[1];          /* a read: not a write breakpoint's */
    wvar[2] = 5;          /* beside it */
    bvar[2] = 1;          /* beside the byte */
    __asm__ volatile(".globl d_w1\nd_w1:\tmovl %1, %0\n.globl d_w1_end\nd_w1_end:\n"
                     : "=m"(wvar[1]) : "r"(x + 1) : "memory");
    __asm__ volatile("movb %1, %%al\n.globl d_r1_end\nd_r1_end:\n"
                     : "=&a"(x) : "m"(bvar[3]) : "memory");
    /* A dword write over both: two bits at once (wvar[1] and bvar[3] are apart: a
       4-byte write covers bvar[0..3]). */
    set_dr((u32)&bvar[0], (u32)&bvar[3], (0x1u | 0x1u << 16 | 0x3u << 18) | DR7_RW1_1);
    __asm__ volatile("movl %1, %0\n.globl d_both_end\nd_both_end:\n"
                     : "=m"(*(volatile u32 *)&bvar[0]) : "r"(0x01020304u) : "memory");
    set_dr(0, 0, 0);
    bvar[3] = 9; /* disabled: nothing */
    int ok = ntraps == 3 && teip[0] == (u32)d_w1_end && teip[1] == (u32)d_r1_end &&
             teip[2] == (u32)d_both_end;
    if (!ok)
        printf("%s: %u traps: %x %x %x (want %x %x %x)\n", when, ntraps, teip[0], teip[1],
               teip[2], (u32)d_w1_end, (u32)d_r1_end, (u32)d_both_end);
    printf("data breakpoints, %s: DR6 %x %x %x\n", when, tdr6[0] & 0xf, tdr6[1] & 0xf,
           tdr6[2] & 0xf);
    CHECK(ok, "data breakpoints: a trap after each hitting access, at the next EIP");
    CHECK((tdr6[0] & 0xf) == 1 && (tdr6[1] & 0xf) == 2,
          "data breakpoints: DR6.Bn names the breakpoint hit");
    /* Both conditions met by one access: the SDM's DR6 has both bits; QEMU TCG sets
       the first one's only. */
    if (on_qemu_tcg())
        printf("data breakpoints: two hit at once not checked on QEMU TCG (it sets B0 "
               "alone)\n");
    else
        CHECK_EQ(tdr6[2] & 0xf, 3, "data breakpoints: two hit by one access, both DR6 bits");
    CHECK(wvar[1] == 42 && bvar[0] == 4 && bvar[3] == 9,
          "data breakpoints: the stores were made");
}

/* ---- an instruction breakpoint ------------------------------------------------------- */

extern u8 ib_at[], ib_next[];
static volatile u32 ib_count;
__asm__(".text\n.globl ib_fn\nib_fn:\n\tnop\n"
        ".globl ib_at\nib_at:\tincl ib_count\n"
        ".globl ib_next\nib_next:\tret\n");
void ib_fn(void);

/* #DB from an instruction breakpoint: recorded, then RF in the frame (the instruction
   runs when the IRET returns to it). */
static void ib_handler(struct frame *f)
{
    db_handler(f);
    f->eflags |= 0x10000u; /* RF */
}

/* A code breakpoint on the instruction MOV SS shields: none taken (Intel, whose vendor
   string the CPU model has; kvm-unit-tests' emulator test checks the same). */
extern u8 ss_shielded[];
static void breakpoint_after_mov_ss(void)
{
    reset();
    set_handler(1, ib_handler);
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr7" : : "r"((u32)ss_shielded), "r"(1u)
                     : "memory");
    __asm__ volatile("movl %%ss, %%eax\n\tmovl %%eax, %%ss\n"
                     ".globl ss_shielded\nss_shielded:\tnop\n" : : : "eax", "memory");
    __asm__ volatile("mov %0, %%dr7" : : "r"(0u) : "memory");
    set_handler(1, db_handler);
    if (on_qemu_tcg())
        printf("code breakpoint after MOV SS: not checked on QEMU TCG (it takes it)\n");
    else
        CHECK_EQ(ntraps, 0, "code breakpoint on the instruction MOV SS shields: not taken");
}

static void instruction_breakpoint(void)
{
    reset();
    ib_count = 0;
    set_handler(1, ib_handler);
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr7" : : "r"((u32)ib_at), "r"(1u) : "memory");
    for (int i = 0; i < 3; i++)
        ib_fn();
    __asm__ volatile("mov %0, %%dr7" : : "r"(0u) : "memory");
    ib_fn(); /* disabled: nothing */
    set_handler(1, db_handler);
    int ok = ntraps == 3 && ib_count == 4;
    for (u32 i = 0; i < 3 && i < ntraps; i++)
        ok &= teip[i] == (u32)ib_at && (tdr6[i] & 0xf) == 1;
    if (!ok)
        printf("instruction breakpoint: %u traps at %x, count %u\n", ntraps, teip[0], ib_count);
    CHECK(ok, "instruction breakpoint: a #DB fault at the instruction each time, RF lets it "
              "run once");
}

extern u8 bp_store[];
static u8 bp_pages[3][4096] __attribute__((aligned(4096)));
void store_to(volatile u8 *p);
__asm__(".text\n.globl store_to\nstore_to:\n\tmovl 4(%esp), %eax\n"
        ".globl bp_store\nbp_store:\tincb (%eax)\n\tret\n");

void main(void)
{
    set_handler(1, db_handler);
    set_handler(0, de_handler);
    data_breakpoints("paging off");
    instruction_breakpoint();
    breakpoint_after_mov_ss();

    reset();
    seq_straight();
    {
        const u32 want[] = { (u32)s1_c, (u32)s1_d, (u32)s1_e, (u32)s1_ret, (u32)s1_f,
                             (u32)s1_g, (u32)s1_g2, (u32)s1_h, (u32)s1_end };
        expect("TF: a trap after each instruction (the branch, CALL and RET at their "
               "targets), none after the POPF that set it, one after the POPF that clears it",
               want, sizeof want / 4);
    }

    reset();
    seq_fault();
    {
        const u32 want[] = { (u32)s2_b, (u32)s2_c2, (u32)s2_c3, (u32)s2_d };
        expect("TF: no trap after a faulting instruction, stepping on after its handler",
               want, sizeof want / 4);
        CHECK_EQ(de_count, 1, "TF: the #DE handler ran once");
    }

    reset();
    seq_rep();
    {
        const u32 want[] = { (u32)s3_rep, (u32)s3_rep, (u32)s3_b, (u32)s3_c, (u32)s3_d,
                             (u32)s3_e, (u32)s3_f, (u32)s3_g, (u32)s3_g, (u32)s3_h,
                             (u32)s3_i, (u32)s3_j, (u32)s3_end };
        expect("TF: REP MOVSB traps after each iteration, with ECX 0 once; REPE CMPSB "
               "until the difference", want, sizeof want / 4);
        CHECK(dst[0] == 'a' && dst[2] == 'c' && dst[3] == 0, "TF: REP MOVSB copied 3 bytes");
    }

    reset();
    seq_rep16();
    {
        const u32 want[] = { (u32)s9_rep, (u32)s9_rep, (u32)s9_b, (u32)s9_b2, (u32)s9_b3,
                             (u32)s9_end };
        expect("TF: REP MOVSB with 16-bit addressing traps after each iteration", want,
               sizeof want / 4);
    }

    reset();
    seq_movss();
    if (on_qemu_tcg()) {
        printf("TF after MOV SS: not checked on QEMU TCG (it traps after the MOV SS "
               "itself)\n");
    } else {
        const u32 want[] = { (u32)s4_a, (u32)s4_c, (u32)s4_c2, (u32)s4_c3, (u32)s4_end };
        expect("TF: MOV SS holds the trap until after the next instruction", want,
               sizeof want / 4);
    }

    reset();
    set_handler(0x31, int31_handler);
    idt_set(0x31, isr_table[0x31], SEL_CODE, 0xe, 0);
    seq_int();
    {
        const u32 want[] = { (u32)s7_c, (u32)s7_c2, (u32)s7_c3, (u32)s7_end };
        expect("TF over INT n: no trap in the handler, one after the next instruction", want,
               sizeof want / 4);
        CHECK_EQ(int31_count, 1, "TF over INT n: the handler ran");
    }

    reset();
    seq_mmio();
    {
        const u32 want[] = { (u32)s8_b, (u32)s8_c, (u32)s8_c2, (u32)s8_c3, (u32)s8_end };
        expect("TF over MMIO: one trap after each access", want, sizeof want / 4);
    }

    reset();
    for (u32 i = 0; i < 32; i++)
        pd[i] = i << 22 | 0x87; /* 4 MiB pages: present, writable, user, PS */
    {
        u32 cr0 = paging_on_pse(pd);
        seq_paged();
        const u32 want[] = { (u32)s6_b, (u32)s6_c, (u32)s6_c2, (u32)s6_c3, (u32)s6_end };
        expect("TF with paging: an access the VMM maps first traps once", want,
               sizeof want / 4);
        CHECK_EQ(fresh[0][8], 7, "TF with paging: the stepped store was made");
        /* An instruction breakpoint on a store to pages the VMM maps first (xbt: a
           hidden fault after the #DB, the instruction run again): one #DB each time. */
        reset();
        set_handler(1, ib_handler);
        __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr7" : : "r"((u32)bp_store), "r"(1u)
                         : "memory");
        for (int k = 0; k < 3; k++)
            store_to(&bp_pages[k][64]);
        __asm__ volatile("mov %0, %%dr7" : : "r"(0u) : "memory");
        set_handler(1, db_handler);
        CHECK(ntraps == 3 && bp_pages[0][64] == 1 && bp_pages[2][64] == 1,
              "instruction breakpoint on a store the VMM maps first: one #DB each time");
        data_breakpoints("paging on");
        __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    }

    reset();
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, exit_handler);
    idt_set(0x30, isr_table[0x30], SEL_CODE, 0xe, 3);
    user_enter_flags((u32)user_steps, (u32)(ustack + sizeof ustack), 0, 0x102);
    {
        const u32 want[] = { (u32)s5_b, (u32)s5_b2, (u32)s5_c, (u32)s5_d };
        expect("TF at CPL 3: set by IRET, a trap after each user instruction", want,
               sizeof want / 4);
    }
    guest_exit();
}
