/*
 * native_nano.c - the native counterparts of the benchmark guest, built as a 32-bit
 * Linux program (-m32) so the compute kernel is the same 32-bit machine code the guest
 * runs: "RESULT <name> <cycles>" for compute (per 1000 iterations), callret, CPUID, a host
 * system call (getppid through int 0x80), and a SIGSEGV round trip (the floor of a
 * trap-and-emulate event in a user-level VMM).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#include "guests/compute.h"

#define REPS 7

static uint32_t median(uint32_t *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            uint32_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static __attribute__((noinline)) uint32_t leaf(uint32_t x)
{
    __asm__ volatile("");
    return x + 1;
}

static sigjmp_buf jb;
static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(jb, 1);
}

#define MEASURE(name, iters, body)                                       \
    do {                                                                 \
        uint32_t s[REPS];                                                \
        for (int r = 0; r < REPS; r++) {                                 \
            uint64_t t0 = __rdtsc();                                     \
            for (uint32_t i = 0; i < (iters); i++) {                     \
                body;                                                    \
            }                                                            \
            s[r] = (uint32_t)((__rdtsc() - t0) / (iters));               \
        }                                                                \
        printf("RESULT %s %u\n", name, median(s, REPS));                 \
    } while (0)

static inline uint32_t cpuid0(void)
{
    uint32_t a = 0, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return a + b + c + d;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--probe"))
        return 0; /* bench/host.sh: this host runs 32-bit programs */
    volatile uint32_t sink = 0;
    uint32_t s[REPS];
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = __rdtsc();
        sink += compute_kernel(2000000);
        s[r] = (uint32_t)((__rdtsc() - t0) / 2000);
    }
    printf("RESULT compute %u\n", median(s, REPS));
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = __rdtsc();
        sink += branchy_kernel(200000);
        s[r] = (uint32_t)((__rdtsc() - t0) / 200);
    }
    printf("RESULT branchy %u\n", median(s, REPS));
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = __rdtsc();
        sink += calls_kernel(200000);
        s[r] = (uint32_t)((__rdtsc() - t0) / 200);
    }
    printf("RESULT calls %u\n", median(s, REPS));
    MEASURE("callret", 200000, sink = leaf(sink));
    MEASURE("cpuid", 20000, sink += cpuid0());
    MEASURE("syscall", 20000, {
        uint32_t ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(SYS_getppid) : "memory");
        sink += ret;
    });
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    for (int r = 0; r < REPS; r++) {
        volatile uint32_t i = 0;
        uint64_t t0 = __rdtsc();
        for (; i < 5000; i++)
            if (!sigsetjmp(jb, 0))
                *(volatile int *)0 = 1;
        s[r] = (uint32_t)((__rdtsc() - t0) / 5000);
    }
    printf("RESULT sigsegv %u\n", median(s, REPS));
    /* forkwait: a host process created, run to exit and waited for. */
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = __rdtsc();
        for (int i = 0; i < 200; i++) {
            pid_t p = fork();
            if (p == 0)
                _exit(0);
            waitpid(p, NULL, 0);
        }
        s[r] = (uint32_t)((__rdtsc() - t0) / 200);
    }
    printf("RESULT forkwait %u\n", median(s, REPS));
    return sink == 0xdeadbeef;
}
