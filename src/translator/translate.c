/*
 * translate.c - one guest basic block to x86-64 host code.
 *
 * Per guest instruction, by class (decoder/classify.c):
 *   copy       re-encoded as itself (ESP renamed to R12D)
 *   memory     re-encoded with the window prefix and 32-bit addressing; segment bases
 *              other than zero are added into R15D first (lea/mov only: no flags)
 *   stack      push/pop/enter/leave/pusha/popa as moves through the window + lea ESP
 *   string     run natively with 64-bit addressing on window-biased RSI/RDI
 *   branches   chainable exits (direct), inline table lookup (indirect)
 *   callouts   privileged and sensitive instructions; a few inline (CLI, PUSHF, ...)
 * Every rewrite does its faulting accesses before it changes guest state, so a host
 * fault maps back to the guest instruction with the guest registers as they were.
 */
#include <stdio.h>

#include "emit.h"
#include "translator.h"

#define R(x) ZYDIS_REGISTER_##x
#define M(x) ZYDIS_MNEMONIC_##x
#define NOREG ZYDIS_REGISTER_NONE

/* Whether the instruction belongs to an SSE generation the mode hides (XBT_TM_HIDE_*). */
static bool isa_hidden(const xbt_insn *in, uint8_t flags)
{
    switch (in->zi.meta.isa_set) {
    case ZYDIS_ISA_SET_SSE: case ZYDIS_ISA_SET_SSEMXCSR: return flags & XBT_TM_HIDE_SSE;
    case ZYDIS_ISA_SET_SSE2: case ZYDIS_ISA_SET_SSE2MMX: return flags & XBT_TM_HIDE_SSE2;
    case ZYDIS_ISA_SET_SSE3: case ZYDIS_ISA_SET_SSE3X87: return flags & XBT_TM_HIDE_SSE3;
    case ZYDIS_ISA_SET_SSSE3: case ZYDIS_ISA_SET_SSSE3MMX: return flags & XBT_TM_HIDE_SSSE3;
    case ZYDIS_ISA_SET_SSE4: return flags & XBT_TM_HIDE_SSE41;
    case ZYDIS_ISA_SET_SSE42: return flags & XBT_TM_HIDE_SSE42;
    default: return false;
    }
}

static const ZydisRegister host32[8] = { R(EAX), R(ECX), R(EDX), R(EBX),
                                         R(R12D), R(EBP), R(ESI), R(EDI) };
static const ZydisRegister host16[8] = { R(AX), R(CX), R(DX), R(BX),
                                         R(R12W), R(BP), R(SI), R(DI) };
static const ZydisRegister host64[8] = { R(RAX), R(RCX), R(RDX), R(RBX),
                                         R(R12), R(RBP), R(RSI), R(RDI) };

void xbt_translator_init(xbt_translator *t)
{
    /* Everything off (callers set what they use: a translator on the stack had
       mmio_shadow, cpuid_inline and rep_one undefined before). */
    memset(t, 0, sizeof *t);
    xbt_decoder_init(&t->dec);
    t->max_insns = XBT_BLOCK_MAX_INSNS;
    t->bmi2 = __builtin_cpu_supports("bmi2");
}

/* Guest register -> the host register that holds it (ESP/SP -> R12D/R12W). */
static ZydisRegister host_reg(ZydisRegister r)
{
    if (r == R(ESP))
        return R(R12D);
    if (r == R(SP))
        return R(R12W);
    return r;
}

static ZydisEncoderOperand ctx_mem(int32_t off, uint16_t size)
{
    return xo_mem(R(R13), NOREG, 0, off, size);
}

static void add_map(xbt_tx *t, uint32_t eip, uint8_t fixup, uint8_t arg, uint16_t seg)
{
    xbt_tblock *b = t->b;
    if (b->n_map && b->map[b->n_map - 1].host_off == t->len) {
        b->map[b->n_map - 1] = (struct xbt_pcmap){ t->len, eip, fixup, arg, seg };
        return;
    }
    if (b->n_map >= XBT_BLOCK_MAX_MAP) {
        xbt_tx_fail(t, "pc map full");
        return;
    }
    b->map[b->n_map++] = (struct xbt_pcmap){ t->len, eip, fixup, arg, seg };
}

/* ------------------------------------------------------------------------------------ */
/* Exits                                                                                */

static void add_exit(xbt_tx *t, uint32_t rel32_off, uint32_t target, uint8_t kind)
{
    xbt_tblock *b = t->b;
    if (t->failed)
        return;
    if (b->n_exits >= XBT_BLOCK_MAX_EXITS) {
        xbt_tx_fail(t, "too many exits");
        return;
    }
    b->exits[b->n_exits++] =
        (struct xbt_texit){ rel32_off, 0, target, kind, 0, XBT_ALT_NONE, t->fpu_ready };
}

/* The instruction just emitted (a MOV, whose immediate is always its last 4 bytes)
   holds guest EIP `eip` there: a relocation (translator.h).  Anything else, or no room
   to record it, leaves the block unshared. */
static void add_reloc(xbt_tblock *b, uint32_t off)
{
    if (b->n_relocs < XBT_BLOCK_MAX_RELOCS)
        b->relocs[b->n_relocs++] = off;
    else
        b->reloc_ok = false;
}

static void add_reloc_last(xbt_tx *t, uint32_t eip)
{
    if (t->failed || t->len < 4 || memcmp(t->b->code + t->len - 4, &eip, 4) != 0)
        t->b->reloc_ok = false;
    else
        add_reloc(t->b, t->len - 4);
}

/* jmp rel32 to a chainable exit for `target`. */
static void emit_direct_exit(xbt_tx *t, uint32_t target, uint8_t kind)
{
    uint32_t at = xbt_emit_branch32(t, M(JMP));
    add_exit(t, at, target, kind);
}

/*
 * Inline indirect-branch lookup: R14D holds the guest target.  No host flag is
 * touched: the mask is a movzx, the compare a not + lea, the test a jrcxz.
 */
static void emit_ibl(xbt_tx *t)
{
    xbt_emit2(t, M(MOVZX), xo_reg(R(R15D)), xo_reg(R(R14W)));
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_IBL_TABLE, 8));
    xbt_emit2(t, M(LEA), xo_reg(R(R15)), xo_mem(R(R15), R(R15), 1, 0, 8));
    xbt_emit2(t, M(LEA), xo_reg(R(R15)), xo_mem(R(R11), R(R15), 8, 0, 8));
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), xo_mem(R(R15), NOREG, 0, 0, 8));
    xbt_emit1(t, M(NOT), xo_reg(R(R11)));
    xbt_emit2(t, M(LEA), xo_reg(R(R11)), xo_mem(R(R11), R(R14), 1, 1, 8));
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R11)));
    uint32_t hit = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    xbt_emit1(t, M(JMP), ctx_mem(XBT_CTX_EXIT_INDIRECT, 8));
    xbt_patch_rel8(t, hit, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    xbt_emit1(t, M(JMP), xo_mem(R(R15), NOREG, 0, 8, 8));
}

/* ------------------------------------------------------------------------------------ */
/* Guest memory operands                                                                */

static bool seg_needs_base(const xbt_tx *t, int seg)
{
    if (seg == XBT_FS || seg == XBT_GS)
        return true;
    return seg >= 0 && (t->mode->segbase_mask & (1u << seg));
}

/* Guest memory operand as the CPU would address it, ESP renamed, no segment. */
static ZydisEncoderOperand plain_mem(const ZydisDecodedOperand *op, int32_t extra)
{
    ZydisRegister base = op->mem.base == NOREG ? NOREG : host_reg(op->mem.base);
    ZydisRegister index = op->mem.index == NOREG ? NOREG : host_reg(op->mem.index);
    int32_t disp = (int32_t)((uint32_t)op->mem.disp.value + (uint32_t)extra);
    return xo_mem(base, index, op->mem.scale, disp, (uint16_t)(op->size / 8));
}

/* lea R15D, [seg base + address], all 32-bit wrapping, no flags touched. */
static void emit_callout(xbt_tx *t, const xbt_insn *in, unsigned kind);

static bool seg_needs_limit(const xbt_tx *t, int seg)
{
    return seg >= 0 && (t->mode->seglimit_mask & (1u << seg));
}

/*
 * The offset in R15D against an expand-up segment's limit: offset + size - 1 must not
 * pass ctx->seg_limit[seg], else #GP(0) (#SS(0) for SS) before the access.  Flags are
 * kept with PUSHFQ/POPFQ around the compare (limit-checked segments are rare: Linux's
 * stack-protector GS is one); R8 and R9 are free here (R9 loaded again in UK code).
 */
static void emit_limit_check(xbt_tx *t, const xbt_insn *in, int seg, uint32_t size)
{
    if (size == 0)
        size = 1;
    xbt_emit0(t, M(PUSHFQ));
    xbt_emit2(t, M(LEA), xo_reg(R(R8)), xo_mem(R(R15), NOREG, 0, (int32_t)size - 1, 8));
    xbt_emit2(t, M(MOV), xo_reg(R(R9D)), ctx_mem(XBT_CTX_SEG_LIMIT + 4 * seg, 4));
    xbt_emit2(t, M(CMP), xo_reg(R(R8)), xo_reg(R(R9)));
    if (t->uk_base_lost)
        xbt_emit_uk_base(t); /* flag-free: R9 the U-window's base on both paths */
    uint32_t bad = xbt_emit_branch8(t, M(JNBE), false);
    xbt_emit0(t, M(POPFQ));
    uint32_t over = xbt_emit_branch8(t, M(JMP), false);
    xbt_patch_rel8(t, bad, t->len);
    xbt_emit0(t, M(POPFQ));
    emit_callout(t, in, seg == XBT_SS ? XBT_CO_SS0 : XBT_CO_GP0);
    xbt_patch_rel8(t, over, t->len);
}

/* R15D = the operand's segment base + its offset + `plus` * scale (plus NOREG: none),
   the sum wrapped as the address size wraps it and checked against the segment's limit
   where the mode checks limits. */
static void emit_linear_plus_to_r15(xbt_tx *t, const xbt_insn *in, const ZydisDecodedOperand *op,
                                    int32_t extra, ZydisRegister plus, uint8_t scale)
{
    if (in->flags & XBT_IF_ADDR16) {
        /* 16-bit addressing: (base16 + index16 + disp16) mod 64 KiB. */
        ZydisRegister base = NOREG, index = NOREG;
        if (op->mem.base != NOREG)
            base = host32[xbt_gpr_index(op->mem.base)];
        if (op->mem.index != NOREG)
            index = host32[xbt_gpr_index(op->mem.index)];
        int32_t disp = (int32_t)((uint32_t)op->mem.disp.value + (uint32_t)extra);
        if (base == NOREG && index == NOREG && plus == NOREG) {
            xbt_emit2(t, M(MOV), xo_reg(R(R15D)), xo_imm((uint16_t)disp));
        } else {
            if (base == NOREG && index == NOREG)
                xbt_emit2(t, M(MOV), xo_reg(R(R15D)), xo_imm(disp));
            else
                xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(base, index, 1, disp, 4));
            if (plus != NOREG)
                xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(R(R15D), plus, scale, 0, 4));
            xbt_emit2(t, M(MOVZX), xo_reg(R(R15D)), xo_reg(R(R15W)));
        }
    } else {
        ZydisEncoderOperand m = plain_mem(op, extra);
        if (m.mem.base == NOREG && m.mem.index == NOREG)
            xbt_emit2(t, M(MOV), xo_reg(R(R15D)), xo_imm((int32_t)m.mem.displacement));
        else {
            m.mem.size = 4;
            xbt_emit2(t, M(LEA), xo_reg(R(R15D)), m);
        }
        if (plus != NOREG)
            xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(R(R15D), plus, scale, 0, 4));
    }
    int seg = xbt_seg_index(op->mem.segment);
    if (seg_needs_limit(t, seg))
        emit_limit_check(t, in, seg, (uint32_t)(op->size / 8));
    if (seg_needs_base(t, seg)) {
        xbt_emit2(t, M(MOV), xo_reg(R(R11D)), ctx_mem(XBT_CTX_SEG_BASE + 4 * seg, 4));
        xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(R(R15D), R(R11D), 1, 0, 4));
    }
}

static void emit_linear_to_r15(xbt_tx *t, const xbt_insn *in, const ZydisDecodedOperand *op,
                               int32_t extra)
{
    emit_linear_plus_to_r15(t, in, op, extra, NOREG, 0);
}

/* The prefetch hints: their memory operand is an address, never accessed, and they
   raise nothing through it. */
static bool is_prefetch(ZydisMnemonic mn)
{
    return mn == M(PREFETCHNTA) || mn == M(PREFETCHT0) || mn == M(PREFETCHT1) ||
           mn == M(PREFETCHT2) || mn == M(PREFETCHW) || mn == M(PREFETCH) ||
           mn == M(PREFETCHWT1);
}

/* A REP, REPE or REPNE prefix (F3 or F2). */
static bool rep_prefixed(const xbt_insn *in)
{
    return in->zi.attributes &
           (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE);
}

/* Does the guest operand need its linear address computed into R15D first? */
static bool mem_needs_r15(const xbt_tx *t, const xbt_insn *in, const ZydisDecodedOperand *op)
{
    int seg = xbt_seg_index(op->mem.segment);
    return (in->flags & XBT_IF_ADDR16) || seg_needs_base(t, seg) || seg_needs_limit(t, seg);
}

/*
 * Produces the host memory operand for guest memory operand op (plus extra bytes of
 * displacement), emitting the address computation if one is needed.
 */
static ZydisEncoderOperand guest_mem(xbt_tx *t, const xbt_insn *in, const ZydisDecodedOperand *op,
                                     int32_t extra)
{
    if (t->soft) /* R15 holds the host address already (emit_pf_probe) */
        return xo_mem(R(R15), NOREG, 0, 0, (uint16_t)(op->size / 8));
    if (mem_needs_r15(t, in, op)) {
        emit_linear_to_r15(t, in, op, extra);
        return xo_mem(R(R15D), NOREG, 0, 0, (uint16_t)(op->size / 8));
    }
    return plain_mem(op, extra);
}

/* Does the host form of this operand need a REX prefix (R12 or R15 in it)? */
static bool mem_needs_rex(const ZydisEncoderOperand *m)
{
    ZydisRegister b = m->mem.base, i = m->mem.index;
    return b == R(R12D) || b == R(R15D) || i == R(R12D) || i == R(R15D);
}

/* ------------------------------------------------------------------------------------ */
/* Callouts                                                                             */

static uint8_t log2_size(unsigned bytes) { return bytes == 4 ? 2 : bytes == 2 ? 1 : 0; }

/* The XBT_MMIO_FORM_* of an MMIO site's instruction (abi.h), *reg its general register;
   0 where the runtime must decode it (mmio.c's general path). */
static uint8_t mmio_form(const xbt_insn *in, uint8_t *reg)
{
    ZydisMnemonic mn = in->zi.mnemonic;
    if ((mn != M(MOV) && mn != M(MOVZX) && mn != M(MOVSX)) || in->mem_op < 0 ||
        in->mem_op > 1 || in->zi.operand_count_visible != 2)
        return 0;
    const ZydisDecodedOperand *mem = &in->ops[in->mem_op], *other = &in->ops[1 - in->mem_op];
    unsigned size = mem->size / 8;
    if (mem->type != ZYDIS_OPERAND_TYPE_MEMORY || mem->mem.type != ZYDIS_MEMOP_TYPE_MEM ||
        (size != 1 && size != 2 && size != 4))
        return 0;
    bool store = in->mem_op == 0;
    uint8_t f = XBT_MMIO_FORM_PLAIN | log2_size(size);
    if (store)
        f |= XBT_MMIO_FORM_STORE;
    if (mn == M(MOVSX))
        f |= XBT_MMIO_FORM_SIGN;
    if (other->type == ZYDIS_OPERAND_TYPE_IMMEDIATE && store && mn == M(MOV))
        return f | XBT_MMIO_FORM_IMM | (uint8_t)(log2_size(size) << 2);
    if (other->type != ZYDIS_OPERAND_TYPE_REGISTER || xbt_gpr_index(other->reg.value) < 0)
        return 0;
    unsigned rsize = other->size / 8;
    if ((rsize != 1 && rsize != 2 && rsize != 4) || (store && rsize != size))
        return 0;
    *reg = (uint8_t)(xbt_gpr_index(other->reg.value) |
                     (xbt_reg_is_high8(other->reg.value) ? 0x80 : 0));
    return f | (uint8_t)(log2_size(rsize) << 2);
}

static void emit_callout(xbt_tx *t, const xbt_insn *in, unsigned kind)
{
    struct xbt_callout_site s;
    memset(&s, 0, sizeof s);
    s.eip = in->eip;
    s.mnemonic = (uint16_t)in->zi.mnemonic;
    s.kind = (uint8_t)kind;
    s.len = in->length;
    s.reg = 0xFF;
    s.reg2 = 0xFF;
    s.opsize = (uint8_t)(in->zi.operand_width / 8);
    if (in->flags & XBT_IF_ENDS_BLOCK)
        s.flags |= XBT_COF_ENDS_BLOCK;
    if (rep_prefixed(in))
        s.flags |= XBT_COF_REP;
    if (in->zi.address_width == 16)
        s.flags |= XBT_COF_ADDR16;
    s.seg = in->seg;
    for (unsigned i = 0; i < in->zi.operand_count && kind == XBT_CO_OUTS; i++) {
        const ZydisDecodedOperand *op = &in->ops[i]; /* OUTS's source: DS or an override */
        if (op->type == ZYDIS_OPERAND_TYPE_MEMORY && xbt_gpr_index(op->mem.base) == XBT_ESI)
            s.seg = (uint8_t)xbt_seg_index(op->mem.segment);
    }

    for (unsigned i = 0; i < in->zi.operand_count; i++) {
        const ZydisDecodedOperand *op = &in->ops[i];
        if (op->visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN)
            continue;
        switch (op->type) {
        case ZYDIS_OPERAND_TYPE_REGISTER: {
            ZydisRegisterClass rc = ZydisRegisterGetClass(op->reg.value);
            if (rc == ZYDIS_REGCLASS_CONTROL || rc == ZYDIS_REGCLASS_DEBUG)
                s.reg2 = (uint8_t)ZydisRegisterGetId(op->reg.value);
            else if (rc == ZYDIS_REGCLASS_SEGMENT)
                s.reg2 = (uint8_t)xbt_seg_index(op->reg.value);
            else if (xbt_gpr_index(op->reg.value) >= 0 && s.reg != 0xFF && s.reg2 == 0xFF &&
                     op->visibility == ZYDIS_OPERAND_VISIBILITY_EXPLICIT)
                s.reg2 = (uint8_t)(xbt_gpr_index(op->reg.value) |
                                   (xbt_reg_is_high8(op->reg.value) ? 0x80 : 0));
            else if (xbt_gpr_index(op->reg.value) >= 0 && s.reg == 0xFF &&
                     op->visibility == ZYDIS_OPERAND_VISIBILITY_EXPLICIT) {
                s.reg = (uint8_t)xbt_gpr_index(op->reg.value);
                if (rc == ZYDIS_REGCLASS_GPR8 || rc == ZYDIS_REGCLASS_GPR16 ||
                    rc == ZYDIS_REGCLASS_GPR32)
                    s.opsize = (uint8_t)(op->size / 8);
                if (xbt_reg_is_high8(op->reg.value))
                    s.reg |= 0x80; /* AH..BH: bits 8-15 of the register */
            }
            break;
        }
        case ZYDIS_OPERAND_TYPE_MEMORY:
            if (op->mem.type == ZYDIS_MEMOP_TYPE_MEM && i == (unsigned)in->mem_op) {
                s.flags |= XBT_COF_HAS_MEM;
                s.opsize = (uint8_t)(op->size / 8);
            }
            break;
        case ZYDIS_OPERAND_TYPE_IMMEDIATE:
            s.imm = (uint32_t)op->imm.value.u;
            if (kind == XBT_CO_IN || kind == XBT_CO_OUT)
                s.flags |= XBT_COF_IMM_PORT;
            break;
        case ZYDIS_OPERAND_TYPE_POINTER:
            s.imm = op->ptr.offset;
            s.imm_sel = op->ptr.segment;
            s.opsize = (uint8_t)(op->size / 8);
            break;
        default:
            break;
        }
    }
    /* IN/OUT: the data register's size is the operand size. */
    if (kind == XBT_CO_IN || kind == XBT_CO_OUT || kind == XBT_CO_INS || kind == XBT_CO_OUTS) {
        s.opsize = (uint8_t)(in->zi.operand_width / 8);
        for (unsigned i = 0; i < in->zi.operand_count; i++)
            if (in->ops[i].type == ZYDIS_OPERAND_TYPE_REGISTER &&
                xbt_gpr_index(in->ops[i].reg.value) == XBT_EAX)
                s.opsize = (uint8_t)(in->ops[i].size / 8);
        s.reg = 0xFF;
    }

    if (kind == XBT_CO_MMIO)
        s.mmio = mmio_form(in, &s.reg);
    if (xbt_co_fast_kind(kind))
        s.flags |= XBT_COF_FAST;

    /* The operand's linear address for the handler; not for the fault-only kinds that
       the address computation itself emits (limit checks) or that need none. */
    bool fault_only = kind == XBT_CO_GP0 || kind == XBT_CO_SS0 || kind == XBT_CO_DE ||
                      kind == XBT_CO_PFCHECK; /* R15D holds it already (emit_pf_check) */
    if (fault_only)
        s.flags &= (uint8_t)~XBT_COF_HAS_MEM;
    if ((s.flags & XBT_COF_HAS_MEM) && in->mem_op >= 0)
        emit_linear_to_r15(t, in, &in->ops[in->mem_op], 0);

    if (t->n_sites >= XBT_MAX_PENDING_SITES) {
        xbt_tx_fail(t, "too many callout sites");
        return;
    }
    uint32_t idx = t->n_sites++;
    t->sites[idx] = s;
    /* lea r11, [rip + site]: the displacement is patched once sites are placed. */
    xbt_emit2(t, M(LEA), xo_reg(R(R11)), xo_mem(R(RIP), NOREG, 0, 0x7fffff00, 8));
    t->site_patches[idx] = (struct xbt_patch){ t->len - 4, t->len, idx };
    xbt_emit1(t, M(CALL), ctx_mem(XBT_CTX_CALLOUT, 8));
    t->b->stats.callouts++;
    /* A full handler saves the guest's x87/SSE state and may resume in this block
       (a handler that returns, a port answered by the embedder): the next x87/SSE
       instruction here loads it again through ctx->fpu_entry (a bare RET when the fast
       path kept it loaded). */
    t->fpu_ready = false;
}

/* ------------------------------------------------------------------------------------ */
/* Re-encoding of ordinary instructions                                                 */

static void strip_prefixes(ZydisEncoderRequest *r)
{
    r->prefixes &= ~(ZydisInstructionAttributes)(
        ZYDIS_ATTRIB_HAS_SEGMENT_CS | ZYDIS_ATTRIB_HAS_SEGMENT_SS | ZYDIS_ATTRIB_HAS_SEGMENT_DS |
        ZYDIS_ATTRIB_HAS_SEGMENT_ES | ZYDIS_ATTRIB_HAS_SEGMENT_FS | ZYDIS_ATTRIB_HAS_SEGMENT_GS |
        ZYDIS_ATTRIB_HAS_BRANCH_NOT_TAKEN | ZYDIS_ATTRIB_HAS_BRANCH_TAKEN |
        ZYDIS_ATTRIB_HAS_NOTRACK | ZYDIS_ATTRIB_HAS_BND);
}

static bool to_request(xbt_tx *t, const xbt_insn *in, ZydisEncoderRequest *r)
{
    ZyanStatus s = ZydisEncoderDecodedInstructionToEncoderRequest(
        &in->zi, in->ops, in->zi.operand_count_visible, r);
    if (!ZYAN_SUCCESS(s)) {
        xbt_tx_fail(t, "cannot convert %s at %08x", ZydisMnemonicGetString(in->zi.mnemonic),
                    in->eip);
        return false;
    }
    r->machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    if (r->mnemonic == ZYDIS_MNEMONIC_TZCNT || r->mnemonic == ZYDIS_MNEMONIC_LZCNT) {
        /* The virtual CPU has no BMI1/ABM: F3 0F BC/BD execute as BSF/BSR (the host
           has them, so the plain form must be emitted). */
        r->mnemonic = r->mnemonic == ZYDIS_MNEMONIC_TZCNT ? ZYDIS_MNEMONIC_BSF
                                                         : ZYDIS_MNEMONIC_BSR;
        r->prefixes &= ~(ZydisInstructionAttributes)(ZYDIS_ATTRIB_HAS_REP |
                                                     ZYDIS_ATTRIB_HAS_REPE);
    }
    /* A guest 0x67 prefix means 16-bit addressing, which 64-bit mode lacks; memory
       operands get their address size from the rewrite (always 32-bit). */
    r->address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_NONE;
    strip_prefixes(r);
    for (unsigned i = 0; i < r->operand_count; i++)
        if (r->operands[i].type == ZYDIS_OPERAND_TYPE_REGISTER)
            r->operands[i].reg.value = host_reg(r->operands[i].reg.value);
    return true;
}

/* Picks a guest GPR (never ESP) the instruction does not name at all. */
static int free_legacy_reg(const xbt_insn *in)
{
    unsigned used = 1u << XBT_ESP;
    for (unsigned i = 0; i < in->zi.operand_count; i++) {
        const ZydisDecodedOperand *op = &in->ops[i];
        if (op->type == ZYDIS_OPERAND_TYPE_REGISTER && xbt_gpr_index(op->reg.value) >= 0)
            used |= 1u << xbt_gpr_index(op->reg.value);
        if (op->type == ZYDIS_OPERAND_TYPE_MEMORY) {
            if (xbt_gpr_index(op->mem.base) >= 0)
                used |= 1u << xbt_gpr_index(op->mem.base);
            if (xbt_gpr_index(op->mem.index) >= 0)
                used |= 1u << xbt_gpr_index(op->mem.index);
        }
    }
    for (int r = 0; r < 8; r++)
        if (!(used & (1u << r)))
            return r;
    return -1;
}

/* BT/BTS/BTR/BTC m, r: the register is a signed bit offset that moves the address. */
static bool bt_reg_offset(const xbt_insn *in)
{
    ZydisMnemonic m = in->zi.mnemonic;
    return (m == M(BT) || m == M(BTS) || m == M(BTR) || m == M(BTC)) &&
           in->ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY &&
           in->ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER;
}

/* R10D = the bit offset register `off` SAR log2(8s): the count of words (s = 2) or
   dwords (s = 4) BTx m, r moves its access by.  Flag-free (R11 scratch). */
static void emit_bt_shift(xbt_tx *t, ZydisRegister off, bool w16)
{
    if (!t->tr->bmi2) { /* SAR inside PUSHFQ/POPFQ: flags kept */
        xbt_emit0(t, M(PUSHFQ));
        xbt_emit2(t, w16 ? M(MOVSX) : M(MOV), xo_reg(R(R10D)), xo_reg(off));
        xbt_emit2(t, M(SAR), xo_reg(R(R10D)), xo_imm(w16 ? 4 : 5));
        xbt_emit0(t, M(POPFQ));
    } else if (w16) {
        xbt_emit2(t, M(MOVSX), xo_reg(R(R10D)), xo_reg(off));
        xbt_emit2(t, M(MOV), xo_reg(R(R11D)), xo_imm(4));
        xbt_emit3(t, M(SARX), xo_reg(R(R10D)), xo_reg(R(R10D)), xo_reg(R(R11D)));
    } else {
        xbt_emit2(t, M(MOV), xo_reg(R(R11D)), xo_imm(5));
        xbt_emit3(t, M(SARX), xo_reg(R(R10D)), xo_reg(off), xo_reg(R(R11D)));
    }
}

/*
 * BTx m, r where the offset needs its own arithmetic: 16-bit addressing (the CPU adds
 * s * q to the 16-bit offset, which wraps at 64 KiB) or a segment whose limit the mode
 * checks (the CPU checks the word it reaches, not the one at the operand's offset).
 * R15D = the linear address of that word or dword (emit_linear_plus_to_r15 with R10D =
 * q added in the address size), then R10 = the bit index within it (offset - 8s * q,
 * by LEA and NOT: flag-free), which the instruction takes as its offset register: the
 * CPU adds nothing to the address then.
 */
static ZydisEncoderOperand emit_bt_linear(xbt_tx *t, const xbt_insn *in, ZydisEncoderRequest *r,
                                          int mi)
{
    ZydisRegister off = r->operands[1].reg.value;
    bool w16 = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, off) == 16;
    uint8_t s = w16 ? 2 : 4;
    emit_bt_shift(t, off, w16);
    emit_linear_plus_to_r15(t, in, &in->ops[mi], 0, R(R10D), s);
    xbt_emit2(t, M(LEA), xo_reg(R(R11D)), xo_mem(NOREG, R(R10D), 8, 0, 4));      /* 8q */
    xbt_emit2(t, M(LEA), xo_reg(R(R11D)), xo_mem(NOREG, R(R11D), s, 0, 4));      /* 8sq */
    xbt_emit1(t, M(NOT), xo_reg(R(R11D)));                                       /* -8sq-1 */
    xbt_emit2(t, w16 ? M(MOVSX) : M(MOV), xo_reg(R(R10D)), xo_reg(off));
    xbt_emit2(t, M(LEA), xo_reg(R(R10D)), xo_mem(R(R10D), R(R11D), 1, 1, 4));  /* off-8sq */
    r->operands[1].reg.value = w16 ? R(R10W) : R(R10D);
    return xo_mem(R(R15D), NOREG, 0, 0, (uint16_t)(in->ops[mi].size / 8));
}

/*
 * BTx m, r in the UK layout.  The CPU adds s * (offset SAR log2(8s)) (s = 2 or 4 bytes)
 * to the address in the address size: with UK's 64-bit addressing that sum would
 * neither wrap at 4 GiB nor stay in the user window (it reaches 256 MiB either way, the
 * K-window among it).  So the dword's linear address T = EA + s * q (q the shifted
 * offset) is computed with 32-bit LEAs (R10 = q, R11 = T), made the U-window form
 * [R9 + R11], and s * q taken back out of R11 (64-bit), which the CPU then adds again:
 * the access is at U-window base + T, with the bit index the CPU takes from the
 * register.
 * Flag-free (SARX, LEA, NOT, MOVSX/MOVSXD; SAR between PUSHFQ and POPFQ on a host
 * without BMI2).  16-bit addressing and limit-checked segments take emit_bt_linear.
 */
static void emit_uk_bt(xbt_tx *t, ZydisEncoderRequest *r, int mi, ZydisEncoderOperand m)
{
    ZydisRegister off = r->operands[1].reg.value;
    bool w16 = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, off) == 16;
    uint8_t s = w16 ? 2 : 4;
    emit_bt_shift(t, off, w16);
    xbt_emit2(t, M(MOVSXD), xo_reg(R(R10)), xo_reg(R(R10D)));
    ZydisEncoderOperand a = m;
    a.mem.size = 4;
    xbt_emit2(t, M(LEA), xo_reg(R(R11D)), a);
    xbt_emit2(t, M(LEA), xo_reg(R(R11D)), xo_mem(R(R11D), R(R10D), s, 0, 4));
    xbt_emit_uk_form(t, R(R11D), &r->operands[mi]);
    xbt_emit1(t, M(NOT), xo_reg(R(R10)));
    xbt_emit2(t, M(LEA), xo_reg(R(R11)), xo_mem(R(R11), R(R10), s, s, 8));
    r->prefixes |= xbt_window_prefix(t);
    r->address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_64;
    xbt_emit_req(t, r);
}

/* One-byte opcodes that 64-bit mode decodes otherwise (REX, VEX, EVEX) or not at all;
   none of them is a register-only copy, but the bytes are checked, not the class. */
static bool opcode_differs_in_64(uint8_t op)
{
    switch (op) {
    case 0x06: case 0x07: case 0x0E: case 0x16: case 0x17: case 0x1E: case 0x1F:
    case 0x27: case 0x2F: case 0x37: case 0x3F: case 0x60: case 0x61: case 0x62:
    case 0x63: case 0x82: case 0x9A: case 0xC4: case 0xC5: case 0xCE: case 0xD4:
    case 0xD5: case 0xD6: case 0xEA:
        return true;
    default:
        return (op & 0xF0) == 0x40; /* INC and DEC r32: REX prefixes */
    }
}

/*
 * Whether the guest's bytes of a register-only instruction of 32-bit code are their own
 * translation: what they mean to the host in 64-bit mode is what they mean to the
 * virtual CPU, so the request that emit_copy would build and encode is skipped (a third
 * of the instructions of libc, at half the cost of translating one).  That holds for a
 * legacy encoding (no VEX, EVEX, XOP, 3DNow!, whose register fields 32-bit mode reads
 * differently) with no memory operand, no ESP (R12D on the host) and no register but
 * general-purpose, x87, MMX, XMM ones and the flags, at most one prefix and that an
 * operand-size or a mandatory one (segment overrides, LOCK, ignored REP, address size:
 * none gets through), and an opcode whose meaning 64-bit mode keeps, which the default
 * operand size of 32 bits then keeps as well (the instructions that 64-bit mode widens
 * to 64 bits are stack and branch instructions, or privileged: not copies).  TZCNT and
 * LZCNT are rewritten (to_request), so not copied.  tests/translator/test_translator.c
 * compares the host's decoding of the copied bytes with that of the encoder's.
 */
static bool copy_as_is(const xbt_insn *in)
{
    const ZydisDecodedInstruction *zi = &in->zi;
    if (zi->machine_mode != ZYDIS_MACHINE_MODE_LEGACY_32 ||
        zi->encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY ||
        zi->mnemonic == M(TZCNT) || zi->mnemonic == M(LZCNT) || in->length != zi->length ||
        (zi->opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && opcode_differs_in_64(zi->opcode)))
        return false;
    if (zi->raw.prefix_count > 1)
        return false; /* 66 beside a mandatory F2 or F3: the encoder may drop it */
    for (unsigned i = 0; i < zi->raw.prefix_count; i++) {
        uint8_t b = zi->raw.prefixes[i].value;
        ZydisPrefixType ty = zi->raw.prefixes[i].type;
        if (!(b == 0x66 && ty != ZYDIS_PREFIX_TYPE_IGNORED) &&
            !((b == 0xF2 || b == 0xF3 || b == 0x66) && ty == ZYDIS_PREFIX_TYPE_MANDATORY))
            return false;
        if (b == 0x66 && zi->opcode_map == ZYDIS_OPCODE_MAP_DEFAULT &&
            (zi->opcode & 0xF8) == 0xD8)
            return false; /* x87: the encoder drops it (no meaning here; nor a copy) */
    }
    for (unsigned i = 0; i < zi->operand_count; i++) {
        const ZydisDecodedOperand *op = &in->ops[i];
        if (op->type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
            continue;
        if (op->type != ZYDIS_OPERAND_TYPE_REGISTER)
            return false;
        switch (ZydisRegisterGetClass(op->reg.value)) {
        case ZYDIS_REGCLASS_GPR8: case ZYDIS_REGCLASS_GPR16: case ZYDIS_REGCLASS_GPR32:
            if (xbt_gpr_index(op->reg.value) == XBT_ESP && !xbt_reg_is_high8(op->reg.value))
                return false;
            break;
        case ZYDIS_REGCLASS_X87: case ZYDIS_REGCLASS_MMX: case ZYDIS_REGCLASS_XMM:
        case ZYDIS_REGCLASS_FLAGS:
            break;
        default:
            if (op->reg.value != ZYDIS_REGISTER_MXCSR &&
                op->reg.value != ZYDIS_REGISTER_X87CONTROL &&
                op->reg.value != ZYDIS_REGISTER_X87STATUS &&
                op->reg.value != ZYDIS_REGISTER_X87TAG)
                return false;
        }
    }
    return true;
}

/* Copy or readdress: the instruction itself, with its operands moved to the host. */
static void emit_copy(xbt_tx *t, const xbt_insn *in)
{
    if (in->mem_op < 0 && !t->tr->reencode_copies && copy_as_is(in)) {
        xbt_emit_raw(t, in->bytes, in->length);
        t->b->stats.copied++;
        return;
    }
    ZydisMnemonic mn = in->zi.mnemonic;
    if (mn == M(NOP) || (is_prefetch(mn) && in->mem_op >= 0 &&
                         mem_needs_r15(t, in, &in->ops[in->mem_op]))) {
        /* The NOPs, 0F 1F and the hint NOPs (0F 18 /4-7, 0F 19-1E), in every form: the
           register forms re-encoded as 0F 0D /r, which AMD CPUs refuse (#UD where the
           guest has a NOP; found by review, 2026-12-04; 0F 0D's own register form is
           #UD, classify.c), and a memory form went through the address computation of
           its segment, whose limit check gave #GP where the CPU and QEMU TCG access
           nothing and raise nothing (2026-12-04).  A prefetch is a hint too: kept on
           the host where its address is the plain window form, a NOP where computing
           it would check a limit or add a base. */
        static const uint8_t nop = 0x90;
        xbt_emit_raw(t, &nop, 1);
        t->b->stats.copied++;
        return;
    }
    ZydisEncoderRequest r;
    if (!to_request(t, in, &r))
        return;
    int mi = in->mem_op;
    bool agen = false;
    for (unsigned i = 0; i < in->zi.operand_count_visible; i++)
        if (in->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
            in->ops[i].mem.type == ZYDIS_MEMOP_TYPE_AGEN)
            mi = (int)i, agen = true;
    if (mi < 0) {
        int esp_op = -1;
        for (unsigned i = 0; i < r.operand_count; i++)
            if (r.operands[i].type == ZYDIS_OPERAND_TYPE_REGISTER &&
                (r.operands[i].reg.value == R(R12D) || r.operands[i].reg.value == R(R12W)))
                esp_op = (int)i;
        if ((in->flags & XBT_IF_HIGH8) && esp_op >= 0) {
            /* movzx/movsx esp, ah: AH..BH cannot sit beside R12 (REX).  Run it on a
               borrowed legacy register holding ESP; R10 keeps the borrowed value.
               Register-only, so nothing here can fault. */
            int b = free_legacy_reg(in);
            if (b < 0) {
                xbt_tx_fail(t, "no free register for high-byte rewrite at %08x", in->eip);
                return;
            }
            bool w16 = r.operands[esp_op].reg.value == R(R12W);
            xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(host64[b]));
            xbt_emit2(t, M(MOV), xo_reg(host32[b]), xo_reg(R(R12D)));
            r.operands[esp_op].reg.value =
                w16 ? (ZydisRegister)(R(AX) + (host32[b] - R(EAX))) : host32[b];
            xbt_emit_req(t, &r);
            xbt_emit2(t, M(MOV), xo_reg(R(R12D)), xo_reg(host32[b]));
            xbt_emit2(t, M(MOV), xo_reg(host64[b]), xo_reg(R(R10)));
            t->b->stats.rewritten++;
            return;
        }
        xbt_emit_req(t, &r);
        t->b->stats.copied++;
        return;
    }
    const ZydisDecodedOperand *op = &in->ops[mi];
    if (agen) {
        /* LEA: an address computation, not an access: no window, no segment base. */
        if (in->flags & XBT_IF_ADDR16) {
            /* lea r, [16-bit address]: compute the wrapped address, then move it. */
            ZydisDecodedOperand plain = *op;
            plain.mem.segment = NOREG; /* no segment base for an address computation */
            emit_linear_to_r15(t, in, &plain, 0);
            ZydisRegister dst = r.operands[0].reg.value;
            ZydisRegister src = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, dst) == 16
                                    ? R(R15W) : R(R15D);
            xbt_emit2(t, M(MOV), xo_reg(dst), xo_reg(src));
        } else {
            ZydisEncoderOperand m = plain_mem(op, 0);
            r.operands[mi].mem = m.mem;
            r.address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_32;
            xbt_emit_req(t, &r);
        }
        t->b->stats.copied++;
        return;
    }

    bool bt = bt_reg_offset(in), bt_linear = bt && ((in->flags & XBT_IF_ADDR16) ||
                                                  seg_needs_limit(t, xbt_seg_index(op->mem.segment)));
    /* (emit_bt_linear leaves an access the CPU does not move: the usual forms then.) */
    ZydisEncoderOperand m = bt_linear ? emit_bt_linear(t, in, &r, mi) : guest_mem(t, in, op, 0);
    if (t->mode->window == XBT_WINDOW_UK && bt && !bt_linear) {
        emit_uk_bt(t, &r, mi, m);
        t->b->stats.readdressed++;
        return;
    }
    int borrowed = -1;
    if ((in->flags & XBT_IF_HIGH8) &&
        (mem_needs_rex(&m) || t->mode->window == XBT_WINDOW_UK)) {
        /* AH..BH cannot be encoded with REX: borrow a legacy register for the address
           and keep its guest value in R10 (XBT_FIX_SAVED_REG) meanwhile. */
        borrowed = free_legacy_reg(in);
        if (borrowed < 0) {
            xbt_tx_fail(t, "no free register for high-byte rewrite at %08x", in->eip);
            return;
        }
        xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(host64[borrowed]));
        ZydisEncoderOperand a = m;
        a.mem.size = 4;
        xbt_emit2(t, M(LEA), xo_reg(host32[borrowed]), a);
        m = xo_mem(host32[borrowed], NOREG, 0, 0, m.mem.size);
        add_map(t, in->eip, XBT_FIX_SAVED_REG, (uint8_t)borrowed, 0);
    }
    r.operands[mi].mem = m.mem;
    r.prefixes |= xbt_window_prefix(t);
    xbt_emit_req_guest(t, &r);
    if (borrowed >= 0) {
        add_map(t, in->eip, XBT_FIX_NONE, 0, 0);
        xbt_emit2(t, M(MOV), xo_reg(host64[borrowed]), xo_reg(R(R10)));
    }
    t->b->stats.readdressed++;
}

/* ------------------------------------------------------------------------------------ */
/* Stack                                                                                */

/*
 * The register to address SS:[reg + disp] with (reg: R12D for ESP, EBP for ENTER and
 * LEAVE).  A flat SS: reg itself.  SS with a base: `into` = SS.base + reg, built with
 * mov/lea (no flags); [into + disp] with 32-bit address size then wraps base + offset
 * at 4 GiB as the CPU does.  R11 is the scratch here, so is `into` (R15D or R8D).
 */
static ZydisRegister stack_base(xbt_tx *t, ZydisRegister reg, ZydisRegister into)
{
    if (!seg_needs_base(t, XBT_SS) || t->soft) /* soft: R15 is the host address */
        return reg;
    xbt_emit2(t, M(MOV), xo_reg(R(R11D)), ctx_mem(XBT_CTX_SEG_BASE + 4 * XBT_SS, 4));
    xbt_emit2(t, M(LEA), xo_reg(into), xo_mem(reg, R(R11D), 1, 0, 4));
    return into;
}

static bool stack16(const xbt_tx *t)
{
    return (t->mode->size16 & XBT_TS_STACK16) != 0;
}

/* Where an implicit stack access goes: SS:[SP + disp] is [reg + disp - bias].  On a
   16-bit stack (wrap16) each access at another disp rebuilds reg (R15D) for that disp:
   every element wraps at 64 KiB by itself, as the CPU's do (PUSHA at SP = 6 writes AX
   at SS:0004 and DI at SS:0xFFF8). */
typedef struct xbt_stk {
    ZydisRegister reg;
    int32_t bias;
    bool wrap16;
} xbt_stk;

/* SS + zx16(reg + lo) into `into` (a 16-bit stack's wrap of SP or BP), R11 scratch. */
static void emit_stack16_addr(xbt_tx *t, ZydisRegister reg64, int32_t lo, ZydisRegister into)
{
    xbt_emit2(t, M(LEA), xo_reg(into), xo_mem(reg64, NOREG, 0, lo, 8));
    ZydisRegister into16 = (ZydisRegister)(into == R(R15D) ? R(R15W) : R(R8W));
    xbt_emit2(t, M(MOVZX), xo_reg(into), xo_reg(into16));
    if (seg_needs_base(t, XBT_SS)) {
        xbt_emit2(t, M(MOV), xo_reg(R(R11D)), ctx_mem(XBT_CTX_SEG_BASE + 4 * XBT_SS, 4));
        xbt_emit2(t, M(LEA), xo_reg(into), xo_mem(into, R(R11D), 1, 0, 4));
    }
}

/*
 * The stack area the instruction touches, from SP + lo up.  A 32-bit stack: R12D (or
 * R15D = SS.base + ESP), no bias.  A 16-bit stack (SS.B clear): R15D = SS.base +
 * ((SP + lo) mod 64 KiB), so a push at SP = 0 writes at SS:0xFFFE as the CPU does; the
 * accesses of one instruction are contiguous from there (an area that itself crosses
 * the 64 KiB wrap, e.g. PUSHA at SP = 6, is not split: the limit check a CPU makes
 * there is not made either).
 */
static xbt_stk stack_at(xbt_tx *t, int32_t lo)
{
    if (!stack16(t))
        return (xbt_stk){ stack_base(t, R(R12D), R(R15D)), 0, false };
    emit_stack16_addr(t, R(R12), lo, R(R15D));
    return (xbt_stk){ R(R15D), lo, true };
}

/* The host operand of SS:[SP + disp] (a 16-bit stack: R15D rebuilt for disp first). */
static ZydisEncoderOperand stack_mem(xbt_tx *t, xbt_stk *sp, int32_t disp, uint16_t size)
{
    if (sp->wrap16 && disp != sp->bias) {
        emit_stack16_addr(t, R(R12), disp, R(R15D));
        sp->bias = disp;
    }
    return xo_mem(sp->reg, NOREG, 0, disp - sp->bias, size);
}

/* mov SS:[SP + disp], src  (size bytes). */
static void emit_stack_store(xbt_tx *t, xbt_stk *sp, int32_t disp, ZydisEncoderOperand src,
                             uint16_t size)
{
    xbt_emit2_guest(t, M(MOV), stack_mem(t, sp, disp, size), src);
}

/* mov dst, SS:[SP + disp]. */
static void emit_stack_load(xbt_tx *t, xbt_stk *sp, int32_t disp, ZydisRegister dst,
                            uint16_t size)
{
    xbt_emit2_guest(t, M(MOV), xo_reg(dst), stack_mem(t, sp, disp, size));
}

/* Pushes src (sz bytes) at SS:[SP - sz]; the caller moves SP. */
static void emit_push_value(xbt_tx *t, uint16_t sz, ZydisEncoderOperand src)
{
    xbt_stk sp = stack_at(t, -sz);
    emit_stack_store(t, &sp, -sz, src, sz);
}

/* ESP += delta; a 16-bit stack moves SP only (mod 64 KiB, ESP's upper half kept). */
static void emit_esp_add(xbt_tx *t, int32_t delta)
{
    if (stack16(t))
        xbt_emit2(t, M(LEA), xo_reg(R(R12W)), xo_mem(R(R12), NOREG, 0, delta, 8));
    else
        xbt_emit2(t, M(LEA), xo_reg(R(R12D)), xo_mem(R(R12D), NOREG, 0, delta, 4));
}

static void emit_push(xbt_tx *t, const xbt_insn *in)
{
    const ZydisDecodedOperand *op = &in->ops[0];
    uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
    ZydisRegister tmp = sz == 2 ? R(R14W) : R(R14D);
    switch (op->type) {
    case ZYDIS_OPERAND_TYPE_REGISTER: {
        int seg = xbt_seg_index(op->reg.value);
        if (seg >= 0) {
            /* PUSH Sreg: the virtual selector, zero-extended to the operand size. */
            xbt_emit2(t, M(MOVZX), xo_reg(R(R14D)), ctx_mem(XBT_CTX_SEG_SEL + 2 * seg, 2));
            emit_push_value(t, sz, xo_reg(tmp));
        } else {
            /* PUSH SP/ESP pushes the value before the push: R12 is read before the
               stack pointer moves. */
            emit_push_value(t, sz, xo_reg(host_reg(op->reg.value)));
        }
        break;
    }
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        emit_push_value(t, sz,
                        xo_imm(sz == 2 ? (int16_t)op->imm.value.s : (int32_t)op->imm.value.s));
        break;
    case ZYDIS_OPERAND_TYPE_MEMORY: {
        /* The operand first (it may use R15 and R11 itself), then the stack address. */
        ZydisEncoderOperand m = guest_mem(t, in, op, 0);
        xbt_emit2_guest(t, M(MOV), xo_reg(tmp), m);
        emit_push_value(t, sz, xo_reg(tmp));
        break;
    }
    default:
        xbt_tx_fail(t, "push operand");
        return;
    }
    emit_esp_add(t, -sz);
}

static void emit_pop(xbt_tx *t, const xbt_insn *in)
{
    const ZydisDecodedOperand *op = &in->ops[0];
    uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
    xbt_stk top = stack_at(t, 0);
    if (op->type == ZYDIS_OPERAND_TYPE_REGISTER) {
        ZydisRegister h = host_reg(op->reg.value);
        emit_stack_load(t, &top, 0, h, sz);
        if (h != R(R12D) && h != R(R12W))
            emit_esp_add(t, sz);
        /* pop esp: ESP is the value read; pop sp: only the low half is replaced. */
        return;
    }
    /* pop r/m: the address is computed with ESP already incremented. */
    ZydisRegister tmp = sz == 2 ? R(R14W) : R(R14D);
    emit_stack_load(t, &top, 0, tmp, sz);
    int32_t extra = 0;
    if (xbt_gpr_index(op->mem.base) == XBT_ESP)
        extra = sz;
    ZydisEncoderOperand m = guest_mem(t, in, op, extra);
    xbt_emit2_guest(t, M(MOV), m, xo_reg(tmp));
    emit_esp_add(t, sz);
}

static void emit_pusha(xbt_tx *t, const xbt_insn *in)
{
    uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
    const ZydisRegister *regs = sz == 2 ? host16 : host32;
    xbt_stk sp = stack_at(t, -8 * sz);
    /* EAX ECX EDX EBX (original) ESP EBP ESI EDI, EAX at the highest address. */
    for (int i = 0; i < 8; i++)
        emit_stack_store(t, &sp, -(int32_t)sz * (i + 1), xo_reg(regs[i]), sz);
    emit_esp_add(t, -8 * sz);
}

static void emit_popa(xbt_tx *t, const xbt_insn *in)
{
    uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
    const ZydisRegister *regs = sz == 2 ? host16 : host32;
    ZydisRegister tmp = sz == 2 ? R(R14W) : R(R14D);
    xbt_stk sp = stack_at(t, 0);
    /* Touch the highest word first: if both ends are readable, every load is. */
    emit_stack_load(t, &sp, 7 * sz, tmp, sz);
    for (int i = 7; i >= 0; i--) {
        if (i == XBT_ESP)
            continue; /* the saved ESP is skipped */
        emit_stack_load(t, &sp, (7 - i) * sz, regs[i], sz);
    }
    emit_esp_add(t, 8 * sz);
}

/*
 * ENTER size, level (SDM vol. 2, ENTER; the operand size sz picks BP or EBP and the
 * width of each push, the stack size SP or ESP and the wrap): push (E)BP; for
 * level > 1, level - 1 frame pointers copied from SS:[(E)BP - sz*i]; for level > 0 the
 * frame temp ((E)SP after the first push) pushed; (E)BP = frame temp; (E)SP drops by
 * size more.  Every access first, the registers last.
 */
static void emit_enter(xbt_tx *t, const xbt_insn *in)
{
    int32_t size = (int32_t)(in->ops[0].imm.value.u & 0xFFFF);
    int32_t level = (int32_t)(in->ops[1].imm.value.u & 31);
    uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
    int32_t pushed = sz * (1 + level);
    xbt_stk sp = stack_at(t, -pushed);
    emit_stack_store(t, &sp, -sz, xo_reg(sz == 2 ? R(BP) : R(EBP)), sz);
    ZydisRegister tmp = sz == 2 ? R(R14W) : R(R14D);
    for (int32_t i = 1; i < level; i++) {
        /* The outer frame pointers are read through SS:(E)BP, wrapped as the stack. */
        if (stack16(t)) {
            emit_stack16_addr(t, R(RBP), -sz * i, R(R8D));
            xbt_emit2_guest(t, M(MOV), xo_reg(tmp), xo_mem(R(R8D), NOREG, 0, 0, sz));
        } else {
            ZydisRegister bp = stack_base(t, R(EBP), R(R8D));
            xbt_emit2_guest(t, M(MOV), xo_reg(tmp), xo_mem(bp, NOREG, 0, -sz * i, sz));
        }
        emit_stack_store(t, &sp, -sz - sz * i, xo_reg(tmp), sz);
    }
    /* The frame temp: (E)SP after the first push, in the stack's width; (E)BP = it
       (BP alone on a 16-bit stack). */
    if (level == 0) {
        if (stack16(t))
            xbt_emit2(t, M(LEA), xo_reg(R(BP)), xo_mem(R(R12), NOREG, 0, -sz, 8));
        else
            xbt_emit2(t, M(LEA), xo_reg(R(EBP)), xo_mem(R(R12D), NOREG, 0, -sz, 4));
    } else {
        if (stack16(t)) {
            xbt_emit2(t, M(LEA), xo_reg(R(R14D)), xo_mem(R(R12), NOREG, 0, -sz, 8));
            xbt_emit2(t, M(MOVZX), xo_reg(R(R14D)), xo_reg(R(R14W)));
        } else {
            xbt_emit2(t, M(LEA), xo_reg(R(R14D)), xo_mem(R(R12D), NOREG, 0, -sz, 4));
        }
        emit_stack_store(t, &sp, -pushed, xo_reg(tmp), sz);
        xbt_emit2(t, M(MOV), xo_reg(stack16(t) ? R(BP) : R(EBP)),
                  xo_reg(stack16(t) ? R(R14W) : R(R14D)));
    }
    emit_esp_add(t, -pushed - size);
}

/* LEAVE: (E)SP = (E)BP in the stack's width, then pop (E)BP in the operand size. */
static void emit_leave(xbt_tx *t, const xbt_insn *in)
{
    uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
    ZydisRegister tmp = sz == 2 ? R(R14W) : R(R14D);
    if (stack16(t)) {
        emit_stack16_addr(t, R(RBP), 0, R(R15D));
        xbt_emit2_guest(t, M(MOV), xo_reg(tmp), xo_mem(R(R15D), NOREG, 0, 0, sz));
        xbt_emit2(t, M(LEA), xo_reg(R(R12W)), xo_mem(R(RBP), NOREG, 0, sz, 8));
    } else {
        ZydisRegister bp = stack_base(t, R(EBP), R(R15D));
        xbt_emit2_guest(t, M(MOV), xo_reg(tmp), xo_mem(bp, NOREG, 0, 0, sz));
        xbt_emit2(t, M(LEA), xo_reg(R(R12D)), xo_mem(R(EBP), NOREG, 0, sz, 4));
    }
    xbt_emit2(t, M(MOV), xo_reg(sz == 2 ? R(BP) : R(EBP)), xo_reg(tmp));
}

/* ------------------------------------------------------------------------------------ */
/* Strings                                                                              */

static bool string_uses_src(ZydisMnemonic m)
{
    switch (m) {
    case M(MOVSB): case M(MOVSW): case M(MOVSD):
    case M(CMPSB): case M(CMPSW): case M(CMPSD):
    case M(LODSB): case M(LODSW): case M(LODSD):
        return true;
    default:
        return false;
    }
}

static bool string_uses_dst(ZydisMnemonic m)
{
    switch (m) {
    case M(LODSB): case M(LODSW): case M(LODSD):
        return false;
    default:
        return true;
    }
}

/* ESI/EDI += the segment base (32-bit: the linear address, wrapped at 4 GiB), or back. */
static void emit_seg_bias(xbt_tx *t, ZydisRegister r32, int seg, bool apply)
{
    if (!seg_needs_base(t, seg))
        return;
    xbt_emit2(t, M(MOV), xo_reg(R(R10D)), ctx_mem(XBT_CTX_SEG_BASE + 4 * seg, 4));
    if (apply) {
        xbt_emit2(t, M(LEA), xo_reg(r32), xo_mem(r32, R(R10D), 1, 0, 4));
    } else {
        xbt_emit1(t, M(NOT), xo_reg(R(R10D)));
        xbt_emit2(t, M(LEA), xo_reg(r32), xo_mem(r32, R(R10D), 1, 1, 4));
    }
}

/* RSI/RDI += the window base (R11: ctx->kbase, the window of the current privilege); or
   the bias dropped again, which leaves the linear address wrapped at 4 GiB as the CPU
   does.  The K-window at CPL 0 is 4 GiB aligned: the low half is the linear address.
   UK's U-window lies 4 GiB and a page below the K-window: the low half + 4096.  Any
   other (user code with GS switched to the user window, whose base an embedder
   chooses): the low half of RSI - R11, R11 kept (the element loop biases again). */
static void emit_kwin_bias(xbt_tx *t, bool src, bool dst, bool apply)
{
    bool aligned = t->mode->window == XBT_WINDOW_K && t->mode->cpl == 0;
    bool uk = t->mode->window == XBT_WINDOW_UK;
    if (!apply && !aligned && !uk)
        xbt_emit1(t, M(NOT), xo_reg(R(R11)));
    for (int i = 0; i < 2; i++) {
        if (!(i ? dst : src))
            continue;
        ZydisRegister r64 = i ? R(RDI) : R(RSI), r32 = i ? R(EDI) : R(ESI);
        if (apply)
            xbt_emit2(t, M(LEA), xo_reg(r64), xo_mem(r64, R(R11), 1, 0, 8));
        else if (aligned)
            xbt_emit2(t, M(MOV), xo_reg(r32), xo_reg(r32));
        else if (uk)
            xbt_emit2(t, M(LEA), xo_reg(r32),
                      xo_mem(r64, NOREG, 0, XBT_UK_GUARD, 8));
        else /* r64 + ~R11 + 1 = r64 - R11 */
            xbt_emit2(t, M(LEA), xo_reg(r32), xo_mem(r64, R(R11), 1, 1, 8));
    }
    if (!apply && !aligned && !uk)
        xbt_emit1(t, M(NOT), xo_reg(R(R11)));
}

/* A soft string site's pointers (emit_pf_check; K-window at CPL 0 only): RSI/RDI +=
   ctx->soft_delta[0/1], the window base or, where the check found the instruction's
   whole range on one churning page, the guest page's host address minus the linear
   address; or that delta taken out again (the low half: no pointer left its page).
   No fault can come from the guest page; one from the other pointer's window (a soft
   source, a destination that holds code) takes both deltas out (XBT_FIXS_SOFT). */
static void emit_soft_bias(xbt_tx *t, bool src, bool dst, bool apply)
{
    for (int i = 0; i < 2; i++) {
        if (!(i ? dst : src))
            continue;
        ZydisRegister r64 = i ? R(RDI) : R(RSI), r32 = i ? R(EDI) : R(ESI);
        xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_SOFT_DELTA + 8 * i, 8));
        if (apply) {
            xbt_emit2(t, M(LEA), xo_reg(r64), xo_mem(r64, R(R11), 1, 0, 8));
        } else { /* r64 + ~R11 + 1 = r64 - R11 */
            xbt_emit1(t, M(NOT), xo_reg(R(R11)));
            xbt_emit2(t, M(LEA), xo_reg(r32), xo_mem(r64, R(R11), 1, 1, 8));
        }
    }
}

/* CMPS and SCAS: REPE/REPNE stop on their ZF. */
static bool string_tests_zf(ZydisMnemonic m)
{
    return m == M(CMPSB) || m == M(CMPSW) || m == M(CMPSD) || m == M(SCASB) ||
           m == M(SCASW) || m == M(SCASD);
}

/* The string instruction itself, under the XBT_FIX_STRING fix-up: 64-bit addressing on
   window-biased RSI/RDI (K-window), or 32-bit addressing (U-window: host address ==
   linear address, and the CPU wraps ESI/EDI at 4 GiB itself). */
static void emit_string_op(xbt_tx *t, ZydisMnemonic m, ZydisInstructionAttributes rep,
                           bool addr32, uint32_t eip, uint8_t arg, uint16_t seg)
{
    add_map(t, eip, XBT_FIX_STRING, arg, seg);
    ZydisEncoderRequest r;
    memset(&r, 0, sizeof r);
    r.machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    r.mnemonic = m;
    r.prefixes = rep;
    r.address_size_hint = addr32 ? ZYDIS_ADDRESS_SIZE_HINT_32 : ZYDIS_ADDRESS_SIZE_HINT_64;
    xbt_emit_req(t, &r);
    add_map(t, eip, XBT_FIX_NONE, 0, 0);
}

/* The string instruction with 64-bit addressing between the bias of its pointers and
   its removal: the window base (R11 = ctx->kbase), or at a soft string site each
   pointer's ctx->soft_delta (emit_soft_bias; the fix-up then takes those out). */
static void emit_string_biased(xbt_tx *t, ZydisMnemonic m, ZydisInstructionAttributes rep,
                               bool src, bool dst, uint32_t eip, uint8_t arg, uint16_t seg)
{
    if (t->soft_string) {
        emit_soft_bias(t, src, dst, true);
        emit_string_op(t, m, rep, false, eip, (uint8_t)(arg | XBT_FIXS_SOFT), seg);
        emit_soft_bias(t, src, dst, false);
        return;
    }
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_KBASE, 8));
    emit_kwin_bias(t, src, dst, true);
    emit_string_op(t, m, rep, false, eip, arg, seg);
    emit_kwin_bias(t, src, dst, false);
}

/*
 * The inline check of a REP string instruction (K-window), flag-free: R10 = RCX, then
 * RCX = 0 if no pointer can leave [0, 4 GiB) whichever way DF points.  For a pointer P
 * (linear, zero-extended) and n*s bytes, zext32(P + ns) - zext32(P - ns) - 2ns is 0
 * exactly when neither P + ns nor P - ns wraps, else a negative multiple of 4 GiB; the
 * sum over both pointers is thus 0 only when each term is.  (Conservative: P + ns ==
 * 4 GiB and P < ns also take the out-of-line path, which checks exactly.)
 */
static void emit_wrap_check(xbt_tx *t, const ZydisRegister *ptr, int np, uint8_t s)
{
    static const ZydisRegister plus[2] = { R(R8D), R(R9D) }, minus[2] = { R(R14D), R(R15D) };
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    /* 32-bit address arithmetic: the sums wrap as zext32 wants. */
    for (int i = 0; i < np; i++)
        xbt_emit2(t, M(LEA), xo_reg(plus[i]), xo_mem(ptr[i] == R(RSI) ? R(ESI) : R(EDI),
                                                     R(ECX), s, 0, 4));
    xbt_emit1(t, M(NOT), xo_reg(R(RCX))); /* ~n = -n - 1 */
    for (int i = 0; i < np; i++)
        xbt_emit2(t, M(LEA), xo_reg(minus[i]), xo_mem(ptr[i] == R(RSI) ? R(ESI) : R(EDI),
                                                      R(ECX), s, s, 4));
    if (np == 2) {
        xbt_emit2(t, M(LEA), xo_reg(R(R8)), xo_mem(R(R8), R(R9), 1, 0, 8));
        xbt_emit2(t, M(LEA), xo_reg(R(R14)), xo_mem(R(R14), R(R15), 1, 0, 8));
    }
    /* R8 -= 2ns per pointer, as R8 + k(~n) + k with scales of at most 8. */
    for (unsigned k = 2u * (unsigned)np * s; k;) {
        uint8_t sc = (uint8_t)(k > 8 ? 8 : k);
        xbt_emit2(t, M(LEA), xo_reg(R(R8)), xo_mem(R(R8), R(RCX), sc, sc, 8));
        k -= sc;
    }
    xbt_emit1(t, M(NOT), xo_reg(R(R14)));
    xbt_emit2(t, M(LEA), xo_reg(R(RCX)), xo_mem(R(R8), R(R14), 1, 1, 8));
}

/*
 * The exact check, out of line (R10 = count): RCX = 0 iff the instruction stays inside
 * [0, 4 GiB) the way DF points: forward P + ns - 1 < 4 GiB, backward P - (n - 1)s >= 0,
 * for each pointer.  The high halves of those 64-bit values are all >= 0 or all <= 0,
 * so their sum is 0 only when each is.  DF comes from PUSHFQ (no flag is written): the
 * byte of bits 8-15 is 2 + 4 DF + 8 OF, and (byte - 2) * 32 mod 256 is 128 DF.
 */
static void emit_exact_check(xbt_tx *t, const ZydisRegister *ptr, int np, uint8_t s)
{
    xbt_emit0(t, M(PUSHFQ));
    xbt_emit2(t, M(MOVZX), xo_reg(R(ECX)), xo_mem(R(RSP), NOREG, 0, 1, 1));
    xbt_emit2(t, M(LEA), xo_reg(R(RSP)), xo_mem(R(RSP), NOREG, 0, 8, 8));
    xbt_emit2(t, M(LEA), xo_reg(R(ECX)), xo_mem(NOREG, R(ECX), 8, -16, 4));
    xbt_emit2(t, M(LEA), xo_reg(R(ECX)), xo_mem(NOREG, R(ECX), 4, 0, 4));
    xbt_emit2(t, M(MOVZX), xo_reg(R(ECX)), xo_reg(R(CL)));
    uint32_t fwd = xbt_emit_branch8(t, M(JRCXZ), false);
    static const ZydisRegister val[2] = { R(R8), R(R14) };
    xbt_emit2(t, M(MOV), xo_reg(R(R9)), xo_reg(R(R10)));
    xbt_emit1(t, M(NOT), xo_reg(R(R9)));
    for (int i = 0; i < np; i++) /* P + s - ns = P + s(~n) + 2s */
        xbt_emit2(t, M(LEA), xo_reg(val[i]), xo_mem(ptr[i], R(R9), s, 2 * s, 8));
    uint32_t join = xbt_emit_branch8(t, M(JMP), false);
    xbt_patch_rel8(t, fwd, t->len);
    for (int i = 0; i < np; i++) /* P + ns - 1 */
        xbt_emit2(t, M(LEA), xo_reg(val[i]), xo_mem(ptr[i], R(R10), s, -1, 8));
    xbt_patch_rel8(t, join, t->len);
    /* RCX = sum of (v - zext32(v)) */
    xbt_emit2(t, M(MOV), xo_reg(R(R15D)), xo_reg(R(R8D)));
    if (np == 2) {
        xbt_emit2(t, M(MOV), xo_reg(R(R11D)), xo_reg(R(R14D)));
        xbt_emit2(t, M(LEA), xo_reg(R(R8)), xo_mem(R(R8), R(R14), 1, 0, 8));
        xbt_emit2(t, M(LEA), xo_reg(R(R15)), xo_mem(R(R15), R(R11), 1, 0, 8));
    }
    xbt_emit1(t, M(NOT), xo_reg(R(R15)));
    xbt_emit2(t, M(LEA), xo_reg(R(RCX)), xo_mem(R(R8), R(R15), 1, 1, 8));
}

/* The pointers a string instruction walks (RSI and/or RDI); returns how many. */
static int string_ptrs(bool src, bool dst, ZydisRegister *ptr)
{
    int np = 0;
    if (src)
        ptr[np++] = R(RSI);
    if (dst)
        ptr[np++] = R(RDI);
    return np;
}

/*
 * A REP string instruction's out-of-line path: the exact check; if nothing wraps, back
 * to the inline REP instruction; else one element at a time, each with 64-bit
 * addressing and its pointers wrapped to 32 bits after it, with the count and (CMPS,
 * SCAS) the REPE/REPNE condition as the CPU tests them.  A fault on an element leaves
 * ECX, ESI and EDI as the CPU would (the XBT_FIX_STRING fix-up).
 */
static void emit_string_tail(xbt_tx *t, const struct xbt_string_tail *st)
{
    xbt_patch_rel32(t, st->jmp_at, t->len);
    add_map(t, st->eip, XBT_FIX_NONE, 0, 0);
    ZydisRegister ptr[2];
    int np = string_ptrs(st->src, st->dst, ptr);
    emit_exact_check(t, ptr, np, st->size);
    uint32_t no_wrap = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_KBASE, 8));
    uint32_t top = t->len;
    uint32_t out = xbt_emit_branch8(t, M(JRCXZ), false);
    emit_kwin_bias(t, st->src, st->dst, true);
    emit_string_op(t, st->mnemonic, 0, false, st->eip, st->fix_arg, st->fix_seg);
    emit_kwin_bias(t, st->src, st->dst, false);
    xbt_emit2(t, M(LEA), xo_reg(R(ECX)), xo_mem(R(ECX), NOREG, 0, -1, 4));
    bool zf = string_tests_zf(st->mnemonic);
    uint32_t stop = ~0u;
    if (zf && (st->rep & ZYDIS_ATTRIB_HAS_REPNE))
        stop = xbt_emit_branch8(t, M(JZ), false);
    else if (zf)
        stop = xbt_emit_branch8(t, M(JNZ), false);
    uint32_t back = xbt_emit_branch8(t, M(JMP), false);
    xbt_patch_rel8(t, back, top);
    xbt_patch_rel8(t, out, t->len);
    if (stop != ~0u)
        xbt_patch_rel8(t, stop, t->len);
    xbt_patch_rel32(t, xbt_emit_branch32(t, M(JMP)), st->done);
    xbt_patch_rel8(t, no_wrap, t->len);
    xbt_patch_rel32(t, xbt_emit_branch32(t, M(JMP)), st->fast);
}

/*
 * One iteration of a REP string instruction (translator.h, rep_one), flag-free around
 * the element: JRCXZ past everything with ECX 0 (EIP goes on to the next instruction);
 * the element as a non-REP one (pointers biased and wrapped as there, its fault fix-up
 * the same); ECX - 1; the REPE/REPNE condition on the element's ZF; while ECX is not 0
 * an exit back to the instruction's own EIP.
 */
static void emit_string_iteration(xbt_tx *t, const xbt_insn *in, ZydisInstructionAttributes rep,
                                  bool src, bool dst, int src_seg, uint8_t arg)
{
    ZydisMnemonic m = in->zi.mnemonic;
    uint32_t none = xbt_emit_branch8(t, M(JRCXZ), false);
    if (src)
        emit_seg_bias(t, R(ESI), src_seg, true);
    if (dst)
        emit_seg_bias(t, R(EDI), XBT_ES, true);
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_KBASE, 8));
    emit_kwin_bias(t, src, dst, true);
    emit_string_op(t, m, 0, false, in->eip, arg, (uint16_t)src_seg);
    emit_kwin_bias(t, src, dst, false);
    if (src)
        emit_seg_bias(t, R(ESI), src_seg, false);
    if (dst)
        emit_seg_bias(t, R(EDI), XBT_ES, false);
    xbt_emit2(t, M(LEA), xo_reg(R(ECX)), xo_mem(R(ECX), NOREG, 0, -1, 4));
    bool zf = string_tests_zf(m);
    uint32_t stop = ~0u;
    if (zf)
        stop = xbt_emit_branch8(t, (rep & ZYDIS_ATTRIB_HAS_REPNE) ? M(JZ) : M(JNZ), false);
    uint32_t last = xbt_emit_branch8(t, M(JRCXZ), false);
    emit_direct_exit(t, in->eip, XBT_EXIT_TAKEN);
    xbt_patch_rel8(t, none, t->len);
    xbt_patch_rel8(t, last, t->len);
    if (stop != ~0u)
        xbt_patch_rel8(t, stop, t->len);
}

/* Host bytes reserved per out-of-line string path (it needs about 150). */
#define TAIL_RESERVE 256

/* A flag-free test of CX (16-bit address size, which 64-bit mode cannot name): RCX
   parked in R10, JRCXZ on a zero-extended copy; RCX is back on the fall-through path,
   and the caller restores it (mov rcx, r10) where the returned rel8 lands. */
static uint32_t emit_jcxz16(xbt_tx *t)
{
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, M(MOVZX), xo_reg(R(ECX)), xo_reg(R(CX)));
    uint32_t zero = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    return zero;
}

/* SI/DI (16-bit addressing) as linear addresses: zero-extended, plus the segment base;
   or back to offsets, wrapped at 64 KiB. */
static void emit_si_di16(xbt_tx *t, int src_seg, bool dst, bool apply)
{
    if (!apply) {
        if (src_seg >= 0)
            emit_seg_bias(t, R(ESI), src_seg, false);
        if (dst)
            emit_seg_bias(t, R(EDI), XBT_ES, false);
    }
    if (src_seg >= 0)
        xbt_emit2(t, M(MOVZX), xo_reg(R(ESI)), xo_reg(R(SI)));
    if (dst)
        xbt_emit2(t, M(MOVZX), xo_reg(R(EDI)), xo_reg(R(DI)));
    if (apply) {
        if (src_seg >= 0)
            emit_seg_bias(t, R(ESI), src_seg, true);
        if (dst)
            emit_seg_bias(t, R(EDI), XBT_ES, true);
    }
}

/*
 * A string instruction with 16-bit addressing (real mode, 16-bit code, or 0x67 in
 * 32-bit code): SI, DI and CX, wrapping at 64 KiB, which 64-bit mode cannot address.
 * ESI's and EDI's upper halves are parked in R8/R9 (the XBT_FIX_STRING fix-up with
 * arg bit 2 puts them back after a fault); each element runs as a single host string
 * instruction on linear pointers rebuilt from SI/DI; a REP prefix becomes a loop over
 * CX (tested flag-free by JRCXZ on a zero-extended copy) with REPE/REPNE's ZF test.
 */
/* ESI/EDI = their upper halves from R8/R9 and the new SI/DI. */
static void string16_regs_back(xbt_tx *t, bool src, bool dst)
{
    if (src) {
        xbt_emit2(t, M(MOV), xo_reg(R(R8W)), xo_reg(R(SI)));
        xbt_emit2(t, M(MOV), xo_reg(R(RSI)), xo_reg(R(R8)));
    }
    if (dst) {
        xbt_emit2(t, M(MOV), xo_reg(R(R9W)), xo_reg(R(DI)));
        xbt_emit2(t, M(MOV), xo_reg(R(RDI)), xo_reg(R(R9)));
    }
}

static void emit_string16(xbt_tx *t, const xbt_insn *in, int src_seg, bool dst,
                          ZydisInstructionAttributes rep, uint8_t arg)
{
    ZydisMnemonic m = in->zi.mnemonic;
    bool src = src_seg >= 0, kwin = t->mode->window != XBT_WINDOW_D;
    arg |= (uint8_t)((src ? 4 : 0) | (dst ? 8 : 0));
    if (src)
        xbt_emit2(t, M(MOV), xo_reg(R(R8)), xo_reg(R(RSI)));
    if (dst)
        xbt_emit2(t, M(MOV), xo_reg(R(R9)), xo_reg(R(RDI)));
    if (kwin)
        xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_KBASE, 8));
    uint32_t top = t->len, done = ~0u, stop = ~0u;
    if (rep) {
        /* CX = 0: out (JRCXZ reaches only rel8, so through a JMP rel32). */
        uint32_t zero = emit_jcxz16(t);
        uint32_t body = xbt_emit_branch8(t, M(JMP), false);
        xbt_patch_rel8(t, zero, t->len);
        xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
        done = xbt_emit_branch32(t, M(JMP));
        xbt_patch_rel8(t, body, t->len);
    }
    emit_si_di16(t, src_seg, dst, true);
    if (kwin)
        emit_kwin_bias(t, src, dst, true);
    emit_string_op(t, m, 0, !kwin, in->eip, arg, (uint16_t)(src ? src_seg : XBT_DS));
    if (kwin)
        emit_kwin_bias(t, src, dst, false);
    emit_si_di16(t, src_seg, dst, false);
    uint32_t more = ~0u;
    if (rep) {
        xbt_emit2(t, M(LEA), xo_reg(R(CX)), xo_mem(R(RCX), NOREG, 0, -1, 8));
        bool zf = string_tests_zf(m);
        if (zf)
            stop = xbt_emit_branch32(t, (rep & ZYDIS_ATTRIB_HAS_REPNE) ? M(JZ) : M(JNZ));
        if (t->tr->rep_one) {
            /* One iteration (translator.h): CX left, back to the instruction's own EIP
               (below, after ESI/EDI are whole again); none left, on. */
            t->tr->rep_one_made = true;
            uint32_t last = emit_jcxz16(t);
            more = xbt_emit_branch32(t, M(JMP));
            xbt_patch_rel8(t, last, t->len);
            xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
        } else {
            xbt_patch_rel32(t, xbt_emit_branch32(t, M(JMP)), top);
        }
        xbt_patch_rel32(t, done, t->len);
        if (stop != ~0u)
            xbt_patch_rel32(t, stop, t->len);
    }
    string16_regs_back(t, src, dst);
    if (more != ~0u) {
        uint32_t on = xbt_emit_branch8(t, M(JMP), false);
        xbt_patch_rel32(t, more, t->len);
        string16_regs_back(t, src, dst);
        emit_direct_exit(t, in->eip, XBT_EXIT_TAKEN);
        xbt_patch_rel8(t, on, t->len);
    }
}

static void emit_string(xbt_tx *t, const xbt_insn *in)
{
    ZydisMnemonic m = in->zi.mnemonic;
    int src_seg = xbt_seg_index(in->ops[1].type == ZYDIS_OPERAND_TYPE_MEMORY
                                    ? in->ops[1].mem.segment : NOREG);
    if (m == M(LODSB) || m == M(LODSW) || m == M(LODSD))
        src_seg = -1;
    for (unsigned i = 0; i < in->zi.operand_count; i++) {
        const ZydisDecodedOperand *op = &in->ops[i];
        if (op->type == ZYDIS_OPERAND_TYPE_MEMORY &&
            (op->mem.base == R(ESI) || op->mem.base == R(SI)))
            src_seg = xbt_seg_index(op->mem.segment);
    }
    if (src_seg < 0)
        src_seg = XBT_DS;
    bool src = string_uses_src(m), dst = string_uses_dst(m);
    ZydisInstructionAttributes rep = in->zi.attributes & (ZYDIS_ATTRIB_HAS_REP |
                                                          ZYDIS_ATTRIB_HAS_REPE |
                                                          ZYDIS_ATTRIB_HAS_REPNE);
    uint8_t arg = (uint8_t)((src && seg_needs_base(t, src_seg) ? 1 : 0) |
                            (dst && seg_needs_base(t, XBT_ES) ? 2 : 0));
    if (t->mode->window != XBT_WINDOW_D) /* RSI/RDI carry the window base (fix-up) */
        arg |= (uint8_t)((src ? XBT_FIXS_SRC_WIN : 0) | (dst ? XBT_FIXS_DST_WIN : 0));
    if (in->flags & XBT_IF_ADDR16) {
        emit_string16(t, in, src ? src_seg : -1, dst, rep, arg);
        t->b->stats.rewritten++;
        return;
    }
    if (rep && t->tr->rep_one && t->mode->window != XBT_WINDOW_D) {
        t->tr->rep_one_made = true;
        emit_string_iteration(t, in, rep, src, dst, src_seg, arg);
        t->b->stats.rewritten++;
        return;
    }
    if (src)
        emit_seg_bias(t, R(ESI), src_seg, true);
    if (dst)
        emit_seg_bias(t, R(EDI), XBT_ES, true);

    if (t->mode->window == XBT_WINDOW_D) {
        emit_string_op(t, m, rep, true, in->eip, arg, (uint16_t)src_seg);
    } else if (!rep) {
        /* One element: its pointers wrap with the bias dropped after it. */
        emit_string_biased(t, m, 0, src, dst, in->eip, arg, (uint16_t)src_seg);
    } else {
        /* REP: natively unless a pointer could pass 4 GiB or 0 (the tail decides). */
        ZydisRegister ptr[2];
        int np = string_ptrs(src, dst, ptr);
        uint8_t size = (uint8_t)(in->zi.operand_width / 8);
        emit_wrap_check(t, ptr, np, size);
        uint32_t fast_j = xbt_emit_branch8(t, M(JRCXZ), false);
        uint32_t tail_j = xbt_emit_branch32(t, M(JMP));
        xbt_patch_rel8(t, fast_j, t->len);
        uint32_t fast = t->len;
        xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
        emit_string_biased(t, m, rep, src, dst, in->eip, arg, (uint16_t)src_seg);
        if (t->n_tails >= XBT_MAX_STRING_TAILS) {
            xbt_tx_fail(t, "too many REP string instructions in one block");
            return;
        }
        t->tails[t->n_tails++] = (struct xbt_string_tail){
            .eip = in->eip, .jmp_at = tail_j, .fast = fast, .done = t->len, .mnemonic = m,
            .rep = rep, .size = size, .src = src, .dst = dst, .fix_arg = arg,
            .fix_seg = (uint16_t)src_seg,
        };
    }
    if (src)
        emit_seg_bias(t, R(ESI), src_seg, false);
    if (dst)
        emit_seg_bias(t, R(EDI), XBT_ES, false);
    t->b->stats.rewritten++;
}

/*
 * MASKMOVQ/MASKMOVDQU store through DS:EDI (a hidden operand, segment overridable), which
 * no window prefix reaches: as a string instruction's destination, EDI += the segment
 * base, RDI += the window base, the instruction with 64-bit addressing under the string
 * fix-up (XBT_FIXS_DST_SEG: EDI's segment is the pc map's seg), then both taken out.
 */
static void emit_maskmov(xbt_tx *t, const xbt_insn *in)
{
    ZydisEncoderRequest r;
    if (!to_request(t, in, &r))
        return;
    int seg = XBT_DS;
    for (unsigned i = 0; i < in->zi.operand_count; i++)
        if (in->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && xbt_seg_index(in->ops[i].mem.segment) >= 0)
            seg = xbt_seg_index(in->ops[i].mem.segment);
    bool a16 = in->flags & XBT_IF_ADDR16; /* DS:DI: EDI's upper half waits in R9 */
    uint8_t arg = (uint8_t)(XBT_FIXS_DST_WIN | XBT_FIXS_DST_SEG |
                            (seg_needs_base(t, seg) ? 2 : 0) | (a16 ? 8 : 0));
    if (a16) {
        xbt_emit2(t, M(MOV), xo_reg(R(R9)), xo_reg(R(RDI)));
        xbt_emit2(t, M(MOVZX), xo_reg(R(EDI)), xo_reg(R(DI)));
    }
    emit_seg_bias(t, R(EDI), seg, true);
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_KBASE, 8));
    emit_kwin_bias(t, false, true, true);
    add_map(t, in->eip, XBT_FIX_STRING, arg, (uint16_t)seg);
    r.address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_64;
    xbt_emit_req(t, &r);
    add_map(t, in->eip, XBT_FIX_NONE, 0, 0);
    if (a16) {
        xbt_emit2(t, M(MOV), xo_reg(R(RDI)), xo_reg(R(R9)));
    } else {
        emit_kwin_bias(t, false, true, false);
        emit_seg_bias(t, R(EDI), seg, false);
    }
    t->b->stats.rewritten++;
}

/* xlat: AL = [seg:EBX + AL] */
static void emit_xlat(xbt_tx *t, const xbt_insn *in)
{
    ZydisDecodedOperand op;
    memset(&op, 0, sizeof op);
    for (unsigned i = 0; i < in->zi.operand_count; i++)
        if (in->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY)
            op = in->ops[i];
    xbt_emit2(t, M(MOVZX), xo_reg(R(R15D)), xo_reg(R(AL)));
    if (in->flags & XBT_IF_ADDR16) {
        xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(R(EBX), R(R15D), 1, 0, 4));
        xbt_emit2(t, M(MOVZX), xo_reg(R(R15D)), xo_reg(R(R15W)));
    } else {
        xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(R(EBX), R(R15D), 1, 0, 4));
    }
    int seg = xbt_seg_index(op.mem.segment);
    if (seg < 0)
        seg = XBT_DS;
    if (seg_needs_base(t, seg)) {
        xbt_emit2(t, M(MOV), xo_reg(R(R11D)), ctx_mem(XBT_CTX_SEG_BASE + 4 * seg, 4));
        xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(R(R15D), R(R11D), 1, 0, 4));
    }
    xbt_emit2_guest(t, M(MOV), xo_reg(R(AL)), xo_mem(R(R15D), NOREG, 0, 0, 1));
    t->b->stats.rewritten++;
}

/* ------------------------------------------------------------------------------------ */
/* Inline forms of sensitive instructions                                               */

/* PUSHF: guest EFLAGS = host arithmetic flags + virtual IF + virtual system bits. */
static void emit_pushf(xbt_tx *t, const xbt_insn *in)
{
    uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
    xbt_emit0(t, M(PUSHFQ));
    xbt_emit1(t, M(POP), xo_reg(R(R14)));
    xbt_emit2(t, M(MOV), xo_reg(R(R15D)), ctx_mem(XBT_CTX_EFLAGS_SYS, 4));
    xbt_emit2(t, M(LEA), xo_reg(R(R14D)),
              xo_mem(R(R14D), R(R15D), 1, -(int32_t)XBT_HOST_FLAGS_FIXED, 4));
    xbt_emit2(t, M(MOV), xo_reg(R(R15D)), ctx_mem(XBT_CTX_VIF, 4));
    xbt_emit2(t, M(LEA), xo_reg(R(R14D)), xo_mem(R(R14D), R(R15D), 1, 0, 4));
    emit_push_value(t, sz, xo_reg(sz == 2 ? R(R14W) : R(R14D)));
    emit_esp_add(t, -sz);
    t->b->stats.rewritten++;
}

/*
 * POPF at CPL 0, 32-bit, flat SS: every implemented flag is writable there, so no
 * callout is needed.  The load comes first (the only thing that can fault), then the
 * virtual IF and system flags, then the arithmetic flags into RFLAGS, then ESP.
 */
/*
 * The interrupt gate: where an external interrupt may become deliverable inside a
 * block (after an inline POPF, and after the instruction an inline STI's shadow
 * covers, or in its exits when it is a branch: emit_branch), a flag-free indirect jump
 * through ctx->intr_gate, which goes on in the block while the runtime knows nothing can
 * be pending and otherwise leaves to the dispatcher at R14D (`next`; a branch's target,
 * which an indirect branch has in R14D already), which polls the interrupt source.  No
 * pc-map entry: it touches no guest state.
 */
static void emit_intr_gate_r14(xbt_tx *t)
{
    xbt_emit2(t, M(LEA), xo_reg(R(R15)), xo_mem(R(RIP), NOREG, 0, 0x7fffff00, 8));
    uint32_t lea_end = t->len;
    xbt_emit1(t, M(JMP), ctx_mem(XBT_CTX_INTR_GATE, 8));
    int32_t d = (int32_t)(t->len - lea_end);
    if (!t->failed)
        memcpy(t->b->code + lea_end - 4, &d, 4);
}

static void emit_intr_gate(xbt_tx *t, uint32_t next)
{
    xbt_emit2(t, M(MOV), xo_reg(R(R14D)), xo_imm((int32_t)next));
    add_reloc_last(t, next);
    emit_intr_gate_r14(t);
}

/* A direct branch that an inline STI's shadow covers: the gate before its exit, at its
   target (xbt_translate_block sets gate_exits for it); in a trace that follows the
   branch, where the followed target's code begins. */
static void emit_exit_gate(xbt_tx *t, uint32_t target)
{
    if (!t->gate_exits)
        return;
    emit_intr_gate(t, target);
    t->gate_exits = false;
}

static void emit_popf(xbt_tx *t, const xbt_insn *in)
{
    xbt_emit2_guest(t, M(MOV), xo_reg(R(R14D)), xo_mem(R(R12D), NOREG, 0, 0, 4));
    xbt_emit2(t, M(MOV), xo_reg(R(R15D)), xo_reg(R(R14D)));
    xbt_emit2(t, M(AND), xo_reg(R(R15D)), xo_imm(XBT_EFLAGS_IF));
    xbt_emit2(t, M(MOV), ctx_mem(XBT_CTX_VIF, 4), xo_reg(R(R15D)));
    xbt_emit2(t, M(MOV), xo_reg(R(R15D)), xo_reg(R(R14D)));
    xbt_emit2(t, M(AND), xo_reg(R(R15D)),
              xo_imm(XBT_EFLAGS_TF | XBT_EFLAGS_IOPL | XBT_EFLAGS_NT | XBT_EFLAGS_AC |
                     XBT_EFLAGS_ID));
    xbt_emit2(t, M(OR), xo_reg(R(R15D)), xo_imm(XBT_EFLAGS_FIXED));
    xbt_emit2(t, M(MOV), ctx_mem(XBT_CTX_EFLAGS_SYS, 4), xo_reg(R(R15D)));
    xbt_emit2(t, M(AND), xo_reg(R(R15D)), xo_imm(XBT_EFLAGS_TF)); /* (flags: POPFQ next) */
    xbt_emit2(t, M(AND), xo_reg(R(R14D)), xo_imm(XBT_EFLAGS_ARITH));
    xbt_emit2(t, M(OR), xo_reg(R(R14D)), xo_imm(XBT_HOST_FLAGS_FIXED));
    xbt_emit1(t, M(PUSH), xo_reg(R(R14)));
    xbt_emit0(t, M(POPFQ));
    emit_esp_add(t, 4);
    /* TF set: to the dispatcher (through the direct exit with no site to chain: R15 = 0),
       which steps from the next instruction on (the guest's single-step, run.c).  Not
       through exit_indirect: that probes the inline lookup's victim entry, and a hit ran
       the next blocks without a trap (until 2026-12-02, tfstep_ibl.c). */
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, M(MOV), xo_reg(R(ECX)), xo_reg(R(R15D)));
    uint32_t no_tf = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    xbt_emit2(t, M(MOV), xo_reg(R(R14D)), xo_imm((int32_t)(in->eip + in->length)));
    add_reloc_last(t, in->eip + in->length);
    xbt_emit2(t, M(MOV), xo_reg(R(R15D)), xo_imm(0));
    xbt_emit1(t, M(JMP), ctx_mem(XBT_CTX_EXIT_DIRECT, 8));
    xbt_patch_rel8(t, no_tf, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    /* POPF has no interrupt shadow: one pending behind a cleared IF is taken now. */
    emit_intr_gate(t, in->eip + in->length);
    t->b->stats.rewritten++;
}

/* RDTSC at CPL 0 (CR4.TSD does not apply there): the host TSC plus ctx->tsc_offset,
   flags kept by PUSHFQ/POPFQ on the host stack (EAX and EDX are the outputs anyway). */
static void emit_rdtsc(xbt_tx *t)
{
    xbt_emit0(t, M(PUSHFQ));
    xbt_emit0(t, M(RDTSC));
    xbt_emit2(t, M(SHL), xo_reg(R(RDX)), xo_imm(32));
    xbt_emit2(t, M(OR), xo_reg(R(RAX)), xo_reg(R(RDX)));
    xbt_emit2(t, M(ADD), xo_reg(R(RAX)), ctx_mem(XBT_CTX_TSC_OFFSET, 8));
    xbt_emit2(t, M(MOV), xo_reg(R(RDX)), xo_reg(R(RAX)));
    xbt_emit2(t, M(SHR), xo_reg(R(RDX)), xo_imm(32));
    xbt_emit2(t, M(MOV), xo_reg(R(EAX)), xo_reg(R(EAX))); /* the upper half zero */
    xbt_emit0(t, M(POPFQ));
    t->b->stats.rewritten++;
}

/*
 * CPUID at CPL 0 answered inline when EAX and ECX are the last CPUID's: the key
 * ECX << 32 | EAX, built flag-free (RORX), plus ctx->cpuid_nkey (its negation) is 0
 * exactly then (JRCXZ, RCX parked in R10 as in emit_shadow_load); the four answers come
 * from ctx->cpuid_r.  Otherwise the callout, whose full handler answers and remembers
 * (the fast one keeps eight more).  CPUID changes no flag, and neither does this.
 */
static void emit_cpuid(xbt_tx *t, const xbt_insn *in)
{
    xbt_emit2(t, M(MOV), xo_reg(R(R14D)), xo_reg(R(EAX)));
    xbt_emit2(t, M(MOV), xo_reg(R(R15D)), xo_reg(R(ECX)));
    xbt_emit3(t, M(RORX), xo_reg(R(R15)), xo_reg(R(R15)), xo_imm(32));
    xbt_emit2(t, M(LEA), xo_reg(R(R14)), xo_mem(R(R14), R(R15), 1, 0, 8));
    xbt_emit2(t, M(MOV), xo_reg(R(R15)), ctx_mem(XBT_CTX_CPUID_NKEY, 8));
    xbt_emit2(t, M(LEA), xo_reg(R(R14)), xo_mem(R(R14), R(R15), 1, 0, 8));
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R14)));
    uint32_t hit = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    emit_callout(t, in, XBT_CO_CPUID);
    uint32_t done = xbt_emit_branch8(t, M(JMP), false);
    xbt_patch_rel8(t, hit, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(EAX)), ctx_mem(XBT_CTX_CPUID_R, 4));
    xbt_emit2(t, M(MOV), xo_reg(R(EBX)), ctx_mem(XBT_CTX_CPUID_R + 4, 4));
    xbt_emit2(t, M(MOV), xo_reg(R(ECX)), ctx_mem(XBT_CTX_CPUID_R + 8, 4));
    xbt_emit2(t, M(MOV), xo_reg(R(EDX)), ctx_mem(XBT_CTX_CPUID_R + 12, 4));
    xbt_patch_rel8(t, done, t->len);
    t->b->stats.rewritten++;
}

/* MOV r/m, Sreg: the virtual selector. */
static void emit_mov_from_sreg(xbt_tx *t, const xbt_insn *in)
{
    int seg = xbt_seg_index(in->ops[1].reg.value);
    xbt_emit2(t, M(MOVZX), xo_reg(R(R14D)), ctx_mem(XBT_CTX_SEG_SEL + 2 * seg, 2));
    const ZydisDecodedOperand *dst = &in->ops[0];
    if (dst->type == ZYDIS_OPERAND_TYPE_REGISTER) {
        ZydisRegister h = host_reg(dst->reg.value);
        bool wide = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, h) == 32;
        xbt_emit2(t, M(MOV), xo_reg(h), xo_reg(wide ? R(R14D) : R(R14W)));
    } else {
        ZydisEncoderOperand m = guest_mem(t, in, dst, 0);
        m.mem.size = 2;
        xbt_emit2_guest(t, M(MOV), m, xo_reg(R(R14W)));
    }
    t->b->stats.rewritten++;
}

/* ------------------------------------------------------------------------------------ */
/* Control transfers                                                                    */

static uint32_t branch_target(const xbt_insn *in)
{
    ZyanU64 abs = 0;
    ZydisCalcAbsoluteAddress(&in->zi, &in->ops[0], in->eip, &abs);
    uint32_t target = (uint32_t)abs;
    if (in->zi.operand_width == 16)
        target &= 0xFFFF;
    return target;
}

/* Loads the indirect target (register or memory operand 0) into R14D. */
static void emit_load_target(xbt_tx *t, const xbt_insn *in)
{
    const ZydisDecodedOperand *op = &in->ops[0];
    if (op->type == ZYDIS_OPERAND_TYPE_REGISTER) {
        if (in->zi.operand_width == 16)
            xbt_emit2(t, M(MOVZX), xo_reg(R(R14D)), xo_reg(host_reg(op->reg.value)));
        else
            xbt_emit2(t, M(MOV), xo_reg(R(R14D)), xo_reg(host_reg(op->reg.value)));
    } else {
        ZydisEncoderOperand m = guest_mem(t, in, op, 0);
        if (in->zi.operand_width == 16)
            xbt_emit2_guest(t, M(MOVZX), xo_reg(R(R14D)), m);
        else
            xbt_emit2_guest(t, M(MOV), xo_reg(R(R14D)), m);
    }
}

/* A trace: the next path entry, if the translation may go on there (within the head's
   page and the next, not below the head), else ~0. */
static uint32_t trace_next(const xbt_tx *t)
{
    const xbt_translator *tr = t->tr;
    if (!tr->path || t->path_i + 1 >= tr->path_n)
        return ~0u;
    uint32_t head = tr->path[0], s = tr->path[t->path_i + 1];
    if (s < head || s >= (head & ~0xFFFu) + 8192 - 16)
        return ~0u;
    return s;
}

/* A trace's indirect branch (R14D holds its guest target): if the target is the one
   seen while recording, the trace goes on inline; else the normal inline lookup.
   Flag-free: RCX parked in R10, target - expected in ECX, JRCXZ. */
static void emit_trace_guard(xbt_tx *t, uint32_t expected)
{
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, M(LEA), xo_reg(R(ECX)), xo_mem(R(R14), NOREG, 0, (int32_t)(0u - expected), 8));
    uint32_t hit = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    emit_ibl(t);
    xbt_patch_rel8(t, hit, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    t->follow = expected;
    t->b->stats.trace_guards++;
}

/*
 * An indirect JMP's inline cache (R14D = the target): a flag-free compare with the last
 * target the site learned, a hit a chainable exit to it, a miss the inline lookup.  As
 * translated the site knows no target (XBT_ICACHE_NONE, which a real target equal to it
 * still reaches correctly: the hit side's stub passes it on) and a miss goes to the
 * runtime first, which learns the target there (run.c, icache_learn; translator.h,
 * XBT_EXIT_ICACHE_*).  PLT entries (`jmp [ebx + disp]`) are what it is for: their
 * inline lookup was 6% of a shell loop's time.
 */
static void emit_jmp_cache(xbt_tx *t)
{
    static const uint8_t nop2[] = { 0x66, 0x90 }; /* retired: a jmp over the compare */
    xbt_emit_raw(t, nop2, sizeof nop2);
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, M(LEA), xo_reg(R(ECX)),
              xo_mem(R(R14), NOREG, 0, (int32_t)(0u - XBT_ICACHE_NONE), 8));
    uint32_t hit = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    uint32_t miss = xbt_emit_branch32(t, M(JMP));
    uint32_t disp = miss - XBT_ICACHE_DISP_BACK, v = 0u - XBT_ICACHE_NONE;
    if (!t->failed && (memcmp(t->b->code + disp, &v, 4) != 0 ||
                       memcmp(t->b->code + miss - XBT_ICACHE_ENTRY_BACK, nop2, 2) != 0)) {
        xbt_tx_fail(t, "inline cache compare not where expected");
        return;
    }
    add_exit(t, miss, 0, XBT_EXIT_ICACHE_MISS);
    emit_ibl(t);
    xbt_patch_rel8(t, hit, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    emit_direct_exit(t, XBT_ICACHE_NONE, XBT_EXIT_ICACHE_HIT);
}

/* The end of an indirect branch: in a trace with a recorded next block, a guard; else
   the inline lookup, behind an inline cache of the last target for a JMP. */
static void emit_indirect_end(xbt_tx *t, bool jmp)
{
    uint32_t follow = trace_next(t);
    if (t->gate_exits) {
        emit_intr_gate_r14(t); /* the target: R14D */
        t->gate_exits = false;
    }
    if (follow != ~0u)
        emit_trace_guard(t, follow);
    else if (jmp && !t->tr->no_jmp_cache && !t->tr->path)
        emit_jmp_cache(t);
    else
        emit_ibl(t);
}

/* Profiled traces: counter += 1 without touching flags (R14/R15 are free at a block
   entry and at an exit). */
static void emit_count(xbt_tx *t, uint64_t *counter)
{
    xbt_emit2(t, M(MOV), xo_reg(R(R14)), xo_imm((int64_t)(uintptr_t)counter));
    xbt_emit2(t, M(MOV), xo_reg(R(R15)), xo_mem(R(R14), NOREG, 0, 0, 8));
    xbt_emit2(t, M(LEA), xo_reg(R(R15)), xo_mem(R(R15), NOREG, 0, 1, 8));
    xbt_emit2(t, M(MOV), xo_mem(R(R14), NOREG, 0, 0, 8), xo_reg(R(R15)));
}

/* A trace's side exit (the cold direction of a laid-out conditional branch). */
static void add_side_exit(xbt_tx *t, uint32_t rel32_off, uint32_t target, uint8_t kind)
{
    add_exit(t, rel32_off, target, kind);
    if (t->tr->prof && !t->failed && t->n_prof < XBT_BLOCK_MAX_EXITS)
        t->b->exits[t->b->n_exits - 1].prof = ++t->n_prof;
}

static ZydisMnemonic invert_jcc(ZydisMnemonic m)
{
    static const ZydisMnemonic pairs[][2] = {
        { M(JO), M(JNO) }, { M(JB), M(JNB) }, { M(JZ), M(JNZ) }, { M(JBE), M(JNBE) },
        { M(JS), M(JNS) }, { M(JP), M(JNP) }, { M(JL), M(JNL) }, { M(JLE), M(JNLE) },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (pairs[i][0] == m)
            return pairs[i][1];
        if (pairs[i][1] == m)
            return pairs[i][0];
    }
    return ZYDIS_MNEMONIC_INVALID;
}

/* CALL's return address: the next EIP (IP for a 16-bit operand) pushed in the operand
   size.  R14 is kept (an indirect CALL's target). */
static void emit_push_return(xbt_tx *t, const xbt_insn *in, uint32_t next)
{
    uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
    if (sz == 2) {
        emit_push_value(t, 2, xo_imm((int16_t)(next & 0xFFFF)));
    } else {
        emit_push_value(t, 4, xo_imm((int32_t)next));
        add_reloc_last(t, next);
    }
    emit_esp_add(t, -sz);
}

/*
 * LOOP/LOOPE/LOOPNE/JCXZ with a 16-bit address size count in CX, which 64-bit mode
 * cannot name: CX is decremented with a 16-bit LEA (ECX's upper half kept) and tested
 * by JRCXZ on a zero-extended copy (RCX parked in R10); no flag is touched, so LOOPE
 * and LOOPNE test the guest's ZF after it.
 */
static void emit_loop16(xbt_tx *t, const xbt_insn *in, uint32_t next)
{
    ZydisMnemonic m = in->zi.mnemonic;
    if (m != M(JCXZ))
        xbt_emit2(t, M(LEA), xo_reg(R(CX)), xo_mem(R(RCX), NOREG, 0, -1, 8));
    uint32_t zero = emit_jcxz16(t);
    if (m == M(JCXZ)) {
        emit_direct_exit(t, next, XBT_EXIT_FALLTHROUGH);
        xbt_patch_rel8(t, zero, t->len);
        xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
        emit_direct_exit(t, branch_target(in), XBT_EXIT_TAKEN);
        return;
    }
    uint32_t stop = ~0u;
    if (m == M(LOOPE))
        stop = xbt_emit_branch8(t, M(JNZ), false);
    else if (m == M(LOOPNE))
        stop = xbt_emit_branch8(t, M(JZ), false);
    emit_direct_exit(t, branch_target(in), XBT_EXIT_TAKEN);
    xbt_patch_rel8(t, zero, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    if (stop != ~0u)
        xbt_patch_rel8(t, stop, t->len);
    emit_direct_exit(t, next, XBT_EXIT_FALLTHROUGH);
}

/*
 * Position-independent 32-bit code calls a PC thunk (`mov ebx, [esp]; ret`, gcc's
 * __x86.get_pc_thunk.bx) at the start of nearly every function; translated, the thunk's
 * RET is one indirect branch with as many targets as there are callers, which the host
 * mispredicts (16% of strict mode's time in the macro benchmark's shell loop).  So a
 * direct CALL, in flat 32-bit code with a 32-bit stack, gets a second path after its
 * exit's jump, which nothing reaches until the cache chains the exit to a block that is
 * a thunk (xbt_tblock.thunk): then the exit jumps here instead, and this does what
 * the thunk would: its register gets the return address the call just stored (a store
 * then a load of the same stack slot), the pop, and on to the return address by a
 * chainable exit.  It is only reachable while that chain stands, and the chain stands
 * only while the thunk's block is current (its bytes and mapping; tcache.c unchains
 * when it goes), so the thunk's instructions are exactly what runs in its place.
 */
/* Flat 32-bit code and stack: no segment base or limit, no 16-bit code or stack, not
   virtual-8086 mode (where a thunk may be taken, and a CALL may go past one). */
static bool thunk_mode(const xbt_tmode *m)
{
    return m->segbase_mask == 0 && m->seglimit_mask == 0 &&
           !(m->size16 & (XBT_TS_CODE16 | XBT_TS_STACK16 | XBT_TS_V86));
}

static bool thunk_path_fits(const xbt_tx *t, const xbt_insn *in)
{
    return !t->failed && in->zi.operand_width == 32 && thunk_mode(t->mode) &&
           t->b->n_exits + 1 < XBT_BLOCK_MAX_EXITS;
}

static void emit_thunk_path(xbt_tx *t, uint32_t next)
{
    struct xbt_texit *e = &t->b->exits[t->b->n_exits - 1];
    if (e->rel32_off + 4 != t->len)
        return; /* (the jump is always the last thing emitted) */
    uint32_t at = t->len;
    xbt_emit2(t, M(MOV), xo_reg(R(EAX)), xo_imm((int32_t)next));
    if (t->failed || t->len != at + 5 || t->b->code[at] != 0xB8)
        return; /* not the B8 form whose register chaining patches: left unreachable */
    e->alt = XBT_ALT_FREE;
    add_reloc_last(t, next);
    emit_esp_add(t, 4);
    emit_direct_exit(t, next, XBT_EXIT_FALLTHROUGH);
}

/* The thunk's register if in is `mov r32, [esp]` (8B /r, ModRM 00 r 100, SIB 24: no
   prefix, no displacement), r not ESP; else -1. */
static int thunk_load_reg(const xbt_insn *in)
{
    if (in->length != 3 || in->bytes[0] != 0x8B || (in->bytes[1] & 0xC7) != 0x04 ||
        in->bytes[2] != 0x24 || ((in->bytes[1] >> 3) & 7) == 4)
        return -1;
    return (in->bytes[1] >> 3) & 7;
}

static void emit_branch(xbt_tx *t, const xbt_insn *in)
{
    uint32_t next = in->eip + in->length;
    uint32_t follow = trace_next(t);
    switch (in->iclass) {
    case XBT_IC_JMP_DIRECT:
        emit_exit_gate(t, branch_target(in)); /* (before the exit, or the followed code) */
        if (follow != ~0u && follow == branch_target(in)) {
            t->follow = follow; /* the trace goes on there: no code but a shadow's gate */
            break;
        }
        emit_direct_exit(t, branch_target(in), XBT_EXIT_JMP);
        break;
    case XBT_IC_JCC: {
        uint32_t target = branch_target(in);
        if (follow != ~0u && follow == next) {
            /* Hot direction: not taken.  The taken side is a side exit. */
            uint32_t at = xbt_emit_branch32(t, in->zi.mnemonic);
            add_side_exit(t, at, target, XBT_EXIT_TAKEN);
            t->follow = next;
            break;
        }
        ZydisMnemonic inv = invert_jcc(in->zi.mnemonic);
        if (follow != ~0u && follow == target && inv != ZYDIS_MNEMONIC_INVALID) {
            /* Hot direction: taken, laid out as the fall-through. */
            uint32_t at = xbt_emit_branch32(t, inv);
            add_side_exit(t, at, next, XBT_EXIT_FALLTHROUGH);
            t->follow = target;
            break;
        }
        uint32_t at = xbt_emit_branch32(t, in->zi.mnemonic);
        add_exit(t, at, target, XBT_EXIT_TAKEN);
        emit_direct_exit(t, next, XBT_EXIT_FALLTHROUGH);
        break;
    }
    case XBT_IC_LOOP: {
        if (in->zi.address_width == 16) {
            emit_loop16(t, in, next);
            break;
        }
        uint32_t rel8 = xbt_emit_branch8(t, in->zi.mnemonic, true);
        emit_direct_exit(t, next, XBT_EXIT_FALLTHROUGH);
        xbt_patch_rel8(t, rel8, t->len);
        emit_direct_exit(t, branch_target(in), XBT_EXIT_TAKEN);
        break;
    }
    case XBT_IC_CALL_DIRECT:
        emit_push_return(t, in, next);
        emit_exit_gate(t, branch_target(in)); /* (before the exit, or the followed code) */
        if (follow != ~0u && follow == branch_target(in)) {
            t->follow = follow; /* a trace goes on into the callee */
            break;
        }
        emit_direct_exit(t, branch_target(in), XBT_EXIT_JMP);
        if (thunk_path_fits(t, in))
            emit_thunk_path(t, next);
        break;
    case XBT_IC_JMP_INDIRECT:
        emit_load_target(t, in);
        emit_indirect_end(t, true);
        break;
    case XBT_IC_CALL_INDIRECT:
        emit_load_target(t, in);
        emit_push_return(t, in, next);
        emit_indirect_end(t, false);
        break;
    case XBT_IC_RET: {
        uint16_t sz = (uint16_t)(in->zi.operand_width / 8);
        uint32_t imm = 0;
        if (in->zi.operand_count_visible == 1)
            imm = (uint32_t)in->ops[0].imm.value.u & 0xFFFF;
        xbt_stk top = stack_at(t, 0);
        if (sz == 2)
            xbt_emit2_guest(t, M(MOVZX), xo_reg(R(R14D)),
                            stack_mem(t, &top, 0, 2));
        else
            emit_stack_load(t, &top, 0, R(R14D), 4);
        emit_esp_add(t, sz + (int32_t)imm);
        emit_indirect_end(t, false);
        break;
    }
    default:
        xbt_tx_fail(t, "not a branch");
    }
    t->b->stats.rewritten++;
}

/* ------------------------------------------------------------------------------------ */
/* One instruction                                                                      */

/* DIV/IDIV by a register: a zero divisor raises #DE through a callout, not through a
   host SIGFPE (2,500 cycles of signal delivery).  Flag-free: RCX parked in R10, the
   divisor zero-extended into ECX, JRCXZ.  Quotient overflow still faults. */
static void emit_div_zero_check(xbt_tx *t, const xbt_insn *in)
{
    ZydisRegister d = host_reg(in->ops[0].reg.value);
    unsigned w = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, d);
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, w == 32 ? M(MOV) : M(MOVZX), xo_reg(R(ECX)), xo_reg(d));
    uint32_t zero = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    uint32_t over = xbt_emit_branch8(t, M(JMP), false);
    xbt_patch_rel8(t, zero, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    emit_callout(t, in, XBT_CO_DE);
    xbt_patch_rel8(t, over, t->len);
}

/* A fault site's accesses (translator.h, pf_site): the explicit memory operand, the
   stack's top at ESP + disp (a store below ESP, a load at it), or both (CALL through
   memory: its target, then its return address); a string instruction's first element
   at ESI, at EDI. */
enum { PF_NONE = 0, PF_OPERAND = 1, PF_STACK = 2, PF_SRC = 4, PF_DST = 8 };

/* The explicit operand of a memory-class instruction or an indirect branch, if its
   access is the operand's (not XLAT's; no NOP or PREFETCH, which do not fault; no
   BT/BTS/BTR/BTC with a register offset, which moves the access away from it). */
static bool pf_operand_ok(const xbt_insn *in, bool *write)
{
    const ZydisDecodedOperand *op = &in->ops[in->mem_op];
    if (is_prefetch(in->zi.mnemonic))
        return false;
    switch (in->zi.mnemonic) {
    case M(XLAT):
    case M(NOP):
        return false;
    case M(BT): case M(BTS): case M(BTR): case M(BTC):
        if (in->ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER)
            return false;
        break;
    default:
        break;
    }
    if (op->mem.type != ZYDIS_MEMOP_TYPE_MEM ||
        !(op->actions & (ZYDIS_OPERAND_ACTION_MASK_READ | ZYDIS_OPERAND_ACTION_MASK_WRITE)))
        return false;
    *write = (op->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
    return true;
}

/* Whether the instruction is a fault site to check, which of its accesses (PF_*), and
   whether the operand is written (a read-modify-write checks for writing, as the CPU's
   access is): memory-class instructions and indirect JMP through memory, their operand;
   CALL through memory, its operand and its return address; PUSH of a register or an
   immediate, CALL otherwise, their store below ESP; POP to a register and RET, their
   load at ESP (no stack access on a 16-bit stack); string instructions with 32-bit
   addressing, their first element at ESI and at EDI (*write: EDI's is a store; a
   REP's with ECX 0, which makes no access, is not walked: pfsite.c). */
#define PF_SITE_CALLOUTS 4
static int pf_site_access(const xbt_tx *t, const xbt_insn *in, bool *write, int32_t *disp,
                          uint16_t *tag)
{
    *tag = 0;
    /* A site adds up to 4 callout sites to what out_of_room leaves room for (a CALL
       through a limit-checked segment: the probe's limit check, PFCHECK, the target's
       and the access's own): in a block that is nearly full of them the instruction
       is translated without its site, rather than the translation failing. */
    if (!t->tr->pf_site || t->mode->window == XBT_WINDOW_D || in->callout != XBT_CO_NONE ||
        (in->flags & XBT_IF_FPU) || t->n_sites + 2 + PF_SITE_CALLOUTS > XBT_MAX_PENDING_SITES)
        return PF_NONE;
    int32_t sz = in->zi.operand_width / 8;
    int kind = PF_NONE;
    *write = false;
    *disp = 0;
    switch (in->iclass) {
    case XBT_IC_MEMORY:
        kind = in->mem_op >= 0 && pf_operand_ok(in, write) ? PF_OPERAND : PF_NONE;
        break;
    case XBT_IC_JMP_INDIRECT:
    case XBT_IC_CALL_INDIRECT:
    case XBT_IC_CALL_DIRECT:
        if (in->iclass != XBT_IC_CALL_DIRECT && in->mem_op >= 0)
            kind = pf_operand_ok(in, write) ? PF_OPERAND : PF_NONE; /* the target */
        if (in->iclass != XBT_IC_JMP_INDIRECT)
            kind |= PF_STACK, *disp = -sz; /* the return address */
        break;
    case XBT_IC_RET:
        kind = PF_STACK;
        break;
    case XBT_IC_STRING: {
        ZydisMnemonic m = in->zi.mnemonic;
        if (in->flags & XBT_IF_ADDR16)
            break;
        kind = (string_uses_src(m) ? PF_SRC : 0) | (string_uses_dst(m) ? PF_DST : 0);
        *write = m == M(MOVSB) || m == M(MOVSW) || m == M(MOVSD) || m == M(STOSB) ||
                 m == M(STOSW) || m == M(STOSD);
        break;
    }
    case XBT_IC_STACK:
        if (in->ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY)
            break; /* PUSH/POP m: two accesses */
        if (in->zi.mnemonic == M(PUSH))
            kind = PF_STACK, *disp = -sz;
        else if (in->zi.mnemonic == M(POP))
            kind = PF_STACK;
        break;
    default:
        break;
    }
    if (stack16(t))
        kind &= ~PF_STACK;
    if (kind != PF_NONE)
        *tag = t->tr->pf_site(t->tr->mmio_ctx, in->eip);
    return *tag ? kind : PF_NONE;
}

/* The XBT_CO_PFCHECK callout: R15D holds the address; the site says read or write, and
   for a string instruction's element whether it has REP (its count says if it accesses
   anything). */
static void emit_pf_callout(xbt_tx *t, const xbt_insn *in, bool write, bool string,
                            uint32_t soft_size)
{
    emit_callout(t, in, XBT_CO_PFCHECK);
    if (t->failed)
        return;
    struct xbt_callout_site *s = &t->sites[t->n_sites - 1];
    s->flags = (uint8_t)((string ? s->flags & XBT_COF_REP : 0) | (write ? XBT_COF_WRITE : 0) |
                         (soft_size ? XBT_COF_SOFT : 0));
    s->imm = soft_size;
    s->imm_sel = t->pf_tag;
}

/* A string instruction's source segment: DS or the override on its [ESI] operand. */
static int string_src_seg(const xbt_insn *in)
{
    for (unsigned i = 0; i < in->zi.operand_count; i++) {
        const ZydisDecodedOperand *op = &in->ops[i];
        if (op->type == ZYDIS_OPERAND_TYPE_MEMORY && op->mem.base == R(ESI))
            return xbt_seg_index(op->mem.segment) < 0 ? XBT_DS : xbt_seg_index(op->mem.segment);
    }
    return XBT_DS;
}

/*
 * A fault site's check before its access (a host fault costs 4,000-7,000 cycles of host
 * signal on this host, itself a VM): the access's linear address into R15D, its page's
 * probe byte from the current window's (ctx->pf_probe: 0 not mapped, 1 read-only,
 * 3 writable).  Mapped with the access's rights: on to the instruction.  Otherwise the
 * XBT_CO_PFCHECK callout walks the page: a guest #PF raised from there, or the window
 * filled and the instruction run on, without a host fault either way.  Flag-free:
 * SHRX for the page number, RCX parked in R10 for JRCXZ; R11 and R14 are scratch here.
 *   read:  jrcxz Z; [NZ: mapped] mov rcx,r10; jmp on;  Z: mov rcx,r10; callout; on:
 *   write: lea rcx,[rcx-3]; jrcxz Z; [NZ] mov rcx,r10; callout; jmp on;  Z: mov rcx,r10
 */
static void emit_pf_probe(xbt_tx *t, const xbt_insn *in, int kind, bool write, int32_t disp,
                          uint32_t soft_size)
{
    if (kind == PF_OPERAND) {
        emit_linear_to_r15(t, in, &in->ops[in->mem_op], 0);
    } else {
        /* R15D = segment base + ESP + disp, ESI or EDI (32-bit wrap). */
        ZydisRegister r = kind == PF_STACK ? R(R12D) : kind == PF_SRC ? R(ESI) : R(EDI);
        int seg = kind == PF_STACK ? XBT_SS : kind == PF_SRC ? string_src_seg(in) : XBT_ES;
        xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(r, NOREG, 0, disp, 4));
        if (seg_needs_base(t, seg)) {
            xbt_emit2(t, M(MOV), xo_reg(R(R11D)), ctx_mem(XBT_CTX_SEG_BASE + 4 * seg, 4));
            xbt_emit2(t, M(LEA), xo_reg(R(R15D)), xo_mem(R(R15D), R(R11D), 1, 0, 4));
        }
    }
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, M(MOV), xo_reg(R(R14D)), xo_imm(12));
    xbt_emit3(t, M(SHRX), xo_reg(R(R14D)), xo_reg(R(R15D)), xo_reg(R(R14D)));
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_PF_PROBE, 8));
    xbt_emit2(t, M(MOVZX), xo_reg(R(ECX)), xo_mem(R(R11), R(R14), 1, 0, 1));
    if (write)
        xbt_emit2(t, M(LEA), xo_reg(R(RCX)), xo_mem(R(RCX), NOREG, 0, -XBT_PROBE_W, 8));
    uint32_t zero = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    bool string = kind == PF_SRC || kind == PF_DST;
    /* The two tails: the callout's, and the mapped page's.  A soft site's access then
       goes to R15 = ctx->soft_ptr (the callout's answer) or to the window (R15 = the
       window of the current privilege + the zero-extended linear address). */
    for (int tail = 0; tail < 2; tail++) {
        if (tail == 1) {
            uint32_t on = xbt_emit_branch8(t, M(JMP), false);
            xbt_patch_rel8(t, zero, t->len);
            xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
            zero = on;
        }
        if (string && soft_size) {
            /* A soft string pointer: its delta for the instruction (emit_string). */
            int32_t at = XBT_CTX_SOFT_DELTA + (kind == PF_SRC ? 0 : 8);
            bool movs_dst = kind == PF_DST && string_uses_src(in->zi.mnemonic);
            if ((tail == 0) == write) {
                emit_pf_callout(t, in, write, string,
                                soft_size | XBT_PF_SOFT_STRING |
                                    (movs_dst ? XBT_PF_SOFT_MOVS_DST : 0));
                if (!t->failed)
                    t->sites[t->n_sites - 1].seg = (uint8_t)string_src_seg(in);
            }
            xbt_emit2(t, M(MOV), xo_reg(R(R11)),
                      ctx_mem((tail == 0) == write ? XBT_CTX_SOFT_PTR : XBT_CTX_KBASE, 8));
            xbt_emit2(t, M(MOV), ctx_mem(at, 8), xo_reg(R(R11)));
        } else if ((tail == 0) == write) {
            emit_pf_callout(t, in, write, string, soft_size);
            if (soft_size)
                xbt_emit2(t, M(MOV), xo_reg(R(R15)), ctx_mem(XBT_CTX_SOFT_PTR, 8));
        } else if (soft_size) {
            xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_KBASE, 8));
            xbt_emit2(t, M(LEA), xo_reg(R(R15)), xo_mem(R(R15), R(R11), 1, 0, 8));
        }
    }
    xbt_patch_rel8(t, zero, t->len);
}

/* Whether a site's one access may go soft (ctx->soft_ptr: pfsite.c decides at each
   callout whether the window is filled or the guest page reached without it), and its
   size: a memory-class instruction's explicit operand, an indirect JMP's target, a PUSH
   of a register or an immediate, a POP to a register, a CALL's return address (not
   through memory), RET's: one access, emitted through xbt_emit_req_guest, which then
   takes [R15].  Not beside AH..BH (no REX), not BT with a register offset
   (its own addressing), XLAT or MASKMOV (implicit operands). */
static uint32_t pf_soft_size(const xbt_insn *in, int kind)
{
    ZydisMnemonic m = in->zi.mnemonic;
    if (in->flags & XBT_IF_HIGH8)
        return 0;
    if (kind == PF_OPERAND && in->iclass == XBT_IC_MEMORY) {
        const ZydisDecodedOperand *op = &in->ops[in->mem_op];
        if (m == M(XLAT) || m == M(MASKMOVQ) || m == M(MASKMOVDQU) || bt_reg_offset(in) ||
            op->visibility != ZYDIS_OPERAND_VISIBILITY_EXPLICIT || op->size < 8)
            return 0;
        return op->size / 8u;
    }
    if (kind == PF_OPERAND && in->iclass == XBT_IC_JMP_INDIRECT)
        return in->zi.operand_width / 8u; /* its target's load (emit_load_target) */
    if (kind == PF_STACK && in->iclass == XBT_IC_STACK &&
        ((m == M(PUSH) && in->ops[0].type != ZYDIS_OPERAND_TYPE_MEMORY) ||
         (m == M(POP) && in->ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER)))
        return in->zi.operand_width / 8u;
    /* CALL's return address (emit_push_return; a CALL through memory has two accesses
       and is not soft: its kind is not PF_STACK alone), RET's load. */
    if (kind == PF_STACK && (in->iclass == XBT_IC_CALL_DIRECT || in->iclass == XBT_IC_RET ||
                             (in->iclass == XBT_IC_CALL_INDIRECT && in->mem_op < 0)))
        return in->zi.operand_width / 8u; /* (through memory, the target's load comes
                                             first: never soft, whatever its kind says) */
    return 0;
}

/* Whether a string site's pointers may go soft, and its element size: MOVS and STOS
   with 32-bit addressing at CPL 0 in the K-window (its low half is the linear address),
   whole when REP, not one iteration at a time (rep_one).  The callout answers for the
   instruction's whole range (pfsite.c): on one churning page, the guest page itself
   (kmap_local's copies and clears of whole pages: Linux's copy_page, clear_page). */
static uint32_t pf_soft_string_size(const xbt_tx *t, const xbt_insn *in, int kind)
{
    ZydisMnemonic m = in->zi.mnemonic;
    if (!(kind & (PF_SRC | PF_DST)) || (in->flags & XBT_IF_ADDR16) ||
        t->mode->window != XBT_WINDOW_K || t->mode->cpl != 0 ||
        (rep_prefixed(in) && t->tr->rep_one))
        return 0;
    switch (m) {
    case M(MOVSB): case M(MOVSW): case M(MOVSD):
    case M(STOSB): case M(STOSW): case M(STOSD):
        return in->zi.operand_width / 8u;
    default:
        return 0;
    }
}

static void emit_pf_check(xbt_tx *t, const xbt_insn *in)
{
    bool write;
    int32_t disp;
    int kind = pf_site_access(t, in, &write, &disp, &t->pf_tag);
    uint32_t soft = pf_soft_size(in, kind);
    if (kind & PF_OPERAND)
        emit_pf_probe(t, in, PF_OPERAND, write, 0, soft);
    if (kind & PF_STACK) /* a store below ESP, a load at it */
        emit_pf_probe(t, in, PF_STACK, disp < 0, disp, soft);
    uint32_t ssz = pf_soft_string_size(t, in, kind);
    if (kind & PF_SRC)
        emit_pf_probe(t, in, PF_SRC, false, 0, ssz);
    if (kind & PF_DST)
        emit_pf_probe(t, in, PF_DST, write, 0, ssz);
    t->soft = soft != 0;
    t->soft_string = ssz != 0;
}

/* An MMIO site's plain 4-byte MOV load into a general register: the read shadow may
   serve it (emit_shadow_load). */
static bool shadow_load_fits(const xbt_insn *in)
{
    const ZydisDecodedOperand *dst = &in->ops[0], *src = &in->ops[1];
    return in->zi.mnemonic == M(MOV) && in->mem_op == 1 &&
           dst->type == ZYDIS_OPERAND_TYPE_REGISTER &&
           ZydisRegisterGetClass(dst->reg.value) == ZYDIS_REGCLASS_GPR32 &&
           src->type == ZYDIS_OPERAND_TYPE_MEMORY && src->mem.type == ZYDIS_MEMOP_TYPE_MEM &&
           src->size == 32;
}

/*
 * The site with the read shadow first (xbt_vcpu_set_mmio_shadow; mmio.c fills the
 * entry): linear address L in R15D; R14 = L - page, 64-bit, with the page from
 * ctx->rs_nlin[CPL 3] as ~page (not + lea, no flags); SHRX by 12 is 0 exactly when L
 * is in that page (an empty entry is 2^33 away from every L); then the table's byte at
 * the offset is 0 for a dword the shadow may give, and the load is made from
 * ctx->rs_page.  Every miss takes the callout as before.  Both paths leave through
 * the same chainable exit.  RCX is parked in R10 for the JRCXZ tests.
 */
static void emit_shadow_load(xbt_tx *t, const xbt_insn *in, uint32_t next)
{
    int32_t nlin = XBT_CTX_RS_NLIN + (t->mode->cpl == 3 ? 8 : 0);
    emit_linear_to_r15(t, in, &in->ops[1], 0);
    xbt_emit2(t, M(MOV), xo_reg(R(R14)), ctx_mem(nlin, 8));
    xbt_emit2(t, M(LEA), xo_reg(R(R14)), xo_mem(R(R15), R(R14), 1, 1, 8));
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    xbt_emit2(t, M(MOV), xo_reg(R(ECX)), xo_imm(12));
    xbt_emit3(t, M(SHRX), xo_reg(R(RCX)), xo_reg(R(R14)), xo_reg(R(RCX)));
    uint32_t in_page = xbt_emit_branch8(t, M(JRCXZ), false);
    uint32_t slow = t->len;
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    emit_callout(t, in, XBT_CO_MMIO);
    uint32_t done = t->len;
    emit_direct_exit(t, next, XBT_EXIT_FALLTHROUGH);
    xbt_patch_rel8(t, in_page, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_RS_TABLE, 8));
    xbt_emit2(t, M(MOVZX), xo_reg(R(ECX)), xo_mem(R(R11), R(R14), 1, 0, 1));
    uint32_t readable = xbt_emit_branch8(t, M(JRCXZ), false);
    uint32_t back = xbt_emit_branch32(t, M(JMP)); /* the slow path may hold a limit check */
    xbt_patch_rel32(t, back, slow);
    xbt_patch_rel8(t, readable, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(R11)), ctx_mem(XBT_CTX_RS_PAGE, 8));
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    xbt_emit2(t, M(MOV), xo_reg(host_reg(in->ops[0].reg.value)),
              xo_mem(R(R11), R(R14), 1, 0, 4));
    uint32_t join = xbt_emit_branch8(t, M(JMP), false);
    xbt_patch_rel8(t, join, done);
}

/* The sensitive instructions translated inline where the mode allows (PUSH Sreg, MOV
   from Sreg, PUSHF, RDTSC and POPF at CPL 0); false: the caller emits the callout. */
static bool emit_sensitive_inline(xbt_tx *t, const xbt_insn *in)
{
    if (in->zi.mnemonic == M(PUSH) && in->callout == XBT_CO_NONE) {
        emit_push(t, in); /* PUSH Sreg */
        t->b->stats.rewritten++;
        return true;
    }
    if (in->zi.mnemonic == M(MOV) && in->callout == XBT_CO_NONE) {
        emit_mov_from_sreg(t, in);
        return true;
    }
    if (in->callout == XBT_CO_PUSHF && !(t->mode->size16 & XBT_TS_V86)) {
        emit_pushf(t, in);
        return true;
    }
    if (in->callout == XBT_CO_RDTSC && t->mode->cpl == 0) {
        emit_rdtsc(t);
        return true;
    }
    if (in->callout == XBT_CO_CPUID && t->mode->cpl == 0 && t->tr->cpuid_inline &&
        t->tr->bmi2) {
        emit_cpuid(t, in);
        return true;
    }
    if (in->callout == XBT_CO_POPF && t->mode->cpl == 0 && in->zi.operand_width == 32 &&
        !stack16(t) && !(t->mode->size16 & XBT_TS_SMAP) &&
        !(t->mode->segbase_mask & (1u << XBT_SS)) &&
        !(t->mode->seglimit_mask & (1u << XBT_SS))) {
        emit_popf(t, in);
        return true;
    }
    return false;
}

/*
 * An access through ES or DS while it holds a null selector loaded in protected mode
 * (the mode's segnull): #GP(0) (SDM vol. 3, 3.4.2 and 5.4.1: a null selector may be
 * loaded into a data segment register, and any access through it faults).  The memory
 * operands the instruction reads or writes, explicit and implicit (string operands,
 * XLAT's and MASKMOV's); not an address computation (LEA), a hint (the NOPs,
 * PREFETCH, CLDEMOTE) or INVLPG, which access nothing; not an instruction that raises #UD
 * first.  0: no such access; 1: #GP(0) always; 2: a REP string instruction, #GP(0)
 * unless its count is 0 (it then accesses nothing).
 */
static int null_seg_access(const xbt_tx *t, const xbt_insn *in)
{
    if (!t->mode->segnull || in->iclass == XBT_IC_UNDEFINED || (in->flags & XBT_IF_UD))
        return 0;
    ZydisMnemonic mn = in->zi.mnemonic;
    if (mn == M(NOP) || is_prefetch(mn) || mn == M(INVLPG) || mn == M(CLDEMOTE))
        return 0; /* (CLDEMOTE: a hint, a NOP where absent; the SDM lists only #UD) */
    bool hit = false;
    for (unsigned i = 0; i < in->zi.operand_count && !hit; i++) {
        const ZydisDecodedOperand *op = &in->ops[i];
        if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.type != ZYDIS_MEMOP_TYPE_MEM)
            continue;
        hit = (op->mem.segment == R(ES) && (t->mode->segnull & XBT_SN_ES)) ||
              (op->mem.segment == R(DS) && (t->mode->segnull & XBT_SN_DS));
    }
    if (!hit)
        return 0;
    bool string = in->iclass == XBT_IC_STRING || in->callout == XBT_CO_INS ||
                  in->callout == XBT_CO_OUTS;
    return rep_prefixed(in) && string ? 2 : 1;
}

/* null_seg_access's #GP(0) in place of the instruction (kind 1).  A REP string
   instruction (kind 2) takes it only with a count that is not 0 (flag-free: JRCXZ on
   ECX, or CX zero-extended, RCX parked in R10) and is otherwise translated as usual
   after the check: with a count of 0 it accesses nothing, and REP INS/OUTS still check
   the port's I/O permission then (their callout; found in review). */
static void emit_null_seg_gp(xbt_tx *t, const xbt_insn *in, int kind)
{
    if (kind == 1) {
        emit_callout(t, in, XBT_CO_GP0);
        return;
    }
    xbt_emit2(t, M(MOV), xo_reg(R(R10)), xo_reg(R(RCX)));
    if (in->flags & XBT_IF_ADDR16)
        xbt_emit2(t, M(MOVZX), xo_reg(R(ECX)), xo_reg(R(CX)));
    uint32_t none = xbt_emit_branch8(t, M(JRCXZ), false);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
    emit_callout(t, in, XBT_CO_GP0);
    xbt_patch_rel8(t, none, t->len);
    xbt_emit2(t, M(MOV), xo_reg(R(RCX)), xo_reg(R(R10)));
}

/* Returns true if the block must end after this instruction. */
static bool translate_insn(xbt_tx *t, const xbt_insn *in)
{
    add_map(t, in->eip, XBT_FIX_NONE, 0, 0);
    t->soft = false; /* emit_pf_check sets it for the access it checked */
    t->soft_string = false;
    if (in->iclass >= XBT_IC_JMP_DIRECT && in->iclass <= XBT_IC_RET &&
        in->zi.operand_width == 16)
        t->b->reloc_ok = false; /* a 16-bit target wraps at 64 KiB, not with the EIP */
    if (t->tr->prof && t->b->n_insns == 0)
        emit_count(t, &t->tr->prof[0]); /* a profiled trace: entries */
    else if (t->tr->block_count && !t->tr->path && t->b->n_insns == 0)
        emit_count(t, t->tr->block_count); /* profiling: entries of plain blocks */
    uint32_t next = in->eip + in->length;
    bool ends = (in->flags & XBT_IF_ENDS_BLOCK) != 0;

    int null_access = null_seg_access(t, in);
    /* An access that keeps reaching MMIO: the runtime makes it (a host fault per access
       cost 4.9 us, 20 times a port read). */
    if (!null_access && t->tr->mmio_site && in->iclass == XBT_IC_MEMORY && in->mem_op >= 0 &&
        in->callout == XBT_CO_NONE &&
        !(in->flags & XBT_IF_FPU) && t->tr->mmio_site(t->tr->mmio_ctx, in->eip)) {
        if (t->tr->mmio_shadow && shadow_load_fits(in))
            emit_shadow_load(t, in, next);
        else {
            emit_callout(t, in, XBT_CO_MMIO);
            emit_direct_exit(t, next, XBT_EXIT_FALLTHROUGH);
        }
        t->b->reloc_ok = false; /* only where the runtime asked for it */
        return true;
    }

    /* An SSE generation the CPUID policy hides: #UD, before CR0.TS's #NM. */
    if (in->iclass != XBT_IC_UNDEFINED && (t->mode->flags & 0xFC) && isa_hidden(in, t->mode->flags)) {
        emit_callout(t, in, XBT_CO_UD);
        return true;
    }

    /* x87/SSE under CR0.TS/EM, SSE with CR4.OSFXSR clear: the handler raises #NM or
       #UD as the architecture says. */
    ZydisISAExt ext = in->zi.meta.isa_ext;
    bool sse = ext == ZYDIS_ISA_EXT_SSE || ext == ZYDIS_ISA_EXT_SSE2 ||
               ext == ZYDIS_ISA_EXT_SSE3 || ext == ZYDIS_ISA_EXT_SSSE3 ||
               ext == ZYDIS_ISA_EXT_SSE4;
    if ((in->flags & XBT_IF_FPU) && in->iclass != XBT_IC_UNDEFINED &&
        ((t->mode->flags & XBT_TM_FPU_NM) || (sse && (t->mode->flags & XBT_TM_NO_SSE)))) {
        emit_callout(t, in, XBT_CO_NM);
        return true;
    }

    /* Through a null ES or DS: #GP(0), after #UD and #NM as the SDM orders them. */
    if (null_access) {
        emit_null_seg_gp(t, in, null_access);
        if (null_access == 1)
            return true;
    }

    if ((in->zi.mnemonic == M(DIV) || in->zi.mnemonic == M(IDIV)) &&
        in->ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER && in->iclass == XBT_IC_COPY)
        emit_div_zero_check(t, in);
    /* An access that keeps faulting: its page checked first (a host fault saved). */
    emit_pf_check(t, in);

    /* Lazy x87/SSE: the guest's state is loaded by the first block that needs it
       after an entry from C (abi.h, fpu_entry). */
    if ((in->flags & XBT_IF_FPU) && in->iclass != XBT_IC_UNDEFINED && !t->fpu_ready) {
        bool at_entry = t->len == 0;
        xbt_emit1(t, M(CALL), ctx_mem(XBT_CTX_FPU_ENTRY, 8));
        t->fpu_ready = true;
        if (at_entry && !t->failed)
            t->b->fpu_skip = (uint8_t)t->len; /* chains from a loaded state go past it */
    }

    /* PAUSE: a callout that makes the hint and counts spin loops (pause-loop yields,
       runtime/vcpu.h). */
    if (in->zi.mnemonic == M(PAUSE) && in->iclass == XBT_IC_COPY) {
        emit_callout(t, in, XBT_CO_PAUSE);
        return false;
    }

    switch (in->iclass) {
    case XBT_IC_COPY:
    case XBT_IC_MEMORY:
        if (in->zi.mnemonic == M(XLAT))
            emit_xlat(t, in);
        else if ((in->zi.mnemonic == M(MASKMOVQ) || in->zi.mnemonic == M(MASKMOVDQU)) &&
                 t->mode->window != XBT_WINDOW_D)
            emit_maskmov(t, in);
        else
            emit_copy(t, in);
        return false;
    case XBT_IC_STACK:
        switch (in->zi.mnemonic) {
        case M(PUSH): emit_push(t, in); break;
        case M(POP): emit_pop(t, in); break;
        case M(ENTER): emit_enter(t, in); break;
        case M(LEAVE): emit_leave(t, in); break;
        default: xbt_tx_fail(t, "stack op %s", ZydisMnemonicGetString(in->zi.mnemonic));
        }
        t->b->stats.rewritten++;
        return false;
    case XBT_IC_STRING:
        emit_string(t, in);
        return false;
    case XBT_IC_JMP_DIRECT: case XBT_IC_JCC: case XBT_IC_LOOP: case XBT_IC_CALL_DIRECT:
    case XBT_IC_JMP_INDIRECT: case XBT_IC_CALL_INDIRECT: case XBT_IC_RET:
        emit_branch(t, in);
        return true;
    case XBT_IC_INVALID64:
        if (in->zi.mnemonic == M(PUSHA) || in->zi.mnemonic == M(PUSHAD)) {
            emit_pusha(t, in);
            t->b->stats.rewritten++;
            return false;
        }
        if (in->zi.mnemonic == M(POPA) || in->zi.mnemonic == M(POPAD)) {
            emit_popa(t, in);
            t->b->stats.rewritten++;
            return false;
        }
        break; /* the others are callouts */
    case XBT_IC_SENSITIVE:
        if (emit_sensitive_inline(t, in))
            return false;
        break;
    case XBT_IC_PRIVILEGED:
        if (in->callout == XBT_CO_CLI && t->mode->cpl == 0) {
            xbt_emit2(t, M(MOV), ctx_mem(XBT_CTX_VIF, 4), xo_imm(0));
            t->b->stats.rewritten++;
            return false;
        }
        if (in->callout == XBT_CO_STI && t->sti_inline) {
            /* CPL 0, the next instruction in this block (xbt_translate_block checked):
               the gate after that one is where the shadow ends. */
            xbt_emit2(t, M(MOV), ctx_mem(XBT_CTX_VIF, 4), xo_imm(XBT_EFLAGS_IF));
            /* The shadow, for a dispatch that restarts the covered instruction (a
               hidden fault in it): the gate after it clears this (abi.h). */
            uint32_t covered = in->eip + in->length;
            xbt_emit2(t, M(MOV), ctx_mem(XBT_CTX_STI_SHADOW, 4), xo_imm((int32_t)covered));
            add_reloc_last(t, covered);
            t->b->stats.rewritten++;
            return false;
        }
        break;
    case XBT_IC_UNDEFINED:
        emit_callout(t, in, XBT_CO_UD);
        return true;
    default:
        break;
    }
    unsigned co = in->callout;
    if (co == XBT_CO_NONE) {
        co = XBT_CO_UNSUPPORTED;
        ends = true;
    }
    emit_callout(t, in, co);
    if (ends && co != XBT_CO_UD && co != XBT_CO_UNSUPPORTED)
        emit_direct_exit(t, next, XBT_EXIT_FALLTHROUGH);
    return ends;
}

/* ------------------------------------------------------------------------------------ */
/* The block                                                                            */

static void finish_block(xbt_tx *t)
{
    xbt_tblock *b = t->b;
    b->body_len = t->len;
    /* Exit stubs: mov r14d, target; lea r15, [rip -> rel32 field]; jmp [r13 + exit]. */
    for (uint32_t i = 0; i < b->n_exits && !t->failed; i++) {
        struct xbt_texit *e = &b->exits[i];
        if (e->prof) {
            /* A profiled side exit: the branch goes to a counter, whose jmp is the
               exit's chain site from now on. */
            xbt_patch_rel32(t, e->rel32_off, t->len);
            emit_count(t, &t->tr->prof[e->prof]);
            e->rel32_off = xbt_emit_branch32(t, M(JMP));
        }
        e->stub_off = t->len;
        xbt_patch_rel32(t, e->rel32_off, t->len);
        /* An inline cache's miss side has its target in R14D already; its hit side's
           is no guest address of this block (neither is relocated). */
        if (e->kind != XBT_EXIT_ICACHE_MISS)
            xbt_emit2(t, M(MOV), xo_reg(R(R14D)), xo_imm((int32_t)e->target));
        if (e->kind < XBT_EXIT_ICACHE_MISS)
            add_reloc_last(t, e->target);
        if (e->kind == XBT_EXIT_ICACHE_HIT && !t->failed &&
            (t->len != e->stub_off + 6 || b->code[e->stub_off] != 0x41 ||
             b->code[e->stub_off + 1] != 0xBE))
            xbt_tx_fail(t, "inline cache stub not mov r14d, imm32"); /* run.c patches it */
        xbt_emit2(t, M(LEA), xo_reg(R(R15)), xo_mem(R(RIP), NOREG, 0, 0x7fffff00, 8));
        int32_t d = (int32_t)e->rel32_off - (int32_t)t->len;
        if (!t->failed)
            memcpy(b->code + t->len - 4, &d, 4);
        xbt_emit1(t, M(JMP), ctx_mem(XBT_CTX_EXIT_DIRECT, 8));
    }
    /* Callout sites, 4-byte aligned (int3 padding: never executed). */
    while ((t->len & 3) && t->len < b->code_cap)
        b->code[t->len++] = 0xCC;
    b->sites_off = t->len;
    uint32_t need = t->n_sites * (uint32_t)sizeof(struct xbt_callout_site);
    if (t->len + need > b->code_cap) {
        xbt_tx_fail(t, "host code buffer full (sites)");
        return;
    }
    for (uint32_t i = 0; i < t->n_sites && !t->failed; i++) {
        uint32_t site = t->len + i * (uint32_t)sizeof(struct xbt_callout_site);
        memcpy(b->code + site, &t->sites[i], sizeof t->sites[i]);
        add_reloc(b, site + (uint32_t)offsetof(struct xbt_callout_site, eip));
        int32_t d = (int32_t)site - (int32_t)t->site_patches[i].end;
        memcpy(b->code + t->site_patches[i].at, &d, 4);
    }
    t->len += need;
    b->n_sites = t->n_sites;
    b->code_len = t->len;
}

/* Worst-case host bytes for one guest instruction, its exits and site. */
#define INSN_RESERVE 512

/* Host bytes an instruction may take beyond INSN_RESERVE: ENTER copies level - 1 frame
   pointers, each a load and a store with their address computations; with a 16-bit
   stack, an SS base and limit checks, level 31 took about 1,500 bytes, and one in a
   nearly full block ran past the buffer (the random-guest campaign found it: real-mode
   programs stopped with "host code buffer full").  Such an instruction starts a block
   of its own when the one being built has no room for it (xbt_translate_block). */
static uint32_t insn_extra(const xbt_insn *in)
{
    if (in->zi.mnemonic == M(ENTER))
        return 128u * (uint32_t)(in->ops[1].imm.value.u & 31);
    return 0;
}

/* Whether the block must end before another instruction (that may take `extra` host
   bytes beyond the usual reserve): instruction count, host code space, callout sites,
   pc-map entries or exits. */
static bool out_of_room_for(const xbt_tx *t, uint32_t max, uint32_t extra)
{
    const xbt_tblock *b = t->b;
    /* Room for one more instruction, the tails, exit stubs and the callout sites that
       finish_block appends (a block of limit-checked 16-bit code, each access with its
       #GP callout, filled 16 KiB and had no room left for its 64 sites). */
    uint32_t after = t->n_tails * TAIL_RESERVE + (b->n_exits + 3) * 32 +
                     (t->n_sites + 2) * (uint32_t)sizeof(struct xbt_callout_site);
    return b->n_insns >= max || t->len + after + INSN_RESERVE * 2 + extra > b->code_cap ||
           t->n_sites + 2 > XBT_MAX_PENDING_SITES ||
           b->n_map + 4 * t->n_tails + 6 > XBT_BLOCK_MAX_MAP ||
           b->n_exits + 3 > XBT_BLOCK_MAX_EXITS || t->n_tails + 1 > XBT_MAX_STRING_TAILS;
}

static bool out_of_room(const xbt_tx *t, uint32_t max)
{
    return out_of_room_for(t, max, 0);
}

/* Ends the block at a limit: it falls through to pc. */
static void end_at_limit(xbt_tx *t, uint32_t pc)
{
    t->b->end = XBT_END_LIMIT;
    add_map(t, pc, XBT_FIX_NONE, 0, 0);
    emit_direct_exit(t, pc, XBT_EXIT_FALLTHROUGH);
}

/*
 * Whether an STI at CPL 0 can be done inline: the instruction its shadow covers (at
 * `next`) must come next in this block and be one that neither ends the block nor
 * leaves translated code on its own (no callout or string instruction, which hardware
 * may interrupt between iterations), so that the interrupt gate right after it is the
 * first place an interrupt can be taken; or a near JMP, CALL or RET, whose exit gets
 * the gate, at its target (emit_branch; in a trace that follows it, the target's
 * code).  The STI stores `next` in ctx->sti_shadow, which the gate clears: an
 * instruction restarted from the dispatcher (a hidden fault) is still covered (vcpu.h,
 * xbt_sti_shadow_settle).  SYSEXIT may
 * follow too (Linux returns from every SYSENTER system call with STI; SYSEXIT): it
 * always leaves to the dispatcher, which is then the first such place, so it needs no
 * gate (*gate false).  Otherwise STI stays a callout that ends the block (the
 * dispatcher runs the covered instruction alone).
 */
static bool sti_shadow_fits(xbt_tx *t, xbt_fetch_fn fetch, void *opaque, uint32_t next,
                            uint32_t first_page, uint32_t max, bool *gate)
{
    *gate = true;
    if (t->b->n_insns + 2 > max || out_of_room(t, max))
        return false;
    /* The loop's page limit after the STI (xbt_translate_block), and the next
       instruction on the STI's page, read without a fetch from the page after. */
    uint32_t page = (next - 1) & ~0xFFFu;
    if (t->tr->path ? page - first_page > 4096 : page != first_page)
        return false;
    uint8_t buf[ZYDIS_MAX_INSTRUCTION_LENGTH];
    if ((next & ~0xFFFu) != page)
        return false;
    uint32_t room = page + 4096 - next;
    uint32_t got = fetch(opaque, next, buf, room < sizeof buf ? room : sizeof buf);
    xbt_insn n;
    if (!got || xbt_decode_as(&t->tr->dec, t->mode->size16 & XBT_TS_CODE16, buf, got, next, &n) != XBT_DECODE_OK)
        return false;
    if (((next + n.length - 1) & ~0xFFFu) != page)
        return false;
    if (n.callout == XBT_CO_SYSEXIT) {
        *gate = false;
        return true;
    }
    if (n.iclass == XBT_IC_JMP_DIRECT || n.iclass == XBT_IC_CALL_DIRECT ||
        n.iclass == XBT_IC_RET || n.iclass == XBT_IC_JMP_INDIRECT ||
        n.iclass == XBT_IC_CALL_INDIRECT)
        /* STI; CALL / RET / JMP (Linux: 88 per busybox fork+exec, each a callout, a
           return to the dispatcher and an uncached translation of the branch): the
           gate goes into the branch's exit (emit_branch), at its target; in a trace
           that follows a direct one, before the target's code (no exit there), and an
           indirect one's before its guard (emit_indirect_end). */
        return n.callout == XBT_CO_NONE && !(n.flags & (XBT_IF_UD | XBT_IF_FAR));
    if (n.iclass != XBT_IC_COPY && n.iclass != XBT_IC_MEMORY && n.iclass != XBT_IC_STACK)
        return false;
    if (insn_extra(&n) && out_of_room_for(t, max, INSN_RESERVE + insn_extra(&n)))
        return false; /* a large ENTER: not in what is left of this block */
    return n.callout == XBT_CO_NONE &&
           !(n.flags & (XBT_IF_ENDS_BLOCK | XBT_IF_BRANCH | XBT_IF_UD | XBT_IF_FAR));
}

enum xbt_tstatus xbt_translate_block(xbt_translator *tr, const xbt_tmode *mode, uint32_t eip,
                                     xbt_fetch_fn fetch, void *opaque, xbt_tblock *b)
{
    xbt_tx t;
    memset(&t, 0, sizeof t);
    t.tr = tr;
    t.mode = mode;
    t.b = b;
    ZydisDecoderInit(&t.dec64, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);

    b->eip = eip;
    b->guest_len = 0;
    b->n_insns = 0;
    b->end = XBT_END_LIMIT;
    b->code_len = b->body_len = b->ool_off = 0;
    b->n_exits = b->n_map = b->n_sites = 0;
    b->sites_off = 0;
    b->n_relocs = 0;
    /* Traces hold recorded EIPs in guards and profiles counters' addresses: not shared. */
    b->reloc_ok = !tr->path && !tr->prof && !tr->block_count &&
                  !(mode->size16 & XBT_TS_CODE16); /* IP wraps at 64 KiB, not with EIP */
    b->code16 = (mode->size16 & XBT_TS_CODE16) != 0;
    b->thunk = 0;
    b->fpu_skip = 0;
    int thunk = -1; /* the first instruction's thunk_load_reg */
    memset(&b->stats, 0, sizeof b->stats);
    b->error[0] = 0;
    if (b->code_cap < 2 * INSN_RESERVE) {
        snprintf(b->error, sizeof b->error, "code buffer of %u bytes is too small", b->code_cap);
        return XBT_T_NO_SPACE;
    }

    uint32_t pc = eip;
    uint32_t first_page = eip & ~0xFFFu;
    uint32_t end = eip; /* a trace: the end of the furthest instruction */
    t.follow = ~0u;
    b->path_used = 1;
    uint32_t max = tr->max_insns ? tr->max_insns : XBT_BLOCK_MAX_INSNS;
    if (max > XBT_BLOCK_MAX_INSNS)
        max = XBT_BLOCK_MAX_INSNS;
    for (;;) {
        uint8_t buf[ZYDIS_MAX_INSTRUCTION_LENGTH];
        /* The bytes up to the page's end first, the next page's only for an instruction
           that crosses into it: a block depends on no page it does not use (code
           protection, the block's pages; with several vCPUs the fetch write-protects
           what it reads). */
        uint32_t room = 4096 - (pc & 0xFFF), want = room < sizeof buf ? room : sizeof buf;
        uint32_t got = fetch(opaque, pc, buf, want);
        xbt_insn in;
        bool code16 = mode->size16 & XBT_TS_CODE16;
        enum xbt_decode_status ds = got ? xbt_decode_as(&tr->dec, code16, buf, got, pc, &in)
                                        : XBT_DECODE_TRUNCATED;
        if (ds == XBT_DECODE_TRUNCATED && got == want && want < sizeof buf) {
            got = fetch(opaque, pc, buf, sizeof buf);
            ds = got ? xbt_decode_as(&tr->dec, code16, buf, got, pc, &in) : XBT_DECODE_TRUNCATED;
        }
        if (ds == XBT_DECODE_TRUNCATED) {
            if (b->n_insns == 0) {
                snprintf(b->error, sizeof b->error, "cannot fetch guest code at %08x", pc);
                return XBT_T_FETCH_FAULT;
            }
            b->end = XBT_END_FETCH;
            b->reloc_ok = false; /* elsewhere the next page may be there */
            add_map(&t, pc, XBT_FIX_NONE, 0, 0);
            emit_direct_exit(&t, pc, XBT_EXIT_FALLTHROUGH);
            break;
        }
        if (b->n_insns > 0 && insn_extra(&in) && !t.gate_due &&
            out_of_room_for(&t, max, insn_extra(&in))) {
            end_at_limit(&t, pc); /* it starts the next block, which has room */
            break;
        }
        bool gate = t.gate_due, needs_gate = false;
        t.gate_due = false;
        t.sti_inline = in.callout == XBT_CO_STI && mode->cpl == 0 && !gate &&
                       !(tr->stop_before && tr->stop_before(tr->stop_ctx, pc + in.length)) &&
                       sti_shadow_fits(&t, fetch, opaque, pc + in.length, first_page, max,
                                       &needs_gate);
        uint32_t map0 = b->n_map ? b->n_map - 1 : 0;
        t.insn_eip = pc;
        t.uk_fast = -1;
        t.uk_fast_used = false;
        bool gate_in_exits = gate && (in.flags & XBT_IF_BRANCH);
        t.gate_exits = gate_in_exits;
        bool ends = translate_insn(&t, &in);
        if (b->n_insns == 0)
            thunk = thunk_load_reg(&in);
        if (t.uk_fast_used) {
            /* Its pc-map entries tell a fault of the fast form's wrap (translator.h). */
            for (uint32_t i = map0; i < b->n_map; i++)
                if (b->map[i].guest_eip == pc)
                    b->map[i].seg |= XBT_MAP_UK_FAST;
        }
        if (t.uk_base_lost) {
            /* R9 is the U-window's base again at the next instruction (abi.h).  No
               instruction that ends a block uses R9: its exits would take it along. */
            if (ends)
                xbt_tx_fail(&t, "R9 used as a scratch by a block-ending instruction at %08x",
                            pc);
            else
                xbt_emit_uk_base(&t);
        }
        if (t.sti_inline)
            t.gate_due = needs_gate;
        t.sti_inline = false;
        if (gate && !gate_in_exits && !t.failed)
            emit_intr_gate(&t, pc + in.length); /* the STI shadow ends here */
        t.gate_exits = false; /* (an exception's callout took the branch's place) */
        b->n_insns++;
        pc += in.length;
        if (pc > end)
            end = pc;
        b->guest_len = end - eip; /* a trace covers [eip, end), gaps included */
        if (t.failed)
            break;
        if (ends && t.follow != ~0u) {
            /* A trace goes on at the next block of its path. */
            pc = t.follow;
            t.follow = ~0u;
            t.path_i++;
            b->path_used = t.path_i + 1;
            ends = false;
            if (out_of_room(&t, max)) {
                end_at_limit(&t, pc);
                break;
            }
            continue;
        }
        /* A trace whose path block ended by a limit goes on into the next one. */
        if (!ends && tr->path && t.path_i + 1 < tr->path_n && pc == tr->path[t.path_i + 1]) {
            t.path_i++;
            b->path_used = t.path_i + 1;
        }
        if (ends) {
            b->end = (in.iclass >= XBT_IC_JMP_DIRECT && in.iclass <= XBT_IC_RET)
                         ? XBT_END_BRANCH : XBT_END_CALLOUT;
            if (b->n_insns == 2 && thunk >= 0 && in.length == 1 && in.bytes[0] == 0xC3 &&
                !tr->path && thunk_mode(mode))
                b->thunk = (uint8_t)(1 + thunk);
            break;
        }
        /* Limits: instruction count, host space, at most two guest pages; a stop the
           runtime asked for. */
        if (tr->stop_before && tr->stop_before(tr->stop_ctx, pc)) {
            end_at_limit(&t, pc);
            break;
        }
        bool page_ok = tr->path ? ((pc - 1) & ~0xFFFu) - first_page <= 4096
                                : ((pc - 1) & ~0xFFFu) == first_page;
        if (!page_ok || out_of_room(&t, max)) {
            end_at_limit(&t, pc);
            break;
        }
    }
    /* The out-of-line paths (REP strings) close the body. */
    b->ool_off = t.len;
    uint32_t sites_before_tails = t.n_sites;
    for (uint32_t i = 0; i < t.n_tails && !t.failed; i++)
        emit_string_tail(&t, &t.tails[i]);
    /* The exits' x87/SSE marks (xbt_texit.fpu) follow the order of emission: out-of-line
       code, which runs between earlier instructions, must make no callout. */
    if (t.n_sites != sites_before_tails)
        xbt_tx_fail(&t, "a callout in out-of-line code at %08x (the exits' x87/SSE marks "
                        "assume none)", b->eip);
    if (!t.failed)
        finish_block(&t);
    if (t.failed) {
        b->code_len = 0;
        return XBT_T_INTERNAL;
    }
    return XBT_T_OK;
}

uint32_t xbt_flat_fetch(void *opaque, uint32_t eip, uint8_t *buf, uint32_t len)
{
    const struct xbt_flat_src *s = opaque;
    uint32_t off = eip - s->eip;
    if (off >= s->len)
        return 0;
    if (len > s->len - off)
        len = (uint32_t)(s->len - off);
    memcpy(buf, s->bytes + off, len);
    return len;
}

void xbt_tblock_relocate(xbt_tblock *b, uint32_t eip)
{
    uint32_t d = eip - b->eip;
    for (uint32_t i = 0; i < b->n_relocs; i++) {
        uint32_t v;
        memcpy(&v, b->code + b->relocs[i], 4);
        v += d;
        memcpy(b->code + b->relocs[i], &v, 4);
    }
    for (uint32_t i = 0; i < b->n_exits; i++)
        if (b->exits[i].kind < XBT_EXIT_ICACHE_MISS)
            b->exits[i].target += d;
    for (uint32_t i = 0; i < b->n_map; i++)
        b->map[i].guest_eip += d;
    b->eip = eip;
}

const char *xbt_tblock_diff(const xbt_tblock *a, const xbt_tblock *b)
{
    if (a->eip != b->eip)
        return "eip";
    if (a->code_len != b->code_len || a->body_len != b->body_len ||
        memcmp(a->code, b->code, a->code_len) != 0)
        return "host code";
    if (a->n_exits != b->n_exits)
        return "exits";
    for (uint32_t i = 0; i < a->n_exits; i++) {
        const struct xbt_texit *x = &a->exits[i], *y = &b->exits[i];
        if (x->rel32_off != y->rel32_off || x->stub_off != y->stub_off ||
            x->target != y->target || x->kind != y->kind || x->prof != y->prof ||
            x->alt != y->alt || x->fpu != y->fpu)
            return "exits";
    }
    if (a->n_map != b->n_map || memcmp(a->map, b->map, a->n_map * sizeof a->map[0]) != 0)
        return "pc map";
    if (a->guest_len != b->guest_len || a->n_insns != b->n_insns || a->end != b->end ||
        a->thunk != b->thunk || a->fpu_skip != b->fpu_skip)
        return "extent";
    if (a->n_sites != b->n_sites || a->sites_off != b->sites_off || a->ool_off != b->ool_off)
        return "callout sites";
    if (a->reloc_ok != b->reloc_ok || a->n_relocs != b->n_relocs ||
        memcmp(a->relocs, b->relocs, a->n_relocs * sizeof a->relocs[0]) != 0)
        return "relocations";
    return NULL;
}

const struct xbt_pcmap *xbt_tblock_lookup(const xbt_tblock *b, uint32_t off)
{
    if (off >= b->body_len || b->n_map == 0)
        return NULL;
    const struct xbt_pcmap *best = NULL;
    for (uint32_t i = 0; i < b->n_map && b->map[i].host_off <= off; i++)
        best = &b->map[i];
    return best;
}
