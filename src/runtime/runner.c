/*
 * runner.c - the VMM's side of the runner processes (runner.h, runner_abi.h): start
 * and kill them, post D-window requests to the trusted thread, run guest user code in
 * the guest thread and take its exits, park it and check that it is parked.
 *
 * Waiting is spin first (the other side runs on the other CPU: a hand-off costs a few
 * hundred cycles), then a futex: on this kind of host a sleep and wake-up costs 20,000
 * to 40,000 cycles, a host signal round trip about 6,000.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runner.h"
#include "runtime/runner_abi.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010u
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern const char xbt_runner_image[], xbt_runner_image_end[];

/* Spin this many PAUSEs (about 70 cycles each here) before sleeping: about what a
   sleep and wake-up costs, so waiting costs at most twice the better choice. */
#define XBT_SPIN spin_budget()

/* PAUSEs a side spins before it sleeps (XBT_SPIN overrides; read once: this is on the
   path of every exit). */
static unsigned spin_budget(void)
{
    static _Atomic unsigned budget; /* 0: not read yet (a value of 0 is stored as ~0) */
    unsigned b = budget;
    if (!b) {
        const char *e = getenv("XBT_SPIN");
        b = e ? (unsigned)atoi(e) : 1000u;
        budget = b ? b : ~0u;
    }
    return b == ~0u ? 0 : b;
}

/* The CPU set of host CPU `cpu` alone. */
static cpu_set_t one_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return set;
}

/* Where a runner's threads run (XBT_RUNNER_CPU): -1 ("same", the default) on the host
   CPU of the vCPU thread that enters it, the vCPU thread held there too (below); -2
   ("free") wherever the host scheduler puts them; N: the runner on host CPU N.  Only one
   side of a hand-off runs at a time, so two CPUs buy nothing but the cost of waking a
   thread on the other one, and on a host where that is dear (a PVM guest: an IPI and an
   idle CPU's HLT through the hypervisor) a hand-off on one CPU is far cheaper: see
   docs/ARCHITECTURE.md, "Where the two sides run".  Anything else in the variable is
   the default. */
static int placement(void)
{
    static _Atomic int mode = -3; /* not read yet */
    int m = mode;
    if (m == -3) {
        const char *e = getenv("XBT_RUNNER_CPU");
        char *end = NULL;
        long n = e && *e >= '0' && *e <= '9' ? strtol(e, &end, 10) : -1;
        m = e && !strcmp(e, "free") ? -2 : end && !*end && n < CPU_SETSIZE ? (int)n : -1;
        mode = m;
    }
    return m;
}

/* The vCPU thread is held on its CPU while it runs guest code directly: left free, the
   host scheduler wakes it on the idle CPU after each hand-off (its runner's side had
   just been running on the busy one), and the next hand-off crosses CPUs again.  The
   hold is a lease of XBT_PIN_LEASE_NS: at its end the thread runs one entry with the
   affinity it came with, so the host can still balance load (several VMs, other work)
   and the next entry holds it wherever it was put.  A second: at 50 ms (until
   2026-12-03) the host woke the thread on the idle CPU at most lease ends, and each
   such move puts a second CPU into the runner's mm mask, where it makes every
   modify_ldt an IPI for a second or more (xbt_runner_start).  Its own affinity comes
   back when xbt_vcpu_run returns to the embedder. */
#define XBT_PIN_LEASE_NS 1000000000ull
static __thread int pin_cpu = -1;      /* the CPU this thread is held on; -1: not held */
static __thread uint64_t pin_until;
static __thread cpu_set_t pin_saved;   /* its affinity before */

void xbt_runner_unpin_thread(void)
{
    if (pin_cpu < 0)
        return;
    sched_setaffinity(0, sizeof pin_saved, &pin_saved);
    pin_cpu = -1;
}

/* The CPU to run this hand-off on (-1: wherever the thread is). */
static int hold_here(void)
{
    int cpu = sched_getcpu();
    if (cpu < 0)
        return -1;
    uint64_t now = xbt_now_ns();
    if (pin_cpu >= 0) {
        if (now < pin_until)
            return pin_cpu;
        xbt_runner_unpin_thread(); /* the lease is over: one entry free */
        return cpu;
    }
    cpu_set_t one = one_cpu(cpu);
    if (sched_getaffinity(0, sizeof pin_saved, &pin_saved) != 0 ||
        sched_setaffinity(0, sizeof one, &one) != 0)
        return cpu;
    pin_cpu = cpu;
    pin_until = now + XBT_PIN_LEASE_NS;
    return cpu;
}

#define C32(r, off) (*(volatile uint32_t *)((r)->comm + (off)))
#define C64(r, off) (*(volatile uint64_t *)((r)->comm + (off)))
#define R64(r, off) (*(volatile uint64_t *)((r)->ring + (off)))

/* Both threads of the runner on host CPU `cpu` (a thread that cannot be moved, e.g. a
   CPU outside the host's set for it, leaves the runner where it was: only speed
   depends on this). */
static void place(struct xbt_runner *r, int cpu)
{
    cpu_set_t set = one_cpu(cpu);
    pid_t tids[2] = { (pid_t)C32(r, XRN_C_GUEST_TID), (pid_t)C32(r, XRN_C_TRUSTED_TID) };
    for (int i = 0; i < 2; i++)
        if (tids[i] > 0)
            sched_setaffinity(tids[i], sizeof set, &set);
    r->cpu = cpu;
    r->moves++;
}

/* ---- the program image ---------------------------------------------------------- */

static pthread_once_t image_once = PTHREAD_ONCE_INIT;
static int image_fd = -1;
static char image_error[96];

static void image_init(void)
{
    int fd = memfd_create("xbt-runner", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("xbt-runner", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(image_error, sizeof image_error, "memfd_create: %s", strerror(errno));
        return;
    }
    size_t len = (size_t)(xbt_runner_image_end - xbt_runner_image);
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, xbt_runner_image + done, len - done);
        if (n <= 0) {
            snprintf(image_error, sizeof image_error, "writing the runner image: %s",
                     strerror(errno));
            close(fd);
            return;
        }
        done += (size_t)n;
    }
    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    image_fd = fd;
}

/* ---- start and stop ---------------------------------------------------------------- */

struct spawn_args {
    int img, comm, ring, efd;
    const struct xbt_runner_files *f;
    bool pin;         /* born on the CPU in `cpu` (xbt_runner_start) */
    cpu_set_t cpu;
};

/* The clone(CLONE_VM | CLONE_VFORK) child: raw system calls only, then the runner. */
static int spawn_child(void *p)
{
    const struct spawn_args *a = p;
    if (a->pin)
        syscall(SYS_sched_setaffinity, 0, sizeof a->cpu, &a->cpu);
    int fds[4 + XRN_SLOTS] = { a->img, a->comm, a->ring, a->efd };
    for (int k = 0; k < XRN_SLOTS; k++)
        fds[4 + k] = a->f->fd[k];
    for (int i = 0; i < 4 + XRN_SLOTS; i++) /* out of the way of 4..38 first */
        if (fds[i] >= 0)
            fds[i] = (int)syscall(SYS_fcntl, fds[i], F_DUPFD_CLOEXEC, 64);
    for (int i = 1; i < 4 + XRN_SLOTS; i++) {
        int to = i < 4 ? XRN_FD_COMM + i - 1 : XRN_FD_SLOT0 + i - 4;
        if (fds[i] >= 0 && syscall(SYS_dup3, fds[i], to, 0) < 0)
            syscall(SYS_exit, 126);
    }
    static char *const argv[] = { "xbt-runner", NULL };
    static char *const envp[] = { NULL };
    syscall(SYS_execveat, fds[0], "", argv, envp, AT_EMPTY_PATH);
    syscall(SYS_exit, 127);
    return 127;
}

static bool child_gone(struct xbt_runner *r)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (syscall(SYS_waitid, P_PIDFD, r->pidfd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL,
                NULL) != 0)
        return true;
    /* SIGKILL is never the guest's doing (its filters kill with SIGSYS, the runner's
       own checks exit): the death signal of the thread that started it, which has
       ended (PR_SET_PDEATHSIG follows the parent thread), or the OOM killer. */
    if (si.si_pid != 0 && si.si_code == CLD_KILLED && si.si_status == SIGKILL)
        r->lost = true;
    return si.si_pid != 0;
}

void xbt_runner_kill(struct xbt_runner *r)
{
    if (r->pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        memset(&si, 0, sizeof si);
        syscall(SYS_waitid, P_PIDFD, r->pidfd, &si, WEXITED | __WALL, NULL);
        if (getenv("XBT_DEBUG_ESCAPE"))
            fprintf(stderr, "runner %d ended: code %d status %d fatal %#x\n", (int)r->pid,
                    si.si_code, si.si_status, r->comm ? C32(r, XRN_C_FATAL) : 0);
        close(r->pidfd);
        r->pidfd = -1;
    }
    if (r->efd >= 0)
        close(r->efd);
    if (r->sysfd >= 0)
        close(r->sysfd);
    r->efd = r->sysfd = -1;
    r->parked = false;
}

/* The comm and ring pages stay mapped for the runner's lifetime (xbt_vcpu_kick may
   write the kick flag from any thread at any time); only the process comes and goes. */
void xbt_runner_free(struct xbt_runner *r)
{
    xbt_runner_kill(r);
    if (r->comm)
        munmap((void *)r->comm, XRN_COMM_SIZE);
    if (r->ring)
        munmap((void *)r->ring, XRN_RING_SIZE);
    if (r->comm_fd >= 0)
        close(r->comm_fd);
    if (r->ring_fd >= 0)
        close(r->ring_fd);
    r->comm = r->ring = NULL;
    r->comm_fd = r->ring_fd = -1;
}

void xbt_runner_init(struct xbt_runner *r)
{
    memset(r, 0, sizeof *r);
    r->pidfd = r->efd = r->sysfd = r->comm_fd = r->ring_fd = -1;
}

uint64_t xbt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool fail(struct xbt_runner *r, char *why, size_t n, const char *what)
{
    snprintf(why, n, "cannot start the runner process: %s (%s)", what, strerror(errno));
    xbt_runner_kill(r);
    return false;
}

static uint32_t min_addr(void)
{
    unsigned long v = 65536;
    FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "re");
    if (f) {
        if (fscanf(f, "%lu", &v) != 1)
            v = 65536;
        fclose(f);
    }
    if (v < 4096)
        v = 4096;
    return (uint32_t)((v + 4095) & ~4095ul);
}

/* The comm and ring pages, made once. */
static bool pages(struct xbt_runner *r)
{
    if (r->comm)
        return true;
    r->comm_fd = memfd_create("xbt-runner-comm", MFD_CLOEXEC);
    r->ring_fd = memfd_create("xbt-runner-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r->comm_fd < 0 || r->ring_fd < 0 || ftruncate(r->comm_fd, XRN_COMM_SIZE) != 0 ||
        ftruncate(r->ring_fd, XRN_RING_SIZE) != 0)
        return false;
    void *c = mmap(NULL, XRN_COMM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->comm_fd, 0);
    void *g = mmap(NULL, XRN_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->ring_fd, 0);
    if (c == MAP_FAILED || g == MAP_FAILED) {
        if (c != MAP_FAILED)
            munmap(c, XRN_COMM_SIZE);
        if (g != MAP_FAILED)
            munmap(g, XRN_RING_SIZE);
        return false;
    }
    r->comm = c;
    r->ring = g;
    /* Nobody may write the ring through a new mapping: the runner maps it read-only
       and could not map it writable even with the descriptor. */
    fcntl(r->ring_fd, F_ADD_SEALS,
          F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
    return true;
}

bool xbt_runner_start(struct xbt_runner *r, const struct xbt_runner_files *f, char *why,
                      size_t why_len)
{
    xbt_runner_kill(r);
    pthread_once(&image_once, image_init);
    if (image_fd < 0) {
        snprintf(why, why_len, "cannot prepare the runner program: %s", image_error);
        return false;
    }
    if (!pages(r))
        return fail(r, why, why_len, "memfd/mmap");
    memset((void *)r->comm, 0, XRN_COMM_SIZE);
    memset((void *)r->ring, 0, XRN_RING_SIZE);
    for (int i = 0; i < 64; i++)
        R64(r, XRN_R_ONES + 8 * i) = (uint64_t)i + 1;
    C32(r, XRN_C_SPIN) = (uint32_t)XBT_SPIN;
    r->min_addr = min_addr();
    R64(r, XRN_R_MINADDR) = r->min_addr;
    for (int k = 0; k < XRN_SLOTS; k++) {
        R64(r, XRN_R_SLOTLO + 8 * k) = f->fd[k] >= 0 ? f->lo[k] : 0;
        R64(r, XRN_R_SLOTHI + 8 * k) = f->fd[k] >= 0 ? f->hi[k] : 0;
    }
    r->seq = r->confirmed = r->woken = 0; /* a new trusted thread sleeps at head 0 */
    r->parked = r->fresh = r->lost = false;
    r->ldt_valid = 0;
    r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->efd < 0)
        return fail(r, why, why_len, "eventfd");
    /* The runner process is born on the CPU it will run on (placement): Linux keeps
       the CPUs a process has run on in its mm's CPU mask (trimmed only now and then,
       at a TLB flush at least a second after the last trim), and each modify_ldt (a
       guest process switch's new TLS descriptor) interrupts all of them (install_ldt):
       an IPI to an idle CPU, 30,000 ticks and more on this kind of host, though the
       runner never runs there again.  Started unpinned and moved to its CPU after (as
       until 2026-12-03), it had run on the other CPU while it set up. */
    int want = placement(), birth = want >= 0 ? want : want == -1 ? sched_getcpu() : -1;
    struct spawn_args a = { image_fd, r->comm_fd, r->ring_fd, r->efd, f, birth >= 0,
                            one_cpu(birth >= 0 ? birth : 0) };
    size_t ss = 64 * 1024;
    uint8_t *stack = mmap(NULL, ss, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        return fail(r, why, why_len, "stack");
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    /* No exit signal: the embedder's process sees no SIGCHLD and wait(-1) does not
       reap it; the pidfd does. */
    pid_t pid = clone(spawn_child, stack + ss, CLONE_VM | CLONE_VFORK | CLONE_PIDFD, &a,
                      &pidfd);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, ss);
    if (pid < 0) {
        errno = err;
        return fail(r, why, why_len, "clone");
    }
    r->pid = pid;
    r->pidfd = pidfd;
    uint64_t deadline = xbt_now_ns() + 5000000000ull;
    while (C32(r, XRN_C_STATE) == XRN_ST_BOOT) {
        if (child_gone(r) || xbt_now_ns() > deadline) {
            snprintf(why, why_len, "the runner process did not start (its code %#x: %s)",
                     C32(r, XRN_C_FATAL),
                     C32(r, XRN_C_FATAL) == 2 ? "the low 4 GiB or its own addresses are taken"
                     : C32(r, XRN_C_FATAL) == 3 ? "seccomp refused"
                     : C32(r, XRN_C_FATAL) == 7 ? "no XSAVE" : "see runner.c");
            xbt_runner_kill(r);
            return false;
        }
        syscall(SYS_futex, r->comm + XRN_C_STATE, FUTEX_WAIT, XRN_ST_BOOT,
                &(struct timespec){ 0, 1000000 }, NULL, 0);
    }
    r->park_pc = C64(r, XRN_C_PARK_PC);
    r->sleep_pc = XRN_TEXT_ADDR + C32(r, XRN_C_SLEEP_PC);
    char path[80];
    snprintf(path, sizeof path, "/proc/%d/task/%u/syscall", (int)pid, C32(r, XRN_C_GUEST_TID));
    r->sysfd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[160];
    if (r->sysfd < 0 || pread(r->sysfd, buf, sizeof buf, 0) <= 0) {
        snprintf(why, why_len, "cannot read %s (%s): direct execution needs it to see that "
                 "a runner is parked", path, strerror(errno));
        xbt_runner_kill(r);
        return false;
    }
    r->cpu = -1;
    cpu_set_t born;
    if (birth >= 0 &&
        sched_getaffinity((pid_t)C32(r, XRN_C_GUEST_TID), sizeof born, &born) == 0 &&
        CPU_COUNT(&born) == 1 && CPU_ISSET(birth, &born))
    {
        r->cpu = birth; /* its trusted thread was created there too */
        r->moves++;     /* placed, at birth */
    }
    if (want >= 0 && r->cpu != want)
        place(r, want);
    r->fresh = true;
    return true;
}

/* ---- the ring ------------------------------------------------------------------------- */

static void confirm(struct xbt_runner *r)
{
    uint64_t n;
    while (read(r->efd, &n, sizeof n) == sizeof n)
        r->confirmed += n;
}

/* XBT_DEBUG_ESCAPE: why a live runner is given up, and where its threads are (the
   comm page's words, each thread's state and system call). */
static void report_stuck(struct xbt_runner *r, const char *why)
{
    if (!getenv("XBT_DEBUG_ESCAPE") || r->pidfd < 0)
        return;
    fprintf(stderr, "runner %d given up (%s): state %u child_sleep %u kick %u parked %u "
            "done_hint %llu wait_seq %llu seq %llu woken %llu confirmed %llu head %llu\n",
            (int)r->pid, why, C32(r, XRN_C_STATE), C32(r, XRN_C_CHILD_SLEEP),
            C32(r, XRN_C_KICK), C32(r, XRN_C_PARKED),
            (unsigned long long)C64(r, XRN_C_DONE_HINT),
            (unsigned long long)C64(r, XRN_C_WAIT_SEQ), (unsigned long long)r->seq,
            (unsigned long long)r->woken, (unsigned long long)r->confirmed,
            (unsigned long long)R64(r, XRN_R_HEAD));
    unsigned tids[2] = { C32(r, XRN_C_GUEST_TID), C32(r, XRN_C_TRUSTED_TID) };
    for (int i = 0; i < 2; i++) {
        static const char *const what[] = { "stat", "syscall", "wchan" };
        for (int k = 0; k < 3; k++) {
            char path[96], buf[400];
            snprintf(path, sizeof path, "/proc/%d/task/%u/%s", (int)r->pid, tids[i], what[k]);
            FILE *f = fopen(path, "re");
            size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f)
                fclose(f);
            buf[n] = 0;
            fprintf(stderr, "  %s %s: %s\n", i ? "trusted" : "guest", what[k], buf);
        }
    }
}

/* While waiting for the runner: true once it has died or not answered for `ns` since the
   first call (*deadline 0); it is killed then (a runner lost to a SIGKILL is not counted
   against the guest). */
static bool given_up(struct xbt_runner *r, uint64_t *deadline, uint64_t ns)
{
    uint64_t t = xbt_now_ns();
    if (!*deadline)
        *deadline = t + ns;
    if (!child_gone(r) && t <= *deadline)
        return false;
    report_stuck(r, "a wait or park timed out");
    r->kills += !r->lost;
    xbt_runner_kill(r);
    return true;
}

static void wake_trusted(struct xbt_runner *r)
{
    r->woken = r->seq;
    syscall(SYS_futex, r->ring + XRN_R_HEAD, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Until the trusted thread has done request `k` (the eventfd says so).  false: it did
   not in 5 seconds, or the runner died; the runner is then killed (which empties its
   D-window as surely). */
static bool wait_slow(struct xbt_runner *r, uint64_t k)
{
    wake_trusted(r);
    uint64_t deadline = 0;
    /* On one CPU with the trusted thread, spinning only delays it. */
    unsigned budget = r->cpu >= 0 && r->cpu == sched_getcpu() ? 0 : XBT_SPIN;
    for (unsigned spin = 0;; spin++) {
        if (spin < budget) {
            if ((int64_t)(C64(r, XRN_C_DONE_HINT) - k) < 0) {
                __builtin_ia32_pause();
                if ((spin & 127) == 127)
                    sched_yield();
                continue;
            }
            confirm(r);
            if (r->confirmed >= k)
                return true;
            continue;
        }
        struct pollfd p = { r->efd, POLLIN, 0 };
        poll(&p, 1, 10);
        confirm(r);
        if (r->confirmed >= k)
            return true;
        if (given_up(r, &deadline, 5000000000ull))
            return false;
        wake_trusted(r);
    }
}

static bool wait_done(struct xbt_runner *r, uint64_t k)
{
    if (!xbt_runner_alive(r))
        return false;
    confirm(r);
    if (r->confirmed >= k)
        return true;
    r->waits++;
    uint64_t t0 = xbt_now_ns();
    bool ok = wait_slow(r, k);
    r->wait_ns += xbt_now_ns() - t0;
    return ok;
}

static bool post(struct xbt_runner *r, uint32_t opc, uint32_t lin, uint32_t len, uint64_t gpa,
                 uint32_t prot)
{
    if (!xbt_runner_alive(r))
        return false;
    uint64_t k = r->seq + 1;
    if (k - r->confirmed >= XRN_RING_N) { /* full: the oldest slot must be done */
        confirm(r);
        if (k - r->confirmed >= XRN_RING_N && !wait_done(r, k - XRN_RING_N + 1))
            return false;
    }
    volatile uint8_t *e = r->ring + XRN_R_ENTRIES + (k % XRN_RING_N) * XRN_E_SIZE;
    __atomic_store_n((volatile uint64_t *)(e + XRN_E_TAG), 0, __ATOMIC_RELEASE);
    *(volatile uint32_t *)(e + XRN_E_OP) = opc;
    *(volatile uint32_t *)(e + XRN_E_PROT) = prot;
    *(volatile uint32_t *)(e + XRN_E_LIN) = lin;
    *(volatile uint32_t *)(e + XRN_E_LEN) = len;
    *(volatile uint64_t *)(e + XRN_E_GPA) = gpa;
    __atomic_store_n((volatile uint64_t *)(e + XRN_E_TAG), k, __ATOMIC_RELEASE);
    __atomic_store_n((volatile uint64_t *)(r->ring + XRN_R_HEAD), k, __ATOMIC_RELEASE);
    r->seq = k;
    r->requests++;
    return true;
}

bool xbt_runner_map(struct xbt_runner *r, uint32_t lin, uint32_t slot, uint64_t off,
                    uint32_t len, int prot)
{
    return post(r, XRN_OP_MAP | (slot << 8), lin, len, off, (uint32_t)prot);
}

bool xbt_runner_unmap(struct xbt_runner *r, uint32_t lin, uint64_t len, bool sync)
{
    if (!xbt_runner_alive(r))
        return true; /* no process, no D-window */
    uint64_t lo = lin < R64(r, XRN_R_MINADDR) ? R64(r, XRN_R_MINADDR) : lin;
    uint64_t hi = (uint64_t)lin + len;
    if (hi <= lo)
        return true;
    if (hi > (1ull << 32))
        hi = 1ull << 32;
    /* A request covers at most 4 GiB - 1 bytes (its length is 32 bits). */
    while (hi - lo >= (1ull << 32)) {
        if (!post(r, XRN_OP_UNMAP, (uint32_t)lo, 0x80000000u, 0, 0))
            return false;
        lo += 0x80000000u;
    }
    if (!post(r, XRN_OP_UNMAP, (uint32_t)lo, (uint32_t)(hi - lo), 0, 0))
        return false;
    /* A runner whose guest thread is parked (or never ran) cannot touch the pages
       before it has waited for this request; any other must be done with it now. */
    if (!sync || r->parked || r->fresh)
        return true;
    return wait_done(r, r->seq);
}

void xbt_runner_set_ldt(struct xbt_runner *r, int i, const void *user_desc)
{
    if ((r->ldt_valid & (1u << i)) && !memcmp(r->ldt[i], user_desc, 16))
        return;
    memcpy(r->ldt[i], user_desc, 16);
    r->ldt_valid |= (uint8_t)(1u << i);
    r->ldt_pending |= 1u << i;
}

/* ---- running, parking, kicks ---------------------------------------------------------- */

/* The CPU time the runner process has used, in ns (0: unknown). */
static uint64_t runner_cpu_ns(const struct xbt_runner *r)
{
    clockid_t c;
    struct timespec ts;
    if (clock_getcpuclockid(r->pid, &c) != 0 || clock_gettime(c, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Since the first kick of a run: wall and runner CPU time. */
struct kick_clock { uint64_t wall, cpu; };

/* Whether the guest thread ignores kicks: guest code cannot (it may not block SIGUSR2),
   only code that left guest semantics can (the runner's own code, reached by a jump,
   lets it pass).  Counted in the runner's own CPU time, 3 s of it: on a loaded host a
   runner may get little CPU, or wait in the host kernel for seconds (its trusted
   thread's mmap blocked on the guest memory file's mapping lock, with the guest thread
   waiting for that request), and killing it then gave the guest a #GP for nothing
   (a guest process's segmentation fault).  60 s of wall time is the last limit. */
static bool kicks_ignored(struct xbt_runner *r, struct kick_clock *k)
{
    uint64_t t = xbt_now_ns(), cpu = runner_cpu_ns(r);
    if (!cpu)
        cpu = t; /* no CPU clock: wall time */
    if (!k->wall) {
        k->wall = t;
        k->cpu = cpu;
        return false;
    }
    if (cpu - k->cpu > 3000000000ull) {
        report_stuck(r, "kicks unanswered for 3 s of its CPU time");
        return true;
    }
    if (t - k->wall > 60000000000ull) {
        report_stuck(r, "kicks unanswered for 60 s");
        return true;
    }
    return false;
}

void xbt_runner_kick(struct xbt_runner *r)
{
    volatile uint8_t *c = r->comm;
    int fd = r->pidfd;
    if (!c || fd < 0)
        return;
    __atomic_store_n((volatile uint32_t *)(c + XRN_C_KICK), 1, __ATOMIC_SEQ_CST);
    syscall(SYS_pidfd_send_signal, fd, SIGUSR2, NULL, 0);
}

static void set_state(struct xbt_runner *r, uint32_t s)
{
    __atomic_exchange_n((volatile uint32_t *)(r->comm + XRN_C_STATE), s, __ATOMIC_SEQ_CST);
    if (C32(r, XRN_C_CHILD_SLEEP))
        syscall(SYS_futex, r->comm + XRN_C_STATE, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static uint32_t mxcsr_mask(const uint8_t *fx)
{
    uint32_t m;
    memcpy(&m, fx + 28, 4);
    return m ? m : 0xFFBF;
}

static void put_fpu(struct xbt_runner *r, const uint8_t *fx)
{
    uint8_t *img = (uint8_t *)(r->comm + XRN_C_FPU_IN);
    memcpy(img, fx, 512);
    uint32_t mx;
    memcpy(&mx, img + 24, 4);
    mx &= mxcsr_mask(fx);
    memcpy(img + 24, &mx, 4);
    memset(img + 512, 0, 64);
    img[512] = 3; /* XSTATE_BV: x87 and SSE from the image, all else initialised */
}

static void take_exit(struct xbt_runner *r, struct xbt_direct *d, uint8_t *fx_out)
{
    volatile uint8_t *x = r->comm + XRN_C_X;
    d->sig = *(volatile int32_t *)(x + XRN_X_SIG);
    d->code = *(volatile int32_t *)(x + XRN_X_CODE);
    d->trapno = *(volatile int32_t *)(x + XRN_X_TRAPNO);
    d->err = *(volatile uint32_t *)(x + XRN_X_ERR);
    d->cr2 = *(volatile uint64_t *)(x + XRN_X_CR2);
    d->addr = *(volatile uint64_t *)(x + XRN_X_ADDR);
    d->rip = *(volatile uint64_t *)(x + XRN_X_RIP);
    d->sysno = *(volatile int32_t *)(x + XRN_X_SYSNO);
    d->arch = *(volatile uint32_t *)(x + XRN_X_ARCH);
    d->uc_cs = *(volatile uint16_t *)(x + XRN_X_CS);
    d->uc_ss = *(volatile uint16_t *)(x + XRN_X_SS);
    for (int i = 0; i < 4; i++)
        d->hsel[i] = *(volatile uint16_t *)(x + XRN_X_HSEL + 2 * i);
    d->aborted = *(volatile int32_t *)(x + XRN_X_ABORTED);
    if (d->aborted)
        return;
    d->eflags = *(volatile uint32_t *)(x + XRN_X_EFLAGS);
    for (int i = 0; i < 8; i++)
        d->gpr[i] = *(volatile uint32_t *)(x + XRN_X_GPR + 4 * i);
    d->eip = (uint32_t)d->rip;
    /* The x87/SSE state: whatever the runner wrote, FXRSTOR must accept it. */
    uint32_t mask = mxcsr_mask(fx_out);
    memcpy(fx_out, (const void *)(r->comm + XRN_C_FPU_OUT), 512);
    uint32_t mx;
    memcpy(&mx, fx_out + 24, 4);
    mx &= mask;
    memcpy(fx_out + 24, &mx, 4);
    memcpy(fx_out + 28, &mask, 4);
}

int xbt_runner_run(struct xbt_runner *r, struct xbt_direct *d, const uint8_t *fpu512,
                   uint8_t *fpu512_out, atomic_bool *kick)
{
    if (!xbt_runner_alive(r))
        return -1;
    int cpu = placement() == -1 ? hold_here() : sched_getcpu();
    if (placement() == -1 && cpu >= 0 && cpu != r->cpu)
        place(r, cpu);
    C32(r, XRN_C_SUP_CPU) = (uint32_t)cpu;
    for (int i = 0; i < 8; i++)
        C32(r, XRN_C_GPR + 4 * i) = d->gpr[i];
    C32(r, XRN_C_EIP) = d->eip;
    C32(r, XRN_C_EFLAGS) = d->eflags;
    for (int i = 0; i < 6; i++)
        *(volatile uint16_t *)(r->comm + XRN_C_SEL + 2 * i) = d->sel[i];
    C64(r, XRN_C_WAIT_SEQ) = r->seq;
    C32(r, XRN_C_LDT_MASK) = r->ldt_pending;
    for (int i = 0; i < 6; i++)
        if (r->ldt_pending & (1u << i))
            memcpy((void *)(r->comm + XRN_C_LDT + 16 * i), r->ldt[i], 16);
    put_fpu(r, fpu512);
    if (r->seq != r->woken)
        wake_trusted(r); /* requests since it was last woken */
    C32(r, XRN_C_KICK) = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (atomic_load(kick)) {
        d->aborted = 1;
        d->sig = SIGUSR2;
        return 0;
    }
    r->runs++;
    if (r->parked) {
        __atomic_store_n((volatile uint32_t *)(r->comm + XRN_C_PARK_WORD), 1, __ATOMIC_SEQ_CST);
        set_state(r, XRN_ST_RESUME);
        syscall(SYS_futex, r->comm + XRN_C_PARK_WORD, FUTEX_WAKE, 1, NULL, NULL, 0);
    } else {
        set_state(r, XRN_ST_RESUME);
    }
    r->parked = r->fresh = false;
    volatile uint32_t *st = (volatile uint32_t *)(r->comm + XRN_C_STATE);
    bool kicked = false;
    struct kick_clock kclock = { 0, 0 };
    /* Spinning helps only while the guest thread runs on another CPU. */
    unsigned budget = C32(r, XRN_C_CHILD_CPU) == C32(r, XRN_C_SUP_CPU) ? 0 : XBT_SPIN;
    for (unsigned spin = 0;; spin++) {
        if (__atomic_load_n(st, __ATOMIC_ACQUIRE) == XRN_ST_EXITED)
            break;
        if (!kicked && atomic_load_explicit(kick, memory_order_relaxed)) {
            kicked = true; /* a kick that raced with the start of this run */
            xbt_runner_kick(r);
        }
        if (spin < budget) {
            __builtin_ia32_pause();
            continue;
        }
        __atomic_store_n((volatile uint32_t *)(r->comm + XRN_C_SUP_SLEEP), 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(st, __ATOMIC_ACQUIRE) != XRN_ST_EXITED)
            syscall(SYS_futex, st, FUTEX_WAIT, XRN_ST_RESUME,
                    &(struct timespec){ 0, 10000000 }, NULL, 0);
        C32(r, XRN_C_SUP_SLEEP) = 0;
        if (__atomic_load_n(st, __ATOMIC_ACQUIRE) == XRN_ST_EXITED)
            break;
        if (child_gone(r)) {
            report_stuck(r, "it died while running");
            r->kills += !r->lost; /* a runner lost to a SIGKILL is not the guest's */
            xbt_runner_kill(r);
            return -1;
        }
        if (kicked) {
            if (kicks_ignored(r, &kclock)) {
                r->kills += !r->lost; /* a runner lost to a SIGKILL is not the guest's */
                xbt_runner_kill(r);
                return -1;
            }
            xbt_runner_kick(r);
        }
    }
    C32(r, XRN_C_LDT_MASK) = 0;
    take_exit(r, d, fpu512_out);
    if (d->aborted == 3) {
        /* Entry `trapno` was refused; it and the ones after it were not written. */
        uint32_t unwritten = r->ldt_pending & ~((1u << (d->trapno & 7)) - 1);
        r->ldt_valid &= (uint8_t)~unwritten;
    }
    r->ldt_pending = 0;
    return 0;
}

/* "202 0x<a0> 0x<a1> 0x<a2> 0x<a3> 0x<a4> 0x<a5> 0x<sp> 0x<pc>": the guest thread is
   blocked in FUTEX_WAIT without timeout either at the parking instruction (the park
   word, 0) or at the sleeping one (the state word, the state it still has).  From
   either, nothing but the command loop from its start runs when it wakes. */
static bool seen_quiet(struct xbt_runner *r)
{
    char buf[200];
    ssize_t n = pread(r->sysfd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return false;
    buf[n] = 0;
    unsigned long long v[8];
    long nr;
    if (sscanf(buf, "%ld %llx %llx %llx %llx %llx %llx %llx %llx", &nr, &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7]) != 9 || nr != SYS_futex ||
        v[1] != FUTEX_WAIT || v[3] != 0)
        return false;
    if (v[0] == XRN_COMM_ADDR + XRN_C_PARK_WORD && v[7] == r->park_pc)
        return v[2] == 0 && C32(r, XRN_C_PARK_WORD) == 0;
    if (v[0] == XRN_COMM_ADDR + XRN_C_STATE && v[7] == r->sleep_pc)
        return (v[2] == XRN_ST_EXITED || v[2] == XRN_ST_READY) && C32(r, XRN_C_STATE) == v[2];
    return false;
}

bool xbt_runner_park(struct xbt_runner *r)
{
    if (!xbt_runner_alive(r) || r->parked || r->fresh)
        return true;
    r->parks++;
    uint64_t t0 = xbt_now_ns();
    if (C32(r, XRN_C_CHILD_SLEEP) && seen_quiet(r)) {
        r->parked = true; /* already asleep waiting for a command */
        r->park_ns += xbt_now_ns() - t0;
        return true;
    }
    C32(r, XRN_C_PARK_WORD) = 0;
    set_state(r, XRN_ST_PARK);
    uint64_t deadline = 0;
    for (unsigned tries = 0;; tries++) {
        if (seen_quiet(r)) {
            r->parked = true;
            r->park_ns += xbt_now_ns() - t0;
            return true;
        }
        if (tries < 8) {
            for (int i = 0; i < 500; i++)
                __builtin_ia32_pause();
            continue;
        }
        if (given_up(r, &deadline, 2000000000ull))
            return true;
        if (C32(r, XRN_C_CHILD_SLEEP))
            syscall(SYS_futex, r->comm + XRN_C_STATE, FUTEX_WAKE, 1, NULL, NULL, 0);
        sched_yield();
    }
}
