/*
 * emit.h - encoding helpers of the translator (internal).  Every host instruction is
 * produced by Zydis's encoder; the only byte-level touch is inserting a 0x67 prefix
 * where Zydis cannot infer 32-bit address size (absolute [disp32] operands), and that
 * result is checked by decoding it back.
 */
#ifndef XBT_TRANSLATOR_EMIT_H
#define XBT_TRANSLATOR_EMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "translator.h"

#define XBT_MAX_PENDING_SITES 64

/* A forward reference to patch once stubs and sites are placed. */
struct xbt_patch {
    uint32_t at;     /* offset of a rel32/disp32 field, relative to the next insn */
    uint32_t end;    /* offset of the end of the instruction holding it */
    uint32_t index;  /* exit or site index */
};

/*
 * A REP string instruction's out-of-line path, emitted after the block's last
 * instruction (inside the body, so faults there map back precisely): the exact check
 * for a wrap at 4 GiB, and the element-by-element loop that wraps as the CPU does.
 */
#define XBT_MAX_STRING_TAILS 16
struct xbt_string_tail {
    uint32_t eip;
    uint32_t jmp_at;       /* rel32 field of the inline jump to the tail */
    uint32_t fast;         /* offset of the inline REP instruction's set-up */
    uint32_t done;         /* offset after the inline REP instruction */
    ZydisMnemonic mnemonic;
    ZydisInstructionAttributes rep; /* HAS_REP, HAS_REPE or HAS_REPNE */
    uint8_t size;          /* element size: 1, 2 or 4 */
    bool src, dst;         /* uses ESI, EDI */
    uint8_t fix_arg;       /* XBT_FIX_STRING arg and seg */
    uint16_t fix_seg;
};

/* Translation state of one block. */
typedef struct xbt_tx {
    xbt_translator *tr;
    const xbt_tmode *mode;
    xbt_tblock *b;
    uint32_t len;          /* bytes emitted */
    bool failed;
    ZydisDecoder dec64;    /* for self-checks of emitted code */
    uint32_t n_sites;
    bool fpu_ready;        /* the block already called ctx->fpu_entry */
    uint32_t path_i;       /* a trace: the path entry being laid out */
    uint32_t follow;       /* a trace: go on at this EIP after the branch (~0: stop) */
    bool sti_inline;       /* the instruction being translated is an STI done inline */
    bool gate_due;         /* an inline STI's shadow: the interrupt gate follows the
                              next instruction */
    bool gate_exits;       /* the shadowed instruction is a branch: the gate is in its
                              exits, at its target, or where a trace follows it
                              (translate.c, emit_branch) */
    uint8_t n_prof;        /* a profiled trace: side-exit counters handed out */
    bool soft;             /* a soft fault site's access is next: its guest operand is
                              [R15] with 64-bit addressing and no segment (R15 =
                              ctx->soft_ptr's host address; translate.c, emit_pf_probe) */
    uint16_t pf_tag;       /* the fault site's tag (translator.h, pf_site) for the
                              XBT_CO_PFCHECK callouts of the instruction being checked */
    bool uk_base_lost;     /* XBT_WINDOW_UK: an instruction of this translation used
                              R9 as a scratch since it last held XBT_UK_R9 (emit.c) */
    uint32_t insn_eip;     /* the guest instruction being translated */
    int8_t uk_fast;        /* XBT_WINDOW_UK: its fast form allowed (1), not (0), not
                              asked yet (-1); translator.h, uk_wrap_site */
    bool uk_fast_used;     /* ... and it was used (its pc-map entries say so) */
    bool soft_string;      /* a soft string site's instruction is next: its pointers get
                              ctx->soft_delta, not the window base (emit_string) */
    struct xbt_callout_site sites[XBT_MAX_PENDING_SITES];
    struct xbt_patch site_patches[XBT_MAX_PENDING_SITES];
    uint32_t n_tails;
    struct xbt_string_tail tails[XBT_MAX_STRING_TAILS];
} xbt_tx;

void xbt_tx_fail(xbt_tx *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Operand builders. */
static inline ZydisEncoderOperand xo_reg(ZydisRegister r)
{
    ZydisEncoderOperand o;
    memset(&o, 0, sizeof o);
    o.type = ZYDIS_OPERAND_TYPE_REGISTER;
    o.reg.value = r;
    return o;
}

static inline ZydisEncoderOperand xo_mem(ZydisRegister base, ZydisRegister index, uint8_t scale,
                                         int64_t disp, uint16_t size)
{
    ZydisEncoderOperand o;
    memset(&o, 0, sizeof o);
    o.type = ZYDIS_OPERAND_TYPE_MEMORY;
    o.mem.base = base;
    o.mem.index = index;
    o.mem.scale = index == ZYDIS_REGISTER_NONE ? 0 : scale;
    o.mem.displacement = disp;
    o.mem.size = size;
    return o;
}

static inline ZydisEncoderOperand xo_imm(int64_t v)
{
    ZydisEncoderOperand o;
    memset(&o, 0, sizeof o);
    o.type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    o.imm.s = v;
    return o;
}

/* Encodes req at the current position (machine mode forced to 64-bit). */
void xbt_emit_req(xbt_tx *t, ZydisEncoderRequest *req);
/* Appends n (<= 15) bytes of an instruction as they are (translate.c's copy_as_is
   decides which guest instructions may be). */
void xbt_emit_raw(xbt_tx *t, const uint8_t *bytes, unsigned n);
/* Encodes a request that accesses guest memory: forces and verifies 32-bit addressing. */
void xbt_emit_req_guest(xbt_tx *t, ZydisEncoderRequest *req);
/* XBT_WINDOW_UK: the U-window lies this far below GS's base beyond 4 GiB (its guard). */
#define XBT_UK_GUARD ((int32_t)(XBT_WINDOW_UK_BELOW - (4ull << 30)))
/* XBT_WINDOW_UK: the register that holds XBT_UK_R9 (abi.h) in translated user code. */
#define XBT_UK_BASE_REG ZYDIS_REGISTER_R9
/* The UK form of an access whose 32-bit linear address is in s32 (zero-extended in its
   64-bit register): *m becomes [R9 + s64] (its size kept), R9 loaded first if an
   instruction used it as a scratch.  s32 must be encodable with REX. */
void xbt_emit_uk_form(xbt_tx *t, ZydisRegister s32, ZydisEncoderOperand *m);
/* The same for a legacy register beside AH..DH (no REX): NOT of s32, then of its 64-bit
   register, and *m becomes [s64 - XBT_UK_GUARD]. */
void xbt_emit_uk_form_legacy(xbt_tx *t, ZydisRegister s32, ZydisEncoderOperand *m);
/* mov r9, XBT_UK_R9: the UK base back after a scratch use. */
void xbt_emit_uk_base(xbt_tx *t);

void xbt_emit0(xbt_tx *t, ZydisMnemonic m);
void xbt_emit1(xbt_tx *t, ZydisMnemonic m, ZydisEncoderOperand a);
void xbt_emit2(xbt_tx *t, ZydisMnemonic m, ZydisEncoderOperand a, ZydisEncoderOperand b);
void xbt_emit3(xbt_tx *t, ZydisMnemonic m, ZydisEncoderOperand a, ZydisEncoderOperand b,
               ZydisEncoderOperand c);
/* Same with a guest memory operand (window prefix and 32-bit addressing). */
void xbt_emit2_guest(xbt_tx *t, ZydisMnemonic m, ZydisEncoderOperand a, ZydisEncoderOperand b);

/* Emits jmp/jcc rel32 with a zero displacement; returns the offset of the rel32 field. */
uint32_t xbt_emit_branch32(xbt_tx *t, ZydisMnemonic m);
/* Emits a rel8 branch (loop/jecxz/jrcxz) with 32-bit address size when addr32. */
uint32_t xbt_emit_branch8(xbt_tx *t, ZydisMnemonic m, bool addr32);
void xbt_patch_rel8(xbt_tx *t, uint32_t rel8_off, uint32_t target_off);
void xbt_patch_rel32(xbt_tx *t, uint32_t rel32_off, uint32_t target_off);

/* Window segment prefix for guest memory accesses in this mode (0 in the U-window). */
ZydisInstructionAttributes xbt_window_prefix(const xbt_tx *t);

#endif
