/*
 * direct_stubs.S - entering directly executed guest user code and coming back.
 *
 * xbt_direct_enter(d) loads the guest's x87/SSE state, segment selectors (host
 * selectors that mirror the guest's segments) and registers, and IRETQs to the guest
 * in 32-bit compatibility mode.  It never returns by itself: every way back is a host
 * signal whose handler (signals.c, direct.c) takes the guest state out of the ucontext
 * and points it at xbt_direct_resume with the VMM stack, so rt_sigreturn lands there
 * in 64-bit mode; the resume point saves the guest's x87/SSE state and returns 0 to the
 * caller of xbt_direct_enter.
 *
 * The signal entry stubs run before any C code: a signal that interrupted guest code
 * (CS is not the host's 64-bit selector) or the entry sequence (FS/GS may already hold
 * guest selectors) first gets the host's FS and GS back, from the header of the
 * thread's alternate signal stack (C code needs FS for TLS and the canary).
 */
#include "runtime/direct.h"
#include "translator/abi.h"

        .intel_syntax noprefix
        .text

        .globl  xbt_direct_enter
        .type   xbt_direct_enter, @function
xbt_direct_enter:                               /* rdi = struct xbt_direct * */
        push    rbp
        push    rbx
        push    r12
        push    r13
        push    r14
        push    r15
        /* The host's NT must be clear for IRETQ (64-bit mode: NT set is a #GP).  Guest
           code can set it with POPF, and a signal return keeps it: clear it here. */
        pushfq
        and     qword ptr [rsp], ~0x4000
        popfq
        mov     r13, [rdi + XBT_D_CTX]
        stmxcsr [r13 + XBT_CTX_HOST_MXCSR]
        fxrstor64 [r13 + XBT_CTX_FPU]           /* the guest's x87/SSE state */
        mov     rcx, [rdi + XBT_D_AVX]          /* and its AVX upper halves */
        test    rcx, rcx
        jz      1f
        mov     eax, 4
        xor     edx, edx
        xrstor64 [rcx]
1:
        mov     [rdi + XBT_D_HOST_RSP], rsp
        /* IRETQ frame: SS, ESP, EFLAGS, CS, EIP. */
        movzx   eax, word ptr [rdi + XBT_D_SEL + 4]
        push    rax
        mov     eax, [rdi + XBT_D_GPR + 16]
        push    rax
        mov     eax, [rdi + XBT_D_EFLAGS]
        push    rax
        movzx   eax, word ptr [rdi + XBT_D_SEL + 2]
        push    rax
        mov     eax, [rdi + XBT_D_EIP]
        push    rax
        .globl  xbt_direct_crit_begin
xbt_direct_crit_begin:
        /* From here to the IRETQ a signal aborts the entry (the handler sees RIP in
           this range, restores FS/GS and resumes without taking guest state). */
        mov     rax, [rdi + XBT_D_KICK]
        cmp     byte ptr [rax], 0
        jne     direct_kicked
        mov     ax, [rdi + XBT_D_SEL + 6]
        mov     ds, ax
        mov     ax, [rdi + XBT_D_SEL + 0]
        mov     es, ax
        mov     ax, [rdi + XBT_D_SEL + 8]
        mov     fs, ax
        mov     ax, [rdi + XBT_D_SEL + 10]
        mov     gs, ax
        mov     eax, [rdi + XBT_D_GPR + 0]
        mov     ecx, [rdi + XBT_D_GPR + 4]
        mov     edx, [rdi + XBT_D_GPR + 8]
        mov     ebx, [rdi + XBT_D_GPR + 12]
        mov     ebp, [rdi + XBT_D_GPR + 20]
        mov     esi, [rdi + XBT_D_GPR + 24]
        xor     r8d, r8d                        /* no host values in the upper registers */
        xor     r9d, r9d
        xor     r10d, r10d
        xor     r11d, r11d
        xor     r12d, r12d
        xor     r13d, r13d
        xor     r14d, r14d
        xor     r15d, r15d
        mov     edi, [rdi + XBT_D_GPR + 28]
        iretq
        .globl  xbt_direct_crit_end
xbt_direct_crit_end:
direct_kicked:                                  /* nothing loaded yet but x87/SSE */
        add     rsp, 40
        fxsave64 [r13 + XBT_CTX_FPU]
        fninit
        ldmxcsr [r13 + XBT_CTX_HOST_MXCSR]
        pop     r15
        pop     r14
        pop     r13
        pop     r12
        pop     rbx
        pop     rbp
        mov     eax, 1
        ret
        .size   xbt_direct_enter, . - xbt_direct_enter

/* Where rt_sigreturn lands after a direct exit: RSP = the host_rsp of the entry,
   R13 = the jit context, RBX = the AVX area.  The registers hold the guest's x87, SSE
   and AVX state (the signal frame saved and restored all of it); the VMM's C code may
   use the vector registers, so the upper halves are saved too. */
        .globl  xbt_direct_resume
        .type   xbt_direct_resume, @function
xbt_direct_resume:                              /* RBX: the AVX area or 0 (ucontext) */
        /* rt_sigreturn keeps the guest's NT flag (not among the flags a signal frame
           restores): the VMM must not run with it (a system call returning by IRETQ, or
           the next entry's IRETQ, would fault). */
        pushfq
        and     qword ptr [rsp], ~0x4000
        popfq
        fxsave64 [r13 + XBT_CTX_FPU]
        test    rbx, rbx
        jz      1f
        mov     eax, 4
        xor     edx, edx
        xsave64 [rbx]
1:
        fninit
        ldmxcsr [r13 + XBT_CTX_HOST_MXCSR]
        cld
        pop     r15
        pop     r14
        pop     r13
        pop     r12
        pop     rbx
        pop     rbp
        xor     eax, eax
        ret
        .size   xbt_direct_resume, . - xbt_direct_resume

sig_stubs_begin:
/* Host FS/GS back from the alternate stack's header; the selectors found go into the
   header.  Clobbers rax, rcx, r8-r11 only (rdi, rsi, rdx are the handler's arguments). */
        .type   fix_host_segments, @function
fix_host_segments:
        lea     rax, [rsp]
        and     rax, -XBT_ALTSTACK_SIZE
        mov     rcx, XBT_ALT_MAGIC
        cmp     [rax + XBT_ALT_MAGIC_OFF], rcx
        jne     9f                              /* not our stack: nothing known */
        mov     cx, ds
        mov     [rax + XBT_ALT_SEL + 0], cx
        mov     cx, es
        mov     [rax + XBT_ALT_SEL + 2], cx
        mov     cx, fs
        mov     [rax + XBT_ALT_SEL + 4], cx
        mov     cx, gs
        mov     [rax + XBT_ALT_SEL + 6], cx
        xor     ecx, ecx
        mov     ds, ecx
        mov     es, ecx
        mov     fs, ecx
        mov     gs, ecx
        cmp     byte ptr [rax + XBT_ALT_FSGSBASE], 0
        je      1f
        mov     rcx, [rax + XBT_ALT_FSBASE]
        wrfsbase rcx
        mov     rcx, [rax + XBT_ALT_GSBASE]
        wrgsbase rcx
9:      ret
1:      push    rdi
        push    rsi
        push    rdx
        push    rax
        mov     rsi, [rax + XBT_ALT_FSBASE]
        mov     edi, 0x1002                     /* ARCH_SET_FS */
        mov     eax, 158                        /* SYS_arch_prctl */
        syscall
        mov     rax, [rsp]
        mov     rsi, [rax + XBT_ALT_GSBASE]
        mov     edi, 0x1001                     /* ARCH_SET_GS */
        mov     eax, 158
        syscall
        pop     rax
        pop     rdx
        pop     rsi
        pop     rdi
        ret
        .size   fix_host_segments, . - fix_host_segments

/* The kernel delivers a signal with the interrupted code's EFLAGS.AC: a directly
   executed guest may have set it, and C code with AC set faults on every misaligned
   access (CR0.AM is on).  (CLAC is privileged.) */
.macro CLEAR_AC
        pushfq
        and     qword ptr [rsp], ~0x40000
        popfq
.endm

/* sa_sigaction entry: rdi = signal, rsi = siginfo, rdx = ucontext. */
.macro SIG_ENTRY name, target
        .globl  \name
        .type   \name, @function
\name:
        CLEAR_AC
        mov     rax, [rdx + XBT_UC_RIP]
        shr     rax, 32
        jz      2f                              /* below 4 GiB: guest code, any CS */
        movzx   eax, word ptr [rdx + XBT_UC_CSGSFS]
        cmp     eax, 0x33                       /* __USER_CS: host 64-bit code */
        jne     2f
        mov     rax, [rdx + XBT_UC_RIP]
        lea     rcx, [rip + xbt_direct_crit_begin]
        cmp     rax, rcx
        jb      1f
        lea     rcx, [rip + xbt_direct_crit_end]
        cmp     rax, rcx
        jb      2f
1:      jmp     \target@PLT
2:      call    fix_host_segments
        jmp     \target@PLT
        .size   \name, . - \name
.endm

        SIG_ENTRY xbt_sig_entry_fault, xbt_on_fault
        SIG_ENTRY xbt_sig_entry_sys, xbt_on_sys
sig_stubs_end:

/* A kick that lands inside one of the stubs above (the outer handler may not have put
   the host's FS back yet) is dropped: every way out of those handlers goes back to
   the run loop, which looks at interrupts and requests anyway. */
        .globl  xbt_sig_entry_kick
        .type   xbt_sig_entry_kick, @function
xbt_sig_entry_kick:
        CLEAR_AC
        mov     rax, [rdx + XBT_UC_RIP]
        lea     rcx, [rip + sig_stubs_begin]
        cmp     rax, rcx
        jb      3f
        lea     rcx, [rip + sig_stubs_end]
        cmp     rax, rcx
        jb      4f
3:      mov     rax, [rdx + XBT_UC_RIP]
        shr     rax, 32
        jz      2f
        movzx   eax, word ptr [rdx + XBT_UC_CSGSFS]
        cmp     eax, 0x33
        jne     2f
        mov     rax, [rdx + XBT_UC_RIP]
        lea     rcx, [rip + xbt_direct_crit_begin]
        cmp     rax, rcx
        jb      1f
        lea     rcx, [rip + xbt_direct_crit_end]
        cmp     rax, rcx
        jb      2f
1:      jmp     xbt_on_kick@PLT
2:      call    fix_host_segments
        jmp     xbt_on_kick@PLT
4:      ret
        .size   xbt_sig_entry_kick, . - xbt_sig_entry_kick

        .section .note.GNU-stack,"",@progbits
