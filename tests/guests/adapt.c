/*
 * adapt.c - three user processes with different habits, one after the other, each in
 * its own address space: "chatty" makes 2,000 system calls with a few hundred cycles of
 * work between them; "compute" counts for tens of millions of cycles between each of its
 * three system calls; "phased" is chatty for 100 system calls, then computes for tens of
 * millions of cycles, then is chatty again for 300.  The results are checked here (every
 * peer); under xbt's adaptive mode run-guest.sh also checks the policy from the
 * statistics (XBT_EXPECT_ADAPT=1): two address spaces (compute's and phased's) promoted
 * to direct execution, and direct runs after that, while chatty stays translated; one
 * (phased's) sent back to translated code, because its chatty second phase takes longer
 * per system call directly (a host signal and two hand-offs each) than it did translated.
 */
#include "lib/guest.h"

#define UVA_CODE  0x40000000u
#define UVA_DATA  0x40001000u
#define UVA_STACK 0x40003000u /* top of a mapped page */

static u8 kstack[8192] __attribute__((aligned(16)));
static u32 pd[3][1024] __attribute__((aligned(4096)));
static u32 pt_k[4][1024] __attribute__((aligned(4096)));
static u32 pt_u[3][1024] __attribute__((aligned(4096)));
static u8 frames[9][4096] __attribute__((aligned(4096)));
static volatile u32 syscalls[3], current;

/* chatty: 2,000 times count to 100 (adding into the data page), then system call 1;
   then system call 0 (exit).  Position independent. */
__asm__(".text\n.globl chatty_prog\nchatty_prog:\n"
        "\tmovl $2000, %esi\n"
        "1:\tmovl $100, %ecx\n"
        "2:\taddl %ecx, 0x40001000\n\tdecl %ecx\n\tjnz 2b\n"
        "\tmovl $1, %eax\n\tint $0x80\n"
        "\tdecl %esi\n\tjnz 1b\n"
        "\txorl %eax, %eax\n\tint $0x80\n"
        ".globl chatty_end\nchatty_end:\n");
/* compute: three times a loop of 20,000,000 steps (a multiply-add chain into the data
   page at the end), then system call 1; then system call 0. */
__asm__(".text\n.globl compute_prog\ncompute_prog:\n"
        "\tmovl $3, %esi\n"
        "1:\tmovl $20000000, %ecx\n\tmovl 0x40001000, %eax\n"
        "2:\timull $1103515245, %eax, %eax\n\taddl $12345, %eax\n\tdecl %ecx\n\tjnz 2b\n"
        "\tmovl %eax, 0x40001000\n"
        "\tmovl $1, %eax\n\tint $0x80\n"
        "\tdecl %esi\n\tjnz 1b\n"
        "\txorl %eax, %eax\n\tint $0x80\n"
        ".globl compute_end\ncompute_end:\n");
/* phased: 100 times count to 100 and system call 1; count 20,000,000 steps as compute
   does; 300 times count to 100 and system call 1, each time from another of 32 aliases
   of its code page (0x40010000 + k * 4 KiB), so that no page traps often enough to run
   translated (direct.c, hot pages) and every system call is a direct exit; system
   call 0. */
__asm__(".text\n.globl phased_prog\nphased_prog:\n"
        "\tmovl $100, %esi\n"
        "1:\tmovl $100, %ecx\n"
        "2:\taddl %ecx, 0x40001000\n\tdecl %ecx\n\tjnz 2b\n"
        "\tmovl $1, %eax\n\tint $0x80\n"
        "\tdecl %esi\n\tjnz 1b\n"
        "\tmovl $20000000, %ecx\n\tmovl 0x40001004, %eax\n"
        "3:\timull $1103515245, %eax, %eax\n\taddl $12345, %eax\n\tdecl %ecx\n\tjnz 3b\n"
        "\tmovl %eax, 0x40001004\n"
        "\tmovl $300, %esi\n"
        "4:\tmovl $100, %ecx\n"
        "5:\taddl %ecx, 0x40001000\n\tdecl %ecx\n\tjnz 5b\n"
        "\tmovl %esi, %eax\n\tandl $31, %eax\n\tshll $12, %eax\n"
        "\tleal 0x40010000 + (6f - phased_prog)(%eax), %eax\n\tjmp *%eax\n"
        "6:\tmovl $1, %eax\n\tint $0x80\n"
        "\tdecl %esi\n\tjnz 4b\n"
        "\txorl %eax, %eax\n\tint $0x80\n"
        ".globl phased_end\nphased_end:\n");
extern u8 chatty_prog[], chatty_end[], compute_prog[], compute_end[], phased_prog[], phased_end[];

static void syscall(struct frame *f)
{
    if (f->eax == 0) { /* exit: back to the kernel's loop */
        user_return(f);
        return;
    }
    syscalls[current]++;
    f->eax = 0;
}

/* What compute leaves in its data page, computed here the same way. */
static u32 lcg(u32 x, u32 steps)
{
    for (u32 k = 0; k < steps; k++)
        x = x * 1103515245u + 12345u;
    return x;
}

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    for (u32 i = 0; i < 4 * 1024; i++)
        pt_k[i / 1024][i % 1024] = (i << 12) | 3;
    for (int p = 0; p < 3; p++) {
        for (u32 i = 0; i < 4; i++)
            pd[p][i] = (u32)pt_k[i] | 3;
        u8 *code = frames[3 * p], *data = frames[3 * p + 1], *stack = frames[3 * p + 2];
        if (p == 0)
            memcpy(code, chatty_prog, (u32)(chatty_end - chatty_prog));
        else if (p == 1)
            memcpy(code, compute_prog, (u32)(compute_end - compute_prog));
        else
            memcpy(code, phased_prog, (u32)(phased_end - phased_prog));
        memset(data, 0, 4096);
        pt_u[p][0] = (u32)code | 5;  /* user, read-only */
        pt_u[p][1] = (u32)data | 7;  /* user, writable */
        pt_u[p][2] = (u32)stack | 7;
        if (p == 2)
            for (u32 k = 0; k < 32; k++)
                pt_u[p][16 + k] = (u32)code | 5; /* phased's 32 aliases */
        pd[p][0x100] = (u32)pt_u[p] | 7;
    }
    ((u32 *)frames[4])[0] = 7; /* compute's seed */
    ((u32 *)frames[7])[1] = 9; /* phased's */
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);

    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    static const char *const name[3] = { "chatty", "compute", "phased" };
    for (u32 p = 0; p < 3; p++) {
        current = p;
        __asm__ volatile("mov %0, %%cr3" : : "r"(pd[p]) : "memory");
        __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80010000u) : "memory"); /* PG, WP */
        u64 t0 = rdtsc();
        user_enter(UVA_CODE, UVA_STACK, 0);
        u64 t1 = rdtsc();
        __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
        printf("adapt: process %u (%s): %u system calls, %u Mcycles\n", p, name[p],
               syscalls[p], (u32)((t1 - t0) >> 20));
    }
    CHECK_EQ(syscalls[0], 2000, "chatty made 2,000 system calls");
    CHECK_EQ(*(volatile u32 *)frames[1], 2000u * 5050u, "chatty's sums");
    CHECK_EQ(syscalls[1], 3, "compute made 3 system calls");
    CHECK_EQ(*(volatile u32 *)frames[4], lcg(7, 60000000u), "compute's result");
    CHECK_EQ(syscalls[2], 400, "phased made 400 system calls");
    CHECK_EQ(((volatile u32 *)frames[7])[0], 400u * 5050u, "phased's sums");
    CHECK_EQ(((volatile u32 *)frames[7])[1], lcg(9, 20000000u), "phased's result");
}
