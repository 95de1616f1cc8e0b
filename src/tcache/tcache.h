/*
 * tcache.h - the translation cache: host code of translated blocks above 4 GiB,
 * lookup by guest (EIP, mode), chaining of direct exits, invalidation by guest
 * physical page, flush when full.  Uses the translator; knows nothing of the run loop.
 */
#ifndef XBT_TCACHE_H
#define XBT_TCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "translator/translator.h"

#define XBT_TC_HASH_BITS 20
#define XBT_TC_PAGE_HASH_BITS 12
#define XBT_TC_JC_BITS 12 /* the lookup's direct-mapped front cache */

struct xbt_tc_link; /* an incoming chain */

/* One cached block.  Lives in host memory beside the code (not in the code region).
   What the dispatcher reads for every block it enters (lookup, freshness, trace-head
   counting) comes first, in one cache line: dispatches are bound by memory latency. */
typedef struct xbt_block {
    uint32_t eip;
    uint32_t mode_key;          /* packed xbt_tmode */
    struct xbt_block *hash_next;
    uint8_t *host;              /* host code */
    uint32_t epoch;             /* the run loop's mapping epoch it was last checked in */
    uint32_t lin;               /* linear address of its first byte (CS base + eip) */
    uint64_t execs;             /* dispatcher entries (trace-head counting) */
    uint32_t page[2];           /* guest physical pages the guest bytes came from */
    uint32_t guest_len, n_insns;
    uint32_t head_count;        /* entries through a backward branch (trace heads) */
    uint8_t tstate;             /* 0: may become a trace head, 1: is a trace, 2: gave up */
    bool valid;
    /* The rest. */
    uint32_t host_len, body_len;
    uint32_t n_exits;
    /* n_exits of each, right after the record (a block has 1 or 2 exits mostly: room
       for XBT_BLOCK_MAX_EXITS in every record made it twice as large). */
    struct xbt_texit *exits;
    struct xbt_block **chained_to; /* target of each exit, or NULL */
    uint32_t n_map;
    struct xbt_pcmap *map;
    /* What xbt_tblock_relocate needs (translator.h); relocs NULL: not relocatable. */
    uint32_t *relocs;
    uint32_t n_relocs, n_sites, sites_off, ool_off;
    uint8_t end;                /* enum xbt_block_end */
    uint8_t thunk;              /* xbt_tblock.thunk: a PC thunk (1 + its register), 0 */
    uint8_t fpu_skip;           /* xbt_tblock.fpu_skip: bytes of the x87/SSE load call
                                   at its start that a chain from a loaded state skips */
    uint16_t rec_kept;          /* scratch of the chain-record compaction (tcache.c) */
    uint32_t map_delta;         /* this block's EIP minus the EIP its pc map speaks of
                                   (mod 2^32, as EIPs wrap): a relocated copy shares its
                                   source's map and relocations (xbt_tc_insert's
                                   `share`), so its guest EIPs are the map's plus this */
    struct xbt_block **hash_pprev; /* the link that points here */
    uint32_t page_at[2];        /* its entries' places in the page index (tcache.c) */
    /* Relocatable blocks by the physical address of their first byte and their mode
       (xbt_tc_find_relocatable). */
    struct xbt_block *phys_next, **phys_pprev;
    struct xbt_tc_link *incoming;
} xbt_block;
_Static_assert(offsetof(xbt_block, valid) < 64, "the dispatcher's fields in one line");

/* The linear address of a block's last guest byte (its first one's if it has none). */
static inline uint32_t xbt_block_last(const xbt_block *b)
{
    return b->lin + (b->guest_len ? b->guest_len - 1 : 0);
}

struct xbt_tc_link {
    xbt_block *from;
    uint32_t exit;
    struct xbt_tc_link *next;
};

typedef struct xbt_tc_stats {
    uint64_t blocks, block_bytes, guest_insns, chains, unchains, lookups, hits;
    uint64_t thunk_chains; /* chains that go past a PC thunk (chain_dest) */
    uint64_t fpu_chains;   /* chains that go past an x87/SSE load call (chain_dest) */
    uint64_t icache_learns; /* targets learned by indirect JMPs' inline caches */
    uint64_t icache_retired; /* of those caches, retired (a third target) */
    uint64_t flushes, invalidations;
} xbt_tc_stats;

typedef struct xbt_tcache xbt_tcache;

/* Maps size bytes of code space twice: *exec executable (not writable), *write
   writable (not executable), both above 4 GiB at addresses the kernel chooses, and
   anonymous, so profilers find the code through /tmp/perf-PID.map.  False if the host
   refuses. */
bool xbt_tc_map_code(uint64_t size, uint8_t **exec, uint8_t **write);
void xbt_tc_unmap_code(uint64_t size, uint8_t *exec, uint8_t *write);

/* Creates a cache with `size` bytes of code space; NULL if the host refuses memory. */
xbt_tcache *xbt_tc_create(uint64_t size);
void xbt_tc_destroy(xbt_tcache *tc);

static inline uint32_t xbt_tc_mode_key(const xbt_tmode *m)
{
    /* (seglimit_mask has 6 bits, ES..GS: segnull's 2 take the byte's top) */
    return (uint32_t)m->cpl | (uint32_t)m->window << 2 | (uint32_t)m->segbase_mask << 4 |
           (uint32_t)m->flags << 8 | (uint32_t)(m->seglimit_mask | (m->segnull & 3) << 6) << 16 |
           (uint32_t)m->size16 << 24;
}

/* Starts loading what xbt_tc_lookup(tc, eip, mode_key) will read first (its front
   cache's entry and the bucket): the dispatcher asks before its other work. */
void xbt_tc_prefetch(const xbt_tcache *tc, uint32_t eip, uint32_t mode_key);
xbt_block *xbt_tc_lookup(xbt_tcache *tc, uint32_t eip, uint32_t mode_key);
/* The next block after b with b's EIP and mode (an alias: the same EIP translated from
   other physical bytes, for another address space), newest first; NULL if none. */
xbt_block *xbt_tc_lookup_next(const xbt_tcache *tc, const xbt_block *b);
/* b answers xbt_tc_lookup for its EIP and mode from now on (it moves to the front of
   its aliases). */
void xbt_tc_prefer(xbt_tcache *tc, xbt_block *b);

/*
 * Inserts a translated block.  lin is the linear address of its first byte (it sets
 * b->lin), page0/page1 the guest physical pages of its first and last byte.  share:
 * NULL, or the cached block tb is a relocated copy of
 * (xbt_tc_get_tblock, xbt_tblock_relocate), whose pc map and relocations the new block
 * then uses instead of copies of tb's (they differ only by the EIP, which map_delta
 * carries; the metadata arena lives until the next flush, so they stay).  Returns NULL
 * when the code space is full: the caller flushes (xbt_tc_flush), which ends `share`,
 * and translates again.
 */
xbt_block *xbt_tc_insert(xbt_tcache *tc, const xbt_tblock *tb, uint32_t mode_key, uint32_t lin,
                         uint32_t page0,
                         uint32_t page1, const xbt_block *share);

/* A relocatable block whose first guest byte is at offset `off` of physical page
   `page`, made in mode `key` at an EIP a multiple of 4096 away from `eip`: the same
   bytes mapped at another address (a shared library in another address space).
   NULL: none. */
xbt_block *xbt_tc_find_relocatable(xbt_tcache *tc, uint32_t page, uint32_t off, uint32_t key,
                                   uint32_t eip);
/* How many times the cache was flushed (a generation for what names a block's code). */
uint32_t xbt_tc_flushes(const xbt_tcache *tc);
/* Flushes plus blocks dropped so far: a change says some translation went (a callout
   that resumes in its block checks it around code it does not control). */
uint64_t xbt_tc_drops(const xbt_tcache *tc);
/* Fills *out (its code buffer out->code of out->code_cap bytes) with b as the
   translator made it, exits unchained, ready for xbt_tblock_relocate.  false: b is not
   relocatable or does not fit. */
bool xbt_tc_get_tblock(const xbt_block *b, xbt_tblock *out);

/* Patches exit `exit` of `from` to jump straight into `to`. */
void xbt_tc_chain(xbt_tcache *tc, xbt_block *from, uint32_t exit, xbt_block *to);
/* Exit `miss` of `from` is an inline cache's miss side (translator.h,
   XBT_EXIT_ICACHE_MISS) just taken to `to`: the cache learns to's EIP (its hit side,
   exit miss + 1, is unchained and retargeted; the caller may chain it), or, after
   XBT_ICACHE_LEARNS learns, retires (the site goes straight to the inline lookup).
   true: learned; false: retired, or not such an exit. */
bool xbt_tc_icache_learn(xbt_tcache *tc, xbt_block *from, uint32_t miss, const xbt_block *to);
/* Finds the block and exit whose rel32 field is at host address site.  hint (may be
   NULL): a block of this cache generation (no flush since it was found) that likely
   holds site, looked at before the search by address (the dispatcher passes the block
   it entered: a block run for the first time leaves by its own unchained exit). */
bool xbt_tc_find_site(xbt_tcache *tc, uint64_t site, const xbt_block *hint, xbt_block **from,
                      uint32_t *exit);
/* Restores every exit of b to its stub (used to leave a loop promptly). */
void xbt_tc_unlink_out(xbt_tcache *tc, xbt_block *b);
/* Re-chains exits of b that were unlinked by xbt_tc_unlink_out. */
void xbt_tc_relink_out(xbt_tcache *tc, xbt_block *b);

/* Regions whose mapping changed at a CR3 load (another process's code there now) and
   whose context the shadow MMU set aside or made current again (smmu.h, region_alt_*):
   in `keep`, the chains into the region's blocks are undone but those from one of its
   blocks to another, both within the region, which are set aside (nothing of that
   context can run until it is current again); in `restore`, the chains set aside before
   are the region's again, and the current ones all go unless kept.  A region in
   neither is not touched (xbt_tc_unchain_regions is for those).  Chains within their
   source's pages stay, as ever. */
void xbt_tc_switch_regions(xbt_tcache *tc, const uint8_t *keep, const uint8_t *restore);
/* The regions in bitmap gave up the context they had set aside: its chains go. */
void xbt_tc_drop_alt(xbt_tcache *tc, const uint8_t *bitmap);

/* Drops one block (lookup, chains in and out). */
void xbt_tc_drop(xbt_tcache *tc, xbt_block *b);

/* The blocks dropped (xbt_tc_drop, xbt_tc_invalidate_page) since the log was last
   taken, by EIP and host address, so that the runtime's inline lookup tables can forget
   exactly the entries that led into them.  xbt_tc_take_drops returns how many it put in
   *log (a pointer into the cache, valid until the next drop) and empties the log; past
   XBT_TC_DROP_LOG drops it returns XBT_TC_DROP_LOG + 1 and *log is NULL: any block may
   be gone.  A flush empties the log (everything is gone). */
#define XBT_TC_DROP_LOG 256
struct xbt_tc_dropped {
    uint32_t eip;
    uint64_t host;
};
uint32_t xbt_tc_take_drops(xbt_tcache *tc, const struct xbt_tc_dropped **log);
/* Whether the log holds a drop. */
bool xbt_tc_drops_logged(const xbt_tcache *tc);
/* Undoes every chain: after the guest's linear-to-physical mapping changed, blocks are
   re-checked one by one before they are entered or linked again. */
void xbt_tc_unchain_all(xbt_tcache *tc);
/* Undoes the chains into blocks in the 4 MiB linear regions set in bitmap (1024 bits):
   a mapping change that concerns only those regions.  Blocks' lin must be set.  A chain
   whose target lies on the source's own linear pages, from the same physical pages,
   stays (QEMU's rule for direct jumps): the source runs only once it was checked
   against the new mapping (or reached by another such chain), and then so would the
   target be. */
void xbt_tc_unchain_regions(xbt_tcache *tc, const uint8_t *bitmap);
/* The regions in bitmap are no longer mapped (their blocks wait for a return, their
   epochs saved: xbt_smmu's XBT_EPOCH_ABSENT): the chains into their blocks are undone
   but those from a block of the same one region to another (both within it), which
   stay chained and recorded. */
void xbt_tc_unchain_into(xbt_tcache *tc, const uint8_t *bitmap);
/* Drops every block with guest bytes on physical page `page` (a 4 KiB frame number). */
uint32_t xbt_tc_invalidate_page(xbt_tcache *tc, uint32_t page);
/* Drops every block whose guest bytes on physical page `page` overlap [off, off + len)
   (a fault site made there: their translations lack its check, and neither they nor
   copies of them may run on; pfsite.c).  Returns how many. */
uint32_t xbt_tc_drop_range(xbt_tcache *tc, uint32_t page, uint32_t off, uint32_t len);
/* True if some block has guest bytes on physical page `page`. */
bool xbt_tc_page_has_code(xbt_tcache *tc, uint32_t page);
/* True if some block's guest bytes on physical page `page` overlap [off, off + len). */
bool xbt_tc_page_range_has_code(xbt_tcache *tc, uint32_t page, uint32_t off, uint32_t len);
void xbt_tc_flush(xbt_tcache *tc);

/* The block whose host code contains host address pc, or NULL. */
xbt_block *xbt_tc_block_at(xbt_tcache *tc, uint64_t pc);
bool xbt_tc_contains(const xbt_tcache *tc, uint64_t pc);
/* The executable view: [*start, *start + *size). */
void xbt_tc_code_range(const xbt_tcache *tc, uint64_t *start, uint64_t *size);

void xbt_tc_get_stats(const xbt_tcache *tc, xbt_tc_stats *st);

#endif
