/*
 * walk.h - the guest page walker: 32-bit paging (two levels of 32-bit entries, 4 KiB
 * pages, 4 MiB pages with CR4.PSE and PSE-36 high address bits) and PAE paging
 * (CR4.PAE: a 4-entry PDPT, then two levels of 64-bit entries, 4 KiB and 2 MiB pages,
 * physical addresses up to 36 bits, no NX); CR0.WP, U/S and R/W, SMEP and SMAP (CR4;
 * the caller says whether SMAP applies to a data access), global pages reported
 * for CR4.PGE, reserved bits, accessed and dirty bits set in the guest's tables exactly
 * where the hardware (and QEMU) sets them.  A pure function of the guest's tables,
 * reached through a callback; the shadow MMU (window.c, fault.c) fills the K-, U- and
 * D-windows from its results.
 */
#ifndef XBT_SHADOW_MMU_WALK_H
#define XBT_SHADOW_MMU_WALK_H

#include <stdbool.h>
#include <stdint.h>

/* #PF error code bits. */
#define XBT_PF_P    0x01u /* the page was present: a protection fault */
#define XBT_PF_W    0x02u /* the access was a write */
#define XBT_PF_U    0x04u /* the access was made at CPL 3 */
#define XBT_PF_RSVD 0x08u /* a reserved bit was set in an entry */
#define XBT_PF_I    0x10u /* instruction fetch (set only with CR4.SMEP: there is no NX) */

/* Guest physical memory for the walker: read or write 32 bits (a PAE entry is read as
   two halves; only low halves, which hold A and D, are written).  false means the
   address has no RAM (the walk then faults with RSVD clear, as a bus error is not an
   x86 event: the caller decides). */
typedef bool (*xbt_pt_read_fn)(void *opaque, uint64_t gpa, uint32_t *val);
typedef bool (*xbt_pt_write_fn)(void *opaque, uint64_t gpa, uint32_t val);

typedef struct xbt_walk_req {
    uint32_t cr0, cr3, cr4;
    uint32_t lin;          /* linear address */
    bool write, user, fetch;
    /* A supervisor data access that CR4.SMAP forbids on a user page: an implicit one
       (descriptor tables, TSS, any access at CPL 3 that is not a user one) or an
       explicit one with EFLAGS.AC clear (SDM vol. 3, 4.6.1).  The walker checks it only
       with CR4.SMAP set; false for accesses SMAP never applies to. */
    bool smap;
} xbt_walk_req;

typedef struct xbt_walk_result {
    uint64_t gpa;          /* guest physical address of lin */
    uint32_t page_size;    /* 4 KiB, 2 MiB (PAE) or 4 MiB */
    bool writable;         /* a write at this privilege would succeed now */
    bool user;             /* the page is reachable from CPL 3 */
    bool global;           /* G set and CR4.PGE: survives a CR3 load */
    bool dirty;            /* the dirty bit is (now) set: writes need no walk */
    uint64_t pte_gpa;      /* where the last-level entry lives (for write tracing) */
    /* The low halves of the directory entry and of the last-level entry (for a large
       page both are the directory entry) as the walk checked them and left them, its
       accessed and dirty flags included: what a fill records is what it mapped, not
       what the table holds a moment later (another vCPU may change it meanwhile). */
    uint32_t pde, pte;
    uint32_t error_code;   /* on a fault: XBT_PF_* */
    bool bus_error;        /* on a fault: an entry was not in RAM */
} xbt_walk_result;

/*
 * Walks lin.  Returns true with *r filled, or false for a page fault (r->error_code) or
 * a page-table entry outside RAM (r->bus_error).  Sets accessed bits on the way and the
 * dirty bit for a write, through write().  With CR0.PG clear, lin is the physical
 * address.
 */
bool xbt_walk(const xbt_walk_req *q, xbt_pt_read_fn read, xbt_pt_write_fn write,
              void *opaque, xbt_walk_result *r);

#endif
