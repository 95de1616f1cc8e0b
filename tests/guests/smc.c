/*
 * smc.c - self-modifying code: an immediate patched in a function that already ran,
 * a block that writes the instruction it executes next, code copied to a buffer that
 * straddles a page boundary and rewritten between calls, data written beside code on
 * the same page (the code must stay right), and one string store that covers both data
 * and the code after it.
 */
#include "lib/guest.h"

/* A function whose immediate we patch: mov eax, imm32; ret. */
__asm__(".text\n.globl patchme\npatchme:\n\tmovl $1, %eax\n\tret\n"
        ".globl patchme_imm\n.set patchme_imm, patchme + 1\n");
u32 patchme(void);
extern u8 patchme_imm[];

static u8 buf[8192] __attribute__((aligned(4096)));

/* Code with data words right before it, on one page: mixed(): eax = 7 + [mixed_data]. */
__asm__(".text\n.balign 4096\n.globl mixed_data\nmixed_data:\n\t.long 0, 0, 0, 0, 0, 0, 0, 0\n"
        ".globl mixed\nmixed:\n\tmovl mixed_data, %eax\n\taddl $7, %eax\n\tret\n"
        ".globl mixed_end\nmixed_end:\n");
u32 mixed(void);
extern u32 mixed_data[8];
extern u8 mixed_end[];

/* Two pages with code and data: two_a() at the first's start (mov eax, 11; ret) and 16
   bytes of data at its end, 16 bytes of data at the second's start and two_b() after
   them (mov eax, 22; ret). */
__asm__(".text\n.balign 4096\n.globl two_a\ntwo_a:\n\tmovl $11, %eax\n\tret\n"
        "\t.fill 4080 - (. - two_a), 1, 0xcc\n.globl two_data\ntwo_data:\n\t.fill 32, 1, 0\n"
        ".globl two_b\ntwo_b:\n\tmovl $22, %eax\n\tret\n");
u32 two_a(void);
u32 two_b(void);
extern u8 two_data[32];

void main(void)
{
    CHECK_EQ(patchme(), 1, "patchme before");
    for (u32 i = 2; i < 12; i++) {
        *(volatile u32 *)patchme_imm = i;
        if (patchme() != i) {
            CHECK_EQ(patchme(), i, "patched immediate seen");
            break;
        }
    }
    CHECK_EQ(patchme(), 11, "ten patches seen");
    /* Write the next instruction of the running block: the new one must run. */
    u32 r;
    __asm__ volatile("movl $0, %%eax\n\t"
                     "movb $0x40, 1f\n\t"    /* turn the nop below into inc eax */
                     "1:\tnop\n\t"
                     "movl %%eax, %0" : "=r"(r) : : "eax", "memory");
    CHECK_EQ(r, 1, "store to the next instruction of the same block");
    /* Put it back so a second run sees a nop again. */
    __asm__ volatile("movl $5, %%eax\n\tmovb $0x90, 1f\n1:\tnop\n\tmovl %%eax, %0"
                     : "=r"(r) : : "eax", "memory");
    CHECK_EQ(r, 5, "restored nop");
    /* Code across a page boundary: mov eax, imm32 split 2|3 bytes at 0x1000, then ret. */
    u8 *p = buf + 4096 - 2;
    u32 (*fn)(void) = (u32 (*)(void))p;
    for (u32 v = 100; v < 110; v++) {
        p[0] = 0xb8;
        *(volatile u32 *)(p + 1) = v * 0x01010101u;
        p[5] = 0xc3;
        if (fn() != v * 0x01010101u) {
            CHECK_EQ(fn(), v * 0x01010101u, "cross-page code rewritten");
            break;
        }
    }
    CHECK_EQ(fn(), 109 * 0x01010101u, "cross-page code rewritten ten times");
    /* Patch only the second page's bytes. */
    *(volatile u8 *)(p + 4) = 0x7f;
    CHECK_EQ(fn(), (109 * 0x01010101u & 0x00ffffffu) | 0x7f000000u, "second page patch seen");
    /* A loop that rewrites its own loop body's immediate each iteration. */
    u32 sum = 0;
    for (u32 i = 0; i < 50; i++) {
        *(volatile u32 *)patchme_imm = i;
        sum += patchme();
    }
    CHECK_EQ(sum, 49 * 50 / 2, "patch inside a loop, 50 times");

    /* Data beside code on one page: stores there leave the code as it is. */
    u32 acc = 0;
    for (u32 i = 0; i < 20; i++) {
        mixed_data[0] = i;
        mixed_data[7] = i * 3; /* the word right before the code */
        acc += mixed();
    }
    CHECK_EQ(acc, 20 * 7 + 19 * 20 / 2, "data stores beside code, code unchanged");
    /* Those were 40 writes beside code: xbt made the page data again at the 4th (its
       translations dropped, the writes after it plain stores until mixed runs again)
       and the 8th, then keeps each write a round of its own.  Code written now, right
       after more data writes, must run as written: addl $9. */
    for (u32 i = 0; i < 9; i++)
        mixed_data[1] = i;
    ((volatile u8 *)(void *)mixed)[7] = 9;
    mixed_data[0] = 100;
    CHECK_EQ(mixed(), 109, "code patched after many writes beside it: the new immediate");
    ((volatile u8 *)(void *)mixed)[7] = 7;
    mixed_data[0] = 0;
    CHECK_EQ(mixed(), 7, "and patched back");
    /* One string store from the first page's data into the second's, both pages holding
       code that ran: then code patched on the first page must run as written (xbt steps
       the store with the first page writable; until 2026-12-05 the second page's fault
       replaced the first page's snapshot, and the first stayed writable with its
       translation: the patch went unseen). */
    CHECK_EQ(two_a() + two_b(), 33, "two pages of code and data");
    u8 *dst = two_data + 8;
    u32 cnt = 16;
    __asm__ volatile("cld\n\trep stosb" : "+D"(dst), "+c"(cnt) : "a"(0x5a) : "memory");
    CHECK_EQ(two_data[8] + two_data[23], 2 * 0x5a, "the store across both pages' data");
    CHECK_EQ(two_a() + two_b(), 33, "both pages' code unchanged");
    ((volatile u8 *)(void *)two_a)[1] = 44;
    CHECK_EQ(two_a(), 44, "code patched on the first page after the store: the new immediate");
    /* One REP STOSB over the data and into the code: the new code must run.  The
       first 32 bytes become 0x90 (nop) and so do the first 10 bytes of mixed
       (movl moffs, %eax = 5 bytes; addl $7, %eax = 3 bytes), leaving ret. */
    u8 *start = (u8 *)mixed_data;
    u32 n = 32 + 8;
    __asm__ volatile("cld\n\trep stosb" : "+D"(start), "+c"(n) : "a"(0x90) : "memory");
    u32 r2;
    __asm__ volatile("movl $1234, %%eax\n\tcall mixed\n\tmovl %%eax, %0" : "=r"(r2) : : "eax", "memory");
    CHECK_EQ(r2, 1234, "rep stos over data and code: the nops run");
}
