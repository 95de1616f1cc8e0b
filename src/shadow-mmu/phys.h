/*
 * phys.h - guest physical memory: up to XBT_MAX_MEM_SLOTS slots (xbt_vm_set_mem_region,
 * shaped after KVM_SET_USER_MEMORY_REGION), each a page-aligned range of guest physical
 * addresses backed by a file (a memfd the library made, or the embedder's), read-only
 * (ROM) or not, with or without a dirty log.  Everything else is MMIO.
 *
 * The VMM reaches every slot through one host view: a 4 GiB reservation in which the
 * bytes of guest physical address gpa are at view + gpa (slots mapped there, the rest
 * PROT_NONE), so code that knows gpa is RAM reads view + gpa whatever slot holds it.
 * Which slot holds a page is one byte per 4 KiB page (xbt_phys.page: 1 MiB for 4 GiB):
 * a load instead of the compare `gpa < ram_size` that stood here before.
 *
 * Guest physical addresses are below 4 GiB: PAE's 36-bit addresses above that are
 * refused for slots (XBT_E_INVAL) and are MMIO to the guest.
 */
#ifndef XBT_SHADOW_MMU_PHYS_H
#define XBT_SHADOW_MMU_PHYS_H

#include <stdbool.h>
#include <stdint.h>

#include "xbt/xbt.h"

#define XBT_PHYS_LIMIT (1ull << 32)          /* guest physical addresses below this */
#define XBT_PHYS_PAGES (XBT_PHYS_LIMIT >> 12)

/* xbt_phys.page[gpa >> 12]: 0 for no RAM (MMIO), else the slot + 1 and its kind. */
#define XBT_PP_SLOT 0x3Fu  /* slot number + 1 */
#define XBT_PP_ROM  0x40u  /* XBT_MEM_READONLY: guest writes are MMIO writes */
#define XBT_PP_LOG  0x80u  /* XBT_MEM_LOG_DIRTY: guest writes are logged */
_Static_assert(XBT_MAX_MEM_SLOTS + 1 <= XBT_PP_SLOT, "a slot number fits in the page byte");

struct xbt_slot {
    bool used;
    uint32_t flags;      /* XBT_MEM_* */
    uint64_t gpa, size;
    int fd;              /* the library's memfd or its dup() of the embedder's */
    uint64_t fd_offset;
    uint64_t *dirty;     /* XBT_MEM_LOG_DIRTY: a bit per page, set = written since the
                            last xbt_vm_get_dirty_log */
};

typedef struct xbt_phys {
    uint8_t *view;       /* 4 GiB: guest physical gpa at view + gpa */
    uint8_t *page;       /* XBT_PHYS_PAGES bytes: XBT_PP_* */
    struct xbt_slot slot[XBT_MAX_MEM_SLOTS];
} xbt_phys;

/* The page byte of gpa (0 beyond the limit). */
static inline uint8_t xbt_phys_kind(const xbt_phys *p, uint64_t gpa)
{
    return gpa < XBT_PHYS_LIMIT ? p->page[gpa >> 12] : 0;
}

/* Whether every byte of [gpa, gpa + len) is in a slot (readable RAM or ROM); len > 0. */
static inline bool xbt_phys_ram(const xbt_phys *p, uint64_t gpa, uint64_t len)
{
    if (gpa >= XBT_PHYS_LIMIT || len > XBT_PHYS_LIMIT - gpa)
        return false;
    for (uint64_t q = gpa >> 12; q <= (gpa + len - 1) >> 12; q++)
        if (!p->page[q])
            return false;
    return true;
}

/* The VMM's view of [gpa, gpa + len) for reading, or NULL if some byte is not RAM. */
static inline uint8_t *xbt_phys_r(const xbt_phys *p, uint64_t gpa, uint64_t len)
{
    return xbt_phys_ram(p, gpa, len) ? p->view + gpa : NULL;
}

/* Marks the logged pages of [gpa, gpa + len) written (all of it RAM, not ROM). */
static inline void xbt_phys_log(xbt_phys *p, uint64_t gpa, uint64_t len)
{
    for (uint64_t q = gpa >> 12; q <= (gpa + len - 1) >> 12; q++) {
        uint8_t k = p->page[q];
        if (k & XBT_PP_LOG) {
            const struct xbt_slot *s = &p->slot[(k & XBT_PP_SLOT) - 1];
            uint64_t i = q - (s->gpa >> 12);
            __atomic_fetch_or(&s->dirty[i >> 6], 1ull << (i & 63), __ATOMIC_RELAXED); /* vCPUs */
        }
    }
}

/* The VMM's view of [gpa, gpa + len) for a write the guest makes (directly or through
   the VMM: callouts, accessed and dirty bits, string I/O): NULL if some byte is not
   RAM or is ROM (the write is an MMIO write); the logged pages are marked written. */
static inline uint8_t *xbt_phys_w(xbt_phys *p, uint64_t gpa, uint64_t len)
{
    if (gpa >= XBT_PHYS_LIMIT || len > XBT_PHYS_LIMIT - gpa || len == 0)
        return NULL;
    uint8_t any = 0;
    for (uint64_t q = gpa >> 12; q <= (gpa + len - 1) >> 12; q++) {
        uint8_t k = p->page[q];
        if (!k || (k & XBT_PP_ROM))
            return NULL;
        any |= k;
    }
    if (any & XBT_PP_LOG)
        xbt_phys_log(p, gpa, len);
    return p->view + gpa;
}

/* Whether a guest write to page `page` (gpa >> 12) may go through a window mapping
   without a fault: RAM, not ROM, and if logged, logged as written already. */
static inline bool xbt_phys_write_ok(const xbt_phys *p, uint64_t page)
{
    uint8_t k = page < XBT_PHYS_PAGES ? p->page[page] : 0;
    if (!k || (k & XBT_PP_ROM))
        return false;
    if (!(k & XBT_PP_LOG))
        return true;
    const struct xbt_slot *s = &p->slot[(k & XBT_PP_SLOT) - 1];
    uint64_t i = page - (s->gpa >> 12);
    return (s->dirty[i >> 6] >> (i & 63)) & 1;
}

/* The slot holding gpa, or NULL. */
static inline const struct xbt_slot *xbt_phys_slot(const xbt_phys *p, uint64_t gpa)
{
    uint8_t k = xbt_phys_kind(p, gpa);
    return k ? &p->slot[(k & XBT_PP_SLOT) - 1] : NULL;
}

/* Whether [gpa, gpa + len) lies in one slot. */
static inline bool xbt_phys_one_slot(const xbt_phys *p, uint64_t gpa, uint64_t len)
{
    const struct xbt_slot *s = xbt_phys_slot(p, gpa);
    return s && len && gpa + len <= s->gpa + s->size;
}

/* Every used slot, in slot order (for whatever must visit all guest memory: identity
   mappings, save and restore):
       for (const struct xbt_slot *s = NULL; (s = xbt_phys_next(p, s)) != NULL;) */
static inline const struct xbt_slot *xbt_phys_next(const xbt_phys *p, const struct xbt_slot *s)
{
    for (s = s ? s + 1 : p->slot; s < p->slot + XBT_MAX_MEM_SLOTS; s++)
        if (s->used)
            return s;
    return NULL;
}

/* Creation: the view reserved, no slot.  false with *why. */
bool xbt_phys_init(xbt_phys *p, const char **why);
void xbt_phys_destroy(xbt_phys *p);
/* Checks region r against the other slots (XBT_OK or XBT_E_INVAL), then replaces slot
   r->slot with it (size 0: deletes it).  The windows are the caller's (the shadow MMU
   must drop every mapping of the old and new ranges).  XBT_E_NOMEM, XBT_E_HOST. */
xbt_status xbt_phys_set(xbt_phys *p, const xbt_mem_region *r);
/* Checks only (what xbt_phys_set would refuse with XBT_E_INVAL). */
xbt_status xbt_phys_check(const xbt_phys *p, const xbt_mem_region *r);
/* Copies slot's dirty bitmap out and clears it; calls protect(opaque, page) for every
   page that was set (it must write-protect the page again in every window). */
xbt_status xbt_phys_take_dirty(xbt_phys *p, uint32_t slot, uint64_t *bitmap,
                               void (*protect)(void *opaque, uint64_t page), void *opaque);

#endif
