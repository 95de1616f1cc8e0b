/*
 * v86.c - virtual-8086 mode (Intel SDM vol. 3 ch. 20) under a small ring-0 monitor:
 * entry by IRET from CPL 0 with VM set in the EFLAGS image (all six segment registers
 * popped, base = selector * 16), 16-bit code there (arithmetic, stack, near and far
 * calls and jumps, segment loads, string instructions: v86_16.S), and every way out
 * through the IDT to ring 0 on the TSS's ESP0 with the 9-word frame (GS, FS, DS, ES,
 * SS, ESP, EFLAGS, CS, EIP) and the data segment registers null: the IOPL-sensitive
 * instructions (CLI, STI, PUSHF, POPF, INT n, IRET) as #GP(0) with IOPL 0, emulated
 * here; with IOPL 3 working (POPF and IRET leave IOPL alone, INT n through a DPL-3 gate,
 * #GP(vector * 8 + 2) through a DPL-0 one); port I/O through the TSS's bitmap whatever
 * IOPL is; INT3, #DE, #UD (also LAR, SLDT, LLDT); MOV from CR0 #GP(0), SMSW allowed.
 * The v86 side leaves for good with a service call (HLT, #GP at CPL 3) after which
 * the monitor's IRET goes to 32-bit ring 0 code.  The program runs twice: with paging
 * off, then on (user pages; a supervisor page and a read-only one give #PF with U in
 * the error code).  Last, a JMP to a TSS whose EFLAGS has VM starts a virtual-8086
 * task (segments, ESP, EBX from the TSS).
 */
#include "lib/guest.h"

extern const u8 v86_base[], v86_start[], v86_cli1[], v86_int30[], v86_int30_next[],
    v86_task_start[], v86_end[], results[];
extern u32 ticks[];
extern u16 recp[];

#define V86_LINEAR 0x10000u
#define V86_SEG 0x1000u
#define SS_SEG 0x3000u
#define TOP_SP 0xfff0u
#define EFLAGS_VM 0x20000u
#define EFLAGS_IF 0x200u
#define EFLAGS_IOPL 0x3000u
#define O(sym) ((u32)(sym) - (u32)v86_base)
#define LOW(sym) ((void *)(V86_LINEAR + O(sym)))

static u8 kstack[8192] __attribute__((aligned(16)));
#define KSTACK_TOP ((u32)kstack + sizeof kstack)

/* The v86 segment registers the CPU pushes above SS:ESP (the frame's last four). */
struct v86_segs {
    u32 es, ds, fs, gs;
};
static struct v86_segs *v86_segs(struct frame *f) { return (struct v86_segs *)(&f->ss3 + 1); }

static volatile u32 v86_vif = EFLAGS_IF; /* the monitor's virtual IF for IOPL 0 */
static volatile u32 events, not_v86, left, ring0_fs, ring0_gs;
static volatile u32 cli_checked, int30_checked, paging_on, pf_count, pf_cr2[2];

/* Paging for the second run: 4 KiB identity pages over the first 4 MiB, all user and
   writable but 0x70000 (supervisor) and 0x71000 (read-only). */
static u32 page_dir[1024] __attribute__((aligned(4096)));
static u32 page_table[1024] __attribute__((aligned(4096)));

/* A virtual-8086 task (GDT 13, selector 0x68): its TSS with VM in EFLAGS. */
#define SEL_V86TSS 0x68
static u8 v86_tss[104] __attribute__((aligned(16)));

void v86_enter(u32 eip, u32 esp, u32 eflags);
void v86_task_enter(void);
void v86_resume(void);
static volatile u32 v86_kernel_esp __attribute__((used));
/* IRET to v86 mode: GS, FS, DS, ES, SS, ESP, EFLAGS, CS, EIP. */
__asm__(".text\n.globl v86_enter\nv86_enter:\n"
        "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
        "\tmovl %esp, v86_kernel_esp\n"
        "\tmovl 20(%esp), %eax\n\tmovl 24(%esp), %ecx\n\tmovl 28(%esp), %edx\n"
        "\tpushl $0x6000\n\tpushl $0x5000\n\tpushl $0x1000\n\tpushl $0x4000\n"
        "\tpushl $0x3000\n\tpushl %ecx\n\tpushl %edx\n\tpushl $0x1000\n\tpushl %eax\n"
        "\tiret\n"
        ".globl v86_task_enter\nv86_task_enter:\n"
        "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
        "\tmovl %esp, v86_kernel_esp\n"
        "\tljmp $0x68, $0\n"
        ".globl v86_resume\nv86_resume:\n"
        "\tmovl $0x10, %eax\n\tmovl %eax, %ds\n\tmovl %eax, %es\n\tmovl %eax, %fs\n"
        "\tmovl %eax, %gs\n\tmovl %eax, %ss\n"
        "\tmovl v86_kernel_esp, %esp\n"
        "\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n\tret\n");

static u8 *v86_lin(u32 seg, u32 off) { return (u8 *)((seg << 4) + (off & 0xffff)); }

/* The first CLI (IOPL 0): the whole frame against what the SDM says. */
static void check_cli_frame(struct frame *f)
{
    struct v86_segs *s = v86_segs(f);
    CHECK_EQ(f->err, 0, "CLI #GP: error code 0");
    CHECK_EQ(f->eip, O(v86_cli1), "CLI #GP: EIP of the CLI");
    CHECK_EQ(f->cs, V86_SEG, "CLI #GP: CS");
    CHECK_EQ(f->eflags & (EFLAGS_VM | EFLAGS_IOPL), EFLAGS_VM, "CLI #GP: VM set, IOPL 0 in the image");
    CHECK_EQ(f->ss3, SS_SEG, "CLI #GP: SS");
    CHECK_EQ(s->es, 0x4000, "CLI #GP: ES in the frame");
    CHECK_EQ(s->ds, 0x1000, "CLI #GP: DS in the frame");
    CHECK_EQ(s->fs, 0x5000, "CLI #GP: FS in the frame");
    CHECK_EQ(s->gs, 0x6000, "CLI #GP: GS in the frame");
    CHECK_EQ((u32)&s->gs + 4, KSTACK_TOP, "CLI #GP: the frame at the top of ESP0's stack");
    CHECK_EQ(f->ds | f->es, 0, "CLI #GP: DS and ES null in the handler");
    CHECK_EQ(ring0_fs | ring0_gs, 0, "CLI #GP: FS and GS null in the handler");
}

/* PUSHF and POPF for IOPL 0: FLAGS with the virtual IF, on the v86 stack. */
static void emulate_flags(struct frame *f, int push)
{
    if (push) {
        f->esp3 = (f->esp3 & ~0xffffu) | ((f->esp3 - 2) & 0xffff);
        *(u16 *)v86_lin(f->ss3, f->esp3) = (u16)((f->eflags & ~EFLAGS_IF) | v86_vif);
    } else {
        u16 w = *(u16 *)v86_lin(f->ss3, f->esp3);
        f->esp3 = (f->esp3 & ~0xffffu) | ((f->esp3 + 2) & 0xffff);
        v86_vif = w & EFLAGS_IF;
        f->eflags = (f->eflags & ~0x0fd5u) | (w & 0x0dd5u); /* arithmetic flags, DF */
    }
}

/* The monitor's #GP: emulation of CLI STI PUSHF POPF, the rest skipped. */
static void v86_gp(struct frame *f)
{
    const u8 *ip = v86_lin(f->cs, f->eip);
    u32 len = 1;
    f->eax = 0x0d000000u | f->err;
    switch (ip[0]) {
    case 0xfa:
        if (!cli_checked++)
            check_cli_frame(f);
        v86_vif = 0;
        break;
    case 0xfb: v86_vif = EFLAGS_IF; break;
    case 0x9c: emulate_flags(f, 1); break;
    case 0x9d: emulate_flags(f, 0); break;
    case 0xcd: case 0xe4: case 0xe6: len = 2; break;       /* INT n, IN/OUT imm8 */
    case 0x0f: len = 3; break;                              /* MOV from CR0 */
    default: break;                                        /* IRET, IN/OUT DX */
    }
    f->eip = (f->eip + len) & 0xffff;
}

/* HLT with AX = 1 (IOPL 3), 2 (IOPL 0), 0xff (leave). */
static void v86_service(struct frame *f, u32 ax)
{
    f->eip = (f->eip + 1) & 0xffff;
    if (ax == 3)
        f->eax = paging_on;
    else if (ax == 4) {
        pit_start(1000);
        pic_unmask(0);
    } else if (ax == 5)
        outb(0x21, inb(0x21) | 1); /* IRQ 0 masked again */
    else if (ax == 1)
        f->eflags |= EFLAGS_IOPL;
    else if (ax == 2)
        f->eflags &= ~EFLAGS_IOPL;
    else if (ax == 0xff) {
        left = 1;
        f->eip = (u32)v86_resume; /* an IRET to ring 0: the rest of the frame stays */
        f->cs = SEL_CODE;
        f->eflags = 0x2;
    }
}

/* IRQ 0: counted for the v86 side when it interrupted v86 code (its frame checked),
   then masked. */
static volatile u32 irq_v86, irq_frame_bad;
static void v86_irq(struct frame *f)
{
    pic_eoi(0);
    if (!(f->eflags & EFLAGS_VM))
        return;
    irq_v86++;
    __asm__ volatile("movl %%fs, %0; movl %%gs, %1" : "=r"(ring0_fs), "=r"(ring0_gs));
    if (f->cs != V86_SEG || f->ss3 != SS_SEG || v86_segs(f)->ds != 0x1000 ||
        (f->ds | f->es | ring0_fs | ring0_gs) != 0 || (u32)&v86_segs(f)->gs + 4 != KSTACK_TOP)
        irq_frame_bad++;
    *(volatile u32 *)LOW(ticks) += 1;
    /* One per run: the count of events stays the same from run to run (fast-full.sh
       compares them).  Every IRQ lands in v86 code: ring 0 runs with IF clear. */
    outb(0x21, inb(0x21) | 1);
}

static void v86_event(struct frame *f)
{
    __asm__ volatile("movl %%fs, %0; movl %%gs, %1" : "=r"(ring0_fs), "=r"(ring0_gs));
    events++;
    if (!(f->eflags & EFLAGS_VM)) {
        not_v86++;
        printf("v86: vector %u from protected mode at %x:%x\n", f->vector, f->cs, f->eip);
        guest_exit();
    }
    switch (f->vector) {
    case 13:
        if (*v86_lin(f->cs, f->eip) == 0xf4) {
            v86_service(f, f->eax & 0xffff);
            return;
        }
        v86_gp(f);
        return;
    case 0: case 6: { /* faults: the instruction skipped (DIV r8, UD2: 2 bytes; LAR,
                         SLDT, LLDT r16: 3) */
        const u8 *ip = v86_lin(f->cs, f->eip);
        f->eax = f->vector << 24 | f->eip;
        f->eip += ip[0] == 0x0f && ip[1] != 0x0b ? 3 : 2;
        return;
    }
    case 14: { /* the 5-byte MOVs of t_paging */
        u32 cr2;
        __asm__ volatile("movl %%cr2, %0" : "=r"(cr2));
        if (pf_count < 2)
            pf_cr2[pf_count] = cr2;
        pf_count++;
        f->eax = 0x0e000000u | f->err;
        f->eip += 5;
        return;
    }
    case 0x30:
        if (!int30_checked++) {
            CHECK_EQ(f->eip, O(v86_int30_next), "INT 0x30 (IOPL 3): EIP after the INT");
            CHECK_EQ(f->eflags & (EFLAGS_VM | EFLAGS_IOPL), EFLAGS_VM | EFLAGS_IOPL,
                     "INT 0x30: VM and IOPL 3 in the image");
            CHECK_EQ(v86_segs(f)->gs, 0x6000, "INT 0x30: GS in the frame");
            CHECK_EQ(read_eflags() & (EFLAGS_VM | EFLAGS_IF), 0,
                     "INT 0x30: VM and IF clear in the handler (interrupt gate)");
        }
        f->eax = f->vector << 24 | f->eip;
        return;
    default: /* traps: INT3 */
        f->eax = f->vector << 24 | f->eip;
        return;
    }
}

struct result {
    u32 name, want, got;
};

/* The checks the v86 side recorded since the last call, printed; the table emptied. */
static u32 report(void)
{
    const struct result *res = LOW(results);
    u16 *rp = LOW(recp);
    u32 n = (*rp - O(results)) / sizeof *res;
    for (u32 i = 0; i < n; i++)
        check_eq(res[i].got, res[i].want, (const char *)res[i].name);
    *rp = (u16)O(results);
    return n;
}

static void paging(int on)
{
    if (on) {
        for (u32 i = 0; i < 1024; i++)
            page_table[i] = i << 12 | 0x7; /* present, writable, user */
        page_table[0x70] = 0x70000 | 0x3;  /* supervisor */
        page_table[0x71] = 0x71000 | 0x5;  /* user, read-only */
        page_dir[0] = (u32)page_table | 0x7;
        __asm__ volatile("movl %0, %%cr3; movl %%cr0, %%eax; orl $0x80000000, %%eax;"
                         "movl %%eax, %%cr0" : : "r"(page_dir) : "eax", "memory");
    } else {
        __asm__ volatile("movl %%cr0, %%eax; andl $0x7fffffff, %%eax; movl %%eax, %%cr0"
                         : : : "eax", "memory");
    }
    paging_on = on;
}

/* The v86 program once, with paging off or on; returns the checks it recorded. */
static u32 run_program(int with_paging)
{
    left = cli_checked = int30_checked = 0;
    paging(with_paging);
    v86_enter(O(v86_start), TOP_SP, EFLAGS_VM | EFLAGS_IF | 0x2);
    paging(0);
    printf("v86: back in 32-bit ring 0 (paging %s), %u events so far\n",
           with_paging ? "on" : "off", events);
    CHECK(left, "v86 mode left through the service call");
    CHECK_EQ(read_eflags() & EFLAGS_VM, 0, "VM clear after leaving");
    CHECK_EQ(cli_checked, 1, "one CLI #GP with IOPL 0");
    CHECK_EQ(int30_checked, 1, "one INT 0x30 through the gate");
    return report();
}

/* A JMP to a TSS whose EFLAGS has VM: the v86 task's segments, ESP and EBX from it. */
static void run_task(void)
{
    u32 eip = O(v86_task_start), eflags = EFLAGS_VM | 0x2, esp = 0xeee0, ebx = 0x7a5c;
    u32 seg[6] = { 0x4000, 0x1000, 0x3000, 0x1000, 0x5000, 0x6000 }; /* ES CS SS DS FS GS */
    u32 esp0 = KSTACK_TOP, ss0 = SEL_DATA;
    u16 iomap = 104; /* at the limit: no bitmap */
    memset(v86_tss, 0, sizeof v86_tss);
    memcpy(v86_tss + 4, &esp0, 4);
    memcpy(v86_tss + 8, &ss0, 4);
    memcpy(v86_tss + 0x20, &eip, 4);
    memcpy(v86_tss + 0x24, &eflags, 4);
    memcpy(v86_tss + 0x34, &ebx, 4);
    memcpy(v86_tss + 0x38, &esp, 4);
    for (int i = 0; i < 6; i++)
        memcpy(v86_tss + 0x48 + 4 * i, &seg[i], 4);
    memcpy(v86_tss + 102, &iomap, 2);
    gdt_set(13, (u32)v86_tss, sizeof v86_tss - 1, 0x89, 0x0);
    *(volatile u32 *)0x50000 = 0x50505050;
    left = 0;
    v86_task_enter();
    u16 tr;
    __asm__ volatile("str %0" : "=r"(tr));
    CHECK(left, "v86 task left through the service call");
    CHECK_EQ(tr, SEL_V86TSS, "TR: the v86 task's TSS");
    report();
}

void main(void)
{
    u32 size = (u32)v86_end - (u32)v86_base;
    printf("v86: %u bytes of 16-bit code at 0x%x\n", size, V86_LINEAR);
    memcpy((void *)V86_LINEAR, v86_base, size);
    tss_init(KSTACK_TOP);
    tss_allow_port(0x21);
    /* INT3 and INT 0x30 reachable from CPL 3; INT 0x32 not (DPL 0). */
    idt_set(3, isr_table[3], SEL_CODE, 0xe, 3);
    idt_set(0x30, isr_table[0x30], SEL_CODE, 0xe, 3);
    idt_set(0x32, isr_table[0x32], SEL_CODE, 0xe, 0);
    static const int vecs[] = { 0, 3, 6, 13, 14, 0x30 };
    for (unsigned i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
        set_handler(vecs[i], v86_event);
    set_handler(0x20, v86_irq);

    u32 n = run_program(0);
    CHECK(n >= 50, "at least 50 checks recorded in v86 mode (paging off)");
    n = run_program(1);
    CHECK(n >= 53, "at least 53 checks recorded in v86 mode (paging on)");
    CHECK_EQ(pf_count, 2, "two #PF in v86 mode with paging");
    CHECK_EQ(pf_cr2[0], 0x70010, "#PF: CR2 of the supervisor page's read");
    CHECK_EQ(pf_cr2[1], 0x72010 - 0x1000, "#PF: CR2 of the read-only page's write");
    CHECK_EQ(irq_v86, 2, "one timer interrupt taken in v86 mode per run");
    CHECK_EQ(irq_frame_bad, 0, "their frames: v86 CS, SS, DS; null ring-0 data segments");
    run_task();

    for (unsigned i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
        set_handler(vecs[i], 0);
    set_handler(0x20, 0);
}
