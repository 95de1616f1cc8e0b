/*
 * listing.c - a translated block as text: each guest instruction, its class and the
 * host instructions it became, then the exit stubs and callout sites.  The format is
 * what golden rewrite tests diff, so it is deterministic: host addresses are printed
 * as offsets from the start of the block.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "translator.h"

struct out {
    char *buf;
    size_t size, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = o->len < o->size ? o->buf + o->len : NULL;
    size_t room = o->len < o->size ? o->size - o->len : 0;
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static void hex(struct out *o, const uint8_t *p, size_t n, int width)
{
    int w = 0;
    for (size_t i = 0; i < n; i++)
        w += (int)(i ? 1 : 0) + 2, put(o, i ? " %02x" : "%02x", p[i]);
    if (w < width)
        put(o, "%*s", width - w, "");
}

static void list_host(struct out *o, const ZydisDecoder *d, const ZydisFormatter *f,
                      const xbt_tblock *b, uint32_t from, uint32_t to)
{
    while (from < to) {
        ZydisDecodedInstruction in;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        char text[160];
        if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(d, b->code + from, to - from, &in, ops))) {
            put(o, "      +%04x  %02x                          (bad)\n", from, b->code[from]);
            from++;
            continue;
        }
        ZydisFormatterFormatInstruction(f, &in, ops, in.operand_count_visible, text,
                                        sizeof text, from, NULL);
        put(o, "      +%04x  ", from);
        hex(o, b->code + from, in.length, 30);
        put(o, "  %s\n", text);
        from += in.length;
    }
}

size_t xbt_tblock_list(const xbt_tblock *b, xbt_fetch_fn fetch, void *opaque, char *buf,
                       size_t size)
{
    struct out o = { buf, size, 0 };
    if (size)
        buf[0] = 0;
    ZydisDecoder d64;
    ZydisDecoderInit(&d64, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    ZydisFormatter f;
    ZydisFormatterInit(&f, ZYDIS_FORMATTER_STYLE_INTEL);
    ZydisFormatterSetProperty(&f, ZYDIS_FORMATTER_PROP_FORCE_SEGMENT, ZYAN_FALSE);
    ZydisFormatterSetProperty(&f, ZYDIS_FORMATTER_PROP_ADDR_PADDING_ABSOLUTE,
                              ZYDIS_PADDING_DISABLED);
    xbt_decoder gd;
    xbt_decoder_init(&gd);

    static const char *const ends[] = { "branch", "callout", "limit", "fetch" };
    put(&o, "block %08" PRIx32 ": %" PRIu32 " guest insns, %" PRIu32 " guest bytes -> %" PRIu32
            " host bytes (body %" PRIu32 "), end: %s\n",
        b->eip, b->n_insns, b->guest_len, b->code_len, b->body_len,
        b->end < 4 ? ends[b->end] : "?");
    if (b->fpu_skip)
        put(&o, "  (starts with the x87/SSE load: chains from a loaded state enter at +%04x)\n",
            (unsigned)b->fpu_skip);

    /* Walk the guest instructions; their host ranges come from the pc map. */
    uint32_t m = 0;
    uint32_t pc = b->eip;
    for (uint32_t i = 0; i < b->n_insns; i++) {
        uint8_t gb[16];
        uint32_t got = fetch(opaque, pc, gb, sizeof gb);
        xbt_insn in;
        if (!got || xbt_decode_as(&gd, b->code16, gb, got, pc, &in) != XBT_DECODE_OK)
            break;
        char gtext[160], fl[160];
        if (in.zi.mnemonic != ZYDIS_MNEMONIC_INVALID)
            ZydisFormatterFormatInstruction(&f, &in.zi, in.ops, in.zi.operand_count_visible,
                                            gtext, sizeof gtext, pc, NULL);
        else
            snprintf(gtext, sizeof gtext, "(bad)");
        put(&o, "%08" PRIx32 "  ", pc);
        hex(&o, in.bytes, in.length, 32);
        put(&o, "  %-34s ; %s", gtext, xbt_iclass_name(in.iclass));
        if (in.callout)
            put(&o, " callout=%s", xbt_callout_name(in.callout));
        xbt_iflags_str(in.flags, fl, sizeof fl);
        if (fl[0])
            put(&o, " [%s]", fl);
        put(&o, "\n");

        /* Host range: from the first map entry of this EIP to the first of the next. */
        while (m < b->n_map && b->map[m].guest_eip != pc)
            m++;
        if (m < b->n_map) {
            uint32_t from = b->map[m].host_off;
            uint32_t n = m;
            while (n < b->n_map && b->map[n].guest_eip == pc)
                n++;
            uint32_t to = n < b->n_map ? b->map[n].host_off : b->body_len;
            list_host(&o, &d64, &f, b, from, to);
            m = n;
        }
        pc += in.length;
    }
    /* What follows the last instruction in the body: a fall-through exit, then the
       out-of-line paths of instructions above (REP strings), each under its EIP. */
    uint32_t ool = b->ool_off && b->ool_off <= b->body_len ? b->ool_off : b->body_len;
    if (m < b->n_map && b->map[m].host_off < ool) {
        put(&o, "%08" PRIx32 "  (next)\n", b->map[m].guest_eip);
        list_host(&o, &d64, &f, b, b->map[m].host_off, ool);
    }
    while (m < b->n_map && b->map[m].host_off < ool)
        m++;
    while (m < b->n_map) {
        uint32_t n = m;
        while (n < b->n_map && b->map[n].guest_eip == b->map[m].guest_eip)
            n++;
        put(&o, "%08" PRIx32 "  (out of line)\n", b->map[m].guest_eip);
        list_host(&o, &d64, &f, b, b->map[m].host_off, n < b->n_map ? b->map[n].host_off
                                                                       : b->body_len);
        m = n;
    }
    if (b->n_exits) {
        put(&o, "exits:\n");
        for (uint32_t i = 0; i < b->n_exits; i++) {
            static const char *const kinds[] = { "jmp", "taken", "fallthrough",
                                                 "cache miss", "cache hit" };
            const struct xbt_texit *e = &b->exits[i];
            if (e->kind == XBT_EXIT_ICACHE_MISS)
                put(&o, "  exit %" PRIu32 ": cache miss -> (target learned, %u times; then "
                        "the lookup) (rel32 at +%04" PRIx32 ", stub at +%04" PRIx32 ")\n",
                    i, e->prof, e->rel32_off, e->stub_off);
            else
                put(&o, "  exit %" PRIu32 ": %s -> %08" PRIx32 " (rel32 at +%04" PRIx32
                        ", stub at +%04" PRIx32 ")%s\n",
                    i, e->kind < 5 ? kinds[e->kind] : "?", e->target, e->rel32_off,
                    e->stub_off, e->fpu ? ", x87/SSE loaded" : "");
        }
        list_host(&o, &d64, &f, b, b->body_len,
                  b->n_sites ? b->sites_off : b->code_len);
    }
    for (uint32_t i = 0; i < b->n_sites; i++) {
        struct xbt_callout_site s;
        memcpy(&s, b->code + b->sites_off + i * sizeof s, sizeof s);
        put(&o, "  site +%04zx: %s eip=%08" PRIx32 " len=%u flags=%#x opsize=%u reg=%#x "
                "reg2=%#x imm=%#" PRIx32 " sel=%#x\n",
            b->sites_off + i * sizeof s, xbt_callout_name(s.kind), s.eip, s.len, s.flags,
            s.opsize, s.reg, s.reg2, s.imm, s.imm_sel);
    }
    return o.len;
}
