/*
 * retpred.c - CALL and RET whatever the guest does with its return addresses, on every
 * peer: the cases a translator that predicts returns (a host CALL per guest CALL, a
 * host RET per guest RET, a lookup at the return point: docs/ARCHITECTURE.md, "Not
 * built yet") must keep exact, and which the plain translation (a lookup at every RET)
 * must keep exact too:
 *  - recursion 40,000 calls deep, with and without the timer interrupting it (every
 *    interrupt leaves translated code: the RETs of CALLs made before it run after a
 *    new entry);
 *  - CALL used to push EIP (`call 1f; 1: pop`), 100,000 times, then ordinary calls;
 *  - RETs to other addresses than the CALL's next: a function that moves its own
 *    return address, PUSH + RET as a jump, RET imm16;
 *  - a longjmp out of nested calls, 1,000 times;
 *  - indirect CALLs through a register and through memory to several targets;
 *  - flags across CALL and RET (the return point must not touch them);
 *  - two coroutines switching stacks inside called functions, 20,000 switches;
 *  - a RET whose CALL ran before an INT to a handler that IRETs (a full exit).
 */
#include "lib/guest.h"

static u8 big_stack[512 * 1024] /* 40,000 frames of 8 bytes */ __attribute__((aligned(16)));
static u8 co_stack[2][8192] __attribute__((aligned(16)));
static volatile u32 ticks;

/* rec(n) in EAX: n nested calls, each adding its depth to EBX on the way back. */
__asm__(".text\n"
        ".globl rp_rec\nrp_rec:\n"
        "\ttestl %eax, %eax\n\tjz 1f\n\tpushl %eax\n\tdecl %eax\n\tcall rp_rec\n"
        "\tpopl %eax\n\taddl %eax, %ebx\n1:\tret\n"
        /* rp_deep(n, stack top): runs rp_rec(n) on another stack, returns EBX */
        ".globl rp_deep\nrp_deep:\n"
        "\tpushl %ebx\n\tpushl %ebp\n\tmovl 12(%esp), %eax\n\tmovl 16(%esp), %ecx\n"
        "\tmovl %esp, %ebp\n\tmovl %ecx, %esp\n\txorl %ebx, %ebx\n\tcall rp_rec\n"
        "\tmovl %ebp, %esp\n\tmovl %ebx, %eax\n\tpopl %ebp\n\tpopl %ebx\n\tret\n"
        /* rp_pusheip(): the address of its label, by CALL + POP */
        ".globl rp_pusheip\nrp_pusheip:\n\tcall 1f\n"
        ".globl rp_pusheip_at\nrp_pusheip_at:\n1:\tpopl %eax\n\tret\n"
        /* rp_skip(): returns 5 bytes past its CALL's next (over a MOV imm32 to EAX) */
        ".globl rp_skip\nrp_skip:\n\taddl $5, (%esp)\n\tmovl $7, %eax\n\tret\n"
        /* rp_skip_site(): 7 if rp_skip skipped the MOV, else 0x99 */
        ".globl rp_skip_site\nrp_skip_site:\n\tcall rp_skip\n\tmovl $0x99, %eax\n\tret\n"
        /* rp_pushret(): PUSH + RET as a jump to rp_pushret_to, which returns 0x5151 */
        ".globl rp_pushret\nrp_pushret:\n\tpushl $rp_pushret_to\n\tret\n"
        "\tmovl $0xdead, %eax\n\tret\n"
        "rp_pushret_to:\n\tmovl $0x5151, %eax\n\tret\n"
        /* rp_retimm(a, b): a + b, the callee pops its arguments (RET 8) */
        ".globl rp_retimm_site\nrp_retimm_site:\n"
        "\tpushl 8(%esp)\n\tpushl 8(%esp)\n\tcall rp_retimm\n\tret\n"
        "rp_retimm:\n\tmovl 4(%esp), %eax\n\taddl 8(%esp), %eax\n\tret $8\n"
        /* rp_flags(x): CMP x with 5 in the caller, CALL a function that does nothing
           but return, then SETcc in the caller: CF, ZF, SF, OF survive the pair */
        ".globl rp_flags\nrp_flags:\n\tmovl 4(%esp), %eax\n\tcmpl $5, %eax\n"
        "\tcall rp_nop\n\tsetb %al\n\tsetz %ah\n\tsets %cl\n\tseto %ch\n"
        "\tshll $16, %ecx\n\tmovw %ax, %cx\n\tmovl %ecx, %eax\n\tret\n"
        "rp_nop:\n\tret\n"
        /* rp_flags_back(x): the callee's CMP sets the flags the caller reads after RET */
        ".globl rp_flags_back\nrp_flags_back:\n\tmovl 4(%esp), %eax\n"
        "\tcall rp_cmp7\n\tsetb %al\n\tsetz %ah\n\tmovzwl %ax, %eax\n\tret\n"
        "rp_cmp7:\n\tcmpl $7, %eax\n\tret\n"
        /* rp_setjmp(buf) / rp_longjmp(buf, v): EBX ESI EDI EBP ESP EIP */
        ".globl rp_setjmp\nrp_setjmp:\n\tmovl 4(%esp), %edx\n\tmovl %ebx, (%edx)\n"
        "\tmovl %esi, 4(%edx)\n\tmovl %edi, 8(%edx)\n\tmovl %ebp, 12(%edx)\n"
        "\tleal 4(%esp), %ecx\n\tmovl %ecx, 16(%edx)\n\tmovl (%esp), %ecx\n"
        "\tmovl %ecx, 20(%edx)\n\txorl %eax, %eax\n\tret\n"
        ".globl rp_longjmp\nrp_longjmp:\n\tmovl 4(%esp), %edx\n\tmovl 8(%esp), %eax\n"
        "\tmovl (%edx), %ebx\n\tmovl 4(%edx), %esi\n\tmovl 8(%edx), %edi\n"
        "\tmovl 12(%edx), %ebp\n\tmovl 16(%edx), %esp\n\tjmp *20(%edx)\n"
        /* rp_switch(save, load): saves ESP at *save, loads it from *load, returns on
           the other stack (callee-saved registers with it) */
        ".globl rp_switch\nrp_switch:\n\tmovl 4(%esp), %eax\n\tmovl 8(%esp), %edx\n"
        "\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n\tpushl %ebp\n"
        "\tmovl %esp, (%eax)\n\tmovl (%edx), %esp\n"
        "\tpopl %ebp\n\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tret\n"
        /* rp_int_site(): INT 0x30 (a handler that IRETs) inside a called function */
        ".globl rp_int_site\nrp_int_site:\n\tcall rp_int_callee\n\taddl $1, %eax\n\tret\n"
        "rp_int_callee:\n\tmovl $41, %eax\n\tint $0x30\n\tret\n");

u32 rp_deep(u32 n, u32 top);
u32 rp_pusheip(void);
extern u8 rp_pusheip_at[];
u32 rp_skip_site(void);
u32 rp_pushret(void);
u32 rp_retimm_site(u32 a, u32 b);
u32 rp_flags(u32 x);
u32 rp_flags_back(u32 x);
u32 rp_setjmp(u32 *buf);
void rp_longjmp(u32 *buf, u32 v); /* does not return (not declared so: nest recurses) */
void rp_switch(u32 *save, u32 *load);
u32 rp_int_site(void);

static void on_tick(struct frame *f)
{
    (void)f;
    ticks++;
    pic_eoi(0);
}

static void iret_only(struct frame *f) { (void)f; }

static __attribute__((noinline)) u32 leaf_a(u32 x) { __asm__ volatile(""); return x + 1; }
static __attribute__((noinline)) u32 leaf_b(u32 x) { __asm__ volatile(""); return x * 3; }
static __attribute__((noinline)) u32 leaf_c(u32 x) { __asm__ volatile(""); return x ^ 0x55; }

static u32 jb[6];
static volatile u32 nest_calls;
static __attribute__((noinline)) void nest(u32 d, u32 v)
{
    nest_calls++;
    if (d == 0)
        rp_longjmp(jb, v);
    else
        nest(d - 1, v);
    nest_calls++; /* not reached: keeps the call a call, not a jump */
}

/* The coroutines: each adds to its sum and switches, `n` times. */
static u32 co_sp[3], co_sum[2];
static volatile u32 co_left;
static __attribute__((noinline)) void co_yield(int me)
{
    rp_switch(&co_sp[me], &co_sp[!me]);
}
static void co_body(int me)
{
    while (co_left) {
        co_left--;
        co_sum[me] += me + 1;
        co_yield(me);
    }
    rp_switch(&co_sp[me], &co_sp[2]); /* back to main */
}
static void co_entry0(void) { co_body(0); }
static void co_entry1(void) { co_body(1); }
static void co_prepare(int k, void (*fn)(void))
{
    u32 *sp = (u32 *)(co_stack[k] + sizeof co_stack[k]);
    *--sp = 0;           /* (co_body never returns) */
    *--sp = (u32)fn;     /* rp_switch's RET */
    for (int i = 0; i < 4; i++)
        *--sp = 0;       /* EBX ESI EDI EBP */
    co_sp[k] = (u32)sp;
}

void main(void)
{
    u32 top = (u32)(big_stack + sizeof big_stack);
    /* 1: deep recursion; sum of 1..n = n(n+1)/2 */
    u32 n = 40000;
    CHECK_EQ(rp_deep(n, top), n * (n + 1) / 2, "recursion 40,000 deep");
    set_handler(32, on_tick);
    pit_start(2000);
    pic_unmask(0);
    sti();
    u32 ok = 1, t0 = ticks;
    for (int r = 0; r < 100; r++)
        ok &= rp_deep(n, top) == n * (n + 1) / 2;
    cli();
    CHECK(ok, "recursion 40,000 deep, 100 times, with the timer at 2 kHz");
    printf("  (%u timer interrupts during them)\n", ticks - t0);

    /* 2: CALL to push EIP, then ordinary calls still return right */
    ok = 1;
    for (u32 i = 0; i < 100000; i++)
        ok &= rp_pusheip() == (u32)rp_pusheip_at;
    CHECK(ok, "call 1f; 1: pop, 100,000 times");
    CHECK_EQ(leaf_a(leaf_b(leaf_c(1))), ((1 ^ 0x55) * 3) + 1, "calls after them");

    /* 3: RETs elsewhere */
    ok = 1;
    for (u32 i = 0; i < 1000; i++)
        ok &= rp_skip_site() == 7 && rp_pushret() == 0x5151 && rp_retimm_site(i, 3) == i + 3;
    CHECK(ok, "a moved return address, PUSH+RET, RET 8 (1,000 rounds)");

    /* 4: longjmp out of nested calls */
    ok = 1;
    for (u32 i = 1; i <= 1000; i++) {
        volatile u32 got = rp_setjmp(jb);
        if (got == 0)
            nest(i % 17, i);
        ok &= got == i;
    }
    CHECK(ok, "longjmp out of up to 16 nested calls, 1,000 times");

    /* 5: indirect CALLs, several targets per site */
    u32 (*volatile fns[3])(u32) = { leaf_a, leaf_b, leaf_c };
    u32 acc = 0, want = 0;
    for (u32 i = 0; i < 3000; i++) {
        acc += fns[i % 3](i);                /* through memory */
        u32 (*f)(u32) = fns[(i * 7) % 3];
        acc += f(i);                         /* through a register */
        u32 k = i % 3, k2 = (i * 7) % 3;
        want += (k == 0 ? i + 1 : k == 1 ? i * 3 : i ^ 0x55) +
                (k2 == 0 ? i + 1 : k2 == 1 ? i * 3 : i ^ 0x55);
    }
    CHECK_EQ(acc, want, "indirect calls, three targets per site");

    /* 6: flags across CALL and RET */
    CHECK_EQ(rp_flags(3), 0x00010001u, "CF across CALL/RET (3 < 5)");
    CHECK_EQ(rp_flags(5), 0x00000100u, "ZF across CALL/RET (5 == 5)");
    CHECK_EQ(rp_flags(0x80000004u), 0x01000000u, "OF across CALL/RET (0x80000004 - 5)");
    CHECK_EQ(rp_flags(0xfffffff0u), 0x00010000u, "SF across CALL/RET");
    CHECK_EQ(rp_flags_back(2), 0x0001u, "CF set by the callee, read after RET");
    CHECK_EQ(rp_flags_back(7), 0x0100u, "ZF set by the callee, read after RET");

    /* 7: coroutines */
    co_prepare(0, co_entry0);
    co_prepare(1, co_entry1);
    co_left = 20000;
    rp_switch(&co_sp[2], &co_sp[0]);
    CHECK(co_sum[0] + co_sum[1] / 2 == 20000 && co_sum[0] >= 9999,
          "two coroutines switching stacks in called functions, 20,000 switches");

    /* 8: a RET after a full exit */
    set_handler(0x30, iret_only);
    idt_set(0x30, isr_table[0x30], SEL_CODE, 0xe, 0);
    ok = 1;
    for (u32 i = 0; i < 1000; i++)
        ok &= rp_int_site() == 42;
    CHECK(ok, "RETs after an INT and IRET inside the callee, 1,000 times");
    guest_exit();
}
