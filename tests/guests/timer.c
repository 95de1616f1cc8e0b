/*
 * timer.c - PIT interrupts through the 8259 while the guest spins in one-block loops
 * (a C loop and a two-instruction asm loop), STI;HLT waits, the interrupt shadow of STI,
 * masking at the PIC, and the PIT's counter read back through a latch.
 */
#include "lib/guest.h"

static volatile u32 ticks;

static void irq0(struct frame *f)
{
    (void)f;
    ticks++;
    pic_eoi(0);
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
