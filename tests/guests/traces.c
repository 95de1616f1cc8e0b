/*
 * traces.c - hot loops that xbt lays out as traces (issue 7), checked against results
 * computed another way: a loop whose branches flip direction half-way and alternate
 * every iteration, calls through a table of function pointers inside a hot loop, a
 * traced loop whose own immediate is rewritten every 16 iterations, and a long traced
 * loop that the PIT interrupts.  The same kernel runs on QEMU and on xbt with and
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

static volatile u32 ticks;
static void irq0(struct frame *f)
{
    (void)f;
    ticks++;
    pic_eoi(0);
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

    set_handler(0x20, irq0);
    pit_start(1000);
    pic_unmask(0);
    sti();
    u32 r = 0, rounds = 0;
    while (ticks < 20) {
        r ^= flip(20000);
        rounds++;
    }
    cli();
    CHECK(ticks >= 20, "timer interrupts arrive while traces run");
    CHECK_EQ(r, (rounds & 1) ? flip_expected(20000) : 0, "and the traced results stay right");
}
