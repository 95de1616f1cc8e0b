/*
 * tfstep_ibl.c - the inline indirect-branch lookup against the guest's single step and
 * rewritten code (found by review, 2026-12-02):
 * - a POPF that sets TF, reached by an indirect JMP while the next instruction's block
 *   sits in its victim entry: the first #DB must come after that next instruction (xbt
 *   left through the victim probe, which ran on into the cached block without a trap);
 * - a CALL and RET stepped under TF after they ran 50 times cached: a trap after each
 *   (xbt's stepped RET found its target in the table and ran on);
 * - a page of 8,192 one-byte RET blocks, all in the table, then rewritten: the cache's
 *   drop log overflows, and the rewritten targets must run their new code.
 */
#include "lib/guest.h"

static volatile u32 ntraps, first_eip;

static void db_handler(struct frame *f)
{
    if (ntraps == 0)
        first_eip = f->eip;
    ntraps++;
    __asm__ volatile("mov %0, %%dr6" : : "r"(0u));
}

static u8 buf[65536 * 2] __attribute__((aligned(65536)));

static void call_at(const u8 *p)
{
    __asm__ volatile("call *%0" : : "r"(p) : "eax", "ecx", "edx", "memory", "cc");
}

/* jump to popf at p-1 with TF set in the popped flags; code at p: nop; nop; ret */
static void popf_into(u8 *p)
{
    __asm__ volatile(
        "pushl $1f\n\t"
        "pushfl\n\torl $0x100, (%%esp)\n\t"
        "jmp *%0\n"
        "1:\tpushfl\n\tandl $~0x100, (%%esp)\n\tpopfl\n"
        : : "r"(p - 1) : "eax", "ecx", "edx", "memory", "cc");
}

extern u8 r_ret[], r_after[];
static __attribute__((noinline)) void step_ret(int tf)
{
    __asm__ volatile(
        "testl %0, %0\n\tjz 1f\n\tpushfl\n\torl $0x100, (%%esp)\n\tpopfl\n"
        "1:\tcall r_ret\n"
        ".globl r_after\nr_after:\tpushfl\n\tandl $~0x100, (%%esp)\n\tpopfl\n\tjmp 2f\n"
        ".globl r_ret\nr_ret:\tret\n2:\n" : : "r"(tf) : "memory", "cc");
}

static u8 rets[8192] __attribute__((aligned(4096)));
static u32 call_ret(u8 *p)
{
    u32 r;
    __asm__ volatile("xorl %%eax, %%eax\n\tcall *%1" : "=&a"(r) : "r"(p) : "ecx", "edx", "memory", "cc");
    return r;
}

void main(void)
{
    for (int i = 0; i < 8192; i++) rets[i] = 0xc3;
    for (int k = 0; k < 3; k++) for (int i = 0; i < 8192; i++) call_ret(rets + i);
    rets[101] = 0xb8; rets[102] = 5; rets[103] = 0; rets[104] = 0; rets[105] = 0; rets[106] = 0xc3;
    rets[100] = 0x90; /* nop; mov eax,5; ret */
    CHECK_EQ(call_ret(rets + 100), 5, "overflowed drop log: rewritten target");
    CHECK_EQ(call_ret(rets + 101), 5, "overflowed drop log: rewritten target 2");
    rets[4096 + 50] = 0xb8; rets[4096 + 51] = 7; rets[4096+52]=0; rets[4096+53]=0; rets[4096+54]=0; rets[4096+55]=0xc3;
    CHECK_EQ(call_ret(rets + 4096 + 50), 7, "overflowed drop log: rewritten target, 2nd page");

    set_handler(1, db_handler);
    u8 *x = buf + 0x101, *y = buf + 0x10000 + 0x101;
    x[-1] = 0x9d; x[0] = 0x90; x[1] = 0x90; x[2] = 0xc3;
    y[0] = 0xc3;
    for (int i = 0; i < 4; i++)
        call_at(x);
    call_at(y);      /* x moves to its victim entry */
    call_at(x);      /* through the victim: x in primary, y in victim */
    call_at(y);      /* y through its victim entry; x in victim? */
    call_at(y);
    ntraps = 0;
    popf_into(x);
    printf("popf->victim: %u traps, first at %x (want %x)\n", ntraps, first_eip, (u32)(x + 1));
    CHECK_EQ(first_eip, (u32)(x + 1), "POPF setting TF: first trap after the next instruction");
    CHECK_EQ(ntraps, 6, "POPF setting TF: a trap after every instruction up to the POPF clearing it");

    for (int i = 0; i < 50; i++)
        step_ret(0);
    ntraps = 0;
    step_ret(1);
    printf("ret stepped: %u traps, first at %x (r_ret %x, r_after %x)\n", ntraps, first_eip,
           (u32)r_ret, (u32)r_after);
    CHECK_EQ(first_eip, (u32)r_ret, "stepped CALL traps at its target");
    CHECK_EQ(ntraps, 5, "stepped CALL and RET: a trap after each instruction");
}
