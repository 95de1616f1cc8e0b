/*
 * user.c - guest user mode (issue 5's first guest): IRET to CPL 3, INT 0x80 from CPL 3
 * through a DPL 3 gate with the TSS stack switch (the handler sees the user's CS, SS
 * and ESP), a privileged instruction at CPL 3 (#GP), INT through a DPL 0 gate from CPL 3
 * (#GP with the IDT error code), and with paging on a user access to a supervisor page
 * (#PF with the U bit), SSE at CPL 3 with CR4.OSFXSR clear (#UD).  User code returns to the kernel with an "exit" system call.
 */
#include "lib/guest.h"

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));
static volatile u32 saw_cs, saw_ss, saw_esp3, frame_at, gp_cs, gp_err, gp_count;
static volatile u32 pf_err, pf_cr2, pf_cs;
static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
/* A page of its own, made supervisor-only (nothing else of the user's on it). */
static volatile u32 user_secret_page[1024] __attribute__((aligned(4096)));
#define user_secret user_secret_page[0]

/* The same entry by a far RET with an immediate: EIP, CS, 8 bytes of parameters, then
   the outer ESP and SS; the immediate is released from the outer stack too. */
void enter_user_retf(void (*fn)(void), u32 esp);
__asm__(".text\n.globl enter_user_retf\nenter_user_retf:\n"
        "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
        "\tmovl %esp, user_kernel_esp\n"
        "\tmovl 20(%esp), %eax\n\tmovl 24(%esp), %ecx\n"
        "\tpushl $0x23\n\tpushl %ecx\n\tpushl $0x1111\n\tpushl $0x2222\n"
        "\tpushl $0x1b\n\tpushl %eax\n"
        "\tmovl $0x23, %edx\n\tmovl %edx, %ds\n\tmovl %edx, %es\n"
        "\tlret $8\n");

static volatile u32 retf_esp_seen;
void user_after_retf(void);
__asm__(".text\n.globl user_after_retf\nuser_after_retf:\n"
        "\tmovl %esp, retf_esp_seen\n"
        "\tmovl $7, %eax\n\tint $0x80\n" /* the handler records the CS it interrupted */
        "\tmovl $0, %eax\n\tint $0x80\n");

/* AVX upper halves across a system call, where the CPU offers AVX to user code (QEMU's
   i386 CPUs and xbt's virtual CPU have none: then there is nothing to check).  Under
   xbt's direct mode the page with this CPUID runs translated, so user code sees the
   virtual CPU's answer there too, as it does in strict mode. */
static volatile u32 avx_there, avx_in[8] __attribute__((aligned(32))),
    avx_out[8] __attribute__((aligned(32)));
static __attribute__((section(".cpuidtext"), noinline)) void user_avx(void)
{
    u32 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if ((c & (1u << 28)) && (c & (1u << 27))) {
        u32 lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        if ((lo & 6) == 6) {
            avx_there = 1;
            __asm__ volatile("vmovdqu %0, %%ymm0" : : "m"(avx_in) : "memory");
            __asm__ volatile("int $0x80" : : "a"(7) : "memory");
            __asm__ volatile("int $0x80" : : "a"(9) : "memory"); /* MMIO in the kernel */
            __asm__ volatile("vmovdqu %%ymm0, %0\n\tvzeroupper" : "=m"(avx_out) : : "memory");
        }
    }
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

/* A CPUID behind a segment prefix, after ordinary code on its page: direct execution's
   scan finds the 0F A2 and the decode in context sees that the instruction there is
   the prefixed CPUID, so the page runs translated and the answer is the virtual CPU's,
   the same as the kernel gets (a decode that took it for bytes inside another
   instruction would let the host CPU answer). */
volatile u32 ucpuid[3];
void user_cpuid_prefixed(void);
__asm__(".section .cpuidtext2,\"ax\"\n"
        "\t.fill 64, 1, 0x90\n"
        ".globl user_cpuid_prefixed\nuser_cpuid_prefixed:\n"
        "\txorl %eax, %eax\n\txorl %ecx, %ecx\n"
        "\t.byte 0x3e\n\tcpuid\n"
        "\tmovl %ebx, ucpuid\n\tmovl %edx, ucpuid+4\n\tmovl %ecx, ucpuid+8\n"
        "\tmovl $0, %eax\n\tint $0x80\n"
        ".previous\n");

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) { /* exit: back to the kernel, at CPL 0 */
        f->eip = (u32)user_resume;
        f->cs = SEL_CODE;
        return;
    }
    if (f->eax == 9) {
        /* A read-modify-write of the pc-testdev scratch block: the VMM's MMIO path
           runs C code that uses vector registers (memset) in between. */
        __asm__ volatile("addl $0, %0" : "+m"(*(volatile u32 *)0xff000000u) : : "cc");
        return;
    }
    saw_cs = f->cs;
    saw_ss = f->ss3;
    saw_esp3 = f->esp3;
    frame_at = (u32)f;
    f->eax += 100;
}

static void gp_handler(struct frame *f)
{
    gp_count++;
    gp_cs = f->cs;
    gp_err = f->err;
    f->eip += 1; /* skip the one-byte instruction (cli / hlt) or the int's 2nd byte */
    if (f->vector == 13 && *(u8 *)(f->eip - 1) == 0xcd)
        f->eip += 1;
}

static void pf_handler(struct frame *f)
{
    __asm__ volatile("mov %%cr2, %0" : "=r"(pf_cr2));
    pf_err = f->err;
    pf_cs = f->cs;
    f->eip += 5; /* movl moffs32, %eax (a1 + 4 bytes) */
}

static volatile u32 user_result, sysenter_count, sysenter_cs_seen;

/* SYSENTER lands here at CPL 0 on the SYSENTER_ESP stack; SYSEXIT returns to EDX with
   ESP = ECX (the user passes both). */
void sysenter_entry(void);
__asm__(".text\n.globl sysenter_entry\nsysenter_entry:\n"
        "\tincl sysenter_count\n"
        "\tmovl %cs, %eax\n\tmovl %eax, sysenter_cs_seen\n"
        "\tmovl $1234, %eax\n"
        "\tsysexit\n");

static void user_sysenter(void)
{
    u32 r;
    __asm__ volatile("movl %%esp, %%ecx\n\tleal 1f, %%edx\n\tsysenter\n1:"
                     : "=a"(r) : : "ecx", "edx", "memory");
    user_result = r;
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static void user_syscall(void)
{
    u32 r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(7) : "memory");
    user_result = r;
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static void user_privileged(void)
{
    __asm__ volatile("cli" ::: "memory");
    __asm__ volatile("int $0x31" ::: "memory"); /* DPL 0 gate */
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static volatile u32 io_value;

static void user_io(void)
{
    u8 v;
    __asm__ volatile("inb %w1, %0" : "=a"(v) : "Nd"((u16)0x3ff)); /* allowed by the bitmap */
    io_value = v;
    __asm__ volatile("movw $0x3fd, %%dx\n\tinb %%dx, %%al" : : : "eax", "edx"); /* denied */
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

/* SSE with CR4.OSFXSR clear: #UD at any CPL (SDM), also where user code runs natively
   on a host whose own CR4 has it set. */
static volatile u32 ud_count, ud_cs;

static void ud_handler(struct frame *f)
{
    ud_count++;
    ud_cs = f->cs;
    f->eip += 3;
}

static __attribute__((section(".ssetext"), noinline)) void user_sse_off(void)
{
    __asm__ volatile(".byte 0x0f, 0x57, 0xc0" ::: "memory"); /* xorps %xmm0, %xmm0 */
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static void user_supervisor_page(void)
{
    __asm__ volatile("movl user_secret_page, %%eax" : : : "eax", "memory");
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    tss_init((u32)(kstack + sizeof kstack));
    /* The library has stubs for vectors 0-63: INT 0x80 goes through stub 0x30. */
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(13, gp_handler);
    set_handler(14, pf_handler);

    user_run(user_syscall, (u32)(ustack + sizeof ustack));
    CHECK_EQ(user_result, 107, "int 0x80 from CPL 3 returns a value");
    CHECK_EQ(saw_cs, SEL_UCODE, "handler sees the user CS");
    CHECK_EQ(saw_ss, SEL_UDATA, "handler sees the user SS");
    CHECK(saw_esp3 > (u32)ustack && saw_esp3 <= (u32)(ustack + sizeof ustack), "user ESP saved");
    CHECK(frame_at > (u32)kstack && frame_at < (u32)(kstack + sizeof kstack),
          "handler runs on the TSS ring-0 stack");

    user_run(user_privileged, (u32)(ustack + sizeof ustack));
    CHECK_EQ(gp_count, 2, "cli and int through a DPL 0 gate fault at CPL 3");
    CHECK_EQ(gp_cs, SEL_UCODE, "#GP from CPL 3");
    CHECK_EQ(gp_err, (0x31 << 3) | 2, "#GP error code names the DPL 0 gate");

    /* The TSS I/O permission bitmap at IOPL 0. */
    outb(0x3ff, 0x6c);
    tss_allow_port(0x3ff);
    u32 before = gp_count;
    user_run(user_io, (u32)(ustack + sizeof ustack));
    CHECK_EQ(io_value, 0x6c, "user in from a port the bitmap allows");
    CHECK_EQ(gp_count, before + 1, "user in from a port the bitmap denies: #GP");

    /* SYSENTER / SYSEXIT through the MSRs: CS 0x08/SS 0x10 in, 0x1b/0x23 out. */
    __asm__ volatile("wrmsr" : : "c"(0x174), "a"(SEL_CODE), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x175), "a"((u32)(kstack + sizeof kstack - 64)), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x176), "a"((u32)sysenter_entry), "d"(0));
    user_result = 0;
    user_run(user_sysenter, (u32)(ustack + sizeof ustack));
    CHECK_EQ(sysenter_count, 1, "sysenter reached the kernel entry");
    CHECK_EQ(sysenter_cs_seen & 0xffff, SEL_CODE, "sysenter: CS from the MSR");
    CHECK_EQ(user_result, 1234, "sysexit back to user with the result");

    /* A far RET with an immediate to CPL 3. */
    saw_cs = 0;
    enter_user_retf(user_after_retf, (u32)(ustack + sizeof ustack) - 64);
    CHECK_EQ(saw_cs & 0xffff, SEL_UCODE, "far RET to CPL 3: user CS");
    CHECK_EQ(retf_esp_seen, (u32)(ustack + sizeof ustack) - 64 + 8,
             "far RET to CPL 3: outer stack, immediate released from it");

    for (u32 i = 0; i < 8; i++)
        avx_in[i] = 0x01010101u * (i + 1);
    user_run(user_avx, (u32)(ustack + sizeof ustack));
    if (avx_there) {
        u32 same = 1;
        for (u32 i = 0; i < 8; i++)
            same &= avx_out[i] == avx_in[i];
        CHECK(same, "AVX register (upper half too) kept across system calls");
    } else {
        CHECK(1, "no AVX offered to user code here: nothing to keep");
    }
    user_run(user_cpuid_prefixed, (u32)(ustack + sizeof ustack));
    {
        u32 a = 0, b, c = 0, d;
        __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
        CHECK(ucpuid[0] == b && ucpuid[1] == d && ucpuid[2] == c,
              "a prefixed CPUID in user code answers as the kernel's CPUID does");
    }

    {
        u32 cr4;
        __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 & ~0x600u)); /* OSFXSR, OSXMMEXCPT */
        set_handler(6, ud_handler);
        user_run(user_sse_off, (u32)(ustack + sizeof ustack));
        CHECK_EQ(ud_count, 1, "SSE at CPL 3 with CR4.OSFXSR clear: #UD");
        CHECK_EQ(ud_cs, SEL_UCODE, "#UD from CPL 3");
        /* Fences, PAUSE and prefetches depend on no CR0/CR4 bit (SDM): no #UD with
           OSFXSR clear, no #NM with CR0.TS and EM set (an unexpected vector fails). */
        u32 cr0, before = ud_count;
        __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
        __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0xc)); /* TS, EM */
        __asm__ volatile("mfence; lfence; sfence; pause; prefetchnta (%0)"
                         : : "r"(&ud_count) : "memory");
        __asm__ volatile("mov %0, %%cr0" : : "r"(cr0));
        CHECK_EQ(ud_count, before, "MFENCE, LFENCE, SFENCE, PAUSE, PREFETCHNTA with CR4.OSFXSR "
                                   "clear and CR0.TS/EM set: no fault");
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4));
    }

    /* Paging on, user_secret's page supervisor-only. */
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | 7;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | 7;
    user_secret = 0x5ec2e7;
    u32 secret_page = (u32)&user_secret >> 12;
    pt[secret_page / 1024][secret_page % 1024] &= ~4u;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");
    user_run(user_supervisor_page, (u32)(ustack + sizeof ustack));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    CHECK_EQ(pf_err, 5, "user read of a supervisor page: #PF P|U");
    CHECK_EQ(pf_cr2, (u32)&user_secret, "#PF cr2");
    CHECK_EQ(pf_cs, SEL_UCODE, "#PF from CPL 3");
}
