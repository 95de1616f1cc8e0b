/*
 * test_tcache.c - the translation cache's lookup, page index, chaining and invalidation
 * against a model: blocks on one or two physical pages (also pages that share a page-index
 * bucket, and blocks whose two pages share one), dropped and invalidated in random order;
 * copies that share their source's map; aliases of one EIP.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tcache/tcache.h"
#include "translator/translator.h"

#define NB 600

static uint8_t code[64];

/* A block at `eip` whose bytes lie on physical pages p0 and p1, with one direct exit. */
static xbt_block *insert(xbt_tcache *tc, uint32_t eip, uint32_t p0, uint32_t p1)
{
    xbt_tblock tb;
    memset(&tb, 0, sizeof tb);
    memset(code, 0x90, sizeof code);
    code[0] = 0xE9; /* jmp rel32 -> its stub at 5 */
    memset(code + 1, 0, 4);
    tb.eip = eip;
    tb.guest_len = p0 == p1 ? 8 : 4096 - (eip & 0xFFF) + 8;
    tb.n_insns = 1;
    tb.code = code;
    tb.code_len = sizeof code;
    tb.body_len = 5;
    tb.n_exits = 1;
    tb.exits[0] = (struct xbt_texit){ 1, 5, eip + 100, XBT_EXIT_JMP, 0, XBT_ALT_NONE, 0 };
    tb.reloc_ok = true;
    tb.n_relocs = 1;
    tb.relocs[0] = 10;
    tb.n_map = 1;
    tb.map[0] = (struct xbt_pcmap){ 0, eip, 0, 0, 0 };
    return xbt_tc_insert(tc, &tb, 7, eip, p0, p1, NULL);
}

/* Two page numbers whose page lists share a bucket (tcache.c's page_hash: if it changes,
   the pages are merely distinct and the test still holds). */
static void colliding(uint32_t *a, uint32_t *b)
{
    *a = 1;
    for (uint32_t p = 2; p < 1u << 22; p++)
        if (((p * 0x9E3779B1u) >> (32 - XBT_TC_PAGE_HASH_BITS)) ==
            ((1u * 0x9E3779B1u) >> (32 - XBT_TC_PAGE_HASH_BITS))) {
            *b = p;
            return;
        }
    *b = 2;
}

START_TEST(test_model)
{
    xbt_tcache *tc = xbt_tc_create(1u << 24);
    ck_assert_ptr_nonnull(tc);
    uint32_t pa, pb;
    colliding(&pa, &pb);
    uint32_t pages[4] = { pa, pb, 1000, 1001 };
    xbt_block *blk[NB];
    uint32_t p0[NB], p1[NB], eip[NB];
    bool live[NB];
    srand(42);
    for (int i = 0; i < NB; i++) {
        p0[i] = pages[rand() % 4];
        int k = rand() % 4;
        p1[i] = k == 0 ? pages[rand() % 4] : p0[i]; /* a quarter span two pages */
        eip[i] = 0x08000000u + (uint32_t)i * 0x1000u + (p0[i] == p1[i] ? 16u : 4090u);
        blk[i] = insert(tc, eip[i], p0[i], p1[i]);
        ck_assert_ptr_nonnull(blk[i]);
        live[i] = true;
    }
    /* Chains between random pairs. */
    for (int i = 0; i < NB; i++)
        xbt_tc_chain(tc, blk[i], 0, blk[rand() % NB]);
    for (int round = 0; round < 40; round++) {
        if (round % 4 == 0) {
            uint32_t page = pages[rand() % 4];
            uint32_t want = 0;
            for (int i = 0; i < NB; i++)
                if (live[i] && (p0[i] == page || p1[i] == page))
                    want++;
            ck_assert_uint_eq(xbt_tc_invalidate_page(tc, page), want);
            for (int i = 0; i < NB; i++)
                if (p0[i] == page || p1[i] == page)
                    live[i] = false;
            /* Blocks that went are re-inserted, so that lists keep their length. */
            for (int i = 0; i < NB; i++)
                if (!live[i] && rand() % 2) {
                    blk[i] = insert(tc, eip[i], p0[i], p1[i]);
                    ck_assert_ptr_nonnull(blk[i]);
                    live[i] = true;
                }
        } else {
            for (int n = 0; n < 20; n++) {
                int i = rand() % NB;
                if (live[i]) {
                    xbt_tc_drop(tc, blk[i]);
                    live[i] = false;
                }
            }
        }
        for (int i = 0; i < NB; i++) {
            xbt_block *b = xbt_tc_lookup(tc, eip[i], 7);
            if (live[i])
                ck_assert_ptr_eq(b, blk[i]);
            else
                ck_assert_ptr_null(b);
        }
        for (int k = 0; k < 4; k++) {
            bool any = false;
            for (int i = 0; i < NB; i++)
                any |= live[i] && (p0[i] == pages[k] || p1[i] == pages[k]);
            ck_assert_int_eq(xbt_tc_page_has_code(tc, pages[k]), any);
        }
        /* Host addresses map back to their block (dropped ones keep their code until a
           flush), first, middle and last byte. */
        for (int i = 0; i < NB; i++)
            for (uint32_t off = 0; off < blk[i]->host_len; off += blk[i]->host_len / 2 ?: 1) {
                ck_assert_ptr_eq(xbt_tc_block_at(tc, (uintptr_t)blk[i]->host + off), blk[i]);
                ck_assert_ptr_eq(xbt_tc_block_at(tc, (uintptr_t)blk[i]->host +
                                                          blk[i]->host_len - 1), blk[i]);
            }
        /* The relocatable block found for a live block's first byte is a live one
           with its first byte there; none once no live block starts there. */
        for (int i = 0; i < NB; i++) {
            xbt_block *r = xbt_tc_find_relocatable(tc, p0[i], eip[i] & 0xFFF, 7, eip[i]);
            bool any = false;
            for (int j = 0; j < NB; j++)
                any |= live[j] && p0[j] == p0[i] && (eip[j] & 0xFFF) == (eip[i] & 0xFFF);
            ck_assert_int_eq(r != NULL, any);
            if (!r)
                continue;
            bool ok = false;
            for (int j = 0; j < NB && !ok; j++)
                ok = live[j] && blk[j] == r && p0[j] == p0[i] &&
                     (eip[j] & 0xFFF) == (eip[i] & 0xFFF);
            ck_assert_msg(ok, "found a block that is gone or elsewhere");
            xbt_tblock tb;
            uint8_t buf[64];
            tb.code = buf;
            tb.code_cap = sizeof buf;
            ck_assert(xbt_tc_get_tblock(r, &tb));
            int32_t rel;
            memcpy(&rel, buf + 1, 4);
            ck_assert_int_eq(rel, 0); /* unchained: the exit's jmp at its stub */
            ck_assert_uint_eq(tb.n_relocs, 1);
        }
        /* A dropped block's incoming chains went back to their stubs: every live block's
           exit jumps to a live block or to its own stub. */
        for (int i = 0; i < NB; i++) {
            if (!live[i])
                continue;
            int32_t rel;
            memcpy(&rel, blk[i]->host + 1, 4);
            const uint8_t *to = blk[i]->host + 5 + rel;
            if (to == blk[i]->host + 5)
                continue;
            bool ok = false;
            for (int j = 0; j < NB && !ok; j++)
                ok = live[j] && blk[j]->host == to;
            ck_assert_msg(ok, "block %d chained to a dropped block", i);
        }
    }
    xbt_tc_destroy(tc);
}
END_TEST

/* A region that the current tables no longer map (xbt_tc_unchain_into): a chain between
   two of its blocks on different pages stays, with its record (a later new epoch for
   the region still undoes it); a chain into it from another region goes. */
START_TEST(unchain_into_keeps_chains_within_the_region)
{
    xbt_tcache *tc = xbt_tc_create(1u << 24);
    ck_assert_ptr_nonnull(tc);
    xbt_block *a = insert(tc, 0x08000010u, 1000, 1000); /* region 0x20 */
    xbt_block *b = insert(tc, 0x08100010u, 1001, 1001); /* region 0x20, another page */
    xbt_block *c = insert(tc, 0x0C000010u, 1002, 1002); /* region 0x30 */
    ck_assert(a && b && c);
    xbt_tc_chain(tc, a, 0, b);
    xbt_tc_chain(tc, c, 0, b);
    uint8_t bitmap[128] = { 0 };
    bitmap[0x20 >> 3] |= 1u << (0x20 & 7);
    xbt_tc_unchain_into(tc, bitmap);
    ck_assert_ptr_eq(a->chained_to[0], b);
    ck_assert_ptr_null(c->chained_to[0]);
    xbt_tc_unchain_regions(tc, bitmap);
    ck_assert_ptr_null(a->chained_to[0]);
    xbt_tc_destroy(tc);
}
END_TEST

/* A region's context set aside at a CR3 load keeps the chains among its blocks within
   the region (not those from elsewhere); a restore makes them the region's again and
   undoes the current context's; a context given up, or unchain_all, undoes them. */
START_TEST(switch_regions_sets_chains_aside)
{
    xbt_tcache *tc = xbt_tc_create(1u << 24);
    ck_assert_ptr_nonnull(tc);
    xbt_block *a = insert(tc, 0x08000010u, 1000, 1000); /* region 0x20: a shell's */
    xbt_block *b = insert(tc, 0x08100010u, 1001, 1001);
    xbt_block *c = insert(tc, 0x0C000010u, 1002, 1002); /* region 0x30 */
    xbt_block *d = insert(tc, 0x08200010u, 1003, 1003); /* region 0x20: a program's */
    xbt_block *e = insert(tc, 0x08300010u, 1004, 1004);
    ck_assert(a && b && c && d && e);
    uint8_t r20[128] = { 0 }, none[128] = { 0 };
    r20[0x20 >> 3] |= 1u << (0x20 & 7);
    xbt_tc_chain(tc, a, 0, b);
    xbt_tc_chain(tc, c, 0, b);
    xbt_tc_switch_regions(tc, r20, none); /* the shell's set aside */
    ck_assert_ptr_eq(a->chained_to[0], b);
    ck_assert_ptr_null(c->chained_to[0]);
    xbt_tc_chain(tc, d, 0, e); /* the program's */
    xbt_tc_chain(tc, c, 0, e);
    xbt_tc_unchain_regions(tc, r20); /* an INVLPG in the program: its chains go */
    ck_assert_ptr_null(d->chained_to[0]);
    ck_assert_ptr_null(c->chained_to[0]);
    ck_assert_ptr_eq(a->chained_to[0], b);
    xbt_tc_chain(tc, d, 0, e);
    xbt_tc_switch_regions(tc, r20, r20); /* back to the shell, the program's aside */
    ck_assert_ptr_eq(a->chained_to[0], b);
    ck_assert_ptr_eq(d->chained_to[0], e);
    xbt_tc_switch_regions(tc, none, r20); /* the program's back, the shell's undone */
    ck_assert_ptr_null(a->chained_to[0]);
    ck_assert_ptr_eq(d->chained_to[0], e);
    xbt_tc_switch_regions(tc, r20, none); /* the program's aside, nothing to restore */
    xbt_tc_chain(tc, a, 0, b);
    xbt_tc_switch_regions(tc, r20, none); /* another: the program's is given up */
    ck_assert_ptr_null(d->chained_to[0]);
    ck_assert_ptr_eq(a->chained_to[0], b);
    xbt_tc_drop_alt(tc, r20); /* it could run under the current tables */
    ck_assert_ptr_null(a->chained_to[0]);
    xbt_tc_chain(tc, a, 0, b);
    xbt_tc_switch_regions(tc, r20, none);
    xbt_tc_unchain_all(tc);
    ck_assert_ptr_null(a->chained_to[0]);
    xbt_tc_switch_regions(tc, r20, r20);
    ck_assert_ptr_null(a->chained_to[0]);
    xbt_tc_destroy(tc);
}
END_TEST

/* A relocated copy (another address space's mapping of the same library page) uses its
   source's pc map and relocations, and answers for its own EIPs through map_delta: the
   guest EIP a fault maps to, and a copy made from the copy. */
START_TEST(copies_share_their_source_map)
{
    xbt_tcache *tc = xbt_tc_create(1u << 24);
    ck_assert_ptr_nonnull(tc);
    xbt_block *src = insert(tc, 0x08001010u, 5, 5);
    ck_assert_ptr_nonnull(src);
    static xbt_tblock tb;
    static uint8_t buf[XBT_BLOCK_MAX_CODE];
    tb.code = buf;
    tb.code_cap = sizeof buf;
    const uint32_t at[2] = { 0xb7f01010u, 0x40002010u };
    xbt_block *from = src, *copy[2];
    for (int k = 0; k < 2; k++) {
        ck_assert(xbt_tc_get_tblock(from, &tb));
        ck_assert_uint_eq(tb.map[0].guest_eip, from->eip); /* absolute, as translated */
        xbt_tblock_relocate(&tb, at[k]);
        copy[k] = xbt_tc_insert(tc, &tb, 7, at[k], 5, 5, from);
        ck_assert_ptr_nonnull(copy[k]);
        ck_assert_ptr_eq(copy[k]->map, src->map);
        ck_assert_ptr_eq(copy[k]->relocs, src->relocs);
        ck_assert_uint_eq(copy[k]->map_delta, at[k] - src->eip);
        ck_assert_uint_eq(copy[k]->map[0].guest_eip + copy[k]->map_delta, at[k]);
        from = copy[k];
    }
    /* Without a source to share: a map of its own. */
    ck_assert(xbt_tc_get_tblock(copy[1], &tb));
    ck_assert_uint_eq(tb.map[0].guest_eip, at[1]);
    xbt_block *own = xbt_tc_insert(tc, &tb, 7, at[1], 5, 5, NULL);
    ck_assert_ptr_nonnull(own);
    ck_assert_ptr_ne(own->map, src->map);
    ck_assert_uint_eq(own->map_delta, 0);
    ck_assert_uint_eq(own->map[0].guest_eip, at[1]);
    xbt_tc_destroy(tc);
}
END_TEST

/* Where a chained jump lands: the rel32 of exit 0 of `from`. */
static const uint8_t *chained_dest(const xbt_block *from)
{
    int32_t rel;
    memcpy(&rel, from->host + from->exits[0].rel32_off, 4);
    return from->host + from->exits[0].rel32_off + 4 + rel;
}

/* An exit taken only with the guest's x87/SSE state loaded (xbt_texit.fpu) chains past
   the load call at the start of a block that has one (fpu_skip); any other exit, or a
   block without that call, chains to the block's start; unchaining goes back to the
   stub; a relocated copy keeps both facts. */
START_TEST(chains_past_fpu_load)
{
    xbt_tcache *tc = xbt_tc_create(1u << 24);
    ck_assert_ptr_nonnull(tc);
    xbt_block *loaded = insert(tc, 0x08002000u, 9, 9), *plain = insert(tc, 0x08003000u, 10, 10);
    ck_assert_ptr_nonnull(loaded);
    ck_assert_ptr_nonnull(plain);
    static xbt_tblock tb;
    static uint8_t buf[XBT_BLOCK_MAX_CODE];
    tb.code = buf;
    tb.code_cap = sizeof buf;
    /* The same block with its exit marked loaded, and a target that starts with the call. */
    ck_assert(xbt_tc_get_tblock(loaded, &tb));
    tb.exits[0].fpu = 1;
    xbt_block *from = xbt_tc_insert(tc, &tb, 7, 0x08004000u, 11, 11, NULL);
    ck_assert(xbt_tc_get_tblock(plain, &tb));
    tb.fpu_skip = 7;
    xbt_block *to = xbt_tc_insert(tc, &tb, 7, 0x08005000u, 12, 12, NULL);
    ck_assert_ptr_nonnull(from);
    ck_assert_ptr_nonnull(to);
    ck_assert_uint_eq(to->fpu_skip, 7);
    xbt_tc_chain(tc, from, 0, to);
    ck_assert_ptr_eq(chained_dest(from), to->host + 7);
    xbt_tc_chain(tc, plain, 0, to); /* not loaded: the call runs */
    ck_assert_ptr_eq(chained_dest(plain), to->host);
    /* Marked, but no call there to skip. */
    ck_assert(xbt_tc_get_tblock(from, &tb));
    xbt_block *from2 = xbt_tc_insert(tc, &tb, 7, 0x08006000u, 13, 13, NULL);
    ck_assert_ptr_nonnull(from2);
    ck_assert_uint_eq(from2->exits[0].fpu, 1);
    xbt_tc_chain(tc, from2, 0, plain);
    ck_assert_ptr_eq(chained_dest(from2), plain->host);
    xbt_tc_stats st;
    xbt_tc_get_stats(tc, &st);
    ck_assert_uint_eq(st.fpu_chains, 1);
    ck_assert_uint_eq(st.thunk_chains, 0);
    /* A copy keeps the exit's mark and the skip, and its exit is unchained as made. */
    ck_assert(xbt_tc_get_tblock(from, &tb));
    ck_assert_uint_eq(tb.exits[0].fpu, 1);
    int32_t rel;
    memcpy(&rel, tb.code + tb.exits[0].rel32_off, 4);
    ck_assert_int_eq((int32_t)tb.exits[0].rel32_off + 4 + rel, (int32_t)tb.exits[0].stub_off);
    ck_assert(xbt_tc_get_tblock(to, &tb));
    ck_assert_uint_eq(tb.fpu_skip, 7);
    /* Unchained (the target invalidated): back to the stub. */
    xbt_tc_unlink_out(tc, from);
    ck_assert_ptr_eq(chained_dest(from), from->host + from->exits[0].stub_off);
    xbt_tc_relink_out(tc, from);
    ck_assert_ptr_eq(chained_dest(from), to->host + 7);
    xbt_tc_destroy(tc);
}
END_TEST

/* An indirect JMP's inline cache (translator.h, XBT_EXIT_ICACHE_*): a learn sets the
   compare, the hit side's stub and target and unchains the hit side from the last target;
   after XBT_ICACHE_LEARNS learns the miss side goes on into the inline lookup; a copy
   (xbt_tc_get_tblock) is the block as translated, learned nothing, equal to a fresh
   translation. */
START_TEST(jmp_cache_learns_and_copies_forget)
{
    static const uint8_t plt[] = { 0xFF, 0xA3, 0x18, 0x00, 0x00, 0x00 }; /* jmp [ebx+0x18] */
    static uint8_t buf[XBT_BLOCK_MAX_CODE], buf2[XBT_BLOCK_MAX_CODE];
    static xbt_tblock tb, fresh;
    struct xbt_flat_src src = { plt, sizeof plt, 0x08002060u };
    xbt_translator tr;
    xbt_translator_init(&tr);
    xbt_tmode m = { 3, XBT_WINDOW_K, 0, 0, 0, 0, 0 };
    tb.code = buf, tb.code_cap = sizeof buf;
    ck_assert_int_eq(xbt_translate_block(&tr, &m, src.eip, xbt_flat_fetch, &src, &tb), XBT_T_OK);
    ck_assert_uint_eq(tb.n_exits, 2);
    ck_assert_uint_eq(tb.exits[0].kind, XBT_EXIT_ICACHE_MISS);
    ck_assert_uint_eq(tb.exits[1].kind, XBT_EXIT_ICACHE_HIT);
    ck_assert_uint_eq(tb.exits[1].target, XBT_ICACHE_NONE);
    xbt_tcache *tc = xbt_tc_create(1u << 24);
    ck_assert_ptr_nonnull(tc);
    xbt_block *b = xbt_tc_insert(tc, &tb, 7, src.eip, 9, 9, NULL);
    xbt_block *f1 = insert(tc, 0x08003000u, 10, 10), *f2 = insert(tc, 0x08004000u, 11, 11);
    ck_assert_ptr_nonnull(b);
    const struct xbt_texit *miss = &b->exits[0], *hit = &b->exits[1];
    uint32_t disp, imm;
    ck_assert(xbt_tc_icache_learn(tc, b, 0, f1));
    xbt_tc_chain(tc, b, 1, f1);
    memcpy(&disp, b->host + miss->rel32_off - XBT_ICACHE_DISP_BACK, 4);
    memcpy(&imm, b->host + hit->stub_off + 2, 4);
    ck_assert_uint_eq(disp, 0u - f1->eip);
    ck_assert_uint_eq(imm, f1->eip);
    ck_assert_uint_eq(hit->target, f1->eip);
    ck_assert_ptr_eq(b->chained_to[1], f1);
    int32_t rel;
    memcpy(&rel, b->host + miss->rel32_off, 4);
    ck_assert_int_eq((int32_t)miss->rel32_off + 4 + rel, (int32_t)miss->stub_off); /* learns on */
    /* The second learn: the chain to f1 goes; misses still come to learn. */
    ck_assert(xbt_tc_icache_learn(tc, b, 0, f2));
    ck_assert_ptr_null(b->chained_to[1]);
    memcpy(&disp, b->host + miss->rel32_off - XBT_ICACHE_DISP_BACK, 4);
    ck_assert_uint_eq(disp, 0u - f2->eip);
    ck_assert_uint_eq(hit->target, f2->eip);
    memcpy(&rel, b->host + miss->rel32_off, 4);
    ck_assert_int_eq((int32_t)miss->rel32_off + 4 + rel, (int32_t)miss->stub_off);
    const uint8_t *entry = b->host + miss->rel32_off - XBT_ICACHE_ENTRY_BACK;
    ck_assert_uint_eq(entry[0], 0x66);
    ck_assert_uint_eq(entry[1], 0x90);
    /* A third target: retired, the site jumps over the compare to the lookup. */
    ck_assert(!xbt_tc_icache_learn(tc, b, 0, f1));
    ck_assert_uint_eq(entry[0], 0xEB);
    ck_assert_ptr_eq(entry + 2 + entry[1], b->host + miss->rel32_off + 4);
    memcpy(&rel, b->host + miss->rel32_off, 4);
    ck_assert_int_eq(rel, 0); /* on into the inline lookup right after the jmp */
    ck_assert_uint_eq(hit->target, f2->eip); /* (unreachable now) */
    ck_assert(!xbt_tc_icache_learn(tc, b, 1, f2)); /* not a miss side */
    xbt_tc_stats st;
    xbt_tc_get_stats(tc, &st);
    ck_assert_uint_eq(st.icache_learns, 2);
    ck_assert_uint_eq(st.icache_retired, 1);
    /* A copy, relocated elsewhere, equals a fresh translation there. */
    static xbt_tblock copy;
    copy.code = buf2, copy.code_cap = sizeof buf2;
    ck_assert(xbt_tc_get_tblock(b, &copy));
    xbt_tblock_relocate(&copy, 0x09002060u);
    struct xbt_flat_src src2 = { plt, sizeof plt, 0x09002060u };
    static uint8_t buf3[XBT_BLOCK_MAX_CODE];
    fresh.code = buf3, fresh.code_cap = sizeof buf3;
    ck_assert_int_eq(xbt_translate_block(&tr, &m, src2.eip, xbt_flat_fetch, &src2, &fresh),
                     XBT_T_OK);
    const char *diff = xbt_tblock_diff(&copy, &fresh);
    ck_assert_msg(diff == NULL, "the copy differs from a fresh translation: %s", diff);
    xbt_tc_destroy(tc);
}
END_TEST

/* Aliases: blocks of one EIP and mode from different physical pages (the same address
   in other address spaces).  The newest answers a lookup; xbt_tc_lookup_next walks the
   others, newest first, skipping other EIPs in the same bucket; xbt_tc_prefer makes one
   answer (the front cache too); a dropped alias leaves the walk, and invalidating a
   page drops only the aliases from that page. */
START_TEST(aliases_of_one_eip)
{
    xbt_tcache *tc = xbt_tc_create(1u << 24);
    ck_assert_ptr_nonnull(tc);
    const uint32_t eip = 0xb7f01230u;
    xbt_block *a[4];
    for (int k = 0; k < 4; k++) {
        a[k] = insert(tc, eip, 100 + k, 100 + k);
        ck_assert_ptr_nonnull(a[k]);
    }
    /* Another EIP in the same lookup bucket would sit in the chain too; one elsewhere
       must never be walked to. */
    ck_assert_ptr_nonnull(insert(tc, eip + 0x1000, 100, 100));
    ck_assert_ptr_eq(xbt_tc_lookup(tc, eip, 7), a[3]);
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[3]), a[2]);
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[2]), a[1]);
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[1]), a[0]);
    ck_assert_ptr_null(xbt_tc_lookup_next(tc, a[0]));
    ck_assert_ptr_eq(xbt_tc_lookup(tc, eip, 8), NULL); /* another mode: none */

    xbt_tc_prefer(tc, a[1]);
    ck_assert_ptr_eq(xbt_tc_lookup(tc, eip, 7), a[1]);
    ck_assert_ptr_eq(xbt_tc_lookup(tc, eip, 7), a[1]); /* (from the front cache) */
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[1]), a[3]);
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[3]), a[2]);
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[2]), a[0]);
    xbt_tc_prefer(tc, a[1]); /* already in front: nothing moves */
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[1]), a[3]);

    xbt_tc_drop(tc, a[3]);
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[1]), a[2]);
    ck_assert_uint_eq(xbt_tc_invalidate_page(tc, 102), 1); /* a[2] only */
    ck_assert(!a[2]->valid && a[1]->valid && a[0]->valid);
    ck_assert_ptr_eq(xbt_tc_lookup(tc, eip, 7), a[1]);
    ck_assert_ptr_eq(xbt_tc_lookup_next(tc, a[1]), a[0]);
    xbt_tc_drop(tc, a[1]); /* the front one goes: the next answers */
    ck_assert_ptr_eq(xbt_tc_lookup(tc, eip, 7), a[0]);
    ck_assert_ptr_null(xbt_tc_lookup_next(tc, a[0]));
    ck_assert_uint_eq(xbt_tc_invalidate_page(tc, 100), 2); /* a[0] and the other EIP's */
    ck_assert_ptr_null(xbt_tc_lookup(tc, eip, 7));
    xbt_tc_destroy(tc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tcache");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, test_model);
    tcase_add_test(tc, copies_share_their_source_map);
    tcase_add_test(tc, aliases_of_one_eip);
    tcase_add_test(tc, chains_past_fpu_load);
    tcase_add_test(tc, jmp_cache_learns_and_copies_forget);
    tcase_add_test(tc, unchain_into_keeps_chains_within_the_region);
    tcase_add_test(tc, switch_regions_sets_chains_aside);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
