/*
 * wrap.c - addresses that wrap at 4 GiB: string instructions whose ESI/EDI pass
 * through 0 going down (DF=1) or past 0xFFFFFFFF going up, with and without REP, in
 * byte and dword sizes (MOVS, STOS, LODS, CMPS, SCAS), a page fault half way through
 * such a wrap (ECX, EDI and CR2 as the CPU leaves them), and the stack through an SS
 * with a non-zero base whose ESP wraps below 0: PUSH, POP, PUSH/POP m, CALL, RET,
 * RET n, PUSHA/POPA, PUSHF/POPF, ENTER/LEAVE.
 *
 * Paging maps linear page 0 and linear page 0xFFFFF000 to two pages of this kernel, so
 * both sides of the wrap are RAM on every peer.  An element that itself straddles
 * 0xFFFFFFFF/0 is not tested: the SDM leaves that to the implementation.
 */
#include "lib/guest.h"

#define P 1u
#define W 2u

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));  /* identity 0..16 MiB, but page 0 */
static u32 pt_top[1024] __attribute__((aligned(4096))); /* 0xFFC00000..: the last page */
static u8 low[4096] __attribute__((aligned(4096)));     /* linear 0x00000000 */
static u8 high[4096] __attribute__((aligned(4096)));    /* linear 0xFFFFF000 */
static u8 ss_area[4096] __attribute__((aligned(4096))); /* the based stack */

#define HI(off) (0xFFFFF000u + (off)) /* linear address in `high` */
#define SEL_SSB 0x68                  /* data, base ss_area + 0x800 */
#define SS_BASE ((u32)ss_area + 0x800)

static volatile u32 pf_count, pf_cr2, pf_err, pf_ecx, pf_edi;


static void pf_handler(struct frame *f)
{
    pf_count++;
    pf_cr2 = read_cr2();
    pf_err = f->err;
    pf_ecx = f->ecx;
    pf_edi = f->edi;
    f->eip = fault.resume;
    fault.resume = 0;
}

static void clear(void)
{
    memset(low, 0, sizeof low);
    memset(high, 0, sizeof high);
}

static int all(const u8 *p, u32 n, u8 v)
{
    for (u32 i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void strings_down_through_zero(void)
{
    clear();
    u32 d = 8, c = 16;
    __asm__ volatile("std; rep stosb; cld" : "+D"(d), "+c"(c) : "a"(0xab) : "memory");
    CHECK_EQ(d, 0xfffffff8u, "std; rep stosb through 0: edi");
    CHECK_EQ(c, 0, "std; rep stosb through 0: ecx");
    CHECK(all(low, 9, 0xab) && low[9] == 0, "rep stosb down: bytes 8..0 written");
    CHECK(all(high + 0xff9, 7, 0xab) && high[0xff8] == 0, "rep stosb down: 0xffffffff..f9 written");

    /* MOVSD going down, the source passing 0: [4], [0], [-4], [-8]. */
    clear();
    for (u32 i = 0; i < 8; i++)
        ((u32 *)low)[i] = 0x1000 + i;
    ((u32 *)high)[1023] = 0x2000;
    ((u32 *)high)[1022] = 0x2001;
    u32 s = 4;
    d = 0x40c;
    c = 4;
    __asm__ volatile("std; rep movsl; cld" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    u32 *o = (u32 *)(low + 0x400);
    CHECK(o[3] == 0x1001 && o[2] == 0x1000 && o[1] == 0x2000 && o[0] == 0x2001,
          "std; rep movsd: source wraps below 0");
    CHECK_EQ(s, 0xfffffff4u, "std; rep movsd: esi");
    CHECK_EQ(d, 0x3fc, "std; rep movsd: edi");

    /* REPNE SCASB going down finds a byte just below 0. */
    clear();
    high[0xffd] = 0x77;
    d = 3;
    c = 32;
    u8 zf;
    __asm__ volatile("std; repne scasb; setz %2; cld" : "+D"(d), "+c"(c), "=q"(zf)
                     : "a"(0x77) : "memory", "cc");
    CHECK(zf, "std; repne scasb through 0: found");
    CHECK_EQ(c, 25, "std; repne scasb: ecx");
    CHECK_EQ(d, 0xfffffffcu, "std; repne scasb: edi");

    /* One LODSB at 0 going down. */
    low[0] = 0x5c;
    u32 a = 0;
    s = 0;
    __asm__ volatile("std; lodsb; cld" : "+S"(s), "+a"(a) : : "memory");
    CHECK(s == 0xffffffffu && a == 0x5c, "std; lodsb at 0: esi 0xffffffff");
}

static void strings_up_past_the_top(void)
{
    /* MOVSB from 0xfffffff8 on: the source passes the top into page 0. */
    clear();
    for (u32 i = 0; i < 8; i++) {
        high[0xff8 + i] = (u8)(0x10 + i);
        low[i] = (u8)(0x20 + i);
    }
    u32 s = HI(0xff8), d = 0x100, c = 16;
    __asm__ volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    CHECK(low[0x100] == 0x10 && low[0x107] == 0x17 && low[0x108] == 0x20 && low[0x10f] == 0x27,
          "rep movsb: source past 0xffffffff");
    CHECK(s == 8 && d == 0x110 && c == 0, "rep movsb past the top: esi, edi, ecx");

    /* MOVSD whose destination passes the top. */
    clear();
    for (u32 i = 0; i < 8; i++)
        ((u32 *)(low + 0x200))[i] = 0x3000 + i;
    s = 0x200;
    d = HI(0xff0);
    c = 8;
    __asm__ volatile("cld; rep movsl" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    CHECK(((u32 *)high)[1020] == 0x3000 && ((u32 *)high)[1023] == 0x3003 &&
          ((u32 *)low)[0] == 0x3004 && ((u32 *)low)[3] == 0x3007, "rep movsd: destination wraps");
    CHECK_EQ(d, 0x10, "rep movsd past the top: edi");

    /* STOSB ending exactly at the top: EDI becomes 0, nothing written at 0. */
    clear();
    d = HI(0xff0);
    c = 16;
    __asm__ volatile("cld; rep stosb" : "+D"(d), "+c"(c) : "a"(0x66) : "memory");
    CHECK(d == 0 && all(high + 0xff0, 16, 0x66) && low[0] == 0, "rep stosb ending at 4 GiB");

    /* REPE CMPSB across the top, a difference two bytes after it. */
    clear();
    for (u32 i = 0; i < 16; i++)
        low[0x500 + i] = (u8)(0x40 + i);
    for (u32 i = 0; i < 4; i++)
        high[0xffc + i] = (u8)(0x40 + i);
    for (u32 i = 0; i < 12; i++)
        low[i] = (u8)(0x44 + i);
    low[2] ^= 0xff;
    s = HI(0xffc);
    d = 0x500;
    c = 16;
    u8 zf;
    __asm__ volatile("cld; repe cmpsb; setz %3" : "+S"(s), "+D"(d), "+c"(c), "=q"(zf)
                     : : "memory", "cc");
    CHECK(!zf && c == 9 && s == 3 && d == 0x507, "repe cmpsb across the top stops at the difference");

    /* One LODSD at 0xfffffffc going up. */
    ((u32 *)high)[1023] = 0xcafef00d;
    u32 a;
    s = HI(0xffc);
    __asm__ volatile("cld; lodsl" : "+S"(s), "=a"(a) : : "memory");
    CHECK(s == 0 && a == 0xcafef00d, "lodsd at 0xfffffffc: esi 0");

    /* Low addresses with a count larger than the address (no wrap). */
    for (u32 i = 0; i < 0x40; i++)
        low[0x600 + i] = (u8)i;
    s = 0x600;
    d = 0x20;
    c = 0x40;
    __asm__ volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    CHECK(low[0x20] == 0 && low[0x5f] == 0x3f && d == 0x60, "rep movsb below its count");
}

static void fault_in_a_wrap(void)
{
    /* The page below 0 is not present: the fault comes at 0xffffffff, 5 bytes done. */
    clear();
    pt_top[1023] = 0;
    invlpg(HI(0));
    u32 d = 4, c = 16;
    pf_count = 0;
    __asm__ volatile("movl $1f, fault+16\n\tmovl $2f, fault+20\n\tstd\n"
                     "1:\trep stosb\n2:\tcld" : "+D"(d), "+c"(c) : "a"(0x99) : "memory", "cc");
    CHECK_EQ(pf_count, 1, "#PF in a rep stosb that wraps");
    CHECK_EQ(pf_cr2, 0xffffffffu, "#PF cr2 0xffffffff");
    CHECK_EQ(pf_err, 2, "#PF error: write, not present");
    CHECK_EQ(pf_ecx, 11, "#PF: ecx shows 5 stores done");
    CHECK_EQ(pf_edi, 0xffffffffu, "#PF: edi wrapped");
    CHECK(all(low, 5, 0x99) && low[5] == 0, "the stores before the fault landed");
    pt_top[1023] = (u32)high | P | W;
    invlpg(HI(0));
}

/* Results of the based-stack block (read through DS). */
static volatile u32 r_call, r_label, r_pushm, r_ret4, r_popa, r_enter, r_ebp, r_esp, r_flags;
static volatile u32 saved_esp __attribute__((used)), saved_ebp __attribute__((used)); /* the asm's */

static void stack_with_ss_base(void)
{
    memset(ss_area, 0, sizeof ss_area);
    gdt_set(13, SS_BASE, 0xfffff, 0x92, 0xc);
    gdt_reload();
    cli();
    __asm__ volatile(
        "movl %%esp, saved_esp\n\tmovl %%ebp, saved_ebp\n\t"
        "movw $0x68, %%ax\n\tmovw %%ax, %%ss\n\tmovl $8, %%esp\n\t"
        "pushl $0x11111111\n\t"          /* esp 4 */
        "pushl $0x22222222\n\t"          /* esp 0 */
        "pushl $0x33333333\n\t"          /* esp -4: wrapped */
        "call 1f\n"                      /* return address at -8 */
        "1:\tpopl %%eax\n\t"
        "movl %%eax, r_call\n\tmovl $1b, r_label\n\t"
        "pushl (%%esp)\n\t"              /* push m: SS:[esp] */
        "popl %%ebx\n\tmovl %%ebx, r_pushm\n\t"
        "pushl $0x55555555\n\t"          /* ret 4 releases it */
        "call 2f\n\tjmp 3f\n"
        "2:\tret $4\n"
        "3:\tmovl %%esp, r_ret4\n\t"
        "movl $0xa1, %%eax\n\tmovl $0xb2, %%ebx\n\tmovl $0xc3, %%ecx\n\tmovl $0xd4, %%edx\n\t"
        "pushal\n\t"
        "xorl %%eax, %%eax\n\txorl %%ebx, %%ebx\n\txorl %%ecx, %%ecx\n\txorl %%edx, %%edx\n\t"
        "popal\n\t"
        "leal (%%eax,%%ebx), %%eax\n\tleal (%%eax,%%ecx), %%eax\n\tleal (%%eax,%%edx), %%eax\n\t"
        "movl %%eax, r_popa\n\t"
        "pushfl\n\torl $0x1, (%%esp)\n\tpopfl\n\t"   /* CF through the based stack */
        "pushfl\n\tpopl %%eax\n\tmovl %%eax, r_flags\n\tclc\n\t"
        "movl $0x10, %%ebp\n\t"
        "movl $0x77777777, %%edx\n\tmovl %%edx, %%ss:0xc\n\t"  /* SS:[ebp - 4] */
        "enter $8, $2\n\t"               /* copies SS:[ebp - 4], pushes the frame */
        "movl %%ebp, r_ebp\n\t"
        "movl -4(%%ebp), %%eax\n\tmovl %%eax, r_enter\n\t"
        "leave\n\t"
        "popl %%eax\n\tpopl %%eax\n\tpopl %%eax\n\t"  /* the three pushes: esp 8 */
        "movl %%esp, r_esp\n\t"
        "movw $0x10, %%ax\n\tmovw %%ax, %%ss\n\tmovl saved_esp, %%esp\n\t"
        "movl saved_ebp, %%ebp"
        : : : "eax", "ebx", "ecx", "edx", "esi", "edi", "memory", "cc");
    u32 *m = (u32 *)SS_BASE;
    CHECK_EQ(m[1], 0x11111111, "push with an SS base: esp 4 -> base + 4");
    CHECK_EQ(m[0], 0x22222222, "push: esp 0 -> base");
    CHECK_EQ(m[-1], 0x33333333, "push wrapping below 0 -> base - 4");
    CHECK_EQ(r_call, r_label, "call pushed its return address through SS");
    CHECK_EQ(m[-2], 0x10, "enter pushed ebp at base - 8 (where call's return address was)");
    CHECK_EQ(r_pushm, 0x33333333, "push m / pop through SS:[esp]");
    CHECK_EQ(r_ret4, 0xfffffffcu, "ret 4 with a wrapped esp");
    CHECK_EQ(r_popa, 0xa1 + 0xb2 + 0xc3 + 0xd4, "pushad/popad through SS");
    CHECK(r_flags & 1, "pushfd/popfd through SS");
    CHECK_EQ(r_ebp, 0xfffffff8u, "enter: ebp = the frame (esp - 4)");
    CHECK_EQ(r_enter, 0x77777777, "enter level 2 copied SS:[ebp - 4]");
    CHECK_EQ(r_esp, 8, "leave and pops back to esp 8");
}

void main(void)
{
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | P | W;
    pt[0][0] = (u32)low | P | W;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | P | W;
    pd[1023] = (u32)pt_top | P | W;
    pt_top[1023] = (u32)high | P | W;
    set_handler(14, pf_handler);
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");
    *(volatile u32 *)HI(0xffc) = 0x12345678;
    CHECK_EQ(((volatile u32 *)high)[1023], 0x12345678, "linear 0xfffffffc is the high page");

    strings_down_through_zero();
    strings_up_past_the_top();
    fault_in_a_wrap();
    stack_with_ss_base();
    guest_exit();
}
