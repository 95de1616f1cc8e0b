/*
 * jit_stubs.S - entering and leaving translated code (see translator/abi.h).
 *
 * xbt_jit_enter(ctx, code) loads the guest registers, flags and x87/SSE state from
 * ctx and jumps to code; it returns when translated code leaves through one of the
 * exit stubs, or when a callout handler asks to leave.  The guest's x87/SSE state
 * lives in the host registers only while translated code runs: every way out saves it
 * with fxsave64 and gives C code a clean x87 stack and the host's MXCSR.
 */
#include "translator/abi.h"

        .intel_syntax noprefix
        .text

/* Save guest GPRs (ESP from R12D) into ctx at r13; flags untouched. */
.macro SAVE_GPRS
        mov     [r13 + XBT_CTX_GPR + 0], eax
        mov     [r13 + XBT_CTX_GPR + 4], ecx
        mov     [r13 + XBT_CTX_GPR + 8], edx
        mov     [r13 + XBT_CTX_GPR + 12], ebx
        mov     [r13 + XBT_CTX_GPR + 16], r12d
        mov     [r13 + XBT_CTX_GPR + 20], ebp
        mov     [r13 + XBT_CTX_GPR + 24], esi
        mov     [r13 + XBT_CTX_GPR + 28], edi
.endm

/* Load guest GPRs from ctx at r13 (32-bit loads zero the upper halves), and R9 for
   user code reaching the U-window below the GS base (abi.h, XBT_UK_R9; harmless to
   any other code, for which R9 is a scratch). */
.macro LOAD_GPRS
        movabs  r9, XBT_UK_R9
        mov     eax, [r13 + XBT_CTX_GPR + 0]
        mov     ecx, [r13 + XBT_CTX_GPR + 4]
        mov     edx, [r13 + XBT_CTX_GPR + 8]
        mov     ebx, [r13 + XBT_CTX_GPR + 12]
        mov     r12d, [r13 + XBT_CTX_GPR + 16]
        mov     ebp, [r13 + XBT_CTX_GPR + 20]
        mov     esi, [r13 + XBT_CTX_GPR + 24]
        mov     edi, [r13 + XBT_CTX_GPR + 28]
.endm

/* Guest arithmetic flags into RFLAGS, then the GPRs.  Entered from C, so RFLAGS is
   XBT_HOST_FLAGS_FIXED with DF clear already: SAHF loads SF ZF AF PF CF from AH, an ADD
   of 0x7f to AL = OF (0 or 1) sets OF, STD sets DF.  A POPFQ did this for 8 more cycles
   (microcoded) on every entry and callout return: 10% of an IN exit (2026-12-02). */
.macro LOAD_FLAGS_GPRS
        mov     eax, [r13 + XBT_CTX_EFLAGS]
        test    eax, XBT_EFLAGS_DF
        jz      91f
        std
91:     mov     ecx, eax
        shr     ecx, 11                         /* OF */
        and     ecx, 1
        mov     ah, al
        mov     al, cl
        add     al, 0x7f                        /* OF = (AL == 1) */
        sahf
        LOAD_GPRS
.endm

/* At an exit: guest GPRs, flags and the next EIP (R14D) into ctx. */
.macro SAVE_EXIT_STATE
        SAVE_GPRS
        pushfq
        pop     r11
        mov     [r13 + XBT_CTX_EFLAGS], r11d
        mov     [r13 + XBT_CTX_EIP], r14d
.endm

/* On every way out to C: DF cleared, as the C ABI requires (the guest's DF lives in
   host RFLAGS and was saved with the flags); and if the guest's x87/SSE state is in the
   registers (lazy: loaded by the first x87/SSE block after an entry), it goes out to
   ctx->fpu and C gets a clean x87 stack and the host's MXCSR.  Flags are dead here. */
.macro SAVE_FPU
        cld
        cmp     dword ptr [r13 + XBT_CTX_FPU_LOADED], 0
        je      1f
        fxsave64 [r13 + XBT_CTX_FPU]
        fninit
        ldmxcsr [r13 + XBT_CTX_HOST_MXCSR]
        mov     dword ptr [r13 + XBT_CTX_FPU_LOADED], 0
        lea     r11, [rip + xbt_jit_fpu_load]
        mov     [r13 + XBT_CTX_FPU_ENTRY], r11
1:
.endm

        .globl  xbt_jit_enter
        .type   xbt_jit_enter, @function
xbt_jit_enter:
        push    rbp
        push    rbx
        push    r12
        push    r13
        push    r14
        push    r15
        sub     rsp, 8                          /* 16-byte aligned below here */
        mov     [rdi + XBT_CTX_HOST_RSP], rsp
        mov     r13, rdi
        mov     r14, rsi
        stmxcsr [r13 + XBT_CTX_HOST_MXCSR]
enter_resume:                                   /* x87/SSE state: loaded lazily */
        LOAD_FLAGS_GPRS
        jmp     r14
        .size   xbt_jit_enter, . - xbt_jit_enter

/* Common way back to xbt_jit_enter's caller; eax = return value. */
jit_leave:
        mov     rsp, [r13 + XBT_CTX_HOST_RSP]
        add     rsp, 8
        pop     r15
        pop     r14
        pop     r13
        pop     r12
        pop     rbx
        pop     rbp
        ret

        .globl  xbt_jit_exit_direct
        .type   xbt_jit_exit_direct, @function
xbt_jit_exit_direct:                            /* r14d = next EIP, r15 = rel32 site */
        SAVE_EXIT_STATE
        mov     [r13 + XBT_CTX_EXIT_SITE], r15
        SAVE_FPU
        mov     eax, XBT_JIT_EXIT_DIRECT
        jmp     jit_leave
        .size   xbt_jit_exit_direct, . - xbt_jit_exit_direct

        .globl  xbt_jit_exit_indirect
        .type   xbt_jit_exit_indirect, @function
xbt_jit_exit_indirect:                          /* r14d = next EIP */
        SAVE_EXIT_STATE
        mov     qword ptr [r13 + XBT_CTX_EXIT_SITE], 0
        SAVE_FPU
        mov     eax, XBT_JIT_EXIT_INDIRECT
        jmp     jit_leave
        .size   xbt_jit_exit_indirect, . - xbt_jit_exit_indirect

/* ctx->exit_indirect: the inline lookup missed (r14d = target; r10, r11 and r15 are
   free, rcx is the guest's).  The victim entry of the target (abi.h) is probed, without
   touching the flags; a hit goes on in translated code, a miss leaves. */
        .globl  xbt_jit_ibl_victim
        .type   xbt_jit_ibl_victim, @function
xbt_jit_ibl_victim:
        mov     r11d, r14d
        bswap   r11d
        lea     r11d, [r11 + r14]
        movzx   r11d, r11w
        mov     r15, [r13 + XBT_CTX_IBL_TABLE]
        lea     r11, [r11 + r11]
        lea     r15, [r15 + r11 * 8 + XBT_IBL_ENTRIES * 16]
        mov     r11, [r15]
        not     r11
        lea     r11, [r11 + r14 + 1]            /* target - tag */
        mov     r10, rcx
        mov     rcx, r11
        .globl  xbt_jit_ibl_victim_rcx          /* from here RCX is R10 (signals.c) */
xbt_jit_ibl_victim_rcx:
        jrcxz   1f
        mov     rcx, r10
        jmp     xbt_jit_exit_indirect
1:      mov     rcx, r10
        .globl  xbt_jit_ibl_victim_jmp          /* ... to here */
xbt_jit_ibl_victim_jmp:
        jmp     qword ptr [r15 + 8]
        .globl  xbt_jit_ibl_victim_end
xbt_jit_ibl_victim_end:
        .size   xbt_jit_ibl_victim, . - xbt_jit_ibl_victim

        .globl  xbt_jit_callout
        .type   xbt_jit_callout, @function
xbt_jit_callout:                                /* r11 = site, r15d = EA; [rsp] = ret */
        SAVE_GPRS
        pushfq
        pop     r14
        mov     [r13 + XBT_CTX_EFLAGS], r14d
        mov     [r13 + XBT_CTX_CALLOUT_SITE], r11
        mov     [r13 + XBT_CTX_CALLOUT_EA], r15d
        pop     r14
        mov     [r13 + XBT_CTX_CALLOUT_RET], r14
        /* First the fast handlers (callouts_fast.c, general registers only) where the
           kind has one: they run with the guest's x87/SSE state still in the registers. */
        test    byte ptr [r11 + XBT_SITE_FLAGS], XBT_COF_FAST
        jz      callout_full
        cld
        mov     rdi, r13
        call    xbt_callout_fast@PLT            /* rsp is host_rsp: 16-byte aligned */
        test    eax, eax
        jnz     callout_not_done
        mov     r14, [r13 + XBT_CTX_CALLOUT_RET]
        LOAD_FLAGS_GPRS
        jmp     r14
callout_not_done:
        cmp     eax, 2                          /* XBT_FAST_LEAVE: EIP changed (IRET) */
        jne     callout_full
        SAVE_FPU
        mov     eax, XBT_JIT_EXIT_CALLOUT       /* = XBT_LEAVE_DISPATCH */
        jmp     jit_leave
callout_full:                                   /* declined: the full handler */
        SAVE_FPU
        mov     rdi, r13
        call    [r13 + XBT_CTX_CALLOUT_FN]
        test    eax, eax
        jnz     jit_leave
        /* Resume after the call site with the (possibly changed) guest state. */
        mov     r14, [r13 + XBT_CTX_CALLOUT_RET]
        jmp     enter_resume
        .size   xbt_jit_callout, . - xbt_jit_callout

/* Called (call [r13 + fpu_entry]) by translated code before its first x87/SSE
   instruction while the guest's state is in ctx->fpu.  Flag-free; R11 is free at a
   guest instruction boundary. */
        .globl  xbt_jit_fpu_load
        .type   xbt_jit_fpu_load, @function
xbt_jit_fpu_load:
        fxrstor64 [r13 + XBT_CTX_FPU]
        mov     dword ptr [r13 + XBT_CTX_FPU_LOADED], 1
        lea     r11, [rip + xbt_jit_fpu_ret]
        mov     [r13 + XBT_CTX_FPU_ENTRY], r11
xbt_jit_fpu_ret:
        ret
        .size   xbt_jit_fpu_load, . - xbt_jit_fpu_load

/* The interrupt gate after an inline STI's next instruction and after an inline POPF
   (translate.c, emit_intr_gate): R14D = the next guest EIP, R15 = the block's code
   after the gate.  Flag-free both ways (the host stack is valid in translated code). */
        .globl  xbt_jit_intr_open
        .type   xbt_jit_intr_open, @function
xbt_jit_intr_open:                              /* no interrupt can be pending */
        mov     dword ptr [r13 + XBT_CTX_STI_SHADOW], 0 /* the instruction ran */
        jmp     r15
        .size   xbt_jit_intr_open, . - xbt_jit_intr_open

        .globl  xbt_jit_intr_pending
        .type   xbt_jit_intr_pending, @function
xbt_jit_intr_pending:                           /* maybe one: the dispatcher polls */
        mov     dword ptr [r13 + XBT_CTX_STI_SHADOW], 0 /* the instruction ran */
        pushfq                                  /* the guest's flags */
        cmp     dword ptr [r13 + XBT_CTX_VIF], 0
        je      1f                              /* IF=0 (POPF kept it clear): none now */
        popfq
        mov     r15d, 0                         /* nothing to chain */
        jmp     xbt_jit_exit_direct
1:      popfq
        jmp     r15
        .size   xbt_jit_intr_pending, . - xbt_jit_intr_pending
        .globl  xbt_jit_intr_end
xbt_jit_intr_end:

        .section .note.GNU-stack,"",@progbits
