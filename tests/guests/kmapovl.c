/*
 * kmapovl.c (review) - an overlapping forward REP MOVSB (destination one byte above the
 * source, the same linear page) through a kmap-style slot: the CPU copies element by
 * element, so the first source byte fills the whole destination.  The slot's page is
 * mapped with D clear and read first by PUSH m (not a fault site), so the window holds it
 * read-only: the string site's source check finds it mapped (window), its destination
 * check does not (soft, the guest page through the VMM's view of RAM).  Then a source
 * that starts on the slot before the destination's and runs into it (found in the
 * fix's own reading: the first check compared the two first elements' pages only).
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define S0 0x40001000u
#define ROUNDS 200
#define N 200

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
static u32 pt_hi[1024] __attribute__((aligned(4096)));
static volatile u8 frames[2][4096] __attribute__((aligned(4096)));

static u32 read_pushpop(u32 a)
{
    u32 v;
    __asm__ volatile("pushl (%1)\n\tpopl %0" : "=r"(v) : "r"(a) : "memory");
    return v;
}

static void rep_movsb_ovl(u32 s, u32 d, u32 n)
{
    __asm__ volatile("cld\n\trep movsb" : "+S"(s), "+D"(d), "+c"(n) : : "memory");
}

void main(void)
{
    identity_16m(pd, pt);
    pd[S0 >> 22] = (u32)pt_hi | P | W;
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u);

    u32 bad = 0, first_bad = ~0u;
    for (u32 r = 0; r < ROUNDS; r++) {
        volatile u8 *f = frames[r & 1];
        for (u32 i = 0; i < 4096; i++)
            f[i] = (u8)(i * 7 + r);
        pt_hi[1] = (u32)f | P | W; /* A and D clear */
        (void)read_pushpop(S0);
        rep_movsb_ovl(S0 + 0x100, S0 + 0x101, N);
        u32 wrong = 0;
        for (u32 i = 0; i <= N; i++)
            wrong += f[0x100 + i] != (u8)(0x100 * 7 + r);
        if (wrong && bad++ == 0)
            first_bad = r, printf("  round %u: %u of %u bytes not the first byte's\n", r, wrong, N + 1);
        pt_hi[1] = 0;
        invlpg(S0);
    }
    if (bad)
        printf("  %u rounds wrong, the first %u\n", bad, first_bad);
    CHECK(bad == 0, "overlapping rep movsb through a slot replicates the first byte");

    /* The source starts 8 bytes below the destination's page, on the slot before it,
       and runs into the destination's page: its range is not on one page (window), the
       destination's is (the window maps it read-only: soft, the page churns); element
       by element, the page's first bytes repeat the 8 bytes before it. */
    bad = 0;
    for (u32 r = 0; r < ROUNDS; r++) {
        volatile u8 *a = frames[r & 1], *b = frames[(r & 1) ^ 1];
        for (u32 i = 0; i < 4096; i++)
            a[i] = (u8)(i * 5 + r), b[i] = (u8)(i * 3 + r);
        pt_hi[1] = (u32)a | P | W;
        pt_hi[2] = (u32)b | P | W; /* D clear: read first, the window holds it read-only */
        (void)read_pushpop(S0 + 4096);
        rep_movsb_ovl(S0 + 4096 - 8, S0 + 4096, 2048);
        u32 wrong = 0;
        for (u32 j = 0; j < 2048; j++)
            wrong += b[j] != a[4096 - 8 + (j % 8)];
        wrong += b[2048] != (u8)(2048 * 3 + r);
        if (wrong && bad++ == 0)
            printf("  round %u: %u of 2049 bytes wrong across the two slots\n", r, wrong);
        pt_hi[1] = pt_hi[2] = 0;
        invlpg(S0);
        invlpg(S0 + 4096);
    }
    CHECK(bad == 0, "overlapping rep movsb from the slot before into a churning slot");
    guest_exit();
}
