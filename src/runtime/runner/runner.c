/*
 * runner.c - the runner program: a freestanding static executable (no libc) that the
 * VMM starts once per guest address space to run that address space's user code
 * directly, in a host process that holds nothing else (runner_abi.h has the design).
 *
 * Start-up (before any guest code exists, so nothing here needs to distrust memory):
 * close every inherited descriptor but guest RAM, the comm and ring pages and the
 * eventfd; map the comm page read-write and the ring read-only; reserve the D-window;
 * set up the signal stack and handlers; start the trusted thread (runner_asm.S) with
 * its seccomp filter; install the guest thread's filter; report READY.
 *
 * Then the guest thread loops: wait for a command (RESUME, PARK, QUIT), enter guest
 * code for RESUME, and on the signal that brings it back copy the guest's state into
 * the comm page's exit report.  Everything after an exit restarts from xrn_restart, on
 * a fixed stack, reading only the comm page and constants.
 */
#define _GNU_SOURCE
#include <asm/ldt.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "runtime/runner_abi.h"

long xrn_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
long xrn_clone_trusted(const struct sock_fprog *prog);
void xrn_restorer(void);
__attribute__((noreturn)) void xrn_restart(void);
__attribute__((noreturn)) void xrn_park(void);
__attribute__((noreturn)) void xrn_sleep(uint32_t seen);
__attribute__((noreturn)) void xrn_enter_guest(void);
__attribute__((noreturn)) void xrn_cmd_loop(void);
__attribute__((noreturn)) void xrn_report_kicked(void);
void xrn_main(void);
extern const char xrn_crit_begin[], xrn_crit_end[], xrn_park_syscall[], xrn_sleep_syscall[];
extern const char __executable_start[], etext[];

#define SYS(n, a, b, c, d, e, f) \
    xrn_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

struct xrn_exit {
    int32_t sig, code, trapno;
    uint32_t err;
    uint64_t cr2, addr, rip;
    int32_t sysno;
    uint32_t arch;
    uint16_t cs, ss, hsel[4];
    uint32_t eflags;
    uint32_t gpr[8];
    int32_t aborted;
    uint32_t count;
};

_Static_assert(offsetof(struct xrn_exit, code) == XRN_X_CODE, "x");
_Static_assert(offsetof(struct xrn_exit, trapno) == XRN_X_TRAPNO, "x");
_Static_assert(offsetof(struct xrn_exit, err) == XRN_X_ERR, "x");
_Static_assert(offsetof(struct xrn_exit, cr2) == XRN_X_CR2, "x");
_Static_assert(offsetof(struct xrn_exit, addr) == XRN_X_ADDR, "x");
_Static_assert(offsetof(struct xrn_exit, rip) == XRN_X_RIP, "x");
_Static_assert(offsetof(struct xrn_exit, sysno) == XRN_X_SYSNO, "x");
_Static_assert(offsetof(struct xrn_exit, arch) == XRN_X_ARCH, "x");
_Static_assert(offsetof(struct xrn_exit, cs) == XRN_X_CS, "x");
_Static_assert(offsetof(struct xrn_exit, ss) == XRN_X_SS, "x");
_Static_assert(offsetof(struct xrn_exit, hsel) == XRN_X_HSEL, "x");
_Static_assert(offsetof(struct xrn_exit, eflags) == XRN_X_EFLAGS, "x");
_Static_assert(offsetof(struct xrn_exit, gpr) == XRN_X_GPR, "x");
_Static_assert(offsetof(struct xrn_exit, aborted) == XRN_X_ABORTED, "x");
_Static_assert(offsetof(struct xrn_exit, count) == XRN_X_COUNT, "x");

#define COMM ((volatile uint8_t *)XRN_COMM_ADDR)
#define C32(off) (*(volatile uint32_t *)(COMM + (off)))
#define C64(off) (*(volatile uint64_t *)(COMM + (off)))
#define XR ((volatile struct xrn_exit *)(COMM + XRN_C_X))
#define RING64(off) (*(const volatile uint64_t *)(XRN_RING_ADDR + (off)))

/* The compiler may turn loops into calls to these. */
void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *dd = d;
    const uint8_t *ss = s;
    while (n--)
        *dd++ = *ss++;
    return d;
}

void *memset(void *d, int c, size_t n)
{
    uint8_t *dd = d;
    while (n--)
        *dd++ = (uint8_t)c;
    return d;
}

static void futex_wake(volatile uint32_t *w)
{
    SYS(SYS_futex, w, FUTEX_WAKE, 1, 0, 0, 0);
}

static __attribute__((noreturn)) void die(uint32_t why)
{
    C32(XRN_C_FATAL) = why;
    for (;;)
        SYS(SYS_exit_group, 98, 0, 0, 0, 0, 0);
}

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

/* ---- exits ----------------------------------------------------------------------- */

static uint32_t this_cpu(void)
{
    uint32_t lo, hi, aux;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    return aux & 0xFFF; /* Linux: cpu | node << 12 */
}


/* Publishes the exit report, wakes the supervisor if it sleeps, and waits for the next
   command from the top of the stub stack. */
static __attribute__((noreturn)) void report(void)
{
    XR->count++;
    C32(XRN_C_CHILD_CPU) = this_cpu();
    __atomic_exchange_n((volatile uint32_t *)(COMM + XRN_C_STATE), XRN_ST_EXITED,
                        __ATOMIC_SEQ_CST);
    if (C32(XRN_C_SUP_SLEEP))
        futex_wake((volatile uint32_t *)(COMM + XRN_C_STATE));
    xrn_restart();
}

void xrn_report_kicked(void)
{
    XR->aborted = 1;
    XR->sig = SIGUSR2;
    report();
}

/* Every signal of the guest thread (SA_NODEFER, empty mask, on the signal stack). */
static void on_signal(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t rip = (uint64_t)g[REG_RIP];
    uint16_t cs = (uint16_t)g[REG_CSGSFS];
    int crit = cs == 0x33 && rip >= (uintptr_t)xrn_crit_begin && rip < (uintptr_t)xrn_crit_end;
    int own = cs == 0x33 && rip >= (uintptr_t)__executable_start && rip < (uintptr_t)etext;
    if (own && !crit && sig == SIGUSR2)
        return; /* a kick while waiting for a command: the command decides */
    /* Anything else in this program's own code is guest code that jumped there (the
       stub makes no call its filter refuses and takes no fault): reported like any
       exit, with the 64-bit RIP that tells the VMM what happened. */
    volatile struct xrn_exit *x = XR;
    x->sig = sig;
    x->code = si->si_code;
    x->addr = (uint64_t)(uintptr_t)si->si_addr;
    x->trapno = (int32_t)g[REG_TRAPNO];
    x->err = (uint32_t)g[REG_ERR];
    x->cr2 = (uint64_t)g[REG_CR2];
    x->rip = rip;
    x->cs = cs;
    x->ss = (uint16_t)((uint64_t)g[REG_CSGSFS] >> 48);
    x->sysno = sig == SIGSYS ? si->si_syscall : 0;
    x->arch = sig == SIGSYS ? si->si_arch : 0;
    uint16_t s;
    __asm__ volatile("mov %%ds, %0" : "=r"(s));
    x->hsel[0] = s;
    __asm__ volatile("mov %%es, %0" : "=r"(s));
    x->hsel[1] = s;
    __asm__ volatile("mov %%fs, %0" : "=r"(s));
    x->hsel[2] = s;
    __asm__ volatile("mov %%gs, %0" : "=r"(s));
    x->hsel[3] = s;
    x->eflags = (uint32_t)g[REG_EFL];
    x->gpr[0] = (uint32_t)g[REG_RAX];
    x->gpr[1] = (uint32_t)g[REG_RCX];
    x->gpr[2] = (uint32_t)g[REG_RDX];
    x->gpr[3] = (uint32_t)g[REG_RBX];
    x->gpr[4] = (uint32_t)g[REG_RSP];
    x->gpr[5] = (uint32_t)g[REG_RBP];
    x->gpr[6] = (uint32_t)g[REG_RSI];
    x->gpr[7] = (uint32_t)g[REG_RDI];
    x->aborted = crit ? (sig == SIGUSR2 ? 1 : 2) : 0;
    if (uc->uc_mcontext.fpregs && !crit)
        memcpy((void *)(COMM + XRN_C_FPU_OUT), uc->uc_mcontext.fpregs, 512);
    report();
}

/* ---- commands -------------------------------------------------------------------- */

/* Waits until the state is not `seen`: spins a while if the supervisor runs on another
   CPU, then sleeps on the futex (xrn_sleep, which restarts the command loop). */
static void wait_change(uint32_t seen)
{
    volatile uint32_t *st = (volatile uint32_t *)(COMM + XRN_C_STATE);
    uint32_t cpu = this_cpu();
    C32(XRN_C_CHILD_CPU) = cpu;
    if (C32(XRN_C_SUP_CPU) != cpu) {
        for (uint32_t i = 0; i < C32(XRN_C_SPIN); i++) { /* about a sleep and wake-up */
            if (*st != seen)
                return;
            __asm__ volatile("pause");
        }
    }
    __atomic_store_n((volatile uint32_t *)(COMM + XRN_C_CHILD_SLEEP), 1, __ATOMIC_SEQ_CST);
    if (*st == seen)
        xrn_sleep(seen);
}

static __attribute__((noreturn)) void resume(void)
{
    uint32_t mask = C32(XRN_C_LDT_MASK);
    for (int i = 0; i < 6; i++) {
        if (!(mask & (1u << i)))
            continue;
        long rc = SYS(SYS_modify_ldt, 0x11, COMM + XRN_C_LDT + 16 * i, 16, 0, 0, 0);
        if (rc != 0) {
            XR->aborted = 3;
            XR->err = (uint32_t)-rc;
            XR->trapno = i;
            report();
        }
    }
    /* The D-window requests of this command: the trusted thread does them.  A kick
       meanwhile ends the entry before any guest code ran (aborted 1): the trusted
       thread can be blocked in the host kernel for seconds (its mmap waiting for the
       guest memory file's locks on a loaded host), and the supervisor takes kicks
       unanswered for that long for guest code that left guest semantics. */
    uint64_t want = C64(XRN_C_WAIT_SEQ);
    /* On the supervisor's CPU (runner.c places it there) the trusted thread shares this
       CPU too: spinning only delays it. */
    unsigned every = this_cpu() == C32(XRN_C_SUP_CPU) ? 0 : 63;
    for (unsigned n = 0; (int64_t)(C64(XRN_C_DONE_HINT) - want) < 0; n++) {
        if (C32(XRN_C_KICK))
            xrn_report_kicked();
        __asm__ volatile("pause");
        if ((n & every) == every)
            SYS(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
    }
    xrn_enter_guest();
}

void xrn_cmd_loop(void)
{
    C32(XRN_C_CHILD_SLEEP) = 0;
    for (;;) {
        uint32_t s = __atomic_load_n((volatile uint32_t *)(COMM + XRN_C_STATE), __ATOMIC_ACQUIRE);
        if (s == XRN_ST_RESUME)
            resume();
        if (s == XRN_ST_PARK) {
            C32(XRN_C_PARKED) = 1;
            xrn_park();
        }
        if (s == XRN_ST_QUIT)
            SYS(SYS_exit_group, 0, 0, 0, 0, 0, 0);
        wait_change(s);
    }
}

/* ---- start-up ---------------------------------------------------------------------- */

/* A seccomp program with symbolic jump targets, resolved when it is installed. */
enum { L_NEXT = 0, L_ALLOW, L_DENY, L_MMAP, L_FUTEX, L_WRITE, L_ANON, L_SHARED, L_MAX };
#define RAW(n) ((uint8_t)(128 + (n))) /* a jump target given as an offset, not a label */
struct prog {
    struct sock_filter f[512];
    uint8_t jt[512], jf[512];
    int16_t at[L_MAX];
    unsigned n;
};

static void op(struct prog *p, uint16_t code, uint32_t k, uint8_t jt, uint8_t jf)
{
    p->f[p->n] = (struct sock_filter){ code, 0, 0, k };
    p->jt[p->n] = jt;
    p->jf[p->n] = jf;
    p->n++;
}

static void label(struct prog *p, int l)
{
    p->at[l] = (int16_t)p->n;
}

#define LDW(off) op(p, BPF_LD | BPF_W | BPF_ABS, (off), 0, 0)
#define ARG_LO(i) LDW(offsetof(struct seccomp_data, args[i]))
#define ARG_HI(i) LDW(offsetof(struct seccomp_data, args[i]) + 4)
#define JEQ(k, t, f) op(p, BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JGE(k, t, f) op(p, BPF_JMP | BPF_JGE | BPF_K, (k), (t), (f))
#define JSET(k, t, f) op(p, BPF_JMP | BPF_JSET | BPF_K, (k), (t), (f))
#define JGTX(t, f) op(p, BPF_JMP | BPF_JGT | BPF_X, 0, (t), (f))

static void ends(struct prog *p, uint32_t deny)
{
    label(p, L_ALLOW);
    op(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
    label(p, L_DENY);
    op(p, BPF_RET | BPF_K, deny, 0, 0);
}

static uint8_t target(const struct prog *p, unsigned i, uint8_t l)
{
    if (l >= 128)
        return (uint8_t)(l - 128);
    int off = l ? p->at[l] - (int)i - 1 : 0;
    if (off < 0 || off > 255)
        die(10); /* a jump BPF cannot express */
    return (uint8_t)off;
}

static void resolve(struct prog *p)
{
    for (unsigned i = 0; i < p->n; i++) {
        if (BPF_CLASS(p->f[i].code) != BPF_JMP)
            continue;
        p->f[i].jt = target(p, i, p->jt[i]);
        p->f[i].jf = target(p, i, p->jf[i]);
    }
}

static void install(struct prog *p, uint32_t deny)
{
    ends(p, deny);
    resolve(p);
}

/* The guest thread: futex wait/wake, rt_sigreturn, modify_ldt, sched_yield and exit;
   everything else, the guest's own int 0x80 included, is a SIGSYS exit. */
static void guest_filter(void)
{
    struct prog prog, *p = &prog;
    p->n = 0;
    LDW(offsetof(struct seccomp_data, arch));
    JEQ(AUDIT_ARCH_X86_64, L_NEXT, L_DENY);
    LDW(offsetof(struct seccomp_data, nr));
    JEQ(SYS_rt_sigreturn, L_ALLOW, L_NEXT);
    JEQ(SYS_modify_ldt, L_ALLOW, L_NEXT);
    JEQ(SYS_sched_yield, L_ALLOW, L_NEXT);
    JEQ(SYS_exit_group, L_ALLOW, L_NEXT);
    JEQ(SYS_futex, L_NEXT, L_DENY);
    ARG_LO(1);
    JSET(~(uint32_t)(FUTEX_PRIVATE_FLAG | 1), L_DENY, L_ALLOW);
    install(p, SECCOMP_RET_TRAP);
    struct sock_fprog fp = { .len = (unsigned short)p->n, .filter = p->f };
    if (SYS(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp, 0, 0, 0) != 0)
        die(3);
}

/* The shared mappings the trusted thread may make: prot at most RWX, then for each
   slot with a file, that file within [lo, hi) of it.  Every jump is local (the checks
   of 32 slots are longer than a BPF jump reaches), each slot's block ending in its own
   returns. */
#define RET(k) op(p, BPF_RET | BPF_K, (k), 0, 0)
static void shared_filter(struct prog *p)
{
    const uint32_t kill = SECCOMP_RET_KILL_PROCESS;
    label(p, L_SHARED);
    ARG_HI(2);
    JEQ(0, RAW(1), RAW(0));
    RET(kill);
    ARG_LO(2);
    JSET(~7u, RAW(0), RAW(1));
    RET(kill);
    ARG_HI(5);
    JEQ(0, RAW(1), RAW(0));
    RET(kill);
    for (uint32_t k = 0; k < XRN_SLOTS; k++) {
        uint64_t lo = RING64(XRN_R_SLOTLO + 8 * k), hi = RING64(XRN_R_SLOTHI + 8 * k);
        if (hi == 0)
            continue;
        if (hi >= (1ull << 32) || lo >= hi)
            die(4);
        ARG_LO(4);
        JEQ(XRN_FD_SLOT0 + k, RAW(0), RAW(10));
        ARG_LO(5);                                  /* offset in [lo, hi) */
        JGE((uint32_t)lo, RAW(0), RAW(7));
        JGE((uint32_t)hi, RAW(6), RAW(0));
        op(p, BPF_ALU | BPF_NEG, 0, 0, 0);
        op(p, BPF_ALU | BPF_ADD | BPF_K, (uint32_t)hi, 0, 0);
        op(p, BPF_MISC | BPF_TAX, 0, 0, 0);         /* X = hi - offset */
        ARG_LO(1);
        JGTX(RAW(1), RAW(0));                       /* len <= X */
        RET(SECCOMP_RET_ALLOW);
        RET(kill);
    }
    RET(kill);
}

/* The trusted thread: mmap of guest memory slots' files at [min, 4 GiB) inside the
   ranges the VMM gave (shared_filter) with at most RWX, or of nothing (PROT_NONE,
   anonymous) there; futex wait/wake; write to the eventfd; exit.  Anything else kills
   the runner. */
static void trusted_filter(struct prog *p, uint32_t min)
{
    p->n = 0;
    LDW(offsetof(struct seccomp_data, arch));
    JEQ(AUDIT_ARCH_X86_64, L_NEXT, L_DENY);
    LDW(offsetof(struct seccomp_data, nr));
    JEQ(SYS_mmap, L_MMAP, L_NEXT);
    JEQ(SYS_futex, L_FUTEX, L_NEXT);
    JEQ(SYS_write, L_WRITE, L_NEXT);
    JEQ(SYS_exit_group, L_ALLOW, L_NEXT);
    JEQ(SYS_exit, L_ALLOW, L_DENY);
    label(p, L_FUTEX);
    ARG_LO(1);
    JSET(~(uint32_t)(FUTEX_PRIVATE_FLAG | 1), L_DENY, L_ALLOW);
    label(p, L_WRITE);
    ARG_LO(0);
    JEQ(XRN_FD_DONE, L_ALLOW, L_DENY);
    label(p, L_MMAP); /* addr in [min, 4 GiB), len in (0, 4 GiB - addr] */
    ARG_HI(0);
    JEQ(0, L_NEXT, L_DENY);
    ARG_LO(0);
    JGE(min, L_NEXT, L_DENY);
    op(p, BPF_ALU | BPF_NEG, 0, 0, 0);
    op(p, BPF_MISC | BPF_TAX, 0, 0, 0);
    ARG_HI(1);
    JEQ(0, L_NEXT, L_DENY);
    ARG_LO(1);
    JGTX(L_DENY, L_NEXT);
    JEQ(0, L_DENY, L_NEXT);
    ARG_HI(3);
    JEQ(0, L_NEXT, L_DENY);
    ARG_LO(3);
    JEQ(0x4032, L_ANON, L_NEXT); /* PRIVATE|ANONYMOUS|FIXED|NORESERVE */
    JEQ(0x11, L_SHARED, L_DENY); /* SHARED|FIXED */
    label(p, L_ANON);
    ARG_HI(2);
    JEQ(0, L_NEXT, L_DENY);
    ARG_LO(2);
    JEQ(0, L_ALLOW, L_DENY);
    ends(p, SECCOMP_RET_KILL_PROCESS);
    shared_filter(p);
    resolve(p);
}

static void *map_fixed(uint64_t at, uint64_t len, int prot, int flags, int fd)
{
    long r = SYS(SYS_mmap, at, len, prot, flags | 0x100000 /* MAP_FIXED_NOREPLACE */, fd, 0);
    if ((uint64_t)r != at)
        die(2);
    return (void *)(uintptr_t)at;
}

void xrn_main(void)
{
    SYS(SYS_close_range, 0, 2, 0, 0, 0, 0);
    SYS(SYS_close, 3, 0, 0, 0, 0, 0);
    SYS(SYS_close_range, XRN_FD_SLOT0 + XRN_SLOTS, ~0u, 0, 0, 0, 0);
    SYS(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0, 0);
    uint64_t none = 0; /* the VMM started it with every signal blocked */
    SYS(SYS_rt_sigprocmask, SIG_SETMASK, &none, 0, 8, 0, 0);
    map_fixed(XRN_COMM_ADDR, XRN_COMM_SIZE, 3, 0x01 /* SHARED */, XRN_FD_COMM);
    map_fixed(XRN_RING_ADDR, XRN_RING_SIZE, 1, 0x01, XRN_FD_RING);
    SYS(SYS_close, XRN_FD_COMM, 0, 0, 0, 0, 0);
    SYS(SYS_close, XRN_FD_RING, 0, 0, 0, 0, 0);
    uint64_t min = RING64(XRN_R_MINADDR);
    if (min < 4096 || min >= (1ull << 32))
        die(4);
    map_fixed(min, (1ull << 32) - min, 0, 0x4022 /* PRIVATE|ANON|NORESERVE */, -1);
    map_fixed(XRN_ALT_ADDR, XRN_ALT_SIZE, 3, 0x22, -1);
    map_fixed(XRN_STACK_ADDR, XRN_STACK_SIZE, 3, 0x22, -1);
    map_fixed(XRN_TSTACK_ADDR, XRN_TSTACK_SIZE, 3, 0x22, -1);
    stack_t ss = { .ss_sp = (void *)XRN_ALT_ADDR, .ss_size = XRN_ALT_SIZE, .ss_flags = 0 };
    if (SYS(SYS_sigaltstack, &ss, 0, 0, 0, 0, 0) != 0)
        die(5);
    static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGUSR2 };
    struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } sa = {
        (void *)on_signal, SA_SIGINFO | SA_ONSTACK | SA_NODEFER | 0x04000000 /* RESTORER */,
        (void *)xrn_restorer, 0 };
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (SYS(SYS_rt_sigaction, sigs[i], &sa, 0, 8, 0, 0) != 0)
            die(6);
    /* The components the guest thread's XRSTOR initialises (AVX and beyond included). */
    uint32_t r[4];
    cpuid(1, 0, r);
    uint64_t xcr0 = 3;
    if (r[2] & (1u << 27)) {
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    } else {
        die(7); /* the entry uses XRSTOR */
    }
    C64(XRN_C_XCR0) = xcr0;
    /* The supervisor needs the guest thread's id and the parking instruction; both are
       written before any guest code exists. */
    C32(XRN_C_GUEST_TID) = (uint32_t)SYS(SYS_gettid, 0, 0, 0, 0, 0, 0);
    C64(XRN_C_PARK_PC) = (uint64_t)(uintptr_t)xrn_park_syscall + 2;
    C32(XRN_C_SLEEP_PC) = (uint32_t)((uintptr_t)xrn_sleep_syscall + 2 - XRN_TEXT_ADDR);
    if (SYS(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0) != 0)
        die(8);
    struct prog tprog;
    trusted_filter(&tprog, (uint32_t)min);
    struct sock_fprog tp = { .len = (unsigned short)tprog.n, .filter = tprog.f };
    if (xrn_clone_trusted(&tp) < 0)
        die(9);
    while (!C32(XRN_C_TRUSTED_READY))
        SYS(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
    guest_filter();
    __atomic_store_n((volatile uint32_t *)(COMM + XRN_C_STATE), XRN_ST_READY, __ATOMIC_SEQ_CST);
    futex_wake((volatile uint32_t *)(COMM + XRN_C_STATE));
    xrn_restart();
}
