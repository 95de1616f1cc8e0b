/*
 * xbt.h - public API of xbt, a binary-translating VMM library for 32-bit x86 guests.
 *
 * Conventions: every call returns an xbt_status (XBT_OK == 0) and never exits or
 * aborts on guest input; objects are opaque handles; buffers returned by the library
 * are owned by the object they came with and freed with it.  Nothing here keeps
 * global state.
 *
 * This header currently exposes the translate-only entry point, which rewrite
 * regression suites and the listing tool `xbt-dis` are built on:
 *
 *     xbt_translate_opts o = XBT_TRANSLATE_OPTS_INIT;
 *     xbt_translation *t;
 *     if (xbt_translate(bytes, n, 0x1000, &o, &t) == XBT_OK) {
 *         fputs(t->listing, stdout);
 *         xbt_translation_free(t);
 *     }
 *
 * Thread safety: translate calls are independent and may run concurrently.
 */
#ifndef XBT_XBT_H
#define XBT_XBT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XBT_VERSION_MAJOR 0
#define XBT_VERSION_MINOR 1
#define XBT_VERSION_PATCH 0
#define XBT_VERSION ((XBT_VERSION_MAJOR << 16) | (XBT_VERSION_MINOR << 8) | XBT_VERSION_PATCH)

typedef enum xbt_status {
    XBT_OK = 0,
    XBT_E_INVAL,     /* a bad argument: misuse of the API */
    XBT_E_NOMEM,     /* host memory exhausted */
    XBT_E_FAULT,     /* guest code could not be fetched at the given address */
    XBT_E_INTERNAL,  /* an internal invariant failed; the message says which */
    XBT_E_NOSYS,     /* not implemented yet */
    XBT_E_HOST,      /* a required host feature is missing */
} xbt_status;

/* A static string describing status s. */
const char *xbt_strerror(xbt_status s);

/* Library version, XBT_VERSION format, of the code actually linked. */
uint32_t xbt_version(void);

/* ---- translate-only entry point ---------------------------------------------------- */

enum {
    XBT_WINDOW_K = 0, /* kernel code: memory through the K-window (GS base, 0x67) */
    XBT_WINDOW_U = 1, /* strict-mode user code: memory at its own address (0x67) */
};

#define XBT_TRANSLATE_FPU_NM 0x01 /* as if CR0.TS were set: x87/SSE become #NM callouts */
#define XBT_TRANSLATE_NO_SSE 0x02 /* as if CR4.OSFXSR were clear */

typedef struct xbt_translate_opts {
    uint32_t cpl;          /* guest CPL the code runs at: 0 or 3 */
    uint32_t window;       /* XBT_WINDOW_K or XBT_WINDOW_U */
    uint32_t segbase_mask; /* bit n set: segment n (ES=0 CS SS DS) has a nonzero base */
    uint32_t flags;        /* XBT_TRANSLATE_* */
    uint32_t max_insns;    /* guest instructions per block, 0 for the default (64) */
    uint32_t want_listing; /* nonzero: produce a text listing */
} xbt_translate_opts;

#define XBT_TRANSLATE_OPTS_INIT { 0, XBT_WINDOW_K, 0, 0, 0, 1 }

typedef struct xbt_translation {
    const uint8_t *code;   /* host x86-64 code, position independent */
    size_t code_len;
    uint32_t guest_eip;    /* first guest instruction */
    uint32_t guest_len;    /* guest bytes translated */
    uint32_t n_insns;      /* guest instructions translated */
    uint32_t n_exits;      /* chainable exits */
    uint32_t n_callouts;   /* callout sites */
    uint32_t end_reason;   /* 0 branch, 1 callout, 2 limit, 3 end of input */
    const char *listing;   /* NUL-terminated, or NULL if not asked for */
    const char *error;     /* a message when the call failed, else "" */
} xbt_translation;

/*
 * Translates one basic block of guest code: guest[0..guest_len) holds the guest bytes
 * at guest address eip (translation stops where they end).  On XBT_OK or an error
 * with a message, *out is set and must be freed with xbt_translation_free.
 * Returns XBT_OK, XBT_E_INVAL (bad pointer or option), XBT_E_FAULT (no instruction
 * fits in the bytes given), XBT_E_NOMEM, XBT_E_INTERNAL.
 */
xbt_status xbt_translate(const uint8_t *guest, size_t guest_len, uint32_t eip,
                         const xbt_translate_opts *opts, xbt_translation **out);
void xbt_translation_free(xbt_translation *t);

#ifdef __cplusplus
}
#endif
#endif
