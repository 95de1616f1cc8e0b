/*
 * runner_asm.S - the parts of the runner program that must control registers exactly:
 * the entry point, the restart of the guest thread's command loop on its own stack, the
 * parking system call, the entry into guest code, the signal restorer, and the trusted
 * thread, which runs from read-only code with all of its state in registers.
 *
 * See runner_abi.h for the layout and runner.c for the rest of the program.
 */
#include "arch.h"
#include "runtime/runner_abi.h"

        .intel_syntax noprefix
        .text

        .globl  _start
_start:
        xor     ebp, ebp
        and     rsp, -16
        call    xrn_main
        mov     eax, 231                        /* exit_group: xrn_main never returns */
        mov     edi, 97
        syscall
        hlt

/* long xrn_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5) */
        .globl  xrn_syscall6
xrn_syscall6:
        mov     rax, rdi
        mov     rdi, rsi
        mov     rsi, rdx
        mov     rdx, rcx
        mov     r10, r8
        mov     r8, r9
        mov     r9, [rsp + 8]
        syscall
        ret

/* The signal restorer (SA_RESTORER): a kick that found the guest thread in its own
   code returns through here. */
        .globl  xrn_restorer
xrn_restorer:
        mov     eax, 15                         /* rt_sigreturn */
        syscall
        hlt

/* The guest thread's command loop, always from the top of its stub stack, with no
   state but the comm page and constants: a handler that reported an exit and a thread
   woken from parking both come here, so nothing a guest could have left in memory or
   registers steers what follows. */
        .globl  xrn_restart
xrn_restart:
        mov     rsp, XRN_STACK_ADDR + XRN_STACK_SIZE
        cld
        push    XBT_EFLAGS_IF | XBT_EFLAGS_FIXED /* AC, NT, TF, DF and the rest clear */
        popfq
        xor     ebp, ebp
        call    xrn_cmd_loop
        hlt

/* Parking: block in FUTEX_WAIT(park word, 0, no timeout) at xrn_park_syscall.  The
   supervisor checks /proc/PID/task/TID/syscall for exactly this call (number, the
   four arguments and the instruction after it) before it trusts that the thread runs
   no guest code; whatever wakes it continues at xrn_restart. */
        .globl  xrn_park, xrn_park_syscall
xrn_park:
        mov     eax, 202                        /* futex */
        mov     rdi, XRN_COMM_ADDR + XRN_C_PARK_WORD
        xor     esi, esi                        /* FUTEX_WAIT, shared */
        xor     edx, edx                        /* while the word is 0 */
        xor     r10d, r10d                      /* no timeout */
        xor     r8d, r8d
        xor     r9d, r9d
xrn_park_syscall:
        syscall
        jmp     xrn_restart

/* Sleeping until the command changes: FUTEX_WAIT(state, the value seen, no timeout) at
   xrn_sleep_syscall, then the command loop from the top.  Like parking, a thread seen
   blocked here (with these arguments) runs no guest code until the state changes. */
        .globl  xrn_sleep, xrn_sleep_syscall
xrn_sleep:                                      /* edi = the state value seen */
        mov     edx, edi
        mov     eax, 202
        mov     rdi, XRN_COMM_ADDR + XRN_C_STATE
        xor     esi, esi
        xor     r10d, r10d
        xor     r8d, r8d
        xor     r9d, r9d
xrn_sleep_syscall:
        syscall
        jmp     xrn_restart

/* Enters guest code from the comm page's command: x87/SSE from its XSAVE image (every
   other component, AVX included, to its initial state), then an IRETQ frame, then in
   the critical section the kick check, the data segments and the registers.  A signal
   in the critical section aborts the entry (the handler sees the address). */
        .globl  xrn_enter_guest, xrn_crit_begin, xrn_crit_end
xrn_enter_guest:
        mov     rbx, XRN_COMM_ADDR
        mov     eax, [rbx + XRN_C_XCR0]
        mov     edx, [rbx + XRN_C_XCR0 + 4]
        xrstor64 [rbx + XRN_C_FPU_IN]
        movzx   eax, word ptr [rbx + XRN_C_SEL + 4]     /* SS */
        push    rax
        mov     eax, [rbx + XRN_C_GPR + 16]             /* ESP */
        push    rax
        mov     eax, [rbx + XRN_C_EFLAGS]
        push    rax
        movzx   eax, word ptr [rbx + XRN_C_SEL + 2]     /* CS */
        push    rax
        mov     eax, [rbx + XRN_C_EIP]
        push    rax
xrn_crit_begin:
        cmp     dword ptr [rbx + XRN_C_KICK], 0
        jne     1f
        mov     ax, [rbx + XRN_C_SEL + 6]
        mov     ds, ax
        mov     ax, [rbx + XRN_C_SEL + 0]
        mov     es, ax
        mov     ax, [rbx + XRN_C_SEL + 8]
        mov     fs, ax
        mov     ax, [rbx + XRN_C_SEL + 10]
        mov     gs, ax
        mov     eax, [rbx + XRN_C_GPR + 0]
        mov     ecx, [rbx + XRN_C_GPR + 4]
        mov     edx, [rbx + XRN_C_GPR + 8]
        mov     ebp, [rbx + XRN_C_GPR + 20]
        mov     esi, [rbx + XRN_C_GPR + 24]
        mov     edi, [rbx + XRN_C_GPR + 28]
        xor     r8d, r8d
        xor     r9d, r9d
        xor     r10d, r10d
        xor     r11d, r11d
        xor     r12d, r12d
        xor     r13d, r13d
        xor     r14d, r14d
        xor     r15d, r15d
        mov     ebx, [rbx + XRN_C_GPR + 12]
        iretq
xrn_crit_end:
1:      mov     rsp, XRN_STACK_ADDR + XRN_STACK_SIZE
        call    xrn_report_kicked                       /* never returns */
        hlt

/* long xrn_clone_trusted(const struct sock_fprog *prog): a new thread of this process
   on the trusted stack, entering xrn_trusted_entry with the filter program in rdi.
   Returns its tid or -errno in the calling thread. */
        .globl  xrn_clone_trusted
xrn_clone_trusted:
        push    r15
        mov     r15, rdi
        mov     eax, 56                         /* clone */
        mov     edi, 0x50f00                    /* VM FS FILES SIGHAND THREAD SYSVSEM */
        mov     rsi, XRN_TSTACK_ADDR + XRN_TSTACK_SIZE
        xor     edx, edx
        xor     r10d, r10d
        xor     r8d, r8d
        syscall
        test    rax, rax
        jz      1f
        pop     r15
        ret
1:      mov     rdi, r15
        jmp     xrn_trusted_entry

/*
 * The trusted thread.  Started by clone() on a small stack it never uses again; from
 * its first instruction on, it reads only read-only memory (its code, the ring) and
 * keeps its state in registers:
 *   rbx ring, rbp comm, r12 requests done, r13 requests confirmed on the eventfd.
 * It blocks every signal, installs its own seccomp filter (the program's address in
 * rdi at the clone, set by the main thread before any guest code exists), then serves
 * the ring: maps and unmaps of guest RAM in the D-window, and writes the number done
 * to the eventfd from the ring's read-only table of small numbers.
 */
        .globl  xrn_trusted_entry
xrn_trusted_entry:                      /* rdi = struct sock_fprog * (main's stack) */
        mov     r15, rdi
        mov     eax, 14                         /* rt_sigprocmask(SIG_SETMASK, all) */
        mov     edi, 2
        lea     rsi, [rip + xrn_all_signals]
        xor     edx, edx
        mov     r10d, 8
        syscall
        test    rax, rax
        jnz     9f
        mov     eax, 186                        /* gettid */
        syscall
        mov     rbp, XRN_COMM_ADDR
        mov     [rbp + XRN_C_TRUSTED_TID], eax
        mov     eax, 317                        /* seccomp(SET_MODE_FILTER, 0, prog) */
        mov     edi, 1
        xor     esi, esi
        mov     rdx, r15
        syscall
        test    rax, rax
        jnz     9f
        mov     rbx, XRN_RING_ADDR
        xor     r12d, r12d
        xor     r13d, r13d
        xor     r15d, r15d
        mov     dword ptr [rbp + XRN_C_TRUSTED_READY], 1
2:      mov     rax, [rbx + XRN_R_HEAD]
        cmp     rax, r12
        jne     4f
        cmp     r13, r12
        jne     3f
        mov     eax, 202                        /* futex(head, WAIT, done) */
        lea     rdi, [rbx + XRN_R_HEAD]
        xor     esi, esi
        mov     edx, r12d
        xor     r10d, r10d
        syscall
        jmp     2b
3:      mov     rdx, r12                        /* confirm r12 - r13 requests */
        sub     rdx, r13
        cmp     rdx, 64
        jbe     1f
        mov     edx, 64
1:      add     r13, rdx
        lea     rsi, [rbx + XRN_R_ONES + rdx * 8 - 8]
        mov     eax, 1                          /* write(DONE, &ones[n - 1], 8) */
        mov     edi, XRN_FD_DONE
        mov     edx, 8
        syscall
        cmp     rax, 8
        jne     9f
        jmp     2b
4:      lea     r14, [r12 + 1]                  /* request r14 */
        mov     eax, r14d
        and     eax, XRN_RING_N - 1
        shl     eax, 5
        lea     r15, [rbx + XRN_R_ENTRIES + rax]
        mov     rax, [r15 + XRN_E_TAG]
        cmp     rax, r14
        jne     5f                              /* not complete yet */
        mov     ecx, [r15 + XRN_E_OP]
        mov     edx, [r15 + XRN_E_PROT]
        mov     edi, [r15 + XRN_E_LIN]
        mov     esi, [r15 + XRN_E_LEN]
        mov     r9, [r15 + XRN_E_GPA]
        mov     rax, [r15 + XRN_E_TAG]          /* the same request still */
        cmp     rax, r14
        jne     5f
        mov     r8d, ecx                        /* the slot: bits 8-15 */
        shr     r8d, 8
        movzx   ecx, cl
        cmp     ecx, XRN_OP_MAP
        je      6f
        cmp     ecx, XRN_OP_UNMAP
        jne     9f
        xor     edx, edx                        /* PROT_NONE, keeps the reservation */
        mov     r10d, 0x4032                    /* PRIVATE|ANONYMOUS|FIXED|NORESERVE */
        mov     r8, -1
        xor     r9d, r9d
        jmp     7f
6:      mov     r10d, 0x11                      /* SHARED|FIXED */
        add     r8d, XRN_FD_SLOT0               /* its file (the filter checks it) */
7:      mov     eax, 9                          /* mmap */
        syscall
        cmp     rax, rdi
        jne     9f
        mov     r12, r14
        mov     [rbp + XRN_C_DONE_HINT], r12
        jmp     2b
5:      pause
        jmp     2b
9:      mov     eax, 231                        /* exit_group: the runner is unusable */
        mov     edi, 99
        syscall
        hlt

        .section .rodata
        .balign 8
xrn_all_signals:
        .quad   -1

        .section .note.GNU-stack,"",@progbits
