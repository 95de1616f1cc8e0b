/*
 * runner_abi.h - the contract between the VMM (the supervisor, runner.c) and the runner
 * process that executes guest user code directly (src/runtime/runner/).
 *
 * WARNING: both sides and the runner's assembly rely on these addresses and offsets;
 * each offset has a static assert in runner.c and in the runner program.
 *
 * The runner is a separate host process per guest address space (window set).  Its
 * address space holds the guest's user pages of that address space at their own
 * linear addresses (the D-window, [mmap_min_addr, 4 GiB)), the runner's code, and the
 * pages below; nothing of the VMM.  Two threads:
 *  - the guest thread runs guest code in 32-bit compatibility mode; its seccomp filter
 *    allows no system call that reaches anything outside the process (futex,
 *    rt_sigreturn, modify_ldt, sched_yield, exit); every exit is a signal whose handler
 *    reports through the comm page and waits for the next command;
 *  - the trusted thread changes the D-window (mmap/munmap of guest memory slots) on requests it
 *    reads from the ring, a page the runner maps read-only: it runs from read-only code
 *    with its state in registers only, so guest code that reached 64-bit mode cannot
 *    steer it; it confirms through an eventfd the guest thread may not write.
 * The supervisor trusts nothing the comm page says except as guest state, and knows a
 * guest thread is quiet only when it has seen it blocked at the parking system call
 * (/proc/PID/task/TID/syscall) with the parking arguments.
 */
#ifndef XBT_RUNTIME_RUNNER_ABI_H
#define XBT_RUNTIME_RUNNER_ABI_H

/* Fixed addresses in the runner (above 4 GiB, far from what the kernel places). */
/* Fixed addresses in the runner (above 4 GiB, far from what the kernel places).  C gets
   them with a suffix, the assembler as plain numbers (clang's refuses suffixes). */
#ifdef __ASSEMBLER__
#define XRN_U64(x) x
#else
#define XRN_U64(x) x##ull
#endif
#define XRN_TEXT_ADDR    XRN_U64(0x10000000000)  /* the program (linked there) */
#define XRN_COMM_ADDR    XRN_U64(0x100000000000) /* comm page(s), read-write, shared */
#define XRN_COMM_SIZE    0x4000
#define XRN_RING_ADDR    XRN_U64(0x100000100000) /* request ring, read-only in the runner */
#define XRN_RING_SIZE    0x10000
#define XRN_ALT_ADDR     XRN_U64(0x100000200000) /* the guest thread's signal stack */
#define XRN_ALT_SIZE     0x10000
#define XRN_STACK_ADDR   XRN_U64(0x100000300000) /* the guest thread's stub stack */
#define XRN_STACK_SIZE   0x4000
#define XRN_TSTACK_ADDR  XRN_U64(0x100000400000) /* the trusted thread's (only at its start) */
#define XRN_TSTACK_SIZE  0x1000

/* File descriptors the runner is started with. */
#define XRN_FD_SLOT0 7 /* guest memory slot k's file is fd XRN_FD_SLOT0 + k */
#define XRN_SLOTS    32 /* XBT_MAX_MEM_SLOTS */
#define XRN_FD_COMM  4 /* the comm pages (closed once mapped) */
#define XRN_FD_RING  5 /* the ring (closed once mapped read-only) */
#define XRN_FD_DONE  6 /* eventfd: the trusted thread adds the number of requests done */

/* comm.state */
#define XRN_ST_BOOT    0 /* starting */
#define XRN_ST_READY   1 /* the guest thread waits for a command */
#define XRN_ST_RESUME  2 /* supervisor: run the guest (the command fields are set) */
#define XRN_ST_EXITED  3 /* runner: an exit is reported */
#define XRN_ST_PARK    4 /* supervisor: block at the parking system call */
#define XRN_ST_QUIT    5 /* supervisor: exit */

/* comm offsets (struct xrn_comm in runner.c and the runner program). */
#define XRN_C_STATE         0
#define XRN_C_CHILD_SLEEP   4
#define XRN_C_SUP_SLEEP     8
#define XRN_C_KICK          12
#define XRN_C_PARK_WORD     16
#define XRN_C_PARKED        20
#define XRN_C_GUEST_TID     24
#define XRN_C_TRUSTED_TID   28
#define XRN_C_TRUSTED_READY 32
#define XRN_C_FATAL         36
#define XRN_C_XCR0          40
#define XRN_C_PARK_PC       48   /* the instruction after the parking syscall */
#define XRN_C_SPIN          56   /* PAUSEs the guest thread spins before it sleeps */
#define XRN_C_SLEEP_PC      60   /* u32 low half: the instruction after the sleep syscall */
#define XRN_C_DONE_HINT     64   /* u64: the trusted thread's progress (a hint) */
#define XRN_C_CHILD_CPU     72   /* the CPU the guest thread last ran on (a hint) */
#define XRN_C_SUP_CPU       76   /* the CPU the supervisor waits on (a hint) */
#define XRN_C_GPR           128  /* resume: eax ecx edx ebx esp ebp esi edi */
#define XRN_C_EIP           160
#define XRN_C_EFLAGS        164
#define XRN_C_SEL           168  /* es cs ss ds fs gs: host selectors to load */
#define XRN_C_LDT_MASK      180
#define XRN_C_WAIT_SEQ      184  /* ring requests that must be done before entry */
#define XRN_C_LDT           192  /* 6 x struct user_desc (16 bytes) */
#define XRN_C_X             320  /* the exit report (struct xrn_exit) */
#define XRN_C_FPU_IN        1024 /* XSAVE image to load (64-byte aligned) */
#define XRN_C_FPU_IN_SIZE   4096
#define XRN_C_FPU_OUT       8192 /* the guest's x87/SSE state at the exit (FXSAVE64) */

/* struct xrn_exit, at XRN_C_X */
#define XRN_X_SIG      0
#define XRN_X_CODE     4
#define XRN_X_TRAPNO   8
#define XRN_X_ERR      12
#define XRN_X_CR2      16
#define XRN_X_ADDR     24
#define XRN_X_RIP      32
#define XRN_X_SYSNO    40
#define XRN_X_ARCH     44
#define XRN_X_CS       48
#define XRN_X_SS       50
#define XRN_X_HSEL     52  /* ds es fs gs as found */
#define XRN_X_EFLAGS   60
#define XRN_X_GPR      64
#define XRN_X_ABORTED  96  /* 1: a kick before the guest ran; 2: the entry faulted;
                              3: modify_ldt refused a descriptor (errno in ERR) */
#define XRN_X_COUNT    100

/* The ring: a header page, then entries.  Entry k (seq k, from 1) is at
   (k % XRN_RING_N); the supervisor writes an entry's fields, then its tag (= k), then
   the head; the trusted thread reads tag, fields, tag again. */
#define XRN_R_HEAD     0    /* u64: last published seq (futex word: its low half) */
#define XRN_R_ONES     64   /* u64[64]: 1..64, the values written to the eventfd */
#define XRN_R_MINADDR  640  /* u64: the D-window's bottom */
#define XRN_R_SLOTLO   648  /* u64[XRN_SLOTS]: slot k's file may be mapped from offset */
#define XRN_R_SLOTHI   904  /* u64[XRN_SLOTS]: ... up to this one (0: no file; < 4 GiB) */
#define XRN_R_ENTRIES  4096
#define XRN_RING_N     1024
#define XRN_E_SIZE     32
#define XRN_E_TAG      0    /* u64 */
#define XRN_E_OP       8    /* u32 */
#define XRN_E_PROT     12   /* u32 */
#define XRN_E_LIN      16   /* u32 */
#define XRN_E_LEN      20   /* u32 */
#define XRN_E_GPA      24   /* u64 */

#define XRN_OP_MAP     1    /* mmap(lin, len, prot, MAP_SHARED|MAP_FIXED, slot's fd, gpa);
                               the op field's bits 8-15 hold the slot, GPA the offset
                               in its file */
#define XRN_OP_UNMAP   2    /* mmap(lin, len, PROT_NONE, private anonymous fixed) */

/* Each comm field ends where the next begins or before (offset + size <= next):
   the layout is shared by three programs and a 64-bit field overlapped by a 32-bit one
   fails silently, only when the hint's other half is written. */
#if !defined(__ASSEMBLER__)
#define XRN_FITS(a, size, b) _Static_assert((a) + (size) <= (b), #a " overlaps " #b)
XRN_FITS(XRN_C_STATE, 4, XRN_C_CHILD_SLEEP);
XRN_FITS(XRN_C_CHILD_SLEEP, 4, XRN_C_SUP_SLEEP);
XRN_FITS(XRN_C_SUP_SLEEP, 4, XRN_C_KICK);
XRN_FITS(XRN_C_KICK, 4, XRN_C_PARK_WORD);
XRN_FITS(XRN_C_PARK_WORD, 4, XRN_C_PARKED);
XRN_FITS(XRN_C_PARKED, 4, XRN_C_GUEST_TID);
XRN_FITS(XRN_C_GUEST_TID, 4, XRN_C_TRUSTED_TID);
XRN_FITS(XRN_C_TRUSTED_TID, 4, XRN_C_TRUSTED_READY);
XRN_FITS(XRN_C_TRUSTED_READY, 4, XRN_C_FATAL);
XRN_FITS(XRN_C_FATAL, 4, XRN_C_XCR0);
XRN_FITS(XRN_C_XCR0, 8, XRN_C_PARK_PC);
XRN_FITS(XRN_C_PARK_PC, 8, XRN_C_SPIN);
XRN_FITS(XRN_C_SPIN, 4, XRN_C_SLEEP_PC);
XRN_FITS(XRN_C_SLEEP_PC, 4, XRN_C_DONE_HINT);
XRN_FITS(XRN_C_DONE_HINT, 8, XRN_C_CHILD_CPU);
XRN_FITS(XRN_C_CHILD_CPU, 4, XRN_C_SUP_CPU);
XRN_FITS(XRN_C_SUP_CPU, 4, XRN_C_GPR);
XRN_FITS(XRN_C_GPR, 32, XRN_C_EIP);
XRN_FITS(XRN_C_EIP, 4, XRN_C_EFLAGS);
XRN_FITS(XRN_C_EFLAGS, 4, XRN_C_SEL);
XRN_FITS(XRN_C_SEL, 12, XRN_C_LDT_MASK);
XRN_FITS(XRN_C_LDT_MASK, 4, XRN_C_WAIT_SEQ);
XRN_FITS(XRN_C_WAIT_SEQ, 8, XRN_C_LDT);
XRN_FITS(XRN_C_LDT, 6 * 16, XRN_C_X);
XRN_FITS(XRN_C_X, XRN_X_COUNT + 4, XRN_C_FPU_IN);
XRN_FITS(XRN_C_FPU_IN, XRN_C_FPU_IN_SIZE, XRN_C_FPU_OUT);
XRN_FITS(XRN_C_FPU_OUT, 512, XRN_COMM_SIZE);
XRN_FITS(XRN_R_HEAD, 8, XRN_R_ONES);
XRN_FITS(XRN_R_ONES, 64 * 8, XRN_R_MINADDR);
XRN_FITS(XRN_R_MINADDR, 8, XRN_R_SLOTLO);
XRN_FITS(XRN_R_SLOTLO, 8 * XRN_SLOTS, XRN_R_SLOTHI);
XRN_FITS(XRN_R_SLOTHI, 8 * XRN_SLOTS, XRN_R_ENTRIES);
#undef XRN_FITS
#endif

#endif
