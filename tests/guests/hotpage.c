/*
 * hotpage.c - user code on pages with and without CPUID, and a page whose mapping
 * changes under the same address space.  Under xbt's direct mode a code page holding
 * an instruction the host would answer (CPUID) runs translated and the rest of the
 * user code natively; what this guest checks on every peer is only what the guest sees
 * (CPUID's answer, the code the new mapping holds, the system calls' results), and
 * run-guest.sh checks from xbt's statistics, in direct mode, that:
 * - a linear page that held CPUID and now maps a frame of plain code runs directly
 *   (XBT_CROSSINGS_MAX: its calls are not jumps into a page run translated: the mark
 *   follows the physical page, not only the linear page and the CR3);
 * - user code that the kernel returns to on a page with CPUID runs translated only
 *   until it leaves that page (XBT_DIRECT_ENTRIES_MIN: the plain page it jumps to runs
 *   directly, an entry each time);
 * - a function on a page with CPUID that directly run code calls again and again
 *   between two system calls makes the caller stay translated from the second call on
 *   (XBT_CROSSINGS_MAX again: two jumps into a page run translated, not fifty).
 */
#include "lib/guest.h"

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));
static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
/* The frame the CPUID page's linear address is mapped onto later: mov eax, 0x1234; ret. */
static u8 plain_frame[4096] __attribute__((aligned(4096)));

volatile u32 hp_ebx, hp_sum, hp_exits, hp_calls, hp_ones;

#define CALLS 50
#define JUMPS 100

/* The CPUID page: CPUID leaf 0, its EBX kept, exit. */
void hot_cpuid(void);
__asm__(".section .hotpage,\"ax\"\n"
        ".globl hot_cpuid\nhot_cpuid:\n"
        "\txorl %eax, %eax\n\txorl %ecx, %ecx\n\tcpuid\n"
        "\tmovl %ebx, hp_ebx\n"
        "\tmovl $0, %eax\n\tint $0x80\n"
        ".previous\n");

/* A page with CPUID (never run) where the kernel returns to user code: a jump to the
   plain page at once. */
void hot_jump(void);
void hot_one(void);
__asm__(".section .hotjump,\"ax\"\n"
        ".globl hot_jump\nhot_jump:\n"
        "\tjmp plain_exit\n"
        "\t.fill 64, 1, 0x90\n"
        "\txorl %eax, %eax\n\tcpuid\n\tret\n"
        ".globl hot_one\nhot_one:\n"
        "\tmovl $1, %eax\n\tret\n"
        ".previous\n");

/* The plain page: CALLS calls of hot_cpuid's linear address (remapped onto plain_frame
   by then), a system call after each; and the exit hot_jump jumps to. */
void plain_caller(void);
void plain_loop(void);
__asm__(".section .plaintext,\"ax\"\n"
        ".globl plain_caller\nplain_caller:\n"
        "\tmovl $50, %esi\n" /* CALLS */
        "1:\tmovl $hot_cpuid, %eax\n\tcall *%eax\n"
        "\taddl %eax, hp_sum\n"
        "\tmovl $7, %eax\n\tint $0x80\n"
        "\tdecl %esi\n\tjnz 1b\n"
        "\tmovl $0, %eax\n\tint $0x80\n"
        ".globl plain_loop\nplain_loop:\n"
        "\tmovl $50, %esi\n" /* CALLS */
        "2:\tcall hot_one\n"
        "\taddl %eax, hp_ones\n"
        "\tdecl %esi\n\tjnz 2b\n"
        "\tmovl $0, %eax\n\tint $0x80\n"
        ".globl plain_exit\nplain_exit:\n"
        "\tincl hp_exits\n"
        "\tmovl $0, %eax\n\tint $0x80\n"
        ".previous\n");

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) {
        user_return(f);
        return;
    }
    hp_calls++;
}

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);

    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | 7;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | 7;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");

    user_run(hot_cpuid, (u32)(ustack + sizeof ustack));
    {
        u32 a = 0, b, c = 0, d;
        __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
        CHECK_EQ(hp_ebx, b, "CPUID in user code answers as the kernel's CPUID does");
    }

    /* hot_cpuid's linear page now maps plain_frame (present, user, read-only). */
    static const u8 code[] = { 0xB8, 0x34, 0x12, 0x00, 0x00, 0xC3 };
    for (u32 i = 0; i < sizeof code; i++)
        plain_frame[i] = code[i];
    u32 page = (u32)hot_cpuid >> 12;
    pt[page / 1024][page % 1024] = (u32)plain_frame | 5;
    __asm__ volatile("invlpg (%0)" : : "r"(hot_cpuid) : "memory");
    user_run(plain_caller, (u32)(ustack + sizeof ustack));
    CHECK_EQ(hp_sum, CALLS * 0x1234u, "the remapped page runs the new frame's code");
    CHECK_EQ(hp_calls, CALLS, "a system call after each call");

    for (u32 i = 0; i < JUMPS; i++)
        user_run(hot_jump, (u32)(ustack + sizeof ustack));
    CHECK_EQ(hp_exits, JUMPS, "from the CPUID page to the plain page and out, each time");

    user_run(plain_loop, (u32)(ustack + sizeof ustack));
    CHECK_EQ(hp_ones, CALLS, "calls from the plain page into the CPUID page");

    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
}
