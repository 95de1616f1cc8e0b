/*
 * softback.c (review) - a backward (DF=1) REP STOSD / MOVSD at CPL 0 whose whole range
 * lies on one page that is not present (or read-only with CR0.WP): the #PF comes at
 * the first element, so CR2 is the first element's address (EDI or ESI as they are),
 * not the lowest address of the range.  Run 40 times so that the instruction becomes a
 * fault site (4 faults) and its check's callout (pfsite.c string_soft) raises the #PF.
 * Also a REPNE-prefixed MOVSD (F2 A5), which the CPU runs as REP MOVSD.
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define L0 0x40001000u
#define L1 0x40002000u

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
static u32 pt_hi[1024] __attribute__((aligned(4096)));
static volatile u32 frame0[1024] __attribute__((aligned(4096)));
static volatile u32 frame1[1024] __attribute__((aligned(4096)));

static void map(u32 lin, u32 phys, u32 flags)
{
    pt_hi[(lin >> 12) & 0x3ff] = phys ? phys | flags : 0;
}

static volatile u32 pf_count, pf_cr2, pf_err, pf_ecx, pf_edi, pf_esi;
static volatile u32 fix_lin, fix_phys;
static void on_pf(struct frame *f)
{
    __asm__ volatile("cld");
    pf_count++;
    pf_cr2 = read_cr2();
    pf_err = f->err;
    pf_ecx = f->ecx;
    pf_edi = f->edi;
    pf_esi = f->esi;
    map(fix_lin, fix_phys, P | W);
    invlpg(fix_lin);
}

static u32 std_rep_stosd(u32 d, u32 n, u32 val)
{
    u32 c;
    __asm__ volatile("std\n\trep stosl\n\tcld" : "+D"(d), "=c"(c) : "1"(n), "a"(val) : "memory");
    return c;
}

static u32 std_rep_movsd(u32 s, u32 d, u32 n)
{
    u32 c;
    __asm__ volatile("std\n\trep movsl\n\tcld" : "+S"(s), "+D"(d), "=c"(c) : "2"(n) : "memory");
    return c;
}

static u32 std_rep_stosd_wp(u32 d, u32 n, u32 val)
{
    u32 c;
    __asm__ volatile("std\n\trep stosl\n\tcld" : "+D"(d), "=c"(c) : "1"(n), "a"(val) : "memory");
    return c;
}

static u32 repne_movsd(u32 s, u32 d, u32 n)
{
    u32 c;
    __asm__ volatile("cld\n\t.byte 0xf2\n\tmovsl" : "+S"(s), "+D"(d), "=c"(c) : "2"(n) : "memory");
    return c;
}

static u32 bad;
static void expect(int ok, u32 round, const char *what, u32 got, u32 want)
{
    if (!ok && bad++ < 4)
        printf("  round %u: %s: got %x want %x\n", round, what, got, want);
}

void main(void)
{
    identity_16m(pd, pt);
    pd[L0 >> 22] = (u32)pt_hi | P | W;
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u); /* PG and WP */
    set_handler(14, on_pf);

    /* 1. std; rep stosd: 16 dwords ending (first element) at L0 + 0x800, not present. */
    bad = 0;
    for (u32 r = 0; r < 40; r++) {
        map(L0, 0, 0);
        invlpg(L0);
        fix_lin = L0, fix_phys = (u32)frame0;
        pf_count = 0;
        u32 c = std_rep_stosd(L0 + 0x800, 16, 0xabc00000u | r);
        expect(pf_count == 1, r, "stosd: one #PF", pf_count, 1);
        expect(pf_cr2 == L0 + 0x800, r, "stosd: CR2 (the first element)", pf_cr2, L0 + 0x800);
        expect(pf_err == 2, r, "stosd: error code", pf_err, 2);
        expect(pf_ecx == 16 && pf_edi == L0 + 0x800, r, "stosd: ECX at the #PF", pf_ecx, 16);
        expect(c == 0 && frame0[0x200] == (0xabc00000u | r) &&
                   frame0[0x200 - 15] == (0xabc00000u | r),
               r, "stosd: done after the handler", frame0[0x200 - 15], 0xabc00000u | r);
    }
    CHECK(bad == 0, "std; rep stosd onto a page not present: #PF with CR2 at the first element");

    /* 2. std; rep movsd: the source not present (a read: error code 0). */
    bad = 0;
    map(L1, (u32)frame1, P | W);
    invlpg(L1);
    for (u32 r = 0; r < 40; r++) {
        map(L0, 0, 0);
        invlpg(L0);
        fix_lin = L0, fix_phys = (u32)frame0;
        pf_count = 0;
        u32 c = std_rep_movsd(L0 + 0x400, L1 + 0x400, 32);
        expect(pf_count == 1, r, "movsd: one #PF", pf_count, 1);
        expect(pf_cr2 == L0 + 0x400, r, "movsd: CR2 (the first source element)", pf_cr2,
               L0 + 0x400);
        expect(pf_err == 0, r, "movsd: error code", pf_err, 0);
        expect(pf_ecx == 32 && pf_esi == L0 + 0x400, r, "movsd: ECX at the #PF", pf_ecx, 32);
        expect(c == 0, r, "movsd: done", c, 0);
    }
    CHECK(bad == 0, "std; rep movsd from a page not present: #PF with CR2 at the first element");

    /* 3. std; rep stosd onto a read-only page (CR0.WP): error code 3. */
    bad = 0;
    for (u32 r = 0; r < 40; r++) {
        map(L0, (u32)frame0, P);
        invlpg(L0);
        fix_lin = L0, fix_phys = (u32)frame0;
        pf_count = 0;
        u32 c = std_rep_stosd_wp(L0 + 0xc00, 64, 0x77700000u | r);
        expect(pf_count == 1, r, "wp stosd: one #PF", pf_count, 1);
        expect(pf_cr2 == L0 + 0xc00, r, "wp stosd: CR2 (the first element)", pf_cr2,
               L0 + 0xc00);
        expect(pf_err == 3, r, "wp stosd: error code", pf_err, 3);
        expect(c == 0, r, "wp stosd: done", c, 0);
    }
    CHECK(bad == 0, "std; rep stosd onto a read-only page: #PF with CR2 at the first element");
    set_handler(14, 0);

    /* 4. F2 A5: REPNE MOVSD repeats as REP MOVSD. */
    static volatile u32 a[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, b[8];
    u32 c = repne_movsd((u32)a, (u32)b, 8);
    CHECK_EQ(c, 0, "repne movsd: ECX 0 after");
    CHECK_EQ(b[7], 8, "repne movsd: all 8 dwords copied");
    guest_exit();
}
