/*
 * guest.h - the freestanding guest test library: flat GDT and IDT, COM1 output, a tiny
 * printf, the 8259 and 8254, expected-fault capture, PASS/FAIL checks and the exit
 * through QEMU's isa-debug-exit (port 0xf4), so each kernel runs unchanged on
 * qemu-system-i386, KVM and xbt-run.
 */
#ifndef GUEST_H
#define GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int s32;

/* GDT selectors the library sets up. */
#define SEL_CODE   0x08  /* flat 32-bit code, DPL 0 */
#define SEL_DATA   0x10  /* flat 32-bit data, DPL 0 */
#define SEL_UCODE  0x1b  /* flat code, DPL 3 (RPL 3) */
#define SEL_UDATA  0x23  /* flat data, DPL 3 (RPL 3) */
#define SEL_NP     0x28  /* data segment, not present */
#define SEL_XONLY  0x30  /* execute-only code segment */
#define SEL_TSS    0x38  /* 32-bit TSS (available until LTR) */
#define SEL_LDT    0x40  /* LDT with one data segment (selector 0x04 | TI) */
#define SEL_SMALL  0x48  /* data, base 0x200000, limit 0xfff (byte granular) */
#define SEL_DPL3D  0x50  /* data, DPL 3, used with RPL 0 */
#define SEL_RODATA 0x58  /* read-only data */
#define SEL_NPSS   0x60  /* writable data, not present (an SS load gives #SS) */
#define SEL_LDT_DATA 0x04 /* LDT entry 0, TI=1, RPL 0 */
#define GDT_ENTRIES 32 /* 13-31 free for a test's own descriptors */

struct frame {
    u32 es, ds;
    u32 edi, esi, ebp, esp0, ebx, edx, ecx, eax;
    u32 vector, err;
    u32 eip, cs, eflags;
    u32 esp3, ss3; /* only when the interrupted code ran at CPL 3 (cs & 3) */
};

extern u64 gdt[GDT_ENTRIES];
extern u64 idt[256];

static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(p)); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u16 inw(u16 p) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
/* Control registers and INVLPG (the guests that page or change CR0/CR4). */
static inline u32 read_cr0(void) { u32 v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline void write_cr0(u32 v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
static inline u32 read_cr2(void) { u32 v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline void write_cr3(u32 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline u32 read_cr4(void) { u32 v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr4(u32 v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }
static inline void invlpg(u32 va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }
static inline u32 read_eflags(void) { u32 f; __asm__ volatile("pushfl; popl %0" : "=r"(f)); return f; }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
/* CR4.OSFXSR and OSXMMEXCPT on, as every OS that uses SSE sets them: without them SSE
   raises #UD, so xbt runs user code translated (its direct mode cannot make the host's
   SSE fault).  Guests whose user code must run directly call it first. */
static inline void sse_os_support(void)
{
    u32 cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x600));
}

void *memset(void *d, int c, unsigned n);
void *memcpy(void *d, const void *s, unsigned n);
int memcmp(const void *a, const void *b, unsigned n);

void putc_serial(char c);
void puts_serial(const char *s);
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Checks: print "PASS name" or "FAIL name: ..." and count. */
void check(int ok, const char *name);
void check_eq(u32 got, u32 want, const char *name);
#define CHECK(c, name) check(!!(c), name)
#define CHECK_EQ(a, b, name) check_eq((u32)(a), (u32)(b), name)
/* Phases of many rounds: phase_miss() counts a round that went wrong and is true for
   the phase's first (whose story the caller prints); phase_end(name) is one check that
   none went wrong, and starts the next phase. */
int phase_miss(void);
void phase_end(const char *name);

/* Prints "DONE pass=N fail=M" and leaves through isa-debug-exit: 0 all passed, 1 not. */
void guest_exit(void) __attribute__((noreturn));

/* Set a GDT descriptor: access byte (P DPL S type) and flags nibble (G D/B L AVL). */
void gdt_set(int idx, u32 base, u32 limit, u8 access, u8 flags);
void gdt_reload(void);
/* IDT gate for vector v: type 0xE interrupt gate, 0xF trap gate; dpl 0-3. */
void idt_set(int v, u32 handler, u16 sel, u8 type, u8 dpl);
extern u32 isr_table[64];

/* A C handler for a vector (NULL: the default, which records expected faults). */
typedef void (*handler_fn)(struct frame *f);
void set_handler(int vector, handler_fn fn);

/*
 * Expected faults.  TRY_FAULT runs one asm instruction that should fault; the default
 * handler records the vector, error code and faulting EIP, and resumes after the asm.
 *   TRY_FAULT("movw %w0, %%ds", "r"(sel));   then check fault.vector == 13 etc.
 */
struct fault_record {
    volatile u32 count, vector, err, eip, expect_eip, resume;
    /* Where the frame was and what it said about the interrupted code: its CS, and its
       SS:ESP (pushed by the CPU from an outer level, else the handler's own stack). */
    volatile u32 cs, frame, esp, ss;
};
extern struct fault_record fault;
#define TRY_FAULT(insn, ...)                                                      \
    do {                                                                          \
        fault.vector = 0xffffffffu;                                               \
        fault.err = 0xffffffffu;                                                  \
        __asm__ volatile("movl $1f, fault+16\n\tmovl $2f, fault+20\n"             \
                         "1:\t" insn "\n2:\n" : : __VA_ARGS__ : "memory", "cc");  \
    } while (0)
#define NOFAULT "i"(0)

/* 8259: remap to 0x20/0x28, all masked; unmask one IRQ; EOI. */
void pic_init(void);
void pic_unmask(int irq);
void pic_eoi(int irq);
/* 8254 channel 0 periodic at hz. */
void pit_start(u32 hz);
/* pit_start(hz) with IRQ0 unmasked and counted in pit_ticks by a handler at vector 0x20
   (pic_init done; the caller enables interrupts). */
extern volatile u32 pit_ticks;
void pit_ticks_start(u32 hz);

/* The multiboot information the loader passed (EBX at entry). */
extern u32 multiboot_info;

/* 0..16 MiB mapped onto itself with 4 KiB pages, present and writable (A and D clear):
   the four tables pt in pd's first four entries (the rest of pd untouched). */
void identity_16m(u32 *pd, u32 (*pt)[1024]);

/* The last page fault a test's #PF handler noted (pf_note): how many so far, CR2, the
   error code and the faulting EIP. */
struct pf_seen { u32 count, cr2, err, eip; };
extern volatile struct pf_seen pf_seen;
/* Notes f's #PF in pf_seen and returns CR2; a CR2 outside [lo, lo + len) ends the run
   with a FAIL line (a #PF the test did not expect). */
u32 pf_note(const struct frame *f, u32 lo, u32 len);

/* Paging on with page directory pd and CR4.PSE (4 MiB pages allowed); returns CR0 as it
   was, for turning paging off again (write_cr0-style: mov to CR0). */
u32 paging_on_pse(const u32 *pd);

/* A 32-bit TSS as the SDM lays it out (vol. 3, 8.2.1), for guests that switch tasks. */
struct tss32 {
    u16 link, r0;
    u32 esp0;
    u16 ss0, r1;
    u32 esp1;
    u16 ss1, r2;
    u32 esp2;
    u16 ss2, r3;
    u32 cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
    u16 es, r4, cs, r5, ss, r6, ds, r7, fs, r8, gs, r9, ldt, r10, trap, iomap;
} __attribute__((packed));


/* The TSS's ring-0 stack (SS0 = SEL_DATA) and LTR; for user-mode tests. */
void tss_init(u32 esp0);
/* Runs user code: IRET to CPL 3 at eip with ESP esp, EAX eax, EFLAGS 0x202 (IF set) and
   the flat user selectors; returns when a handler has called user_return(frame) (the
   IRET of that handler then lands in user_resume, back on the kernel's stack). */
void user_enter(u32 eip, u32 esp, u32 eax);
/* The same with EFLAGS as given, and user_run: fn with the kernel's EFLAGS (IF as it
   is), EAX = fn.  user_resume reloads DS, ES and SS with the kernel's data selector. */
void user_enter_flags(u32 eip, u32 esp, u32 eax, u32 eflags);
void user_run(void (*fn)(void), u32 esp);
/* The kernel's ESP while user code runs (a test's own way into user mode saves it here
   with the callee-saved registers pushed, as user_enter_flags does). */
extern volatile u32 user_kernel_esp;
void user_resume(void);
void user_return(struct frame *f);
/* SSn:ESPn of ring 0-2 in the TSS (tss_init sets ring 0's). */
void tss_set_stack(int ring, u32 esp, u32 ss);
/* A call gate (32- or 16-bit) at GDT index idx. */
void gdt_set_call_gate(int idx, u16 sel, u32 off, u8 dpl, int count, int is32, int present);
/* Lets CPL 3 (IOPL 0) use one port through the TSS I/O permission bitmap. */
void tss_allow_port(u16 port);

/* 1 when the guest runs on QEMU TCG (neither xbt's hypervisor signature "xbtVirtualCP"
   nor KVM's hypervisor leaf): TCG leaves out some of the SDM's rules (EXT in error codes,
   accessed bits of CS and SS loads, a few exception choices), and a check that depends on
   it names the difference where it is made.  xbt and hardware follow the SDM. */
int on_qemu_tcg(void);

/* The word "key=VALUE" of the multiboot command line: VALUE copied into out (at most
   n - 1 bytes, NUL-terminated) and 1, or 0 when the line has no such word. */
int cmdline_value(const char *key, char *out, unsigned n);
/* The decimal number of the word "key=N", or dflt when the line has no such word. */
u32 cmdline_u32(const char *key, u32 dflt);

void main(void);

#endif
