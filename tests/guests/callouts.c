/*
 * callouts.c - every privileged and sensitive instruction's semantics at CPL 0:
 * control registers, descriptor-table loads and stores, LDT and TR, segment loads and
 * their faults, LAR/LSL/VERR/VERW, PUSHF/POPF with IF and IOPL, CLI/STI, CPUID,
 * RDMSR/WRMSR, RDTSC, IN/OUT.
 */
#include "lib/guest.h"


static void test_crs(void)
{
    u32 cr0 = read_cr0();
    CHECK(cr0 & 1, "cr0.pe set");
    CHECK(!(cr0 & 0x80000000u), "cr0.pg clear");
    write_cr0(cr0 | 0x8); /* TS */
    CHECK(read_cr0() & 0x8, "cr0.ts set by mov");
    __asm__ volatile("clts");
    CHECK(!(read_cr0() & 0x8), "clts clears ts");
    write_cr0(cr0 | 0x2);
    CHECK_EQ(read_cr0() & 0x2, 0x2, "cr0.mp round trip");
    write_cr0(cr0);
    u32 msw;
    __asm__ volatile("smsw %0" : "=r"(msw));
    CHECK_EQ(msw & 0xffff, read_cr0() & 0xffff, "smsw = low cr0");
    /* LMSW can set PE and MP but never clear PE. */
    __asm__ volatile("lmsw %w0" : : "r"((u16)0x2));
    CHECK_EQ(read_cr0() & 0x3, 0x3, "lmsw keeps pe, sets mp");
    write_cr0(cr0);
    u32 v;
    __asm__ volatile("mov %0, %%cr2" : : "r"(0x12345678u));
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    CHECK_EQ(v, 0x12345678u, "cr2 round trip");
    __asm__ volatile("mov %0, %%cr3" : : "r"(0x00300000u));
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    CHECK_EQ(v, 0x00300000u, "cr3 round trip (paging off)");
    u32 cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x4)); /* TSD */
    __asm__ volatile("mov %%cr4, %0" : "=r"(v));
    CHECK(v & 0x4, "cr4.tsd round trip");
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4));
    /* Not tested: CR0.NW without CD (#GP(0) on hardware and in xbt) and reserved CR4
       bits: QEMU 7.2's TCG, the reference peer, does not fault on either. */
}

struct dtr { u16 limit; u32 base; } __attribute__((packed));

static void test_tables(void)
{
    struct dtr g, i, t = { 0x1234, 0xabcd000 }, back;
    __asm__ volatile("sgdt %0" : "=m"(g));
    CHECK_EQ(g.base, (u32)gdt, "sgdt base");
    CHECK_EQ(g.limit, sizeof gdt - 1, "sgdt limit");
    __asm__ volatile("sidt %0" : "=m"(i));
    CHECK_EQ(i.base, (u32)idt, "sidt base");
    CHECK_EQ(i.limit, 256 * 8 - 1, "sidt limit");
    cli();
    __asm__ volatile("lidt %1; sidt %0; lidt %2" : "=m"(back) : "m"(t), "m"(i));
    CHECK_EQ(back.base, 0xabcd000, "lidt/sidt base");
    CHECK_EQ(back.limit, 0x1234, "lidt/sidt limit");
    __asm__ volatile("lgdt %1; sgdt %0; lgdt %2" : "=m"(back) : "m"(t), "m"(g));
    CHECK_EQ(back.base, 0xabcd000, "lgdt/sgdt base");
    u16 sel = 0xffff;
    __asm__ volatile("sldt %0" : "=r"(sel));
    CHECK_EQ(sel, 0, "sldt initially 0");
    __asm__ volatile("lldt %w0" : : "r"((u16)SEL_LDT));
    __asm__ volatile("sldt %0" : "=r"(sel));
    CHECK_EQ(sel, SEL_LDT, "lldt/sldt");
    u32 x = 0;
    __asm__ volatile("push %%ds; movw %w1, %%ds; movl %%ds:(%2), %0; pop %%ds"
                     : "=r"(x) : "r"((u16)SEL_LDT_DATA), "r"(&sel) : "memory");
    CHECK_EQ(x & 0xffff, SEL_LDT, "data load through an LDT selector");
    u16 ds;
    __asm__ volatile("push %%ds; movw %w1, %%ds; movw %%ds, %0; pop %%ds"
                     : "=r"(ds) : "r"((u16)SEL_LDT_DATA));
    CHECK_EQ(ds, SEL_LDT_DATA, "mov from ds gives the LDT selector");
    /* LLDT of something that is not an LDT: #GP(sel). */
    TRY_FAULT("lldt %w0", "r"((u16)SEL_DATA));
    CHECK_EQ(fault.vector, 13, "lldt of a data segment #GP");
    CHECK_EQ(fault.err, SEL_DATA, "lldt #GP error = selector");
    __asm__ volatile("lldt %w0" : : "r"((u16)0));
    __asm__ volatile("sldt %0" : "=r"(sel));
    CHECK_EQ(sel, 0, "lldt 0");
    /* LTR marks the TSS busy; a second LTR of a busy TSS is #GP(sel). */
    __asm__ volatile("ltr %w0" : : "r"((u16)SEL_TSS));
    __asm__ volatile("str %0" : "=r"(sel));
    CHECK_EQ(sel, SEL_TSS, "ltr/str");
    CHECK_EQ((u32)(gdt[SEL_TSS >> 3] >> 40) & 0xf, 0xb, "ltr sets the busy bit");
    TRY_FAULT("ltr %w0", "r"((u16)SEL_TSS));
    CHECK_EQ(fault.vector, 13, "ltr of a busy tss #GP");
    CHECK_EQ(fault.err, SEL_TSS, "ltr busy error = selector");
    u32 str32 = 0xffffffffu;
    __asm__ volatile("str %0" : "=r"(str32));
    CHECK_EQ(str32, SEL_TSS, "str r32 zero-extends");
}

static void test_segments(void)
{
    u16 s;
    __asm__ volatile("push %%es; movw %w1, %%es; movw %%es, %0; pop %%es"
                     : "=r"(s) : "r"((u16)SEL_SMALL));
    CHECK_EQ(s, SEL_SMALL, "mov es, small segment");
    u32 v = 0;
    *(volatile u32 *)0x200010 = 0xfeedf00d;
    __asm__ volatile("push %%es; movw %w1, %%es; movl %%es:0x10, %0; pop %%es"
                     : "=r"(v) : "r"((u16)SEL_SMALL) : "memory");
    CHECK_EQ(v, 0xfeedf00d, "es segment base applied");
    /* Segment limits: SEL_SMALL is 4 KiB (offsets 0..0xfff) at 0x200000.  Accesses
       inside the limit only: QEMU 7.2's TCG, the reference peer, does not check data
       segment limits; xbt does (#GP(0) past the limit, tests/runtime checks that). */
    __asm__ volatile("movw %w0, %%es" : : "r"((u16)SEL_SMALL));
    u32 last = 0;
    __asm__ volatile("movl %%es:0xffc, %0" : "=r"(last) : : "memory");
    CHECK_EQ(last, *(volatile u32 *)0x200ffc, "es access at the last dword of the limit");
    __asm__ volatile("movw %w0, %%es" : : "r"((u16)SEL_DATA));
    __asm__ volatile("movw %w0, %%fs" : : "r"((u16)SEL_SMALL));
    __asm__ volatile("movl %%fs:0x10, %0" : "=r"(last) : : "memory");
    CHECK_EQ(last, 0xfeedf00d, "fs access inside the limit");
    __asm__ volatile("movw %w0, %%fs" : : "r"((u16)SEL_DATA));
    /* Loads that fault. */
    TRY_FAULT("movw %w0, %%ds", "r"((u16)SEL_NP));
    CHECK_EQ(fault.vector, 11, "mov ds not present #NP");
    CHECK_EQ(fault.err, SEL_NP, "#NP error = selector");
    TRY_FAULT("movw %w0, %%ds", "r"((u16)SEL_XONLY));
    CHECK_EQ(fault.vector, 13, "mov ds execute-only #GP");
    CHECK_EQ(fault.err, SEL_XONLY, "#GP error = selector");
    TRY_FAULT("movw %w0, %%fs", "r"((u16)0x7f8));
    CHECK_EQ(fault.vector, 13, "selector beyond the GDT limit #GP");
    CHECK_EQ(fault.err, 0x7f8, "beyond limit error = selector");
    TRY_FAULT("movw %w0, %%ss", "r"((u16)0));
    CHECK_EQ(fault.vector, 13, "null ss #GP");
    CHECK_EQ(fault.err, 0, "null ss error 0");
    TRY_FAULT("movw %w0, %%ss", "r"((u16)SEL_RODATA));
    CHECK_EQ(fault.vector, 13, "read-only ss #GP");
    CHECK_EQ(fault.err, SEL_RODATA, "read-only ss error = selector");
    TRY_FAULT("movw %w0, %%ss", "r"((u16)SEL_DPL3D));
    CHECK_EQ(fault.vector, 13, "ss dpl != cpl #GP");
    TRY_FAULT("movw %w0, %%ss", "r"((u16)SEL_NPSS));
    CHECK_EQ(fault.vector, 12, "not-present ss #SS");
    CHECK_EQ(fault.err, SEL_NPSS, "#SS error = selector");
    /* A null selector in DS is fine until used. */
    __asm__ volatile("push %%ds; movw %w1, %%ds; movw %%ds, %0; pop %%ds"
                     : "=r"(s) : "r"((u16)0));
    CHECK_EQ(s, 0, "null ds loads");
    /* PUSH/POP Sreg. */
    u32 sp0, sp1;
    __asm__ volatile("movl %%esp, %0; pushl %%fs; movl %%esp, %1; popl %%fs" : "=r"(sp0), "=r"(sp1));
    CHECK_EQ(sp0 - sp1, 4, "push fs moves esp by 4");
    __asm__ volatile("pushl %1; popl %%gs; movw %%gs, %0; pushl $0x10; popl %%gs"
                     : "=r"(s) : "i"(SEL_SMALL));
    CHECK_EQ(s, SEL_SMALL, "pop gs");
    /* POP SS inhibits interrupts for one instruction and is otherwise a plain load. */
    __asm__ volatile("pushl %%ss; popl %%ss; movw %%ss, %0" : "=r"(s));
    CHECK_EQ(s, SEL_DATA, "pop ss");
}

static void test_lar_lsl(void)
{
    u32 v = 0, zf;
    __asm__ volatile("lar %2, %0; setz %b1; movzbl %b1, %1" : "=r"(v), "=q"(zf) : "r"((u32)SEL_CODE), "0"(0));
    CHECK(zf, "lar code zf");
    /* The CS load of the library's far jump set the descriptor's accessed bit (SDM
       3.4.5.1; QEMU TCG sets it for data segment loads only). */
    CHECK_EQ(v & 0x00f0ff00, on_qemu_tcg() ? 0x00c09a00 : 0x00c09b00, "lar code access rights");
    __asm__ volatile("lsl %2, %0; setz %b1; movzbl %b1, %1" : "=r"(v), "=q"(zf) : "r"((u32)SEL_SMALL), "0"(0));
    CHECK(zf, "lsl small zf");
    CHECK_EQ(v, 0xfff, "lsl byte-granular limit");
    __asm__ volatile("lsl %2, %0; setz %b1; movzbl %b1, %1" : "=r"(v), "=q"(zf) : "r"((u32)SEL_DATA), "0"(0));
    CHECK_EQ(v, 0xffffffffu, "lsl page-granular limit");
    __asm__ volatile("lsl %2, %0; setz %b1; movzbl %b1, %1" : "=r"(v), "=q"(zf) : "r"((u32)SEL_TSS), "0"(0));
    CHECK(zf, "lsl tss ok");
    v = 0x5555;
    __asm__ volatile("lar %2, %0; setz %b1; movzbl %b1, %1" : "=r"(v), "=q"(zf) : "r"((u32)0x7f8), "0"(v));
    CHECK(!zf, "lar beyond gdt limit zf=0");
    CHECK_EQ(v, 0x5555, "lar failure leaves the destination");
    __asm__ volatile("lar %2, %0; setz %b1; movzbl %b1, %1" : "=r"(v), "=q"(zf) : "r"((u32)0), "0"(0));
    CHECK(!zf, "lar null zf=0");
    __asm__ volatile("verr %w1; setz %b0; movzbl %b0, %0" : "=q"(zf) : "r"((u16)SEL_DATA));
    CHECK(zf, "verr data");
    __asm__ volatile("verr %w1; setz %b0; movzbl %b0, %0" : "=q"(zf) : "r"((u16)SEL_XONLY));
    CHECK(!zf, "verr execute-only code zf=0");
    __asm__ volatile("verr %w1; setz %b0; movzbl %b0, %0" : "=q"(zf) : "r"((u16)SEL_CODE));
    CHECK(zf, "verr readable code");
    __asm__ volatile("verw %w1; setz %b0; movzbl %b0, %0" : "=q"(zf) : "r"((u16)SEL_DATA));
    CHECK(zf, "verw data");
    __asm__ volatile("verw %w1; setz %b0; movzbl %b0, %0" : "=q"(zf) : "r"((u16)SEL_RODATA));
    CHECK(!zf, "verw read-only zf=0");
    __asm__ volatile("verw %w1; setz %b0; movzbl %b0, %0" : "=q"(zf) : "r"((u16)SEL_CODE));
    CHECK(!zf, "verw code zf=0");
}

static void test_flags(void)
{
    cli();
    CHECK(!(read_eflags() & 0x200), "cli clears if");
    sti();
    CHECK(read_eflags() & 0x200, "sti sets if");
    u32 f;
    __asm__ volatile("pushfl; andl $~0x200, (%%esp); popfl; pushfl; popl %0" : "=r"(f));
    CHECK(!(f & 0x200), "popf clears if at cpl 0");
    __asm__ volatile("pushfl; orl $0x3200, (%%esp); popfl; pushfl; popl %0" : "=r"(f));
    CHECK(f & 0x200, "popf sets if at cpl 0");
    CHECK_EQ(f & 0x3000, 0x3000, "popf sets iopl at cpl 0");
    __asm__ volatile("pushfl; andl $~0x3000, (%%esp); popfl; pushfl; popl %0" : "=r"(f));
    CHECK_EQ(f & 0x3000, 0, "popf clears iopl");
    __asm__ volatile("pushfl; orl $0x40000, (%%esp); popfl; pushfl; popl %0; pushfl; andl $~0x40000, (%%esp); popfl" : "=r"(f));
    CHECK(f & 0x40000, "popf sets ac");
    __asm__ volatile("pushfl; orl $0x200000, (%%esp); popfl; pushfl; popl %0" : "=r"(f));
    CHECK(f & 0x200000, "eflags.id toggles (cpuid present)");
    __asm__ volatile("pushfl; orl $0x20000, (%%esp); popfl; pushfl; popl %0" : "=r"(f));
    CHECK(!(f & 0x20000), "popf cannot set vm");
    CHECK(f & 0x2, "eflags bit 1 reads 1");
    u16 f16;
    __asm__ volatile("pushw $0x0cd5; popfw; pushfw; popw %0; cld" : "=r"(f16));
    CHECK_EQ(f16 & 0x0fd5, 0x0cd5, "popfw/pushfw 16-bit");
    /* Every arithmetic flag, DF and OF included, set and then clear, kept across the
       callouts of IN, OUT and CPUID (each returns to translated code through the run's
       flag restore). */
    static const u32 pats[] = { 0x0cd5, 0x0000, 0x0801, 0x0400 };
    for (unsigned k = 0; k < 4; k++) {
        u32 fin, fout, fcpuid, f = pats[k] | 0x202;
        __asm__ volatile("pushl %1; popfl; inb $0x80, %%al; pushfl; popl %0; cld"
                         : "=&r"(fin) : "r"(f) : "eax", "cc");
        __asm__ volatile("pushl %1; popfl; outb %%al, $0x80; pushfl; popl %0; cld"
                         : "=&r"(fout) : "r"(f), "a"(0) : "cc");
        __asm__ volatile("pushl %1; popfl; cpuid; pushfl; popl %0; cld"
                         : "=&r"(fcpuid) : "r"(f), "a"(0) : "ebx", "ecx", "edx", "cc");
        CHECK_EQ(fin & 0x0cd5, pats[k], "arithmetic flags, DF and OF kept across IN");
        CHECK_EQ(fout & 0x0cd5, pats[k], "arithmetic flags, DF and OF kept across OUT");
        CHECK_EQ(fcpuid & 0x0cd5, pats[k], "arithmetic flags, DF and OF kept across CPUID");
    }
    __asm__ volatile("pushl $0x202; popfl");
    cli();
}

static void test_cpuid_msr(void)
{
    u32 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    CHECK(a >= 1, "cpuid max leaf >= 1");
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    CHECK(d & 0x1, "cpuid fpu");
    CHECK(d & 0x10, "cpuid tsc");
    CHECK(d & 0x20, "cpuid msr");
    CHECK(((a >> 8) & 0xf) >= 6, "cpuid family >= 6");
    u32 lo, hi;
    __asm__ volatile("wrmsr" : : "c"(0x174), "a"(0x08), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x175), "a"(0xc0de0000u), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x176), "a"(0xc0401000u), "d"(0));
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x174));
    CHECK_EQ(lo, 0x08, "sysenter_cs round trip");
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x175));
    CHECK_EQ(lo, 0xc0de0000u, "sysenter_esp round trip");
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x176));
    CHECK_EQ(lo, 0xc0401000u, "sysenter_eip round trip");
    /* Not tested here: #GP(0) on an unknown MSR (xbt raises it, tests/runtime checks
       that; QEMU 7.2's TCG reads unknown MSRs as 0 instead). */
    u64 t0 = rdtsc(), t1 = rdtsc();
    CHECK(t1 > t0, "rdtsc increases");
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x10));
    (void)lo; /* RDMSR of the TSC executes (QEMU's TCG reads it as 0, xbt as the TSC) */
    /* WRMSR of the TSC moves what RDTSC reads; RDTSC (inline in xbt at CPL 0) leaves the
       arithmetic flags alone: 0 - 1 sets CF PF AF SF. */
    __asm__ volatile("wrmsr" : : "c"(0x10), "a"(0), "d"(0x12345));
    u32 fl;
    __asm__ volatile("movl $0, %%eax\n\tcmpl $1, %%eax\n\trdtsc\n\tpushfl\n\tpopl %0"
                     : "=r"(fl), "=a"(lo), "=d"(hi) : : "cc");
    if (on_qemu_tcg()) /* QEMU 7.2's TCG ignores a WRMSR of the TSC */
        CHECK(1, "rdtsc after a wrmsr of the tsc: not on QEMU TCG");
    else
        CHECK_EQ(hi, 0x12345, "rdtsc after a wrmsr of the tsc: the high half");
    CHECK_EQ(fl & 0x8d5, 0x95, "rdtsc keeps the arithmetic flags");
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x1b));
    CHECK_EQ(lo & 0xfffff000u, 0xfee00000u, "apic base msr");
}

static void test_io(void)
{
    outb(0x3ff, 0x5a);
    CHECK_EQ(inb(0x3ff), 0x5a, "com1 scratch out/in");
    outb(0x3ff, 0xa5);
    CHECK_EQ(inb(0x3ff), 0xa5, "com1 scratch again");
    CHECK(inb(0x3fd) & 0x20, "com1 lsr thre");
    u8 v = 0x77;
    __asm__ volatile("movw $0x3ff, %%dx; outb %%al, %%dx" : : "a"(v) : "edx");
    u32 r = 0xffffff00u;
    __asm__ volatile("movw $0x3ff, %%dx; inb %%dx, %%al" : "+a"(r) : : "edx");
    CHECK_EQ(r, 0xffffff77u, "in al keeps the upper eax");
    /* Read the PIT channel 0 latch twice: the count moves and stays 16 bits. */
    outb(0x43, 0x34);
    outb(0x40, 0xff);
    outb(0x40, 0xff);
    outb(0x43, 0x00);
    u32 c0 = inb(0x40) | (u32)inb(0x40) << 8;
    for (volatile int i = 0; i < 20000; i++)
        ;
    outb(0x43, 0x00);
    u32 c1 = inb(0x40) | (u32)inb(0x40) << 8;
    CHECK(c0 != c1, "pit counter moves");
}

static void test_ins(void)
{
    u8 buf[4] = { 0, 0, 0, 0 };
    u8 *p = buf;
    outb(0x3ff, 0x42);
    __asm__ volatile("cld; movw $0x3ff, %%dx; movl $3, %%ecx; rep insb"
                     : "+D"(p) : : "ecx", "edx", "memory");
    CHECK_EQ(buf[0] | buf[1] << 8 | buf[2] << 16 | buf[3] << 24, 0x00424242, "rep insb");
    CHECK_EQ(p - buf, 3, "rep insb advances edi");
    const u8 out[2] = { 0x11, 0x22 };
    const u8 *q = out;
    __asm__ volatile("cld; movw $0x3ff, %%dx; movl $2, %%ecx; rep outsb"
                     : "+S"(q) : : "ecx", "edx", "memory");
    CHECK_EQ(inb(0x3ff), 0x22, "rep outsb wrote the last byte");
    CHECK_EQ(q - out, 2, "rep outsb advances esi");
}

void main(void)
{
    test_crs();
    test_tables();
    test_segments();
    test_lar_lsl();
    test_flags();
    test_cpuid_msr();
    test_io();
    test_ins();
}
