/*
 * pfback.c - fault sites that stop faulting (issue 17).  xbt translates an instruction
 * whose accesses keep faulting again with a check of its page before the access; when
 * the instruction then runs hot without its check making a callout (a loop that faulted
 * only while its data were first touched), xbt takes the site back and translates the
 * instruction without the check again.  Here a store in a loop (the "quiet" one) and a
 * load after it (the "busy" one) are reached only through pair():
 *
 *   1. both fault on pages not present, round after round (the handler maps the page
 *      and the instruction runs again): both become sites;
 *   2. for about 100 ms of TSC the store's page stays mapped and the store runs 2,000
 *      times per call, while the load's page is taken away before every call: the load
 *      keeps faulting, the store never; xbt takes the store's site back;
 *   3. the store faults again round after round: each #PF's CR2, error code and EIP are
 *      checked, and it becomes a site again;
 *   4. quiet again, twice as long (the second take-back needs twice the time).
 *
 * Every store is found in its frame and every load returns its frame's value, in every
 * phase.  ctest requires at least two sites taken back (run-guest.sh,
 * XBT_PF_BACKS_MIN); on other hypervisors the guest checks only the results.
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define VA 0x40000000u /* pt_hi's 4 MiB */
#define QPAGE 3u       /* the store's page in pt_hi */
#define BPAGE 9u       /* the load's page */
#define ROUNDS 40
#define QUIET_TSC 300000000ull /* phase 2's length; phase 4 runs twice as long */

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
static u32 pt_hi[1024] __attribute__((aligned(4096)));
static volatile u32 frames[16][1024] __attribute__((aligned(4096)));

/* n times: store value at q; then load b. */
u32 pair(u32 q, u32 b, u32 value, u32 n);
extern u8 pair_store_at[], pair_load_at[];
__asm__(".text\n.globl pair\npair:\n\tpushl %esi\n"
        "\tmovl 8(%esp), %ecx\n\tmovl 12(%esp), %eax\n\tmovl 16(%esp), %edx\n"
        "\tmovl 20(%esp), %esi\n"
        ".globl pair_store_at\npair_store_at:\n\tmovl %edx, (%ecx)\n"
        "\tdecl %esi\n\tjnz pair_store_at\n"
        ".globl pair_load_at\npair_load_at:\n\tmovl (%eax), %eax\n\tpopl %esi\n\tret\n");

/* Notes the fault and maps the page onto its frame; the instruction runs again. */
static void pf_handler(struct frame *f)
{
    u32 n = (pf_note(f, VA, sizeof frames) - VA) >> 12;
    pt_hi[n] = (u32)frames[n] | P | W;
}

static void unmap(u32 n)
{
    pt_hi[n] = 0;
    invlpg(VA + (n << 12));
}

static u32 bad;
static void expect(int ok, u32 round, const char *what, u32 got, u32 want)
{
    if (!ok && bad++ == 0)
        printf("  round %u: %s: got %x want %x\n", round, what, got, want);
}

/* One call of pair() at offsets that move with the round, n stores; mapq/mapb: whether
   the pages stay mapped (else taken away first, so the instruction faults once). */
static void one(u32 r, int mapq, int mapb, u32 n)
{
    u32 qi = (r * 37) % 1024, bi = (r * 53) % 1024;
    if (!mapq)
        unmap(QPAGE);
    if (!mapb)
        unmap(BPAGE);
    frames[BPAGE][bi] = 0xb0000000u | r;
    u32 before = pf_seen.count;
    u32 v = pair(VA + (QPAGE << 12) + 4 * qi, VA + (BPAGE << 12) + 4 * bi, 0xa0000000u | r, n);
    expect(v == (0xb0000000u | r), r, "the load's value", v, 0xb0000000u | r);
    expect(frames[QPAGE][qi] == (0xa0000000u | r), r, "the store's frame", frames[QPAGE][qi],
           0xa0000000u | r);
    u32 faults = !mapq + !mapb;
    expect(pf_seen.count - before == faults, r, "page faults", pf_seen.count - before, faults);
    if (!mapb) { /* the last fault was the load's (the store's came first) */
        expect(pf_seen.cr2 == VA + (BPAGE << 12) + 4 * bi, r, "the load's CR2", pf_seen.cr2,
               VA + (BPAGE << 12) + 4 * bi);
        expect(pf_seen.err == 0 && pf_seen.eip == (u32)pair_load_at, r, "the load's #PF error and EIP",
               pf_seen.err << 24 | pf_seen.eip, (u32)pair_load_at);
    } else if (!mapq) {
        expect(pf_seen.cr2 == VA + (QPAGE << 12) + 4 * qi, r, "the store's CR2", pf_seen.cr2,
               VA + (QPAGE << 12) + 4 * qi);
        expect(pf_seen.err == W && pf_seen.eip == (u32)pair_store_at, r, "the store's #PF error and EIP",
               pf_seen.err << 24 | pf_seen.eip, (u32)pair_store_at);
    }
}

/* The store's page mapped, the load's taken away before each call, for `tsc` cycles. */
static u32 quiet(u32 first, u64 tsc)
{
    u64 end = rdtsc() + tsc;
    u32 r = first;
    while (rdtsc() < end)
        one(r++, 1, 0, 2000);
    return r - first;
}

void main(void)
{
    identity_16m(pd, pt);
    pd[VA >> 22] = (u32)pt_hi | P | W;
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u); /* PG and WP */
    set_handler(14, pf_handler);

    for (u32 r = 0; r < ROUNDS; r++)
        one(r, 0, 0, 1);
    CHECK(bad == 0, "both instructions fault every round: #PF, CR2, results");
    bad = 0;
    u32 n = quiet(ROUNDS, QUIET_TSC);
    CHECK(bad == 0, "the store's page stays mapped, the load's faults: results");
    printf("  %u calls in the quiet phase\n", n);
    bad = 0;
    for (u32 r = 0; r < ROUNDS; r++)
        one(r, 0, 1, 1);
    CHECK(bad == 0, "the store faults again every round: #PF error 2, CR2, EIP, results");
    bad = 0;
    quiet(ROUNDS, 2 * QUIET_TSC);
    CHECK(bad == 0, "quiet again: results");
    guest_exit();
}
