/*
 * multitask.c - a small multitasking kernel (issue 5's guest): two user processes in
 * separate address spaces (one page directory each; the same user virtual addresses,
 * different frames), preempted by the PIT at 1 kHz and switched by CR3 in the timer
 * interrupt, system calls through INT 0x80 and SYSENTER (alternating), user stacks
 * demand-paged by the #PF handler, and each process's x87 and SSE registers (a value
 * of its own in ST0 and XMM0, checked after every 4096 counts) saved and restored by
 * the kernel with FXSAVE/FXRSTOR at each switch.  After enough ticks the kernel stops
 * both and checks that each ran, was preempted, faulted in its stack once, kept its
 * own counter in its own frame and never saw another process's x87/SSE values.
 */
#include "lib/guest.h"

#define UVA_CODE  0x40000000u
#define UVA_DATA  0x40001000u
#define UVA_STACK 0x40100000u /* top; the page below is demand-paged */

static u8 kstack[8192] __attribute__((aligned(16)));
static u32 pd[2][1024] __attribute__((aligned(4096)));
static u32 pt_k[4][1024] __attribute__((aligned(4096)));
static u32 pt_u[2][1024] __attribute__((aligned(4096)));
static u8 frames[8][4096] __attribute__((aligned(4096))); /* user frames */
static u32 next_frame;

struct proc {
    u32 eax, ecx, edx, ebx, ebp, esi, edi, eip, eflags, esp;
    u32 runs, stack_faults, syscalls;
    u8 fpu[512] __attribute__((aligned(16))); /* FXSAVE image */
};
static struct proc procs[2] __attribute__((aligned(16)));
static volatile u32 sysenter_calls[2];

/* SYSENTER lands here on the TSS stack with IF clear: count, then back with SYSEXIT
   (EDX = return EIP, ECX = user ESP, both set by the user); STI's shadow covers it. */
void sysenter_entry(void);
__asm__(".text\n.globl sysenter_entry\nsysenter_entry:\n"
        "\tmovl current, %eax\n\tincl sysenter_calls(,%eax,4)\n"
        "\txorl %eax, %eax\n\tsti\n\tsysexit\n");
static volatile int current = -1;
static volatile u32 ticks, switches, stop_all;

/* The user program (position independent): count in the data page; after every 4096
   counts check that XMM0 and ST0 still hold this process's values (data page +8 and
   +24; a mismatch counts at +4), then make a system call, by SYSENTER when bit 12 of
   the counter is set, else by INT 0x80; forever. */
__asm__(".text\n.globl user_prog\nuser_prog:\n"
        "\tmovups 0x40001008, %xmm0\n"
        "\tfldl 0x40001018\n"
        "1:\tincl 0x40001000\n"
        "\ttestl $0xfff, 0x40001000\n\tjnz 1b\n"
        "\tpushl %eax\n\tpushl %ecx\n\tpushl %edx\n"
        "\tmovups 0x40001008, %xmm1\n\tpcmpeqd %xmm0, %xmm1\n\tpmovmskb %xmm1, %eax\n"
        "\tcmpl $0xffff, %eax\n\tje 2f\n\tincl 0x40001004\n"
        "2:\tfstl 0x40001020\n\tmovl 0x40001020, %eax\n\tcmpl 0x40001018, %eax\n\tjne 3f\n"
        "\tmovl 0x40001024, %eax\n\tcmpl 0x4000101c, %eax\n\tje 4f\n"
        "3:\tincl 0x40001004\n"
        "4:\ttestl $0x1000, 0x40001000\n\tjz 5f\n"
        "\tcall 6f\n6:\tpopl %edx\n\taddl $(7f - 6b), %edx\n"
        "\tmovl %esp, %ecx\n\tmovl $2, %eax\n\tsysenter\n"
        "7:\tpopl %edx\n\tpopl %ecx\n\tpopl %eax\n\tjmp 1b\n"
        "5:\tmovl $1, %eax\n\tint $0x80\n"
        "\tpopl %edx\n\tpopl %ecx\n\tpopl %eax\n\tjmp 1b\n"
        ".globl user_prog_end\nuser_prog_end:\n");
extern u8 user_prog[], user_prog_end[];

static void save(struct proc *p, const struct frame *f)
{
    p->eax = f->eax, p->ecx = f->ecx, p->edx = f->edx, p->ebx = f->ebx;
    p->ebp = f->ebp, p->esi = f->esi, p->edi = f->edi;
    p->eip = f->eip, p->eflags = f->eflags, p->esp = f->esp3;
}

static void load(const struct proc *p, struct frame *f)
{
    f->eax = p->eax, f->ecx = p->ecx, f->edx = p->edx, f->ebx = p->ebx;
    f->ebp = p->ebp, f->esi = p->esi, f->edi = p->edi;
    f->eip = p->eip, f->eflags = p->eflags, f->esp3 = p->esp;
    f->cs = SEL_UCODE, f->ss3 = SEL_UDATA;
}

static void switch_to(int n, struct frame *f)
{
    if (current >= 0) {
        save(&procs[current], f);
        __asm__ volatile("fxsave %0" : "=m"(procs[current].fpu));
    }
    current = n;
    __asm__ volatile("fxrstor %0" : : "m"(procs[n].fpu));
    procs[n].runs++;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd[n]) : "memory");
    load(&procs[n], f);
}

static void leave_to_kernel(struct frame *f)
{
    user_return(f);
}

static void timer(struct frame *f)
{
    ticks++;
    pic_eoi(0);
    if (!(f->cs & 3))
        return; /* the kernel itself was interrupted */
    if (stop_all || ticks > 40) {
        stop_all = 1;
        save(&procs[current], f);
        leave_to_kernel(f);
        return;
    }
    switches++;
    switch_to(current ^ 1, f);
}

static void syscall(struct frame *f)
{
    procs[current].syscalls++;
    f->eax = 0; /* nothing else to do: return */
}

static void page_fault(struct frame *f)
{
    u32 cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    if ((f->cs & 3) && cr2 >= UVA_STACK - 4096 && cr2 < UVA_STACK && next_frame < 8) {
        pt_u[current][(UVA_STACK - 4096 - 0x40000000u) >> 12] =
            (u32)frames[next_frame++] | 7;
        procs[current].stack_faults++;
        return; /* retry */
    }
    printf("FAIL unexpected #PF at %x err %x cs %x\n", cr2, f->err, f->cs);
    guest_exit();
}

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    u32 cr0x;
    /* Kernel: 0..16 MiB identity, supervisor.  Each process: code and data pages at
       0x40000000, its own frames; the stack page missing until first touched. */
    for (u32 i = 0; i < 4 * 1024; i++)
        pt_k[i / 1024][i % 1024] = (i << 12) | 3;
    for (int p = 0; p < 2; p++) {
        for (u32 i = 0; i < 4; i++)
            pd[p][i] = (u32)pt_k[i] | 3;
        u8 *code = frames[next_frame++], *data = frames[next_frame++];
        memcpy(code, user_prog, (u32)(user_prog_end - user_prog));
        memset(data, 0, 4096);
        /* this process's XMM0 (16 bytes at +8) and ST0 (a double at +24) */
        for (u32 k = 0; k < 4; k++)
            ((u32 *)data)[2 + k] = 0x11111111u * (p + 1) + k;
        ((u32 *)data)[6] = 0;
        ((u32 *)data)[7] = 0x40000000u + (u32)p * 0x100000u; /* 2.0 or 2.25 */
        pt_u[p][0] = (u32)code | 5;   /* user, read-only */
        pt_u[p][1] = (u32)data | 7;   /* user, writable */
        pd[p][0x100] = (u32)pt_u[p] | 7;
        procs[p].eip = UVA_CODE;
        procs[p].esp = UVA_STACK;
        procs[p].eflags = 0x202;
    }
    /* x87/SSE on (CR0.MP, CR4.OSFXSR), both processes start from a clean image. */
    u32 cr4;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0x));
    __asm__ volatile("mov %0, %%cr0" : : "r"((cr0x | 2) & ~0xcu));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x200));
    __asm__ volatile("fninit");
    __asm__ volatile("fxsave %0" : "=m"(procs[0].fpu));
    __asm__ volatile("fxsave %0" : "=m"(procs[1].fpu));
    tss_init((u32)(kstack + sizeof kstack));
    __asm__ volatile("wrmsr" : : "c"(0x174), "a"(SEL_CODE), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x175), "a"((u32)(kstack + sizeof kstack)), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x176), "a"((u32)sysenter_entry), "d"(0));
    set_handler(0x20, timer);
    set_handler(0x30, syscall);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(14, page_fault);

    u32 cr0;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd[0]) : "memory");
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80010000u) : "memory"); /* PG, WP */
    current = 0;
    procs[0].runs = 1;
    pit_start(1000);
    pic_unmask(0);
    user_enter(UVA_CODE, UVA_STACK, 0); /* interrupts on in user mode (EFLAGS 0x202) */
    cli();
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");

    u32 c0 = *(volatile u32 *)(frames[1]), c1 = *(volatile u32 *)(frames[3]);
    printf("multitask: %u ticks, %u switches; counters %u and %u; syscalls %u and %u\n",
           ticks, switches, c0, c1, procs[0].syscalls, procs[1].syscalls);
    CHECK(switches >= 4, "the timer switched processes several times");
    CHECK(procs[0].runs >= 2 && procs[1].runs >= 2, "both processes were scheduled again");
    CHECK(c0 > 0 && c1 > 0, "both processes counted in their own data frame");
    CHECK(procs[0].syscalls > 0 && procs[1].syscalls > 0, "both made system calls");
    CHECK(sysenter_calls[0] > 0 && sysenter_calls[1] > 0, "both made SYSENTER calls");
    u32 m0 = *(volatile u32 *)(frames[1] + 4), m1 = *(volatile u32 *)(frames[3] + 4);
    printf("multitask: sysenter %u and %u; x87/SSE mismatches %u and %u\n", sysenter_calls[0],
           sysenter_calls[1], m0, m1);
    CHECK(m0 == 0 && m1 == 0, "each process kept its own x87 and SSE registers");
    CHECK_EQ(procs[0].stack_faults, 1, "process 0's stack demand-paged once");
    CHECK_EQ(procs[1].stack_faults, 1, "process 1's stack demand-paged once");
    u32 expect = c0 / 4096; /* preempted right after the 4096th count: one still due */
    u32 made = procs[0].syscalls + sysenter_calls[0];
    CHECK(made == expect || made + 1 == expect, "process 0: one system call per 4096 counts");
}
