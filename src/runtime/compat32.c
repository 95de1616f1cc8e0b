/*
 * compat32.c - the once-per-process probe behind compat32.h.
 *
 * A forked child does what a runner does first: it loads a 32-bit code segment of its
 * LDT (written with modify_ldt) as CS, far-returns from there to the host's own 32-bit
 * user selector 0x23, and from that to 64-bit code that exits with status 0.  A host
 * that cannot run compatibility mode kills the child with SIGSEGV (#GP on the first
 * far return: modify_ldt itself succeeds, so only running the code can tell).  A child
 * keeps any damage, and any handler the embedder installed, away from this process.
 */
#define _GNU_SOURCE
#include <asm/ldt.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/compat32.h"

#define PROBE_LDT_CS 0x07 /* LDT entry 0, RPL 3 */
#define HOST_CS32 0x23    /* Linux's __USER32_CS */
#define HOST_CS64 0x33    /* Linux's __USER_CS */

/* The child: never returns.  Only system calls from here on (a forked copy of a
   possibly multithreaded process). */
static void __attribute__((noreturn)) child(void)
{
    static const int sigs[] = { SIGSEGV, SIGILL, SIGBUS, SIGTRAP, SIGALRM };
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigset_t set;
    sigemptyset(&set);
    for (unsigned k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
        sigaction(sigs[k], &dfl, NULL);
        sigaddset(&set, sigs[k]);
    }
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    alarm(5); /* nothing here loops, but a probe must not hang its caller */
    uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
                      -1, 0);
    if (p == MAP_FAILED)
        _exit(2);
    uint32_t lo = (uint32_t)(uintptr_t)p;
    /* +0: 32-bit lret (to 0x23:+16); +16: 32-bit lret (to 0x33:+32);
       +32: 64-bit exit_group(0); the far-return frames at the page's end. */
    p[0] = 0xCB;
    p[16] = 0xCB;
    static const uint8_t exit0[] = { 0xB8, 231, 0, 0, 0, 0x31, 0xFF, 0x0F, 0x05, 0x0F, 0x0B };
    memcpy(p + 32, exit0, sizeof exit0);
    uint32_t *s = (uint32_t *)(p + 4096 - 64);
    uint64_t *s64 = (uint64_t *)s;
    s64[0] = lo;           /* lretq: RIP */
    s64[1] = PROBE_LDT_CS; /*        CS */
    s[4] = lo + 16;        /* first 32-bit lret: EIP, CS */
    s[5] = HOST_CS32;
    s[6] = lo + 32;        /* second: EIP, CS */
    s[7] = HOST_CS64;
    if (mprotect(p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        _exit(2);
    struct user_desc d;
    memset(&d, 0, sizeof d);
    d.entry_number = 0;
    d.limit = 0xfffff;
    d.seg_32bit = 1;
    d.contents = MODIFY_LDT_CONTENTS_CODE;
    d.limit_in_pages = 1;
    d.useable = 1;
    if (syscall(SYS_modify_ldt, 1, &d, sizeof d) != 0)
        _exit(3);
    __asm__ volatile("mov %0, %%rsp\n\tlretq" : : "r"(s64) : "memory");
    __builtin_unreachable();
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool runs;
static char why_buf[256];

static void probe(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why_buf, sizeof why_buf,
                 "cannot fork to probe whether the host runs 32-bit code: %s", strerror(errno));
        return;
    }
    if (pid == 0)
        child();
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0) {
        /* SIGCHLD ignored by the embedder: the child's status is gone.  Say yes, as
           before the probe existed; a runner that then fails says why itself. */
        runs = true;
        return;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        runs = true;
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
        snprintf(why_buf, sizeof why_buf,
                 "the host kernel refuses a 32-bit LDT code segment (modify_ldt)");
    } else if (WIFEXITED(st)) {
        snprintf(why_buf, sizeof why_buf,
                 "the probe for 32-bit code could not set up (exit status %d)", WEXITSTATUS(st));
    } else {
        snprintf(why_buf, sizeof why_buf,
                 "the host kernel does not run 32-bit code (ia32_emulation=0, or a "
                 "hypervisor below it that gives user space no compatibility mode): "
                 "a far transfer to a 32-bit code segment took signal %d",
                 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
}

bool xbt_host_runs_compat32(const char **why)
{
    pthread_once(&once, probe);
    if (why)
        *why = runs ? NULL : why_buf;
    return runs;
}
