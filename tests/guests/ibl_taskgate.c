/*
 * ibl_taskgate.c - an indirect call's inline lookup entry and a region's new mapping:
 * the page it calls is remapped and made known (INVLPG; then a CR0.WP write, which
 * changes every mapping), and the very next instruction's #DB (EFLAGS.TF) goes through a
 * task gate whose directory does not map the region, then IRET back.  The calls after
 * must run the new frame's code.  (xbt keeps a region's lookup entries while it is
 * absent and puts them back when it returns as it was; entries whose forgetting was
 * still pending were kept and put back: found in review, 2026-12-05.)
 */
#include "lib/guest.h"

struct tss32 tss_main, tss_h;
static u8 hstack[4096] __attribute__((aligned(16)));
static u32 pd_a[1024] __attribute__((aligned(4096))), pd_t[1024] __attribute__((aligned(4096)));
static u32 pt_id[4][1024] __attribute__((aligned(4096))), pt_r[1024] __attribute__((aligned(4096)));
static u8 fa[4096] __attribute__((aligned(4096))), fb[4096] __attribute__((aligned(4096)));
volatile u32 h_count;
void h_entry(void);
__asm__(".text\n.globl h_entry\nh_entry:\n\tandl $0xfffffeff, tss_main+36\n\tincl h_count\n"
        "\tiret\n\tjmp h_entry\n");

#define SEL_TSSM (13 << 3)
#define SEL_TSSH (14 << 3)
#define X 0x40000000u

static u32 (*volatile fnp)(void);
static __attribute__((noinline)) u32 call_x(void)
{
    u32 r = fnp();
    __asm__ volatile("" ::: "memory");
    return r;
}

void main(void)
{
    identity_16m(pd_a, pt_id);
    for (int i = 0; i < 4; i++)
        pd_t[i] = pd_a[i];
    const u8 code[6] = { 0xb8, 1, 0, 0, 0, 0xc3 }; /* mov eax, 1; ret */
    memcpy(fa, code, 6);
    memcpy(fb, code, 6);
    fb[1] = 2;
    pt_r[0] = (u32)fa | 3;
    pd_a[X >> 22] = (u32)pt_r | 3;
    tss_main.cr3 = (u32)pd_a;
    tss_main.iomap = sizeof tss_main;
    gdt_set(13, (u32)&tss_main, sizeof tss_main - 1, 0x89, 0);
    u32 fs, gs;
    __asm__ volatile("movl %%fs, %0; movl %%gs, %1" : "=r"(fs), "=r"(gs));
    tss_h.eip = (u32)h_entry;
    tss_h.esp = (u32)hstack + sizeof hstack;
    tss_h.eflags = 2;
    tss_h.cs = SEL_CODE;
    tss_h.ss = tss_h.ds = tss_h.es = SEL_DATA;
    tss_h.fs = (u16)fs, tss_h.gs = (u16)gs;
    tss_h.cr3 = (u32)pd_t;
    tss_h.iomap = sizeof tss_h;
    gdt_set(14, (u32)&tss_h, sizeof tss_h - 1, 0x89, 0);
    __asm__ volatile("ltr %w0" : : "r"((u16)SEL_TSSM));
    idt[1] = ((u64)SEL_TSSH << 16) | ((u64)0x85 << 40); /* #DB: a task gate */
    paging_on_pse(pd_a);
    write_cr0(read_cr0() | 8); /* TS, as the handler task will have it (one mode key) */
    fnp = (u32 (*)(void))X;
    for (int round = 0; round < 2; round++) {
        u32 was = round ? 2 : 1, now = round ? 1 : 2, s = 0;
        for (int i = 0; i < 1000; i++)
            s += call_x();
        CHECK_EQ(s, 1000 * was, "the page's code, called indirectly until the table has it");
        pt_r[0] = (u32)(round ? fa : fb) | 3;
        if (round == 0) {
            /* INVLPG: a new epoch for the region, and at once the #DB of TF through
               the task gate to a directory without the region, and back. */
            __asm__ volatile("pushfl; orl $0x100, (%%esp); popfl; invlpg (%0); nop"
                             : : "r"(X) : "memory");
        } else {
            /* CR0.WP toggled (every translation's mapping may differ), the same. */
            u32 c0 = read_cr0() ^ 0x10000u;
            __asm__ volatile("pushfl; orl $0x100, (%%esp); popfl; mov %0, %%cr0; nop"
                             : : "r"(c0) : "memory");
        }
        CHECK_EQ(h_count, (u32)round + 1, "#DB through the task gate once");
        s = 0;
        for (int i = 0; i < 100; i++)
            s += call_x();
        CHECK_EQ(s, 100 * now, round ? "the new frame's code after a CR0.WP write and a task switch away and back"
                                     : "the new frame's code after INVLPG and a task switch away and back");
    }
}
