/*
 * jmpcache.c - indirect JMPs whose inline cache of the last target (translate.c,
 * emit_jmp_cache) must never send them to a stale one: a PLT-like stub `jmp *slot`
 * called with the slot bound lazily (a resolver first, then the function), rebound to
 * other functions, alternating among three (past the two targets a site learns), a
 * `jmp *%eax` dispatch whose target changes every time, a learned target whose code is
 * rewritten (its translation dropped, the chain to it undone), and the PLT stub under a
 * 1 kHz timer.  Every result is computed another way; the kernel also runs on QEMU TCG.
 */
#include "lib/guest.h"

static u32 f1(u32 x) { return x + 1; }
static u32 f2(u32 x) { return x * 3; }
static u32 f3(u32 x) { return x ^ 0x5a5a; }

static u32 (*volatile slot)(u32); /* the PLT slot the stub jumps through */
static volatile u32 resolves;

u32 plt(u32 x);  /* jmp *slot */
u32 plt2(u32 x); /* a second stub: each site learns on its own */
__asm__(".text\n.globl plt\nplt:\n\tjmp *slot\n"
        ".globl plt2\nplt2:\n\tjmp *slot\n");

/* The lazy binder: binds the slot to f1 and goes on there, as ld.so's does. */
static u32 resolver(u32 x)
{
    resolves++;
    slot = f1;
    return f1(x);
}

static u32 run(u32 (*stub)(u32), u32 n, u32 x)
{
    for (u32 i = 0; i < n; i++)
        x = stub(x) + i;
    return x;
}

static u32 run_expected(u32 (*f)(u32), u32 n, u32 x)
{
    for (u32 i = 0; i < n; i++)
        x = f(x) + i;
    return x;
}

/* jmp *%eax to one of three labels, a different one each iteration. */
static __attribute__((noinline)) u32 dispatch(u32 n)
{
    u32 acc = 0;
    for (u32 i = 0; i < n; i++) {
        u32 k = i % 3, out;
        __asm__ volatile("movl $1f, %%eax\n\t"
                         "cmpl $1, %1\n\t"
                         "jb 4f\n\t"
                         "movl $2f, %%eax\n\t"
                         "je 4f\n\t"
                         "movl $3f, %%eax\n"
                         "4:\tjmp *%%eax\n"
                         "1:\tmovl $7, %0\n\tjmp 5f\n"
                         "2:\tmovl $11, %0\n\tjmp 5f\n"
                         "3:\tmovl $13, %0\n"
                         "5:"
                         : "=r"(out) : "r"(k) : "eax", "cc");
        acc += out * (i & 15);
    }
    return acc;
}

static u32 dispatch_expected(u32 n)
{
    static const u32 v[3] = { 7, 11, 13 };
    u32 acc = 0;
    for (u32 i = 0; i < n; i++)
        acc += v[i % 3] * (i & 15);
    return acc;
}

/* A function in RAM whose immediate gets rewritten: `mov $imm, %eax; add 4(%esp), %eax;
   ret`. */
static u8 code[4096] __attribute__((aligned(4096))); /* a page of its own */
static void make_code(u32 imm)
{
    static const u8 t[] = { 0xb8, 0, 0, 0, 0, 0x03, 0x44, 0x24, 0x04, 0xc3 };
    for (u32 i = 0; i < sizeof t; i++)
        code[i] = t[i];
    code[1] = (u8)imm, code[2] = (u8)(imm >> 8), code[3] = (u8)(imm >> 16);
    code[4] = (u8)(imm >> 24);
}

void main(void)
{
    /* Lazily bound: the resolver on the first call, f1 from then on. */
    slot = resolver;
    CHECK_EQ(run(plt, 5000, 3), run_expected(f1, 5000, 3), "lazily bound slot");
    CHECK_EQ(resolves, 1, "the resolver ran once");
    /* Rebound: each stub follows the slot whatever it learned. */
    slot = f2;
    CHECK_EQ(run(plt, 3000, 5), run_expected(f2, 3000, 5), "rebound to a second function");
    CHECK_EQ(run(plt2, 3000, 5), run_expected(f2, 3000, 5), "a second stub, same slot");
    slot = f3;
    CHECK_EQ(run(plt, 3000, 7), run_expected(f3, 3000, 7), "rebound past two learns");
    /* Alternating every call among three targets: most calls miss the cache. */
    u32 x = 1, y = 1;
    u32 (*const fs[3])(u32) = { f1, f2, f3 };
    for (u32 i = 0; i < 6000; i++) {
        slot = fs[i % 3];
        x = plt(x) + i;
        y = fs[i % 3](y) + i;
    }
    CHECK_EQ(x, y, "a slot changing at every call");
    CHECK_EQ(dispatch(9000), dispatch_expected(9000), "jmp *%eax to a new label each time");

    /* A learned target rewritten: its translation goes, so must the jump to it. */
    make_code(100);
    slot = (u32(*)(u32))(void *)code;
    CHECK_EQ(run(plt, 2000, 0), 2000u * 100 + 1999u * 2000 / 2, "a function in RAM");
    make_code(200);
    CHECK_EQ(run(plt, 2000, 0), 2000u * 200 + 1999u * 2000 / 2, "the same, rewritten");

    /* Under the timer: kicks while the stubs run. */
    slot = f2;
    pit_ticks_start(1000);
    sti();
    u32 r = 0, rounds = 0;
    while (pit_ticks < 20) {
        r += run(plt, 2000, rounds) - run_expected(f2, 2000, rounds);
        rounds++;
    }
    cli();
    CHECK(pit_ticks >= 20, "timer interrupts arrive while the stubs run");
    CHECK_EQ(r, 0, "and every call goes where the slot says");
}
