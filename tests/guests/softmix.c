/*
 * softmix.c (review) - soft string sites with one pointer soft (a churning kmap-style
 * slot, whole range on it) and the other through the window faulting part-way (its
 * range crosses into a page not present): ESI, EDI, ECX, CR2 at the #PF, the copy
 * finished after the handler; forward and backward; then the same through DS and ES
 * with non-zero bases (DS's wrapping at 4 GiB).
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define S0 0x40001000u
#define NFRAMES 8
#define ROUNDS 400

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
static u32 pt_hi[1024] __attribute__((aligned(4096)));
static volatile u32 frames[NFRAMES][1024] __attribute__((aligned(4096)));
static volatile u32 dbuf[2][1024] __attribute__((aligned(4096)));

static u32 orig(u32 f, u32 i) { return f << 16 | i; }

static void map(u32 lin, u32 phys)
{
    pt_hi[(lin >> 12) & 0x3ff] = phys ? phys | P | W : 0;
}

static u32 *pte_of(u32 lin) { return &pt[lin >> 22][(lin >> 12) & 0x3ff]; }

static volatile u32 pf_count, pf_cr2, pf_err, pf_ecx, pf_edi, pf_esi, pf_fix;
static void on_pf(struct frame *f)
{
    __asm__ volatile("cld");
    pf_count++;
    pf_cr2 = read_cr2();
    pf_err = f->err;
    pf_ecx = f->ecx;
    pf_edi = f->edi;
    pf_esi = f->esi;
    *pte_of(pf_fix) = pf_fix | P | W;
    invlpg(pf_fix);
}

struct regs { u32 esi, edi, ecx; };

static struct regs movsd_fwd(u32 s, u32 d, u32 n)
{
    struct regs r;
    __asm__ volatile("cld\n\trep movsl" : "=S"(r.esi), "=D"(r.edi), "=c"(r.ecx)
                     : "0"(s), "1"(d), "2"(n) : "memory");
    return r;
}

static struct regs movsd_back(u32 s, u32 d, u32 n)
{
    struct regs r;
    __asm__ volatile("std\n\trep movsl\n\tcld" : "=S"(r.esi), "=D"(r.edi), "=c"(r.ecx)
                     : "0"(s), "1"(d), "2"(n) : "memory");
    return r;
}

#define SEL_DSB 0x68 /* gdt[13]: base DSBASE */
#define SEL_ESB 0x70 /* gdt[14]: base ESBASE */
#define DSBASE 0xf0000000u
#define ESBASE 0x00100000u

static struct regs movsd_seg(u32 s, u32 d, u32 n)
{
    struct regs r;
    __asm__ volatile("pushl %%ds\n\tpushl %%es\n\t"
                     "movl %6, %%eax\n\tmovl %%eax, %%ds\n\tmovl %7, %%eax\n\tmovl %%eax, %%es\n\t"
                     "cld\n\trep movsl\n\t"
                     "popl %%es\n\tpopl %%ds"
                     : "=S"(r.esi), "=D"(r.edi), "=c"(r.ecx)
                     : "0"(s), "1"(d), "2"(n), "i"(SEL_DSB), "i"(SEL_ESB)
                     : "memory", "eax");
    return r;
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
    pd[S0 >> 22] = (u32)pt_hi | P | W;
    for (u32 f = 0; f < NFRAMES; f++)
        for (u32 i = 0; i < 1024; i++)
            frames[f][i] = orig(f, i);
    gdt_set(13, DSBASE, 0xfffff, 0x92, 0xc);
    gdt_set(14, ESBASE, 0xfffff, 0x92, 0xc);
    gdt_reload();
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u);
    set_handler(14, on_pf);

    u32 d0 = (u32)dbuf[0], d1 = (u32)dbuf[1];
    for (int mode = 0; mode < 3; mode++) {
        bad = 0;
        for (u32 r = 0; r < ROUNDS; r++) {
            u32 f = r % NFRAMES;
            map(S0, (u32)frames[f]);
            for (u32 i = 0; i < 2048; i++)
                ((volatile u32 *)dbuf)[i] = 0;
            /* 16 dwords from the slot into dbuf, 6 of them on dbuf[1] (not present). */
            *pte_of(d1) = 0;
            invlpg(d1);
            pf_fix = d1;
            pf_count = 0;
            struct regs g;
            u32 so = 0x100 + (r % 64) * 4, want_esi, want_edi, want_ecx, want_cr2;
            if (mode == 0) {
                g = movsd_fwd(S0 + so, d1 - 40, 16);
                want_esi = S0 + so + 40, want_edi = d1, want_ecx = 6, want_cr2 = d1;
                expect(g.esi == S0 + so + 64 && g.edi == d1 + 24 && g.ecx == 0, r,
                       "fwd: registers after", g.esi, S0 + so + 64);
            } else if (mode == 1) {
                /* backward: first element at d1 + 20, down across into dbuf[0] ... the
                   other way round: dbuf[0] not present, first element on dbuf[1] */
                *pte_of(d1) = d1 | P | W;
                invlpg(d1);
                *pte_of(d0) = 0;
                invlpg(d0);
                pf_fix = d0;
                g = movsd_back(S0 + so + 60, d1 + 20, 16);
                want_esi = S0 + so + 60 - 24, want_edi = d0 + 4092, want_ecx = 10,
                want_cr2 = d0 + 4092;
                expect(g.esi == S0 + so - 4 && g.edi == d1 + 20 - 64 && g.ecx == 0, r,
                       "back: registers after", g.edi, d1 + 20 - 64);
            } else {
                /* DS base 0xf0000000 (DS:ESI wraps at 4 GiB onto the slot), ES base 1 MiB */
                g = movsd_seg(S0 + so - DSBASE, d1 - 40 - ESBASE, 16);
                want_esi = S0 + so + 40 - DSBASE, want_edi = d1 - ESBASE, want_ecx = 6,
                want_cr2 = d1;
                expect(g.esi == S0 + so + 64 - DSBASE && g.edi == d1 + 24 - ESBASE &&
                           g.ecx == 0,
                       r, "seg: registers after", g.esi, S0 + so + 64 - DSBASE);
            }
            expect(pf_count == 1, r, "one #PF", pf_count, 1);
            expect(pf_cr2 == want_cr2, r, "CR2", pf_cr2, want_cr2);
            expect(pf_err == 2, r, "error code", pf_err, 2);
            expect(pf_esi == want_esi, r, "ESI at the #PF", pf_esi, want_esi);
            expect(pf_edi == want_edi, r, "EDI at the #PF", pf_edi, want_edi);
            expect(pf_ecx == want_ecx, r, "ECX at the #PF", pf_ecx, want_ecx);
            /* the data: 16 dwords of frame f from so/4 */
            for (u32 k = 0; k < 16; k++) {
                u32 at, from = so / 4 + k;
                if (mode == 1)
                    at = (d1 + 20 - 60) + 4 * k;
                else
                    at = d1 - 40 + 4 * k;
                u32 got = *(volatile u32 *)at;
                expect(got == orig(f, from), r, "copied dword", got, orig(f, from));
            }
            *pte_of(d0) = d0 | P | W;
            *pte_of(d1) = d1 | P | W;
            invlpg(d0);
            invlpg(d1);
            map(S0, 0);
            invlpg(S0);
        }
        CHECK(bad == 0, mode == 0 ? "soft source, window destination faulting part-way (fwd)"
                        : mode == 1 ? "soft source, window destination faulting part-way (back)"
                                    : "the same through DS and ES with bases");
    }
    guest_exit();
}
