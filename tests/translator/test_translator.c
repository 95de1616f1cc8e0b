/*
 * test_translator.c - classification of every class and each sensitive instruction of
 * Robin & Irvine, and a seeded random-bytes robustness run of decoder + translator
 * (every translation succeeds or reports a fetch fault; every emitted host instruction
 * decodes; pc map and exits are consistent).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/decoder.h"
#include "translator/translator.h"
#include "translator/emit.h"

static xbt_insn decode_hex(const uint8_t *b, size_t n)
{
    xbt_decoder d;
    xbt_decoder_init(&d);
    xbt_insn in;
    ck_assert_int_eq(xbt_decode(&d, b, n, 0x1000, &in), XBT_DECODE_OK);
    return in;
}

#define CLASSIFY(bytes, cls, co, flag)                                                     \
    do {                                                                                   \
        const uint8_t b_[] = bytes;                                                        \
        xbt_insn in_ = decode_hex(b_, sizeof b_);                                          \
        ck_assert_msg(in_.iclass == (cls), "%s: class %s, want %s", #bytes,                \
                      xbt_iclass_name(in_.iclass), xbt_iclass_name(cls));                  \
        ck_assert_msg(in_.callout == (co), "%s: callout %s, want %s", #bytes,              \
                      xbt_callout_name(in_.callout), xbt_callout_name(co));                \
        ck_assert_msg((in_.flags & (flag)) == (flag), "%s: flags %#x lack %#x", #bytes,    \
                      in_.flags, (unsigned)(flag));                                        \
    } while (0)
#define B(...) { __VA_ARGS__ }

START_TEST(sensitive_robin_irvine)
{
    CLASSIFY(B(0x0f, 0x01, 0x00), XBT_IC_SENSITIVE, XBT_CO_SGDT, XBT_IF_SENSITIVE | XBT_IF_MEM);
    CLASSIFY(B(0x0f, 0x01, 0x08), XBT_IC_SENSITIVE, XBT_CO_SIDT, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x0f, 0x00, 0xc0), XBT_IC_SENSITIVE, XBT_CO_SLDT, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x0f, 0x01, 0xe0), XBT_IC_SENSITIVE, XBT_CO_SMSW, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x0f, 0x00, 0xc8), XBT_IC_SENSITIVE, XBT_CO_STR, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x9c), XBT_IC_SENSITIVE, XBT_CO_PUSHF, XBT_IF_SENSITIVE | XBT_IF_STACK);
    CLASSIFY(B(0x9d), XBT_IC_SENSITIVE, XBT_CO_POPF, XBT_IF_SENSITIVE | XBT_IF_ENDS_BLOCK);
    CLASSIFY(B(0x0f, 0x02, 0xc3), XBT_IC_SENSITIVE, XBT_CO_LAR, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x0f, 0x03, 0xc3), XBT_IC_SENSITIVE, XBT_CO_LSL, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x0f, 0x00, 0xe0), XBT_IC_SENSITIVE, XBT_CO_VERR, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x0f, 0x00, 0xe8), XBT_IC_SENSITIVE, XBT_CO_VERW, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x1e), XBT_IC_SENSITIVE, XBT_CO_NONE, XBT_IF_SENSITIVE | XBT_IF_INVALID64);
    CLASSIFY(B(0x0f, 0xa0), XBT_IC_SENSITIVE, XBT_CO_NONE, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x1f), XBT_IC_SENSITIVE, XBT_CO_POP_SREG, XBT_IF_SENSITIVE | XBT_IF_INVALID64);
    CLASSIFY(B(0x8e, 0xd8), XBT_IC_SENSITIVE, XBT_CO_MOV_TO_SREG, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x8c, 0xd8), XBT_IC_SENSITIVE, XBT_CO_NONE, XBT_IF_SENSITIVE);
    CLASSIFY(B(0x9a, 1, 0, 0, 0, 8, 0), XBT_IC_SENSITIVE, XBT_CO_CALL_FAR,
             XBT_IF_SENSITIVE | XBT_IF_FAR | XBT_IF_INVALID64);
    CLASSIFY(B(0xea, 1, 0, 0, 0, 8, 0), XBT_IC_SENSITIVE, XBT_CO_JMP_FAR, XBT_IF_FAR);
    CLASSIFY(B(0xff, 0x28), XBT_IC_SENSITIVE, XBT_CO_JMP_FAR, XBT_IF_FAR | XBT_IF_MEM);
    CLASSIFY(B(0xcd, 0x80), XBT_IC_SENSITIVE, XBT_CO_INT, XBT_IF_SENSITIVE | XBT_IF_ENDS_BLOCK);
    CLASSIFY(B(0xcb), XBT_IC_SENSITIVE, XBT_CO_RET_FAR, XBT_IF_FAR);
    CLASSIFY(B(0xcf), XBT_IC_SENSITIVE, XBT_CO_IRET, XBT_IF_SENSITIVE | XBT_IF_ENDS_BLOCK);
    CLASSIFY(B(0x8e, 0xc8), XBT_IC_UNDEFINED, XBT_CO_UD, XBT_IF_UD); /* mov cs, ax */
}
END_TEST

START_TEST(every_class)
{
    CLASSIFY(B(0x01, 0xd8), XBT_IC_COPY, XBT_CO_NONE, 0);
    CLASSIFY(B(0x40), XBT_IC_COPY, XBT_CO_NONE, 0);
    CLASSIFY(B(0x8b, 0x03), XBT_IC_MEMORY, XBT_CO_NONE, XBT_IF_MEM);
    CLASSIFY(B(0x8b, 0x44, 0x24, 0x04), XBT_IC_MEMORY, XBT_CO_NONE, XBT_IF_USES_ESP);
    CLASSIFY(B(0x50), XBT_IC_STACK, XBT_CO_NONE, XBT_IF_STACK);
    CLASSIFY(B(0xc9), XBT_IC_STACK, XBT_CO_NONE, XBT_IF_STACK);
    CLASSIFY(B(0xf3, 0xa5), XBT_IC_STRING, XBT_CO_NONE, 0);
    CLASSIFY(B(0xeb, 0x00), XBT_IC_JMP_DIRECT, XBT_CO_NONE, XBT_IF_BRANCH);
    CLASSIFY(B(0x74, 0x00), XBT_IC_JCC, XBT_CO_NONE, XBT_IF_BRANCH);
    CLASSIFY(B(0xe2, 0xfe), XBT_IC_LOOP, XBT_CO_NONE, XBT_IF_BRANCH);
    CLASSIFY(B(0xe3, 0x00), XBT_IC_LOOP, XBT_CO_NONE, XBT_IF_BRANCH);
    CLASSIFY(B(0xe8, 0, 0, 0, 0), XBT_IC_CALL_DIRECT, XBT_CO_NONE, XBT_IF_STACK);
    CLASSIFY(B(0xff, 0xe0), XBT_IC_JMP_INDIRECT, XBT_CO_NONE, XBT_IF_BRANCH);
    CLASSIFY(B(0xff, 0x10), XBT_IC_CALL_INDIRECT, XBT_CO_NONE, XBT_IF_MEM);
    CLASSIFY(B(0xc2, 0x08, 0x00), XBT_IC_RET, XBT_CO_NONE, XBT_IF_BRANCH);
    CLASSIFY(B(0xf4), XBT_IC_PRIVILEGED, XBT_CO_HLT, XBT_IF_PRIV);
    CLASSIFY(B(0x0f, 0x22, 0xd8), XBT_IC_PRIVILEGED, XBT_CO_MOV_TO_CR, XBT_IF_ENDS_BLOCK);
    CLASSIFY(B(0x0f, 0x20, 0xc0), XBT_IC_PRIVILEGED, XBT_CO_MOV_FROM_CR, XBT_IF_PRIV);
    CLASSIFY(B(0x0f, 0x23, 0xc0), XBT_IC_PRIVILEGED, XBT_CO_MOV_TO_DR, XBT_IF_PRIV);
    CLASSIFY(B(0xfa), XBT_IC_PRIVILEGED, XBT_CO_CLI, XBT_IF_IOPL);
    CLASSIFY(B(0xec), XBT_IC_PRIVILEGED, XBT_CO_IN, XBT_IF_IOPL);
    CLASSIFY(B(0x0f, 0x30), XBT_IC_PRIVILEGED, XBT_CO_WRMSR, XBT_IF_PRIV);
    CLASSIFY(B(0x0f, 0x01, 0x38), XBT_IC_PRIVILEGED, XBT_CO_INVLPG, XBT_IF_PRIV);
    CLASSIFY(B(0x0f, 0xa2), XBT_IC_SENSITIVE, XBT_CO_CPUID, XBT_IF_VIRT);
    CLASSIFY(B(0x60), XBT_IC_INVALID64, XBT_CO_NONE, XBT_IF_INVALID64);
    CLASSIFY(B(0x27), XBT_IC_INVALID64, XBT_CO_BCD, XBT_IF_INVALID64);
    CLASSIFY(B(0x62, 0x03), XBT_IC_INVALID64, XBT_CO_BOUND, XBT_IF_INVALID64);
    CLASSIFY(B(0xc4, 0x03), XBT_IC_SENSITIVE, XBT_CO_LOAD_FAR_PTR, XBT_IF_INVALID64);
    CLASSIFY(B(0x0f, 0x0b), XBT_IC_UNDEFINED, XBT_CO_UD, XBT_IF_UD);
    CLASSIFY(B(0xc5, 0xf8, 0x77), XBT_IC_UNDEFINED, XBT_CO_UD, XBT_IF_UD); /* vzeroupper */
    CLASSIFY(B(0xf0, 0x01, 0xd8), XBT_IC_UNDEFINED, XBT_CO_UD, XBT_IF_UD); /* lock add reg */
}
END_TEST

START_TEST(truncated_input)
{
    xbt_decoder d;
    xbt_decoder_init(&d);
    xbt_insn in;
    const uint8_t b[] = { 0xe8, 0x00, 0x00 };
    ck_assert_int_eq(xbt_decode(&d, b, sizeof b, 0, &in), XBT_DECODE_TRUNCATED);
}
END_TEST

/* ---- random bytes ---------------------------------------------------------------------- */

struct rnd_src {
    uint8_t bytes[96];
    uint32_t eip;
};

static uint32_t rnd_fetch(void *o, uint32_t eip, uint8_t *buf, uint32_t len)
{
    struct rnd_src *s = o;
    uint32_t off = eip - s->eip;
    if (off >= sizeof s->bytes)
        return 0;
    if (len > sizeof s->bytes - off)
        len = (uint32_t)(sizeof s->bytes - off);
    memcpy(buf, s->bytes + off, len);
    return len;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand64(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static uint32_t next_rand(void)
{
    return (uint32_t)next_rand64();
}

/* Every EIP a fault site (translator.h's pf_site). */
static uint16_t every_eip(void *ctx, uint32_t eip)
{
    (void)ctx, (void)eip;
    return 1; /* the tag its PFCHECK callouts carry */
}

START_TEST(random_bytes_never_break_the_translator)
{
    static uint8_t code[XBT_BLOCK_MAX_CODE];
    xbt_translator tr;
    xbt_translator_init(&tr);
    ZydisDecoder d64;
    ZydisDecoderInit(&d64, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    unsigned ok = 0, fetch = 0;
    for (int iter = 0; iter < 20000; iter++) {
        struct rnd_src s;
        for (size_t i = 0; i < sizeof s.bytes; i++)
            s.bytes[i] = (uint8_t)next_rand();
        s.eip = next_rand();
        if (s.eip > 0xFFFFFF00u)
            s.eip = 0x1000;
        xbt_tmode m = { (uint8_t)((next_rand() & 1) ? 3 : 0),
                        (uint8_t)((next_rand() & 1) ? XBT_WINDOW_D : XBT_WINDOW_K),
                        (uint8_t)(next_rand() & 0xF), (uint8_t)(next_rand() & 3),
                        (uint8_t)(next_rand() & 0x3F), (uint8_t)(next_rand() & 3),
                        (uint8_t)(next_rand() & 3) /* null ES, DS */ };
        xbt_tblock b;
        b.code = code;
        b.code_cap = sizeof code;
        /* A third of the blocks with every instruction a fault site (soft ones too). */
        tr.pf_site = iter % 3 == 0 && tr.bmi2 ? every_eip : NULL;
        enum xbt_tstatus st = xbt_translate_block(&tr, &m, s.eip, rnd_fetch, &s, &b);
        if (st != XBT_T_OK && st != XBT_T_FETCH_FAULT) {
            fprintf(stderr, "iteration %d mode %u/%u/%x/%x at %08x:", iter, m.cpl, m.window,
                    m.segbase_mask, m.flags, s.eip);
            for (int i = 0; i < 32; i++)
                fprintf(stderr, " %02x", s.bytes[i]);
            fprintf(stderr, "\n");
        }
        ck_assert_msg(st == XBT_T_OK || st == XBT_T_FETCH_FAULT, "iteration %d: %s", iter,
                      b.error);
        if (st != XBT_T_OK) {
            fetch++;
            continue;
        }
        ok++;
        ck_assert_uint_le(b.body_len, b.code_len);
        for (uint32_t off = 0; off < b.body_len;) {
            ZydisDecodedInstruction zi;
            ck_assert_msg(ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&d64, NULL, code + off,
                                                                     b.body_len - off, &zi)),
                          "iteration %d: undecodable host code at +%x", iter, off);
            off += zi.length;
        }
        for (uint32_t i = 1; i < b.n_map; i++)
            ck_assert_uint_le(b.map[i - 1].host_off, b.map[i].host_off);
        for (uint32_t i = 0; i < b.n_exits; i++) {
            ck_assert_uint_lt(b.exits[i].rel32_off + 4, b.body_len + 1);
            ck_assert_uint_ge(b.exits[i].stub_off, b.body_len);
        }
    }
    ck_assert_uint_gt(ok, 15000);
    (void)fetch;
}
END_TEST

/* Guest bytes at any EIP: the same page contents wherever they are mapped. */
/* Guest bytes at any EIP: the same page contents wherever they are mapped. */
struct page_src {
    const uint8_t *page; /* 4096 bytes */
    uint32_t base;       /* the EIP of page[0] */
};

static uint32_t page_fetch(void *o, uint32_t eip, uint8_t *buf, uint32_t len)
{
    struct page_src *s = o;
    uint32_t off = eip - s->base;
    if (off >= 4096)
        return 0;
    if (len > 4096 - off)
        len = 4096 - off;
    memcpy(buf, s->page + off, len);
    return len;
}

/* Fault sites (every EIP one here): the instructions with one access of their own go
   soft (their PFCHECK site says so, with the access's size) and that access is the one
   host instruction through [R15] with 64-bit addressing and no segment; the others keep
   the window's form.  In the K-window at CPL 0 and the UK layout at CPL 3. */

/* Translates `bytes` with every instruction a fault site and checks its PFCHECK sites:
   the soft ones in order with the access sizes of want[n_soft], n_plain others, and
   exactly n_soft host accesses through [r15] with 64-bit addressing, no segment, index
   or displacement (the inline lookup's own table load, into R11, and the runtime's
   gates excepted). */
static void check_soft(const uint8_t *bytes, size_t n, const xbt_tmode *m,
                       const uint32_t *want, uint32_t n_want, uint32_t n_plain_want)
{
    static uint8_t code[XBT_BLOCK_MAX_CODE], page[4096];
    memset(page, 0xcc, sizeof page);
    memcpy(page, bytes, n);
    xbt_translator tr;
    xbt_translator_init(&tr);
    tr.pf_site = every_eip;
    ZydisDecoder d64;
    ZydisDecoderInit(&d64, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    struct page_src src = { page, 0x400000 };
    xbt_tblock b;
    b.code = code;
    b.code_cap = sizeof code;
    ck_assert_int_eq(xbt_translate_block(&tr, m, 0x400000, page_fetch, &src, &b), XBT_T_OK);
    const struct xbt_callout_site *site = (const void *)(code + b.sites_off);
    uint32_t n_soft = 0, n_plain = 0;
    for (uint32_t i = 0; i < b.n_sites; i++) {
        if (site[i].kind != XBT_CO_PFCHECK)
            continue;
        if (site[i].flags & XBT_COF_SOFT) {
            ck_assert_uint_lt(n_soft, n_want);
            ck_assert_uint_eq(site[i].imm, want[n_soft]);
            n_soft++;
        } else {
            n_plain++;
        }
    }
    ck_assert_uint_eq(n_soft, n_want);
    ck_assert_uint_eq(n_plain, n_plain_want);
    uint32_t r15_access = 0;
    for (uint32_t off = 0; off < b.body_len;) {
        ZydisDecodedInstruction zi;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        ck_assert(ZYAN_SUCCESS(ZydisDecoderDecodeFull(&d64, code + off, b.body_len - off, &zi,
                                                      ops)));
        bool r11 = false; /* the inline lookup's table load (mov r11, [r15]) */
        for (unsigned k = 0; k < zi.operand_count_visible; k++)
            r11 |= ops[k].type == ZYDIS_OPERAND_TYPE_REGISTER &&
                   ops[k].reg.value == ZYDIS_REGISTER_R11;
        for (unsigned k = 0; k < zi.operand_count_visible && !r11; k++)
            if (ops[k].type == ZYDIS_OPERAND_TYPE_MEMORY &&
                ops[k].mem.type == ZYDIS_MEMOP_TYPE_MEM &&
                zi.meta.category != ZYDIS_CATEGORY_UNCOND_BR && /* the runtime's gates */
                ops[k].mem.base == ZYDIS_REGISTER_R15 && zi.address_width == 64) {
                ck_assert_msg(ops[k].mem.segment == ZYDIS_REGISTER_DS &&
                                  ops[k].mem.index == ZYDIS_REGISTER_NONE &&
                                  ops[k].mem.disp.value == 0,
                              "%s at +%x: a soft access through a segment or with an index "
                              "or a displacement", ZydisMnemonicGetString(zi.mnemonic), off);
                r15_access++;
            }
        off += zi.length;
    }
    ck_assert_uint_eq(r15_access, n_want);
}

START_TEST(fault_sites_go_soft_where_one_access)
{
    static const uint8_t body[] = {
        0x53,             /* push ebx: soft, 4 */
        0x59,             /* pop ecx: soft, 4 */
        0x8b, 0x01,       /* mov eax, [ecx]: soft, 4 */
        0x01, 0x51, 0x04, /* add [ecx+4], edx: soft, 4 (a write) */
        0x8a, 0x21,       /* mov ah, [ecx]: a site, not soft (AH beside R15) */
        0x0f, 0xb6, 0x01, /* movzx eax, byte [ecx]: soft, 1 */
        0x66, 0x89, 0x01, /* mov [ecx], ax: soft, 2 */
        0x0f, 0xa3, 0x01, /* bt [ecx], eax: no site (the bit offset moves the access) */
        0xff, 0xd1,       /* call ecx: soft, 4 (its return address); ends the block */
    };
    static const uint32_t body_want[] = { 4, 4, 4, 4, 1, 2, 4 }, four[] = { 4 };
    static const uint8_t call_mem[] = { 0xff, 0x11 }, ret[] = { 0xc3 },
                         jmp_mem[] = { 0xff, 0x21 }, call_rel[] = { 0xe8, 0x10, 0, 0, 0 };
    xbt_translator tr;
    xbt_translator_init(&tr);
    if (!tr.bmi2)
        return; /* no sites without SHRX (translator.h) */
    for (int uk = 0; uk < 2; uk++) {
        xbt_tmode m = { (uint8_t)(uk ? 3 : 0), (uint8_t)(uk ? XBT_WINDOW_UK : XBT_WINDOW_K),
                        0, 0, 0, 0, 0 };
        check_soft(body, sizeof body, &m, body_want, 7, 1);
        check_soft(call_mem, sizeof call_mem, &m, NULL, 0, 2); /* target and return address */
        check_soft(ret, sizeof ret, &m, four, 1, 0);
        check_soft(jmp_mem, sizeof jmp_mem, &m, four, 1, 0);
        check_soft(call_rel, sizeof call_rel, &m, four, 1, 0);
    }
}
END_TEST

/* String sites: MOVS and STOS at CPL 0 in the K-window go soft for their whole range
   (each pointer's PFCHECK says XBT_PF_SOFT_STRING with the element size); CMPS, LODS,
   16-bit addressing, the U-window and one iteration at a time (rep_one) do not. */
static void string_sites(const uint8_t *bytes, size_t n, const xbt_tmode *m, bool rep_one,
                         uint32_t want_soft, uint32_t want_imm, uint32_t want_plain,
                         uint32_t want_movs_dst)
{
    static uint8_t code[XBT_BLOCK_MAX_CODE], page[4096];
    memset(page, 0xf4, sizeof page); /* hlt ends the block */
    memcpy(page, bytes, n);
    xbt_translator tr;
    xbt_translator_init(&tr);
    tr.pf_site = every_eip;
    tr.rep_one = rep_one;
    struct page_src src = { page, 0x400000 };
    xbt_tblock b;
    b.code = code;
    b.code_cap = sizeof code;
    ck_assert_int_eq(xbt_translate_block(&tr, m, 0x400000, page_fetch, &src, &b), XBT_T_OK);
    const struct xbt_callout_site *site = (const void *)(code + b.sites_off);
    uint32_t soft = 0, plain = 0, movs_dst = 0;
    for (uint32_t i = 0; i < b.n_sites; i++) {
        if (site[i].kind != XBT_CO_PFCHECK)
            continue;
        if (site[i].flags & XBT_COF_SOFT) {
            ck_assert_uint_eq(site[i].imm & ~XBT_PF_SOFT_MOVS_DST, want_imm);
            movs_dst += (site[i].imm & XBT_PF_SOFT_MOVS_DST) != 0;
            soft++;
        } else {
            plain++;
        }
    }
    ck_assert_uint_eq(soft, want_soft);
    ck_assert_uint_eq(plain, want_plain);
    ck_assert_uint_eq(movs_dst, want_movs_dst); /* a MOVS's destination, after its source */
}

START_TEST(string_sites_go_soft_for_movs_and_stos)
{
    xbt_translator tr;
    xbt_translator_init(&tr);
    if (!tr.bmi2)
        return;
    const xbt_tmode k = { 0, XBT_WINDOW_K, 0, 0, 0, 0, 0 }, uk = { 3, XBT_WINDOW_UK, 0, 0, 0, 0, 0 };
    static const uint8_t rep_movsd[] = { 0xf3, 0xa5 }, stosb[] = { 0xaa },
                         rep_stosw[] = { 0x66, 0xf3, 0xab }, movsb[] = { 0xa4 },
                         repe_cmpsb[] = { 0xf3, 0xa6 }, lodsd[] = { 0xad },
                         movsd16[] = { 0x67, 0xa5 };
    string_sites(rep_movsd, sizeof rep_movsd, &k, false, 2, XBT_PF_SOFT_STRING | 4, 0, 1);
    string_sites(stosb, sizeof stosb, &k, false, 1, XBT_PF_SOFT_STRING | 1, 0, 0);
    string_sites(rep_stosw, sizeof rep_stosw, &k, false, 1, XBT_PF_SOFT_STRING | 2, 0, 0);
    string_sites(movsb, sizeof movsb, &k, false, 2, XBT_PF_SOFT_STRING | 1, 0, 1);
    string_sites(repe_cmpsb, sizeof repe_cmpsb, &k, false, 0, 0, 2, 0);
    string_sites(lodsd, sizeof lodsd, &k, false, 0, 0, 1, 0);
    string_sites(movsd16, sizeof movsd16, &k, false, 0, 0, 0, 0); /* 16-bit: no site */
    string_sites(rep_movsd, sizeof rep_movsd, &uk, false, 0, 0, 2, 0);
    string_sites(rep_movsd, sizeof rep_movsd, &k, true, 0, 0, 2, 0);
    string_sites(movsb, sizeof movsb, &k, true, 2, XBT_PF_SOFT_STRING | 1, 0, 1);
}
END_TEST

/* ENTER with nesting level 31 in real mode (16-bit code and stack, segment bases and
   limits) is about 1,500 host bytes: after k small instructions and in a run of them,
   every block translates, the large ENTER starting a block of its own where the one
   being built has no room (found by the random-guest campaign: "host code buffer
   full").  Each block is translated on from where the last one ended. */
START_TEST(large_enter_never_overflows_a_block)
{
    static uint8_t page[4096], code[XBT_BLOCK_MAX_CODE];
    xbt_translator tr;
    xbt_translator_init(&tr);
    const xbt_tmode m = { 0, XBT_WINDOW_K, 0xF, 0, 0x3F, XBT_TS_CODE16 | XBT_TS_STACK16, 0 };
    for (uint32_t k = 0; k < 600; k += 37) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < k && n < 2048; i++)
            page[n++] = 0x50 + (uint8_t)(i & 7); /* push r16 */
        while (n + 4 < sizeof page) {
            const uint8_t enter[] = { 0xC8, 0xFF, 0xFF, 0x1F }; /* enter 0xffff, 31 */
            memcpy(page + n, enter, 4);
            n += 4;
        }
        page[n++] = 0xF4; /* hlt */
        struct page_src src = { page, 0 };
        uint32_t eip = 0, blocks = 0;
        while (eip < n - 1) {
            xbt_tblock b;
            b.code = code;
            b.code_cap = sizeof code;
            enum xbt_tstatus st = xbt_translate_block(&tr, &m, eip, page_fetch, &src, &b);
            ck_assert_msg(st == XBT_T_OK, "k %u: block at %04x: %s", k, eip, b.error);
            ck_assert_uint_gt(b.guest_len, 0);
            ck_assert_uint_le(b.code_len, b.code_cap);
            eip += b.guest_len;
            blocks++;
        }
        ck_assert_uint_gt(blocks, 1);
    }
    /* The reserve the block builder keeps for it (insn_extra: 512 + 128 bytes a level)
       bounds the largest ENTER in every mode: operand and stack sizes, bases, limits,
       CPL, window. */
    tr.max_insns = 1;
    uint32_t most = 0;
    for (uint32_t mode = 0; mode < 2 * 2 * 16 * 64 * 4; mode++) {
        const xbt_tmode m2 = { (uint8_t)((mode & 1) ? 3 : 0),
                               (uint8_t)((mode & 2) ? XBT_WINDOW_D : XBT_WINDOW_K),
                               (uint8_t)((mode >> 2) & 0xF), 0, (uint8_t)((mode >> 6) & 0x3F),
                               (uint8_t)((mode >> 12) & 3), 0 };
        for (int opsz = 0; opsz < 2; opsz++) {
            const uint8_t enter[] = { 0x66, 0xC8, 0xFF, 0xFF, 0x1F };
            memset(page, 0xF4, sizeof page);
            memcpy(page, enter + 1 - opsz, sizeof enter - 1 + (size_t)opsz);
            struct page_src src = { page, 0 };
            xbt_tblock b;
            b.code = code;
            b.code_cap = sizeof code;
            ck_assert_int_eq(xbt_translate_block(&tr, &m2, 0, page_fetch, &src, &b), XBT_T_OK);
            most = b.code_len > most ? b.code_len : most;
        }
    }
    ck_assert_uint_le(most, 512 + 128 * 31);
}
END_TEST

/* A few instruction shapes that hold EIPs (calls, branches, STI with its shadow, INT,
   callouts) between random bytes, so that relocations are many. */
static void fill_code(uint8_t *p, size_t n)
{
    static const uint8_t shapes[][8] = {
        { 5, 0xE8, 0x10, 0, 0, 0 },      /* call rel32 */
        { 2, 0x74, 0x05 },               /* jz */
        { 2, 0xFF, 0xD0 },               /* call eax */
        { 1, 0xC3 },                     /* ret */
        { 2, 0xFB, 0x90 },               /* sti; nop */
        { 2, 0xCD, 0x80 },               /* int 0x80 */
        { 1, 0xFA },                     /* cli */
        { 1, 0x9D },                     /* popf */
        { 2, 0x0F, 0xA2 },               /* cpuid */
        { 5, 0xE9, 0x00, 0x01, 0, 0 },   /* jmp rel32 */
        { 3, 0x8B, 0x45, 0x08 },         /* mov eax, [ebp+8] */
        { 2, 0xF3, 0xA5 },               /* rep movsd */
        { 4, 0x66, 0xE8, 0x10, 0x00 },   /* call rel16 (not shared) */
        { 2, 0xFF, 0xE0 },               /* jmp eax (an inline cache) */
        { 3, 0xFF, 0x60, 0x08 },         /* jmp [eax+8] */
    };
    size_t i = 0;
    while (i < n) {
        uint32_t r = next_rand();
        if (r % 3 == 0) {
            p[i++] = (uint8_t)(r >> 8);
            continue;
        }
        const uint8_t *sh = shapes[(r >> 8) % (sizeof shapes / sizeof shapes[0])];
        for (int k = 0; k < sh[0] && i < n; k++)
            p[i++] = sh[1 + k];
    }
}

/* xbt_tblock_relocate against a fresh translation of the same bytes at the other EIP:
   code, exits, pc map and sites identical. */
START_TEST(relocated_blocks_equal_fresh_translations)
{
    static uint8_t page[4096], code_a[XBT_BLOCK_MAX_CODE], code_b[XBT_BLOCK_MAX_CODE];
    static xbt_tblock a, b;
    xbt_translator tr;
    xbt_translator_init(&tr);
    unsigned compared = 0, relocs = 0, unshared = 0;
    for (int iter = 0; iter < 6000; iter++) {
        fill_code(page, sizeof page);
        uint32_t off = next_rand() % 4096;
        if (iter % 4 == 0)
            off = 4096 - 1 - next_rand() % 40; /* near the page end */
        uint32_t base_a = (next_rand() & 0xFFFFF000u) | 0x1000u, base_b;
        do
            base_b = (next_rand() & 0xFFFFF000u);
        while (base_b == base_a);
        xbt_tmode m = { (uint8_t)((next_rand() & 1) ? 3 : 0),
                        (uint8_t)((next_rand() & 1) ? XBT_WINDOW_D : XBT_WINDOW_K),
                        (uint8_t)(next_rand() & 0xF), (uint8_t)(next_rand() & 3),
                        (uint8_t)(next_rand() & 0x3F),
                        (uint8_t)(next_rand() & XBT_TS_STACK16), /* 16-bit code never relocates */
                        (uint8_t)(next_rand() & 3) /* null ES, DS */ };
        struct page_src sa = { page, base_a }, sb = { page, base_b };
        a.code = code_a;
        a.code_cap = sizeof code_a;
        b.code = code_b;
        b.code_cap = sizeof code_b;
        enum xbt_tstatus st_a = xbt_translate_block(&tr, &m, base_a + off, page_fetch, &sa, &a);
        enum xbt_tstatus st_b = xbt_translate_block(&tr, &m, base_b + off, page_fetch, &sb, &b);
        ck_assert_int_eq(st_a, st_b);
        if (st_a != XBT_T_OK)
            continue;
        ck_assert_int_eq(a.reloc_ok, b.reloc_ok);
        if (!a.reloc_ok) {
            unshared++;
            continue;
        }
        xbt_tblock_relocate(&a, base_b + off);
        /* The first differing host byte, for the message; then everything. */
        for (uint32_t i = 0; i < a.code_len && i < b.code_len; i++)
            ck_assert_msg(code_a[i] == code_b[i],
                          "iteration %d: host byte +%x differs (%02x, fresh %02x), %08x -> %08x",
                          iter, i, code_a[i], code_b[i], base_a + off, base_b + off);
        const char *diff = xbt_tblock_diff(&a, &b);
        ck_assert_msg(diff == NULL, "iteration %d: %s differ, %08x -> %08x", iter, diff,
                      base_a + off, base_b + off);
        compared++;
        relocs += a.n_relocs;
    }
    /* Not vacuous: most blocks are shared, with many relocated fields. */
    ck_assert_uint_gt(compared, 3000);
    ck_assert_uint_gt(relocs, 3 * compared / 2);
    ck_assert_uint_gt(unshared, 50); /* call rel16 and page-end blocks are not */
}
END_TEST

/* The 64-bit meaning of one host instruction, for comparing two encodings of it. */
static void same_meaning(const ZydisDecodedInstruction *a, const ZydisDecodedOperand *oa,
                         const ZydisDecodedInstruction *b, const ZydisDecodedOperand *ob,
                         const char *what)
{
    ck_assert_msg(a->mnemonic == b->mnemonic, "%s: %s, re-encoded %s", what,
                  ZydisMnemonicGetString(a->mnemonic), ZydisMnemonicGetString(b->mnemonic));
    if (a->mnemonic == ZYDIS_MNEMONIC_NOP)
        return; /* 0F 1F C0 and 90 alike (emit_copy) */
    /* The operand size, where an operand has it (66 90 and 90 are both NOP, 66 9B and
       9B both WAIT). */
    if (a->operand_count_visible)
        ck_assert_msg(a->operand_width == b->operand_width, "%s: operand width %u, %u", what,
                      a->operand_width, b->operand_width);
    ck_assert_msg(a->operand_count_visible == b->operand_count_visible, "%s: operands", what);
    ck_assert_msg((a->attributes & ZYDIS_ATTRIB_HAS_LOCK) ==
                      (b->attributes & ZYDIS_ATTRIB_HAS_LOCK),
                  "%s: LOCK", what);
    for (unsigned i = 0; i < a->operand_count_visible; i++) {
        /* An immediate's own size may differ (imm8 sign-extended, imm16): its value at
           the operand width may not. */
        ck_assert_msg(oa[i].type == ob[i].type &&
                          (oa[i].size == ob[i].size || oa[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE),
                      "%s: operand %u type or size", what, i);
        if (oa[i].type == ZYDIS_OPERAND_TYPE_REGISTER)
            ck_assert_msg(oa[i].reg.value == ob[i].reg.value, "%s: operand %u %s, re-encoded %s",
                          what, i, ZydisRegisterGetString(oa[i].reg.value),
                          ZydisRegisterGetString(ob[i].reg.value));
        uint64_t mask = a->operand_width >= 64 ? ~0ull : (1ull << a->operand_width) - 1;
        if (oa[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
            ck_assert_msg(((oa[i].imm.value.u ^ ob[i].imm.value.u) & mask) == 0,
                          "%s: operand %u value", what, i);
        if (oa[i].type == ZYDIS_OPERAND_TYPE_MEMORY) /* host code: the x87/SSE load's call */
            ck_assert_msg(oa[i].mem.base == ob[i].mem.base && oa[i].mem.index == ob[i].mem.index &&
                              oa[i].mem.scale == ob[i].mem.scale &&
                              oa[i].mem.disp.value == ob[i].mem.disp.value &&
                              oa[i].mem.segment == ob[i].mem.segment,
                          "%s: operand %u address", what, i);
    }
}

/*
 * Register-only instructions are copied as they are where their bytes mean the same in
 * 64-bit mode (translate.c, copy_as_is): every one-byte, 0F, 0F 38 and 0F 3A opcode with
 * register ModRM forms (and some memory ones), bare and behind prefixes that may or may
 * not keep the copy, is translated alone both ways (reencode_copies); where the bodies
 * differ, each must decode in 64-bit mode to the same instruction as the encoder's.
 */
START_TEST(copied_bytes_mean_what_the_encoder_emits)
{
    static uint8_t code_a[XBT_BLOCK_MAX_CODE], code_b[XBT_BLOCK_MAX_CODE];
    static const uint8_t pre[][3] = {
        { 0 }, { 1, 0x66 }, { 1, 0xF2 }, { 1, 0xF3 }, { 2, 0x66, 0xF3 }, { 2, 0xF3, 0x66 },
        { 2, 0x66, 0xF2 }, { 1, 0x2E }, { 1, 0x26 }, { 1, 0x64 }, { 1, 0x65 }, { 1, 0x67 },
        { 1, 0xF0 },
    };
    static const uint8_t maps[][3] = { { 0 }, { 1, 0x0F }, { 2, 0x0F, 0x38 }, { 2, 0x0F, 0x3A } };
    xbt_translator tr;
    xbt_translator_init(&tr);
    tr.max_insns = 1;
    ZydisDecoder d64;
    ZydisDecoderInit(&d64, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    unsigned as_is = 0, differ = 0;
    for (unsigned p = 0; p < sizeof pre / sizeof pre[0]; p++)
        for (unsigned mp = 0; mp < sizeof maps / sizeof maps[0]; mp++)
            for (unsigned op = 0; op < 256; op++)
                for (unsigned k = 0; k < 6; k++) {
                    struct rnd_src s;
                    for (size_t i = 0; i < sizeof s.bytes; i++)
                        s.bytes[i] = (uint8_t)next_rand();
                    unsigned n = 0;
                    for (unsigned i = 0; i < pre[p][0]; i++)
                        s.bytes[n++] = pre[p][1 + i];
                    for (unsigned i = 0; i < maps[mp][0]; i++)
                        s.bytes[n++] = maps[mp][1 + i];
                    s.bytes[n++] = (uint8_t)op;
                    if (k < 5)
                        s.bytes[n] |= 0xC0; /* ModRM: a register operand */
                    s.eip = 0x10000;
                    xbt_tmode m = { (uint8_t)(k & 1 ? 3 : 0), XBT_WINDOW_K, 0, 0, 0, 0, 0 };
                    xbt_tblock a, b;
                    a.code = code_a, a.code_cap = sizeof code_a;
                    b.code = code_b, b.code_cap = sizeof code_b;
                    tr.reencode_copies = false;
                    enum xbt_tstatus st = xbt_translate_block(&tr, &m, s.eip, rnd_fetch, &s, &a);
                    tr.reencode_copies = true;
                    ck_assert_int_eq(xbt_translate_block(&tr, &m, s.eip, rnd_fetch, &s, &b), st);
                    if (st != XBT_T_OK)
                        continue;
                    xbt_decoder dec;
                    xbt_decoder_init(&dec);
                    xbt_insn in;
                    xbt_decode(&dec, s.bytes, sizeof s.bytes, s.eip, &in);
                    if (a.body_len >= in.length && memcmp(code_a, s.bytes, in.length) == 0)
                        as_is++;
                    if (a.body_len == b.body_len && memcmp(code_a, code_b, a.body_len) == 0)
                        continue;
                    differ++;
                    char what[96];
                    int w = snprintf(what, sizeof what, "guest");
                    for (unsigned i = 0; i < in.length && w < (int)sizeof what - 4; i++)
                        w += snprintf(what + w, sizeof what - (size_t)w, " %02x", s.bytes[i]);
                    uint32_t oa = 0, ob = 0;
                    while (oa < a.body_len || ob < b.body_len) {
                        ZydisDecodedInstruction za, zb;
                        ZydisDecodedOperand pa[ZYDIS_MAX_OPERAND_COUNT];
                        ZydisDecodedOperand pb[ZYDIS_MAX_OPERAND_COUNT];
                        ck_assert_msg(oa < a.body_len && ob < b.body_len, "%s: lengths", what);
                        ck_assert_msg(ZYAN_SUCCESS(ZydisDecoderDecodeFull(
                                          &d64, code_a + oa, a.body_len - oa, &za, pa)),
                                      "%s: the copy does not decode in 64-bit mode", what);
                        ck_assert(ZYAN_SUCCESS(ZydisDecoderDecodeFull(
                            &d64, code_b + ob, b.body_len - ob, &zb, pb)));
                        same_meaning(&za, pa, &zb, pb, what);
                        oa += za.length, ob += zb.length;
                    }
                }
    /* Not vacuous: many copies, and many whose bytes are not the encoder's. */
    ck_assert_uint_gt(as_is, 1200);
    ck_assert_uint_gt(differ, 400);
}
END_TEST

/*
 * The encoder cache (emit.c) keys displacements and immediates by their class and
 * patches the values into a cached encoding: every request through xbt_emit_req must
 * give exactly the bytes (or the failure) of Zydis's encoder asked directly.  Forms whose
 * encoding depends on the value (imm8 or imm32, the short EAX forms, shifts by 1, disp8,
 * disp32 or none, mov r64 with imm32 or imm64, push imm8 or imm32, ENTER's two), values
 * at every width's edges, in a shuffled order and twice, so most requests meet a slot
 * filled by another value of their class.
 */
enum { F_MOV32, F_MOV64, F_MOV8, F_MOV16, F_ADD32, F_ADDEAX, F_ADD8, F_ADD16, F_ADD64, F_SHL,
       F_ROR8, F_PUSH, F_LOAD_RBX, F_LOAD_RBP, F_LOAD_R13, F_LOAD_RSP, F_LOAD_IDX, F_LEA32,
       F_CMPMEM, F_ENTER, F_IMUL3, F_MOVMEM16, F_EVEXMEM, F_IS4, F_FORMS };

static ZydisEncoderRequest cache_form(int f, int64_t v, int64_t w)
{
    ZydisEncoderRequest r;
    memset(&r, 0, sizeof r);
    r.machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    r.operand_count = 2;
    /* The register, immediate forms (F_MOV32 .. F_ROR8, in that order). */
    static const struct { ZydisMnemonic m; ZydisRegister reg; } reg_imm[] = {
        { ZYDIS_MNEMONIC_MOV, ZYDIS_REGISTER_R11D }, { ZYDIS_MNEMONIC_MOV, ZYDIS_REGISTER_R11 },
        { ZYDIS_MNEMONIC_MOV, ZYDIS_REGISTER_AL },   { ZYDIS_MNEMONIC_MOV, ZYDIS_REGISTER_DX },
        { ZYDIS_MNEMONIC_ADD, ZYDIS_REGISTER_ECX },  { ZYDIS_MNEMONIC_ADD, ZYDIS_REGISTER_EAX },
        { ZYDIS_MNEMONIC_ADD, ZYDIS_REGISTER_BL },   { ZYDIS_MNEMONIC_ADD, ZYDIS_REGISTER_AX },
        { ZYDIS_MNEMONIC_ADD, ZYDIS_REGISTER_R15 },  { ZYDIS_MNEMONIC_SHL, ZYDIS_REGISTER_EDX },
        { ZYDIS_MNEMONIC_ROR, ZYDIS_REGISTER_CH },
    };
    _Static_assert(sizeof reg_imm / sizeof reg_imm[0] == F_ROR8 + 1, "one per form");
    if (f <= F_ROR8) {
        r.mnemonic = reg_imm[f].m;
        r.operands[0] = xo_reg(reg_imm[f].reg), r.operands[1] = xo_imm(v);
        return r;
    }
    switch (f) {
    case F_PUSH: r.mnemonic = ZYDIS_MNEMONIC_PUSH, r.operand_count = 1;
        r.operands[0] = xo_imm(v); break;
    case F_LOAD_RBX: case F_LOAD_RBP: case F_LOAD_R13: case F_LOAD_RSP: {
        static const ZydisRegister base[] = { ZYDIS_REGISTER_RBX, ZYDIS_REGISTER_RBP,
                                              ZYDIS_REGISTER_R13, ZYDIS_REGISTER_RSP };
        r.mnemonic = ZYDIS_MNEMONIC_MOV;
        r.operands[0] = xo_reg(ZYDIS_REGISTER_EAX);
        r.operands[1] = xo_mem(base[f - F_LOAD_RBX], ZYDIS_REGISTER_NONE, 0, v, 4);
        break;
    }
    case F_LOAD_IDX: r.mnemonic = ZYDIS_MNEMONIC_MOV;
        r.operands[0] = xo_reg(ZYDIS_REGISTER_R14D);
        r.operands[1] = xo_mem(ZYDIS_REGISTER_NONE, ZYDIS_REGISTER_RSI, 4, v, 4); break;
    case F_LEA32: r.mnemonic = ZYDIS_MNEMONIC_LEA;
        r.address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_32;
        r.operands[0] = xo_reg(ZYDIS_REGISTER_R11D);
        r.operands[1] = xo_mem(ZYDIS_REGISTER_EBX, ZYDIS_REGISTER_NONE, 0, v, 4); break;
    case F_CMPMEM: r.mnemonic = ZYDIS_MNEMONIC_CMP;
        r.operands[0] = xo_mem(ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_NONE, 0, v, 1);
        r.operands[1] = xo_imm(w); break;
    case F_ENTER: r.mnemonic = ZYDIS_MNEMONIC_ENTER;
        r.operands[0] = xo_imm(v), r.operands[1] = xo_imm(w); break;
    case F_IMUL3: r.mnemonic = ZYDIS_MNEMONIC_IMUL, r.operand_count = 3;
        r.operands[0] = xo_reg(ZYDIS_REGISTER_ESI);
        r.operands[1] = xo_mem(ZYDIS_REGISTER_RDI, ZYDIS_REGISTER_NONE, 0, w, 4);
        r.operands[2] = xo_imm(v); break;
    case F_MOVMEM16: r.mnemonic = ZYDIS_MNEMONIC_MOV;
        r.operands[0] = xo_mem(ZYDIS_REGISTER_R12, ZYDIS_REGISTER_NONE, 0, w, 2);
        r.operands[1] = xo_imm(v); break;
    case F_EVEXMEM: { /* vpminsd xmm17{k5}, xmm13, [rbx+v]: EVEX, disp8 in 16-byte units */
        static const uint8_t evex[] = { 0x62, 0xE2, 0x15, 0x0D, 0x39, 0x4B, 0xEC };
        ZydisDecoder dec;
        ZydisDecodedInstruction di;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
        ck_assert(ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, evex, sizeof evex, &di, ops)));
        ck_assert(ZYAN_SUCCESS(ZydisEncoderDecodedInstructionToEncoderRequest(
            &di, ops, di.operand_count_visible, &r)));
        ck_assert_int_eq(r.operands[3].type, ZYDIS_OPERAND_TYPE_MEMORY);
        r.operands[3].mem.displacement = v;
        break;
    }
    case F_IS4: /* an is4 register: the immediate's low 4 bits only */
        r.mnemonic = ZYDIS_MNEMONIC_VPERMIL2PS, r.operand_count = 5;
        r.operands[0] = xo_reg(ZYDIS_REGISTER_XMM1);
        r.operands[1] = xo_reg(ZYDIS_REGISTER_XMM2);
        r.operands[2] = xo_reg(ZYDIS_REGISTER_XMM3);
        r.operands[3] = xo_reg(ZYDIS_REGISTER_XMM0);
        r.operands[3].reg.is4 = ZYAN_TRUE;
        r.operands[4] = xo_imm(v); break;
    }
    return r;
}

/* The two ways an encoding reaches code: the encoder asked directly (want, *want_n) and
   xbt_emit_req through the cache into code[0..256) (*t, a translation of its own in the D
   window).  Whether the encoder accepted the request. */
struct both_ways {
    uint8_t code[256];
    xbt_tmode mode;
    xbt_tblock b;
    xbt_tx t;
    uint8_t want[ZYDIS_MAX_INSTRUCTION_LENGTH];
    ZyanUSize want_n;
};

static bool encode_both_ways(struct both_ways *w, const ZydisEncoderRequest *req)
{
    ZydisEncoderRequest direct = *req, cached = *req;
    w->want_n = sizeof w->want;
    bool ok = ZYAN_SUCCESS(ZydisEncoderEncodeInstruction(&direct, w->want, &w->want_n));
    memset(&w->mode, 0, sizeof w->mode);
    w->mode.window = XBT_WINDOW_D;
    memset(&w->b, 0, sizeof w->b);
    w->b.code = w->code;
    w->b.code_cap = sizeof w->code;
    memset(&w->t, 0, sizeof w->t);
    w->t.mode = &w->mode;
    w->t.b = &w->b;
    xbt_emit_req(&w->t, &cached);
    return ok;
}

START_TEST(encoder_cache_gives_the_encoders_bytes)
{
    static const int64_t edge[] = {
        0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
        0x80000000, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, -1, -2, -0x7F, -0x80, -0x81,
        -0xFF, -0x100, -0x7FFF, -0x8000, -0x8001, -0x10000, -0x7FFFFFFF, -0x80000000LL,
        -0x80000001LL, 0x123456789ABCLL, 0x1FE, 0xFF00, 0xFFFF0000, 0x5A, 0x10, 0x11, 0x7F0,
        -0x10, -0x800, -0x141, -0x140, 0xF, 0x64,
    };
    enum { NE = sizeof edge / sizeof edge[0] };
    static struct both_ways w;
    /* Every (form, value, second value) triple, in a shuffled order (seeded), twice. */
    uint32_t n = F_FORMS * NE * NE;
    uint32_t *order = malloc(n * sizeof *order);
    ck_assert_ptr_nonnull(order);
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = next_rand() % (i + 1), x = order[i];
        order[i] = order[j], order[j] = x;
    }
    unsigned compared = 0, refused = 0;
    for (int round = 0; round < 2; round++)
        for (uint32_t i = 0; i < n; i++) {
            int f = (int)(order[i] / (NE * NE));
            int64_t v = edge[order[i] / NE % NE], x = edge[order[i] % NE];
            if (f != F_CMPMEM && f != F_ENTER && f != F_IMUL3 && f != F_MOVMEM16 && x != 0)
                continue; /* one value */
            ZydisEncoderRequest req = cache_form(f, v, x);
            bool ok = encode_both_ways(&w, &req);
            ck_assert_msg(w.t.failed == !ok, "form %d values %llx %llx: encoder %s, cache %s",
                          f, (unsigned long long)v, (unsigned long long)x,
                          ok ? "ok" : "refuses", w.t.failed ? "refuses" : "ok");
            if (!ok) {
                refused++;
                continue;
            }
            ck_assert_msg(w.t.len == w.want_n && memcmp(w.code, w.want, w.want_n) == 0,
                          "form %d values %llx %llx: %u bytes from the cache, %u from the "
                          "encoder, or other bytes", f, (unsigned long long)v,
                          (unsigned long long)x, w.t.len, (unsigned)w.want_n);
            compared++;
        }
    free(order);
    ck_assert_uint_gt(compared, 4000);
    ck_assert_uint_gt(refused, 100); /* values that do not fit their form: refused both ways */
}
END_TEST

/* Requests of every encoding Zydis has (legacy, VEX, XOP, EVEX, MVEX, 3DNow): random
   bytes decoded in 64-bit mode and converted, their displacements and immediates redrawn
   (edges, small multiples, random widths) and their hints sometimes cleared; each one
   through xbt_emit_req and to the encoder directly must give the same bytes or the same
   refusal.  Found EVEX's scaled disp8 and is4's 4-bit immediate cached by class. */
static int64_t redraw(void)
{
    static const int64_t edge[] = {
        0, 1, 2, 3, 4, 8, 15, 16, 0x20, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF,
        0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, -1, -2,
        -8, -0x40, -0x80, -0x81, -0x100, -0x8000, -0x8001, -0x80000000LL, -0x80000001LL,
        (int64_t)0x8000000000000000ull,
    };
    switch (next_rand64() % 4) {
    case 0: case 1: return edge[next_rand64() % (sizeof edge / sizeof edge[0])];
    case 2: return (int64_t)(int8_t)next_rand64() * (int64_t)(1 << (next_rand64() % 7)); /* disp8*N */
    default: return (int64_t)(next_rand64() >> (next_rand64() % 64));
    }
}

START_TEST(encoder_cache_matches_random_requests)
{
    static struct both_ways w;
    ZydisDecoder dec;
    ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    static const uint8_t lead[] = { 0x62, 0xC4, 0xC5, 0x8F, 0x48, 0x66, 0xF3, 0x0F };
    unsigned long compared = 0, encodable = 0, evex = 0;
    for (int it = 0; it < 30000; it++) {
        uint8_t in[16];
        for (int i = 0; i < 16; i++)
            in[i] = (uint8_t)next_rand64();
        if (next_rand64() % 3)
            in[0] = lead[next_rand64() % sizeof lead];
        if (in[0] == 0x62) { /* EVEX: P0's reserved bits clear, a map, P1's fixed bit */
            in[1] = (uint8_t)((in[1] & 0xF0) | (1 + next_rand64() % 3));
            in[2] |= 0x04;
        }
        ZydisDecodedInstruction di;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        ZydisEncoderRequest base;
        if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, in, sizeof in, &di, ops)) ||
            !ZYAN_SUCCESS(ZydisEncoderDecodedInstructionToEncoderRequest(
                &di, ops, di.operand_count_visible, &base)))
            continue;
        evex += di.encoding == ZYDIS_INSTRUCTION_ENCODING_EVEX;
        for (int k = 0; k < 8; k++) {
            ZydisEncoderRequest r = base;
            for (int i = 0; k && i < r.operand_count; i++) {
                ZydisEncoderOperand *o = &r.operands[i];
                if (o->type == ZYDIS_OPERAND_TYPE_MEMORY && (next_rand64() & 3))
                    o->mem.displacement = redraw();
                if (o->type == ZYDIS_OPERAND_TYPE_IMMEDIATE && (next_rand64() & 3))
                    o->imm.s = redraw();
            }
            if (next_rand64() % 4 == 0)
                r.allowed_encodings = ZYDIS_ENCODABLE_ENCODING_DEFAULT;
            if (next_rand64() % 4 == 0)
                r.address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_NONE;
            if (next_rand64() % 4 == 0)
                r.operand_size_hint = ZYDIS_OPERAND_SIZE_HINT_NONE;
            if (next_rand64() % 8 == 0)
                r.branch_type = ZYDIS_BRANCH_TYPE_NONE, r.branch_width = ZYDIS_BRANCH_WIDTH_NONE;
            bool ok = encode_both_ways(&w, &r);
            ck_assert_msg(w.t.failed == !ok &&
                              (!ok || (w.t.len == w.want_n &&
                                       memcmp(w.code, w.want, w.want_n) == 0)),
                          "%s (input %02x %02x %02x %02x %02x %02x, variant %d): the cache "
                          "gives %s, the encoder %s",
                          ZydisMnemonicGetString(base.mnemonic), in[0], in[1], in[2], in[3],
                          in[4], in[5], k, w.t.failed ? "a refusal" : "other bytes",
                          ok ? "bytes" : "a refusal");
            compared++;
            encodable += ok;
        }
    }
    ck_assert_uint_gt(compared, 100000);
    ck_assert_uint_gt(encodable, 50000);
    ck_assert_uint_gt(evex, 50);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("translator");
    TCase *tc = tcase_create("classify");
    tcase_add_test(tc, sensitive_robin_irvine);
    tcase_add_test(tc, every_class);
    tcase_add_test(tc, truncated_input);
    tcase_add_test(tc, large_enter_never_overflows_a_block);
    tcase_add_test(tc, fault_sites_go_soft_where_one_access);
    tcase_add_test(tc, string_sites_go_soft_for_movs_and_stos);
    tcase_add_test(tc, encoder_cache_gives_the_encoders_bytes);
    tcase_add_test(tc, encoder_cache_matches_random_requests);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("robustness");
    tcase_set_timeout(tr, 120);
    tcase_add_test(tr, random_bytes_never_break_the_translator);
    tcase_add_test(tr, relocated_blocks_equal_fresh_translations);
    tcase_add_test(tr, copied_bytes_mean_what_the_encoder_emits);
    suite_add_tcase(s, tr);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
