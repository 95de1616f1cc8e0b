/*
 * contain.c - containment of guest user code (issue 5): system calls made from CPL 3
 * with *host* system call numbers and arguments reach the guest's kernel, never the
 * host's.  User code (run directly under xbt's direct mode) calls i386 creat() on a
 * probe path and write() of a marker to fd 1 through int 0x80 and through sysenter;
 * the guest kernel must see each, and the test driver (contain.sh) checks that the
 * probe file does not exist and the marker never reached the host's stdout.  Also a
 * user busy loop must be preempted by the PIT (direct mode: the host timer kick).
 *
 * Command line "escape=farjmp": user code far-jumps to selector 0x33 (in this guest's
 * GDT a DPL 0 execute-only segment: #GP(0x30); on an x86-64 host it is the 64-bit code
 * selector: under xbt's direct mode the runner process sees 64-bit code and xbt gives
 * the guest the same #GP(0x30)).  "escape=syscall": user code executes SYSCALL (not
 * enabled: #UD).  The probe path comes from "probe=PATH".  escape.c has the attacks
 * that do more in 64-bit mode.
 */
#include "lib/guest.h"

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));
static char probe[128] = "/tmp/xbt-containment-probe";
static const char marker[] = "HOST-WRITE-LEAK\n";
static volatile u32 seen_eax[8], seen_ebx[8], n_seen;
static volatile u32 ticks, gp_err, gp_count, ud_count;
static int escape; /* 0 none, 1 far jmp, 2 syscall */

static void record(u32 eax, u32 ebx)
{
    if (n_seen < 8) {
        seen_eax[n_seen] = eax;
        seen_ebx[n_seen] = ebx;
    }
    n_seen++;
}

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) { /* exit: back to the kernel */
        f->eip = (u32)user_resume;
        f->cs = SEL_CODE;
        return;
    }
    record(f->eax, f->ebx);
    f->eax = 0; /* as if it worked */
}

static volatile u32 sysenter_eax, sysenter_ebx;
void sysenter_entry(void);
__asm__(".text\n.globl sysenter_entry\nsysenter_entry:\n"
        "\tmovl %eax, sysenter_eax\n\tmovl %ebx, sysenter_ebx\n"
        "\txorl %eax, %eax\n"
        "\tsysexit\n");

static void timer_handler(struct frame *f)
{
    (void)f;
    ticks++;
    pic_eoi(0);
}

void escape_resume(void);
static void gp_handler(struct frame *f)
{
    gp_count++;
    gp_err = f->err;
    /* At the ljmp (a CPU) or, under direct execution, where the 64-bit code was
       caught: either way the user code goes on after it. */
    f->eip = (u32)escape_resume;
}

static void ud_handler(struct frame *f)
{
    ud_count++;
    f->eip += 2; /* syscall: 0f 05 */
}

static void user_host_calls(void)
{
    /* i386 creat(probe, 0644) and write(1, marker, 16) */
    __asm__ volatile("int $0x80" : : "a"(8), "b"(probe), "c"(0644) : "memory");
    __asm__ volatile("int $0x80" : : "a"(4), "b"(1), "c"(marker), "d"(16) : "memory");
    /* the same creat through sysenter (ECX = user ESP, EDX = return EIP) */
    __asm__ volatile("movl %%esp, %%ecx\n\tleal 1f, %%edx\n\tsysenter\n1:"
                     : : "a"(8), "b"(probe) : "ecx", "edx", "memory");
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static void user_busy_loop(void)
{
    u32 start = ticks;
    while (ticks < start + 3)
        ; /* no system call: only the timer can interrupt it */
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

void escape_target(void);
static void user_escape(void)
{
    if (escape == 1) {
        /* to selector 0x33; the bytes there are ud2 whatever the mode */
        __asm__ volatile("ljmp $0x33, $escape_target\n"
                         "escape_target: ud2\n"
                         ".globl escape_resume\nescape_resume:\n" ::: "memory");
    } else {
        __asm__ volatile("syscall" : : "a"(8), "b"(probe) : "ecx", "memory");
    }
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

static void parse_cmdline(void)
{
    char how[16];
    if (cmdline_value("escape", how, sizeof how))
        escape = !memcmp(how, "farjmp", 7) ? 1 : !memcmp(how, "syscall", 8) ? 2 : 0;
    cmdline_value("probe", probe, sizeof probe);
}

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    parse_cmdline();
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(13, gp_handler);
    set_handler(6, ud_handler);
    __asm__ volatile("wrmsr" : : "c"(0x174), "a"(SEL_CODE), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x175), "a"((u32)(kstack + sizeof kstack - 64)), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x176), "a"((u32)sysenter_entry), "d"(0));

    user_enter((u32)user_host_calls, (u32)(ustack + sizeof ustack), (u32)user_host_calls);
    CHECK_EQ(n_seen, 2, "both int 0x80 calls reached the guest kernel");
    CHECK_EQ(seen_eax[0], 8, "int 0x80 creat: eax");
    CHECK_EQ(seen_ebx[0], (u32)probe, "int 0x80 creat: ebx");
    CHECK_EQ(seen_eax[1], 4, "int 0x80 write: eax");
    CHECK_EQ(sysenter_eax, 8, "sysenter creat reached the guest's sysenter entry");
    CHECK_EQ(sysenter_ebx, (u32)probe, "sysenter creat: ebx");

    /* PIT IRQ 0 at vector 0x20 (the library's stub 0x20). */
    set_handler(0x20, timer_handler);
    pit_start(200);
    pic_unmask(0);
    user_enter((u32)user_busy_loop, (u32)(ustack + sizeof ustack), (u32)user_busy_loop);
    cli();
    CHECK(ticks >= 3, "a user busy loop is preempted by the timer");

    if (escape) {
        user_enter((u32)user_escape, (u32)(ustack + sizeof ustack), (u32)user_escape);
        if (escape == 1) {
            CHECK_EQ(gp_count, 1, "far jmp to selector 0x33 from CPL 3: #GP");
            CHECK_EQ(gp_err, 0x30, "#GP error code names the selector");
        } else {
            CHECK_EQ(ud_count, 1, "syscall with EFER.SCE clear: #UD");
        }
    }
}
