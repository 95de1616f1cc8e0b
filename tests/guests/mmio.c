/*
 * mmio.c - memory-mapped I/O: QEMU's pc-testdev scratch block at 0xff000000 (64 KiB
 * that reads back what was written; xbt-run provides the same block), accessed with
 * 8/16/32-bit MOV, MOVZX and MOVSX, with paging off and through a paged mapping.
 */
#include "lib/guest.h"

#define IOMEM 0xff000000u

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[1024] __attribute__((aligned(4096)));
static u32 pt_io[1024] __attribute__((aligned(4096)));

void main(void)
{
    volatile u32 *d = (volatile u32 *)IOMEM;
    volatile u16 *w = (volatile u16 *)(IOMEM + 0x100);
    volatile u8 *b = (volatile u8 *)(IOMEM + 0x200);
    d[0] = 0x12345678;
    d[1] = 0xcafef00d;
    CHECK_EQ(d[0], 0x12345678, "mmio dword write/read");
    CHECK_EQ(d[1], 0xcafef00d, "mmio second dword");
    *w = 0xbeef;
    CHECK_EQ(*w, 0xbeef, "mmio word");
    *b = 0x80;
    CHECK_EQ(*b, 0x80, "mmio byte");
    s32 sx;
    __asm__ volatile("movsbl (%1), %0" : "=r"(sx) : "r"(b));
    CHECK_EQ(sx, 0xffffff80, "movsx from mmio");
    u32 zx;
    __asm__ volatile("movzwl (%1), %0" : "=r"(zx) : "r"(w));
    CHECK_EQ(zx, 0xbeef, "movzx from mmio");
    u32 ab = 0;
    __asm__ volatile("movl %%eax, %%eax; movb $0x5a, (%1); movb (%1), %%ah" : "+a"(ab) : "r"(b + 1));
    CHECK_EQ((ab >> 8) & 0xff, 0x5a, "mmio into ah");

    /* String instructions: one element per access, registers show the progress. */
    u32 c = 8;
    volatile u32 *sd = (volatile u32 *)(IOMEM + 0x400);
    u32 *pdst = (u32 *)(IOMEM + 0x400);
    __asm__ volatile("cld; rep stosl" : "+D"(pdst), "+c"(c) : "a"(0xa5a5a5a5u) : "memory");
    CHECK(sd[0] == 0xa5a5a5a5u && sd[7] == 0xa5a5a5a5u, "rep stosl to mmio");
    CHECK_EQ((u32)pdst, IOMEM + 0x420, "rep stosl: edi advanced");
    static u8 ram_src[16] = "xbt mmio movs!!";
    u8 *ps = ram_src, *pd8 = (u8 *)(IOMEM + 0x500);
    c = 16;
    __asm__ volatile("cld; rep movsb" : "+S"(ps), "+D"(pd8), "+c"(c) : : "memory");
    u32 same = 1;
    for (int i = 0; i < 16; i++) {
        u8 m = *(volatile u8 *)(IOMEM + 0x500 + i); /* plain loads: MMIO takes MOV only */
        same &= m == ram_src[i];
    }
    CHECK(same, "rep movsb ram to mmio");
    static u32 ram_dst[8];
    u32 *ps32 = (u32 *)(IOMEM + 0x400), *pd32 = ram_dst + 7;
    ps32 += 7;
    c = 8;
    __asm__ volatile("std; rep movsl; cld" : "+S"(ps32), "+D"(pd32), "+c"(c) : : "memory");
    CHECK(ram_dst[0] == 0xa5a5a5a5u && ram_dst[7] == 0xa5a5a5a5u, "rep movsl mmio to ram, backwards");
    CHECK_EQ((u32)ps32, IOMEM + 0x400 - 4, "movsl backwards: esi");
    u32 acc = 0xffffff00u;
    u8 *pl = (u8 *)(IOMEM + 0x500);
    __asm__ volatile("cld; lodsb" : "+a"(acc), "+S"(pl) : : "memory");
    CHECK_EQ(acc, 0xffffff78u, "lodsb from mmio keeps the upper eax");

    /* Read-modify-write, compares and pure stores on MMIO (the generic path). */
    volatile u32 *g = (volatile u32 *)(IOMEM + 0x600);
    g[0] = 40;
    __asm__ volatile("addl $2, %0" : "+m"(g[0]) : : "cc");
    CHECK_EQ(g[0], 42, "add to mmio (read, add, write)");
    __asm__ volatile("orb $0x80, %0" : "+m"(*(volatile u8 *)&g[0]) : : "cc");
    CHECK_EQ(g[0], 0xaa, "orb to mmio");
    u8 eq = 0, below = 0;
    __asm__ volatile("cmpl $0xaa, %2\n\tsete %0\n\tcmpl $0xab, %2\n\tsetb %1"
                     : "=r"(eq), "=r"(below) : "m"(g[0]) : "cc");
    CHECK(eq == 1 && below == 1, "cmp with mmio sets the flags");
    u32 x = 0x11223344;
    __asm__ volatile("xchgl %0, %1" : "+r"(x), "+m"(g[1]) : : "memory");
    CHECK(x == g[1] || g[1] == 0x11223344, "xchg with mmio");
    CHECK_EQ(g[1], 0x11223344, "xchg: the register went to mmio");
    __asm__ volatile("incl %0" : "+m"(g[1]) : : "cc");
    CHECK_EQ(g[1], 0x11223345, "inc of mmio");
    __asm__ volatile("btsl $31, %0" : "+m"(g[1]) : : "cc");
    CHECK_EQ(g[1], 0x91223345, "bts on mmio");
    __asm__ volatile("movl $0, %%eax\n\ttestl %%eax, %%eax\n\tsetz %0"
                     : "=m"(*(volatile u8 *)&g[2]) : : "eax", "cc");
    CHECK_EQ(*(volatile u8 *)&g[2], 1, "setz into mmio (a pure store)");

    /* Through paging: VA 0x80000000 -> the MMIO block. */
    for (u32 i = 0; i < 1024; i++)
        pt[i] = (i << 12) | 3;
    pd[0] = (u32)pt | 3;
    for (u32 i = 0; i < 16; i++)
        pt_io[i] = (IOMEM + (i << 12)) | 3;
    pd[0x200] = (u32)pt_io | 3;
    /* identity for the kernel: 0..4 MiB is enough for this image */
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");
    volatile u32 *vd = (volatile u32 *)0x80000000u;
    CHECK_EQ(vd[0], 0x12345678, "mmio read through a paged mapping");
    vd[2] = 0x0badcafe;
    __asm__ volatile("subl $1, %0" : "+m"(vd[3]) : : "cc");
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    CHECK_EQ(d[2], 0x0badcafe, "mmio write through a paged mapping");
    CHECK_EQ(d[3], 0xffffffffu, "sub on mmio through a paged mapping");
}
