/*
 * emit.c - host instruction encoding for the translator, through Zydis's encoder.
 *
 * Zydis's encoder searches its tables for every request (about 2,000 host cycles), and
 * most requests recur: the exit stubs, the lookups, the stack rewrites, and guest
 * instructions with the same operands.  Each thread keeps the bytes of recent requests
 * (memoization of the encoder).  The key is the request packed into 40 bytes: the
 * header fields and, per operand, its type and that type's fields, in a layout the
 * types decide (other types' fields are cleared before a miss is encoded, so the bytes
 * are a function of the key).  Displacements and immediates (not a branch's) are in
 * the key only as their class: which widths they fit in, signed and unsigned, as 64-,
 * 32- and 16-bit values, whether they are zero, whether they are 1; the only facts
 * about a value the encoder's choice of form depends on.  The slot keeps where the
 * first encoding put each of those fields (found by decoding it, and checked against
 * the request's values), and a hit writes the request's own values there: a memory
 * operand with another displacement, an exit with another target, is a copy and a
 * patch, not an encoding.  A request that does not fit (EVEX or MVEX encodings, whose
 * disp8 is scaled; is4 registers; values too wide for their field; too many operand
 * bytes; fields the decoder does not find where they should be) is encoded without the
 * cache.  A slot is one cache line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

/* Where the next instruction goes, with *room for it; NULL once the translation failed
   or the buffer is full (which fails it). */
static uint8_t *cursor(xbt_tx *t, ZyanUSize *room)
{
    if (t->failed)
        return NULL;
    /* Keep ZYDIS_MAX_INSTRUCTION_LENGTH + 1 spare so a 0x67 insertion always fits. */
    if (t->b->code_cap < t->len + ZYDIS_MAX_INSTRUCTION_LENGTH + 1) {
        xbt_tx_fail(t, "host code buffer full (%u bytes)", t->b->code_cap);
        return NULL;
    }
    *room = ZYDIS_MAX_INSTRUCTION_LENGTH;
    return t->b->code + t->len;
}

#define ENC_CACHE_BITS 12
#define ENC_CACHE_SLOTS (1u << ENC_CACHE_BITS) /* per thread: 256 KiB */
#define ENC_KEY_BYTES 40
#define ENC_VALUES 3 /* a displacement and two immediates (ENTER) */
struct enc_slot {
    uint64_t key[ENC_KEY_BYTES / 8];
    uint8_t len; /* 0: empty */
    uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH];
    uint8_t at[ENC_VALUES];   /* each patched value's offset in bytes[] */
    uint8_t size[ENC_VALUES]; /* and its size there in bytes (0: not in the encoding) */
    uint8_t pad[2];
};
_Static_assert(sizeof(struct enc_slot) == 64, "a slot is one cache line");
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

/* Appends n bytes of v (little-endian) at *at; false if the key is full.  One 8-byte
   store of v cut to n bytes: the key's buffer has 8 bytes to spare (ENC_KEY_BUF), and
   the bytes past *at + n are zero before and after (a loop of byte stores was a tenth
   of the translator's instructions). */
#define ENC_KEY_BUF (ENC_KEY_BYTES + 8)
static inline bool key_put(uint8_t *k, unsigned *at, uint64_t v, unsigned n)
{
    if (*at + n > ENC_KEY_BYTES)
        return false;
    if (n < 8)
        v &= (1ull << (8 * n)) - 1;
    memcpy(k + *at, &v, 8);
    *at += n;
    return true;
}

/* Whether v fits in n bytes. */
static bool fits(uint64_t v, unsigned n)
{
    return n >= 8 || v < (1ull << (8 * n));
}

/* 0-3: the narrowest of 8, 16, 32 and 64 bits that holds x, signed and unsigned. */
static unsigned width_s(int64_t x)
{
    return x == (int8_t)x ? 0 : x == (int16_t)x ? 1 : x == (int32_t)x ? 2 : 3;
}

static unsigned width_u(uint64_t x)
{
    return x <= 0xFF ? 0 : x <= 0xFFFF ? 1 : x <= 0xFFFFFFFF ? 2 : 3;
}

/* What the encoder can learn from a displacement or an immediate when it chooses a
   form: the widths it fits in as a 64-, a 32- and a 16-bit value, signed and unsigned,
   which of those (and its low byte) are zero, and whether it is 1 (the shifts' D0-D3
   forms).  Two values of one class get the same encoding but for the field that holds
   them. */
static uint32_t value_class(uint64_t v)
{
    unsigned c = width_s((int64_t)v) | width_u(v) << 2;
    c |= width_s((int32_t)(uint32_t)v) << 4 | width_u((uint32_t)v) << 6;
    c |= width_s((int16_t)(uint16_t)v) << 8 | width_u((uint16_t)v) << 10;
    c |= (v == 0) << 12 | ((uint32_t)v == 0) << 13 | ((uint16_t)v == 0) << 14 |
         ((uint8_t)v == 0) << 15 | (v == 1) << 16;
    return c;
}

/*
 * Packs what the encoder reads of req into key (zeroed first): the header (mnemonic,
 * operand count, branch type and width, size hints, allowed encodings, prefixes), then
 * each operand as its type and that type's fields (register: value; memory: base,
 * index, scale, size, displacement's class; pointer: segment, offset; immediate: its
 * class, a branch's value).  The type byte decides the layout that follows, so the
 * packing is one-to-one.  The fields of other types are cleared in req itself (Zydis
 * 4.0 reads some regardless of the type: a MOV's swappable forms read operand 1's
 * immediate and register both), so that what a miss encodes is a function of the key
 * alone; the translator's requests come from zeroing builders (emit.h) and Zydis's
 * converter, which leave nothing there.  false: the request does not fit (it is encoded
 * without the cache).
 */
static bool req_key(ZydisEncoderRequest *req, uint64_t key[ENC_KEY_BUF / 8],
                    uint64_t val[ENC_VALUES], bool has[ENC_VALUES])
{
    static const ZydisEncoderRequest zero_req;
    if (memcmp(&req->evex, &zero_req.evex, sizeof req->evex) != 0 ||
        memcmp(&req->mvex, &zero_req.mvex, sizeof req->mvex) != 0 ||
        req->operand_count > ZYDIS_ENCODER_MAX_OPERANDS)
        return false;
    uint8_t *k = (uint8_t *)key;
    memset(k, 0, ENC_KEY_BUF);
    unsigned at = 0, nimm = 0;
    bool branch = req->branch_type != ZYDIS_BRANCH_TYPE_NONE;
    for (int i = 0; i < ENC_VALUES; i++)
        val[i] = 0, has[i] = false;
    const uint64_t head[] = { (uint64_t)req->machine_mode, (uint64_t)req->allowed_encodings,
                              (uint64_t)req->branch_type, (uint64_t)req->branch_width,
                              (uint64_t)req->address_size_hint,
                              (uint64_t)req->operand_size_hint, req->operand_count };
    if (!fits((uint64_t)req->mnemonic, 2) || !key_put(k, &at, (uint64_t)req->mnemonic, 2))
        return false;
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        if (!fits(head[i], 1) || !key_put(k, &at, head[i], 1))
            return false;
    if (!key_put(k, &at, (uint64_t)req->prefixes, 8))
        return false;
    for (ZyanU8 i = 0; i < req->operand_count; i++) {
        ZydisEncoderOperand *o = &req->operands[i], c;
        memset(&c, 0, sizeof c);
        c.type = o->type;
        if (!fits((uint64_t)o->type, 1) || !key_put(k, &at, (uint64_t)o->type, 1))
            return false;
        bool ok;
        switch (o->type) {
        case ZYDIS_OPERAND_TYPE_REGISTER:
            /* An is4 register shares its byte with an immediate that must be below 16,
               which the class does not say: not cached. */
            c.reg.value = o->reg.value;
            ok = !o->reg.is4 && fits((uint64_t)o->reg.value, 2) &&
                 key_put(k, &at, (uint64_t)o->reg.value, 2);
            break;
        case ZYDIS_OPERAND_TYPE_MEMORY:
            c.mem = o->mem;
            ok = fits((uint64_t)o->mem.base, 2) && fits((uint64_t)o->mem.index, 2) &&
                 key_put(k, &at, (uint64_t)o->mem.base, 2) &&
                 key_put(k, &at, (uint64_t)o->mem.index, 2) &&
                 key_put(k, &at, o->mem.scale, 1) && key_put(k, &at, o->mem.size, 2) &&
                 !has[0] && key_put(k, &at, value_class((uint64_t)o->mem.displacement), 3);
            val[0] = (uint64_t)o->mem.displacement, has[0] = true;
            break;
        case ZYDIS_OPERAND_TYPE_POINTER:
            c.ptr = o->ptr;
            ok = key_put(k, &at, o->ptr.segment, 2) && key_put(k, &at, o->ptr.offset, 4);
            break;
        case ZYDIS_OPERAND_TYPE_IMMEDIATE:
            c.imm = o->imm;
            if (branch) { /* a relative target: the value itself */
                ok = key_put(k, &at, o->imm.u, 8);
                break;
            }
            ok = nimm < ENC_VALUES - 1 && key_put(k, &at, value_class(o->imm.u), 3);
            if (ok)
                val[1 + nimm] = o->imm.u, has[1 + nimm++] = true;
            break;
        default:
            return false;
        }
        if (!ok)
            return false;
        *o = c;
    }
    return true;
}

/* Five independent multiply-xor lanes, folded. */
static uint64_t key_hash(const uint64_t key[ENC_KEY_BYTES / 8])
{
    uint64_t x = (key[0] ^ 0xcbf29ce484222325ull) * 0x9e3779b97f4a7c15ull;
    x += (key[1] ^ 0x84222325cbf29ce4ull) * 0xc2b2ae3d27d4eb4full;
    x += (key[2] ^ 0x9e3779b97f4a7c15ull) * 0x165667b19e3779f9ull;
    x += (key[3] ^ 0xc2b2ae3d27d4eb4full) * 0xd6e8feb86659fd93ull;
    x += (key[4] ^ 0x165667b19e3779f9ull) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 32;
    return x * 0x9e3779b97f4a7c15ull; /* its top bits index the cache */
}

/* Where the encoding of n bytes at p holds the request's displacement and immediates
   (has[i]: the request has value i), into slot->at and slot->size (only if it is
   cached): the 64-bit decoder's view of it, which must show each value, truncated to
   its field, where the request has one, and no other field but a branch's immediates
   (exact_imm: the key holds their values).  false: it does not (not cached). */
static bool enc_fields(const uint8_t *p, size_t n, const uint64_t val[ENC_VALUES],
                       const bool has[ENC_VALUES], bool exact_imm, struct enc_slot *slot)
{
    static __thread ZydisDecoder dec;
    static __thread bool dec_ready;
    if (!dec_ready) {
        if (!ZYAN_SUCCESS(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64,
                                           ZYDIS_STACK_WIDTH_64)))
            return false;
        dec_ready = true;
    }
    ZydisDecodedInstruction di;
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&dec, NULL, p, n, &di)) || di.length != n)
        return false;
    /* EVEX and MVEX scale an 8-bit displacement by the operand's size (disp8*N): whether
       a displacement fits depends on its being a multiple of N, which the class does not
       say.  Such encodings are not cached. */
    if (di.encoding == ZYDIS_INSTRUCTION_ENCODING_EVEX ||
        di.encoding == ZYDIS_INSTRUCTION_ENCODING_MVEX)
        return false;
    struct { uint8_t at, size; uint64_t v; } f[ENC_VALUES] = {
        { di.raw.disp.offset, (uint8_t)(di.raw.disp.size / 8), (uint64_t)di.raw.disp.value },
        { di.raw.imm[0].offset, (uint8_t)(di.raw.imm[0].size / 8), di.raw.imm[0].value.u },
        { di.raw.imm[1].offset, (uint8_t)(di.raw.imm[1].size / 8), di.raw.imm[1].value.u },
    };
    for (int i = 0; i < ENC_VALUES; i++) {
        if (!has[i]) {
            if (f[i].size && !(i > 0 && exact_imm))
                return false; /* a field the request gave no value for */
            f[i].at = f[i].size = 0; /* a branch's offset: in the key, as it is */
            continue;
        }
        uint64_t mask = f[i].size >= 8 ? ~0ull : (1ull << (8 * f[i].size)) - 1;
        if (f[i].size > 8 || f[i].at + f[i].size > n || ((f[i].v ^ val[i]) & mask) != 0)
            return false;
        if (f[i].size == 0 && val[i] != 0)
            return false; /* only a zero displacement may be left out */
    }
    for (int i = 0; i < ENC_VALUES; i++)
        slot->at[i] = f[i].at, slot->size[i] = f[i].size;
    return true;
}

void xbt_emit_req(xbt_tx *t, ZydisEncoderRequest *req)
{
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
    uint64_t key[ENC_KEY_BUF / 8], val[ENC_VALUES];
    bool has[ENC_VALUES];
    struct enc_slot *slot = NULL;
    if (enc_cache && req_key(req, key, val, has)) {
        slot = &enc_cache[key_hash(key) >> (64 - ENC_CACHE_BITS)];
        if (slot->len && memcmp(slot->key, key, ENC_KEY_BYTES) == 0) {
            memcpy(p, slot->bytes, ZYDIS_MAX_INSTRUCTION_LENGTH); /* room has 16 spare */
            for (int i = 0; i < ENC_VALUES; i++)
                for (unsigned j = 0; j < slot->size[i]; j++)
                    p[slot->at[i] + j] = (uint8_t)(val[i] >> (8 * j));
            t->len += slot->len;
            return;
        }
    }
    ZyanStatus s = ZydisEncoderEncodeInstruction(req, p, &room);
    if (!ZYAN_SUCCESS(s)) {
        xbt_tx_fail(t, "encoder refused %s (status 0x%x)", ZydisMnemonicGetString(req->mnemonic),
                    (unsigned)s);
        return;
    }
    if (slot && enc_fields(p, room, val, has,
                                   req->branch_type != ZYDIS_BRANCH_TYPE_NONE, slot)) {
        memcpy(slot->key, key, ENC_KEY_BYTES);
        slot->len = (uint8_t)room;
        memcpy(slot->bytes, p, room);
    }
    t->len += (uint32_t)room;
}

void xbt_emit_raw(xbt_tx *t, const uint8_t *bytes, unsigned n)
{
    ZyanUSize room;
    uint8_t *p = cursor(t, &room);
    if (!p)
        return;
    if (n > room) {
        xbt_tx_fail(t, "instruction of %u bytes", n);
        return;
    }
    memcpy(p, bytes, n);
    t->len += n;
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
