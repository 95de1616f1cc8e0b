/*
 * direct.h - one direct run of guest user code: what goes in and what the exit brings
 * back (direct.c, runner.c).
 */
#ifndef XBT_RUNTIME_DIRECT_H
#define XBT_RUNTIME_DIRECT_H

#include <stdint.h>

struct xbt_direct {
    uint32_t gpr[8];       /* guest registers in and out */
    uint32_t eip, eflags;
    uint16_t sel[6];       /* es cs ss ds fs gs: the host selectors loaded at entry */
    /* The exit, as the runner's signal handler saw it. */
    int sig, code, trapno;
    uint32_t err;
    uint64_t cr2, addr;
    int sysno;
    unsigned arch;
    uint64_t rip;          /* full host RIP (above 4 GiB: not in the guest) */
    uint16_t uc_cs, uc_ss; /* from the ucontext */
    uint16_t hsel[4];      /* ds es fs gs as found */
    int aborted;           /* 1: a kick before the guest ran; 2: the entry faulted;
                              3: the host refused an LDT descriptor */
};

#endif
