/*
 * translate_api.c - the public translate-only entry point (include/xbt/xbt.h).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "translator/translator.h"
#include "xbt/xbt.h"

struct translation_box {
    xbt_translation pub;
    xbt_tblock block;
    char *listing;
    uint8_t code[XBT_BLOCK_MAX_CODE]; /* last: not zeroed (the translator writes it) */
};

const char *xbt_strerror(xbt_status s)
{
    switch (s) {
    case XBT_OK: return "success";
    case XBT_E_INVAL: return "invalid argument";
    case XBT_E_NOMEM: return "out of host memory";
    case XBT_E_FAULT: return "guest code cannot be fetched";
    case XBT_E_INTERNAL: return "internal error";
    case XBT_E_NOSYS: return "not implemented";
    case XBT_E_HOST: return "required host feature missing";
    }
    return "unknown status";
}

xbt_status xbt_translate(const uint8_t *guest, size_t guest_len, uint32_t eip,
                         const xbt_translate_opts *opts, xbt_translation **out)
{
    if (!out)
        return XBT_E_INVAL;
    *out = NULL;
    if (!guest || !opts || (opts->cpl != 0 && opts->cpl != 3) ||
        opts->window > XBT_WINDOW_UK || opts->segbase_mask > 0xF ||
        opts->max_insns > XBT_BLOCK_MAX_INSNS || opts->seglimit_mask > 0x3F)
        return XBT_E_INVAL;
    if (opts->trace_path && opts->trace_path_n &&
        (opts->trace_path_n > XBT_TRACE_MAX_BLOCKS || opts->trace_path[0] != eip))
        return XBT_E_INVAL;
    struct translation_box *box = malloc(sizeof *box);
    if (!box)
        return XBT_E_NOMEM;
    memset(box, 0, offsetof(struct translation_box, code));
    xbt_translator tr;
    xbt_translator_init(&tr);
    if (opts->max_insns)
        tr.max_insns = opts->max_insns;
    if (opts->trace_path && opts->trace_path_n) {
        tr.path = opts->trace_path;
        tr.path_n = opts->trace_path_n;
    }
    xbt_tmode mode = { (uint8_t)opts->cpl, (uint8_t)opts->window, (uint8_t)opts->segbase_mask,
                       (uint8_t)((opts->flags & XBT_TRANSLATE_FPU_NM ? XBT_TM_FPU_NM : 0) |
                                 (opts->flags & XBT_TRANSLATE_NO_SSE ? XBT_TM_NO_SSE : 0)),
                       (uint8_t)opts->seglimit_mask,
                       (uint8_t)((opts->flags & XBT_TRANSLATE_CODE16 ? XBT_TS_CODE16 : 0) |
                                 (opts->flags & XBT_TRANSLATE_STACK16 ? XBT_TS_STACK16 : 0)),
                       0 /* (segment registers hold no null selector here) */ };
    struct xbt_flat_src src = { guest, guest_len, eip };
    box->block.code = box->code;
    box->block.code_cap = sizeof box->code;
    enum xbt_tstatus ts = xbt_translate_block(&tr, &mode, eip, xbt_flat_fetch, &src, &box->block);
    box->pub.error = box->block.error;
    *out = &box->pub;
    if (ts == XBT_T_FETCH_FAULT)
        return XBT_E_FAULT;
    if (ts != XBT_T_OK)
        return XBT_E_INTERNAL;
    xbt_tblock *b = &box->block;
    box->pub.code = b->code;
    box->pub.code_len = b->code_len;
    box->pub.guest_eip = b->eip;
    box->pub.guest_len = b->guest_len;
    box->pub.n_insns = b->n_insns;
    box->pub.n_exits = b->n_exits;
    box->pub.n_callouts = b->n_sites;
    box->pub.end_reason = b->end;
    if (opts->want_listing) {
        size_t need = xbt_tblock_list(b, xbt_flat_fetch, &src, NULL, 0) + 1;
        box->listing = malloc(need);
        if (!box->listing) {
            xbt_translation_free(&box->pub);
            *out = NULL;
            return XBT_E_NOMEM;
        }
        xbt_tblock_list(b, xbt_flat_fetch, &src, box->listing, need);
        box->pub.listing = box->listing;
    }
    return XBT_OK;
}

void xbt_translation_free(xbt_translation *t)
{
    if (!t)
        return;
    struct translation_box *box = (struct translation_box *)t;
    free(box->listing);
    free(box);
}
