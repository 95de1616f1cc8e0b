/*
 * predict.c - code pages a process finds mapped before it touches them (direct
 * execution's predicted working set, shadow-mmu fault.c d_predict), and what no
 * prediction may change: a user program calls a stub in each of 48 read-only code pages
 * (physically scattered, as a page cache's are) and adds up what they return.  Process A
 * runs it first; process B maps the same frames at the same addresses, but one page not
 * present, one supervisor-only and one onto another frame with another stub: B must
 * take the two #PFs (not present, then protection) and get the other stub's value,
 * whatever A left in the host's windows.  Then B's entries are cleared and the CR3
 * reloaded (a process gone) and set again (a new process mapping the same program, as
 * an exec would): its sum again, without a fault.  Under xbt in direct mode, B's and the
 * new process's pages are mostly mapped by prediction (run-guest.sh checks the count
 * with XBT_PREDICTED_MIN); on QEMU the guest itself is checked.
 */
#include "lib/guest.h"

#define UVA_CODE  0x40000000u /* 48 code pages */
#define UVA_DRV   0x40080000u /* the program that calls them */
#define UVA_STACK 0x40101000u /* top of a writable page */
#define NPAGE     48
#define POOL      50          /* frame k of page k: (k * 7) % POOL, never adjacent */
#define PG_NP     10          /* B: not present until its #PF */
#define PG_OTHER  20          /* B: another frame */
#define PG_SUP    30          /* B: supervisor-only until its #PF */

static u8 kstack[8192] __attribute__((aligned(16)));
static u32 pd[2][1024] __attribute__((aligned(4096)));
static u32 pt_k[4][1024] __attribute__((aligned(4096)));
static u32 pt_u[2][1024] __attribute__((aligned(4096)));
static u8 code[POOL][4096] __attribute__((aligned(4096)));
static u8 other[4096] __attribute__((aligned(4096)));
static u8 drv[4096] __attribute__((aligned(4096)));
static u8 stack[2][4096] __attribute__((aligned(4096)));
static volatile u32 sum, pfs, pf_cr2[4], pf_err[4];

/* xor esi, esi; mov ebx, UVA_CODE; mov ecx, NPAGE; 1: call ebx; add esi, eax;
   add ebx, 0x1000; loop 1b; xor eax, eax; int 0x80 (exit, the sum in ESI). */
static const u8 driver[] = {
    0x31, 0xF6, 0xBB, 0x00, 0x00, 0x00, 0x40, 0xB9, NPAGE, 0x00, 0x00, 0x00,
    0xFF, 0xD3, 0x01, 0xC6, 0x81, 0xC3, 0x00, 0x10, 0x00, 0x00, 0xE2, 0xF4,
    0x31, 0xC0, 0xCD, 0x80,
};

/* mov eax, value; ret */
static void stub(u8 *page, u32 value)
{
    page[0] = 0xB8;
    memcpy(page + 1, &value, 4);
    page[5] = 0xC3;
}

static u32 frame_of(u32 k)
{
    return (u32)code[(k * 7) % POOL];
}

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) {
        sum = f->esi;
        user_return(f);
    }
}

/* B's two faults: the page made present, or user-accessible; the call runs again. */
static void pf_handler(struct frame *f)
{
    u32 cr2 = read_cr2();
    if (pfs < 4) {
        pf_cr2[pfs] = cr2;
        pf_err[pfs] = f->err;
    }
    pfs++;
    u32 k = (cr2 - UVA_CODE) >> 12;
    if (cr2 < UVA_CODE || k >= NPAGE || pfs > 8) {
        printf("FAIL unexpected #PF at %08x (error %x, eip %08x)\n", cr2, f->err, f->eip);
        guest_exit();
    }
    pt_u[1][k] |= 5;
    invlpg(cr2);
}

/* Process p's user entries: the code pages (B's three exceptions with `b_odd`), the
   driver and the stack. */
static void map_process(int p, int b_odd)
{
    for (u32 k = 0; k < NPAGE; k++) {
        u32 pte = frame_of(k) | 0x25; /* present, user, read-only, accessed */
        if (b_odd && k == PG_NP)
            pte &= ~1u;
        if (b_odd && k == PG_OTHER)
            pte = (u32)other | 0x25;
        if (b_odd && k == PG_SUP)
            pte &= ~4u;
        pt_u[p][k] = pte;
    }
    pt_u[p][0x80] = (u32)drv | 0x25;
    pt_u[p][0x100] = (u32)stack[p] | 0x67; /* writable, accessed, dirty */
}

static u32 run(int p)
{
    write_cr3((u32)pd[p]);
    sum = 0;
    user_enter(UVA_DRV, UVA_STACK, 0);
    return sum;
}

void main(void)
{
    sse_os_support();
    for (u32 i = 0; i < 4 * 1024; i++)
        pt_k[i / 1024][i % 1024] = (i << 12) | 3;
    u32 want_a = 0;
    for (u32 k = 0; k < NPAGE; k++) {
        stub((u8 *)frame_of(k), 0x1000 + k * 3);
        want_a += 0x1000 + k * 3;
    }
    stub(other, 0x5555);
    u32 want_b = want_a - (0x1000 + PG_OTHER * 3) + 0x5555;
    memcpy(drv, driver, sizeof driver);
    for (int p = 0; p < 2; p++) {
        for (u32 i = 0; i < 4; i++)
            pd[p][i] = (u32)pt_k[i] | 3;
        pd[p][0x100] = (u32)pt_u[p] | 7;
        map_process(p, p == 1);
    }
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(14, pf_handler);
    write_cr3((u32)pd[0]);
    u32 cr0 = read_cr0();
    write_cr0(cr0 | 0x80010000u); /* PG, WP */

    CHECK_EQ(run(0), want_a, "process A's sum");
    CHECK_EQ(pfs, 0, "process A took no #PF");
    CHECK_EQ(run(1), want_b, "process B's sum (its own frame at page 20)");
    CHECK_EQ(pfs, 2, "process B took two #PFs");
    CHECK_EQ(pf_cr2[0], UVA_CODE + PG_NP * 4096, "the first at the page not present");
    CHECK_EQ(pf_err[0], 0x04, "... a user access, not present");
    CHECK_EQ(pf_cr2[1], UVA_CODE + PG_SUP * 4096, "the second at the supervisor page");
    CHECK_EQ(pf_err[1], 0x05, "... a user access, protection");
    CHECK_EQ(run(1), want_b, "process B's sum again");
    CHECK_EQ(run(0), want_a, "process A's sum again");
    /* B gone, a new process in its directory: the same program. */
    for (u32 k = 0; k < 1024; k++)
        pt_u[1][k] = 0;
    write_cr3((u32)pd[1]);
    map_process(1, 0);
    CHECK_EQ(run(1), want_a, "the new process's sum");
    CHECK_EQ(pfs, 2, "and no more #PFs");
    write_cr0(cr0);
}
