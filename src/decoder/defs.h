/*
 * defs.h - guest register numbers and the callouts the classification table assigns
 * to instructions.  Shared by the decoder (which decides), the translator (which
 * emits the call site) and the runtime (which implements the handler).  No
 * dependencies; safe to include from assembly.
 */
#ifndef XBT_DECODER_DEFS_H
#define XBT_DECODER_DEFS_H
#ifndef __ASSEMBLER__
/* Guest register numbers, in x86 encoding order (also the order of ctx->gpr[]). */
enum {
    XBT_EAX = 0, XBT_ECX, XBT_EDX, XBT_EBX, XBT_ESP, XBT_EBP, XBT_ESI, XBT_EDI,
};

/* Guest segment registers, in x86 encoding order. */
enum {
    XBT_ES = 0, XBT_CS, XBT_SS, XBT_DS, XBT_FS, XBT_GS, XBT_NSEG
};

/*
 * Callout kinds.  The translator emits one struct xbt_callout_site per callout; the
 * runtime dispatches on kind.  Operands are described in the site so that handlers
 * need not re-decode.
 */
enum xbt_callout_kind {
    XBT_CO_NONE = 0,
    XBT_CO_UD,          /* raise #UD at eip (undefined or not supported here) */
    XBT_CO_UNSUPPORTED, /* valid instruction this translator cannot handle: exit */
    XBT_CO_NM,          /* x87/SSE with CR0.TS or CR0.EM set: raise #NM (or #UD) */
    XBT_CO_CLI, XBT_CO_STI, XBT_CO_PUSHF, XBT_CO_POPF,
    XBT_CO_HLT, XBT_CO_IRET, XBT_CO_INT, XBT_CO_INT3, XBT_CO_INTO, XBT_CO_INT1,
    XBT_CO_BOUND,
    XBT_CO_MOV_TO_CR, XBT_CO_MOV_FROM_CR, XBT_CO_MOV_TO_DR, XBT_CO_MOV_FROM_DR,
    XBT_CO_LGDT, XBT_CO_LIDT, XBT_CO_LLDT, XBT_CO_LTR,
    XBT_CO_SGDT, XBT_CO_SIDT, XBT_CO_SLDT, XBT_CO_STR, XBT_CO_SMSW, XBT_CO_LMSW,
    XBT_CO_LAR, XBT_CO_LSL, XBT_CO_VERR, XBT_CO_VERW, XBT_CO_ARPL,
    XBT_CO_MOV_TO_SREG, XBT_CO_POP_SREG, XBT_CO_LOAD_FAR_PTR, /* lds les lfs lgs lss */
    XBT_CO_JMP_FAR, XBT_CO_CALL_FAR, XBT_CO_RET_FAR,
    XBT_CO_IN, XBT_CO_OUT, XBT_CO_INS, XBT_CO_OUTS,
    XBT_CO_INVLPG, XBT_CO_WBINVD, XBT_CO_INVD, XBT_CO_CLTS,
    XBT_CO_RDMSR, XBT_CO_WRMSR, XBT_CO_CPUID, XBT_CO_RDTSC, XBT_CO_RDTSCP,
    XBT_CO_RDPMC, XBT_CO_SYSENTER, XBT_CO_SYSEXIT, XBT_CO_SYSCALL, XBT_CO_SYSRET,
    XBT_CO_BCD,         /* daa das aaa aas aam aad (invalid in 64-bit mode) */
    XBT_CO_SALC,
    XBT_CO_MONITOR, XBT_CO_MWAIT, XBT_CO_XGETBV, XBT_CO_XSETBV,
    XBT_CO_DE,          /* DIV/IDIV by a zero register: raise #DE without a host SIGFPE */
    XBT_CO_GP0, XBT_CO_SS0, /* a segment-limit check failed: #GP(0) / #SS(0) */
    XBT_CO_MMIO,        /* an instruction that keeps touching MMIO (the runtime marked its
                           EIP): its access is made by the runtime, without a host fault */
    XBT_CO_RDPID,       /* RDPID r32: IA32_TSC_AUX (after MMIO: the kinds keep their numbers) */
    XBT_CO_CLAC, XBT_CO_STAC, /* EFLAGS.AC for SMAP (#UD without it in CPUID) */
    XBT_CO_PFCHECK,     /* a fault site's inline check found its page absent from the
                           window: the runtime walks it (a #PF, a fill, or the access
                           goes on) without a host fault (runtime/pfsite.c) */
    XBT_CO_PAUSE,       /* PAUSE in translated code: a spin-wait hint, counted for
                           pause-loop yields (runtime/vcpu.h, xbt_pause_loop) */
    XBT_CO_COUNT
};


const char *xbt_callout_name(unsigned kind);
#endif
#endif
