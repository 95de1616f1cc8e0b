/*
 * ibl_mode.c - an indirect branch at CPL 3 to an address the kernel's own indirect
 * branches reached at CPL 0.  The code there is CLI; RET: at CPL 0 it runs, at CPL 3
 * (IOPL 0) CLI raises #GP.  The user's JMP is the first indirect branch after the IRET
 * that entered user mode: xbt once handed translated code the kernel's inline lookup
 * table until the next dispatch, so the user's JMP found the kernel's translation of
 * the target (CLI done inline, no #GP).  The kernel also checks that, after the #GP, its
 * own indirect call to the same code still works.
 */
#include "lib/guest.h"

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[4096] __attribute__((aligned(16)));
static volatile u32 gp_eip, gp_count, gp_cs, wrong_way;

/* The shared code: CLI; RET (at CPL 0 the caller's STI follows). */
void cli_ret(void);
__asm__(".text\n.p2align 4\n.globl cli_ret\ncli_ret:\n\tcli\n\tret\n");

/* User code: EAX = cli_ret; its stack's top holds user_wrong_way (where the RET of
   cli_ret would go if the CLI ran at CPL 3).  The JMP is the first indirect branch. */
void user_entry(void);
void user_wrong_way(void);
__asm__(".text\n.globl user_entry\nuser_entry:\n\tjmp *%eax\n"
        ".globl user_wrong_way\nuser_wrong_way:\n\tmovl $1, %eax\n\tint $0x80\n\tjmp .\n");

static void back_to_kernel(struct frame *f)
{
    user_return(f);
    f->eflags &= ~0x200u;
}

static void on_gp(struct frame *f)
{
    if (!(f->cs & 3)) {
        printf("FAIL #GP at CPL 0, eip %x\n", f->eip);
        guest_exit();
    }
    gp_count++;
    gp_eip = f->eip;
    gp_cs = f->cs;
    back_to_kernel(f);
}

static void on_syscall(struct frame *f)
{
    wrong_way++; /* the user reached user_wrong_way: CLI ran at CPL 3 */
    back_to_kernel(f);
}

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(13, on_gp);
    set_handler(0x30, on_syscall);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    void (*volatile target)(void) = cli_ret;
    /* The kernel reaches cli_ret by indirect calls, often enough to be in any cache. */
    for (int i = 0; i < 100; i++) {
        target();
        sti();
    }
    u32 *top = (u32 *)(ustack + sizeof ustack) - 1;
    for (int round = 0; round < 3; round++) {
        *top = (u32)user_wrong_way;
        user_enter((u32)user_entry, (u32)top, (u32)cli_ret);
        target(); /* the kernel's own call still runs CLI at CPL 0 */
        sti();
    }
    printf("ibl_mode: %u #GP at %x (cli_ret %x), %u returns the wrong way\n", gp_count,
           gp_eip, (u32)cli_ret, wrong_way);
    CHECK_EQ(gp_count, 3, "CLI at CPL 3 raised #GP each time");
    CHECK_EQ(gp_eip, (u32)cli_ret, "the #GP names the CLI reached by the user's JMP");
    CHECK_EQ(gp_cs, SEL_UCODE, "the #GP came from CPL 3");
    CHECK_EQ(wrong_way, 0, "the user never ran past the CLI");
}
