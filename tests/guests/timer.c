/*
 * timer.c - PIT interrupts through the 8259 while the guest spins in one-block loops
 * (a C loop and a two-instruction asm loop), STI;HLT waits, the interrupt shadow of STI,
 * masking at the PIC, and the PIT's counter read back through a latch.
 */
#include "lib/guest.h"

static volatile u32 ticks, tick_eip;

static void irq0(struct frame *f)
{
    tick_eip = f->eip;
    ticks++;
    pic_eoi(0);
}

/* A page of code with room for a stack: a store there is data beside translated code
   (xbt runs the storing instruction again, alone, with the page writable). */
__asm__(".text\n\t.p2align 12\n"
        "shadow_page_code0:\n\tret\n\t.p2align 4\n"
        "shadow_page_code1:\n\tret\n\t.skip 2048, 0\n"
        "shadow_page_stack:\n\t.skip 1024, 0\n\t.p2align 12\n");
void shadow_page_code0(void);
void shadow_page_code1(void);

/* Interrupts off, and a tick pending behind them (IRR bit 0, read through OCW3). */
static int tick_pending(void)
{
    cli();
    outb(0x20, 0x0a);
    for (u32 i = 0; i < 50000000 && !(inb(0x20) & 1); i++)
        ;
    outb(0x20, 0x0a);
    return inb(0x20) & 1;
}

void main(void)
{
    set_handler(0x20, irq0);
    pit_start(1000);
    pic_unmask(0);
    sti();
    while (ticks < 20)
        ;
    CHECK(ticks >= 20, "ticks arrive while spinning in a C loop");
    u32 target = ticks + 20;
    __asm__ volatile("1:\tcmpl %0, ticks\n\tjb 1b" : : "r"(target) : "cc", "memory");
    CHECK(ticks >= target, "ticks arrive in a one-block asm loop");
    /* Interrupts disabled: nothing arrives even in a long loop. */
    cli();
    u32 t0 = ticks;
    for (volatile u32 i = 0; i < 3000000; i++)
        ;
    CHECK_EQ(ticks, t0, "no ticks with if=0");
    /* The pending tick arrives right after STI's shadow: one instruction later. */
    u32 t1;
    __asm__ volatile("sti\n\tmovl ticks, %0\n\tnop" : "=r"(t1) : : "memory");
    CHECK_EQ(t1, t0, "sti shadow: the next instruction runs first");
    CHECK(ticks > t0, "pending tick taken after the shadow");
    /* And no later: right after the one instruction the shadow covers (xbt runs such an
       STI inline, with an interrupt gate after that instruction).  The tick is made
       pending first: IRR bit 0 read through OCW3. */
    u32 a, b;
    cli();
    outb(0x20, 0x0a);
    for (u32 i = 0; i < 50000000 && !(inb(0x20) & 1); i++)
        ;
    outb(0x20, 0x0a);
    CHECK(inb(0x20) & 1, "a tick pending behind if=0 (IRR)");
    u32 before = ticks;
    __asm__ volatile("sti\n\tmovl ticks, %0\n\tmovl ticks, %1\n\tcli" : "=r"(a), "=r"(b) : : "memory");
    CHECK_EQ(a, before, "sti: the shadowed instruction runs before the pending tick");
    /* (more than one tick if the handler took longer than a PIT period) */
    CHECK(b > a, "sti: the pending tick comes right after the shadowed instruction");
    /* STI's shadow over a branch: the pending tick comes at the branch's target, after
       the branch and before the target's first instruction (xbt puts the gate into the
       branch's exit: a JMP, a CALL, a RET, an indirect JMP). */
    u32 at, t, tgt, late = 0, missed = 0, wrong = 0;
    /* Each branch twice per round: first with nothing pending (its exit is chained or
       its target cached then: a delivery in the dispatcher would leave it unchained),
       then with a tick pending, which the gate in the chained exit must take. */
    for (int round = 0; round < 8; round++) {
        for (int kind = 0; kind < 4; kind++) {
            int pending = round & 1;
            if (!pending)
                cli();
            else if (!tick_pending()) {
                missed++;
                continue;
            }
            before = ticks;
            if (kind == 0)
                __asm__ volatile("sti\n\tjmp 2f\n\tnop\n\tnop\n"
                                 "2:\tmovl ticks, %0\n\tcli\n\tmovl $2b, %1"
                                 : "=r"(at), "=r"(tgt) : : "memory");
            else if (kind == 1)
                __asm__ volatile("sti\n\tcall 3f\n\tnop\n"
                                 "3:\tmovl ticks, %0\n\tcli\n\tpopl %1\n\tmovl $3b, %1"
                                 : "=r"(at), "=r"(tgt) : : "memory");
            else if (kind == 2)
                __asm__ volatile("pushl $4f\n\tsti\n\tret\n\tnop\n"
                                 "4:\tmovl ticks, %0\n\tcli\n\tmovl $4b, %1"
                                 : "=r"(at), "=r"(tgt) : : "memory");
            else
                __asm__ volatile("movl $5f, %1\n\tsti\n\tjmp *%1\n\tnop\n"
                                 "5:\tmovl ticks, %0\n\tcli"
                                 : "=r"(at), "=&r"(tgt) : : "memory");
            if (!pending)
                continue;
            u32 bit = 1u << (4 * (round / 2) + kind);
            if (!(at > before)) {
                late |= bit;
                printf("  round %d, kind %d: no tick before the target's first "
                       "instruction\n", round, kind);
            } else if (tick_eip != tgt) {
                wrong |= bit;
                printf("  round %d, kind %d: tick at %x, target %x\n", round, kind,
                       tick_eip, tgt);
            }
        }
    }
    CHECK_EQ(missed, 0, "sti; branch: a tick pending before each of 16 branches");
    CHECK_EQ(late, 0, "sti; jmp/call/ret/jmp *reg: the pending tick comes at the "
                      "branch's target, in every round (a bit per late one)");
    CHECK_EQ(wrong, 0, "sti; jmp/call/ret/jmp *reg: the tick's return address is the "
                       "branch's target (a bit per wrong one)");
    /* With nothing pending the branch just goes on (and the tick comes later). */
    __asm__ volatile("sti\n\tcall 6f\n7:\tnop\n6:\tpopl %0\n\tcli\n\tmovl $7b, %1"
                     : "=r"(t), "=r"(tgt) : : "memory");
    CHECK_EQ(t, tgt, "sti; call: the return address pushed");
    /* The shadowed instruction restarted: its stack store hits a page holding
       translated code (data beside code: it runs again, alone, from the dispatcher).
       The shadow still covers it: the tick comes after it, not before.  (Under a tiny
       translation cache the page may have lost its translations first: no restart, and
       these checks then prove nothing; the default runs do restart.) */
    shadow_page_code0();
    CHECK(tick_pending(), "sti; call (restarted): a tick pending");
    __asm__ volatile("movl %%esp, %%ebx\n\tmovl $shadow_page_stack, %%esp\n\tsti\n"
                     "\tcall 8f\n8:\tmovl ticks, %0\n\tcli\n\tmovl %%ebx, %%esp\n"
                     "\tmovl $8b, %1"
                     : "=r"(at), "=r"(tgt) : : "ebx", "memory");
    CHECK_EQ(tick_eip, tgt, "sti; call whose push restarts (a code page): the tick comes "
                            "at the callee, not at the call");
    shadow_page_code1(); /* a new translation on the page: written again, it faults */
    CHECK(tick_pending(), "sti; push (restarted): a tick pending");
    __asm__ volatile("movl %%esp, %%ebx\n\tmovl $shadow_page_stack, %%esp\n\tsti\n"
                     "\tpushl $0\n9:\tmovl ticks, %0\n\tcli\n\tmovl %%ebx, %%esp\n"
                     "\tmovl $9b, %1"
                     : "=r"(at), "=r"(tgt) : : "ebx", "memory");
    CHECK_EQ(tick_eip, tgt, "sti; push that restarts (a code page): the tick comes after "
                            "the push, not before");
    /* POPF that sets IF has no shadow: the pending tick comes before the next one. */
    outb(0x20, 0x0a);
    for (u32 i = 0; i < 50000000 && !(inb(0x20) & 1); i++)
        ;
    u32 c0 = ticks, c;
    __asm__ volatile("pushl %1\n\tpopfl\n\tmovl ticks, %0\n\tcli"
                     : "=r"(c) : "r"(read_eflags() | 0x200) : "memory", "cc");
    CHECK(c > c0, "popf setting if: the pending tick comes before the next instruction");
    sti();
    /* HLT waits for the next interrupt. */
    for (int i = 0; i < 10; i++) {
        u32 before = ticks;
        __asm__ volatile("sti; hlt" : : : "memory");
        CHECK(ticks > before, i == 0 ? "hlt wakes on irq0" : "hlt wakes again");
    }
    /* Masked at the PIC: no ticks; unmasked again: they come back. */
    outb(0x21, inb(0x21) | 1);
    u32 t2 = ticks;
    for (volatile u32 i = 0; i < 3000000; i++)
        ;
    CHECK_EQ(ticks, t2, "masked irq0 not delivered");
    pic_unmask(0);
    while (ticks < t2 + 5)
        ;
    CHECK(ticks >= t2 + 5, "unmasked irq0 delivered again");
    cli();
    /* PIT channel 2 one-shot through port 0x61: OUT2 rises when the count expires. */
    outb(0x61, (inb(0x61) & ~0x02) | 0x01);
    outb(0x43, 0xb0);
    outb(0x42, 0x9b);
    outb(0x42, 0x2e); /* 11931: 10 ms */
    u32 spins = 0;
    while (!(inb(0x61) & 0x20) && spins < 100000000)
        spins++;
    CHECK(inb(0x61) & 0x20, "pit channel 2 one-shot expires (port 0x61 bit 5)");
    printf("timer: %u ticks in all\n", ticks);
}
