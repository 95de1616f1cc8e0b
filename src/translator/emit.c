/*
 * emit.c - host instruction encoding for the translator, through Zydis's encoder.
 *
 * Zydis's encoder searches its tables for every request (about 2,000 host cycles), and
 * most requests recur: the exit stubs, the lookups, the stack rewrites, and guest
 * instructions with the same operands.  Each thread keeps the bytes of recent requests
 * (memoization of the encoder, keyed by the whole request as the encoder reads it:
 * header and used operands, compared in full), so a repeated request is a hash, a
 * compare and a copy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>

#include "emit.h"

void xbt_tx_fail(xbt_tx *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    t->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->b->error, sizeof t->b->error, fmt, ap);
    va_end(ap);
}

ZydisInstructionAttributes xbt_window_prefix(const xbt_tx *t)
{
    return t->mode->window != XBT_WINDOW_D ? ZYDIS_ATTRIB_HAS_SEGMENT_GS : 0;
}

static uint8_t *cursor(xbt_tx *t, ZyanUSize *room)
{
    /* Keep ZYDIS_MAX_INSTRUCTION_LENGTH + 1 spare so a 0x67 insertion always fits. */
    if (t->b->code_cap < t->len + ZYDIS_MAX_INSTRUCTION_LENGTH + 1) {
        xbt_tx_fail(t, "host code buffer full (%u bytes)", t->b->code_cap);
        return NULL;
    }
    *room = ZYDIS_MAX_INSTRUCTION_LENGTH;
    return t->b->code + t->len;
}

#define ENC_CACHE_SLOTS 4096 /* per thread, about 1.7 MiB */
struct enc_slot {
    ZydisEncoderRequest req;
    uint64_t hash;
    uint8_t len; /* 0: empty */
    uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH];
};
static __thread struct enc_slot *enc_cache;
static __thread bool enc_cache_failed;

/* The cache goes with its thread (an embedder may translate on threads that come and
   go): a key whose destructor frees it. */
static pthread_key_t enc_cache_key;
static pthread_once_t enc_cache_once = PTHREAD_ONCE_INIT;

static void enc_cache_free(void *p)
{
    free(p);
}

static void enc_cache_key_init(void)
{
    if (pthread_key_create(&enc_cache_key, enc_cache_free) != 0)
        enc_cache_failed = true; /* this thread runs without the cache */
}

/* The bytes of the request that the encoder reads. */
static size_t req_bytes(const ZydisEncoderRequest *r)
{
    size_t n = r->operand_count <= ZYDIS_ENCODER_MAX_OPERANDS ? r->operand_count
                                                               : ZYDIS_ENCODER_MAX_OPERANDS;
    return offsetof(ZydisEncoderRequest, operands) + n * sizeof(ZydisEncoderOperand);
}

/* Four independent multiply-xor lanes over 8-byte words, folded at the end: one lane
   over the 200-400 bytes of a request was a chain of dependent multiplies, 27% of the
   translator's time (bench_translate over libc).  The lanes' constants differ, which
   keeps the compiler from turning them into SSE2 code without a 64-bit multiply. */
static uint64_t req_hash(const ZydisEncoderRequest *r, size_t n)
{
    const uint8_t *p = (const uint8_t *)r;
    uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull, c = 0x9e3779b97f4a7c15ull,
             d = 0xc2b2ae3d27d4eb4full, w;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        memcpy(&w, p + i, 8);
        a = (a ^ w) * 0x9e3779b97f4a7c15ull;
        memcpy(&w, p + i + 8, 8);
        b = (b ^ w) * 0xc2b2ae3d27d4eb4full;
        memcpy(&w, p + i + 16, 8);
        c = (c ^ w) * 0x165667b19e3779f9ull;
        memcpy(&w, p + i + 24, 8);
        d = (d ^ w) * 0xd6e8feb86659fd93ull;
    }
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        a = (a ^ w) * 0x9e3779b97f4a7c15ull;
    }
    for (; i < n; i++)
        b = (b ^ p[i]) * 0xc2b2ae3d27d4eb4full;
    uint64_t x = (a ^ (a >> 29)) + (b ^ (b >> 31)) * 3 + (c ^ (c >> 27)) * 5 + (d ^ (d >> 33)) * 7;
    return x ^ (x >> 32);
}

void xbt_emit_req(xbt_tx *t, ZydisEncoderRequest *req)
{
    if (t->failed)
        return;
    ZyanUSize room;
    uint8_t *p = cursor(t, &room);
    if (!p)
        return;
    req->machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    if (t->mode->window == XBT_WINDOW_UK && !t->uk_base_lost)
        for (ZyanU8 i = 0; i < req->operand_count && i < ZYDIS_ENCODER_MAX_OPERANDS; i++)
            if (req->operands[i].type == ZYDIS_OPERAND_TYPE_REGISTER &&
                (req->operands[i].reg.value == ZYDIS_REGISTER_R9 ||
                 req->operands[i].reg.value == ZYDIS_REGISTER_R9D ||
                 req->operands[i].reg.value == ZYDIS_REGISTER_R9W ||
                 req->operands[i].reg.value == ZYDIS_REGISTER_R9B))
                t->uk_base_lost = true; /* a scratch use: loaded again before the next
                                           U-window access and the next instruction */
    if (!enc_cache && !enc_cache_failed) {
        pthread_once(&enc_cache_once, enc_cache_key_init);
        if (!enc_cache_failed && (enc_cache = calloc(ENC_CACHE_SLOTS, sizeof *enc_cache)) &&
            pthread_setspecific(enc_cache_key, enc_cache) != 0) {
            free(enc_cache); /* it could not be freed with the thread: none */
            enc_cache = NULL;
        }
        enc_cache_failed = !enc_cache;
    }
    size_t n = req_bytes(req);
    uint64_t h = req_hash(req, n);
    struct enc_slot *slot = enc_cache ? &enc_cache[h & (ENC_CACHE_SLOTS - 1)] : NULL;
    if (slot && slot->len && slot->hash == h && memcmp(&slot->req, req, n) == 0) {
        memcpy(p, slot->bytes, slot->len);
        t->len += slot->len;
        return;
    }
    ZyanStatus s = ZydisEncoderEncodeInstruction(req, p, &room);
    if (!ZYAN_SUCCESS(s)) {
        xbt_tx_fail(t, "encoder refused %s (status 0x%x)", ZydisMnemonicGetString(req->mnemonic),
                    (unsigned)s);
        return;
    }
    if (slot) {
        memcpy(&slot->req, req, n);
        slot->hash = h;
        slot->len = (uint8_t)room;
        memcpy(slot->bytes, p, room);
    }
    t->len += (uint32_t)room;
}

static bool is_legacy_prefix(uint8_t b)
{
    switch (b) {
    case 0xF0: case 0xF2: case 0xF3: case 0x2E: case 0x36: case 0x3E: case 0x26:
    case 0x64: case 0x65: case 0x66: case 0x67:
        return true;
    default:
        return false;
    }
}

/* Whether the request names reg64 in any width, as an operand or in an address. */
static bool req_uses(const ZydisEncoderRequest *r, ZydisRegister reg64)
{
    for (ZyanU8 i = 0; i < r->operand_count && i < ZYDIS_ENCODER_MAX_OPERANDS; i++) {
        const ZydisEncoderOperand *o = &r->operands[i];
        ZydisRegister regs[2] = { ZYDIS_REGISTER_NONE, ZYDIS_REGISTER_NONE };
        if (o->type == ZYDIS_OPERAND_TYPE_REGISTER)
            regs[0] = o->reg.value;
        else if (o->type == ZYDIS_OPERAND_TYPE_MEMORY)
            regs[0] = o->mem.base, regs[1] = o->mem.index;
        for (int k = 0; k < 2; k++)
            if (regs[k] != ZYDIS_REGISTER_NONE &&
                ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, regs[k]) == reg64)
                return true;
    }
    return false;
}

static bool req_high8(const ZydisEncoderRequest *r)
{
    for (ZyanU8 i = 0; i < r->operand_count && i < ZYDIS_ENCODER_MAX_OPERANDS; i++) {
        ZydisRegister g = r->operands[i].type == ZYDIS_OPERAND_TYPE_REGISTER
                              ? r->operands[i].reg.value : ZYDIS_REGISTER_NONE;
        if (g == ZYDIS_REGISTER_AH || g == ZYDIS_REGISTER_BH || g == ZYDIS_REGISTER_CH ||
            g == ZYDIS_REGISTER_DH)
            return true;
    }
    return false;
}

/* A guest register as a host operand (ESP: R12D), whose upper half is zero (abi.h). */
static bool guest_reg32(ZydisRegister r)
{
    return (r >= ZYDIS_REGISTER_EAX && r <= ZYDIS_REGISTER_EDI) || r == ZYDIS_REGISTER_R12D;
}

/* Whether *m, a guest operand, may take the U-window's fast form: a guest register
   plus a small displacement, and the instruction's sum never seen to wrap. */
static bool uk_fast_form(xbt_tx *t, const ZydisEncoderOperand *m)
{
    if (!t->tr->uk_wrap_site || m->mem.index != ZYDIS_REGISTER_NONE || !m->mem.displacement ||
        m->mem.displacement < XBT_UK_FAST_DISP_MIN ||
        m->mem.displacement > XBT_UK_FAST_DISP_MAX || m->mem.size > 512 ||
        !guest_reg32(m->mem.base))
        return false;
    if (t->uk_fast < 0)
        t->uk_fast = !t->tr->uk_wrap_site(t->tr->mmio_ctx, t->insn_eip);
    return t->uk_fast > 0;
}

/*
 * XBT_WINDOW_UK: GS holds the K-window's base and the U-window lies XBT_WINDOW_UK_BELOW
 * below it.  The operand's 32-bit linear address goes into a scratch register with a
 * 32-bit LEA (which wraps at 4 GiB as the CPU does), and the access is gs:[R9 + scratch]
 * with 64-bit addressing: R9 holds XBT_UK_R9 = -XBT_WINDOW_UK_BELOW (abi.h: loaded with
 * the guest registers at every entry and callout return, and again after any
 * instruction whose translation used R9 as a scratch), so the sum is U-window base +
 * linear, never above the guard page.  The scratch is R11 (no guest access keeps a value
 * in it).  An instruction with AH..DH cannot encode R9 or R11 (REX): the caller has put
 * the address alone into a borrowed legacy register (translate.c, XBT_FIX_SAVED_REG),
 * which NOT of its low half, then of all of it, makes 2^64 - 2^32 + linear (flag-free),
 * and the access is gs:[reg - 4096].  [reg] alone needs no LEA (the register is the
 * linear address), and [reg + small disp] none either where the runtime allows it
 * (uk_fast_form): gs:[r9 + reg + disp], whose rare wrap at 4 GiB faults outside the
 * U-window and is made right by the runtime (translator.h, uk_wrap_site).
 */
static void uk_readdress(xbt_tx *t, ZydisEncoderRequest *req)
{
    ZydisEncoderOperand *m = NULL;
    for (ZyanU8 i = 0; i < req->operand_count && i < ZYDIS_ENCODER_MAX_OPERANDS; i++)
        if (req->operands[i].type == ZYDIS_OPERAND_TYPE_MEMORY)
            m = &req->operands[i];
    if (!m)
        return;
    ZydisRegister s32 = ZYDIS_REGISTER_R11D;
    bool high8 = req_high8(req);
    if (high8) {
        s32 = m->mem.base;
        if (m->mem.index != ZYDIS_REGISTER_NONE || m->mem.displacement ||
            s32 < ZYDIS_REGISTER_EAX || s32 > ZYDIS_REGISTER_EDI) {
            xbt_tx_fail(t, "U-window access of %s: high-byte register beside a full address",
                        ZydisMnemonicGetString(req->mnemonic));
            return;
        }
    } else if (req_uses(req, ZYDIS_REGISTER_R11) || req_uses(req, XBT_UK_BASE_REG)) {
        xbt_tx_fail(t, "U-window access of %s: R11 or R9 is an operand",
                    ZydisMnemonicGetString(req->mnemonic));
        return;
    }
    if (!high8 && uk_fast_form(t, m)) {
        /* gs:[r9 + reg + disp]: the sum is the LEA's unless it wraps, and then it lands
           where the fault handler takes it (translator.h, uk_wrap_site). */
        int64_t disp = m->mem.displacement;
        xbt_emit_uk_form(t, m->mem.base, m);
        m->mem.displacement = disp;
        t->uk_fast_used = true;
        return;
    }
    if (!high8 && m->mem.index == ZYDIS_REGISTER_NONE && !m->mem.displacement &&
        guest_reg32(m->mem.base))
        s32 = m->mem.base; /* [reg] alone: the linear address as it is */
    else if (m->mem.base != s32 || m->mem.index != ZYDIS_REGISTER_NONE ||
             m->mem.displacement) {
        ZydisEncoderOperand a = *m;
        a.mem.size = 4;
        xbt_emit2(t, ZYDIS_MNEMONIC_LEA, xo_reg(s32), a);
    }
    if (high8)
        xbt_emit_uk_form_legacy(t, s32, m);
    else
        xbt_emit_uk_form(t, s32, m);
}

_Static_assert(XBT_UK_R9 == -(int64_t)XBT_WINDOW_UK_BELOW, "the UK base register's value");
_Static_assert(XBT_UK_BASE_REG == ZYDIS_REGISTER_R9, "xbt_emit_req names R9's widths");

void xbt_emit_uk_base(xbt_tx *t)
{
    xbt_emit2(t, ZYDIS_MNEMONIC_MOV, xo_reg(XBT_UK_BASE_REG), xo_imm(XBT_UK_R9));
    t->uk_base_lost = false;
}

void xbt_emit_uk_form(xbt_tx *t, ZydisRegister s32, ZydisEncoderOperand *m)
{
    if (t->uk_base_lost)
        xbt_emit_uk_base(t);
    m->mem.base = XBT_UK_BASE_REG;
    m->mem.index = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, s32);
    m->mem.scale = 1;
    m->mem.displacement = 0;
}

void xbt_emit_uk_form_legacy(xbt_tx *t, ZydisRegister s32, ZydisEncoderOperand *m)
{
    ZydisRegister s64 = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, s32);
    xbt_emit1(t, ZYDIS_MNEMONIC_NOT, xo_reg(s32));
    xbt_emit1(t, ZYDIS_MNEMONIC_NOT, xo_reg(s64));
    m->mem.base = s64;
    m->mem.index = ZYDIS_REGISTER_NONE;
    m->mem.scale = 0;
    m->mem.displacement = -XBT_UK_GUARD;
}

void xbt_emit_req_guest(xbt_tx *t, ZydisEncoderRequest *req)
{
    if (t->failed)
        return;
    if (t->soft) {
        /* A soft fault site's access (translate.c, emit_pf_probe): R15 is its host
           address, the window's or the guest page's in the VMM's view of RAM. */
        t->soft = false;
        for (ZyanU8 i = 0; i < req->operand_count && i < ZYDIS_ENCODER_MAX_OPERANDS; i++) {
            ZydisEncoderOperand *m = &req->operands[i];
            if (m->type != ZYDIS_OPERAND_TYPE_MEMORY)
                continue;
            m->mem.base = ZYDIS_REGISTER_R15;
            m->mem.index = ZYDIS_REGISTER_NONE;
            m->mem.scale = 0;
            m->mem.displacement = 0;
        }
        req->prefixes &= ~(ZydisInstructionAttributes)ZYDIS_ATTRIB_HAS_SEGMENT_GS;
        req->address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_64;
        xbt_emit_req(t, req);
        return;
    }
    if (t->mode->window == XBT_WINDOW_UK) {
        uk_readdress(t, req);
        req->address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_64;
        xbt_emit_req(t, req);
        return;
    }
    uint32_t start = t->len;
    req->address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_32;
    xbt_emit_req(t, req);
    if (t->failed)
        return;
    /* A memory operand with a 32-bit base or index register is encoded with 32-bit
       addressing (the registers decide); only one without either needs the fix below
       (checked by decoding it back, which costs as much as the encoding). */
    bool absolute = false;
    for (ZyanU8 i = 0; i < req->operand_count; i++) {
        const ZydisEncoderOperand *o = &req->operands[i];
        if (o->type == ZYDIS_OPERAND_TYPE_MEMORY && o->mem.base == ZYDIS_REGISTER_NONE &&
            o->mem.index == ZYDIS_REGISTER_NONE)
            absolute = true;
    }
    if (!absolute)
        return;
    ZydisDecodedInstruction d;
    uint8_t *p = t->b->code + start;
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&t->dec64, NULL, p, t->len - start, &d))) {
        xbt_tx_fail(t, "emitted %s does not decode", ZydisMnemonicGetString(req->mnemonic));
        return;
    }
    if (d.address_width == 32)
        return;
    /* Zydis takes the address size from the base/index registers; an absolute [disp32]
       has none, so it is emitted with 64-bit addressing (SIB, no base).  Insert 0x67
       before the REX/opcode bytes: the same SIB form then means a zero-extended 32-bit
       address, never RIP-relative. */
    uint32_t n = t->len - start, pre = 0;
    while (pre < n && is_legacy_prefix(p[pre]))
        pre++;
    memmove(p + pre + 1, p + pre, n - pre);
    p[pre] = 0x67;
    t->len++;
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&t->dec64, NULL, p, t->len - start, &d)) ||
        d.address_width != 32 || d.length != t->len - start) {
        xbt_tx_fail(t, "cannot force 32-bit addressing on %s",
                    ZydisMnemonicGetString(req->mnemonic));
    }
}

static void init_req(ZydisEncoderRequest *r, ZydisMnemonic m)
{
    memset(r, 0, sizeof *r);
    r->machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    r->mnemonic = m;
}

void xbt_emit0(xbt_tx *t, ZydisMnemonic m)
{
    ZydisEncoderRequest r;
    init_req(&r, m);
    xbt_emit_req(t, &r);
}

void xbt_emit1(xbt_tx *t, ZydisMnemonic m, ZydisEncoderOperand a)
{
    ZydisEncoderRequest r;
    init_req(&r, m);
    r.operand_count = 1;
    r.operands[0] = a;
    xbt_emit_req(t, &r);
}

void xbt_emit2(xbt_tx *t, ZydisMnemonic m, ZydisEncoderOperand a, ZydisEncoderOperand b)
{
    ZydisEncoderRequest r;
    init_req(&r, m);
    r.operand_count = 2;
    r.operands[0] = a;
    r.operands[1] = b;
    xbt_emit_req(t, &r);
}

void xbt_emit3(xbt_tx *t, ZydisMnemonic m, ZydisEncoderOperand a, ZydisEncoderOperand b,
               ZydisEncoderOperand c)
{
    ZydisEncoderRequest r;
    init_req(&r, m);
    r.operand_count = 3;
    r.operands[0] = a;
    r.operands[1] = b;
    r.operands[2] = c;
    xbt_emit_req(t, &r);
}

void xbt_emit2_guest(xbt_tx *t, ZydisMnemonic m, ZydisEncoderOperand a, ZydisEncoderOperand b)
{
    ZydisEncoderRequest r;
    init_req(&r, m);
    r.operand_count = 2;
    r.operands[0] = a;
    r.operands[1] = b;
    r.prefixes = xbt_window_prefix(t);
    xbt_emit_req_guest(t, &r);
}

uint32_t xbt_emit_branch32(xbt_tx *t, ZydisMnemonic m)
{
    ZydisEncoderRequest r;
    init_req(&r, m);
    r.branch_type = ZYDIS_BRANCH_TYPE_NEAR;
    r.branch_width = ZYDIS_BRANCH_WIDTH_32;
    r.operand_count = 1;
    r.operands[0] = xo_imm(0);
    xbt_emit_req(t, &r);
    return t->len - 4;
}

uint32_t xbt_emit_branch8(xbt_tx *t, ZydisMnemonic m, bool addr32)
{
    ZydisEncoderRequest r;
    init_req(&r, m);
    r.branch_type = ZYDIS_BRANCH_TYPE_SHORT;
    r.branch_width = ZYDIS_BRANCH_WIDTH_8;
    r.address_size_hint = addr32 ? ZYDIS_ADDRESS_SIZE_HINT_32 : ZYDIS_ADDRESS_SIZE_HINT_NONE;
    r.operand_count = 1;
    r.operands[0] = xo_imm(0);
    xbt_emit_req(t, &r);
    return t->len - 1;
}

void xbt_patch_rel8(xbt_tx *t, uint32_t rel8_off, uint32_t target_off)
{
    if (t->failed)
        return;
    int32_t d = (int32_t)target_off - (int32_t)(rel8_off + 1);
    if (d < -128 || d > 127) {
        xbt_tx_fail(t, "rel8 out of range (%d)", d);
        return;
    }
    t->b->code[rel8_off] = (uint8_t)(int8_t)d;
}

void xbt_patch_rel32(xbt_tx *t, uint32_t rel32_off, uint32_t target_off)
{
    if (t->failed)
        return;
    int32_t d = (int32_t)target_off - (int32_t)(rel32_off + 4);
    memcpy(t->b->code + rel32_off, &d, 4);
}
