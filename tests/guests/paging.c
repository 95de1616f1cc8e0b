/*
 * paging.c - guest paging (issue 4's first guests): identity-mapped 4 KiB pages, a
 * demand-paging #PF handler (CR2 and error codes), write protection with CR0.WP on and
 * off, accessed and dirty bits read back, INVLPG after a PTE change, two address spaces
 * switched by CR3, a 4 MiB PSE page, self-modifying code through an alias mapping, a
 * fault in the middle of REP MOVSB (the registers show the progress), paging off again.
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define A 0x20u
#define D 0x40u

static volatile u32 pd[1024] __attribute__((aligned(4096)));
static volatile u32 pd2[1024] __attribute__((aligned(4096)));
static volatile u32 pt[4][1024] __attribute__((aligned(4096)));    /* identity 0..16 MiB */
static volatile u32 pt_hi[1024] __attribute__((aligned(4096)));    /* VA 0x40000000.. */
static volatile u32 pt_hi2[1024] __attribute__((aligned(4096)));   /* the same VA in pd2 */
static volatile u32 pt_alias[1024] __attribute__((aligned(4096))); /* VA 0x50000000.. */
static volatile u32 pt_spec[1024] __attribute__((aligned(4096)));  /* VA 0x70000000.. */

/* pt_code: VA 0x60000000.., in pd and pd2 */
static u8 code_f1[4096] __attribute__((aligned(4096)));
static u8 code_f2[4096] __attribute__((aligned(4096)));
static u8 code_f3[4096] __attribute__((aligned(4096))); /* VA 0x60002000: jumps to the next page */
static u8 code_f4[4096] __attribute__((aligned(4096))); /* VA 0x60003000, then */
static u8 code_f5[4096] __attribute__((aligned(4096))); /* the same VA, remapped */
static volatile u32 pt_x[1024] __attribute__((aligned(4096)));   /* VA 0x5fc00000.. */
static u8 code_f6[4096] __attribute__((aligned(4096))); /* VA 0x5ffff000 */
static u8 code_f7[4096] __attribute__((aligned(4096))); /* VA 0x60000000, then */
static u8 code_f8[4096] __attribute__((aligned(4096))); /* the same VA, remapped */

static volatile u32 pf_count, pf_cr2, pf_err, pf_ecx, pf_edi;
static volatile int pf_map; /* the handler maps VA 0x40000000+ page it faulted on */
static volatile u32 pt_abs[1024] __attribute__((aligned(4096))); /* VA 0x74000000.. in pd */
static u8 code_a1[4096] __attribute__((aligned(4096)));
static u8 code_a2[4096] __attribute__((aligned(4096)));
static u8 code_a3[4096] __attribute__((aligned(4096)));
static u8 code_b1[4096] __attribute__((aligned(4096)));
static u8 code_b3[4096] __attribute__((aligned(4096)));
static volatile u32 pt_abs2[1024] __attribute__((aligned(4096))); /* VA 0x74000000.. in pd2 */
static volatile u32 pt_code[1024] __attribute__((aligned(4096)));
static volatile u32 pt_glob[1024] __attribute__((aligned(4096))); /* VA 0x78000000.. */
static volatile u32 pt_sz[1024] __attribute__((aligned(4096)));   /* VA 0xc1000000.. */
static u8 code_sz[4096] __attribute__((aligned(4096)));            /* VA 0xc1005000, then */
static volatile u32 data_sz[1024] __attribute__((aligned(4096)));  /* VA 0xc1007000, then */
static u8 code_i1[4096] __attribute__((aligned(4096)));            /* VA 0x5fffe000, then */
static u8 code_i2[4096] __attribute__((aligned(4096)));            /* the same VA, remapped */
static volatile u32 data_i1[1024] __attribute__((aligned(4096)));  /* VA 0x5fffd000, then */
static volatile u32 data_i2[1024] __attribute__((aligned(4096)));  /* the same VA, remapped */
static volatile u32 code_remap, code_faults; /* a fetch fault at VA 0x60004000 maps this */


/* A function at `at`: mov eax, v; ret. */
static void put_mov_ret(u8 *at, u32 v)
{
    at[0] = 0xb8;
    __builtin_memcpy(at + 1, &v, 4);
    at[5] = 0xc3;
}

/* Calls 0x74000100 with a direct CALL (chained once hot): what it returns, or
   0xffffffff where the call faulted (the handler resumes after it; the return address
   the CALL pushed is dropped). */
static __attribute__((noinline)) u32 call_abs(void)
{
    u32 v;
    __asm__ volatile("movl $0xffffffff, %%eax\n\tmovl %%esp, %%esi\n"
                     "\tmovl $1f, fault+16\n\tmovl $2f, fault+20\n"
                     "1:\tcall 0x74000100\n2:\tmovl %%esi, %%esp"
                     : "=a"(v) : : "esi", "ecx", "edx", "memory", "cc");
    fault.resume = 0;
    return v;
}

static void pf_handler(struct frame *f)
{
    pf_count++;
    pf_cr2 = read_cr2();
    pf_err = f->err;
    pf_ecx = f->ecx;
    pf_edi = f->edi;
    if (code_remap && (pf_cr2 >> 12) == 0x60004u) {
        /* Demand-paged code: the frame the test chose (the fetch is retried). */
        pt_code[4] = code_remap | P | W;
        code_faults++;
        return;
    }
    if (pf_map) {
        /* Demand paging: VA 0x40000000 + n pages -> physical 0x00800000 + n pages. */
        u32 n = (pf_cr2 - 0x40000000u) >> 12;
        pt_hi[n] = (0x00800000u + (n << 12)) | P | W;
        return; /* retry the instruction */
    }
    f->eip = fault.resume; /* an expected fault: skip, as the library's default does */
    fault.resume = 0;
}

__asm__(".text\n.globl smc_fn\n.align 4096\nsmc_fn:\n\tmovl $1, %eax\n\tret\n"
        ".globl smc_imm\n.set smc_imm, smc_fn + 1\n.align 4096\n");
u32 smc_fn(void);
extern u8 smc_imm[];
/* Two more code pages, written through writable aliases made before their first
   translation: the translation must take every such alias away (xbt's reverse map of
   writable mappings tracks two linear pages a page; a third empties every window). */
__asm__(".text\n.globl smc_fn2\n.align 4096\nsmc_fn2:\n\tmovl $1, %eax\n\tret\n"
        ".globl smc_imm2\n.set smc_imm2, smc_fn2 + 1\n.align 4096\n"
        ".globl smc_fn3\nsmc_fn3:\n\tmovl $1, %eax\n\tret\n"
        ".globl smc_imm3\n.set smc_imm3, smc_fn3 + 1\n.align 4096\n");
u32 smc_fn2(void), smc_fn3(void);
extern u8 smc_imm2[], smc_imm3[];

static void alias_poke(u32 alias_page, const u8 *imm, u32 value)
{
    *(volatile u32 *)(0x50000000u + (alias_page << 12) + ((u32)imm & 0xFFF)) = value;
}

void main(void)
{
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | P | W;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | P | W;
    pd[0x100] = (u32)pt_hi | P | W;    /* 0x40000000: nothing present yet */
    pd[0x140] = (u32)pt_alias | P | W; /* 0x50000000: alias of smc_fn's page */
    pt_alias[0] = ((u32)smc_fn & ~0xFFFu) | P | W;
    pt_alias[1] = ((u32)smc_fn2 & ~0xFFFu) | P | W; /* one alias of smc_fn2's page */
    for (u32 i = 2; i < 5; i++)                      /* three of smc_fn3's */
        pt_alias[i] = ((u32)smc_fn3 & ~0xFFFu) | P | W;
    *(volatile u32 *)0x00800000 = 0x11111111;
    *(volatile u32 *)0x00801000 = 0x22222222;
    *(volatile u32 *)0x00802000 = 0x33333333;
    *(volatile u32 *)0x00c00010 = 0x44444444;
    set_handler(14, pf_handler);

    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u);
    CHECK(read_cr0() & 0x80000000u, "paging on");
    CHECK_EQ(*(volatile u32 *)0x00800000, 0x11111111, "identity mapping reads");

    /* Demand paging: the handler maps the page and the access is retried. */
    pf_map = 1;
    u32 v = *(volatile u32 *)0x40000000;
    CHECK_EQ(v, 0x11111111, "demand-paged read");
    CHECK_EQ(pf_count, 1, "one #PF");
    CHECK_EQ(pf_cr2, 0x40000000, "#PF cr2");
    CHECK_EQ(pf_err, 0, "#PF error: not present, read, supervisor");
    *(volatile u32 *)0x40001004 = 0x5a5a5a5a;
    CHECK_EQ(pf_err, 2, "#PF error: not present, write");
    CHECK_EQ(*(volatile u32 *)0x00801004, 0x5a5a5a5a, "write reached the frame");

    /* REP INSB / OUTSB across into a page not present: the #PF comes at the page's
       first byte with EDI (ESI) and ECX showing the elements done, and the retry
       finishes (xbt moves a page's worth per exit where it can). */
    outb(0x3ff, 0x5c); /* COM1's scratch register reads back */
    (void)*(volatile u8 *)0x40005000; /* page 5 present, page 6 not */
    u32 pf_before = pf_count;
    u8 *di = (u8 *)0x40005ff8;
    u32 cx = 24;
    __asm__ volatile("cld; rep insb" : "+D"(di), "+c"(cx) : "d"(0x3ff) : "memory");
    CHECK(pf_count == pf_before + 1 && pf_cr2 == 0x40006000u && pf_err == 2,
          "rep insb into a page not present: one #PF at its first byte");
    CHECK(pf_edi == 0x40006000u && pf_ecx == 16, "rep insb: edi and ecx at the fault");
    u32 all = (u32)di == 0x40006010u && cx == 0;
    for (u32 k = 0; k < 24; k++)
        all &= *(volatile u8 *)(0x00805ff8u + k) == 0x5c;
    CHECK(all, "rep insb: every byte stored once the page is there");
    *(volatile u8 *)0x00807ffc = 0x71;
    *(volatile u8 *)0x00807ffd = 0x72;
    *(volatile u8 *)0x00807ffe = 0x73;
    *(volatile u8 *)0x00807fff = 0x74;
    *(volatile u8 *)0x00808000 = 0x75;
    *(volatile u8 *)0x00808001 = 0x76;
    (void)*(volatile u8 *)0x40007000; /* page 7 present, page 8 not */
    pf_before = pf_count;
    const u8 *si = (const u8 *)0x40007ffc;
    cx = 6;
    __asm__ volatile("cld; rep outsb" : "+S"(si), "+c"(cx) : "d"(0x3ff) : "memory");
    CHECK(pf_count == pf_before + 1 && pf_cr2 == 0x40008000u && pf_err == 0,
          "rep outsb from a page not present: one #PF at its first byte");
    CHECK_EQ(pf_ecx, 2, "rep outsb: ecx at the fault");
    CHECK((u32)si == 0x40008002u && cx == 0 && inb(0x3ff) == 0x76,
          "rep outsb: every byte out, the last one last");
    pf_map = 0;

    /* Accessed and dirty bits. */
    CHECK_EQ(pt_hi[0] & (A | D), A, "read sets A only");
    CHECK_EQ(pt_hi[1] & (A | D), A | D, "write sets A and D");
    CHECK(pd[0x100] & A, "PDE accessed");

    /* Neighbours of a filled page, none accessed yet: a CPU may cache their
       translations too (setting their accessed flags first), never a dirty flag, and
       never touches an entry that is not present (xbt maps such neighbours with the
       page: shadow-mmu/fault.c). */
    for (u32 k = 0; k < 6; k++)
        *(volatile u32 *)(0x00b00000 + k * 4096) = 0xa0a00000u + k;
    pt_spec[0] = 0x00b00000u | P | W;
    pt_spec[1] = 0x00b01000u | P | W;
    pt_spec[2] = 0x00b02000u | W | A | 0x800; /* not present: the OS's own bits */
    pt_spec[3] = 0x00b03000u | P | W;
    pt_spec[4] = 0x00b04000u | P | W | A;
    pt_spec[5] = 0x00b05000u | P | W;
    pd[0x1c0] = (u32)pt_spec | P | W;
    CHECK_EQ(*(volatile u32 *)0x70000000, 0xa0a00000u, "fresh table: the page read");
    CHECK_EQ(pt_spec[0] & (A | D), A, "fresh table: the read sets A only");
    CHECK_EQ(pt_spec[1] & D, 0, "fresh table: no D on a neighbour never written");
    CHECK_EQ(pt_spec[2], 0x00b02000u | W | A | 0x800, "fresh table: a not-present entry unchanged");
    CHECK_EQ(*(volatile u32 *)0x70001000, 0xa0a00001u, "fresh table: the neighbour's frame");
    *(volatile u32 *)0x70001004 = 0x1234;
    CHECK_EQ(pt_spec[1] & (A | D), A | D, "fresh table: the neighbour written: A and D");
    CHECK_EQ(*(volatile u32 *)0x00b01004, 0x1234, "fresh table: the write reached its frame");
    TRY_FAULT("cmpl $0, 0x70002000", NOFAULT);
    CHECK(pf_cr2 == 0x70002000 && pf_err == 0, "fresh table: the not-present neighbour faults");
    CHECK_EQ(pt_spec[2], 0x00b02000u | W | A | 0x800, "fresh table: and stays unchanged");
    *(volatile u32 *)0x70005000 = 0x5678;
    CHECK_EQ(pt_spec[5] & (A | D), A | D, "fresh table: a write fill sets A and D");
    CHECK_EQ(pt_spec[3] & D, 0, "fresh table: no D on its neighbours");
    CHECK_EQ(pt_spec[4] & D, 0, "fresh table: nor on an accessed one");
    CHECK_EQ(*(volatile u32 *)0x70003000, 0xa0a00003u, "fresh table: the other neighbour's frame");
    CHECK_EQ(*(volatile u32 *)0x70004000, 0xa0a00004u, "fresh table: and the accessed one's");
    pd[0x1c0] = 0;
    write_cr3((u32)pd);

    /* Write protection. */
    pt[2][0x100] = (0x00900000u) | P; /* VA 0x00900000 read-only */
    invlpg(0x00900000);
    write_cr0(read_cr0() | 0x10000u); /* WP */
    TRY_FAULT("movl $1, 0x00900000", NOFAULT);
    CHECK_EQ(pf_err, 3, "WP=1: kernel write to a read-only page faults (P|W)");
    CHECK_EQ(pf_cr2, 0x00900000, "WP fault cr2");
    write_cr0(read_cr0() & ~0x10000u);
    u32 before = pf_count;
    *(volatile u32 *)0x00900000 = 0x77;
    CHECK_EQ(pf_count, before, "WP=0: kernel write succeeds");
    CHECK_EQ(*(volatile u32 *)0x00900000, 0x77, "the write landed");

    /* INVLPG after retargeting a PTE. */
    pt_hi[2] = 0x00802000u | P | W;
    CHECK_EQ(*(volatile u32 *)0x40002000, 0x33333333, "mapped frame read");
    pt_hi[2] = 0x00800000u | P | W;
    invlpg(0x40002000);
    CHECK_EQ(*(volatile u32 *)0x40002000, 0x11111111, "invlpg: the new frame is seen");

    /* A second address space. */
    for (u32 i = 0; i < 1024; i++)
        pd2[i] = pd[i];
    pd2[0x100] = (u32)pt_hi2 | P | W;
    pt_hi2[2] = 0x00801000u | P | W;
    write_cr3((u32)pd2);
    CHECK_EQ(*(volatile u32 *)0x40002004, 0x5a5a5a5a, "cr3 switch: other mapping");
    write_cr3((u32)pd);
    CHECK_EQ(*(volatile u32 *)0x40002000, 0x11111111, "cr3 back: first mapping");
    /* The first address space's table changes while the second is current (no INVLPG):
       the CR3 load back flushes, so the new entry is seen, and its accessed bit, cleared
       meanwhile, is set again by the next access. */
    write_cr3((u32)pd2);
    pt_hi[2] = 0x00802000u | P | W;
    write_cr3((u32)pd);
    CHECK_EQ(*(volatile u32 *)0x40002000, 0x33333333, "changed while away: seen after the switch back");
    write_cr3((u32)pd2);
    pt_hi[2] &= ~A;
    write_cr3((u32)pd);
    CHECK_EQ(*(volatile u32 *)0x40002000, 0x33333333, "same frame after another switch");
    CHECK(pt_hi[2] & A, "accessed bit cleared while away is set again");
    pt_hi[2] = 0x00800000u | P | W;
    invlpg(0x40002000);

    /* A 4 MiB page. */
    u32 cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory");
    pd[0x300] = 0x00c00000u | 0x80 | P | W;
    invlpg(0xc0000000);
    CHECK_EQ(*(volatile u32 *)0xc0000010, 0x44444444, "4 MiB PSE page");
    CHECK(pd[0x300] & A, "PSE PDE accessed");

    /* Global pages (CR4.PGE): a CR3 load flushes the non-global entries only; INVLPG
       and turning PGE off flush global ones too.  (Whether a global entry survives a
       CR3 load depends on what the TLB holds, so only "old or new" is checked.) */
    const u32 G = 0x100;
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10 | 0x80) : "memory");
    pt_hi[8] = 0x00802000u | P | W | G;
    pt_hi[9] = 0x00802000u | P | W;
    invlpg(0x40008000);
    invlpg(0x40009000);
    CHECK_EQ(*(volatile u32 *)0x40008000, 0x33333333, "global page mapped");
    CHECK_EQ(*(volatile u32 *)0x40009000, 0x33333333, "non-global page mapped");
    pt_hi[8] = 0x00800000u | P | W | G;
    pt_hi[9] = 0x00800000u | P | W;
    write_cr3((u32)pd);
    CHECK_EQ(*(volatile u32 *)0x40009000, 0x11111111, "CR3 load flushes a non-global entry");
    u32 gv = *(volatile u32 *)0x40008000;
    CHECK(gv == 0x33333333 || gv == 0x11111111, "global entry after a CR3 load: old or new");
    invlpg(0x40008000);
    CHECK_EQ(*(volatile u32 *)0x40008000, 0x11111111, "INVLPG flushes a global entry");
    pt_hi[8] = 0x00802000u | P | W | G;
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory");
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10 | 0x80) : "memory");
    CHECK_EQ(*(volatile u32 *)0x40008000, 0x33333333, "turning PGE off flushes global entries");
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory");

    /* Code on a 4 MiB page whose directory entry changes without INVLPG, code run under
       the other entry, the entry changed back and CR3 loaded: the first frame's code
       (shadow-mmu/window.c: a region of large pages is checked against its key, and a
       check under another key gives it a new epoch at the next load; the build before
       2026-12-05 kept the epoch and ran the second frame's block). */
    {
        typedef u32 (*big_fn)(void);
        pd[0x301] = 0x01000000u | 0x80 | P | W; /* VA 0xc0400000: frame 16 MiB */
        pd[0x302] = 0x01400000u | 0x80 | P | W; /* VA 0xc0800000: frame 20 MiB */
        invlpg(0xc0400000);
        invlpg(0xc0800000);
        for (u32 k = 0; k < 2; k++) {
            u8 *f = (u8 *)(k ? 0xc0800000u : 0xc0400000u);
            u32 v1 = k + 1, v2 = 10 * (k + 1);
            put_mov_ret(f + 0x100, v1);
            put_mov_ret(f + 0x200, v2);
        }
        big_fn at100 = (big_fn)0xc0c00100u, at200 = (big_fn)0xc0c00200u;
        pd[0x303] = 0x01000000u | 0x80 | P | W;
        write_cr3((u32)pd);
        CHECK_EQ(at100(), 1, "4 MiB page: the first frame's code");
        pd[0x303] = 0x01400000u | 0x80 | P | W; /* no INVLPG: either frame may run */
        (void)at200();
        pd[0x303] = 0x01000000u | 0x80 | P | W;
        write_cr3((u32)pd);
        CHECK_EQ(at200(), 10, "4 MiB page changed and back between CR3 loads: the first frame");
        CHECK_EQ(at100(), 1, "and its other entry point");
        /* A 4 MiB page is one TLB entry: INVLPG of another of its 4 KiB pages flushes
           it (SDM vol. 3, 4.10.4.1; xbt: the region's other pages are live once code
           ran on one of them).  QEMU 7.2's TCG flushes its TLB whole but its jump cache
           only for the page named, so a call there may still reach the old frame's
           block: either on QEMU. */
        u32 sum = 0;
        for (int i = 0; i < 20; i++)
            sum += at100(); /* chained, and in the inline lookup table */
        CHECK_EQ(sum, 20, "4 MiB page: the first frame's code, hot");
        pd[0x303] = 0x01400000u | 0x80 | P | W;
        invlpg(0xc0c05000);
        u32 got = at100();
        if (on_qemu_tcg())
            CHECK(got == 2 || got == 1, "INVLPG elsewhere in the 4 MiB page: either (QEMU)");
        else
            CHECK_EQ(got, 2, "INVLPG elsewhere in the 4 MiB page: the new frame's code");
        pd[0x303] = 0x01000000u | 0x80 | P | W;
        invlpg(0xc0fff000);
        CHECK_EQ(at100(), 1, "and back, INVLPG at its last page");
    }

    /* A page table's 4 KiB code and data pages, then the directory entry made a 4 MiB
       page and INVLPG of another 4 KiB page of it: the TLB may hold both sizes for the
       range (SDM vol. 3, 4.10.2.3), and INVLPG of an address the tables now map with a
       4 MiB page invalidates all of them (4.10.4.1): the 4 MiB page's code and data
       (found by review, 2026-12-05).  QEMU 7.2's TCG flushes everything only where its
       TLB holds a large page, none here: either there. */
    {
        typedef u32 (*sz_fn)(void);
        put_mov_ret(code_sz + 0x100, 3);
        put_mov_ret((u8 *)0xc0405100u, 4); /* frame 16 MiB + 0x5100 (VA 0xc0400000) */
        data_sz[0] = 0x66666666;
        *(volatile u32 *)0xc0407000u = 0x77777777; /* frame 16 MiB + 0x7000 */
        pt_sz[5] = (u32)code_sz | P | W;
        pt_sz[7] = (u32)data_sz | P | W;
        pd[0x304] = (u32)pt_sz | P | W;
        write_cr3((u32)pd);
        sz_fn volatile f = (sz_fn)0xc1005100u;
        volatile u32 *d = (volatile u32 *)0xc1007000u;
        u32 sum = 0;
        for (int i = 0; i < 20; i++)
            sum += f() + (*d == 0x66666666u);
        CHECK_EQ(sum, 80, "4 KiB pages of a table: their frames' code and data");
        pd[0x304] = 0x01000000u | 0x80 | P | W; /* no INVLPG of those pages */
        invlpg(0xc1006000);
        u32 got = f(), dv = *d;
        if (on_qemu_tcg()) {
            CHECK(got == 3 || got == 4, "made a 4 MiB page, INVLPG of another page: code, either (QEMU)");
            CHECK(dv == 0x66666666u || dv == 0x77777777u, "and data, either (QEMU)");
        } else {
            CHECK_EQ(got, 4, "made a 4 MiB page, INVLPG of another page of it: the new code");
            CHECK_EQ(dv, 0x77777777, "and the new data");
        }
    }

    /* Self-modifying code through an alias. */
    CHECK_EQ(smc_fn(), 1, "code before");
    *(volatile u32 *)(0x50000000u + ((u32)smc_imm & 0xFFF)) = 42;
    CHECK_EQ(smc_fn(), 42, "code patched through an alias mapping");
    alias_poke(1, smc_imm2, 5);              /* writable in the window before any code */
    *(volatile u32 *)smc_imm2 = 6;           /* and at its own address */
    CHECK_EQ(smc_fn2(), 6, "code written through two aliases before it ran");
    alias_poke(1, smc_imm2, 7);
    CHECK_EQ(smc_fn2(), 7, "code patched through an alias mapped writable before it ran");
    *(volatile u32 *)smc_imm2 = 8;
    CHECK_EQ(smc_fn2(), 8, "code patched at its own address after that");
    for (u32 i = 2; i < 5; i++)
        alias_poke(i, smc_imm3, 10 + i);
    *(volatile u32 *)smc_imm3 = 9;
    CHECK_EQ(smc_fn3(), 9, "code written through four aliases before it ran");
    alias_poke(2, smc_imm3, 21);
    CHECK_EQ(smc_fn3(), 21, "code patched through the first of three aliases");
    alias_poke(4, smc_imm3, 23);
    CHECK_EQ(smc_fn3(), 23, "code patched through the last of three aliases");

    /* A fault half way through REP MOVSB: ECX and EDI show the progress. */
    static u8 src[64];
    for (int i = 0; i < 64; i++)
        src[i] = (u8)(i + 1);
    pt_hi[3] = 0x00803000u | P | W; /* 0x40003000 present, 0x40004000 not */
    pt_hi[4] = 0;
    invlpg(0x40004000);
    pf_map = 1;
    u32 c = 64;
    u8 *s = src, *d = (u8 *)0x40003ff0;
    __asm__ volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) : : "memory");
    pf_map = 0;
    CHECK_EQ(pf_ecx, 48, "rep movsb fault: ecx left");
    CHECK_EQ(pf_edi, 0x40004000, "rep movsb fault: edi at the missing page");
    CHECK_EQ(pf_cr2, 0x40004000, "rep movsb fault: cr2");
    CHECK_EQ(c, 0, "rep movsb finished after the handler mapped the page");
    CHECK_EQ(*(volatile u8 *)0x40004020, 49, "byte after the fault copied");

    /* Code in a page table both address spaces share: a CR3 load must make the current
       entry of a code page take effect even when the entry changed and changed back
       between two loads, with code run under the other value in between. */
    for (u32 k = 0; k < 2; k++) {
        u8 *f = k ? code_f2 : code_f1;
        u32 v0 = k ? 2 : 1, v16 = k ? 20 : 10;
        put_mov_ret(f, v0);
        put_mov_ret(f + 16, v16);
    }
    pd[0x180] = pd2[0x180] = (u32)pt_code | P | W;
    typedef u32 (*fn_t)(void);
    fn_t at0 = (fn_t)0x60001000u, at16 = (fn_t)0x60001010u;
    pt_code[1] = (u32)code_f1 | P | W;
    write_cr3((u32)pd);
    u32 r0 = at0(), r16 = at16();
    CHECK(r0 == 1 && r16 == 10, "shared table: the first frame's code");
    pt_code[1] = (u32)code_f2 | P | W;
    write_cr3((u32)pd2);
    CHECK_EQ(at0(), 2, "entry changed, CR3 loaded: the second frame's code");
    pt_code[1] = (u32)code_f1 | P | W;
    (void)at16(); /* no flush: either frame may run */
    pt_code[1] = (u32)code_f2 | P | W;
    write_cr3((u32)pd);
    CHECK_EQ(at16(), 20, "changed back and forth between CR3 loads: the current frame");
    CHECK_EQ(at0(), 2, "and its other entry point too");

    /* A page that first holds code after the last CR3 load (its first block's entry
       becomes its snapshot: shadow-mmu/window.c, live pages): its entry changed without
       INVLPG, then a load of the same directory: the new frame's code, called directly
       (chained by then) and indirectly (in the inline lookup table by then).  Twice:
       the second time the page held code before, in an epoch the load ended. */
    fn_t fresh = (fn_t)0x60005000u;
    fn_t volatile ifresh = fresh;
    for (u32 round = 0; round < 2; round++) {
        pt_code[5] = (u32)code_f1 | P | W;
        write_cr3((u32)pd);
        u32 got = 0;
        for (int i = 0; i < 20; i++)
            got = fresh() + 10 * ifresh();
        CHECK_EQ(got, 11, "a page new to code: the first frame's code");
        pt_code[5] = (u32)code_f2 | P | W;
        write_cr3((u32)pd);
        CHECK_EQ(fresh() + 10 * ifresh(), 22, "entry changed, same directory loaded: the new frame");
    }

    /* Code on a global page (CR4.PGE) in a region of global code only: its entry
       changed without INVLPG; a CR3 load may keep the old global entry, turning PGE off
       and on again (Linux's flush of everything) may not, and neither may a PGE write
       after the entry changed while PGE was off.  Code on another page runs on. */
    {
        const u32 G = 0x100;
        fn_t gfn = (fn_t)0x78000000u, plain = (fn_t)0x60005010u;
        fn_t volatile ig = gfn;
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10 | 0x80) : "memory");
        pd[0x1e0] = pd2[0x1e0] = (u32)pt_glob | P | W; /* a region of global code only */
        pt_glob[0] = (u32)code_f1 | P | W | G;
        invlpg(0x78000000);
        u32 got = 0;
        for (int i = 0; i < 20; i++)
            got = gfn() + 10 * ig() + 100 * plain();
        CHECK_EQ(got, 11 + 100 * 20, "global code page: the first frame's code");
        pt_glob[0] = (u32)code_f2 | P | W | G;
        write_cr3((u32)pd);
        got = gfn();
        CHECK(got == 1 || got == 2, "global code page changed, CR3 loaded: either frame");
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory");
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10 | 0x80) : "memory");
        CHECK_EQ(gfn() + 10 * ig() + 100 * plain(), 22 + 100 * 20,
                 "PGE turned off and on: the new frame's code, the other page's as before");
        /* The entry changed while PGE is off, then PGE on: that write flushes too. */
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory");
        pt_glob[0] = (u32)code_f1 | P | W | G;
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10 | 0x80) : "memory");
        CHECK_EQ(gfn() + 10 * ig(), 11, "entry changed with PGE off, PGE on: the first frame");
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory");
    }

    /* The same through indirect calls (the calls above are direct: chained, where these
       go through the inline lookup table, which must forget its entries into a region
       whose mapping changed). */
    fn_t volatile ind0 = at0, ind16 = at16;
    for (u32 round = 0; round < 3; round++) {
        pt_code[1] = (u32)code_f1 | P | W;
        write_cr3(round & 1 ? (u32)pd2 : (u32)pd);
        for (int i = 0; i < 50; i++) /* hot: in the table */
            r0 = ind0(), r16 = ind16();
        CHECK(r0 == 1 && r16 == 10, "indirect: the first frame's code");
        pt_code[1] = (u32)code_f2 | P | W;
        invlpg(0x60001000);
        CHECK_EQ(ind0(), 2, "indirect, entry changed, INVLPG: the second frame's code");
        CHECK_EQ(ind16(), 20, "indirect: and its other entry point too");
        pt_code[1] = (u32)code_f1 | P | W;
        write_cr3(round & 1 ? (u32)pd : (u32)pd2);
        CHECK_EQ(ind16(), 10, "indirect, entry changed, CR3 loaded: the first frame again");
    }

    /* Jumps inside one page (chained, and kept across a mapping change where the page
       keeps its frame: tcache.c, chain_page_local) and from one page into the next
       (undone when the next one is remapped), each frame's code different: after every
       change, the current frames' code runs, whichever block is entered first. */
    for (u32 k = 0; k < 2; k++) {
        u8 *f = k ? code_f2 : code_f1;
        u32 v = k + 1, add = 100 * (k + 1);
        f[0x20] = 0xb8; /* 0x20: mov eax, k + 1; jmp short 0x60 */
        __builtin_memcpy(f + 0x21, &v, 4);
        f[0x25] = 0xeb;
        f[0x26] = 0x60 - 0x27;
        f[0x60] = 0x05; /* 0x60: add eax, 100 * (k + 1); ret */
        __builtin_memcpy(f + 0x61, &add, 4);
        f[0x65] = 0xc3;
    }
    code_f3[0xff0] = 0xb8; /* VA 0x60002ff0: mov eax, 7; jmp 0x60003010 */
    u32 seven = 7, rel = 0x60003010u - 0x60002ffau, thousand = 1000, two_thousand = 2000;
    __builtin_memcpy(code_f3 + 0xff1, &seven, 4);
    code_f3[0xff5] = 0xe9;
    __builtin_memcpy(code_f3 + 0xff6, &rel, 4);
    code_f4[0x10] = code_f5[0x10] = 0x05; /* add eax, 1000 (f4) or 2000 (f5); ret */
    __builtin_memcpy(code_f4 + 0x11, &thousand, 4);
    __builtin_memcpy(code_f5 + 0x11, &two_thousand, 4);
    code_f4[0x15] = code_f5[0x15] = 0xc3;
    fn_t in_page = (fn_t)0x60001020u, second = (fn_t)0x60001060u, cross = (fn_t)0x60002ff0u;
    pt_code[2] = (u32)code_f3 | P | W;
    for (u32 round = 0; round < 4; round++) {
        u32 k = round & 1, sum = 0;
        pt_code[1] = (u32)(k ? code_f2 : code_f1) | P | W;
        pt_code[3] = (u32)(k ? code_f5 : code_f4) | P | W;
        if (round < 2)
            write_cr3(round & 1 ? (u32)pd2 : (u32)pd);
        else
            invlpg(0x60001000), invlpg(0x60003000);
        if (round == 3) { /* the second block first this time (it adds to EAX) */
            u32 r;
            __asm__ volatile("call *%1" : "=a"(r) : "r"(second), "0"(7u) : "memory", "cc");
            CHECK_EQ(r, 7 + 200, "entered at the jump target first: the new frame");
        }
        for (int i = 0; i < 60; i++) /* hot: chained */
            sum += in_page() + cross();
        u32 want = (k + 1) + 100 * (k + 1) + 7 + 1000 * (k + 1);
        CHECK_EQ(sum, 60 * want, round < 2 ? "jumps within and across pages, CR3 loaded"
                                           : "jumps within and across pages, INVLPG");
        /* The page keeps its frame across a CR3 load: the same code again. */
        write_cr3(round & 1 ? (u32)pd : (u32)pd2);
        CHECK_EQ(in_page() + cross(), want, "same frames after another CR3 load");
    }

    /* Code on a page the guest unmaps and maps again on the fetch's #PF, to the same
       frame or another: a block kept while its page was missing (run.c, block_current)
       runs again only if its frame is back. */
    fn_t demand = (fn_t)0x60004020u;
    pt_code[4] = (u32)code_f1 | P | W;
    invlpg(0x60004000);
    u32 dsum = 0;
    for (int i = 0; i < 20; i++)
        dsum += demand();
    CHECK_EQ(dsum, 20 * 101, "demand-paged code: first frame");
    static const u8 *const frames[] = { code_f2, code_f2, code_f1, code_f1, code_f2 };
    for (u32 round = 0; round < 5; round++) {
        u32 want = frames[round] == code_f1 ? 101 : 202, before = code_faults;
        pt_code[4] = 0;
        if (round & 1)
            invlpg(0x60004000);
        else
            write_cr3(round & 2 ? (u32)pd2 : (u32)pd);
        code_remap = (u32)frames[round];
        u32 r = demand();
        code_remap = 0;
        CHECK(r == want && code_faults == before + 1,
              "demand-paged code: one fetch fault, then the frame mapped now");
    }

    /* A block across two 4 MiB regions (0x5ffffffa: mov eax, 7; add eax, imm32 whose
       immediate is on the next page, in the next region; ret), called indirectly until
       the inline lookup table knows it; then only the second page is remapped. */
    code_f6[0xffa] = 0xb8;
    __builtin_memcpy(code_f6 + 0xffb, &seven, 4);
    code_f6[0xfff] = 0x05;
    u32 hundred = 100, two_hundred = 200;
    __builtin_memcpy(code_f7, &hundred, 4);
    __builtin_memcpy(code_f8, &two_hundred, 4);
    code_f7[4] = code_f8[4] = 0xc3;
    pt_x[0x3ff] = (u32)code_f6 | P | W;
    pd[0x17f] = (u32)pt_x | P | W;
    pt_code[0] = (u32)code_f7 | P | W;
    write_cr3((u32)pd);
    fn_t volatile across = (fn_t)0x5ffffffau;
    u32 asum = 0;
    for (int i = 0; i < 60; i++)
        asum += across();
    CHECK_EQ(asum, 60 * 107, "a block across two regions, called indirectly");
    pt_code[0] = (u32)code_f8 | P | W;
    invlpg(0x60000000);
    CHECK_EQ(across(), 207, "its second region remapped: the new frame's bytes");

    /* INVLPG right after a store that changed the entry, in straight-line code: of a
       data page (the load after it reads the new frame), and of the code's own page (the
       instruction after it is the new frame's: INVLPG is serializing).  xbt ends a block
       at INVLPG; since 2026-12-05 it goes on through the block's exit, chained, where the
       INVLPG changed no translation's epoch, and leaves for the dispatcher where it did.
       Bytes, so that no compiler puts a branch between: mov ebx,[eax]; mov [ecx],edx;
       invlpg [eax]; mov eax,[eax]; add eax,ebx; ret at 0x5fffe100 and mov [ecx],edx;
       invlpg [eax]; mov eax,imm32; ret at 0x5fffe000, each called 40 times. */
    {
        static const u8 data_seq[] = { 0x8b, 0x18, 0x89, 0x11, 0x0f, 0x01, 0x38,
                                       0x8b, 0x00, 0x01, 0xd8, 0xc3 };
        static const u8 own_seq[] = { 0x89, 0x11, 0x0f, 0x01, 0x38 };
        for (int k = 0; k < 2; k++) {
            u8 *f = k ? code_i2 : code_i1;
            __builtin_memcpy(f + 0x100, data_seq, sizeof data_seq);
            __builtin_memcpy(f, own_seq, sizeof own_seq);
            put_mov_ret(f + 5, k + 1);
        }
        data_i1[0] = 0x100;
        data_i2[0] = 0x20000;
        pt_x[0x3fe] = (u32)code_i1 | P | W;
        pt_x[0x3fd] = (u32)data_i1 | P | W;
        invlpg(0x5fffe000);
        invlpg(0x5fffd000);
        u32 dsum = 0, osum = 0;
        for (int i = 0; i < 40; i++) {
            u32 r, to = (u32)((i & 1) ? data_i1 : data_i2) | P | W;
            __asm__ volatile("call *%%esi"
                             : "=a"(r)
                             : "a"(0x5fffd000u), "c"(&pt_x[0x3fd]), "d"(to), "S"(0x5fffe100u)
                             : "ebx", "memory", "cc");
            dsum += r == 0x20100u; /* what the page held before + what it holds after */
        }
        CHECK_EQ(dsum, 40, "INVLPG of a data page inside a block: the load after it sees the new frame");
        for (int i = 0; i < 40; i++) {
            u32 r, to = (u32)((i & 1) ? code_i1 : code_i2) | P | W;
            __asm__ volatile("call *%%esi"
                             : "=a"(r)
                             : "a"(0x5fffe000u), "c"(&pt_x[0x3fe]), "d"(to), "S"(0x5fffe000u)
                             : "memory", "cc");
            osum += r == (u32)((i & 1) ? 1 : 2) ? 1 : 0;
        }
        CHECK_EQ(osum, 40, "INVLPG of the block's own page: the next instruction is the new frame's");
    }

    /* A region of code that the next directory does not map at all (pd2 has nothing at
       0x74000000): a direct call into it, chained while it was mapped, faults there;
       back in pd its code runs again, and with its entry changed while pd2 was current,
       the new frame's code (xbt keeps such a region's blocks, their epoch saved, for a
       load that maps it as before, and cuts the chains into it; 2026-12-05). */
    {
        put_mov_ret(code_a1 + 0x100, 41);
        put_mov_ret(code_a2 + 0x100, 42);
        pt_abs[0] = (u32)code_a1 | P | W;
        pd[0x1d0] = (u32)pt_abs | P | W;
        pd2[0x1d0] = 0;
        write_cr3((u32)pd);
        u32 s = 0;
        for (int i = 0; i < 20; i++)
            s += call_abs();
        CHECK_EQ(s, 20 * 41, "code in a region of its own, hot");
        for (int round = 0; round < 2; round++) {
            write_cr3((u32)pd2);
            u32 n0 = pf_count;
            CHECK_EQ(call_abs(), 0xffffffffu, "its region not mapped: the call faults");
            CHECK(pf_count == n0 + 1 && pf_cr2 == 0x74000100u, "a #PF at the call's target");
            if (round)
                pt_abs[0] = (u32)code_a2 | P | W; /* while pd2 is current */
            write_cr3((u32)pd);
            s = 0;
            for (int i = 0; i < 5; i++)
                s += call_abs();
            CHECK_EQ(s, 5 * (round ? 42 : 41),
                     round ? "remapped while away: the new frame's code"
                           : "mapped as before: its code again");
        }
    }

    /* Two address spaces with other code at the same place (a shell and the program it
       runs, both at 0x400000): 0x74000100 jumps to 0x74001100, which returns 41 in pd
       and 42 in pd2, the jump chained in each.  Switched back and forth, each runs its
       own code (xbt sets the other's chains aside, 2026-12-05); then pd2 maps pd's
       frame at 0x74000000: pd's jump, chained to pd's 0x74001100, may not take it
       there (the frame of 0x74001100 in pd2 is still pd2's): the entry changed, with
       its INVLPG, while pd2 is current. */
    {
        static const u32 rel = 0x74001100u - 0x74000105u;
        fn_t volatile jumper = (fn_t)0x74000100u;
        u8 *const firsts[2] = { code_a1, code_b1 };
        for (int k = 0; k < 2; k++) {
            firsts[k][0x100] = 0xe9;
            __builtin_memcpy(firsts[k] + 0x101, &rel, 4);
        }
        put_mov_ret(code_a3 + 0x100, 41);
        put_mov_ret(code_b3 + 0x100, 42);
        pt_abs[0] = (u32)code_a1 | P | W;
        pt_abs[1] = (u32)code_a3 | P | W;
        pt_abs2[0] = (u32)code_b1 | P | W;
        pt_abs2[1] = (u32)code_b3 | P | W;
        pd2[0x1d0] = (u32)pt_abs2 | P | W;
        for (int round = 0; round < 6; round++) {
            int two = round & 1;
            write_cr3(two ? (u32)pd2 : (u32)pd);
            if (round == 5) {
                CHECK_EQ(jumper(), 42, "pd2's code");
                pt_abs2[0] = (u32)code_a1 | P | W;
                invlpg(0x74000000);
            }
            u32 s = 0;
            for (int i = 0; i < 20; i++)
                s += jumper();
            CHECK_EQ(s, 20 * (two ? 42 : 41),
                     round == 5 ? "pd's frame at pd2's 0x74000000: pd2's code after the jump"
                                : "each directory's own code at one address, switched");
        }
        write_cr3((u32)pd);
        CHECK_EQ(jumper(), 41, "back in pd: pd's code");
    }

    /* Paging off. */
    write_cr0(read_cr0() & ~0x80000000u);
    CHECK(!(read_cr0() & 0x80000000u), "paging off");
    CHECK_EQ(*(volatile u32 *)0x00801004, 0x5a5a5a5a, "physical memory after paging off");
}
