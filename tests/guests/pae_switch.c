/*
 * pae_switch.c - two PAE address spaces switched by CR3, whose mappings change while
 * the other one is current.  xbt keeps each address space's window (its host mappings)
 * across a switch and re-checks it against the page tables at the switch back instead
 * of refilling it by faults; under PAE the re-check walks 8-byte entries below a PDPTE.
 * Here each space maps NPAGES 4 KiB pages at VA onto frames of its own, and a 2 MiB
 * page at BIG; between rounds, while A is current, B's mappings change behind its back
 * (nothing is flushed: a CR3 load is the flush): a table entry to another frame, its
 * upper half (a reserved bit above MAXPHYADDR: the access must fault), the directory
 * entry to
 * another table, the PDPTE to another directory, the 2 MiB page to another 2 MiB of
 * RAM, a page made not present.  After each switch every page must read the frame the
 * tables name now (or fault where they name none), and writes must reach that frame.
 * Also A's own mappings stay right when nothing changed (the kept ones).
 */
#include "lib/guest.h"

#define P 1ull
#define W 2ull
#define PS 0x80ull
#define VA 0x40000000u  /* PDPTE 1: a directory per space, its entry 0 a table */
#define BIG 0x80000000u /* PDPTE 2: a directory per space, its entry 0 a 2 MiB page */
#define NPAGES 8
#define ROUNDS 60

static u64 pdpt[2][4] __attribute__((aligned(32)));
static u64 pd_lo[512] __attribute__((aligned(4096))); /* 0..16 MiB: 2 MiB identity pages */
static u64 pd[3][512] __attribute__((aligned(4096)));  /* VA's: A, B, B's other one */
static u64 pt[3][512] __attribute__((aligned(4096)));  /* A, B, B's other one */
static u64 pdb[3][512] __attribute__((aligned(4096))); /* BIG's: A, B, B's other one */
static volatile u32 frames[3][NPAGES][1024] __attribute__((aligned(4096)));

/* The 2 MiB areas BIG may map (identity-mapped too, for checking): 8, 10, 12 MiB. */
#define AREA(k) (0x00800000u + ((u32)(k) << 21))

static u32 bad;
static void expect(int ok, u32 round, const char *what, u32 got, u32 want)
{
    if (!ok && bad++ == 0)
        printf("  round %u: %s: got %x want %x\n", round, what, got, want);
}

static void pf_handler(struct frame *f)
{
    pf_note(f, VA, NPAGES << 12);
    f->eip += 6; /* the probe's movl abs32, %eax */
    f->eax = 0xFA0171u;
}

/* The dword at VA page i, offset 4*j; 0xFA0171 if it faults. */
static u32 probe(u32 i, u32 j)
{
    u32 v, addr = VA + (i << 12) + 4 * j;
    __asm__ volatile("movl (%1), %0\n\t.byte 0x90, 0x90, 0x90, 0x90" : "=a"(v) : "c"(addr));
    return v;
}

/* A table entry: page i onto frame set s. */
static u64 pte_of(u32 s, u32 i) { return (u32)frames[s][i] | P | W; }

/* What B maps at VA page i now, by its tables: the frame's first dword, 0 if none. */
static const volatile u32 *b_frame(u32 i)
{
    u64 pdpte = pdpt[1][1];
    u64 *d = (u64 *)(u32)(pdpte & ~0xFFFull);
    u64 *t = (u64 *)(u32)(d[0] & ~0xFFFull);
    u64 e = t[i];
    if (!(e & P) || (e >> 32))
        return 0;
    return (const volatile u32 *)(u32)(e & 0xFFFFF000u);
}

static void check_space(u32 r, int space)
{
    for (u32 i = 0; i < NPAGES; i++) {
        u32 j = (r * 7 + i * 13) % 1024;
        const volatile u32 *f = space == 0 ? frames[0][i] : b_frame(i);
        u32 before = pf_seen.count, v = probe(i, j);
        if (!f) {
            expect(v == 0xFA0171u && pf_seen.count == before + 1 &&
                       pf_seen.cr2 == VA + (i << 12) + 4 * j,
                   r, "a page the tables do not map faults", v, 0xFA0171u);
            continue;
        }
        expect(v == f[j], r, space ? "B's page reads its frame now" : "A's page", v, f[j]);
        /* A write goes to the frame the tables name. */
        volatile u32 *p = (volatile u32 *)(VA + (i << 12) + 4 * ((j + 1) % 1024));
        *p = 0x5000000u + r;
        expect(f[(j + 1) % 1024] == 0x5000000u + r, r, "a write reaches the frame",
               f[(j + 1) % 1024], 0x5000000u + r);
        const volatile u32 *w = &f[(j + 1) % 1024];
        *(volatile u32 *)w = (u32)(w - &frames[0][0][0]); /* its value again */
    }
    /* BIG: the 2 MiB area's dword at an offset that moves. */
    u64 *d = (u64 *)(u32)(pdpt[space][2] & ~0xFFFull);
    u32 area = (u32)(d[0] & 0xFFE00000u), off = ((r * 4099) % (2u << 20)) & ~3u;
    u32 v = *(volatile u32 *)(BIG + off), want = *(volatile u32 *)(area + off);
    expect(v == want, r, "BIG reads the 2 MiB the directory names now", v, want);
}

void main(void)
{
    for (u32 i = 0; i < 8; i++)
        pd_lo[i] = ((u64)i << 21) | P | W | PS;
    for (u32 s = 0; s < 3; s++) {
        for (u32 i = 0; i < NPAGES; i++) {
            pt[s][i] = pte_of(s, i);
            for (u32 j = 0; j < 1024; j++)
                frames[s][i][j] = (u32)(&frames[s][i][j] - &frames[0][0][0]);
        }
        pd[s][0] = (u32)pt[s] | P | W;
        pdb[s][0] = AREA(s) | P | W | PS;
    }
    for (u32 a = 0; a < 3; a++) /* the areas' dwords: their own addresses */
        for (u32 o = 0; o < (2u << 20); o += 4)
            *(volatile u32 *)(AREA(a) + o) = AREA(a) + o;
    for (u32 s = 0; s < 2; s++) {
        pdpt[s][0] = (u32)pd_lo | P;
        pdpt[s][1] = (u32)pd[s] | P;
        pdpt[s][2] = (u32)pdb[s] | P;
    }
    set_handler(14, pf_handler);
    write_cr3((u32)pdpt[0]);
    write_cr4(read_cr4() | 0x20);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u); /* PG, WP */

    for (u32 r = 0; r < ROUNDS; r++) {
        check_space(r, 0);
        /* B changes while A is current (B's tables are not A's: no flush is due). */
        u32 i = r % NPAGES;
        switch (r % 7) {
        case 0: pt[1][i] = pte_of(2, i); break;                      /* another frame */
        case 1: pt[1][i] = pte_of(1, i); break;                      /* back */
        case 2: pt[1][i] = pte_of(1, i) | (1ull << 45); break;       /* reserved: #PF */
        case 3: pd[1][0] = (u32)pt[2] | P | W; break;                 /* another table */
        case 4: pdpt[1][1] = (u32)pd[2] | P; break;                   /* another directory */
        case 5: pdb[1][0] = AREA((r / 7) % 3) | P | W | PS; break;    /* another 2 MiB */
        default: /* all back, one page not present */
            pdpt[1][1] = (u32)pd[1] | P;
            pd[1][0] = (u32)pt[1] | P | W;
            for (u32 k = 0; k < NPAGES; k++)
                pt[1][k] = pte_of(1, k);
            pt[1][i] = 0;
            break;
        }
        write_cr3((u32)pdpt[1]);
        check_space(r, 1);
        write_cr3((u32)pdpt[0]);
    }
    CHECK(bad == 0, "B's pages read and write the frames its tables name after each switch");
    guest_exit();
}
