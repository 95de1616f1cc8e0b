/*
 * softsite.c - pages whose mapping churns, reached by fault sites (issue 17's soft
 * sites: xbt leaves such a page out of its host window and lets the site's access reach
 * the guest page through the walk a callout makes, without a host mapping change).
 * Every access is checked against the frame the current tables name:
 *   processes  300 address spaces created, run and torn down in turn (as a Unix
 *              fork+exit), each with its stack page demand-paged by the #PF handler
 *              onto one of three frames in rotation: the process calls and returns,
 *              pushes a value of its own, pops it back and reports both; the kernel then finds the value in
 *              that frame, the other two frames holding their last processes' values,
 *              and the stack's table entry accessed and dirty;
 *   two dirs   two page directories whose first tables are copies of the kernel's that
 *              map one page (PAGE) onto two different frames (the rest alike, so the
 *              page sits inside a run of the kernel's own pages), switched by CR3 400
 *              times: one load instruction must read the frame of the current directory,
 *              one store instruction must write it; a first phase of loads alone must
 *              leave the entries' dirty flags clear (a read sets only accessed);
 *   code       the same switch where the page of one directory holds code that the
 *              store instruction rewrites before each call: the call must run the new
 *              code (a write to translated code is never a soft one).
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define U 4u
#define A 0x20u
#define D 0x40u
#define VA 0x40000000u    /* the processes' user page table (pt_user) */
#define STACK_PAGE 0xffu  /* its entry of the stack page: VA + 0xff000 */
#define NPROC 300
#define PAGE 0x00300000u  /* in the first table: mapped differently in pd_a and pd_b */
#define ROUNDS 400

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096))); /* identity 0..16 MiB, user too */
static u32 pd_proc[1024] __attribute__((aligned(4096)));
static u32 pt_user[1024] __attribute__((aligned(4096)));
static u32 pd_a[1024] __attribute__((aligned(4096)));
static u32 pd_b[1024] __attribute__((aligned(4096)));
static u32 pt_a[1024] __attribute__((aligned(4096)));
static u32 pt_b[1024] __attribute__((aligned(4096)));
static u8 frames[3][4096] __attribute__((aligned(4096)));
static u8 page_a[4096] __attribute__((aligned(4096)));
static u8 page_b[4096] __attribute__((aligned(4096)));
static u8 kstack[8192] __attribute__((aligned(16)));

/* The process: EAX = its value (user_enter's); calls a RET, pushes the value, pops it
   into ECX, reports (EAX 2, EBX pushed, ECX popped), exits (EAX 0).  Its CALL, RET,
   PUSH and POP are the same instructions in every process: fault sites after the first
   processes' stack faults. */
extern u8 proc_entry[];
__asm__(".text\n.globl proc_entry\nproc_entry:\n"
        "\tmovl %eax, %ebx\n\tmovl $0, %ecx\n"
        "\tcall 2f\n" /* the stack's first touch: a return address, then RET */
        "\tpushl %ebx\n"
        "\tpopl %ecx\n"
        "\tmovl $2, %eax\n\tint $0x80\n"
        "\tmovl $0, %eax\n\tint $0x80\n"
        "1:\tjmp 1b\n"
        "2:\tret\n");

/* The two directories' sites: one load, one store, each reached only from here. */
u32 site_load(u32 addr);
void site_store(u32 addr, u32 value);
__asm__(".text\n.globl site_load\nsite_load:\n\tmovl 4(%esp), %ecx\n\tmovl (%ecx), %eax\n\tret\n"
        ".globl site_store\nsite_store:\n\tmovl 4(%esp), %ecx\n\tmovl 8(%esp), %edx\n"
        "\tmovl %edx, (%ecx)\n\tret\n");

static volatile u32 cur_value, got_pushed, got_popped, reports, stack_faults;
static volatile u32 cur_frame;

static void syscall_handler(struct frame *f)
{
    if (f->eax == 2) {
        got_pushed = f->ebx;
        got_popped = f->ecx;
        reports++;
    } else if (f->eax == 0) {
        user_return(f);
    }
}

static void pf_handler(struct frame *f)
{
    u32 cr2 = read_cr2();
    if ((f->cs & 3) && (cr2 >> 12) == ((VA >> 12) + STACK_PAGE) && !(pt_user[STACK_PAGE] & P)) {
        pt_user[STACK_PAGE] = (u32)frames[cur_frame] | P | W | U;
        stack_faults++;
        return;
    }
    printf("FAIL unexpected #PF at %x, EIP %x, error %x\n", cr2, f->eip, f->err);
    guest_exit();
}

static void processes(void)
{
    u32 last[3] = { 0, 0, 0 }, bad_value = 0, bad_frame = 0, bad_other = 0, bad_bits = 0;
    for (u32 i = 0; i < NPROC; i++) {
        /* The new address space: the kernel's tables, the code page, no stack yet. */
        memset(pd_proc, 0, sizeof pd_proc);
        for (u32 k = 0; k < 4; k++)
            pd_proc[k] = pd[k];
        memset(pt_user, 0, sizeof pt_user);
        pt_user[0] = ((u32)proc_entry & ~0xFFFu) | P | U;
        pt_user[1] = (((u32)proc_entry & ~0xFFFu) + 0x1000) | P | U;
        pd_proc[VA >> 22] = (u32)pt_user | P | W | U;
        cur_frame = i % 3;
        cur_value = 0x5eed0000u ^ (i * 0x9E3779B1u);
        write_cr3((u32)pd_proc);
        u32 eip = VA + ((u32)proc_entry & 0xFFFu);
        user_enter(eip, VA + (STACK_PAGE << 12) + 0x1000, cur_value);
        u32 pte = pt_user[STACK_PAGE];
        write_cr3((u32)pd);
        u32 stored;
        memcpy(&stored, &frames[cur_frame][0xFFC], 4);
        bad_value += got_pushed != cur_value || got_popped != cur_value;
        bad_frame += stored != cur_value;
        last[cur_frame] = cur_value;
        for (u32 k = 0; k < 3; k++) {
            u32 v;
            memcpy(&v, &frames[k][0xFFC], 4);
            bad_other += v != last[k];
        }
        bad_bits += (pte & (A | D)) != (A | D);
    }
    CHECK_EQ(reports, NPROC, "processes: every process reported");
    CHECK_EQ(stack_faults, NPROC, "processes: each stack page demand-paged once");
    CHECK_EQ(bad_value, 0, "processes: the value popped is the value pushed");
    CHECK_EQ(bad_frame, 0, "processes: the push wrote the frame the tables name");
    CHECK_EQ(bad_other, 0, "processes: the other frames keep their last process's value");
    CHECK_EQ(bad_bits, 0, "processes: the stack's entry is accessed and dirty");
}

static void two_dirs(void)
{
    memcpy(pt_a, pt[0], 4096);
    memcpy(pt_b, pt[0], 4096);
    pt_a[PAGE >> 12] = (u32)page_a | P | W;
    pt_b[PAGE >> 12] = (u32)page_b | P | W;
    memcpy(pd_a, pd, 4096);
    memcpy(pd_b, pd, 4096);
    pd_a[0] = (u32)pt_a | P | W | U;
    pd_b[0] = (u32)pt_b | P | W | U;
    memset(page_a, 0xa5, 4096);
    memset(page_b, 0x5b, 4096);
    u32 bad_a = 0, bad_b = 0;
    /* Loads alone first: the dirty flags stay clear. */
    for (u32 i = 0; i < ROUNDS / 2; i++) {
        write_cr3((u32)pd_a);
        bad_a += site_load(PAGE + 8) != 0xa5a5a5a5u;
        write_cr3((u32)pd_b);
        bad_b += site_load(PAGE + 8) != 0x5b5b5b5bu;
    }
    CHECK_EQ(bad_a + bad_b, 0, "two dirs: each load read its directory's frame");
    CHECK_EQ(pt_a[PAGE >> 12] & (A | D), A, "two dirs: loads set A, not D (first dir)");
    CHECK_EQ(pt_b[PAGE >> 12] & (A | D), A, "two dirs: loads set A, not D (second dir)");
    u32 bad_w = 0;
    for (u32 i = 0; i < ROUNDS; i++) {
        write_cr3((u32)pd_a);
        site_store(PAGE + 16, i);
        bad_a += site_load(PAGE + 16) != i;
        write_cr3((u32)pd_b);
        site_store(PAGE + 16, ~i);
        bad_b += site_load(PAGE + 16) != ~i;
        write_cr3((u32)pd);
        u32 va, vb;
        memcpy(&va, page_a + 16, 4);
        memcpy(&vb, page_b + 16, 4);
        bad_w += va != i || vb != ~i;
    }
    CHECK_EQ(bad_a + bad_b, 0, "two dirs: each load after a store read its own frame");
    CHECK_EQ(bad_w, 0, "two dirs: each store wrote its directory's frame");
    CHECK_EQ(pt_a[PAGE >> 12] & D, D, "two dirs: stores set D (first dir)");
    CHECK_EQ(pt_b[PAGE >> 12] & D, D, "two dirs: stores set D (second dir)");
}

/* page_b holds `mov $imm32, %eax; ret`, rewritten through the store site. */
static void code(void)
{
    static const u8 insn[6] = { 0xb8, 0, 0, 0, 0, 0xc3 };
    memcpy(page_b, insn, sizeof insn);
    u32 bad = 0;
    for (u32 i = 0; i < ROUNDS; i++) {
        write_cr3((u32)pd_a);
        site_store(PAGE + 16, i); /* data in the other directory's frame */
        write_cr3((u32)pd_b);
        site_store(PAGE + 1, 0xc0de0000u + i);
        u32 r = ((u32(*)(void))PAGE)();
        bad += r != 0xc0de0000u + i;
    }
    write_cr3((u32)pd);
    CHECK_EQ(bad, 0, "code: each call ran the code the store wrote just before");
}

void main(void)
{
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(14, pf_handler);
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | P | W | U;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | P | W | U;
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u);
    processes();
    two_dirs();
    code();
    guest_exit();
}
