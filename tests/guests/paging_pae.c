/*
 * paging_pae.c - PAE paging: a 4-entry PDPT, 2 MiB pages identity-mapping the kernel,
 * 4 KiB pages through a 64-bit page table, accessed and dirty bits read back in 64-bit
 * entries, #PF error codes (not present, write protection, a reserved bit above
 * MAXPHYADDR), INVLPG after an entry change, two PDPTs in one page switched by CR3 (its
 * low bits pick the table), code run from a 4 KiB PAE page, and paging off again.
 */
#include "lib/guest.h"

#define P 1ull
#define W 2ull
#define A 0x20ull
#define D 0x40ull
#define PS 0x80ull

/* Two PDPTs in one page: CR3 = pdpts or pdpts + 0x20. */
static u64 pdpts[8] __attribute__((aligned(4096)));
static u64 pd_lo[512] __attribute__((aligned(4096)));  /* 0..1 GiB: 2 MiB identity pages */
static u64 pd_hi[512] __attribute__((aligned(4096)));  /* 1..2 GiB in the first space */
static u64 pd_hi2[512] __attribute__((aligned(4096))); /* 1..2 GiB in the second */
static u64 pt_hi[512] __attribute__((aligned(4096)));
static u64 pt_hi2[512] __attribute__((aligned(4096)));
static u64 pd_big[512] __attribute__((aligned(4096))); /* 2..3 GiB: one 2 MiB page */
static u8 frame_a[4096] __attribute__((aligned(4096)));
static u8 frame_b[4096] __attribute__((aligned(4096)));
static u8 frame_code[4096] __attribute__((aligned(4096)));
static u64 pt_mix[512] __attribute__((aligned(4096))); /* VA 0x80600000: a table */

/* A function at physical (identity-mapped) address pa: mov eax, v; ret. */
static void put_mov_ret(u32 pa, u32 v)
{
    u8 *at = (u8 *)pa;
    at[0] = 0xb8;
    __builtin_memcpy(at + 1, &v, 4);
    at[5] = 0xc3;
}


void main(void)
{
    u32 cpuid_d;
    __asm__ volatile("cpuid" : "=d"(cpuid_d) : "a"(1) : "ebx", "ecx");
    CHECK(cpuid_d & (1u << 6), "cpuid reports PAE");

    for (u32 i = 0; i < 8; i++) /* 0..16 MiB, 2 MiB pages */
        pd_lo[i] = ((u64)i << 21) | P | W | PS;
    pd_hi[0] = (u32)pt_hi | P | W;
    pd_hi2[0] = (u32)pt_hi2 | P | W;
    pd_big[0] = 0x00600000ull | P | W | PS; /* VA 0x80000000 -> 6 MiB */
    pdpts[0] = (u32)pd_lo | P;
    pdpts[1] = (u32)pd_hi | P;
    pdpts[2] = (u32)pd_big | P;
    pdpts[4] = (u32)pd_lo | P; /* the second PDPT, at +0x20 */
    pdpts[5] = (u32)pd_hi2 | P;
    pt_hi[0] = (u32)frame_a | P | W;
    pt_hi2[0] = (u32)frame_b | P | W;
    frame_a[0] = 0xaa;
    frame_b[0] = 0xbb;

    write_cr3((u32)pdpts);
    write_cr4(read_cr4() | 0x20);
    u32 cr0 = read_cr0();
    write_cr0(cr0 | 0x80000000u | 0x10000u); /* PG, WP */
    CHECK(read_cr4() & 0x20, "PAE on");

    volatile u8 *va = (volatile u8 *)0x40000000u;
    CHECK_EQ(va[0], 0xaa, "4 KiB page through the PDPT, directory and table");
    CHECK((pt_hi[0] & (A | D)) == A, "read: accessed set, dirty clear in the 64-bit entry");
    CHECK(pd_hi[0] & A, "directory entry accessed");
    va[1] = 0x11;
    CHECK((pt_hi[0] & (A | D)) == (A | D), "write: dirty set");
    CHECK_EQ(frame_a[1], 0x11, "the write reached the frame");

    /* Not present, write protection, a reserved bit. */
    fault.count = 0;
    TRY_FAULT("movb 0x40001000, %%al", NOFAULT);
    CHECK(fault.vector == 14 && fault.err == 0 && read_cr2() == 0x40001000u,
          "not present: #PF, error 0");
    pt_hi[2] = (u32)frame_a | P; /* read-only alias */
    TRY_FAULT("movb $1, 0x40002000", NOFAULT);
    CHECK(fault.vector == 14 && fault.err == 3 && read_cr2() == 0x40002000u,
          "CR0.WP: a supervisor write to a read-only page faults (P|W)");
    pt_hi[3] = (u32)frame_a | P | W | (1ull << 45);
    TRY_FAULT("movb 0x40003000, %%al", NOFAULT);
    /* The SDM: RSVD implies P (reserved bits are only checked in present entries), and
       xbt reports 9; QEMU 7.2's TCG reports 8. */
    CHECK(fault.vector == 14 && (fault.err & ~1u) == 8 && read_cr2() == 0x40003000u,
          "a reserved bit above MAXPHYADDR: #PF with RSVD");

    /* INVLPG after a change. */
    pt_hi[0] = (u32)frame_b | P | W;
    invlpg(0x40000000u);
    CHECK_EQ(va[0], 0xbb, "invlpg: the new frame");
    pt_hi[0] = (u32)frame_a | P | W;
    invlpg(0x40000000u);

    /* The second PDPT in the same page. */
    write_cr3((u32)pdpts + 0x20);
    CHECK_EQ(va[0], 0xbb, "CR3 + 0x20: the second PDPT's mapping");
    write_cr3((u32)pdpts);
    CHECK_EQ(va[0], 0xaa, "CR3 back: the first PDPT's mapping");
    write_cr3((u32)pdpts + 0x20);
    CHECK_EQ(va[0], 0xbb, "and the second again");
    write_cr3((u32)pdpts);

    /* A 2 MiB page: dirty bit in its directory entry. */
    volatile u32 *big = (volatile u32 *)0x80001000u;
    *big = 0x12345678;
    CHECK_EQ(*(volatile u32 *)0x00601000u, 0x12345678, "2 MiB page: the write at +4 KiB");
    CHECK((pd_big[0] & (A | D)) == (A | D), "2 MiB page: accessed and dirty");

    /* Code on a 4 KiB PAE page: mov eax, 0x5a5a; ret. */
    static const u8 fn[6] = { 0xb8, 0x5a, 0x5a, 0x00, 0x00, 0xc3 };
    for (int i = 0; i < 6; i++)
        frame_code[i] = fn[i];
    pt_hi[5] = (u32)frame_code | P;
    invlpg(0x40005000u);
    u32 (*code)(void) = (u32 (*)(void))0x40005000u;
    CHECK_EQ(code(), 0x5a5a, "code run from a 4 KiB PAE page");
    frame_code[1] = 0x77; /* through the identity mapping: self-modifying code */
    CHECK_EQ(code(), 0x5a77, "and rewritten through another mapping");

    /* Code on a 2 MiB page in a 4 MiB region whose other half is a page table: INVLPG
       of another 4 KiB page of the 2 MiB page flushes it (one TLB entry; xbt makes the
       whole half live, shadow-mmu/window.c), and an entry changed and back between
       two CR3 loads with code run under the other: the current frame's code.  QEMU 7.2
       TCG forgets its jump cache only for the page an INVLPG names: either there. */
    {
        typedef u32 (*fn_t)(void);
        put_mov_ret(0x00800100u, 1);
        put_mov_ret(0x00a00100u, 2);
        put_mov_ret(0x00800200u, 10);
        put_mov_ret(0x00a00200u, 20);
        pd_big[2] = 0x00800000ull | P | W | PS; /* VA 0x80400000: 8 MiB, or 10 MiB */
        pd_big[3] = (u32)pt_mix | P | W;        /* VA 0x80600000: a table */
        pt_mix[0] = (u32)frame_a | P | W;
        invlpg(0x80400000u);
        invlpg(0x80600000u);
        fn_t at100 = (fn_t)0x80400100u, at200 = (fn_t)0x80400200u;
        u32 sum = 0;
        for (int i = 0; i < 20; i++)
            sum += at100();
        CHECK_EQ(sum, 20, "2 MiB page beside a table: its code");
        CHECK_EQ(*(volatile u8 *)0x80600000u, 0xaa, "and the table's page");
        pd_big[2] = 0x00a00000ull | P | W | PS;
        invlpg(0x80405000u);
        u32 got = at100();
        if (on_qemu_tcg())
            CHECK(got == 2 || got == 1, "INVLPG elsewhere in the 2 MiB page: either (QEMU)");
        else
            CHECK_EQ(got, 2, "INVLPG elsewhere in the 2 MiB page: the new frame's code");
        pd_big[2] = 0x00800000ull | P | W | PS;
        write_cr3((u32)pdpts);
        CHECK_EQ(at100(), 1, "CR3 loaded: the first frame again");
        pd_big[2] = 0x00a00000ull | P | W | PS; /* no flush: either frame may run */
        (void)at200();
        pd_big[2] = 0x00800000ull | P | W | PS;
        write_cr3((u32)pdpts);
        CHECK_EQ(at200(), 10, "2 MiB page changed and back between CR3 loads: the first frame");
    }

    /* Paging off, PAE off. */
    write_cr0(cr0 & ~0x80000000u);
    write_cr4(read_cr4() & ~0x20u);
    CHECK(!(read_cr0() & 0x80000000u) && !(read_cr4() & 0x20), "paging and PAE off again");
    CHECK_EQ(frame_a[0], 0xaa, "physical memory as it was");
}
