/*
 * user_to_cpl0.c - regression guest for issue 18's "guest user code becomes guest
 * kernel": when the CS load of a far RET, IRET or far CALL from CPL 3 faulted, xbt put
 * the user's ESP back after the #GP had been delivered, so the guest's #GP handler ran at
 * CPL 0 on the user's own stack with no frame pushed.  An ordinary handler that skips the
 * faulting instruction then IRETs with what the user left on its stack: here a CS of
 * 0x08 and an EIP (the skipped-over "frame word") that the user chose, so the user's
 * payload ran at CPL 0.
 *
 * The user stack holds, from ESP up: a word for the instruction, a word whose low half is
 * the faulting selector 0x000b (kernel code with RPL 3) and whose whole value points
 * (after the handler's skip) at the payload, the kernel's CS, and EFLAGS.  The CPU (and
 * QEMU) push the #GP frame on the ring-0 stack from the TSS with the user's CS, EIP, ESP
 * and SS; the handler skips the instruction, the user program exits normally, the
 * payload never runs and the user's stack is as it was.
 */
#include "lib/guest.h"

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));
/* The payload's landing pad: at an address whose low 16 bits are what the attack needs. */
static u8 pad[0x20000] __attribute__((aligned(65536)));
static volatile u32 skip_len, attack_x, attack_word, pwned;
static volatile u32 pwn_cs __attribute__((used)); /* written by the asm */
static volatile u32 gp_count, gp_err, gp_eip, gp_cs, gp_esp3, gp_ss3, gp_frame;

/* What the attack wants to run at CPL 0. */
void pwn_payload(void);
__asm__(".text\n.globl pwn_payload\npwn_payload:\n"
        "\tmovl %cs, %eax\n\tmovl %eax, pwn_cs\n\tmovl $1, pwned\n"
        "\tjmp user_resume\n");

/* The crafted stack, the pattern below it, the faulting instruction, then exit. */
#define ATTACK(name, insn)                                                               \
    ".text\n.globl " name "\n" name ":\n"                                                \
    "\tpushl $0x2\n\tpushl $0x08\n\tpushl attack_word\n\tpushl $0x1234\n"                \
    "\tmovl %esp, attack_x\n"                                                            \
    "\tleal -64(%esp), %edi\n\tmovl $16, %ecx\n\tmovl $0x5a5a5a5a, %eax\n\tcld\n\trep stosl\n" \
    name "_insn:\n\t" insn "\n"                                                          \
    "\tmovl $0, %eax\n\tint $0x80\n"
void attack_lret(void), attack_iret(void), attack_lcall(void);
extern const u8 attack_lret_insn[], attack_iret_insn[], attack_lcall_insn[];
__asm__(ATTACK("attack_lret", "lret") ATTACK("attack_iret", "iret")
        ATTACK("attack_lcall", "lcall $0x0b, $0"));

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) {
        f->eip = (u32)user_resume;
        f->cs = SEL_CODE;
    }
}

/* An ordinary kernel's #GP handler for user faults: note it, skip the instruction. */
static void gp_handler(struct frame *f)
{
    gp_count++;
    gp_err = f->err, gp_eip = f->eip, gp_cs = f->cs, gp_frame = (u32)f;
    gp_esp3 = f->esp3, gp_ss3 = f->ss3;
    f->eip += skip_len;
}

static void attack(void (*fn)(void), const u8 *insn, u32 len, const char *name)
{
    u32 base = (u32)pad + 0x10000 - ((u32)pad & 0xffff); /* 64 KiB aligned, inside pad */
    u8 *at = (u8 *)(base + 0x000b + len);
    /* jmp pwn_payload at the address the handler's skip would reach */
    at[0] = 0xe9;
    u32 rel = (u32)pwn_payload - (u32)(at + 5);
    memcpy(at + 1, &rel, 4);
    attack_word = base + 0x000b;
    skip_len = len;
    pwned = 0;
    gp_count = 0;
    user_run(fn, (u32)ustack + sizeof ustack - 256);
    printf("-- %s from CPL 3 with a crafted stack\n", name);
    CHECK_EQ(pwned, 0, "  the user's payload did not run at CPL 0");
    CHECK_EQ(gp_count, 1, "  one #GP");
    CHECK_EQ(gp_err, SEL_CODE, "  #GP(0x08)");
    CHECK_EQ(gp_eip, (u32)insn, "  at the faulting instruction");
    CHECK_EQ(gp_cs & 0xffff, SEL_UCODE, "  from CPL 3");
    CHECK(gp_frame >= (u32)kstack && gp_frame < (u32)kstack + sizeof kstack,
          "  #GP frame on the ring-0 stack (TSS), not the user's");
    CHECK_EQ(gp_esp3, attack_x, "  frame holds the user's ESP as it was");
    CHECK_EQ(gp_ss3 & 0xffff, SEL_UDATA, "  and the user's SS");
    const u32 *x = (const u32 *)attack_x;
    u32 same = x[0] == 0x1234 && x[1] == attack_word && x[2] == 0x08 && x[3] == 0x2;
    for (int i = 1; i <= 16; i++)
        same &= x[-i] == 0x5a5a5a5a;
    CHECK(same, "  the user's stack untouched");
}

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    tss_init((u32)kstack + sizeof kstack);
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(13, gp_handler);
    attack(attack_lret, attack_lret_insn, 1, "lret");
    attack(attack_iret, attack_iret_insn, 1, "iret");
    attack(attack_lcall, attack_lcall_insn, 7, "lcall");
}
