/*
 * fuzz_translate.c - random bytes through the decoder and the translator: they must
 * never crash, hang or leak.  The first four input bytes choose the translation mode
 * (CPL, window, segment bases, FPU flags, block size), the rest is guest code.
 *
 * Built two ways: as a libFuzzer target (-DXBT_FUZZ=ON with clang) and, always, as a
 * replay driver (REPLAY_MAIN) that ctest runs over the checked-in corpus (corpus.bin:
 * the merged libFuzzer corpus, records of u32 length + bytes) plus seeded random inputs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/decoder.h"
#include "translator/translator.h"
#include "xbt/xbt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The runtime's forms, which xbt_translate does not make: MMIO sites (with the read
 * shadow), fault sites (soft ones included), inline CPUID and user code's fast form
 * (translator.h: mmio_site, pf_site, uk_wrap_site), in the K-, U- and UK-windows.  Which
 * EIPs are sites is a hash of the EIP's page offset and an input byte: the runtime keys
 * sites by physical address, so a block translated at an EIP one or more pages away
 * must be this one relocated (run.c copies blocks so; XBT_CHECK_SHARED checks it in
 * the runtime, this checks it for any bytes).
 */
static uint32_t fz_seed;
static bool fz_bit(uint32_t eip, uint32_t k)
{
    uint32_t h = ((eip & 0xFFF) + 1) * 0x9E3779B1u ^ (fz_seed + k) * 0x85EBCA6Bu;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    return (h >> 29) & 1;
}
static bool fz_mmio(void *c, uint32_t eip)
{
    (void)c;
    return fz_bit(eip, 1) && fz_bit(eip, 2);
}
static uint16_t fz_pf(void *c, uint32_t eip)
{
    (void)c;
    return fz_bit(eip, 3) ? (uint16_t)(1 + (eip & 0xFFF)) : 0;
}
static bool fz_wrap(void *c, uint32_t eip)
{
    (void)c;
    return fz_bit(eip, 4);
}

static void runtime_forms(const uint8_t *data, const uint8_t *code, size_t n, uint32_t eip)
{
    static xbt_translator tr;
    static int ready;
    static uint8_t code_a[XBT_BLOCK_MAX_CODE], code_b[XBT_BLOCK_MAX_CODE];
    static xbt_tblock a, b;
    if (!ready) {
        xbt_translator_init(&tr);
        ready = 1;
    }
    fz_seed = data[3];
    tr.max_insns = (data[2] & 0x7f) % 65;
    tr.mmio_site = fz_mmio;
    tr.mmio_shadow = tr.bmi2;
    tr.pf_site = tr.bmi2 ? fz_pf : NULL; /* as vm.c: the checks use SHRX */
    tr.uk_wrap_site = fz_wrap;
    tr.cpuid_inline = true;
    uint8_t cpl = (data[0] & 1) ? 3 : 0;
    uint8_t window = cpl == 3 && (data[0] & 0x40) ? XBT_WINDOW_UK
                     : (data[0] & 0x80)            ? XBT_WINDOW_U
                                                   : XBT_WINDOW_K;
    xbt_tmode m = { cpl, window, (uint8_t)(data[1] & 0xf), (uint8_t)((data[0] >> 2) & 3),
                    (uint8_t)((data[1] >> 4) | ((data[0] >> 4) & 3) << 4), 0,
                    (uint8_t)((data[0] >> 6) & 3) /* null ES, DS */ };
    size_t off = 0;
    for (int blocks = 0; off < n && blocks < 64; blocks++) {
        struct xbt_flat_src sa = { code + off, n - off, eip + (uint32_t)off };
        a.code = code_a;
        a.code_cap = sizeof code_a;
        enum xbt_tstatus ts = xbt_translate_block(&tr, &m, sa.eip, xbt_flat_fetch, &sa, &a);
        if (ts == XBT_T_FETCH_FAULT)
            break;
        if (ts != XBT_T_OK || a.guest_len == 0 || a.guest_len > n - off) {
            fprintf(stderr, "runtime forms: status %d at offset %zu (opts %02x %02x %02x %02x): "
                    "%s\n", (int)ts, off, data[0], data[1], data[2], data[3], a.error);
            abort();
        }
        if (a.reloc_ok) {
            /* The same bytes 16 pages up: a's code relocated there. */
            struct xbt_flat_src sb = { code + off, n - off, sa.eip + 0x10000 };
            b.code = code_b;
            b.code_cap = sizeof code_b;
            if (xbt_translate_block(&tr, &m, sb.eip, xbt_flat_fetch, &sb, &b) != XBT_T_OK)
                abort();
            xbt_tblock_relocate(&a, sb.eip);
            const char *d = xbt_tblock_diff(&a, &b);
            if (d) {
                fprintf(stderr, "runtime forms: the block at %08x relocated by 0x10000 "
                        "differs from its translation there (%s; opts %02x %02x %02x %02x)\n",
                        sa.eip, d, data[0], data[1], data[2], data[3]);
                abort();
            }
        }
        off += a.guest_len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    xbt_translate_opts o = XBT_TRANSLATE_OPTS_INIT;
    o.cpl = (data[0] & 1) ? 3 : 0;
    o.window = (data[0] & 2) ? XBT_WINDOW_D : XBT_WINDOW_K;
    o.segbase_mask = data[1] & 0xf;
    o.seglimit_mask = (data[1] >> 4) | ((data[0] >> 4) & 3) << 4;
    o.flags = (data[0] >> 2) & 3;
    o.max_insns = (data[2] & 0x7f) % 65; /* 0 (default) to XBT_BLOCK_MAX_INSNS */
    o.want_listing = data[3] & 1;
    uint32_t eip = 0x1000u + ((uint32_t)(data[3] >> 1) << 12) - (data[2] >> 7);
    const uint8_t *code = data + 4;
    size_t n = size - 4;

    /* Linear sweep of the decoder. */
    static xbt_decoder dec;
    static int dec_ready;
    if (!dec_ready) {
        xbt_decoder_init(&dec);
        dec_ready = 1;
    }
    size_t off = 0;
    while (off < n) {
        xbt_insn in;
        if (xbt_decode(&dec, code + off, n - off, eip + (uint32_t)off, &in) != XBT_DECODE_OK)
            break;
        if (in.length == 0 || in.length > 15)
            abort(); /* the decoder's contract */
        off += in.length;
    }

    /* A trace over the same bytes: the path follows the direct branch targets found
       by the sweep (the translator must lay out whatever matches and stop cleanly). */
    {
        uint32_t path[8];
        uint32_t np = 1;
        path[0] = eip;
        size_t o2 = 0;
        while (o2 < n && np < 8) {
            xbt_insn in;
            if (xbt_decode(&dec, code + o2, n - o2, eip + (uint32_t)o2, &in) != XBT_DECODE_OK)
                break;
            o2 += in.length;
            if (in.iclass == XBT_IC_JCC || in.iclass == XBT_IC_JMP_DIRECT ||
                in.iclass == XBT_IC_CALL_DIRECT) {
                ZyanU64 abs = 0;
                ZydisCalcAbsoluteAddress(&in.zi, &in.ops[0], in.eip, &abs);
                /* taken or not: the input decides */
                path[np++] = (code[o2 - 1] & 1) ? (uint32_t)abs : eip + (uint32_t)o2;
            } else if (in.iclass == XBT_IC_JMP_INDIRECT || in.iclass == XBT_IC_CALL_INDIRECT ||
                       in.iclass == XBT_IC_RET) {
                /* an indirect branch: some target inside the input (a guard) */
                path[np++] = eip + (uint32_t)((code[o2 - 1] * 131u) % n);
            }
        }
        xbt_translate_opts to = o;
        to.trace_path = path;
        to.trace_path_n = np;
        xbt_translation *t = NULL;
        xbt_status s = xbt_translate(code, n, eip, &to, &t);
        if (s != XBT_OK && s != XBT_E_FAULT) {
            fprintf(stderr, "trace translation: unexpected status %d: %s\n", (int)s,
                    t && t->error ? t->error : "");
            abort();
        }
        if (s == XBT_OK && (!t || t->code_len == 0))
            abort();
        xbt_translation_free(t);
    }

    runtime_forms(data, code, n, eip);

    /* Translate block after block until the input is used up. */
    off = 0;
    for (int blocks = 0; off < n && blocks < 64; blocks++) {
        xbt_translation *t = NULL;
        xbt_status s = xbt_translate(code + off, n - off, eip + (uint32_t)off, &o, &t);
        if (s == XBT_OK) {
            if (!t || t->guest_len == 0 || t->guest_len > n - off || t->code_len == 0)
                abort();
            if (o.want_listing && !t->listing)
                abort();
            off += t->guest_len;
            xbt_translation_free(t);
        } else {
            if (s != XBT_E_FAULT) {
                fprintf(stderr, "xbt_translate: unexpected status %d: %s\nat offset %zu of "
                        "(opts %02x %02x %02x %02x) code:", (int)s,
                        t && t->error ? t->error : "", off, data[0], data[1], data[2], data[3]);
                for (size_t k = off; k < n && k < off + 32; k++)
                    fprintf(stderr, " %02x", code[k]);
                fprintf(stderr, "\n");
                abort(); /* only running out of bytes may fail */
            }
            xbt_translation_free(t);
            break;
        }
    }
    return 0;
}

#ifdef REPLAY_MAIN

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int main(int argc, char **argv)
{
    unsigned files = 0, randoms = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 20000;
    if (argc > 1) {
        /* The corpus: records of a little-endian u32 length and that many bytes. */
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
            fprintf(stderr, "fuzz_replay: %s: cannot open the corpus\n", argv[1]);
            return 1;
        }
        static uint8_t buf[1 << 16];
        uint8_t hdr[4];
        while (fread(hdr, 1, 4, f) == 4) {
            uint32_t n = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24;
            if (n > sizeof buf || fread(buf, 1, n, f) != n) {
                fprintf(stderr, "fuzz_replay: %s: corrupt record\n", argv[1]);
                return 1;
            }
            LLVMFuzzerTestOneInput(buf, n);
            files++;
        }
        fclose(f);
    }
    rng_state = 0x9e3779b97f4a7c15ull;
    uint8_t buf[512];
    for (unsigned i = 0; i < randoms; i++) {
        size_t n = 4 + rnd() % (sizeof buf - 4);
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)rnd();
        /* Half the inputs lean towards prefixes and 0f escapes, where decoders break. */
        if (i & 1)
            for (size_t k = 4; k < n; k += 1 + rnd() % 4)
                buf[k] = (const uint8_t[]){ 0x0f, 0x66, 0x67, 0xf3, 0xf2, 0xf0, 0x26, 0x64 }[rnd() % 8];
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz replay: %u corpus inputs and %u seeded random inputs, no crash\n", files,
           randoms);
    return 0;
}
#endif
