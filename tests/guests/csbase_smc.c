/*
 * csbase_smc.c - self-modifying code in a code segment whose base is not page-aligned
 * (base 0x800): a block whose EIPs lie on one page (0x7f0..0x811) has its bytes on two
 * linear pages (0xff0 of one page .. 0x11 of the next).  Writes to either page must
 * reach the code that runs next.  xbt took the block's first physical page from its
 * translator's last fetch, the second page's, so the first page was never protected
 * for it and the second page's check looked at the wrong offsets: both writes went
 * unseen (found by review).  Real-mode and virtual-8086 code, whose CS base is the
 * selector times 16, is mostly like this.
 */
#include "lib/guest.h"

#define BASE 0x800u
#define AT 0xff0u /* the code's offset in cbuf, 16 bytes before its second page */
#define SEL (13 << 3)

static u8 cbuf[8192] __attribute__((aligned(4096)));

struct __attribute__((packed)) farptr {
    u32 off;
    u16 sel;
};

/* A far call into the code through the segment at BASE: EAX is what it leaves. */
static u32 call_code(void)
{
    struct farptr fp = { (u32)cbuf + AT - BASE, SEL };
    u32 r;
    __asm__ volatile("lcall *%1" : "=a"(r) : "m"(fp) : "memory", "cc");
    return r;
}

void main(void)
{
    gdt_set(13, BASE, 0xfffff, 0x9a, 0xc); /* 32-bit code, base 0x800, 4 GiB */
    u8 *c = cbuf + AT;
    c[0] = 0xb8, c[1] = 1, c[2] = 0, c[3] = 0, c[4] = 0; /* movl $1, %eax */
    for (int i = 5; i < 0x20; i++)
        c[i] = 0x90; /* NOPs over the page boundary at cbuf + 0x1000 */
    c[0x20] = 0x40;  /* incl %eax, on the second page */
    c[0x21] = 0xcb;  /* lret */
    u32 r = 0;
    for (int i = 0; i < 3; i++)
        r = call_code();
    CHECK_EQ(r, 2, "the code runs: 1 + 1");
    *(volatile u8 *)(c + 1) = 5; /* first page: movl $5 */
    r = call_code();
    CHECK_EQ(r, 6, "a write to the first linear page is seen");
    *(volatile u8 *)(c + 0x20) = 0x90; /* second page: incl -> NOP */
    r = call_code();
    CHECK_EQ(r, 5, "a write to the second linear page is seen");
    *(volatile u8 *)(c + 0x1f) = 0x48; /* second page, offset 0xf: decl before the NOP */
    r = call_code();
    CHECK_EQ(r, 4, "a write at the second page's offset 0xf is seen");
    guest_exit();
}
