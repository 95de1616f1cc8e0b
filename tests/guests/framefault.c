/*
 * framefault.c - a #PF while an interrupt frame is pushed: which push faults, what CR2
 * says, and which pages the walk marked.  User code makes INT 0x32 through a ring-0 gate
 * whose stack (ESP0 in the TSS) lies on 4 KiB pages of a test region, some not present;
 * the #PF is delivered through a gate to the DPL 3 code segment (no stack switch: its
 * handler runs at CPL 3 on the user's stack, records the error code and skips the INT),
 * then INT 0x21 (a good gate, the stack repaired first) brings the kernel CR2.  The CPU
 * pushes SS first, at the top, so CR2 is the first push that faults (SDM vol. 3 6.12.1:
 * the frame goes on the new stack word by word); a page below it is not touched.
 *   1. ESP0 at the top of a page that is not present: CR2 = ESP0 - 4.
 *   2. ESP0 8 bytes into a present page whose lower neighbour is not present: SS and ESP
 *      land, EFLAGS faults: CR2 = ESP0 - 12.
 *   3. ESP0 8 bytes into a page that is not present, above a present one: CR2 = ESP0 - 4,
 *      and the present page's accessed flag stays clear.
 *   4. Everything present: the INT is delivered (the frame where it belongs).
 * QEMU TCG pushes word by word too; both must agree with these values.
 */
#include "lib/guest.h"

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[1024] __attribute__((aligned(4096)));
static u8 frames[4][4096] __attribute__((aligned(4096)));
#define REGION 0x01000000u /* PDE 4: 4 KiB pages through pt, onto frames[] */
static u8 kstack[8192] __attribute__((aligned(4096)));
static u8 ustack[8192] __attribute__((aligned(4096)));

volatile u32 pf_err, pf_count, delivered, cr2_seen;

/* #PF from CPL 3 through a gate to the user code segment: the error code popped, the
   INT skipped (2 bytes), back by IRET (same level). */
void upf(void);
__asm__(".text\n.globl upf\nupf:\n"
        "\tpopl pf_err\n\taddl $2, (%esp)\n\tincl pf_count\n\tiret\n");

/* The ring-0 handler of INT 0x32 when it is delivered. */
static void h32(struct frame *f)
{
    (void)f;
    delivered++;
}

/* INT 0x21: CR2 now, then back to the kernel's caller. */
static void h21(struct frame *f)
{
    u32 cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    cr2_seen = cr2;
    user_return(f);
}

/* User code: the INT under test, the ring-0 stack repaired (the TSS is in a user page
   here), then home. */
static void user_case(void)
{
    __asm__ volatile("int $0x32" ::: "memory", "cc");
    tss_set_stack(0, (u32)(kstack + sizeof kstack), SEL_DATA);
    __asm__ volatile("int $0x21" ::: "memory");
}

/* Region page k present (its frame) or not; accessed flag cleared. */
static void region_page(int k, int present)
{
    pt[k] = present ? ((u32)frames[k] | 7) : 0;
    invlpg(REGION + (u32)k * 4096);
}

static u32 run_case(u32 esp0)
{
    pf_err = pf_count = delivered = cr2_seen = 0;
    tss_set_stack(0, esp0, SEL_DATA);
    user_run(user_case, (u32)(ustack + sizeof ustack));
    return cr2_seen;
}

void main(void)
{
    for (u32 i = 0; i < 32; i++)
        pd[i] = i << 22 | 0x87; /* 4 MiB pages: present, writable, user */
    pd[REGION >> 22] = (u32)pt | 7;
    for (int k = 0; k < 4; k++)
        region_page(k, 1);
    u32 cr0 = paging_on_pse(pd);

    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x32, h32), set_handler(0x21, h21);
    idt_set(0x32, isr_table[0x32], SEL_CODE, 0xe, 3);
    idt_set(0x21, isr_table[0x21], SEL_CODE, 0xe, 3);
    idt_set(14, (u32)upf, SEL_UCODE & ~3u, 0xe, 0); /* to DPL 3 code: no stack switch */

    /* 1. The top page not present. */
    region_page(1, 0);
    u32 esp0 = REGION + 2 * 4096;
    u32 cr2 = run_case(esp0);
    CHECK(pf_count == 1 && delivered == 0, "frame in a page not present: one #PF, no INT");
    CHECK_EQ(pf_err, 2, "frame push #PF: a supervisor write to a page not present");
    CHECK_EQ(cr2, esp0 - 4, "frame push #PF: CR2 is the first push (SS, at ESP0 - 4)");

    /* 2. The frame across a boundary, its lower page not present. */
    region_page(1, 1);
    region_page(0, 0);
    esp0 = REGION + 4096 + 8;
    cr2 = run_case(esp0);
    CHECK(pf_count == 1 && delivered == 0, "frame across pages, lower one absent: one #PF");
    CHECK_EQ(cr2, esp0 - 12, "frame push #PF: SS and ESP pushed, EFLAGS faults (ESP0 - 12)");

    /* 3. The frame across a boundary, its upper page not present: the lower one is not
       walked (its accessed flag stays clear). */
    region_page(0, 1);
    region_page(2, 1);
    region_page(3, 0);
    esp0 = REGION + 3 * 4096 + 8;
    cr2 = run_case(esp0);
    CHECK(pf_count == 1 && delivered == 0, "frame across pages, upper one absent: one #PF");
    CHECK_EQ(cr2, esp0 - 4, "frame push #PF: CR2 is the first push in the upper page");
    CHECK((pt[2] & 0x20) == 0, "frame push #PF: the page below the faulting push not accessed");

    /* 4. All present: delivered, the frame on the region's stack. */
    region_page(3, 1);
    cr2 = run_case(esp0);
    CHECK(pf_count == 0 && delivered == 1, "frame across present pages: the INT delivered");
    CHECK((pt[2] & 0x60) == 0x60 && (pt[3] & 0x60) == 0x60,
          "frame across present pages: both pages accessed and dirty");

    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    guest_exit();
}
