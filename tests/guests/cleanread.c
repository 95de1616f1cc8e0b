/*
 * cleanread.c - reads of pages whose entries are writable but clean (dirty flag clear),
 * through one load instruction that becomes a soft fault site on xbt.  With several
 * vCPUs xbt reads such pages without a host mapping (docs/ARCHITECTURE.md, "Several
 * vCPUs": a read-only mapping's first write would be a cross-CPU TLB flush), up to 64
 * reads per slot between two CR3 loads; run by ctest on QEMU TCG and on xbt with a
 * second vCPU (left waiting for its start-up), where the run must show soft accesses
 * and at most XBT_SOFT_MAX of them.  Checked:
 *   1. 128 pages not yet accessed: the values, accessed set and dirty clear after;
 *   2. 300 reads of one page: dirty stays clear (the window takes it after 64);
 *   3. a page remapped to another frame with INVLPG: the new frame is read;
 *   4. a page made not present with INVLPG: #PF with error 0 and CR2, then the value;
 *   5. a read-only clean page (CR0.WP clear): the values, accessed but not dirty;
 *   6. two pages read in turn 2,000 times: the values, dirty clear (and, through the
 *      ctest bound, not a soft read each: pages that share a slot of the count once
 *      reset each other's count).
 */
#include "lib/guest.h"
#define P 1u
#define W 2u
#define U 4u
#define A 0x20u
#define D 0x40u
#define R 0x02000000u
#define NP 128
static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
static u32 pt_r[1024] __attribute__((aligned(4096)));
static u8 buf[NP][4096] __attribute__((aligned(4096)));
static u8 kstack[8192] __attribute__((aligned(16)));
u32 site_load(u32 addr);
void site_store(u32 addr, u32 value);
__asm__(".text\n.globl site_load\nsite_load:\n\tmovl 4(%esp), %ecx\n\tmovl (%ecx), %eax\n\tret\n"
        ".globl site_store\nsite_store:\n\tmovl 4(%esp), %ecx\n\tmovl 8(%esp), %edx\n"
        "\tmovl %edx, (%ecx)\n\tret\n");
static volatile u32 pf_count, pf_err, pf_cr2, pf_fix;
static void pf_handler(struct frame *f)
{
    pf_count++;
    pf_err = f->err;
    pf_cr2 = read_cr2();
    if ((pf_cr2 >> 22) == (R >> 22)) {
        pt_r[(pf_cr2 >> 12) & 1023] = pf_fix;
        return;
    }
    printf("FAIL unexpected #PF at %x, EIP %x, error %x\n", pf_cr2, f->eip, f->err);
    guest_exit();
}
void main(void)
{
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(14, pf_handler);
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | P | W | U;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | P | W | U;
    pd[R >> 22] = (u32)pt_r | P | W;
    for (u32 k = 0; k < NP; k++) {
        pt_r[k] = (u32)buf[k] | P | W;
        memcpy(&buf[k][8], &k, 4);
    }
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u);
    u32 bad = 0, bits = 0;
    for (u32 k = 0; k < NP; k++)
        bad += site_load(R + (k << 12) + 8) != k;
    for (u32 k = 0; k < NP; k++)
        bits += (pt_r[k] & (A | D)) != A;
    CHECK_EQ(bad, 0, "phase1 values");
    CHECK_EQ(bits, 0, "phase1 A set D clear");
    /* many reads in one epoch */
    bad = 0;
    for (u32 i = 0; i < 300; i++)
        bad += site_load(R + (5u << 12) + 8) != 5;
    CHECK_EQ(bad, 0, "phase2 values");
    CHECK_EQ(pt_r[5] & (A | D), A, "phase2 D clear");
    /* remap with INVLPG: the new frame must be read */
    bad = 0;
    for (u32 k = 10; k < 60; k++) {
        u32 v = site_load(R + (k << 12) + 8);
        bad += v != k;
        pt_r[k] = (u32)buf[(k + 1) % NP] | P | W;
        invlpg(R + (k << 12));
        bad += site_load(R + (k << 12) + 8) != (k + 1) % NP;
    }
    CHECK_EQ(bad, 0, "phase3 remap+invlpg");
    /* not present + INVLPG: #PF error 0 (supervisor read, not present) */
    u32 badpf = 0;
    for (u32 k = 60; k < 100; k++) {
        (void)site_load(R + (k << 12) + 8);
        pt_r[k] = 0;
        invlpg(R + (k << 12));
        pf_fix = (u32)buf[k] | P | W;
        u32 before = pf_count;
        u32 v = site_load(R + (k << 12) + 8);
        badpf += pf_count != before + 1 || pf_err != 0 || pf_cr2 != R + (k << 12) + 8 || v != k;
    }
    CHECK_EQ(badpf, 0, "phase4 #PF err 0");
    /* read-only clean page (CR0.WP=0 default): reads fine, D stays clear */
    pt_r[110] = (u32)buf[110] | P;
    invlpg(R + (110u << 12));
    bad = 0;
    for (u32 i = 0; i < 100; i++)
        bad += site_load(R + (110u << 12) + 8) != 110;
    CHECK_EQ(bad, 0, "phase5 ro values");
    CHECK_EQ(pt_r[110] & (A | D), A, "phase5 ro A, not D");
    /* two pages in one slot of the clean table (0 and 55), alternately, one epoch */
    printf("COLLIDE begin\n");
    bad = 0;
    u32 n = cmdline_u32("n", 2000);
    for (u32 i = 0; i < n; i++) {
        bad += site_load(R + (4u << 12) + 8) != 4;
        bad += site_load(R + (93u << 12) + 8) != 93;
    }
    CHECK_EQ(bad, 0, "phase6 values");
    CHECK_EQ((pt_r[4] | pt_r[93]) & D, 0, "phase6 D clear");
    guest_exit();
}
