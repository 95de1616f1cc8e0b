/*
 * signals.c - host signals: guest faults inside translated code come back to the run
 * loop with precise guest state; kicks unlink the running block so a tight translated
 * loop leaves promptly; a fault in the VMM itself is reported, never silent.
 */
#define _GNU_SOURCE
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vcpu.h"

__thread struct xbt_vcpu *xbt_current_vcpu;

#define XBT_KICK_SIGNAL SIGUSR2

static const int fault_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP };

/* Guest registers out of the host context, undoing the fix-ups of the pc map. */
static void take_guest_state(struct xbt_vcpu *v, ucontext_t *uc, const xbt_block *b,
                             const struct xbt_pcmap *m)
{
    greg_t *g = uc->uc_mcontext.gregs;
    uint32_t *gpr = v->ctx.gpr;
    gpr[XBT_EAX] = (uint32_t)g[REG_RAX];
    gpr[XBT_ECX] = (uint32_t)g[REG_RCX];
    gpr[XBT_EDX] = (uint32_t)g[REG_RDX];
    gpr[XBT_EBX] = (uint32_t)g[REG_RBX];
    gpr[XBT_ESP] = (uint32_t)g[REG_R12];
    gpr[XBT_EBP] = (uint32_t)g[REG_RBP];
    gpr[XBT_ESI] = (uint32_t)g[REG_RSI];
    gpr[XBT_EDI] = (uint32_t)g[REG_RDI];
    v->ctx.eflags = (uint32_t)g[REG_EFL] & XBT_EFLAGS_ARITH;
    /* The x87/SSE registers hold the guest's state only while it is loaded; either way
       C code runs next, so it is marked as living in ctx->fpu again. */
    if (v->ctx.fpu_loaded && uc->uc_mcontext.fpregs)
        memcpy(v->ctx.fpu, uc->uc_mcontext.fpregs, sizeof v->ctx.fpu);
    v->ctx.fpu_loaded = 0;
    v->ctx.fpu_entry = (uint64_t)(uintptr_t)xbt_jit_fpu_load;
    if (!m)
        return;
    v->ctx.eip = m->guest_eip + (b ? b->map_delta : 0); /* a copy: its source's map */
    if (m->fixup == XBT_FIX_STRING) {
        /* RSI/RDI = window base + segment base + guest offset: keep the low half and
           take the window's (0 for the 4 GiB-aligned K-window, not for the UK layout's
           U-window) and the segment base back out. */
        uint32_t wlow = (uint32_t)v->ctx.kbase;
        bool soft = m->arg & XBT_FIXS_SOFT; /* a soft string site: each pointer's delta */
        if (m->arg & XBT_FIXS_SRC_WIN)
            gpr[XBT_ESI] -= soft ? (uint32_t)v->ctx.soft_delta[0] : wlow;
        if (m->arg & XBT_FIXS_DST_WIN)
            gpr[XBT_EDI] -= soft ? (uint32_t)v->ctx.soft_delta[1] : wlow;
        if (m->arg & 1)
            gpr[XBT_ESI] -= v->ctx.seg_base[m->seg & 7];
        if (m->arg & 2)
            gpr[XBT_EDI] -= v->ctx.seg_base[(m->arg & XBT_FIXS_DST_SEG) ? m->seg & 7 : XBT_ES];
        /* 16-bit addressing: SI/DI are the low halves; ESI's and EDI's upper halves
           wait in R8/R9 (translate.c, emit_string16). */
        if (m->arg & 4)
            gpr[XBT_ESI] = ((uint32_t)g[REG_R8] & 0xFFFF0000u) | (gpr[XBT_ESI] & 0xFFFF);
        if (m->arg & 8)
            gpr[XBT_EDI] = ((uint32_t)g[REG_R9] & 0xFFFF0000u) | (gpr[XBT_EDI] & 0xFFFF);
    } else if (m->fixup == XBT_FIX_SAVED_REG) {
        gpr[m->arg & 7] = (uint32_t)g[REG_R10];
    }
}

/* MASKMOVQ/MASKMOVDQU (a string fix-up with EDI's segment from the map): the linear
   address of its store, DS:EDI (DS:DI with 16-bit addressing), once take_guest_state has
   put the guest's EDI back; -1 for every other instruction. */
static int64_t maskmov_start(const struct xbt_vcpu *v, const struct xbt_pcmap *m)
{
    if (!m || m->fixup != XBT_FIX_STRING || !(m->arg & XBT_FIXS_DST_SEG))
        return -1;
    uint32_t edi = v->ctx.gpr[XBT_EDI];
    if (m->arg & 8)
        edi &= 0xFFFF;
    return (uint32_t)(v->arch.seg[m->seg & 7].base + edi);
}

/* A host fault in translated code (a block or the single step's code), its guest state
   taken: what handle_fault (run.c) needs, then back to the run loop. */
static void __attribute__((noreturn))
leave_for_fault(struct xbt_vcpu *v, int sig, const siginfo_t *si, const ucontext_t *uc,
                const struct xbt_pcmap *m, uint64_t rip)
{
    v->fault_sig = m ? sig : -sig; /* negative: no precise guest state */
    v->fault_ukfast = m && (m->seg & XBT_MAP_UK_FAST);
    v->fault_maskmov = maskmov_start(v, m);
    v->fault_addr = (uint64_t)(uintptr_t)si->si_addr;
    v->fault_code = si->si_code;
    v->fault_err = (uint64_t)uc->uc_mcontext.gregs[REG_ERR];
    v->fault_rip = rip;
    siglongjmp(v->fault_jmp, 1);
}

static void report_host_crash(int sig, siginfo_t *si, ucontext_t *uc)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "xbt: host fault in the VMM: signal %d at rip=%#llx addr=%p\n", sig,
                     (unsigned long long)uc->uc_mcontext.gregs[REG_RIP], si->si_addr);
    if (n > 0 && write(2, buf, (size_t)n) < 0)
        return;
    void *frames[32];
    int k = backtrace(frames, 32);
    backtrace_symbols_fd(frames, k, 2);
}

void xbt_on_fault(int sig, siginfo_t *si, void *uc_);
void xbt_on_kick(int sig, siginfo_t *si, void *uc_);
void xbt_on_sample(int sig, siginfo_t *si, void *uc_);

/* The thread CPU-time sampler's signal (pfsite.c, taking fault sites back): a realtime
   signal, so a profiler's SIGPROF stays the embedder's. */
#define XBT_SAMPLE_SIGNAL (SIGRTMIN + 2)

void xbt_on_fault(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;
    struct xbt_vcpu *v = xbt_current_vcpu;
    uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    if (v && v->running && xbt_tc_contains(v->tc, rip)) {
        xbt_block *b = xbt_tc_block_at(v->tc, rip);
        const struct xbt_pcmap *m = NULL;
        if (b) {
            /* A pc map built for the block's own code: offsets relative to b->host. */
            uint32_t off = (uint32_t)(rip - (uintptr_t)b->host);
            for (uint32_t i = 0; i < b->n_map && b->map[i].host_off <= off; i++)
                m = &b->map[i];
            if (off >= b->body_len)
                m = NULL;
        }
        take_guest_state(v, uc, b, m);
        leave_for_fault(v, sig, si, uc, m, rip);
    }
    if (v && v->running && v->smc.exec && rip >= (uintptr_t)v->smc.exec &&
        rip < (uintptr_t)v->smc.exec + XBT_BLOCK_MAX_CODE) {
        const struct xbt_pcmap *m = xbt_tblock_lookup(v->tb, (uint32_t)(rip - (uintptr_t)v->smc.exec));
        take_guest_state(v, uc, NULL, m); /* (steps take the LEA: never UK_FAST) */
        leave_for_fault(v, sig, si, uc, m, rip);
    }
    report_host_crash(sig, si, uc);
    if (v && v->running) {
        /* A bug in the VMM while a vCPU runs: turn it into an internal-error exit. */
        xbt_set_internal_error(v, v->ctx.eip, "host signal %d in the VMM at rip=%#llx", sig,
                               (unsigned long long)rip);
        v->fault_sig = 0;
        siglongjmp(v->fault_jmp, 2);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void xbt_on_kick(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;
    struct xbt_vcpu *v = xbt_current_vcpu;
    (void)sig;
    (void)si;
    if (!v || !v->running)
        return;
    /* Make every indirect branch miss and unlink the running block's exits: the guest
       leaves translated code at the next block end. */
    v->ctx.ibl_table = (uint64_t)(uintptr_t)v->ibl_miss;
    uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    if (rip >= (uint64_t)(uintptr_t)xbt_jit_ibl_victim &&
        rip < (uint64_t)(uintptr_t)xbt_jit_ibl_victim_end) {
        /* In the victim probe, which read the table before: a hit would go on into
           translated code whose block no kick unlinked (a loop of chained blocks would
           keep the vCPU until the next kick).  The probe starts again, with the guest's
           RCX back where it parked it, and misses. */
        if (rip >= (uint64_t)(uintptr_t)xbt_jit_ibl_victim_rcx &&
            rip < (uint64_t)(uintptr_t)xbt_jit_ibl_victim_jmp)
            uc->uc_mcontext.gregs[REG_RCX] = uc->uc_mcontext.gregs[REG_R10];
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)xbt_jit_ibl_victim;
        return;
    }
    if (rip >= (uint64_t)(uintptr_t)xbt_jit_intr_open &&
        rip < (uint64_t)(uintptr_t)xbt_jit_intr_end)
        rip = (uint64_t)uc->uc_mcontext.gregs[REG_R15]; /* in a gate: its block */
    if (xbt_tc_contains(v->tc, rip) && !v->unlinked) {
        xbt_block *b = xbt_tc_block_at(v->tc, rip);
        if (b) {
            xbt_tc_unlink_out(v->tc, b);
            v->unlinked = b;
        }
    }
}

/* A sample of the running thread's CPU time (xbt_pf_sampler_start's timer). */
void xbt_on_sample(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;
    struct xbt_vcpu *v = xbt_current_vcpu;
    (void)sig;
    if (v && v->running && si->si_code == SI_TIMER)
        xbt_pf_sample(v, (uint64_t)uc->uc_mcontext.gregs[REG_RIP]);
}

/* This thread's id, asked once (a system call). */
static __thread pid_t thread_tid;
static pid_t this_tid(void)
{
    if (!thread_tid)
        thread_tid = gettid();
    return thread_tid;
}

/* The sampler of fault sites (pfsite.c): a timer of the calling thread's CPU time, which
   runs the vCPU.  Not made (the sites then stay): the vCPU runs on as before. */
void xbt_pf_sampler_start(struct xbt_vcpu *v)
{
    if (v->pfb.timer_on)
        return;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = XBT_SAMPLE_SIGNAL;
    v->pfb.tid = this_tid();
    sev._sigev_un._tid = v->pfb.tid; /* sigev_notify_thread_id (glibc 2.36 names no macro) */
    timer_t t;
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &t) != 0) {
        v->pfb.sample_ok = false;
        return;
    }
    struct itimerspec its = { .it_interval = { 0, XBT_PF_SAMPLE_NS },
                              .it_value = { 0, XBT_PF_SAMPLE_NS } };
    if (timer_settime(t, 0, &its, NULL) != 0) {
        timer_delete(t);
        v->pfb.sample_ok = false;
        return;
    }
    v->pfb.timer = t;
    v->pfb.timer_on = true;
}

void xbt_pf_sampler_stop(struct xbt_vcpu *v)
{
    if (v->pfb.timer_on)
        timer_delete((timer_t)v->pfb.timer);
    v->pfb.timer_on = false;
}

/* Samples of another thread's CPU time would go to that thread (another vCPU's samples,
   or none): the timer is made again for this one (found by review). */
void xbt_pf_sampler_follow(struct xbt_vcpu *v)
{
    if (v->pfb.tid == this_tid())
        return;
    xbt_pf_sampler_stop(v);
    xbt_pf_sampler_start(v);
}

/* The alternate signal stack of a vCPU thread (a fault on an overflowing VMM stack is
   still reported).  Returns it (NULL: none could be made). */
static __thread uint8_t *thread_alt;
#define ALT_SIZE (64 * 1024)

/* The stack goes with its thread: a key's destructor switches it off, then unmaps it. */
static pthread_key_t alt_key;
static pthread_once_t alt_once = PTHREAD_ONCE_INIT;
static bool alt_key_ok;

static void alt_free(void *p)
{
    stack_t off = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
    sigaltstack(&off, NULL);
    munmap(p, ALT_SIZE);
}

static void alt_key_init(void)
{
    alt_key_ok = pthread_key_create(&alt_key, alt_free) == 0;
}

uint8_t *xbt_thread_altstack(void)
{
    if (thread_alt)
        return thread_alt;
    size_t sz = ALT_SIZE;
    uint8_t *a = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return NULL;
    stack_t ss = { .ss_sp = a, .ss_size = sz, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(a, sz);
        return NULL;
    }
    thread_alt = a;
    pthread_once(&alt_once, alt_key_init);
    if (alt_key_ok)
        pthread_setspecific(alt_key, a); /* else kept for the process's lifetime */
    return a;
}

bool xbt_signals_init(void)
{
    static int done;
    if (done)
        return true;
    if (!xbt_thread_altstack())
        return false;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = xbt_on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    /* Nothing blocked: translated-code faults leave by siglongjmp, which keeps the
       mask. */
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fault_signals / sizeof fault_signals[0]; i++)
        if (sigaction(fault_signals[i], &sa, NULL) != 0)
            return false;
    /* The kick and the sample both may unlink the running block: neither interrupts
       the other. */
    sa.sa_sigaction = xbt_on_kick;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigaddset(&sa.sa_mask, XBT_SAMPLE_SIGNAL);
    if (sigaction(XBT_KICK_SIGNAL, &sa, NULL) != 0)
        return false;
    sa.sa_sigaction = xbt_on_sample;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, XBT_KICK_SIGNAL);
    if (sigaction(XBT_SAMPLE_SIGNAL, &sa, NULL) != 0)
        return false;
    done = 1;
    return true;
}

void xbt_vcpu_kick(xbt_vcpu *v)
{
    if (!v)
        return;
    /* The interrupt source changed: inline STI/POPF gates leave to the dispatcher. */
    __atomic_store_n(&v->ctx.intr_gate, (uint64_t)(uintptr_t)xbt_jit_intr_pending,
                     __ATOMIC_SEQ_CST);
    atomic_store(&v->kick, true);
    /* Guest user code running in a runner process leaves it; the vCPU thread waiting
       for it looks at the kick flag too. */
    struct xbt_runner *r = atomic_load(&v->dx.runner);
    if (r)
        xbt_runner_kick(r);
    /* With several vCPUs only one in translated code (or a callout from it) needs the
       signal: one in C goes through tc_enter (run.c), which sees the kick flag.  The
       seq_cst store above and tc_enter's store of in_tc before its load of the flag:
       either it sees the flag or this sees in_tc. */
    if (atomic_load(&v->running) && (v->vm->n_vcpus < 2 || atomic_load(&v->mbox.in_tc)))
        pthread_kill(v->thread, XBT_KICK_SIGNAL);
}

void xbt_vcpu_nmi(xbt_vcpu *v)
{
    if (!v)
        return;
    atomic_store(&v->nmi_pending, true);
    xbt_vcpu_kick(v);
}

void xbt_vcpu_stop(xbt_vcpu *v)
{
    if (!v)
        return;
    atomic_store(&v->stop, true);
    xbt_vcpu_kick(v);
}
