/*
 * guest.c - the guest test library (see guest.h).
 */
#include <stdarg.h>

#include "guest.h"

u64 gdt[GDT_ENTRIES] __attribute__((aligned(8)));
u64 idt[256] __attribute__((aligned(8)));
struct fault_record fault;
u32 multiboot_info;
static handler_fn handlers[64];
static u32 n_pass, n_fail;
/* 104 bytes of 32-bit TSS, then an I/O permission bitmap for ports 0-0x3ff and the
   terminating byte. */
static u8 tss[104 + 128 + 1] __attribute__((aligned(16)));
static u64 ldt[2] __attribute__((aligned(8)));

void *memset(void *d, int c, unsigned n)
{
    u8 *p = d;
    while (n--)
        *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, unsigned n)
{
    u8 *p = d;
    const u8 *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

int memcmp(const void *a, const void *b, unsigned n)
{
    const u8 *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p < *q ? -1 : 1;
    return 0;
}

void putc_serial(char c)
{
    while (!(inb(0x3fd) & 0x20))
        ;
    outb(0x3f8, (u8)c);
}

void puts_serial(const char *s)
{
    while (*s)
        putc_serial(*s++);
}

static void put_num(u32 v, int base, int width, char pad, int neg)
{
    char buf[16];
    int n = 0;
    do {
        buf[n++] = "0123456789abcdef"[v % (u32)base];
        v /= (u32)base;
    } while (v);
    if (neg)
        buf[n++] = '-';
    while (n < width)
        buf[n++] = pad;
    while (n)
        putc_serial(buf[--n]);
}

void printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            putc_serial(*fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        switch (*fmt) {
        case 'd': {
            s32 v = va_arg(ap, s32);
            put_num(v < 0 ? (u32)-v : (u32)v, 10, width, pad, v < 0);
            break;
        }
        case 'u': put_num(va_arg(ap, u32), 10, width, pad, 0); break;
        case 'x': put_num(va_arg(ap, u32), 16, width, pad, 0); break;
        case 's': puts_serial(va_arg(ap, const char *)); break;
        case 'c': putc_serial((char)va_arg(ap, int)); break;
        case '%': putc_serial('%'); break;
        default: putc_serial('?'); break;
        }
    }
    va_end(ap);
}

void check(int ok, const char *name)
{
    if (ok) {
        n_pass++;
        printf("PASS %s\n", name);
    } else {
        n_fail++;
        printf("FAIL %s\n", name);
    }
}

static u32 phase_bad;

int phase_miss(void)
{
    return phase_bad++ == 0;
}

void phase_end(const char *name)
{
    check(phase_bad == 0, name);
    phase_bad = 0;
}

void check_eq(u32 got, u32 want, const char *name)
{
    if (got == want) {
        n_pass++;
        printf("PASS %s\n", name);
    } else {
        n_fail++;
        printf("FAIL %s: got 0x%x want 0x%x\n", name, got, want);
    }
}

void guest_exit(void)
{
    printf("DONE pass=%u fail=%u\n", n_pass, n_fail);
    outl(0xf4, n_fail ? 1 : 0);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void gdt_set(int idx, u32 base, u32 limit, u8 access, u8 flags)
{
    gdt[idx] = (limit & 0xffffull) | ((u64)(base & 0xffffff) << 16) | ((u64)access << 40) |
               ((u64)((limit >> 16) & 0xf) << 48) | ((u64)(flags & 0xf) << 52) |
               ((u64)(base >> 24) << 56);
}

void gdt_reload(void)
{
    struct { u16 limit; u32 base; } __attribute__((packed)) d = { sizeof gdt - 1, (u32)gdt };
    __asm__ volatile("lgdt %0\n\t"
                     "ljmp $0x08, $1f\n1:\t"
                     "movl $0x10, %%eax\n\tmovl %%eax, %%ds\n\tmovl %%eax, %%es\n\t"
                     "movl %%eax, %%fs\n\tmovl %%eax, %%gs\n\tmovl %%eax, %%ss"
                     : : "m"(d) : "eax", "memory");
}

void idt_set(int v, u32 handler, u16 sel, u8 type, u8 dpl)
{
    idt[v] = (handler & 0xffff) | ((u64)sel << 16) |
             ((u64)(0x80 | (dpl << 5) | type) << 40) | ((u64)(handler >> 16) << 48);
}

void set_handler(int vector, handler_fn fn) { handlers[vector] = fn; }

void tss_allow_port(u16 port)
{
    tss[104 + port / 8] &= (u8)~(1u << (port % 8));
}

void tss_set_stack(int ring, u32 esp, u32 ss)
{
    memcpy(tss + 4 + 8 * ring, &esp, 4);
    memcpy(tss + 8 + 8 * ring, &ss, 4);
}

void gdt_set_call_gate(int idx, u16 sel, u32 off, u8 dpl, int count, int is32, int present)
{
    gdt[idx] = (off & 0xffff) | ((u64)sel << 16) | ((u64)(count & 0x1f) << 32) |
               ((u64)((present ? 0x80 : 0) | (dpl << 5) | (is32 ? 0xc : 0x4)) << 40) |
               ((u64)(off >> 16) << 48);
}

void identity_16m(u32 *pd, u32 (*pt)[1024])
{
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | 3;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | 3;
}

volatile struct pf_seen pf_seen;

u32 pf_note(const struct frame *f, u32 lo, u32 len)
{
    u32 cr2 = read_cr2();
    pf_seen.count++;
    pf_seen.cr2 = cr2;
    pf_seen.err = f->err;
    pf_seen.eip = f->eip;
    if (cr2 - lo >= len) {
        printf("FAIL unexpected #PF at %x cr2 %x err %x\n", f->eip, cr2, f->err);
        guest_exit();
    }
    return cr2;
}

u32 paging_on_pse(const u32 *pd)
{
    u32 cr0, cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10) : "memory");
    __asm__ volatile("mov %0, %%cr3" : : "r"((u32)pd) : "memory");
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");
    return cr0;
}

void tss_init(u32 esp0)
{
    memcpy(tss + 4, &esp0, 4);
    u32 ss0 = SEL_DATA;
    memcpy(tss + 8, &ss0, 4);
    u16 iomap = 104; /* the bitmap follows: every port denied until tss_allow_port */
    memcpy(tss + 102, &iomap, 2);
    memset(tss + 104, 0xff, 129);
    __asm__ volatile("ltr %w0" : : "r"((u16)SEL_TSS));
}

/* user_enter_flags / user_resume (guest.h): the kernel's callee-saved registers and
   ESP are kept here while user code runs. */
volatile u32 user_kernel_esp __attribute__((used)); /* the asm below (and a test's own entries) */
__asm__(".text\n.globl user_enter_flags\nuser_enter_flags:\n"
        "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
        "\tmovl %esp, user_kernel_esp\n"
        "\tmovl 20(%esp), %ebx\n\tmovl 24(%esp), %ecx\n\tmovl 28(%esp), %eax\n"
        "\tpushl $0x23\n\tpushl %ecx\n\tpushl 40(%esp)\n\tpushl $0x1b\n\tpushl %ebx\n"
        "\tmovl $0x23, %edx\n\tmovl %edx, %ds\n\tmovl %edx, %es\n\tiret\n"
        ".globl user_resume\nuser_resume:\n"
        "\tmovl $0x10, %eax\n\tmovl %eax, %ds\n\tmovl %eax, %es\n\tmovl %eax, %ss\n"
        "\tmovl user_kernel_esp, %esp\n"
        "\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n\tret\n");

void user_enter(u32 eip, u32 esp, u32 eax)
{
    user_enter_flags(eip, esp, eax, 0x202);
}

void user_run(void (*fn)(void), u32 esp)
{
    u32 flags;
    __asm__ volatile("pushfl\n\tpopl %0" : "=r"(flags));
    user_enter_flags((u32)fn, esp, (u32)fn, flags);
}

void user_return(struct frame *f)
{
    f->eip = (u32)user_resume;
    f->cs = SEL_CODE;
}

static void cpuid4(u32 leaf, u32 r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

int on_qemu_tcg(void)
{
    u32 r[4];
    cpuid4(0x40000000u, r); /* the hypervisor leaf: xbt's signature, or KVM's */
    if (!memcmp(&r[1], "xbtV", 4) && !memcmp(&r[2], "irtu", 4) && !memcmp(&r[3], "alCP", 4))
        return 0;
    if (!memcmp(&r[1], "KVMK", 4) && !memcmp(&r[2], "VMKV", 4))
        return 0;
    return 1;
}

void isr_dispatch(struct frame *f);
void isr_dispatch(struct frame *f)
{
    if (f->vector < 64 && handlers[f->vector]) {
        handlers[f->vector](f);
        return;
    }
    if (fault.resume) {
        fault.count++;
        fault.vector = f->vector;
        fault.err = f->err;
        fault.eip = f->eip;
        fault.cs = f->cs;
        fault.frame = (u32)f;
        if (f->cs & 3) { /* from an outer level: the CPU pushed its SS:ESP */
            fault.esp = f->esp3;
            fault.ss = f->ss3;
        } else {
            u32 ss;
            __asm__ volatile("movl %%ss, %0" : "=r"(ss));
            fault.esp = (u32)&f->esp3;
            fault.ss = ss & 0xffff;
        }
        f->eip = fault.resume;
        fault.resume = 0;
        return;
    }
    printf("FAIL unexpected exception vector %u error %x at eip %x", f->vector, f->err,
           f->eip);
    if (f->vector == 14)
        printf(" (cr2 %x)", read_cr2());
    printf(" eax %x ecx %x esi %x edi %x\n", f->eax, f->ecx, f->esi, f->edi);
    n_fail++;
    guest_exit();
}

void pic_init(void)
{
    outb(0x20, 0x11);
    outb(0x21, 0x20);
    outb(0x21, 0x04);
    outb(0x21, 0x01);
    outb(0xa0, 0x11);
    outb(0xa1, 0x28);
    outb(0xa1, 0x02);
    outb(0xa1, 0x01);
    outb(0x21, 0xfb); /* all masked but the cascade */
    outb(0xa1, 0xff);
}

void pic_unmask(int irq)
{
    u16 port = irq < 8 ? 0x21 : 0xa1;
    outb(port, inb(port) & (u8)~(1u << (irq & 7)));
}

void pic_eoi(int irq)
{
    if (irq >= 8)
        outb(0xa0, 0x20);
    outb(0x20, 0x20);
}

void pit_start(u32 hz)
{
    u32 div = 1193182u / hz;
    outb(0x43, 0x34);
    outb(0x40, (u8)div);
    outb(0x40, (u8)(div >> 8));
}

volatile u32 pit_ticks;

static void pit_tick(struct frame *f)
{
    (void)f;
    pit_ticks++;
    pic_eoi(0);
}

void pit_ticks_start(u32 hz)
{
    set_handler(0x20, pit_tick);
    pit_start(hz);
    pic_unmask(0);
}

void guest_start(u32 magic, u32 mbi);
void guest_start(u32 magic, u32 mbi)
{
    multiboot_info = mbi;
    /* COM1: 115200 8N1, FIFO on. */
    outb(0x3f9, 0x00);
    outb(0x3fb, 0x80);
    outb(0x3f8, 0x01);
    outb(0x3f9, 0x00);
    outb(0x3fb, 0x03);
    outb(0x3fa, 0xc7);
    gdt_set(1, 0, 0xfffff, 0x9a, 0xc);
    gdt_set(2, 0, 0xfffff, 0x92, 0xc);
    gdt_set(3, 0, 0xfffff, 0xfa, 0xc);
    gdt_set(4, 0, 0xfffff, 0xf2, 0xc);
    gdt_set(5, 0, 0xfffff, 0x12, 0xc);       /* not present */
    gdt_set(6, 0, 0xfffff, 0x98, 0xc);       /* execute-only code */
    gdt_set(7, (u32)tss, sizeof tss - 1, 0x89, 0x0);
    ldt[0] = 0;
    gdt_set(8, (u32)ldt, sizeof ldt - 1, 0x82, 0x0);
    gdt_set(9, 0x200000, 0xfff, 0x92, 0x4);  /* byte granular, 4 KiB */
    gdt_set(10, 0, 0xfffff, 0xf2, 0xc);      /* DPL 3 data */
    gdt_set(11, 0, 0xfffff, 0x90, 0xc);      /* read-only data */
    gdt_set(12, 0, 0xfffff, 0x12, 0xc);      /* writable, not present */
    /* LDT entry 0: flat data, DPL 0 (selector 0x04). */
    ldt[0] = (0xffffull) | (0x92ull << 40) | (0xfull << 48) | (0xcull << 52);
    gdt_reload();
    for (int v = 0; v < 64; v++)
        idt_set(v, isr_table[v], SEL_CODE, 0xe, 0);
    struct { u16 limit; u32 base; } __attribute__((packed)) d = { sizeof idt - 1, (u32)idt };
    __asm__ volatile("lidt %0" : : "m"(d));
    pic_init(); /* the firmware may have left IRQ0 unmasked at vector 8 */
    printf("guest: multiboot magic %x\n", magic);
    main();
    guest_exit();
}

int cmdline_value(const char *key, char *out, unsigned n)
{
    const u32 *mbi = (const u32 *)multiboot_info;
    if (!mbi || !(mbi[0] & 4) || n == 0)
        return 0;
    unsigned klen = 0;
    while (key[klen])
        klen++;
    for (const char *c = (const char *)mbi[4]; *c;) {
        while (*c == ' ')
            c++;
        if (!memcmp(c, key, klen) && c[klen] == '=') {
            c += klen + 1;
            unsigned i = 0;
            while (*c && *c != ' ' && i < n - 1)
                out[i++] = *c++;
            out[i] = 0;
            return 1;
        }
        while (*c && *c != ' ')
            c++;
    }
    return 0;
}

u32 cmdline_u32(const char *key, u32 dflt)
{
    char v[12];
    if (!cmdline_value(key, v, sizeof v))
        return dflt;
    u32 n = 0;
    for (char *c = v; *c >= '0' && *c <= '9'; c++)
        n = n * 10 + (u32)(*c - '0');
    return n;
}
