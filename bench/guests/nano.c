/*
 * nano.c - the benchmark guest: nanobenchmarks after Adams and Agesen (ASPLOS 2006)
 * that make sense for a ring-0 guest with paging off, each timed with RDTSC inside the
 * guest and reported over COM1 as "RESULT <name> <cycles per operation>":
 *   compute   the compute kernel (bench/guests/compute.h), cycles per 1000 iterations
 *   branchy   the branchy hash-table kernel (compute.h), cycles per 1000 keys
 *   calls     the call-heavy list kernel (compute.h), cycles per 1000 keys
 *   callret   a call/ret pair to a non-inlined function
 *   in        a port read that leaves to the VMM (COM1 scratch register)
 *   int       INT n to a ring-0 handler and IRET back (the system-call analog at CPL 0)
 *   divfault  a divide fault handled by the guest (#DE through the IDT and back)
 *   pushfpopf PUSHF/POPF pair (a sensitive instruction pair)
 *   clisti    CLI then STI (privileged; STI's shadow covers the loop's next instruction)
 *   stiret    CLI, then a call to `sti; ret` (STI's shadow covers a RET: Linux's
 *             syscall_enter_from_user_mode_prepare, and its sti;call / sti;jmp alike)
 *   rdtsc     RDTSC at CPL 0 (the Linux guest's clock reads it millions of times)
 *   cr3       a CR3 write (paging off: no TLB to flush)
 * then with paging on (4 KiB identity pages):
 *   pagefault a read of a not-present page, handled by the guest (skips the instruction)
 *   ptewrite  a store to a page-table entry (same value)
 *   demandpage a demand-paging fault: clear P in a PTE, INVLPG, touch the page; the #PF
 *             handler sets P again and IRETs to the touch, which then runs
 *   cr3switch a CR3 load alternating between two page directories that map alike (they
 *             share their tables), then one memory read
 *   procswitch the same between two directories that map the page read differently
 *             (each its own table for it), as two processes' user pages do
 *   syscall   user INT 0x80 to a ring-0 handler and back by IRET, paging off
 *   syscallpg the same with paging on
 *   compute3  the compute kernel at CPL 3 (directly executed under xbt's direct mode)
 *   forkwait  the forkwait analog: per process, cycles to create an address space (a
 *             page directory with the kernel's global 4 KiB mappings and a user page
 *             table with shared code), switch to it, run the process (its stack page
 *             demand-paged by the #PF handler, one system call, then exit) and tear it
 *             down; 2,000 processes
 */
#include "../../tests/guests/lib/guest.h"
#include "compute.h"

#define REPS 7

static u32 median(u32 *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            u32 t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

/* STI; RET, as a function of its own (an out-of-line local_irq_enable). */
__asm__(".text\n\t.globl nano_sti_ret\nnano_sti_ret:\n\tsti\n\tret\n");
void nano_sti_ret(void);

static __attribute__((noinline)) u32 leaf(u32 x)
{
    __asm__ volatile("");
    return x + 1;
}

static void skip_div(struct frame *f) { f->eip += 2; /* div ecx is 2 bytes */ }
static void skip_load(struct frame *f) { f->eip += 6; /* movl abs32, %ecx: 6 bytes */ }
static u32 *demand_pte;
static void set_present(struct frame *f) { (void)f; *demand_pte |= 1; }

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));
static volatile u32 user_cycles;

static volatile u32 fw_pid;

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) { /* exit to the kernel */
        f->eip = (u32)user_resume;
        f->cs = SEL_CODE;
    } else if (f->eax == 20) { /* getpid */
        f->eax = fw_pid;
    }
}

/* forkwait: the processes' program, copied to a frame mapped at 0x40000000 in each. */
__asm__(".text\n.globl fw_prog\nfw_prog:\n"
        "\tpushl $1\n\tpushl $2\n" /* the first touch of the stack page */
        "\tmovl $20, %eax\n\tint $0x80\n"
        "\tmovl $0, %eax\n\tint $0x80\n"
        ".globl fw_prog_end\nfw_prog_end:\n");
extern u8 fw_prog[], fw_prog_end[];
static u32 fw_pd[4][1024] __attribute__((aligned(4096)));
static u32 fw_pt[4][1024] __attribute__((aligned(4096)));
static u8 fw_code[4096] __attribute__((aligned(4096)));
static u8 fw_frames[8][4096] __attribute__((aligned(4096)));
static u32 *fw_cur_pt;
static u32 fw_free_mask = 0xff, fw_stack_frame, fw_faults;

static void fw_page_fault(struct frame *f)
{
    u32 cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    if ((f->cs & 3) && cr2 >= 0x400ff000u && cr2 < 0x40100000u && fw_free_mask) {
        u32 k = (u32)__builtin_ctz(fw_free_mask);
        fw_free_mask &= ~(1u << k);
        fw_stack_frame = k;
        fw_cur_pt[0xff] = (u32)fw_frames[k] | 7;
        fw_faults++;
        return;
    }
    printf("FAIL forkwait: unexpected #PF at %x err %x\n", cr2, f->err);
    guest_exit();
}

/* At CPL 3: the compute kernel (direct execution under xbt's direct mode), cycles per
   1000 iterations. */
static void user_compute(void)
{
    u32 samples[REPS];
    volatile u32 sink = 0;
    for (int r = 0; r < REPS; r++) {
        u64 t0 = rdtsc();
        sink += compute_kernel(2000000);
        u64 t1 = rdtsc();
        samples[r] = (u32)((t1 - t0) / 2000);
    }
    (void)sink; /* volatile: the loop's results are stored, not optimized away */
    user_cycles = median(samples, REPS);
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

/* At CPL 3: the median of REPS rounds of 2,000 system calls, per call. */
static void user_syscalls(void)
{
    u32 samples[REPS];
    for (int r = 0; r < REPS; r++) {
        u64 t0 = rdtsc();
        for (int i = 0; i < 2000; i++)
            __asm__ volatile("int $0x80" : : "a"(1) : "memory");
        samples[r] = (u32)((rdtsc() - t0) / 2000);
    }
    user_cycles = median(samples, REPS);
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pd2[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
static u32 pd3[1024] __attribute__((aligned(4096)));
static u32 pt3[1024] __attribute__((aligned(4096)));
static void iret_only(struct frame *f) { (void)f; }

#define MEASURE(name, iters, body)                                               \
    do {                                                                         \
        u32 samples[REPS];                                                       \
        for (int r = 0; r < REPS; r++) {                                         \
            u64 t0 = rdtsc();                                                    \
            for (u32 i = 0; i < (iters); i++) {                                  \
                body;                                                            \
            }                                                                    \
            u64 t1 = rdtsc();                                                    \
            samples[r] = (u32)((t1 - t0) / (iters));                             \
        }                                                                        \
        printf("RESULT %s %u\n", name, median(samples, REPS));                   \
    } while (0)

static inline u32 cpuid0(void)
{
    u32 a = 0, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return a + b + c + d;
}

void main(void)
{
    sse_os_support(); /* as an OS does: user code may then run directly (lib/guest.h) */
    volatile u32 sink = 0;
    u32 samples[REPS];
    for (int r = 0; r < REPS; r++) {
        u64 t0 = rdtsc();
        sink += compute_kernel(2000000);
        u64 t1 = rdtsc();
        samples[r] = (u32)((t1 - t0) / 2000);
    }
    printf("RESULT compute %u\n", median(samples, REPS)); /* cycles per 1000 iterations */
    for (int r = 0; r < REPS; r++) {
        u64 t0 = rdtsc();
        sink += branchy_kernel(200000);
        u64 t1 = rdtsc();
        samples[r] = (u32)((t1 - t0) / 200);
    }
    printf("RESULT branchy %u\n", median(samples, REPS)); /* cycles per 1000 keys */
    for (int r = 0; r < REPS; r++) {
        u64 t0 = rdtsc();
        sink += calls_kernel(200000);
        u64 t1 = rdtsc();
        samples[r] = (u32)((t1 - t0) / 200);
    }
    printf("RESULT calls %u\n", median(samples, REPS)); /* cycles per 1000 keys */
    MEASURE("callret", 200000, sink = leaf(sink));
    MEASURE("in", 20000, sink += inb(0x3ff));
    MEASURE("out", 20000, outb(0x3ff, (u8)sink));
    MEASURE("cpuid", 20000, sink += cpuid0());
    /* A dword read from a device register: pc-testdev's scratch block on QEMU (run-nano.sh
       adds the device), the same block in xbt-run. */
    MEASURE("mmio", 20000, sink += *(volatile u32 *)0xff000000u);
    set_handler(0x30, iret_only);
    idt_set(0x30, isr_table[0x30], SEL_CODE, 0xe, 0);
    MEASURE("int", 20000, __asm__ volatile("int $0x30" ::: "memory"));
    set_handler(0, skip_div);
    MEASURE("divfault", 20000,
            __asm__ volatile("xorl %%ecx, %%ecx\n\tdivl %%ecx" : : "a"(1), "d"(0) : "ecx"));
    MEASURE("pushfpopf", 200000, __asm__ volatile("pushfl; popfl" ::: "memory", "cc"));
    /* The PIC masks every line (pic_init): IF=1 takes nothing. */
    MEASURE("clisti", 200000, __asm__ volatile("cli; sti" ::: "memory"));
    MEASURE("stiret", 200000, __asm__ volatile("cli; call nano_sti_ret" ::: "memory"));
    MEASURE("rdtsc", 200000, __asm__ volatile("rdtsc" ::: "eax", "edx", "memory"));
    u32 cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    MEASURE("cr3", 20000, __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory"));

    /* System calls from CPL 3 (the guest library's stub 0x30 serves INT 0x80). */
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    user_run(user_syscalls, (u32)(ustack + sizeof ustack));
    printf("RESULT syscall %u\n", user_cycles);

    /* Paging on: identity 0..16 MiB in 4 KiB pages; VA 0x40000000 is not present. */
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | 3;
    for (u32 i = 0; i < 4; i++)
        pd[i] = pd2[i] = (u32)pt[i] | 3;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");
    set_handler(14, skip_load);
    /* movl 0x40000000, %ecx: 8b 0d imm32 = 6 bytes, skipped by the handler */
    MEASURE("pagefault", 20000, __asm__ volatile("movl 0x40000000, %%ecx" : : : "ecx", "memory"));
    volatile u32 *pte = &pt[1][5];
    u32 pv = *pte;
    MEASURE("ptewrite", 200000, *pte = pv);
    /* Linear 0x00c05000 -> frame 0x00c05000: absent before each touch, present after. */
    demand_pte = &pt[3][5];
    set_handler(14, set_present);
    MEASURE("demandpage", 20000, {
        *demand_pte &= ~1u;
        __asm__ volatile("invlpg (%0)" : : "r"(0x00c05000) : "memory");
        sink += *(volatile u32 *)0x00c05000;
    });
    MEASURE("cr3switch", 2000, {
        __asm__ volatile("mov %0, %%cr3" : : "r"((i & 1) ? pd2 : pd) : "memory");
        sink += *(volatile u32 *)0x00200000;
    });
    memcpy(pt3, pt[0], sizeof pt3);
    pt3[0x200] = 0x00300000u | 3; /* linear 0x200000 -> frame 0x300000 in pd3 */
    for (u32 i = 0; i < 4; i++)
        pd3[i] = pd[i];
    pd3[0] = (u32)pt3 | 3;
    MEASURE("procswitch", 2000, {
        __asm__ volatile("mov %0, %%cr3" : : "r"((i & 1) ? pd3 : pd) : "memory");
        sink += *(volatile u32 *)0x00200000;
    });
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] |= 4; /* user pages for the paged system calls */
    for (u32 i = 0; i < 4; i++)
        pd[i] |= 4;
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    user_run(user_syscalls, (u32)(ustack + sizeof ustack));
    printf("RESULT syscallpg %u\n", user_cycles);
    user_run(user_compute, (u32)(ustack + sizeof ustack));
    printf("RESULT compute3 %u\n", user_cycles);

    /* forkwait: kernel pages global and supervisor, as a Unix kernel maps itself. */
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | 0x103;
    u32 cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x80) : "memory"); /* PGE */
    memcpy(fw_code, fw_prog, (u32)(fw_prog_end - fw_prog));
    set_handler(14, fw_page_fault);
    const u32 nproc = 2000;
    u64 t0 = rdtsc();
    for (u32 i = 0; i < nproc; i++) {
        u32 *npd = fw_pd[i & 3], *npt = fw_pt[i & 3];
        memset(npd, 0, 4096);
        for (u32 k = 0; k < 4; k++)
            npd[k] = pd[k]; /* the kernel half, as fork copies it */
        memset(npt, 0, 4096);
        npt[0] = (u32)fw_code | 5;
        npd[0x100] = (u32)npt | 7;
        fw_cur_pt = npt;
        fw_pid = i + 2;
        __asm__ volatile("mov %0, %%cr3" : : "r"(npd) : "memory");
        user_run((void (*)(void))0x40000000u, 0x40100000u);
        __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
        fw_free_mask |= 1u << fw_stack_frame;
    }
    u64 t1 = rdtsc();
    printf("RESULT forkwait %u\n", (u32)((t1 - t0) / nproc));
    CHECK_EQ(fw_faults, nproc, "forkwait: each process demand-paged its stack once");
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    CHECK(sink != 0xdeadbeef, "benchmarks ran");
}
