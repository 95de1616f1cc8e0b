/*
 * direct.h - direct execution of guest user code (CPL 3): the layout shared by
 * direct.c and direct_stubs.S.
 *
 * The guest's user code runs unmodified in 32-bit compatibility mode at its own
 * addresses (the D-window: host [mmap_min_addr, 4 GiB) mirrors the guest's user pages).
 * It is entered with IRETQ and comes back only through host signals, whose handlers
 * rewrite the ucontext so that rt_sigreturn lands in xbt_direct_resume on the VMM stack.
 */
#ifndef XBT_RUNTIME_DIRECT_H
#define XBT_RUNTIME_DIRECT_H

/* struct xbt_direct (below) */
#define XBT_D_HOST_RSP 0
#define XBT_D_CTX      8
#define XBT_D_KICK     16
#define XBT_D_GPR      24
#define XBT_D_EIP      56
#define XBT_D_EFLAGS   60
#define XBT_D_SEL      64 /* es cs ss ds fs gs: the host selectors loaded at entry */
#define XBT_D_AVX      80 /* XSAVE area for the AVX upper halves (0: the host has none) */

/* The header at the lowest address of each vCPU thread's alternate signal stack: what
   the signal entry stubs need before any C code may run (C code uses FS for TLS and
   the stack-protector canary). */
#define XBT_ALTSTACK_SIZE  (128 * 1024) /* power of two; the stack is aligned to it */
#define XBT_ALT_MAGIC_OFF  0
#define XBT_ALT_FSBASE     8
#define XBT_ALT_GSBASE     16
#define XBT_ALT_SEL        24 /* ds es fs gs found on entry (16 bits each) */
#define XBT_ALT_FSGSBASE   32 /* 1: WRFSBASE/WRGSBASE usable */
#define XBT_ALT_MAGIC      0x7862742d616c7473 /* "stla-tbx" */

/* Offsets in glibc's x86-64 ucontext_t (checked in direct.c). */
#define XBT_UC_RIP    168
#define XBT_UC_CSGSFS 184

#ifndef __ASSEMBLER__
#include <stdint.h>

struct xbt_direct {
    uint64_t host_rsp;     /* VMM stack at entry (the resume point restores it) */
    uint64_t ctx;          /* struct xbt_jit_ctx *: R13 at the resume point */
    uint64_t kick;         /* atomic_bool *: checked last before IRETQ */
    uint32_t gpr[8];       /* guest registers in and out */
    uint32_t eip, eflags;
    uint16_t sel[6];
    uint16_t pad[2];
    uint64_t avx;          /* 64-byte aligned XSAVE area (AVX component) or 0 */
    /* Filled by the signal handler at the exit. */
    int sig, code, trapno;
    uint32_t err;
    uint64_t cr2, addr;
    int sysno;
    unsigned arch;
    uint64_t rip;          /* full host RIP (above 4 GiB: not in the guest) */
    uint16_t uc_cs, uc_ss; /* from the ucontext */
    uint16_t hsel[4];      /* ds es fs gs as found by the signal entry stub */
    int aborted;           /* the signal came before the guest ran (kick in the stub) */
};

/* Assembly (direct_stubs.S). */
int xbt_direct_enter(struct xbt_direct *d); /* 1: a kick was pending, not entered */
void xbt_direct_resume(void);
void xbt_sig_entry_fault(int, void *, void *);
void xbt_sig_entry_kick(int, void *, void *);
void xbt_sig_entry_sys(int, void *, void *);
extern const char xbt_direct_crit_begin[], xbt_direct_crit_end[];
#endif

#endif
