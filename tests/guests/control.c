/*
 * control.c - control flow: deep recursion, switch jump tables, function-pointer
 * tables, ENTER/LEAVE, a setjmp/longjmp in assembly, indirect jumps through memory,
 * far call and far return within ring 0, LOOP/JECXZ.
 */
#include "lib/guest.h"

static u32 depth_sum(u32 n) { return n == 0 ? 0 : n + depth_sum(n - 1); }

static u32 ack(u32 m, u32 n)
{
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}

__attribute__((noinline)) static u32 sw(u32 x)
{
    switch (x) {
    case 0: return 17;
    case 1: return 4;
    case 2: return 99;
    case 3: return 1234;
    case 4: return 5;
    case 5: return 77;
    case 6: return 8;
    case 7: return 1000;
    case 8: return 3;
    case 9: return 42;
    case 10: return 11;
    default: return 0;
    }
}

static u32 f_add(u32 a, u32 b) { return a + b; }
static u32 f_sub(u32 a, u32 b) { return a - b; }
static u32 f_mul(u32 a, u32 b) { return a * b; }
static u32 f_xor(u32 a, u32 b) { return a ^ b; }
static u32 (*const ops[4])(u32, u32) = { f_add, f_sub, f_mul, f_xor };

/* Minimal setjmp/longjmp: ebx esi edi ebp esp eip. */
__asm__(".text\n"
        "my_setjmp:\n\tmovl 4(%esp), %eax\n\tmovl %ebx, 0(%eax)\n\tmovl %esi, 4(%eax)\n\t"
        "movl %edi, 8(%eax)\n\tmovl %ebp, 12(%eax)\n\tleal 4(%esp), %ecx\n\t"
        "movl %ecx, 16(%eax)\n\tmovl (%esp), %ecx\n\tmovl %ecx, 20(%eax)\n\txorl %eax, %eax\n\tret\n"
        "my_longjmp:\n\tmovl 4(%esp), %edx\n\tmovl 8(%esp), %eax\n\tmovl 0(%edx), %ebx\n\t"
        "movl 4(%edx), %esi\n\tmovl 8(%edx), %edi\n\tmovl 12(%edx), %ebp\n\t"
        "movl 16(%edx), %esp\n\tjmp *20(%edx)\n"
        "far_target:\n\tmovl $0x5151, %eax\n\tlret\n"
        "far_target_imm:\n\tmovl $0x6161, %eax\n\tlret $8\n");
int my_setjmp(u32 *env) __attribute__((returns_twice));
void my_longjmp(u32 *env, int v) __attribute__((noreturn));
static u32 env[6];

__attribute__((noinline, noreturn)) static void deep_then_jump(u32 n)
{
    static volatile u32 frames;
    frames++;
    if (n == 0)
        my_longjmp(env, 7);
    deep_then_jump(n - 1);
}

void main(void)
{
    CHECK_EQ(depth_sum(10000), 10000u * 10001u / 2, "recursion 10000 deep");
    CHECK_EQ(ack(2, 300), 603, "ackermann(2, 300)");
    CHECK_EQ(ack(3, 5), 253, "ackermann(3, 5)");
    static const u32 want[12] = { 17, 4, 99, 1234, 5, 77, 8, 1000, 3, 42, 11, 0 };
    u32 ok = 1;
    for (u32 r = 0; r < 100; r++)
        for (u32 i = 0; i < 12; i++)
            ok &= sw((i * 7 + r) % 12) == want[(i * 7 + r) % 12];
    CHECK(ok, "switch jump table, 1200 dispatches");
    u32 acc = 1;
    for (u32 i = 0; i < 1000; i++)
        acc = ops[i & 3](acc, i + 3);
    u32 ref = 1;
    for (u32 i = 0; i < 1000; i++) {
        switch (i & 3) {
        case 0: ref = ref + (i + 3); break;
        case 1: ref = ref - (i + 3); break;
        case 2: ref = ref * (i + 3); break;
        default: ref = ref ^ (i + 3); break;
        }
    }
    CHECK_EQ(acc, ref, "function pointer table");
    /* ENTER/LEAVE with nesting level 0 and 1. */
    u32 esp0, esp1, ebp_in;
    __asm__ volatile("movl %%esp, %0\n\tenter $16, $0\n\tmovl %%ebp, %2\n\tleave\n\tmovl %%esp, %1"
                     : "=r"(esp0), "=r"(esp1), "=r"(ebp_in) : : "memory");
    CHECK_EQ(esp0, esp1, "enter/leave restores esp");
    CHECK_EQ(ebp_in, esp0 - 4, "enter sets ebp");
    __asm__ volatile("movl %%esp, %0\n\tenter $8, $1\n\tmovl %%ebp, %2\n\tleave\n\tmovl %%esp, %1"
                     : "=r"(esp0), "=r"(esp1), "=r"(ebp_in) : : "memory");
    CHECK_EQ(esp0, esp1, "enter level 1 / leave");
    CHECK_EQ(ebp_in, esp0 - 4, "enter level 1 ebp");
    /* longjmp out of a deep recursion. */
    volatile u32 stage = 0;
    int v = my_setjmp(env);
    if (v == 0) {
        stage = 1;
        deep_then_jump(500);
    }
    CHECK_EQ(v, 7, "longjmp value");
    CHECK_EQ(stage, 1, "longjmp returned to setjmp");
    /* Far call / far return to the same CS, and lret imm. */
    u32 r;
    __asm__ volatile("lcall $0x08, $far_target" : "=a"(r) : : "ecx", "edx", "memory");
    CHECK_EQ(r, 0x5151, "far call / lret");
    __asm__ volatile("pushl $1\n\tpushl $2\n\tlcall $0x08, $far_target_imm" : "=a"(r) : : "ecx", "edx", "memory");
    CHECK_EQ(r, 0x6161, "far call / lret 8 pops the arguments");
    /* Indirect jump through memory and through a register. */
    static u32 slot;
    __asm__ volatile("movl $1f, %1\n\tmovl $0, %0\n\tjmp *%1\n\tmovl $99, %0\n1:\taddl $3, %0"
                     : "=&r"(r), "=m"(slot) : : "memory");
    CHECK_EQ(r, 3, "jmp through memory");
    __asm__ volatile("movl $1f, %%ecx\n\tmovl $0, %0\n\tjmp *%%ecx\n\tmovl $99, %0\n1:\taddl $4, %0"
                     : "=&r"(r) : : "ecx", "memory");
    CHECK_EQ(r, 4, "jmp through a register");
    /* LOOP, LOOPZ, JECXZ. */
    __asm__ volatile("movl $10, %%ecx\n\txorl %0, %0\n1:\taddl %%ecx, %0\n\tloop 1b"
                     : "=&r"(r) : : "ecx", "cc");
    CHECK_EQ(r, 55, "loop");
    u32 c;
    __asm__ volatile("movl $10, %%ecx\n\txorl %%eax, %%eax\n1:\tcmpl $0, %%eax\n\tloopz 1b"
                     : "=c"(c) : : "eax", "cc");
    CHECK_EQ(c, 0, "loopz runs while zf=1 until ecx=0");
    __asm__ volatile("xorl %%ecx, %%ecx\n\tmovl $1, %0\n\tjecxz 1f\n\tmovl $2, %0\n1:"
                     : "=r"(r) : : "ecx");
    CHECK_EQ(r, 1, "jecxz taken");
}
