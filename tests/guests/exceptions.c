/*
 * exceptions.c - exceptions through the IDT with their error codes and return
 * addresses (#DE #UD #GP #BP #OF #NP #SS #NM), INT n with trap and interrupt gates,
 * IRET forms, and a fault taken inside a handler.
 */
#include "lib/guest.h"

static volatile u32 seen_vec, seen_eip, seen_if, seen_err, nested_count;

static void int_handler(struct frame *f)
{
    seen_vec = f->vector;
    seen_eip = f->eip;
    seen_if = read_eflags() & 0x200;
}

static void nested_handler(struct frame *f)
{
    /* A #GP inside a handler: the inner fault is delivered and returns here. */
    nested_count++;
    TRY_FAULT("movw %w0, %%ds", "r"((u16)SEL_XONLY));
    seen_err = fault.err;
    seen_vec = f->vector;
}

void main(void)
{
    /* #DE: the saved EIP is the faulting DIV. */
    TRY_FAULT("divl %0", "r"(0), "a"(1), "d"(0));
    CHECK_EQ(fault.vector, 0, "#DE vector");
    CHECK_EQ(fault.eip, fault.expect_eip, "#DE eip = the div");
    TRY_FAULT("idivl %0", "r"(-1), "a"(0x80000000u), "d"(0xffffffffu));
    CHECK_EQ(fault.vector, 0, "#DE on idiv overflow");
    TRY_FAULT("divb %b0", "q"(2), "a"(0x0400));
    CHECK_EQ(fault.vector, 0, "#DE on 8-bit quotient overflow");
    /* #UD */
    TRY_FAULT("ud2", NOFAULT);
    CHECK_EQ(fault.vector, 6, "#UD vector");
    CHECK_EQ(fault.eip, fault.expect_eip, "#UD eip = the ud2");
    TRY_FAULT(".byte 0x0f, 0x0b", NOFAULT);
    CHECK_EQ(fault.vector, 6, "#UD again (0f 0b)");
    TRY_FAULT("lock; addl %0, %0", "r"(1));
    CHECK_EQ(fault.vector, 6, "#UD for lock on a register operand");
    /* The hint NOPs with a register operand are NOPs, with any prefix (their re-encoded
       0F 0D form was #UD on AMD hosts). */
    TRY_FAULT(".byte 0x0f, 0x19, 0xc0; .byte 0x0f, 0x1c, 0xc1; .byte 0x0f, 0x1d, 0xd2\n\t"
              ".byte 0x0f, 0x1e, 0xc3; .byte 0x0f, 0x1f, 0xc4; .byte 0x2e, 0x0f, 0x1f, 0xc0\n\t"
              ".byte 0x66, 0x66, 0x0f, 0x1f, 0xc0; .byte 0x3e, 0x0f, 0x19, 0xc9\n\t"
              ".byte 0xf3, 0x0f, 0x19, 0xc0; .byte 0x64, 0x0f, 0x1e, 0xf8", NOFAULT);
    CHECK_EQ(fault.vector, 0xffffffffu, "register hint NOPs do not fault");
    /* 0F 0D with a register operand is #UD, with a prefix or not (its memory form is
       a prefetch hint). */
    TRY_FAULT(".byte 0x0f, 0x0d, 0xc0", NOFAULT);
    CHECK_EQ(fault.vector, 6, "0f 0d c0 is #UD");
    TRY_FAULT(".byte 0x2e, 0x0f, 0x0d, 0xc8", NOFAULT);
    CHECK_EQ(fault.vector, 6, "2e 0f 0d c8 is #UD");
    TRY_FAULT(".byte 0x0f, 0x0d, 0xc4", NOFAULT);
    CHECK_EQ(fault.vector, 6, "0f 0d c4 (ESP) is #UD");
    TRY_FAULT(".byte 0x0f, 0x0d, 0x08", "a"(&seen_vec));
    CHECK_EQ(fault.vector, 0xffffffffu, "0f 0d 08 (prefetchw [eax]) does not fault");
    /* NOP and the prefetches with a memory operand access nothing: no #GP beyond a
       segment's limit or through a null selector (the SDM names only #UD with LOCK).
       A load at the same address faults where the data-segment limit is checked (xbt;
       QEMU 7.2's TCG checks no data-segment limit). */
    u16 old_fs;
    __asm__ volatile("movw %%fs, %0" : "=r"(old_fs));
    __asm__ volatile("movw %w0, %%es\n\tmovw %w1, %%fs" : : "r"((u16)SEL_SMALL), "r"((u16)0));
    TRY_FAULT(".byte 0x26, 0x0f, 0x1f, 0x80, 0x00, 0x20, 0x00, 0x00", "a"(0));
    CHECK_EQ(fault.vector, 0xffffffffu, "nop es:[eax+0x2000] beyond ES's limit: no fault");
    TRY_FAULT(".byte 0x26, 0x0f, 0x19, 0x80, 0x00, 0x20, 0x00, 0x00", "a"(0));
    CHECK_EQ(fault.vector, 0xffffffffu, "hint nop (0f 19) beyond ES's limit: no fault");
    TRY_FAULT(".byte 0x26, 0x0f, 0x18, 0x88, 0x00, 0x20, 0x00, 0x00", "a"(0));
    CHECK_EQ(fault.vector, 0xffffffffu, "prefetcht0 beyond ES's limit: no fault");
    TRY_FAULT(".byte 0x26, 0x0f, 0x0d, 0x88, 0x00, 0x20, 0x00, 0x00", "a"(0));
    CHECK_EQ(fault.vector, 0xffffffffu, "prefetchw beyond ES's limit: no fault");
    TRY_FAULT(".byte 0x26, 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00", "a"(0x3000));
    CHECK_EQ(fault.vector, 0xffffffffu, "nopw es:[eax+eax+0] beyond ES's limit: no fault");
    TRY_FAULT(".byte 0x64, 0x0f, 0x1f, 0x00; .byte 0x64, 0x0f, 0x18, 0x00", "a"(&seen_vec));
    CHECK_EQ(fault.vector, 0xffffffffu, "nop and prefetchnta through a null FS: no fault");
    TRY_FAULT(".byte 0x26, 0x3b, 0x80, 0x00, 0x20, 0x00, 0x00", "a"(0));
    CHECK_EQ(fault.vector, on_qemu_tcg() ? 0xffffffffu : 13u,
             "cmp eax, es:[eax+0x2000] beyond ES's limit: #GP (TCG: none)");
    __asm__ volatile("movw %w0, %%es\n\tmovw %w1, %%fs" : : "r"((u16)SEL_DATA), "r"(old_fs));
    /* #GP with a selector error code, and #GP(0). */
    TRY_FAULT("movw %w0, %%es", "r"((u16)SEL_XONLY));
    CHECK_EQ(fault.vector, 13, "#GP vector");
    CHECK_EQ(fault.err, SEL_XONLY, "#GP error code");
    CHECK_EQ(fault.eip, fault.expect_eip, "#GP eip");
    TRY_FAULT("ljmp $0x0010, $0", NOFAULT);
    CHECK_EQ(fault.vector, 13, "far jmp to a data segment #GP");
    CHECK_EQ(fault.err, 0x10, "far jmp #GP error = selector");
    /* #BP and #OF are traps: the saved EIP follows the instruction. */
    u32 after;
    fault.resume = 0;
    __asm__ volatile("movl $2f, fault+20\n\tint3\n2:\tmovl $2b, %0" : "=r"(after) : : "memory");
    CHECK_EQ(fault.vector, 3, "#BP vector");
    CHECK_EQ(fault.eip, after, "#BP eip after int3");
    __asm__ volatile("movl $2f, fault+20\n\tmovl $0x7fffffff, %%eax\n\taddl $1, %%eax\n\t"
                     "into\n2:\tmovl $2b, %0" : "=r"(after) : : "eax", "memory", "cc");
    CHECK_EQ(fault.vector, 4, "#OF vector");
    CHECK_EQ(fault.eip, after, "#OF eip after into");
    u32 before = fault.count;
    __asm__ volatile("xorl %%eax, %%eax\n\tinto" : : : "eax", "cc");
    CHECK_EQ(fault.count, before, "into with OF=0 does nothing");
    /* #NP and #SS with selector error codes. */
    TRY_FAULT("movw %w0, %%gs", "r"((u16)SEL_NP));
    CHECK_EQ(fault.vector, 11, "#NP vector");
    CHECK_EQ(fault.err, SEL_NP, "#NP error code");
    TRY_FAULT("movw %w0, %%ss", "r"((u16)SEL_NPSS));
    CHECK_EQ(fault.vector, 12, "#SS vector");
    CHECK_EQ(fault.err, SEL_NPSS, "#SS error code");
    /* #NP for a not-present gate: error code = (vector << 3) | IDT bit | EXT 0. */
    idt[0x41] = 0;
    idt_set(0x41, isr_table[0], SEL_CODE, 0xe, 0);
    idt[0x41] &= ~(1ull << 47);
    TRY_FAULT("int $0x41", NOFAULT);
    CHECK_EQ(fault.vector, 11, "int through a not-present gate #NP");
    CHECK_EQ(fault.err, (0x41 << 3) | 2, "#NP error code names the IDT entry");
    /* #GP for INT n beyond the IDT limit. */
    struct { u16 limit; u32 base; } __attribute__((packed)) small = { 0x40 * 8 - 1, (u32)idt },
        full = { 256 * 8 - 1, (u32)idt };
    __asm__ volatile("lidt %0" : : "m"(small));
    TRY_FAULT("int $0x45", NOFAULT);
    __asm__ volatile("lidt %0" : : "m"(full));
    CHECK_EQ(fault.vector, 13, "int beyond the IDT limit #GP");
    CHECK_EQ(fault.err, (0x45 << 3) | 2, "#GP error code names the IDT entry");
    /* INT n through an interrupt gate (IF cleared) and a trap gate (IF kept). */
    set_handler(0x30, int_handler);
    set_handler(0x31, int_handler);
    idt_set(0x30, isr_table[0x30], SEL_CODE, 0xe, 0);
    idt_set(0x31, isr_table[0x31], SEL_CODE, 0xf, 0);
    sti();
    __asm__ volatile("int $0x30\n2:\tmovl $2b, %0" : "=r"(after) : : "memory");
    cli();
    CHECK_EQ(seen_vec, 0x30, "int 0x30 reaches its handler");
    CHECK_EQ(seen_eip, after, "int n pushes the next eip");
    CHECK_EQ(seen_if, 0, "interrupt gate clears if");
    sti();
    __asm__ volatile("int $0x31" : : : "memory");
    cli();
    CHECK_EQ(seen_vec, 0x31, "int 0x31 reaches its handler");
    CHECK(seen_if, "trap gate keeps if");
    CHECK(!(read_eflags() & 0x200) , "iret restored if=0 (cli after)");
    /* IRET to a hand-built frame: EIP, CS, EFLAGS (with IF and arithmetic flags). */
    u32 fl;
    __asm__ volatile("pushl $0x2c7\n\tpushl $0x08\n\tpushl $2f\n\tiret\n2:\t"
                     "pushfl\n\tpopl %0\n\tcli" : "=r"(fl) : : "memory", "cc");
    CHECK_EQ(fl & 0x2d7, 0x2c7, "iret loads eflags (if zf sf pf cf)");
    /* A fault inside a handler. */
    set_handler(0x32, nested_handler);
    idt_set(0x32, isr_table[0x32], SEL_CODE, 0xe, 0);
    __asm__ volatile("int $0x32" : : : "memory");
    CHECK_EQ(nested_count, 1, "handler ran once");
    CHECK_EQ(seen_err, SEL_XONLY, "nested #GP delivered inside the handler");
    CHECK_EQ(seen_vec, 0x32, "outer handler resumed after the nested fault");
    CHECK_EQ(fault.count, on_qemu_tcg() ? 18u : 19u, "fault count");
}
