/*
 * eip_alias.c - one linear address, many code pages behind it, as the processes of a
 * system with address-space randomization map ld.so and libc where other processes
 * had other code (issue 17).  xbt keys translations by EIP and checks, before one
 * runs, that its linear pages still map the physical pages it was translated from;
 * one that fails the check stays cached as an alias of its EIP (for the next address
 * space that maps those pages there), and a lookup walks the EIP's aliases for the one
 * that passes.  Here VA's page maps one of NF code frames and VA + 4 KiB one of NF2,
 * switched by INVLPG or by a CR3 load between calls.  Every call must run the code the
 * tables name now: a direct CALL (chained), an indirect one (the inline lookup), a
 * block that jumps within its page, and a block whose bytes span both pages (an alias
 * of it is right only when both of its pages are).  Then more frames than xbt keeps
 * aliases of, and frames rewritten through their identity mapping (every alias of
 * their bytes must go).
 *
 * ctest bounds xbt's translations (run-guest.sh XBT_BLOCKS_MAX): the first phase's six
 * frames come back round after round, so their translations are made once.
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define VA 0x40000000u /* pt_hi's 4 MiB: VA's page and the next */
#define NF 12          /* frames for VA's page */
#define NF2 3          /* frames for the next page */

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096))); /* identity 0..16 MiB */
static u32 pt_hi[1024] __attribute__((aligned(4096)));
static u8 code1[NF][4096] __attribute__((aligned(4096)));
static u8 code2[NF2][4096] __attribute__((aligned(4096)));

/* What each piece of frame k (and j) returns. */
static u32 val_a[NF], val_b[NF], val_c[NF], val_d[NF2];

static void put32(u8 *p, u32 v)
{
    p[0] = (u8)v, p[1] = (u8)(v >> 8), p[2] = (u8)(v >> 16), p[3] = (u8)(v >> 24);
}

static void make_frame(u32 k)
{
    u8 *c = code1[k];
    memset(c, 0xcc, 4096);
    val_a[k] = 0xA000 + k;
    c[0x100] = 0xb8, put32(c + 0x101, val_a[k]), c[0x105] = 0xc3; /* mov eax, A; ret */
    val_b[k] = 0xB0000 + (k << 8) + 0x33;
    c[0x200] = 0xb8, put32(c + 0x201, 0xB0000 + (k << 8)); /* mov eax, B0 */
    c[0x205] = 0xeb, c[0x206] = 0x40 - 7;                 /* jmp 0x240 */
    c[0x240] = 0x05, put32(c + 0x241, 0x33), c[0x245] = 0xc3; /* add eax, 0x33; ret */
    val_c[k] = (k + 1) << 16;
    c[0xff9] = 0xb8, put32(c + 0xffa, val_c[k]); /* mov eax, C: the bytes to 0xffd */
    c[0xffe] = 0x90, c[0xfff] = 0x90;            /* nop; nop; the rest on the next page */
}

static void make_frame2(u32 j)
{
    u8 *c = code2[j];
    memset(c, 0xcc, 4096);
    val_d[j] = (j + 1) * 0x11;
    c[0] = 0x05, put32(c + 1, val_d[j]), c[5] = 0xc3; /* add eax, D; ret */
}

/* VA's page onto frame k, the next onto frame j; the TLB flushed by a CR3 load or by
   INVLPG of both pages. */
static void map(u32 k, u32 j, int by_cr3)
{
    pt_hi[0] = (u32)code1[k] | P;
    pt_hi[1] = (u32)code2[j] | P;
    if (by_cr3) {
        write_cr3((u32)pd);
    } else {
        invlpg(VA);
        invlpg(VA + 0x1000);
    }
}

static u32 call_direct_a(void)
{
    u32 v;
    __asm__ volatile("call 0x40000100" : "=a"(v) : : "memory", "cc");
    return v;
}

static u32 call_ind(u32 fn)
{
    u32 v;
    __asm__ volatile("call *%1" : "=a"(v) : "r"(fn) : "memory", "cc");
    return v;
}

static void expect(u32 got, u32 want, u32 r, u32 k, u32 j, const char *what)
{
    if (got != want && phase_miss())
        printf("  round %u frame %u/%u: %s: got %x want %x\n", r, k, j, what, got, want);
}

/* Every piece called with (k, j) mapped. */
static void calls(u32 r, u32 k, u32 j)
{
    expect(call_direct_a(), val_a[k], r, k, j, "direct call");
    expect(call_ind(VA + 0x100), val_a[k], r, k, j, "indirect call");
    expect(call_ind(VA + 0x200), val_b[k], r, k, j, "jump within the page");
    expect(call_ind(VA + 0xff9), val_c[k] + val_d[j], r, k, j, "block across both pages");
    /* The same pieces again: chained and learnt now. */
    expect(call_direct_a(), val_a[k], r, k, j, "direct call again");
    expect(call_ind(VA + 0xff9), val_c[k] + val_d[j], r, k, j, "across both pages again");
}

void main(void)
{
    identity_16m(pd, pt);
    pd[VA >> 22] = (u32)pt_hi | P | W;
    for (u32 k = 0; k < NF; k++)
        make_frame(k);
    for (u32 j = 0; j < NF2; j++)
        make_frame2(j);
    map(0, 0, 1);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u); /* PG and WP */

    /* Six frames (fewer than the aliases xbt keeps), each with its own next page, in
       an order that changes every round. */
    for (u32 r = 0; r < 40; r++)
        for (u32 i = 0; i < 6; i++) {
            u32 k = (i * 5 + r) % 6;
            map(k, k % NF2, (int)(r & 1));
            calls(r, k, k % NF2);
        }
    phase_end("six frames at one address, forty rounds: each runs its own code");

    /* Every pair of frames: the block across both pages has 36 aliases. */
    for (u32 r = 0; r < 4; r++)
        for (u32 i = 0; i < NF; i++) {
            u32 k = (i * 7 + r) % NF, j = (i + r) % NF2;
            map(k, j, (int)((r + i) & 1));
            calls(r, k, j);
        }
    phase_end("twelve frames and three next pages: more aliases than kept");

    /* Frames 2 and 5 and next page 1 rewritten (through the identity mapping, while
       VA maps another frame), then every combination once more. */
    map(0, 0, 1);
    val_a[2] = 0xA222, put32(code1[2] + 0x101, val_a[2]);
    val_c[5] = 0x550000, put32(code1[5] + 0xffa, val_c[5]);
    val_d[1] = 0x77, put32(code2[1] + 1, val_d[1]);
    for (u32 k = 0; k < NF; k++)
        for (u32 j = 0; j < NF2; j++) {
            map(k, j, (int)(k & 1));
            calls(100, k, j);
        }
    phase_end("rewritten frames: every alias of their old bytes is gone");
    guest_exit();
}
