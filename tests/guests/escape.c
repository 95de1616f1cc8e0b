/*
 * escape.c - attacks of guest user code on its VMM (issue 18).  Each attack is a user
 * program that far-jumps to selector 0x33.  In this guest's GDT that is a DPL 0
 * execute-only code segment, so a CPU (QEMU, xbt's strict mode) raises #GP(0x30) at the
 * jump.  On an x86-64 host it is the host's 64-bit code selector: under xbt's direct
 * mode the jump really happens, in the runner process, and the 64-bit code then tries
 * to reach the host:
 *   1  int 0x80 creat(probe) from 64-bit code
 *   2  the runner's own "syscall; ret" (found by scanning its code) with creat(probe)
 *   3  the same gadget with mmap(guest RAM fd, the kernel's secret page), then a read
 *   4  a write to the runner's read-only request ring
 *   5  a write where the VMM's translation cache used to live (0x1000000000)
 *   6  garbage over the trusted thread's stack and the comm page, then back to 32-bit
 *      code that goes on with a system call and a new page (must keep working)
 *   7  a forged exit report, then an endless 64-bit loop (the timer must end it)
 *   8  IRET from CPL 3 to selector 0x23 (the host's 32-bit code selector)
 * Whatever happens, the guest's kernel must see #GP (0x30; 0x20 for 8) or, for 6, the
 * user program carrying on; the probe file must not exist on the host (escape.sh); the
 * kernel's secret must not reach user memory.  Command line: "probe=PATH".
 */
#include "lib/guest.h"

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));
static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
static u32 secret_page[1024] __attribute__((aligned(4096)));
static u8 fresh_page[4096] __attribute__((aligned(4096)));
volatile u32 attack_no, saved_cs, leaked, gadget_found;
char probe[128] = "/tmp/xbt-escape-probe";
static volatile u32 gp_count, gp_err, syscalls, last_syscall, ticks;

#define SECRET 0x5EC2E7u

/* The 64-bit attacks and the user programs, on a page of their own with none of the
   byte patterns that make xbt run a page translated (no 0F 05, 0F A2, ...; the
   library's code has a CPUID): built at run time where needed. */
__asm__(".section .attack, \"ax\"\n"
        ".code64\n"
        ".globl attack64\nattack64:\n"
        "\tmovl $attack_no, %eax\n\tmovl (%rax), %eax\n"
        "\tcmpl $1, %eax\n\tje 1f\n"
        "\tcmpl $2, %eax\n\tje 2f\n"
        "\tcmpl $3, %eax\n\tje 3f\n"
        "\tcmpl $4, %eax\n\tje 4f\n"
        "\tcmpl $5, %eax\n\tje 5f\n"
        "\tcmpl $6, %eax\n\tje 6f\n"
        "\tcmpl $7, %eax\n\tje 7f\n"
        "\tjmp 9f\n"
        "1:\tmovl $8, %eax\n\tmovl $probe, %ebx\n\tmovl $0644, %ecx\n\tint $0x80\n\tjmp 9f\n"
        "2:\tcall find_gadget\n\ttestq %rbx, %rbx\n\tjz 9f\n"
        "\tmovl $85, %eax\n\tmovl $probe, %edi\n\tmovl $0644, %esi\n\tcall *%rbx\n\tjmp 9f\n"
        "3:\tcall find_gadget\n\ttestq %rbx, %rbx\n\tjz 9f\n"
        "\tmovl $9, %eax\n\tmovl $0x40000000, %edi\n\tmovl $4096, %esi\n\tmovl $1, %edx\n"
        "\tmovl $0x11, %r10d\n\tmovl $3, %r8d\n\tmovl $secret_page, %r9d\n\tcall *%rbx\n"
        "\tmovl $0x40000000, %eax\n\tmovl (%rax), %eax\n\tmovl $leaked, %ecx\n\tmovl %eax, (%rcx)\n\tjmp 9f\n"
        "4:\tmovabsq $0x100000100000, %rax\n\tmovq $0, (%rax)\n\tjmp 9f\n"
        "5:\tmovabsq $0x1000000000, %rax\n\tmovl $0x90909090, (%rax)\n\tjmp 9f\n"
        "6:\tmovabsq $0x100000400000, %rdi\n\tmovl $0xcc, %eax\n\tmovl $4096, %ecx\n\trep stosb\n"
        "\tmovabsq $0x100000000080, %rdi\n\tmovl $0xee, %eax\n\tmovl $192, %ecx\n\trep stosb\n"
        "\tjmp 9f\n"
        "7:\tmovabsq $0x100000000000, %rbx\n\tmovl $12, 320(%rbx)\n\tmovl $1, 416(%rbx)\n"
        "\tmovl $3, %eax\n\txchgl %eax, (%rbx)\n"
        "8:\tjmp 8b\n"
        /* back to 32-bit code with the CS the user program had */
        "9:\tmovl $saved_cs, %eax\n\tmovl (%rax), %eax\n\tpushq %rax\n\tmovl $attack_back, %eax\n\tpushq %rax\n"
        "\tlretq\n"
        /* rbx = the runner's "syscall; ret" or 0; the bytes are compared without being
           written here (0x040e + 0x0101) */
        "find_gadget:\n\tmovabsq $0x10000001000, %rbx\n\tmovabsq $0x10000003000, %rcx\n"
        "\tmovl $0x040e, %edx\n\taddl $0x0101, %edx\n"
        "10:\tcmpq %rcx, %rbx\n\tjae 12f\n"
        "\tmovzwl (%rbx), %eax\n\tcmpl %edx, %eax\n\tjne 11f\n"
        "\tcmpb $0xc3, 2(%rbx)\n\tjne 11f\n"
        "\tmovl $gadget_found, %eax\n\tmovl $1, (%rax)\n\tret\n"
        "11:\tincq %rbx\n\tjmp 10b\n"
        "12:\txorl %ebx, %ebx\n\tret\n"
        ".code32\n"
        ".text\n");

static __attribute__((section(".attack"), noinline)) void user_attack(void)
{
    /* The stack and data pages mapped first (a fault from 64-bit code ends the attack
       before it gets anywhere). */
    __asm__ volatile("movl %%cs, %%eax\n\tmovl %%eax, saved_cs\n"
                     "pushl %%eax\n\tpopl %%eax\n"
                     "movl gadget_found, %%eax\n\tmovl %%eax, gadget_found\n"
                     "movl leaked, %%eax\n\tmovl %%eax, leaked\n"
                     "ljmp $0x33, $attack64\n"
                     ".globl attack_back\nattack_back:\n" ::: "eax", "memory");
    /* Attack 6 comes back here: the program goes on. */
    __asm__ volatile("int $0x80" : : "a"(7) : "memory");
    fresh_page[2048] = 1; /* a page it has not touched yet */
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static __attribute__((section(".attack"), noinline)) void user_iret23(void)
{
    __asm__ volatile("movl %%esp, %%eax\n\tpushl %%ss\n\tpushl %%eax\n\tpushfl\n"
                     "\tpushl $0x23\n\tpushl $1f\n\tiret\n1:\n" ::: "eax", "memory");
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static __attribute__((section(".attack"), noinline)) void user_normal(void)
{
    __asm__ volatile("int $0x80" : : "a"(7) : "memory");
    fresh_page[100] = 2;
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) { /* exit: back to the kernel */
        f->eip = (u32)user_resume;
        f->cs = SEL_CODE;
        return;
    }
    syscalls++;
    last_syscall = f->eax;
    f->eax = 0;
}

static void gp_handler(struct frame *f)
{
    gp_count++;
    gp_err = f->err;
    f->eip = (u32)user_resume;
    f->cs = SEL_CODE;
}

static void timer_handler(struct frame *f)
{
    (void)f;
    ticks++;
    pic_eoi(0);
}

static void parse_cmdline(void)
{
    cmdline_value("probe", probe, sizeof probe);
}

static void run(void (*fn)(void))
{
    gp_count = gp_err = syscalls = last_syscall = 0;
    user_enter((u32)fn, (u32)(ustack + sizeof ustack), (u32)fn);
}

static const char *const names[] = {
    "", "int 0x80 from 64-bit code", "the runner's syscall gadget: creat",
    "the runner's syscall gadget: mmap of guest RAM", "a write to the read-only ring",
    "a write to the VMM's old code cache address", "", "a forged exit, then a 64-bit loop",
};

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    parse_cmdline();
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(13, gp_handler);
    set_handler(0x20, timer_handler);
    secret_page[0] = SECRET;
    /* Paging: all of the first 16 MiB identity-mapped for the user but the secret. */
    for (u32 i = 0; i < 4096; i++)
        pt[i / 1024][i % 1024] = (i << 12) | 7;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | 7;
    u32 sp = (u32)secret_page >> 12;
    pt[sp / 1024][sp % 1024] &= ~4u;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");
    pit_start(200);
    pic_unmask(0);

    for (u32 a = 1; a <= 7; a++) {
        attack_no = a;
        run(user_attack);
        if (a == 6) {
            /* Natively the 64-bit code ran and the program went on; a CPU stops it. */
            int went_on = gp_count == 0 && syscalls == 1 && last_syscall == 7;
            int stopped = gp_count == 1 && gp_err == 0x30;
            CHECK(went_on || stopped, "attack 6: garbage over the runner's pages");
            continue;
        }
        printf("attack %u (%s): #GP count %u, error %x\n", a, names[a], gp_count, gp_err);
        CHECK(gp_count == 1 && gp_err == 0x30, "an attack from 64-bit code ends in #GP(0x30)");
        CHECK_EQ(syscalls, 0, "the attacked program made no guest system call after it");
    }
    CHECK(leaked != SECRET, "the kernel's secret did not reach user memory");
    run(user_iret23);
    CHECK_EQ(gp_count, 1, "IRET from CPL 3 to selector 0x23: #GP");
    CHECK_EQ(gp_err, 0x20, "IRET to 0x23: the error code names it");
    run(user_normal);
    CHECK(gp_count == 0 && syscalls == 1 && fresh_page[100] == 2,
          "a user program after the attacks runs as usual");
    printf("escape: gadget %s\n", gadget_found ? "found (the attacks ran natively)"
                                               : "never looked for (a CPU stopped each jump)");
    cli();
}
