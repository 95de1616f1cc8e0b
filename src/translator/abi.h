/*
 * abi.h - the contract between translated code and the runtime.
 *
 * WARNING: this header is the seam between src/translator (which emits code that
 * relies on everything below) and src/runtime (whose entry, exit and callout stubs
 * implement it).  Changing a register, an offset or a calling convention here means
 * changing both sides; the static asserts in runtime/ and the differential tests
 * catch most mismatches, not all.
 *
 * Register assignment while translated code runs (guest CPL 0, or CPL 3 in strict mode):
 *
 *   host RAX RCX RDX RBX RBP RSI RDI   guest EAX ECX EDX EBX EBP ESI EDI (low halves;
 *                                      the upper halves are ZERO at every guest
 *                                      instruction boundary - rewrites rely on it)
 *   host R12                           guest ESP (R12D; upper half zero)
 *   host RSP                           a valid host stack: callouts are plain calls
 *   host R13                           pointer to struct xbt_jit_ctx (never changes)
 *   host R8-R11, R14, R15              scratch, dead at guest instruction boundaries;
 *                                      but in XBT_WINDOW_UK code R9 = XBT_UK_R9 at
 *                                      every guest instruction boundary (the U-window's
 *                                      offset from the GS base: accesses are
 *                                      gs:[r9 + linear]); the entry and callout stubs
 *                                      load it, as they load the guest registers
 *   host RFLAGS                        guest CF PF AF ZF SF DF OF; IF=1 and bit 1=1 as
 *                                      the host requires; TF, NT, AC, ID, RF all zero.
 *                                      So host RFLAGS == guest arithmetic flags | 0x202
 *                                      exactly (PUSHF relies on this).  The guest's IF,
 *                                      IOPL, NT, AC, ID, TF are virtual (ctx fields).
 *   host GS base                       the base of the window of the current privilege
 *                                      (guest linear 0 in it): the K-window at CPL 0,
 *                                      the U-window for strict-mode user code
 *
 * Memory: a guest access  mov eax,[ebx+8]  becomes  mov eax,gs:[ebx+8]  with 32-bit
 * address size (0x67): the CPU adds the GS base to the 32-bit-wrapped effective
 * address.  Code translated to run at the guest's own addresses (the translate-only
 * API's option; the runtime does not use it) is the same without GS.
 *
 * Exits (all reached by jmp, host RSP as it was at entry):
 *   ctx->exit_direct    R14D = next guest EIP, R15 = host address of the rel32 field
 *                       of the jump that led here (for chaining), or 0 if none.
 *   ctx->exit_indirect  R14D = next guest EIP (indirect branch that missed the table).
 * Callouts (reached by call, so the host return address is on the host stack):
 *   ctx->callout        R11 = address of a struct xbt_callout_site (in the block's
 *                       code area), R15D = guest linear effective address of the
 *                       instruction's memory operand (segment base included), if any.
 *                       Guest registers and flags are live in host registers; the
 *                       callout stub saves them, calls C, restores (possibly changed)
 *                       state and returns after the call - or abandons the block and
 *                       leaves to the dispatcher, as the handler decides.
 */
#ifndef XBT_TRANSLATOR_ABI_H
#define XBT_TRANSLATOR_ABI_H

#ifndef __ASSEMBLER__
#include <stddef.h>
#include <stdint.h>
#endif

#include "arch.h"
#include "decoder/defs.h"

/* R9 in XBT_WINDOW_UK code: -XBT_WINDOW_UK_BELOW (-(4 GiB + 4 KiB)), so that
   gs:[r9 + linear] is the U-window's byte of a 32-bit linear address (emit.c). */
#define XBT_UK_R9 (-4294971392)

/* The guest EFLAGS bits that live in host RFLAGS while translated code runs. */
#define XBT_EFLAGS_ARITH (XBT_EFLAGS_CF | XBT_EFLAGS_PF | XBT_EFLAGS_AF | XBT_EFLAGS_ZF | \
                          XBT_EFLAGS_SF | XBT_EFLAGS_DF | XBT_EFLAGS_OF)
/* Host RFLAGS = guest arithmetic flags | XBT_HOST_FLAGS_FIXED inside translated code. */
#define XBT_HOST_FLAGS_FIXED (XBT_EFLAGS_IF | XBT_EFLAGS_FIXED)

#ifndef __ASSEMBLER__
/*
 * The block of state that translated code reaches through R13.  Only the fields
 * marked [jit] are touched by translated code; their offsets are fixed below.
 */
struct xbt_jit_ctx {
    uint64_t exit_direct;      /* [jit] host address of the direct-exit stub */
    uint64_t exit_indirect;    /* [jit] host address of the indirect-miss stub */
    uint64_t callout;          /* [jit] host address of the callout stub */
    uint64_t ibl_table;        /* [jit] indirect-branch table (struct xbt_ibl_entry[]) */
    uint64_t kbase;            /* [jit] K-window host base (also the GS base) */
    uint32_t seg_base[XBT_NSEG]; /* [jit] virtual segment bases, XBT_ES.. order */
    uint16_t seg_sel[XBT_NSEG];  /* [jit] virtual segment selectors */
    uint32_t vif;              /* [jit] guest EFLAGS.IF: 0 or 0x200 (CLI/STI inline) */
    uint32_t eflags_sys;       /* [jit] guest EFLAGS bits other than arith and IF:
                                  bit 1, TF, IOPL, NT, AC, ID (PUSHF inline) */
    /* Guest state saved by the exit and callout stubs, loaded by the entry stub. */
    uint32_t gpr[8];           /* EAX..EDI, XBT_EAX order; gpr[XBT_ESP] is ESP */
    uint32_t eflags;           /* arithmetic flags as saved (IF etc. are virtual) */
    uint32_t eip;              /* next guest EIP at an exit */
    uint64_t exit_site;        /* R15 at a direct exit: rel32 field to chain, or 0 */
    uint64_t host_rsp;         /* host RSP at entry, restored by every exit */
    uint64_t callout_site;     /* R11 at a callout */
    uint32_t callout_ea;       /* R15D at a callout */
    uint32_t sti_shadow;       /* [jit] the EIP an inline STI's shadow covers, 0 when none
                                  (an inline STI's next EIP is never 0: translate.c,
                                  sti_shadow_fits): stored by the STI, cleared by the
                                  interrupt gate after that instruction; a dispatch at
                                  that EIP (the instruction restarted after a hidden
                                  fault, a fault site's check) keeps the shadow
                                  (vcpu.h, xbt_sti_shadow_settle).  Stored whatever IF
                                  was (a flag-free test of the old IF costs more than it
                                  is worth): after an STI with IF already 1 a restarted
                                  instruction also holds interrupts off for itself, as
                                  the gate after it does anyway */
    uint64_t callout_ret;      /* host return address of the callout in progress */
    uint64_t callout_fn;       /* int (*)(struct xbt_jit_ctx *): 0 resumes the block,
                                  nonzero leaves xbt_jit_enter with that value */
    uint32_t host_mxcsr;       /* the host's MXCSR, restored at every exit */
    uint32_t fpu_loaded;       /* 1 while the guest's x87/SSE state is in the host regs */
    uint64_t fpu_entry;        /* WARNING: called flag-free (call [r13+184]) by a block
                                  before its first x87/SSE instruction: xbt_jit_fpu_load
                                  when the state is in fpu[], a bare ret when loaded */
    uint8_t fpu[512] __attribute__((aligned(16))); /* guest x87/SSE state (fxsave64)
                                  while host code runs */
    uint32_t seg_limit[6];     /* ES..GS limits in bytes, for limit-checked segments */
    uint64_t intr_gate;        /* [jit] the interrupt gate (jmp [r13+728], flag-free, R14D =
                                  the next guest EIP, R15 = where to go on): the runtime's
                                  xbt_jit_intr_open (jmp r15) while no external interrupt
                                  can be pending, else xbt_jit_intr_pending (an exit to
                                  the dispatcher at R14D, which polls the source) */
    uint64_t tsc_offset;       /* [jit] guest TSC = host TSC + this (RDTSC inline at CPL 0) */
    uint64_t pf_probe;         /* [jit] the probe bytes of the window GS points at (a byte
                                  per linear page: 0 not mapped, 1 read-only, 3 writable;
                                  shadow-mmu/smmu.h), read by fault sites' inline checks */
    /* MMIO read shadow (xbt_vcpu_set_mmio_shadow; mmio.c): MMIO sites' plain 4-byte
       MOV loads check these inline and read the embedder's page instead of a callout. */
    uint64_t rs_nlin[2];       /* [jit] ~(linear page) that the runtime found mapped to
                                  the shadowed physical page for a read at CPL 0 [0] and
                                  CPL 3 [1]; XBT_RS_NONE: none (a TLB entry, emptied with
                                  the software TLB and at every run) */
    uint64_t rs_table;         /* [jit] 4,096 bytes: 0 at the offset of a dword a read
                                  may take from the shadow, 1 elsewhere */
    uint64_t rs_page;          /* [jit] the embedder's page of register values */
    /* The last CPUID's answer, for the inline check at CPL 0 (translate.c, emit_cpuid):
       always a right answer for its key (the runtime computes it again whenever what
       CPUID depends on changes: the embedder's policy, IA32_MISC_ENABLE). */
    uint64_t cpuid_nkey;       /* [jit] -(ECX << 32 | EAX) of that CPUID */
    uint32_t cpuid_r[4];       /* [jit] its EAX, EBX, ECX, EDX */
    /* A soft fault site's XBT_CO_PFCHECK (translate.c, emit_pf_probe; pfsite.c): where
       the access that follows goes, as a host address: the window (window base +
       linear) or the guest page itself in the VMM's view of guest RAM, found by the
       callout's walk, when the window does not map a page whose mapping churns. */
    uint64_t soft_ptr;         /* [jit] set by the callout, read once right after it */
    /* A soft string site (MOVS, STOS at CPL 0): per pointer (ESI, EDI), what the string
       instruction adds to the linear address instead of the window base: the window
       base, or the guest page's host address minus the linear address when the
       callout found the instruction's whole range on one churning page. */
    uint64_t soft_delta[2];    /* [jit] set by the check, read by the instruction */
};
#endif

#define XBT_CTX_EXIT_DIRECT   0
#define XBT_CTX_EXIT_INDIRECT 8
#define XBT_CTX_CALLOUT       16
#define XBT_CTX_IBL_TABLE     24
#define XBT_CTX_KBASE         32
#define XBT_CTX_SEG_BASE      40
#define XBT_CTX_SEG_SEL       64
#define XBT_CTX_VIF           76
#define XBT_CTX_EFLAGS_SYS    80
#define XBT_CTX_GPR           84
#define XBT_CTX_EFLAGS        116
#define XBT_CTX_EIP           120
#define XBT_CTX_EXIT_SITE     128
#define XBT_CTX_HOST_RSP      136
#define XBT_CTX_CALLOUT_SITE  144
#define XBT_CTX_CALLOUT_EA    152
#define XBT_CTX_STI_SHADOW    156
#define XBT_CTX_CALLOUT_RET   160
#define XBT_CTX_CALLOUT_FN    168
#define XBT_CTX_HOST_MXCSR    176
#define XBT_CTX_FPU_LOADED    180
#define XBT_CTX_FPU_ENTRY     184
#define XBT_CTX_FPU           192
#define XBT_CTX_SEG_LIMIT     704
#define XBT_CTX_INTR_GATE     728
#define XBT_CTX_TSC_OFFSET    736
#define XBT_CTX_PF_PROBE      744
#define XBT_CTX_RS_NLIN       752
#define XBT_CTX_RS_TABLE      768
#define XBT_CTX_RS_PAGE       776
#define XBT_CTX_CPUID_NKEY    784
#define XBT_CTX_CPUID_R       792
#define XBT_CTX_SOFT_PTR      808
#define XBT_CTX_SOFT_DELTA    816
/* ctx->rs_nlin's empty value: lin + XBT_RS_NONE + 1 = lin - 2^33 is never in [0, 4096). */
#define XBT_RS_NONE (~(1ull << 33))

/* Return values of xbt_jit_enter (a callout handler's nonzero value passes through). */
#define XBT_JIT_EXIT_DIRECT   1
#define XBT_JIT_EXIT_INDIRECT 2
#define XBT_JIT_EXIT_CALLOUT  3 /* lowest value a callout handler may return to leave */

#ifndef __ASSEMBLER__
_Static_assert(offsetof(struct xbt_jit_ctx, exit_direct) == XBT_CTX_EXIT_DIRECT, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, fpu_loaded) == XBT_CTX_FPU_LOADED, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, seg_limit) == XBT_CTX_SEG_LIMIT, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, fpu_entry) == XBT_CTX_FPU_ENTRY, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, exit_indirect) == XBT_CTX_EXIT_INDIRECT, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, callout) == XBT_CTX_CALLOUT, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, ibl_table) == XBT_CTX_IBL_TABLE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, kbase) == XBT_CTX_KBASE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, seg_base) == XBT_CTX_SEG_BASE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, seg_sel) == XBT_CTX_SEG_SEL, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, vif) == XBT_CTX_VIF, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, sti_shadow) == XBT_CTX_STI_SHADOW, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, eflags_sys) == XBT_CTX_EFLAGS_SYS, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, gpr) == XBT_CTX_GPR, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, eflags) == XBT_CTX_EFLAGS, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, eip) == XBT_CTX_EIP, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, exit_site) == XBT_CTX_EXIT_SITE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, host_rsp) == XBT_CTX_HOST_RSP, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, callout_site) == XBT_CTX_CALLOUT_SITE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, callout_ea) == XBT_CTX_CALLOUT_EA, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, callout_ret) == XBT_CTX_CALLOUT_RET, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, callout_fn) == XBT_CTX_CALLOUT_FN, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, host_mxcsr) == XBT_CTX_HOST_MXCSR, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, fpu) == XBT_CTX_FPU, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, intr_gate) == XBT_CTX_INTR_GATE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, tsc_offset) == XBT_CTX_TSC_OFFSET, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, pf_probe) == XBT_CTX_PF_PROBE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, rs_nlin) == XBT_CTX_RS_NLIN, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, rs_table) == XBT_CTX_RS_TABLE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, rs_page) == XBT_CTX_RS_PAGE, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, cpuid_nkey) == XBT_CTX_CPUID_NKEY, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, cpuid_r) == XBT_CTX_CPUID_R, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, soft_ptr) == XBT_CTX_SOFT_PTR, "abi");
_Static_assert(offsetof(struct xbt_jit_ctx, soft_delta) == XBT_CTX_SOFT_DELTA, "abi");

/* Runtime stubs (runtime/jit_stubs.S).  ctx->fpu must hold a valid fxsave image. */
int xbt_jit_enter(struct xbt_jit_ctx *ctx, const void *host_code);
void xbt_jit_exit_direct(void);
void xbt_jit_exit_indirect(void);
void xbt_jit_ibl_victim(void);
/* Inside xbt_jit_ibl_victim: from _rcx to _jmp, the guest's RCX is in R10; _end ends
   the stub (a kick there restarts it: signals.c). */
void xbt_jit_ibl_victim_rcx(void);
void xbt_jit_ibl_victim_jmp(void);
void xbt_jit_ibl_victim_end(void);
void xbt_jit_callout(void);
void xbt_jit_fpu_load(void);
void xbt_jit_intr_open(void);
void xbt_jit_intr_pending(void);
void xbt_jit_intr_end(void); /* the end of both gate stubs */
#endif

/*
 * Indirect-branch lookup table: 65536 entries indexed by the low 16 bits of the guest
 * target (movzx is the cheapest flag-free mask).  Every entry holds a valid host
 * address; an empty entry has a tag with bit 32 set, which no zero-extended EIP equals,
 * so the inline 64-bit compare (not + lea + jrcxz, no flags) is exact.
 */
#define XBT_IBL_BITS 16
#ifdef __ASSEMBLER__
#define XBT_IBL_ENTRIES (1 << XBT_IBL_BITS) /* (clang's assembler refuses a 1u) */
#else
#define XBT_IBL_ENTRIES (1u << XBT_IBL_BITS)
#endif
/*
 * Right after the table, as many victim entries: a target evicted from its entry by
 * another with the same low 16 bits goes to the victim entry indexed by the low 16 bits
 * of target + bswap(target), which the miss stub ctx->exit_indirect probes (flag-free
 * too) before it leaves translated code.  A table is XBT_IBL_SLOTS entries in all.
 */
#define XBT_IBL_SLOTS (2 * XBT_IBL_ENTRIES)
#ifndef __ASSEMBLER__
struct xbt_ibl_entry {
    uint64_t tag;  /* guest EIP, zero-extended; an empty entry has bit 32 set */
    uint64_t host; /* host address to jump to */
};
#endif

/* Flags of a callout site. */
#define XBT_COF_ENDS_BLOCK 0x01 /* translated code exits to the dispatcher after it */
#define XBT_COF_HAS_MEM    0x02 /* R15D holds the memory operand's linear address */
#define XBT_COF_REP        0x04 /* REP prefix (INS/OUTS) */
#define XBT_COF_IMM_PORT   0x08 /* IN/OUT with an immediate port (imm) else DX */
#define XBT_COF_ADDR16     0x10 /* 16-bit address size: INS/OUTS use DI/SI/CX */
#define XBT_COF_WRITE      0x20 /* XBT_CO_PFCHECK: the access writes (else it reads) */
#define XBT_COF_SOFT       0x80 /* XBT_CO_PFCHECK: a soft site (its access goes to
                                   ctx->soft_ptr; imm holds the access's size) */
/* XBT_CO_PFCHECK with XBT_COF_SOFT: imm's flag for a string instruction's pointer (its
   size in the low byte; the callout answers with ctx->soft_ptr = the pointer's delta,
   struct xbt_jit_ctx's soft_delta, for the whole instruction's range). */
#define XBT_PF_SOFT_STRING 0x100u
/* ... and the check of a MOVS's destination, which comes after its source's (the
   site's seg is then the source's segment): on the source's linear page both go
   through the window (pfsite.c, string_soft). */
#define XBT_PF_SOFT_MOVS_DST 0x200u
#define XBT_COF_FAST       0x40 /* a kind the fast handlers take (xbt_co_fast_kind): the
                                   stub tries them first, else goes to the full handler */
#define XBT_SITE_FLAGS     8    /* offsetof(struct xbt_callout_site, flags), for the stub */

/* The probe bytes (ctx->pf_probe, one per linear page of the window GS points at) as
   fault sites' checks read them: 0 not mapped, XBT_PROBE_R mapped read-only,
   XBT_PROBE_W mapped writable (the shadow MMU's XBT_PROBE_READ and XBT_PROBE_WRITE). */
#define XBT_PROBE_R 1
#define XBT_PROBE_W 3

#ifndef __ASSEMBLER__
/*
 * One callout site, emitted into the block's code area after its exit stubs.
 * WARNING: read by runtime handlers; layout is part of the ABI.
 */
struct xbt_callout_site {
    uint32_t eip;       /* guest EIP of the instruction */
    uint16_t mnemonic;  /* ZydisMnemonic, for diagnostics and the generic handlers */
    uint8_t kind;       /* enum xbt_callout_kind */
    uint8_t len;        /* instruction length in bytes */
    uint8_t flags;      /* XBT_COF_* */
    uint8_t opsize;     /* operand size in bytes (1, 2, 4; 6 for a far pointer) */
    uint8_t reg;        /* guest GPR number of the register operand, 0xFF if none */
    uint8_t reg2;       /* CRn/DRn number, segment register number, or 0xFF */
    uint32_t imm;       /* immediate: vector, port, offset of a far pointer, ret imm16 */
    uint16_t imm_sel;   /* selector of a direct far pointer */
    uint8_t seg;        /* the memory operand's segment (XBT_ES..; OUTS: its source) */
    uint8_t mmio;       /* XBT_CO_MMIO: XBT_MMIO_FORM_* of a plain access, else 0 */
};
/* An MMIO site's plain access, which the runtime makes from the site alone (no decode):
   MOV, MOVZX or MOVSX of 1, 2 or 4 bytes whose other operand is the general register
   `reg` (AH..BH: 0x80 set) or, for a MOV store, `imm`. */
#define XBT_MMIO_FORM_PLAIN 0x80
#define XBT_MMIO_FORM_STORE 0x40
#define XBT_MMIO_FORM_IMM   0x20 /* a store of imm */
#define XBT_MMIO_FORM_SIGN  0x10 /* MOVSX */
/* bits 0-1: log2 of the memory operand's size; bits 2-3: log2 of the register's */
_Static_assert(sizeof(struct xbt_callout_site) == 20, "abi");
_Static_assert(offsetof(struct xbt_callout_site, flags) == XBT_SITE_FLAGS, "abi");

/* The kinds runtime/callouts_fast.c has a case for (keep the two lists alike: a kind
   missing here is never tried fast; one too many costs the call).  The others (port
   and MMIO accesses, CPUID, INT ...) go straight to the full handler: trying the fast
   one first cost them a call and a switch, about 6 cycles of an 86-cycle IN. */
static inline bool xbt_co_fast_kind(unsigned kind)
{
    switch (kind) {
    case XBT_CO_CLI: case XBT_CO_STI: case XBT_CO_POPF: case XBT_CO_MOV_TO_CR:
    case XBT_CO_MOV_FROM_CR: case XBT_CO_MOV_TO_SREG: case XBT_CO_POP_SREG: case XBT_CO_IRET:
    case XBT_CO_RDTSC: case XBT_CO_RDTSCP: case XBT_CO_PAUSE: case XBT_CO_CPUID: case XBT_CO_INT:
    case XBT_CO_SYSENTER: case XBT_CO_SYSEXIT:
        return true;
    default:
        return false;
    }
}
#endif

#endif
