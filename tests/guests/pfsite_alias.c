/*
 * pfsite_alias.c - one page of code mapped at sixteen linear addresses, as a shared
 * library is in processes that map it at different places (issue 17).  The load in it
 * takes page faults again and again through one alias until xbt makes it a fault site,
 * then through each of the others.  xbt keys sites by the code's physical address and
 * copies a block to another alias with its checks (relocation): the fault of every
 * round must still name the alias it came through (EIP), the load's result must be
 * the page's, and after the code page is rewritten through its identity mapping every
 * alias must run the new code.  Before the load became a site, every other alias had
 * run it already: those translations lack the check, and neither they nor copies of
 * them may run on.
 *
 * ctest bounds xbt's statistics (run-guest.sh): one fault site for all sixteen
 * aliases, and few host faults (a site's misses are callouts).  Keyed by linear
 * address, each alias made a site of its own after four host faults of its own; with
 * the translations made before the site left to drop themselves at their own faults,
 * half of the aliases kept taking host faults.
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define VA 0x40000000u         /* pt_hi's 4 MiB */
#define NALIAS 16
#define ALIAS(k) (VA + (k) * 0x11000u) /* page k * 17 of pt_hi */
#define OFF 0x123u             /* the function's offset in its page */
#define DATA_PTE 0x300u
#define DATA_VA (VA + (DATA_PTE << 12))
#define ROUNDS 24

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096))); /* identity 0..16 MiB */
static u32 pt_hi[1024] __attribute__((aligned(4096)));
static u8 code[4096] __attribute__((aligned(4096)));
static volatile u32 data[1024] __attribute__((aligned(4096)));

/* Notes the fault; the data page made present again, the load runs again. */
static void pf_handler(struct frame *f)
{
    pf_note(f, DATA_VA, 4096);
    pt_hi[DATA_PTE] = (u32)data | P | W;
}

/* The function at alias k: EAX = [ECX] (and, rewritten, + 1). */
static u32 call_alias(u32 k, u32 addr)
{
    u32 v, fn = ALIAS(k) + OFF;
    __asm__ volatile("call *%2" : "=a"(v), "+c"(addr) : "r"(fn) : "memory", "edx", "cc");
    return v;
}

static void expect(int ok, u32 k, u32 round, const char *what)
{
    if (!ok && phase_miss())
        printf("  alias %u round %u: %s (count %u cr2 %x err %x eip %x)\n", k, round, what,
               pf_seen.count, pf_seen.cr2, pf_seen.err, pf_seen.eip);
}

/* One round through alias k with the data page not present: one #PF at the load, with
   CR2, error code 0 (read, not present, supervisor) and the alias's own EIP; then the
   value, plus `inc`. */
static void fault_round(u32 k, u32 r, u32 inc)
{
    u32 off = (r * 52 + k * 12) & 0xFFCu, before = pf_seen.count;
    data[off / 4] = 0x5100 + r + k * 0x100;
    pt_hi[DATA_PTE] = 0;
    invlpg(DATA_VA);
    u32 v = call_alias(k, DATA_VA + off);
    expect(pf_seen.count == before + 1 && pf_seen.cr2 == DATA_VA + off && pf_seen.err == 0 &&
           pf_seen.eip == ALIAS(k) + OFF, k, r, "fault");
    expect(v == data[off / 4] + inc, k, r, "value");
}

/* Rounds through alias k with the page present: no fault. */
static void plain_round(u32 k, u32 r, u32 inc)
{
    u32 before = pf_seen.count;
    data[r] = 0x7700 + r + k;
    u32 v = call_alias(k, DATA_VA + 4 * r);
    expect(pf_seen.count == before && v == 0x7700 + r + k + inc, k, r, "plain load");
}

void main(void)
{
    identity_16m(pd, pt);
    pd[VA >> 22] = (u32)pt_hi | P | W;
    for (u32 k = 0; k < NALIAS; k++)
        pt_hi[(ALIAS(k) - VA) >> 12] = (u32)code | P; /* read-only: written only below */
    pt_hi[DATA_PTE] = (u32)data | P | W;
    memset(code, 0xcc, sizeof code);
    code[OFF] = 0x8b, code[OFF + 1] = 0x01, code[OFF + 2] = 0xc3; /* movl (%ecx), %eax; ret */
    set_handler(14, pf_handler);
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u); /* PG and WP */

    /* Aliases 1-15 run first, while the load is no site: translations without a check. */
    for (u32 k = 1; k < NALIAS; k++)
        for (u32 r = 0; r < 4; r++)
            plain_round(k, r, 0);
    phase_end("aliases 1-15 before any fault: the page's value");

    for (u32 r = 0; r < ROUNDS; r++)
        fault_round(0, r, 0);
    phase_end("alias 0: a #PF every round, with its own EIP and CR2");

    for (u32 k = 1; k < NALIAS; k++)
        for (u32 r = 0; r < ROUNDS; r++)
            fault_round(k, r, 0);
    phase_end("aliases 1-15: a #PF every round, each with its own EIP");

    /* The code rewritten through its identity mapping: movl (%ecx), %eax; incl %eax; ret. */
    code[OFF + 2] = 0x40, code[OFF + 3] = 0xc3;
    for (u32 k = 0; k < NALIAS; k++)
        plain_round(k, k, 1);
    phase_end("every alias runs the rewritten code");

    for (u32 k = NALIAS; k-- > 0;)
        for (u32 r = 0; r < ROUNDS / 2; r++)
            fault_round(k, r, 1);
    phase_end("rewritten: a #PF every round through every alias, with its EIP");
    guest_exit();
}
