/*
 * jitdump_check - checks perf's jitdump that xbt-run wrote (--perf-jitdump) against the
 * perf map of the same run (--perf-map), for the guest and Linux tests:
 *   - the header: magic "JiTD", version 1, its own size (40), EM_X86_64, the PID of the
 *     file's name (jit-PID.dump);
 *   - records one after the other to the end of the file, each of a known kind and a
 *     size that fits; time stamps never decrease; the last is the close record;
 *   - every code load: its address (vma and code_addr alike) in the executable view
 *     [VIEW_LO, VIEW_HI), its bytes starting with an x86-64 instruction (Zydis), and
 *     a line of the map with the same address, size and name (the next unused one
 *     with one vCPU; vCPUs may interleave their lines and records differently), each
 *     line used once: the dump and the map describe the same blocks.
 *
 *   jitdump_check DUMP MAP VIEW_LO VIEW_HI
 *
 * Prints one line per finding; exit status 0 when everything holds, 1 otherwise.
 */
#include <Zydis/Zydis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapcheck.h"

static int bad;

static void fail(const char *what, unsigned long long rec)
{
    if (bad++ < 10)
        printf("FAIL record %llu: %s\n", rec, what);
}

static uint32_t u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Whether code[0..n) starts with an x86-64 instruction and is not all zero bytes: a
   weak check (most byte strings start with some instruction; a block's code holds its
   callouts' site records too, so nothing stronger holds for every byte); what the
   bytes mean is checked by perf annotate's round trip in run-perfmap.sh. */
static int looks_like_code(const ZydisDecoder *d, const uint8_t *code, size_t n)
{
    ZydisDecodedInstruction in;
    size_t zero = 0;
    while (zero < n && !code[zero])
        zero++;
    return zero < n && ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(d, NULL, code, n, &in));
}

int main(int argc, char **argv)
{
    unsigned long long lo, hi;
    char *e1, *e2;
    if (argc != 5 || !*argv[3] || !*argv[4] || (lo = strtoull(argv[3], &e1, 0), *e1) ||
        (hi = strtoull(argv[4], &e2, 0), *e2)) {
        fprintf(stderr, "usage: jitdump_check DUMP MAP VIEW_LO VIEW_HI\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        printf("FAIL cannot open %s\n", argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = len > 0 ? malloc((size_t)len) : NULL;
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) {
        printf("FAIL cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    struct map m;
    if (map_read(argv[2], &m)) {
        printf("FAIL %s: %s\n", argv[2], m.why);
        return 1;
    }
    const char *base = strrchr(argv[1], '/');
    base = base ? base + 1 : argv[1];
    unsigned pid = 0;
    if (sscanf(base, "jit-%u.dump", &pid) != 1)
        printf("FAIL the dump's name is not jit-PID.dump: %s\n", base), bad++;
    if (len < 40 || u32(b) != 0x4A695444u || u32(b + 4) != 1 || u32(b + 8) != 40 ||
        u32(b + 12) != 62 || u32(b + 20) != pid) {
        printf("FAIL the header (magic, version 1, size 40, EM_X86_64, pid %u)\n", pid);
        return 1;
    }
    ZydisDecoder dec;
    ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    size_t off = 40, mi = 0, matched = 0;
    char *used = calloc(m.n + 1, 1);
    if (!used) {
        printf("FAIL out of memory\n");
        return 1;
    }
    uint64_t last_ts = u64(b + 24), loads = 0, rec = 0;
    int closed = 0;
    while (off < (size_t)len) {
        if (closed)
            fail("a record after the close record", rec);
        if ((size_t)len - off < 16) {
            fail("a record prefix cut short", rec);
            break;
        }
        uint32_t id = u32(b + off), size = u32(b + off + 4);
        uint64_t ts = u64(b + off + 8);
        if (size < 16 || size > (size_t)len - off) {
            fail("a record size outside the file", rec);
            break;
        }
        if (ts < last_ts)
            fail("a time stamp before the last one", rec);
        last_ts = ts;
        if (id == 3) {
            closed = size == 16;
            if (!closed)
                fail("a close record of another size than 16", rec);
        } else if (id == 0) {
            const uint8_t *r = b + off;
            if (size <= 56) {
                fail("a code load too short for its fields and a name", rec);
                off += size;
                rec++;
                loads++;
                continue;
            }
            uint64_t vma = u64(r + 24), addr = u64(r + 32), n = u64(r + 40), idx = u64(r + 48);
            const uint8_t *name = r + 56;
            size_t room = size - 56;
            size_t nlen = strnlen((const char *)name, room);
            if (nlen == room || nlen + 1 + n != room) {
                fail("a code load whose name and code do not fill it", rec);
            } else {
                if (u32(r + 16) != pid)
                    fail("a code load of another pid", rec);
                if (idx != loads)
                    fail("code indexes not 0, 1, 2, ...", rec);
                if (vma != addr || addr < lo || addr + n > hi || !n)
                    fail("code outside the executable view", rec);
                if (!looks_like_code(&dec, name + nlen + 1, n))
                    fail("code that does not start with an x86-64 instruction", rec);
                /* The map's next unused line, or with several vCPUs (whose lines and
                   records may interleave differently) any unused line, must be it. */
                while (mi < m.n && (used[mi] || !strcmp(m.e[mi].name, "xbt:single-step")))
                    mi++;
                size_t k = mi;
                while (k < m.n && (used[k] || m.e[k].start != addr || m.e[k].size != n ||
                                   strcmp(m.e[k].name, (const char *)name)))
                    k++;
                if (k >= m.n)
                    fail("no line of the map with its address, size and name", rec);
                else
                    used[k] = 1, matched++;
            }
            loads++;
        } else {
            fail("a record of an unknown kind", rec);
        }
        off += size;
        rec++;
    }
    size_t steps = 0;
    for (size_t k = 0; k < m.n; k++)
        steps += !strcmp(m.e[k].name, "xbt:single-step");
    if (matched + steps != m.n)
        printf("FAIL the map has %zu lines more than the dump\n", m.n - matched - steps), bad++;
    if (!closed)
        printf("FAIL no close record at the end\n"), bad++;
    if (!loads)
        printf("FAIL no code load\n"), bad++;
    printf("jitdump %s: %llu code loads, %llu records, %ld bytes%s\n", argv[1],
           (unsigned long long)loads, (unsigned long long)rec, len, bad ? "" : ": ok");
    map_free(&m);
    free(used);
    free(b);
    return bad != 0;
}
