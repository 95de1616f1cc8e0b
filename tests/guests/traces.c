/*
 * traces.c - hot loops that xbt lays out as traces (issue 7), checked against results
 * computed another way: a loop whose branches flip direction half-way and alternate
 * every iteration, calls through a table of function pointers inside a hot loop, a
 * traced loop whose own immediate is rewritten every 16 iterations, a function returning
 * to two call sites, a callee rewriting its return address, an indirect jump whose
 * target changes, divide faults inside a traced callee, STI's shadow over a branch in a
 * hot loop, and a long traced loop that the PIT interrupts.  The same kernel runs on QEMU and on xbt with and
 * without traces (ctest); each must pass everywhere.
 */
#include "lib/guest.h"

/* Branches that flip: below n/2 one side, then the other; odd/even alternate. */
static __attribute__((noinline)) u32 flip(u32 n)
{
    u32 a = 0;
    for (u32 i = 0; i < n; i++) {
        if (i < n / 2)
            a += i;
        else
            a += 3 * i;
        if (i & 1)
            a += 5;
        else
            a -= 2;
    }
    return a;
}

/* 0 + 1 + ... + (n - 1), modulo 2^32 as the loop computes it. */
static u32 tri(u32 n)
{
    return (n & 1) ? n * ((n - 1) / 2) : (n / 2) * (n - 1);
}

static u32 flip_expected(u32 n)
{
    u32 h = n / 2;
    u32 lo = tri(h);                          /* sum of i below h */
    u32 hi = tri(n) - lo;                     /* sum of i from h to n-1 */
    u32 odd = n / 2, even = n - odd;
    return lo + 3 * hi + 5 * odd - 2 * even;
}

static u32 add1(u32 x) { return x + 1; }
static u32 dbl(u32 x) { return x * 2; }
static u32 neg(u32 x) { return ~x; }
static u32 (*const table[3])(u32) = { add1, dbl, neg };

static __attribute__((noinline)) u32 indirect(u32 n)
{
    u32 a = 1;
    for (u32 i = 0; i < n; i++)
        a = table[i % 3](a) + i;
    return a;
}

static u32 indirect_expected(u32 n)
{
    u32 a = 1;
    for (u32 i = 0; i < n; i++) {
        u32 k = i % 3;
        a = (k == 0 ? a + 1 : k == 1 ? a * 2 : ~a) + i;
    }
    return a;
}

/* smc_loop(n): eax = sum of an immediate that the loop itself increments every 16
   iterations (the addl's imm8 at smc_imm). */
__asm__(".text\n.globl smc_loop\nsmc_loop:\n"
        "\tmovl 4(%esp), %ecx\n\txorl %eax, %eax\n"
        "1:\t.byte 0x83, 0xc0\n.globl smc_imm\nsmc_imm:\t.byte 0x01\n" /* addl $imm8, %eax */
        "\ttestl $15, %ecx\n\tjnz 2f\n"
        "\tincb smc_imm\n"
        "2:\tdecl %ecx\n\tjnz 1b\n\tret\n");
u32 smc_loop(u32 n);
extern u8 smc_imm[];

static u32 smc_expected(u32 n)
{
    u32 a = 0, imm = 1;
    for (u32 c = n; c != 0; c--) {
        a += (u32)(signed char)imm;
        if ((c & 15) == 0)
            imm = (imm + 1) & 0xff;
    }
    return a;
}

/* Returns that go to more than one place: leaf() is called from two call sites that
   alternate every 8 iterations, so a trace through it guards its RET with the return
   address seen while recording and the other one must take the ordinary lookup. */
static __attribute__((noinline)) u32 leaf(u32 x) { return x * 3 + 1; }

static __attribute__((noinline)) u32 two_sites(u32 n)
{
    u32 a = 0;
    for (u32 i = 0; i < n; i++) {
        if (i & 8)
            a += leaf(i);
        else
            a ^= leaf(a);
    }
    return a;
}

static u32 two_sites_expected(u32 n)
{
    u32 a = 0;
    for (u32 i = 0; i < n; i++)
        a = (i & 8) ? a + i * 3 + 1 : a ^ (a * 3 + 1);
    return a;
}

/* skip_ret(n): a hot loop calls a function that, when the counter is a multiple of 64,
   adds 5 to its own return address, skipping the caller's `addl $1000, %eax` (5
   bytes): a trace followed into the call and back must see the rewritten return. */
__asm__(".text\n.globl skip_ret\nskip_ret:\n"
        "\tmovl 4(%esp), %ecx\n\txorl %eax, %eax\n"
        "1:\tcall 3f\n"
        "\taddl $1000, %eax\n"              /* 05 e8 03 00 00: skipped when rewritten */
        "\tincl %eax\n"
        "\tdecl %ecx\n\tjnz 1b\n\tret\n"
        "3:\ttestl $63, %ecx\n\tjnz 4f\n"
        "\taddl $5, (%esp)\n"
        "4:\tret\n");
u32 skip_ret(u32 n);

static u32 skip_ret_expected(u32 n)
{
    u32 a = 0;
    for (u32 c = n; c != 0; c--)
        a += (c & 63) ? 1001 : 1;
    return a;
}

/* phase_jmp(n): an indirect jump whose target is one label for the first half of the
   iterations and another for the second (the trace's guard matches, then never). */
__asm__(".text\n.globl phase_jmp\nphase_jmp:\n"
        "\tpushl %ebx\n\tmovl 8(%esp), %ecx\n\txorl %eax, %eax\n"
        "\tmovl %ecx, %edx\n\tshrl $1, %edx\n"
        "1:\tmovl $5f, %ebx\n\tcmpl %edx, %ecx\n\tja 2f\n\tmovl $6f, %ebx\n"
        "2:\tjmp *%ebx\n"
        "5:\taddl $3, %eax\n\tjmp 7f\n"
        "6:\taddl $7, %eax\n"
        "7:\tdecl %ecx\n\tjnz 1b\n\tpopl %ebx\n\tret\n");
u32 phase_jmp(u32 n);

/* div_loop(n): a hot loop whose callee divides by a value that is zero every 32nd
   iteration; the #DE handler counts and skips the 2-byte DIV, so the faulting EIP and
   the registers must be exact inside a trace. */
__asm__(".text\n.globl div_loop\ndiv_loop:\n"
        "\tpushl %ebx\n\tpushl %esi\n\tmovl 12(%esp), %esi\n\txorl %ebx, %ebx\n"
        "1:\tmovl %esi, %ecx\n\tandl $31, %ecx\n\tcall 3f\n"
        "\taddl %eax, %ebx\n\tdecl %esi\n\tjnz 1b\n"
        "\tmovl %ebx, %eax\n\tpopl %esi\n\tpopl %ebx\n\tret\n"
        "3:\tmovl $1000, %eax\n\txorl %edx, %edx\n"
        ".globl div_insn\ndiv_insn:\tdivl %ecx\n"      /* f7 f1 */
        "\tret\n");
u32 div_loop(u32 n);
extern u8 div_insn[];
static volatile u32 de_count, de_bad;
static void on_de(struct frame *f)
{
    if (f->eip != (u32)div_insn || f->ecx != 0 || f->eax != 1000)
        de_bad++;
    de_count++;
    f->eax = 7;
    f->eip += 2;
}

static u32 div_expected(u32 n)
{
    u32 s = 0;
    for (u32 c = n; c != 0; c--)
        s += (c & 31) ? 1000 / (c & 31) : 7;
    return s;
}

/* STI's shadow over a branch in a hot loop, which runs with IF clear but for that
   shadow: a tick that became pending meanwhile is taken where the shadow ends, at the
   branch's target, after the branch.  sti_loop_K(n) loops until n ticks came (or 2^26
   rounds; the round count in EAX) with a JMP, a CALL, a RET and an indirect JMP under the
   shadow (K = 0..3); the target is sti_target_K.  A trace that follows a direct JMP or
   CALL lays it out with no exit, and an indirect one with a guard: xbt puts the gate
   there (issue 17).  Without it no tick would come while the loop runs. */
#define STI_LOOP(k, branch, target_prologue)                                                \
    __asm__(".text\n.globl sti_loop_" #k "\nsti_loop_" #k ":\n"                            \
            "\tpushl %ebx\n\tmovl 8(%esp), %ebx\n\txorl %eax, %eax\n"                      \
            "1:\tincl %eax\n\ttestl $0x4000000, %eax\n\tjnz 2f\n"                         \
            branch "\n\tud2\n"                                                             \
            ".globl sti_target_" #k "\nsti_target_" #k ":\n\tcli\n" target_prologue         \
            "\tcmpl %ebx, sti_ticks\n\tjb 1b\n"                                            \
            "2:\tpopl %ebx\n\tret\n")
STI_LOOP(0, "\tsti\n\tjmp sti_target_0", "");
STI_LOOP(1, "\tsti\n\tcall sti_target_1", "\tpopl %edx\n");
STI_LOOP(2, "\tpushl $sti_target_2\n\tsti\n\tret", "");
STI_LOOP(3, "\tmovl $sti_target_3, %edx\n\tsti\n\tjmp *%edx", "");
u32 sti_loop_0(u32 n), sti_loop_1(u32 n), sti_loop_2(u32 n), sti_loop_3(u32 n);
extern u8 sti_target_0[], sti_target_1[], sti_target_2[], sti_target_3[];
volatile u32 sti_ticks;
static volatile u32 sti_expect, sti_wrong, sti_wrong_eip;
static void on_sti_tick(struct frame *f)
{
    if (f->eip != sti_expect)
        sti_wrong++, sti_wrong_eip = f->eip;
    sti_ticks++;
    pic_eoi(0);
}

static void sti_branches(void)
{
    static const char *const what[4] = { "jmp", "call", "ret", "jmp *reg" };
    u32 (*const loop[4])(u32) = { sti_loop_0, sti_loop_1, sti_loop_2, sti_loop_3 };
    u8 *const target[4] = { sti_target_0, sti_target_1, sti_target_2, sti_target_3 };
    cli();
    set_handler(0x20, on_sti_tick);
    pit_start(1000);
    pic_unmask(0);
    for (int k = 0; k < 4; k++) {
        sti_ticks = sti_wrong = 0;
        sti_expect = (u32)target[k];
        u32 rounds = loop[k](20);
        if (sti_ticks < 20 || sti_wrong)
            printf("  sti; %s: %u ticks in %u rounds, %u elsewhere (last at %x, target %x)\n",
                   what[k], sti_ticks, rounds, sti_wrong, sti_wrong_eip, sti_expect);
        CHECK(sti_ticks >= 20, "sti; branch in a hot loop: ticks come at the shadow's end");
        CHECK_EQ(sti_wrong, 0, "sti; branch in a hot loop: every tick at the branch's target");
    }
}

void main(void)
{
    u32 n = 200000;
    CHECK_EQ(flip(n), flip_expected(n), "flipping branches, first run");
    CHECK_EQ(flip(n + 2), flip_expected(n + 2), "flipping branches, again (a trace by now)");
    CHECK_EQ(indirect(30000), indirect_expected(30000), "calls through a table in a hot loop");
    *smc_imm = 1;
    CHECK_EQ(smc_loop(4000), smc_expected(4000), "a hot loop rewriting its own immediate");
    *smc_imm = 1;
    CHECK_EQ(smc_loop(4000), smc_expected(4000), "the same again");

    CHECK_EQ(two_sites(40000), two_sites_expected(40000), "one function returning to two call sites");
    CHECK_EQ(skip_ret(20000), skip_ret_expected(20000), "a callee rewriting its return address");
    CHECK_EQ(phase_jmp(20000), 10000 * 3 + 10000 * 7, "an indirect jump whose target changes");
    set_handler(0, on_de);
    CHECK_EQ(div_loop(6400), div_expected(6400), "divide faults inside a traced callee");
    CHECK_EQ(de_count, 200, "one #DE per 32 iterations");
    CHECK_EQ(de_bad, 0, "each with the exact EIP and registers");

    sti_branches();
    pit_ticks_start(1000);
    sti();
    u32 r = 0, rounds = 0;
    while (pit_ticks < 20) {
        r ^= flip(20000);
        rounds++;
    }
    cli();
    CHECK(pit_ticks >= 20, "timer interrupts arrive while traces run");
    CHECK_EQ(r, (rounds & 1) ? flip_expected(20000) : 0, "and the traced results stay right");
}
