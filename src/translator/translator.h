/*
 * translator.h - one guest basic block in, x86-64 host code and its metadata out.
 *
 * A pure function of the guest bytes and the translation mode: no global state, no
 * knowledge of the cache or the run loop.  The host code is position independent
 * (exits and callout sites are reached RIP-relative; runtime entry points through
 * R13), so a block may be translated into a scratch buffer and copied anywhere.
 */
#ifndef XBT_TRANSLATOR_H
#define XBT_TRANSLATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "decoder/decoder.h"
#include "translator/abi.h"
#include "xbt/xbt.h"

#define XBT_BLOCK_MAX_INSNS 64     /* guest instructions per block */
#define XBT_BLOCK_MAX_EXITS 10     /* chainable exits per block (jcc: 2, loop: 2; a trace:
                                      one side exit per conditional branch on its path) */
#define XBT_TRACE_MAX_BLOCKS 8     /* basic blocks on a trace's path */
#define XBT_BLOCK_MAX_MAP (XBT_BLOCK_MAX_INSNS * 3)
#define XBT_BLOCK_MAX_CODE 16384   /* host bytes a block may need, stubs included */
#define XBT_BLOCK_MAX_RELOCS 256   /* guest EIPs in a block's host code (more: not shared) */

/* Mode flags (part of the translation-cache key). */
#define XBT_TM_FPU_NM   0x01 /* CR0.TS or CR0.EM: x87/SSE instructions raise #NM */
#define XBT_TM_NO_SSE   0x02 /* CR4.OSFXSR clear: SSE instructions raise #UD */
/* The CPUID policy hides an SSE generation (xbt.h's xbt_vcpu_set_cpuid): its
   instructions raise #UD (the SDM's rule for a CPU without it). */
#define XBT_TM_HIDE_SSE   0x04 /* CPUID.1:EDX.SSE clear */
#define XBT_TM_HIDE_SSE2  0x08 /* CPUID.1:EDX.SSE2 clear */
#define XBT_TM_HIDE_SSE3  0x10 /* CPUID.1:ECX.SSE3 clear */
#define XBT_TM_HIDE_SSSE3 0x20 /* CPUID.1:ECX.SSSE3 clear */
#define XBT_TM_HIDE_SSE41 0x40 /* CPUID.1:ECX.SSE4_1 clear */
#define XBT_TM_HIDE_SSE42 0x80 /* CPUID.1:ECX.SSE4_2 clear */

/* The translation mode: everything besides the guest bytes that the code depends on. */
typedef struct xbt_tmode {
    uint8_t cpl;          /* 0 or 3 */
    uint8_t window;       /* enum xbt_window (xbt.h): K and U through the GS base, D at
                             the guest's own addresses */
    uint8_t segbase_mask; /* 1 << XBT_ES.. for each of ES CS SS DS whose base is nonzero
                             (FS and GS bases are always added, from ctx->seg_base) */
    uint8_t flags;        /* XBT_TM_* */
    uint8_t seglimit_mask; /* 1 << XBT_ES..XBT_GS for each segment whose limit is not the
                              flat 4 GiB: explicit memory operands through it are checked
                              against ctx->seg_limit (#GP(0), #SS(0) for SS) */
    uint8_t size16;       /* XBT_TS_*: 16-bit code and stack (real mode, D/B clear),
                             virtual-8086 mode; and CR4.SMAP */
    uint8_t segnull;      /* XBT_SN_*: ES and DS hold a null selector loaded in protected
                             mode (unusable): an access through them is #GP(0) */
} xbt_tmode;

/* xbt_tmode.segnull (part of the translation-cache key). */
#define XBT_SN_ES 0x01
#define XBT_SN_DS 0x02

/* xbt_tmode.size16 (part of the translation-cache key). */
#define XBT_TS_CODE16  0x01 /* CS.D clear or real mode: 16-bit default operand and
                               address size; IP-relative targets wrap at 64 KiB */
#define XBT_TS_STACK16 0x02 /* SS.B clear: implicit stack accesses move SP, not ESP, and
                               address SS.base + SP (wrapping at 64 KiB) */
#define XBT_TS_V86     0x04 /* virtual-8086 mode (EFLAGS.VM): PUSHF is IOPL-sensitive
                               there and never pushes VM, so it is a callout */
#define XBT_TS_SMAP    0x08 /* CR4.SMAP: POPF stays a callout (not inline at CPL 0), so
                               the runtime sees EFLAGS.AC clear before the next guest
                               access (the K-window then gives up its user pages) */
#define XBT_TS_BOUNDED 0x10 /* user code of a directly executed address space that runs
                               translated only while it is in pages direct execution
                               cannot run (the runtime's, direct.c): the code is the same,
                               the key apart keeps every other page's blocks out of this
                               mode's chains and lookups, so leaving those pages leaves
                               to the dispatcher */

/*
 * Reads up to len guest code bytes at guest linear address eip into buf.  Returns the
 * number of bytes readable from eip on (0 if eip itself cannot be fetched).  It may
 * return fewer than len at the end of a readable range (the next page unmapped).
 */
typedef uint32_t (*xbt_fetch_fn)(void *opaque, uint32_t eip, uint8_t *buf, uint32_t len);

/* Guest code in a flat buffer: `len` bytes that stand at guest EIP `eip`.  Its fetch
   (opaque: the struct) reads within them, 0 outside. */
struct xbt_flat_src {
    const uint8_t *bytes;
    size_t len;
    uint32_t eip;
};
uint32_t xbt_flat_fetch(void *opaque, uint32_t eip, uint8_t *buf, uint32_t len);

/* Kinds of block exits. */
enum xbt_exit_kind {
    XBT_EXIT_JMP = 0,     /* unconditional direct jmp/call target */
    XBT_EXIT_TAKEN,       /* taken side of jcc/loop */
    XBT_EXIT_FALLTHROUGH, /* not-taken side of jcc/loop, or the next instruction */
    /* An indirect JMP's inline cache (translate.c, emit_jmp_cache): the hit side, a
       chainable exit to the last target learned (XBT_ICACHE_NONE as translated; the
       runtime rewrites its target, its stub's immediate and the compare's), and the
       miss side right before it in exits[], taken to the runtime, which learns there
       XBT_ICACHE_LEARNS times (its `prof` counts them); the next miss retires the
       cache: the site's first instruction, a 2-byte NOP, becomes a short jmp over the
       compare to the inline lookup, and so does the miss side.  Neither target is
       relocated. */
    XBT_EXIT_ICACHE_MISS,
    XBT_EXIT_ICACHE_HIT,
};
#define XBT_ICACHE_NONE 0x80000000u /* the hit side's target as translated */
#define XBT_ICACHE_LEARNS 2 /* a lazily bound PLT slot changes target once */
/* The miss side's rel32 minus these: the site's first instruction (66 90; retired: EB
   XBT_ICACHE_SKIP, to the lookup after the miss side's jmp), and the compare's disp32
   (`66 90; mov r10, rcx; lea ecx, [r14 + disp32]` with disp32 = -target; `jrcxz; mov
   rcx, r10; jmp rel32`). */
#define XBT_ICACHE_ENTRY_BACK 18
#define XBT_ICACHE_SKIP 20
#define XBT_ICACHE_DISP_BACK 10

/* A chainable exit: a jmp/jcc whose rel32 initially targets its stub. */
struct xbt_texit {
    uint32_t rel32_off; /* offset of the rel32 field to patch when chaining */
    uint32_t stub_off;  /* offset of the exit stub (the unchained target) */
    uint32_t target;    /* guest EIP this exit leads to */
    uint8_t kind;       /* enum xbt_exit_kind */
    uint8_t prof;       /* a profiled trace's side exit: its counter (1..), else 0 */
    uint8_t alt;        /* a direct CALL's exit with the thunk path after its rel32
                           (XBT_ALT_*): chained to a block that is a PC thunk, it goes
                           there instead of into the thunk (tcache.c, chain_dest) */
    uint8_t fpu;        /* the guest's x87/SSE state is in the registers whenever this
                           exit is taken (its block called ctx->fpu_entry before it, and
                           no callout since): chained to a block that starts with that
                           call, it goes past the call (xbt_tblock.fpu_skip) */
};

/* xbt_texit.alt.  The thunk path, right after the exit's rel32: `mov r32, imm32` (the
   return address; its register chosen at chaining by patching the opcode byte 0xB8 +
   r), the pop (`lea r12d, [r12 + 4]`), and a chainable exit to the return address: what
   the call followed by `mov r32, [esp]; ret` does. */
#define XBT_ALT_NONE 0
#define XBT_ALT_FREE 1   /* no register chosen yet (as translated) */
#define XBT_ALT_REG0 2   /* + the guest register (0..7, not ESP) it was chained with */

/* Fault fix-ups: how to recover guest state if a host instruction in a range faults. */
enum xbt_fixup {
    XBT_FIX_NONE = 0,   /* host registers hold the guest state as before the insn */
    XBT_FIX_STRING,     /* RSI/RDI carry window and segment bias: low 32 bits minus the
                           segment base (arg bit 0: DS-side base, bit 1: ES base; bits 2, 3:
                           16-bit addressing, ESI's/EDI's upper half in R8/R9) and the low
                           half of the window base (XBT_FIXS_*_WIN) */
    XBT_FIX_SAVED_REG,  /* guest GPR `arg` was borrowed; its value is in R10 */
};

#define XBT_FIXS_SRC_WIN 0x10 /* RSI = window base (ctx->kbase) + linear */
#define XBT_FIXS_DST_WIN 0x20 /* RDI likewise */
#define XBT_FIXS_DST_SEG 0x40 /* EDI's segment is the map's seg, not ES (MASKMOVDQU) */
#define XBT_FIXS_SOFT    0x80 /* a soft string site's: the bias of RSI/RDI is
                                 ctx->soft_delta[0/1], not the window base (abi.h) */

/* Host offset -> guest EIP, sorted by host_off; an entry covers up to the next one. */
struct xbt_pcmap {
    uint32_t host_off;
    uint32_t guest_eip;
    uint8_t fixup;      /* enum xbt_fixup */
    uint8_t arg;
    uint16_t seg;       /* XBT_FIX_STRING: source segment (XBT_ES..); | XBT_MAP_UK_FAST */
};
/* xbt_pcmap.seg: the instruction reaches the U-window as gs:[r9 + reg + disp], its sum
   not wrapped at 4 GiB (translator.h, uk_wrap_site): a fault below the U-window or in
   the guard page above it is that sum's wrap, not the guest's access. */
#define XBT_MAP_UK_FAST 0x8000u
/* XBT_WINDOW_UK's fast form: [reg + disp] with disp in this range.  A sum that wraps
   lands at most 32 KiB below the U-window (the runtime keeps that unmapped) or, with
   the operand's at most 512 bytes, within the guard page above it. */
#define XBT_UK_FAST_DISP_MIN (-32768)
#define XBT_UK_FAST_DISP_MAX 2047

/* Why a block ended. */
enum xbt_block_end {
    XBT_END_BRANCH = 0,  /* a control transfer */
    XBT_END_CALLOUT,     /* an instruction that ends blocks (callout with side effects) */
    XBT_END_LIMIT,       /* instruction, byte or page limit: falls through */
    XBT_END_FETCH,       /* the next instruction could not be fetched: falls through,
                            so the fault is raised when (if) it is executed */
};

/* Statistics of one translation. */
struct xbt_tstats {
    uint32_t copied;     /* instructions re-encoded as themselves */
    uint32_t readdressed;/* ... with a rewritten memory operand */
    uint32_t rewritten;  /* replaced by an inline sequence */
    uint32_t callouts;   /* replaced by a callout */
    uint32_t trace_guards; /* a trace's indirect branches checked against the recorded
                              target (the trace goes on inline when it matches) */
};

/*
 * The output of one translation.  The caller owns it and its code buffer; the
 * translator writes at most code_cap bytes (XBT_BLOCK_MAX_CODE always suffices).
 */
typedef struct xbt_tblock {
    uint32_t eip;          /* guest EIP of the first instruction */
    uint32_t guest_len;    /* guest bytes covered: [eip, eip + guest_len) */
    uint32_t n_insns;
    uint32_t path_used;    /* a trace: path entries laid out (1 for a basic block) */
    uint8_t end;           /* enum xbt_block_end */
    uint8_t *code;         /* in: buffer; out: host code, code_len bytes */
    uint32_t code_cap;
    uint32_t code_len;
    uint32_t body_len;     /* bytes of the main path; stubs and sites follow */
    uint32_t ool_off;      /* out-of-line paths (REP strings) from here to body_len */
    uint32_t n_exits;
    struct xbt_texit exits[XBT_BLOCK_MAX_EXITS];
    uint32_t n_map;
    struct xbt_pcmap map[XBT_BLOCK_MAX_MAP];
    uint32_t n_sites;      /* callout sites, at code + sites_off */
    uint32_t sites_off;
    /* Relocation.  The translation is a function of the guest bytes, the mode and the
       EIP, and depends on the EIP only through the guest EIPs it holds: the 4-byte
       fields at these host offsets (return addresses a CALL pushes, the targets of exit
       stubs and interrupt gates, the callout sites' eip), the exits' targets and the
       pc map.  So the same bytes at EIP eip + d, d a multiple of 4096, translate to this
       code with d added to each (xbt_tblock_relocate): blocks of a library that another
       address space maps elsewhere are copied, not translated again.  reloc_ok is false
       where that does not hold (traces, profiling counters, 16-bit branch targets, a
       block cut short by an unfetchable page, more than XBT_BLOCK_MAX_RELOCS fields). */
    bool reloc_ok;
    bool code16;           /* translated as 16-bit code (the listing decodes it so) */
    /* A PC thunk: the block is exactly `mov r32, [esp]` and `ret` (no prefix, flat
       32-bit code and stack): 1 + r32's number (0..7, not ESP); 0: not one. */
    uint8_t thunk;
    /* The block starts with the call of ctx->fpu_entry (its first instruction is x87 or
       SSE, with nothing emitted before the call): that call's length, which an exit
       with xbt_texit.fpu skips when chained here; 0: the block does not start so. */
    uint8_t fpu_skip;
    uint32_t n_relocs;
    uint32_t relocs[XBT_BLOCK_MAX_RELOCS];
    struct xbt_tstats stats;
    char error[128];       /* set when xbt_translate_block returns an error */
} xbt_tblock;

enum xbt_tstatus {
    XBT_T_OK = 0,
    XBT_T_FETCH_FAULT,     /* the first instruction could not be fetched */
    XBT_T_NO_SPACE,        /* code_cap too small even for one instruction */
    XBT_T_INTERNAL,        /* the encoder refused something: a translator bug */
};

typedef struct xbt_translator {
    xbt_decoder dec;
    uint32_t max_insns;    /* <= XBT_BLOCK_MAX_INSNS */
    /* A REP string instruction (K- or U-window; 16-bit addressing too) makes one
       iteration: none with ECX (CX) 0; else one element, the count decremented, and
       while it and (CMPS, SCAS) the REPE/REPNE condition say go on, an exit to its own
       EIP (the guest's single-step trap comes after each iteration, SDM vol. 3
       18.3.1.4; run.c). */
    bool rep_one;
    bool rep_one_made; /* out: an instruction was made so (the caller clears it) */
    /* A trace: the recorded path (the start EIPs of the basic blocks that ran, the
       first being the block's own EIP).  At the branch that ends each of them the
       translation goes on at the next one: a conditional branch's other direction
       becomes a side exit, a direct JMP or CALL (its return address pushed) leaves no
       branch, an indirect JMP, CALL or RET becomes a guard that compares the target
       with the recorded one (a mismatch takes the inline lookup).  It stops at a path
       entry outside the head's page and the next, below the head, or at any other
       block end.  NULL: an ordinary basic block. */
    const uint32_t *path;
    uint32_t path_n;
    /* A trace with profiling: counters the code increments (flag-free, on the host
       side of R14/R15): [0] at each entry, [k] when side exit k is taken (k = the
       exit's `prof`, 1..XBT_BLOCK_MAX_EXITS).  NULL: none. */
    uint64_t *prof;
    /* Profiling: a counter every block that is not a trace increments at its entry
       (NULL: none). */
    uint64_t *block_count;
    /* Instructions at the EIPs for which mmio_site(mmio_ctx, eip) is true, with one
       explicit memory operand (its expand-up limit checked first), become XBT_CO_MMIO
       callouts that end
       the block (the runtime marks the EIPs whose accesses keep reaching MMIO through
       host faults).  Such a block is not relocatable.  NULL: none. */
    bool (*mmio_site)(void *ctx, uint32_t eip);
    void *mmio_ctx;
    /* Such a site that is a plain 4-byte MOV load into a general register first checks
       the read shadow (ctx->rs_nlin, rs_table, rs_page; abi.h) inline and reads the
       shadow page when it may (needs BMI2's SHRX). */
    bool mmio_shadow;
    /* CPUID at CPL 0 answered inline when EAX and ECX are the last CPUID's
       (ctx->cpuid_nkey; emit_cpuid, BMI2): the runtime keeps that answer right. */
    bool cpuid_inline;
    /* XBT_WINDOW_UK: an explicit or stack operand [reg + disp] (a guest register, no
       index, disp within XBT_UK_FAST_DISP_MIN..MAX, no AH..DH beside it) becomes
       gs:[r9 + reg + disp] without the LEA that wraps the sum at 4 GiB, unless
       uk_wrap_site(mmio_ctx, eip) says the instruction's sum wrapped before.  Such a
       sum lands below the U-window or in the guard page above it: the instruction's
       pc-map entries carry XBT_MAP_UK_FAST so that the runtime's fault handler takes
       such a fault for the wrap (it runs the instruction alone in the LEA form and
       marks it, so that uk_wrap_site says yes for it from then on).  The answer must
       be the same for the same bytes at any EIP (blocks are relocated).  NULL: every
       access computes its address with the LEA. */
    bool (*uk_wrap_site)(void *ctx, uint32_t eip);
    /* The host has BMI2 (SARX, SHRX): xbt_translator_init asks the CPU; an embedder may
       clear it (xbt-run: XBT_NO_BMI2=1) to test the paths without it. */
    bool bmi2;
    /* Fault sites: an instruction at an EIP for which pf_site(mmio_ctx, eip) is true,
       with one explicit memory operand that it reads or writes (no x87/SSE, no XLAT, no
       bit test with a register offset), in the K- or U-window, gets an inline check of
       its page in the window's probe bytes (ctx->pf_probe) before the access, and an
       XBT_CO_PFCHECK callout where the page is not there with the access's rights (the
       runtime marks the EIPs whose accesses keep ending in guest page faults or window
       fills through host faults).  A site with one access of its own is soft: the
       access goes through [R15], which the check sets to the window's address or, after
       the callout, to ctx->soft_ptr (abi.h; the callout may answer with the guest page
       itself).  The check uses SHRX: the runtime sets pf_site only
       on hosts with BMI2.  Such a block stays relocatable: the answer must then be the
       same for the same bytes at any EIP (the runtime keys sites by physical address).
       The answer: 0, not a site; else the site's tag, which its XBT_CO_PFCHECK callouts
       carry in imm_sel (the runtime's record of the site, which its callouts and the
       CPU-time samples of its blocks find by it).  NULL: none. */
    uint16_t (*pf_site)(void *ctx, uint32_t eip);
    /* A block ends before any instruction but its first for which stop_before(
       stop_ctx, eip) is true (the debugger's breakpoints: the dispatcher then sees that
       EIP).  NULL: none. */
    bool (*stop_before)(void *ctx, uint32_t eip);
    void *stop_ctx;
    /* Register-only instructions whose bytes mean the same in 64-bit mode are copied as
       they are (translate.c, copy_as_is); set, they are re-encoded like the others
       (the unit tests compare the two). */
    bool reencode_copies;
    /* Indirect JMPs outside traces get no inline cache of their last target (translate.c,
       emit_jmp_cache): just the inline lookup. */
    bool no_jmp_cache;
} xbt_translator;

void xbt_translator_init(xbt_translator *t);

/*
 * Translates the block starting at guest EIP `eip` in `mode`, fetching guest bytes
 * through fetch(opaque, ...).  Returns XBT_T_OK and fills *out, or an error with a
 * message in out->error.  Instructions the translator cannot express become callouts
 * (XBT_CO_UD, XBT_CO_UNSUPPORTED), never wrong code.
 */
enum xbt_tstatus xbt_translate_block(xbt_translator *t, const xbt_tmode *mode, uint32_t eip,
                                     xbt_fetch_fn fetch, void *opaque, xbt_tblock *out);

/* Moves a block with reloc_ok to guest EIP `eip` (eip - b->eip a multiple of 4096):
   what xbt_translate_block gives for the same guest bytes there.  Its exits must be
   unchained (each rel32 at its stub). */
void xbt_tblock_relocate(xbt_tblock *b, uint32_t eip);

/* NULL if two translations are the same (code, exits, pc map, extent, sites,
   relocations), else the name of the first part that differs. */
const char *xbt_tblock_diff(const xbt_tblock *a, const xbt_tblock *b);

/* Finds the pc-map entry covering host offset off (NULL if off is outside the body). */
const struct xbt_pcmap *xbt_tblock_lookup(const xbt_tblock *b, uint32_t off);

/*
 * Writes a listing of the block: every guest instruction with its class and the host
 * instructions it became (Intel syntax), then the exit stubs and callout sites.
 * Appends to buf (NUL-terminated, truncated at size); returns the length it needed.
 */
size_t xbt_tblock_list(const xbt_tblock *b, xbt_fetch_fn fetch, void *opaque, char *buf,
                       size_t size);

#endif
