/*
 * tcache.c - translation cache: code space, lookup, chaining, invalidation, flush.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tcache.h"

struct chain_rec {
    xbt_block *from;
    uint32_t exit;
};

/* A lookup bucket: the EIP and mode of its first block beside the pointer, so that a
   hit on the first block costs one memory access, not two (lookups were 11% of a
   strict-mode fork loop, most of it waiting for memory). */
struct tc_bucket {
    uint32_t eip, key;
    xbt_block *head;
};

/* Chain links come from slabs and go back to a free list (a malloc and a free per
   chain were 3% of a fork loop). */
#define LINK_SLAB 4096
struct link_slab {
    struct link_slab *next;
    struct xbt_tc_link links[LINK_SLAB];
};

/* Host code by 512-byte granule: the allocation-order index + 1 of the last block that
   starts at or before the granule's start (xbt_tc_block_at without a binary search). */
#define GRAN_SHIFT 9

/* Block records and their pc maps come from one reservation, used from the bottom and
   emptied at a flush (blocks are freed only then).  Like the tables of the cache it
   asks for transparent huge pages: lookups and chaining touch records spread over tens
   of megabytes, and on a host that is itself a VM each TLB miss is a two-level walk
   (a malloc per record and per map, and the 4 KiB pages under them, were together a
   fifth of a glibc exec loop's host time). */
struct arena {
    uint8_t *base;
    size_t size, used;
};

/* The page index: each bucket of pages (page_hash) is an array of entries, one per
   block and page it has bytes on (two for a block whose last byte is on another page),
   with the range of offsets the block covers there, so that a walk over a page's
   blocks reads 16 bytes per block in a row instead of two of its cache lines (a page of
   libc holds a translation for every place address-space randomization put it: 500
   fork+exec walked 2.2 million blocks in 568 drop_range calls, 6% of the host time,
   nearly all on the page asked for).  An entry leaves by taking the last one's place
   (its block's page_at says where it went).  lo_slot: the first offset covered, bit
   15 the slot (0: the block's first page, 1: its last); hi: one past the last. */
struct page_ent {
    xbt_block *b;
    uint32_t page;
    uint16_t lo_slot, hi;
};
struct page_vec {
    struct page_ent *v;
    uint32_t n, cap;
};

/* Fresh memory made present ahead of the cache's bump pointers, on another host thread
   (see tc_ahead_post).  Region 0 is the record arena, region 1 the code space's
   writable view. */
#define AHEAD_CHUNK HUGE_SIZE
#define AHEAD_META (32u << 20)  /* how far ahead of the records' bump pointer */
#define AHEAD_CODE (8u << 20)   /* and of the code's */
#define AHEAD_START (4u << 20)  /* no thread before the records reach this */
struct tc_ahead {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stop, off; /* off: XBT_NO_AHEAD, or no thread */
    pid_t pid;                 /* the process the thread runs in (not a forked child) */
    struct { uint8_t *base; size_t size, done, want; } r[2];
};

struct xbt_tcache {
    uint8_t *code;             /* code space: executable, not writable, above 4 GiB */
    ptrdiff_t wdelta;          /* its writable view is at code + wdelta (another random
                                  address): nothing is writable and executable */
    uint64_t size, used;
    struct tc_bucket hash[1u << XBT_TC_HASH_BITS];
    /* In front of it, a direct-mapped cache of recent lookups (QEMU's tb_jmp_cache):
       64 KiB that stay in the CPU's caches, where a bucket of the 16 MiB table is a
       cache miss (96% of xbt_tc_lookup's samples, 5% of a Linux fork+exec run, before
       it).  An entry names a valid block or nothing: drop_block and flushes clear. */
    struct tc_jc {
        uint32_t eip, key;
        xbt_block *b;
    } jc[1u << XBT_TC_JC_BITS];
    struct xbt_tc_link *free_links;
    struct link_slab *slabs;
    uint32_t *gran;            /* size >> GRAN_SHIFT entries, after the struct */
    struct arena meta;         /* block records and pc maps */
    xbt_block *phys[1u << XBT_TC_HASH_BITS]; /* relocatable blocks (phys_hash) */
    struct page_vec pages[1u << XBT_TC_PAGE_HASH_BITS];
    xbt_block **order;         /* blocks by host address (allocation order) */
    uint32_t n_drop_log;       /* > XBT_TC_DROP_LOG: the log overflowed */
    struct xbt_tc_dropped drop_log[XBT_TC_DROP_LOG];
    uint32_t n_order, cap_order;
    /* Chains made since the last xbt_tc_unchain_all, so that undoing them costs what
       they cost to make (not a walk over every block: Linux's CR3 switches made that
       a third of the run time). */
    /* Live chains by the 4 MiB linear region of their target (both regions for a
       target that straddles two), so that a mapping change of some regions undoes only
       the chains into them, at the cost of those chains (a walk over every block was a
       third of Linux's run time). */
    struct { struct chain_rec *v; uint32_t n, cap; } reg[1024];
    /* The chains kept for a region's context set aside (xbt_tc_switch_regions): none is
       made while it is, and they are the region's again when it is restored. */
    struct { struct chain_rec *v; uint32_t n, cap; } alt[1024];
    /* Chains within their source's own pages (chain_page_local): no mapping epoch
       undoes them, only xbt_tc_unchain_all; compacted when it has doubled. */
    struct { struct chain_rec *v; uint32_t n, cap, compact_at; } local;
    bool recent_overflow;  /* a record could not grow: fall back to walking all blocks */
    xbt_tc_stats st;
    struct tc_ahead ahead;
};

static uint32_t hash_of(uint32_t eip, uint32_t key)
{
    uint32_t h = eip * 0x9E3779B1u ^ key * 0x85EBCA6Bu;
    return h >> (32 - XBT_TC_HASH_BITS);
}

static uint32_t phys_hash(uint32_t page, uint32_t off, uint32_t key)
{
    uint32_t h = (page << 12 | off) * 0x9E3779B1u ^ key * 0x85EBCA6Bu;
    return h >> (32 - XBT_TC_HASH_BITS);
}

static uint32_t jc_of(uint32_t eip, uint32_t key)
{
    return (eip ^ (eip >> XBT_TC_JC_BITS) ^ key * 0x9E3779B1u) & ((1u << XBT_TC_JC_BITS) - 1);
}

static uint32_t page_hash(uint32_t page)
{
    return (page * 0x9E3779B1u) >> (32 - XBT_TC_PAGE_HASH_BITS);
}

/* Zeroed memory of `size` bytes (rounded up to 2 MiB) at a 2 MiB boundary, backed by
   huge pages where the host gives them; NULL if it refuses. */
#define HUGE_SIZE (2u << 20)
static void *huge_alloc(size_t size, size_t *got)
{
    size = (size + HUGE_SIZE - 1) & ~(size_t)(HUGE_SIZE - 1);
    uint8_t *p = mmap(NULL, size + HUGE_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (a + size < p + size + HUGE_SIZE)
        munmap(a + size, (size_t)(p + size + HUGE_SIZE - (a + size)));
    madvise(a, size, MADV_HUGEPAGE); /* a hint: 4 KiB pages where refused */
    *got = size;
    return a;
}

static void huge_free(void *p, size_t size)
{
    if (p)
        munmap(p, (size + HUGE_SIZE - 1) & ~(size_t)(HUGE_SIZE - 1));
}

static void *arena_alloc(struct arena *a, size_t size, size_t align)
{
    size_t at = (a->used + align - 1) & ~(align - 1);
    if (at + size > a->size)
        return NULL;
    a->used = at + size;
    return a->base + at;
}

/* Populating ahead.  The cache only grows between flushes: every block record and
   every byte of code goes to memory the process has never touched (a flush starts
   again at the bottom of memory touched before).  The host zeroes such memory at the
   first touch, and on a host that is itself a VM that first touch is slow (the
   records' huge pages: clear_page was 11% of a 500 fork+exec phase's host time,
   2026-12-04, about 160 MB of records and 58 MB of code for 630,000 mostly relocated
   blocks).  So a thread of the cache's own touches the next megabytes (a locked add
   of 0 to each 4 KiB page: a write fault, contents untouched even where the cache
   writes the same bytes at the same time) before the bump pointers get there.  Not
   MADV_POPULATE_WRITE: it holds the mm's lock while the host zeroes a huge page, and
   the vCPU thread's window mmaps waited for it (no gain measured); a fault takes only
   the area's lock.  It starts once the records pass AHEAD_START (small caches never
   have one) and blocks every signal (the VMM's are meant for its vCPU threads).
   XBT_NO_AHEAD=1 turns it off. */
static void *ahead_main(void *arg)
{
    struct tc_ahead *a = arg;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        int k = -1;
        for (int i = 0; i < 2 && k < 0; i++)
            if (a->r[i].done < a->r[i].want)
                k = i;
        if (a->stop)
            break;
        if (k < 0) {
            pthread_cond_wait(&a->cv, &a->lock);
            continue;
        }
        uint8_t *p = a->r[k].base + a->r[k].done;
        size_t n = a->r[k].want - a->r[k].done;
        n = n < AHEAD_CHUNK ? n : AHEAD_CHUNK;
        pthread_mutex_unlock(&a->lock);
        /* A locked add of 0 (not a C atomic: clang folds fetch_add(0) into a load, and
           a read fault maps the zero page, which the vCPU's first write replaces). */
        for (size_t o = 0; o < n; o += 4096)
            __asm__ volatile("lock addb $0, %0" : "+m"(p[o]));
        pthread_mutex_lock(&a->lock);
        a->r[k].done += n;
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* Called after the bump pointers moved: wants each region populated AHEAD bytes past
   them (in whole chunks, so the thread is woken once per chunk used). */
static void tc_ahead_post(xbt_tcache *tc)
{
    struct tc_ahead *a = &tc->ahead;
    size_t want0 = tc->meta.used + AHEAD_META, want1 = tc->used + AHEAD_CODE;
    if (a->off || (want0 <= a->r[0].want && want1 <= a->r[1].want))
        return;
    if (!a->started) {
        if (tc->meta.used < AHEAD_START)
            return;
        const char *e = getenv("XBT_NO_AHEAD");
        if (e && *e && *e != '0') {
            a->off = true;
            return;
        }
        pthread_mutex_init(&a->lock, NULL);
        pthread_cond_init(&a->cv, NULL);
        a->r[0].base = tc->meta.base;
        a->r[0].size = tc->meta.size;
        a->r[1].base = tc->code + tc->wdelta;
        a->r[1].size = tc->size;
        /* From the bump pointers on: below them the memory is in use already. */
        a->r[0].done = a->r[0].want = tc->meta.used & ~(size_t)4095;
        a->r[1].done = a->r[1].want = tc->used & ~(size_t)4095;
        a->pid = getpid();
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int err = pthread_create(&a->thread, NULL, ahead_main, a);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err) {
            pthread_cond_destroy(&a->cv);
            pthread_mutex_destroy(&a->lock);
            a->off = true;
            return;
        }
        a->started = true;
    }
    size_t w[2] = { want0, want1 };
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < 2; i++) {
        w[i] = (w[i] + AHEAD_CHUNK - 1) & ~(size_t)(AHEAD_CHUNK - 1);
        if (w[i] > a->r[i].size)
            w[i] = a->r[i].size;
        if (w[i] > a->r[i].want)
            a->r[i].want = w[i];
    }
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->lock);
}

static void tc_ahead_stop(xbt_tcache *tc)
{
    struct tc_ahead *a = &tc->ahead;
    if (!a->started)
        return;
    if (a->pid != getpid()) { /* a forked child: the thread (and its lock) are not here */
        a->started = false;
        return;
    }
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->lock);
    a->started = false;
}

bool xbt_tc_map_code(uint64_t size, uint8_t **exec, uint8_t **write)
{
    /* Shared anonymous memory, not a memfd: perf resolves samples in an executable
       mapping through /tmp/perf-PID.map only when the mapping is anonymous ("//anon",
       "/dev/zero"); a memfd shows as "/memfd:... (deleted)" and perf looks for a file
       of that name instead.  mremap with old size 0 maps the same pages a second time
       (mremap(2)), at an address the kernel chooses; the second view becomes
       executable only after it exists, so no view is ever writable and executable. */
    void *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (w == MAP_FAILED)
        return false;
    void *x = mremap(w, 0, size, MREMAP_MAYMOVE);
    if (x == MAP_FAILED || mprotect(x, size, PROT_READ | PROT_EXEC) != 0 ||
        (uintptr_t)x < (1ull << 32) || (uintptr_t)w < (1ull << 32)) {
        if (x != MAP_FAILED)
            munmap(x, size);
        munmap(w, size);
        return false;
    }
    *exec = x;
    *write = w;
    return true;
}

void xbt_tc_unmap_code(uint64_t size, uint8_t *exec, uint8_t *write)
{
    if (exec)
        munmap(exec, size);
    if (write)
        munmap(write, size);
}

/* Bytes of block records and maps per byte of code space (reserved, not committed): a
   record with its exits (256 bytes with two, cache-line aligned) and its map (12 bytes
   per entry, about one per instruction) and relocations serve a block of about 90 bytes
   of host code on average: about 3.6 bytes of metadata per byte of code (500 fork+exec
   of Debian's /bin/true, 2026-12-03; a relocated copy shares its source's map).  When
   the records run out first, the cache flushes as when its code space is full. */
#define META_PER_CODE 16

static size_t tc_struct_size(uint64_t size)
{
    return sizeof(xbt_tcache) + ((size >> GRAN_SHIFT) + 1) * sizeof(uint32_t);
}

xbt_tcache *xbt_tc_create(uint64_t size)
{
    size_t got;
    xbt_tcache *tc = huge_alloc(tc_struct_size(size), &got);
    if (!tc)
        return NULL;
    tc->gran = (uint32_t *)(void *)(tc + 1);
    tc->meta.base = huge_alloc(size * META_PER_CODE, &tc->meta.size);
    /* Two views at addresses the kernel randomizes, above 4 GiB (nothing of the VMM may
       be reachable with 32-bit addressing): an executable one translated code runs from,
       a writable one the cache writes through. */
    uint8_t *x, *w;
    if (!tc->meta.base || !xbt_tc_map_code(size, &x, &w)) {
        huge_free(tc->meta.base, tc->meta.size);
        huge_free(tc, got);
        return NULL;
    }
    tc->code = x;
    tc->wdelta = w - x;
    tc->size = size;
    return tc;
}

static struct xbt_tc_link *link_alloc(xbt_tcache *tc)
{
    if (!tc->free_links) {
        struct link_slab *s = malloc(sizeof *s);
        if (!s)
            return NULL;
        s->next = tc->slabs;
        tc->slabs = s;
        for (int i = 0; i < LINK_SLAB; i++) {
            s->links[i].next = tc->free_links;
            tc->free_links = &s->links[i];
        }
    }
    struct xbt_tc_link *l = tc->free_links;
    tc->free_links = l->next;
    return l;
}

static void link_free(xbt_tcache *tc, struct xbt_tc_link *l)
{
    l->next = tc->free_links;
    tc->free_links = l;
}

static void free_blocks(xbt_tcache *tc)
{
    for (uint32_t i = 0; i < tc->n_order; i++) {
        xbt_block *b = tc->order[i];
        struct xbt_tc_link *l = b->incoming;
        while (l) {
            struct xbt_tc_link *n = l->next;
            link_free(tc, l);
            l = n;
        }
    }
    tc->n_order = 0;
    tc->meta.used = 0;
}

void xbt_tc_destroy(xbt_tcache *tc)
{
    if (!tc)
        return;
    tc_ahead_stop(tc);
    free_blocks(tc);
    free(tc->order);
    for (struct link_slab *sl = tc->slabs, *n; sl; sl = n) {
        n = sl->next;
        free(sl);
    }
    for (int r = 0; r < 1024; r++)
        free(tc->reg[r].v), free(tc->alt[r].v);
    free(tc->local.v);
    for (uint32_t i = 0; i < 1u << XBT_TC_PAGE_HASH_BITS; i++)
        free(tc->pages[i].v);
    xbt_tc_unmap_code(tc->size, tc->code, tc->code + tc->wdelta);
    huge_free(tc->meta.base, tc->meta.size);
    huge_free(tc, tc_struct_size(tc->size));
}

void xbt_tc_prefetch(const xbt_tcache *tc, uint32_t eip, uint32_t key)
{
    __builtin_prefetch(&tc->jc[jc_of(eip, key)]);
    __builtin_prefetch(&tc->hash[hash_of(eip, key)]);
}

xbt_block *xbt_tc_lookup(xbt_tcache *tc, uint32_t eip, uint32_t key)
{
    tc->st.lookups++;
    struct tc_jc *j = &tc->jc[jc_of(eip, key)];
    if (j->b && j->eip == eip && j->key == key) {
        tc->st.hits++;
        return j->b;
    }
    const struct tc_bucket *h = &tc->hash[hash_of(eip, key)];
    xbt_block *b = h->head;
    if (!b)
        return NULL;
    if (!(h->eip == eip && h->key == key))
        for (b = b->hash_next; b; b = b->hash_next)
            if (b->eip == eip && b->mode_key == key)
                break;
    if (!b)
        return NULL;
    tc->st.hits++;
    *j = (struct tc_jc){ eip, key, b };
    return b;
}

xbt_block *xbt_tc_lookup_next(const xbt_tcache *tc, const xbt_block *b)
{
    (void)tc;
    for (xbt_block *n = b->hash_next; n; n = n->hash_next)
        if (n->eip == b->eip && n->mode_key == b->mode_key)
            return n;
    return NULL;
}

void xbt_tc_prefer(xbt_tcache *tc, xbt_block *b)
{
    struct tc_bucket *h = &tc->hash[hash_of(b->eip, b->mode_key)];
    if (h->head != b) {
        *b->hash_pprev = b->hash_next; /* (not the head: the bucket's tag stays) */
        if (b->hash_next)
            b->hash_next->hash_pprev = b->hash_pprev;
        b->hash_next = h->head;
        b->hash_pprev = &h->head;
        h->head->hash_pprev = &b->hash_next;
        h->head = b;
        h->eip = b->eip;
        h->key = b->mode_key;
    }
    tc->jc[jc_of(b->eip, b->mode_key)] = (struct tc_jc){ b->eip, b->mode_key, b };
}

/* Points the rel32 at `field` (in the executable view) at `target`, writing it through
   the writable view. */
static void patch_rel32(xbt_tcache *tc, uint8_t *field, const uint8_t *target)
{
    int32_t d = (int32_t)(target - (field + 4));
    memcpy(field + tc->wdelta, &d, 4);
}

/* Room for k more entries in v (false: no memory). */
static bool page_room(struct page_vec *v, uint32_t k)
{
    if (v->n + k <= v->cap)
        return true;
    uint32_t cap = v->cap ? v->cap * 2 : 16;
    struct page_ent *e = realloc(v->v, cap * sizeof *e);
    if (!e)
        return false;
    v->v = e;
    v->cap = cap;
    return true;
}

/* b's entry for its slot's page: the offsets [lo, hi) of its bytes there.  A block
   whose two pages are one frame has one entry: from its start to its end where both
   are on one page, the whole page where its bytes cross into a next linear page that
   maps the same frame (its end then lies below its start; the lists before this index
   covered only [start, 4096) there). */
static void page_add(xbt_tcache *tc, xbt_block *b, int slot)
{
    uint32_t start = b->lin & 0xFFF, end = start + (b->guest_len ? b->guest_len : 1);
    uint32_t lo = slot == 0 ? start : 0;
    uint32_t hi = slot == 0 ? (end < 4096 ? end : 4096) : (end > 4096 ? end - 4096 : 4096);
    if (hi > 4096)
        hi = 4096;
    if (slot == 0 && b->page[1] == b->page[0] && end > 4096)
        lo = 0, hi = 4096; /* both linear pages map this frame: its end is at its start */
    struct page_vec *v = &tc->pages[page_hash(b->page[slot])];
    b->page_at[slot] = v->n;
    v->v[v->n++] = (struct page_ent){ b, b->page[slot], (uint16_t)(lo | (uint32_t)slot << 15),
                                      (uint16_t)hi };
}

static void page_remove(xbt_tcache *tc, xbt_block *b, int slot)
{
    struct page_vec *v = &tc->pages[page_hash(b->page[slot])];
    uint32_t i = b->page_at[slot];
    struct page_ent last = v->v[--v->n];
    if (i != v->n) {
        v->v[i] = last;
        last.b->page_at[last.lo_slot >> 15] = i;
    }
}

static bool ent_covers(const struct page_ent *e, uint32_t page, uint32_t off, uint32_t len)
{
    return e->page == page && off < e->hi && off + len > (e->lo_slot & 0xFFFu);
}

xbt_block *xbt_tc_insert(xbt_tcache *tc, const xbt_tblock *tb, uint32_t key, uint32_t lin,
                         uint32_t page0, uint32_t page1, const xbt_block *share)
{
    uint64_t need = (tb->code_len + 15) & ~15ull;
    if (tc->used + need > tc->size)
        return NULL;
    /* Room in the page index first (two entries in one bucket for a block on two
       pages that share it). */
    struct page_vec *v0 = &tc->pages[page_hash(page0)], *v1 = &tc->pages[page_hash(page1)];
    if (page1 == page0 ? !page_room(v0, 1)
        : v1 == v0     ? !page_room(v0, 2)
                       : !page_room(v0, 1) || !page_room(v1, 1))
        return NULL;
    if (tc->n_order == tc->cap_order) {
        uint32_t cap = tc->cap_order ? tc->cap_order * 2 : 1024;
        xbt_block **o = realloc(tc->order, cap * sizeof *o);
        if (!o)
            return NULL;
        tc->order = o;
        tc->cap_order = cap;
    }
    /* Cache-line aligned: its first line is all the dispatcher reads (tcache.h). */
    uint32_t n_relocs = tb->reloc_ok ? tb->n_relocs : 0;
    size_t before = tc->meta.used;
    _Static_assert(sizeof(xbt_block) % sizeof(xbt_block *) == 0, "the chains after it");
    size_t rec = sizeof(xbt_block) + tb->n_exits * (sizeof(xbt_block *) + sizeof(struct xbt_texit));
    xbt_block *b = arena_alloc(&tc->meta, rec, 64);
    /* The pc map, then the relocations (4-byte aligned: a pc-map entry is 12 bytes). */
    _Static_assert(sizeof(struct xbt_pcmap) % 4 == 0, "relocations after the map");
    if (share && (share->n_map != tb->n_map || share->n_relocs != n_relocs))
        share = NULL; /* (cannot be: a copy has its source's map and relocations) */
    struct xbt_pcmap *map = NULL;
    if (b && !share)
        map = arena_alloc(&tc->meta, tb->n_map * sizeof *map + n_relocs * sizeof(uint32_t), 4);
    if (!b || (!share && !map)) {
        tc->meta.used = before; /* full: the caller flushes */
        return NULL;
    }
    memset(b, 0, rec);
    b->chained_to = (xbt_block **)(void *)(b + 1);
    b->exits = (struct xbt_texit *)(void *)(b->chained_to + tb->n_exits);
    b->host = tc->code + tc->used;
    memcpy(b->host + tc->wdelta, tb->code, tb->code_len);
    tc->used += need;
    b->eip = tb->eip;
    b->mode_key = key;
    b->page[0] = page0;
    b->page[1] = page1;
    b->guest_len = tb->guest_len;
    b->n_insns = tb->n_insns;
    b->host_len = tb->code_len;
    b->body_len = tb->body_len;
    b->n_exits = tb->n_exits;
    memcpy(b->exits, tb->exits, tb->n_exits * sizeof *b->exits);
    b->thunk = tb->thunk;
    b->fpu_skip = tb->fpu_skip;
    b->n_map = tb->n_map;
    if (share) {
        b->map = share->map;
        b->map_delta = share->map_delta + (tb->eip - share->eip); /* mod 2^32 */
    } else {
        b->map = map;
        memcpy(map, tb->map, tb->n_map * sizeof *map);
    }
    if (tb->reloc_ok) {
        b->relocs = share ? share->relocs : (uint32_t *)(void *)(map + tb->n_map);
        if (!share)
            memcpy(b->relocs, tb->relocs, n_relocs * sizeof(uint32_t));
        b->n_relocs = n_relocs;
        /* Indexed by where its first byte is (its offset: the EIP's, as relocation
           moves by whole pages). */
        xbt_block **head = &tc->phys[phys_hash(page0, tb->eip & 0xFFF, key)];
        b->phys_next = *head;
        b->phys_pprev = head;
        if (*head)
            (*head)->phys_pprev = &b->phys_next;
        *head = b;
    }
    b->n_sites = tb->n_sites;
    b->sites_off = tb->sites_off;
    b->ool_off = tb->ool_off;
    b->end = tb->end;
    b->valid = true;

    struct tc_bucket *h = &tc->hash[hash_of(b->eip, key)];
    b->hash_next = h->head;
    b->hash_pprev = &h->head;
    if (b->hash_next)
        b->hash_next->hash_pprev = &b->hash_next;
    h->head = b;
    h->eip = b->eip;
    h->key = key;
    struct tc_jc *j = &tc->jc[jc_of(b->eip, key)];
    if (j->b && j->eip == b->eip && j->key == key)
        j->b = b; /* the newest block of an (eip, key) answers, as the bucket's head */
    b->lin = lin;
    page_add(tc, b, 0);
    if (page1 != page0)
        page_add(tc, b, 1);
    /* Granules from the first that starts inside the block to its last byte's. */
    uint64_t off = (uint64_t)(b->host - tc->code);
    for (uint64_t g = (off + (1u << GRAN_SHIFT) - 1) >> GRAN_SHIFT;
         g <= (off + b->host_len - 1) >> GRAN_SHIFT; g++)
        tc->gran[g] = tc->n_order + 1;
    tc->order[tc->n_order++] = b;
    tc->st.blocks++;
    tc->st.block_bytes += tb->code_len;
    tc->st.guest_insns += tb->n_insns;
    tc_ahead_post(tc);
    return b;
}

/* Whether a chain from -> to stays valid whatever the mapping does, as long as `from`
   runs only under a mapping it was checked against: every linear page of `to` is one of
   `from`'s, taken from the same physical page, in the same mode and with the same CS
   base (the same distance in EIP as in linear address).  Traces (their own checks over
   several pages) are left out. */
static bool chain_page_local(const xbt_block *from, const xbt_block *to)
{
    if (from->tstate == 1 || to->tstate == 1 || from->mode_key != to->mode_key ||
        to->lin - from->lin != to->eip - from->eip)
        return false;
    uint32_t f[2] = { from->lin >> 12, xbt_block_last(from) >> 12 };
    uint32_t t[2] = { to->lin >> 12, xbt_block_last(to) >> 12 };
    for (int i = 0; i < 2; i++)
        if (!((t[i] == f[0] && to->page[i] == from->page[0]) ||
              (t[i] == f[1] && to->page[i] == from->page[1])))
            return false;
    return true;
}

/* The records of chains within pages: those still there and still within pages, once
   each (a chain undone and made again was recorded again). */
_Static_assert(XBT_BLOCK_MAX_EXITS <= 16, "rec_kept has a bit per exit");
static void local_compact(xbt_tcache *tc)
{
    struct chain_rec *v = tc->local.v;
    uint32_t keep = 0;
    for (uint32_t k = 0; k < tc->local.n; k++) {
        xbt_block *from = v[k].from, *to;
        uint32_t bit = 1u << v[k].exit;
        if (from->valid && (to = from->chained_to[v[k].exit]) && chain_page_local(from, to) &&
            !(from->rec_kept & bit)) {
            from->rec_kept |= (uint16_t)bit;
            v[keep++] = v[k];
        }
    }
    for (uint32_t k = 0; k < keep; k++)
        v[k].from->rec_kept = 0;
    tc->local.n = keep;
    tc->local.compact_at = keep * 2 > 4096 ? keep * 2 : 4096;
}

static bool record(struct chain_rec **v, uint32_t *n, uint32_t *cap, xbt_block *from,
                   uint32_t exit)
{
    if (*n == *cap) {
        uint32_t c = *cap ? 2 * *cap : 64;
        struct chain_rec *nv = realloc(*v, c * sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = (struct chain_rec){ from, exit };
    return true;
}

/* Where exit `exit` of `from` jumps once chained to `to`: to's code; past the call
   that loads the guest's x87/SSE state at its start where the exit is only taken with
   that state loaded (translator.h, xbt_texit.fpu: the call would be a bare RET); or,
   for a direct CALL's exit with a thunk path (XBT_ALT_*) chained to a PC thunk, that
   path, its register set to the thunk's the first time (it is unreachable until then;
   a later thunk with another register gets the plain chain: the byte is never
   rewritten under code that may run it). */
static const uint8_t *chain_dest(xbt_tcache *tc, xbt_block *from, uint32_t exit,
                                 const xbt_block *to)
{
    struct xbt_texit *e = &from->exits[exit];
    if (e->alt == XBT_ALT_NONE || !to->thunk)
        return to->host + (e->fpu ? to->fpu_skip : 0);
    uint8_t want = (uint8_t)(XBT_ALT_REG0 + to->thunk - 1);
    uint8_t *path = from->host + e->rel32_off + 4;
    if (e->alt == XBT_ALT_FREE) {
        path[tc->wdelta] = (uint8_t)(0xB8 + to->thunk - 1);
        e->alt = want;
    }
    return e->alt == want ? path : to->host;
}

void xbt_tc_chain(xbt_tcache *tc, xbt_block *from, uint32_t exit, xbt_block *to)
{
    if (!from->valid || !to->valid || exit >= from->n_exits || from->chained_to[exit])
        return;
    struct xbt_tc_link *l = link_alloc(tc);
    if (!l)
        return; /* chaining is an optimization: without memory, stay unchained */
    l->from = from;
    l->exit = exit;
    l->next = to->incoming;
    to->incoming = l;
    from->chained_to[exit] = to;
    const uint8_t *dest = chain_dest(tc, from, exit, to);
    patch_rel32(tc, from->host + from->exits[exit].rel32_off, dest);
    tc->st.chains++;
    tc->st.thunk_chains += dest != to->host && to->thunk;
    tc->st.fpu_chains += dest != to->host && !to->thunk;
    if (chain_page_local(from, to)) {
        if (tc->local.n >= tc->local.compact_at)
            local_compact(tc);
        if (!record(&tc->local.v, &tc->local.n, &tc->local.cap, from, exit))
            tc->recent_overflow = true; /* fall back to the full walk */
        return;
    }
    uint32_t r0 = to->lin >> 22, r1 = xbt_block_last(to) >> 22;
    for (uint32_t r = r0;; r = r1) {
        if (!record(&tc->reg[r].v, &tc->reg[r].n, &tc->reg[r].cap, from, exit)) {
            tc->recent_overflow = true; /* fall back to the full walk */
            return;
        }
        if (r == r1)
            break;
    }
}

static void unchain_one(xbt_tcache *tc, xbt_block *from, uint32_t exit);

bool xbt_tc_icache_learn(xbt_tcache *tc, xbt_block *from, uint32_t miss, const xbt_block *to)
{
    if (!from->valid || miss + 1 >= from->n_exits ||
        from->exits[miss].kind != XBT_EXIT_ICACHE_MISS ||
        from->exits[miss + 1].kind != XBT_EXIT_ICACHE_HIT)
        return false;
    struct xbt_texit *m = &from->exits[miss], *h = &from->exits[miss + 1];
    if (m->prof >= XBT_ICACHE_LEARNS) {
        /* Polymorphic: the compare goes, the site jumps straight to the lookup. */
        uint8_t *entry = from->host + m->rel32_off - XBT_ICACHE_ENTRY_BACK + tc->wdelta;
        entry[0] = 0xEB;
        entry[1] = XBT_ICACHE_SKIP;
        patch_rel32(tc, from->host + m->rel32_off, from->host + m->rel32_off + 4);
        tc->st.icache_retired++;
        return false;
    }
    if (from->chained_to[miss + 1])
        unchain_one(tc, from, miss + 1); /* to the last target */
    uint32_t target = to->eip, disp = 0u - target;
    memcpy(from->host + m->rel32_off - XBT_ICACHE_DISP_BACK + tc->wdelta, &disp, 4);
    memcpy(from->host + h->stub_off + 2 + tc->wdelta, &target, 4); /* mov r14d, imm32 */
    h->target = target;
    m->prof++;
    tc->st.icache_learns++;
    return true;
}

bool xbt_tc_find_site(xbt_tcache *tc, uint64_t site, const xbt_block *hint, xbt_block **from,
                      uint32_t *exit)
{
    xbt_block *b = (xbt_block *)hint;
    if (!b || site < (uintptr_t)b->host || site >= (uintptr_t)b->host + b->host_len)
        b = xbt_tc_block_at(tc, site); /* (two or three cache misses: the granule, the
                                          order array, the blocks it names) */
    if (!b || !b->valid)
        return false;
    for (uint32_t i = 0; i < b->n_exits; i++)
        if ((uint64_t)(uintptr_t)(b->host + b->exits[i].rel32_off) == site) {
            *from = b;
            *exit = i;
            return true;
        }
    return false;
}

static void unpatch(xbt_tcache *tc, xbt_block *from, uint32_t exit)
{
    patch_rel32(tc, from->host + from->exits[exit].rel32_off,
                from->host + from->exits[exit].stub_off);
}

void xbt_tc_unlink_out(xbt_tcache *tc, xbt_block *b)
{
    for (uint32_t i = 0; i < b->n_exits; i++)
        if (b->chained_to[i])
            unpatch(tc, b, i);
}

void xbt_tc_relink_out(xbt_tcache *tc, xbt_block *b)
{
    for (uint32_t i = 0; i < b->n_exits; i++)
        if (b->chained_to[i] && b->valid && b->chained_to[i]->valid)
            patch_rel32(tc, b->host + b->exits[i].rel32_off,
                        chain_dest(tc, b, i, b->chained_to[i]));
}

/* b out of the index of relocatable blocks (constant time: the list is doubly linked). */
static void phys_unlink(xbt_block *b)
{
    if (!b->phys_pprev)
        return;
    *b->phys_pprev = b->phys_next;
    if (b->phys_next)
        b->phys_next->phys_pprev = b->phys_pprev;
    b->phys_pprev = NULL;
}

/* Removes b from the lookup structures and every chain into or out of it. */
static void drop_block(xbt_tcache *tc, xbt_block *b)
{
    /* Incoming chains jump back to their stubs. */
    for (struct xbt_tc_link *l = b->incoming, *n; l; l = n) {
        n = l->next;
        if (l->from->valid && l->from->chained_to[l->exit] == b) {
            unpatch(tc, l->from, l->exit);
            l->from->chained_to[l->exit] = NULL;
            tc->st.unchains++;
        }
        link_free(tc, l);
    }
    b->incoming = NULL;
    /* Outgoing chains: remove our entries from the targets' incoming lists. */
    for (uint32_t i = 0; i < b->n_exits; i++) {
        xbt_block *to = b->chained_to[i];
        if (!to)
            continue;
        for (struct xbt_tc_link **pl = &to->incoming; *pl; pl = &(*pl)->next)
            if ((*pl)->from == b && (*pl)->exit == i) {
                struct xbt_tc_link *dead = *pl;
                *pl = dead->next;
                link_free(tc, dead);
                break;
            }
        b->chained_to[i] = NULL;
    }
    /* Out of the lookup and page lists in constant time (a page of a shared library
       can hold thousands of blocks: one per address space it was mapped at). */
    struct tc_jc *j = &tc->jc[jc_of(b->eip, b->mode_key)];
    if (j->b == b)
        j->b = NULL;
    struct tc_bucket *h = &tc->hash[hash_of(b->eip, b->mode_key)];
    *b->hash_pprev = b->hash_next;
    if (b->hash_next)
        b->hash_next->hash_pprev = b->hash_pprev;
    if (b->hash_pprev == &h->head && h->head) { /* a new first block: its tag */
        h->eip = h->head->eip;
        h->key = h->head->mode_key;
    }
    phys_unlink(b);
    page_remove(tc, b, 0);
    if (b->page[1] != b->page[0])
        page_remove(tc, b, 1);
    b->valid = false;
    if (tc->n_drop_log < XBT_TC_DROP_LOG)
        tc->drop_log[tc->n_drop_log] = (struct xbt_tc_dropped){ b->eip, (uintptr_t)b->host };
    if (tc->n_drop_log <= XBT_TC_DROP_LOG)
        tc->n_drop_log++;
}

uint32_t xbt_tc_take_drops(xbt_tcache *tc, const struct xbt_tc_dropped **log)
{
    uint32_t n = tc->n_drop_log;
    *log = n <= XBT_TC_DROP_LOG ? tc->drop_log : NULL;
    tc->n_drop_log = 0;
    return n;
}

bool xbt_tc_drops_logged(const xbt_tcache *tc)
{
    return tc->n_drop_log != 0;
}

void xbt_tc_drop(xbt_tcache *tc, xbt_block *b)
{
    if (!b->valid)
        return;
    drop_block(tc, b);
    tc->st.invalidations++;
}

/* Undoes one chain (from, exit) if it is still there, freeing its incoming link. */
static void unchain_one(xbt_tcache *tc, xbt_block *from, uint32_t exit)
{
    xbt_block *to = from->chained_to[exit];
    if (!from->valid || !to)
        return;
    unpatch(tc, from, exit);
    from->chained_to[exit] = NULL;
    tc->st.unchains++;
    for (struct xbt_tc_link **pl = &to->incoming; *pl; pl = &(*pl)->next)
        if ((*pl)->from == from && (*pl)->exit == exit) {
            struct xbt_tc_link *dead = *pl;
            *pl = dead->next;
            link_free(tc, dead);
            break;
        }
}

static bool in_regions(const xbt_block *to, const uint8_t *bitmap)
{
    uint32_t r0 = to->lin >> 22, r1 = xbt_block_last(to) >> 22;
    return (bitmap[r0 >> 3] & (1u << (r0 & 7))) || (bitmap[r1 >> 3] & (1u << (r1 & 7)));
}

/* Whether a block's code touches region r (its first or last byte there). */
static bool touches_region(const xbt_block *b, uint32_t r)
{
    return b->lin >> 22 == r || xbt_block_last(b) >> 22 == r;
}

static bool within_region(const xbt_block *b, uint32_t r)
{
    return b->lin >> 22 == r && xbt_block_last(b) >> 22 == r;
}

/* Whether a chain leads from a block to another of the same one region, both within it. */
static bool chain_in_one_region(const xbt_block *from, const xbt_block *to)
{
    return within_region(from, to->lin >> 22) && within_region(to, to->lin >> 22);
}

/* The chains a record list of region r names that are still made and lead into r (not
   those within their source's pages) are undone; with `keep`, those from a block of r to
   another, both within it, stay, and the list keeps their records only. */
static void cut_list(xbt_tcache *tc, struct chain_rec *v, uint32_t *n, uint32_t r, bool keep)
{
    uint32_t kept = 0;
    for (uint32_t k = 0; k < *n; k++) {
        struct chain_rec c = v[k];
        xbt_block *from = c.from, *to;
        if (!from->valid || !(to = from->chained_to[c.exit]) || !touches_region(to, r) ||
            chain_page_local(from, to))
            continue;
        if (keep && chain_in_one_region(from, to))
            v[kept++] = c;
        else
            unchain_one(tc, from, c.exit);
    }
    *n = kept;
}

/* cut_list on the current record lists (or, with `alt`, those set aside) of the
   regions in bitmap. */
static void cut_lists(xbt_tcache *tc, const uint8_t *bitmap, bool alt, bool keep)
{
    for (uint32_t i = 0; i < 128; i++)
        for (uint8_t any = bitmap[i]; any; any &= (uint8_t)(any - 1)) {
            uint32_t r = i * 8 + (uint32_t)__builtin_ctz(any);
            if (alt)
                cut_list(tc, tc->alt[r].v, &tc->alt[r].n, r, keep);
            else
                cut_list(tc, tc->reg[r].v, &tc->reg[r].n, r, keep);
        }
}

void xbt_tc_unchain_regions(xbt_tcache *tc, const uint8_t *bitmap)
{
    /* (A chain made again within pages has its record in the local list.) */
    cut_lists(tc, bitmap, false, false);
    if (!tc->recent_overflow)
        return;
    /* The records are incomplete: look at every block (the overflow stays until an
       xbt_tc_unchain_all starts new records). */
    for (uint32_t k = 0; k < tc->n_order; k++) {
        xbt_block *b = tc->order[k];
        if (!b->valid)
            continue;
        for (uint32_t i = 0; i < b->n_exits; i++)
            if (b->chained_to[i] && in_regions(b->chained_to[i], bitmap) &&
                !chain_page_local(b, b->chained_to[i]))
                unchain_one(tc, b, i);
    }
}

void xbt_tc_unchain_into(xbt_tcache *tc, const uint8_t *bitmap)
{
    bool any = false;
    for (uint32_t i = 0; i < 128 && !any; i++)
        any = bitmap[i] != 0;
    if (!any)
        return; /* (the walk of every block below is for an overflow, not for nothing) */
    cut_lists(tc, bitmap, false, true);
    if (!tc->recent_overflow)
        return;
    for (uint32_t k = 0; k < tc->n_order; k++) {
        xbt_block *b = tc->order[k];
        if (!b->valid)
            continue;
        for (uint32_t i = 0; i < b->n_exits; i++) {
            xbt_block *to = b->chained_to[i];
            if (to && in_regions(to, bitmap) && !chain_page_local(b, to) &&
                !chain_in_one_region(b, to))
                unchain_one(tc, b, i);
        }
    }
}

static void switch_region(xbt_tcache *tc, uint32_t r, const uint8_t *keep,
                          const uint8_t *restore);

void xbt_tc_switch_regions(xbt_tcache *tc, const uint8_t *keep, const uint8_t *restore)
{
    for (uint32_t i = 0; i < 128; i++)
        for (uint8_t any = keep[i] | restore[i]; any; any &= (uint8_t)(any - 1))
            switch_region(tc, i * 8 + (uint32_t)__builtin_ctz(any), keep, restore);
}

void xbt_tc_drop_alt(xbt_tcache *tc, const uint8_t *bitmap)
{
    cut_lists(tc, bitmap, true, false);
}

/* xbt_tc_switch_regions for one region. */
static void switch_region(xbt_tcache *tc, uint32_t r, const uint8_t *keep, const uint8_t *restore)
{
    uint8_t bit = (uint8_t)(1u << (r & 7));
    bool k = keep[r >> 3] & bit, back = restore[r >> 3] & bit;
    if (tc->recent_overflow) {
        /* The records are incomplete: every chain into r goes (a walk of every block),
           those set aside too. */
        uint8_t one[128] = { 0 };
        one[r >> 3] = bit;
        cut_list(tc, tc->alt[r].v, &tc->alt[r].n, r, false);
        xbt_tc_unchain_regions(tc, one);
        return;
    }
    cut_list(tc, tc->reg[r].v, &tc->reg[r].n, r, k);
    if (!back)
        cut_list(tc, tc->alt[r].v, &tc->alt[r].n, r, false); /* given up */
    /* Kept: set aside; restored: current; else empty. */
    struct chain_rec *v = tc->reg[r].v;
    uint32_t n = tc->reg[r].n, cap = tc->reg[r].cap;
    tc->reg[r].v = tc->alt[r].v, tc->reg[r].n = tc->alt[r].n, tc->reg[r].cap = tc->alt[r].cap;
    tc->alt[r].v = v, tc->alt[r].n = n, tc->alt[r].cap = cap;
}

void xbt_tc_unchain_all(xbt_tcache *tc)
{
    for (uint32_t r = 0; r < 1024; r++) {
        for (uint32_t k = 0; k < tc->reg[r].n; k++)
            unchain_one(tc, tc->reg[r].v[k].from, tc->reg[r].v[k].exit);
        for (uint32_t k = 0; k < tc->alt[r].n; k++)
            unchain_one(tc, tc->alt[r].v[k].from, tc->alt[r].v[k].exit);
        tc->reg[r].n = tc->alt[r].n = 0;
    }
    for (uint32_t k = 0; k < tc->local.n; k++)
        unchain_one(tc, tc->local.v[k].from, tc->local.v[k].exit);
    tc->local.n = 0;
    if (!tc->recent_overflow)
        return;
    tc->recent_overflow = false;
    for (uint32_t k = 0; k < tc->n_order; k++) {
        xbt_block *b = tc->order[k];
        if (!b->valid)
            continue;
        for (uint32_t i = 0; i < b->n_exits; i++)
            if (b->chained_to[i])
                unchain_one(tc, b, i);
    }
}

/* Walks the bucket from its end: an entry that leaves takes the last one's place,
   which was walked already (a block with both of its entries here moves one that was
   walked into the part not walked yet, which is looked at again). */
uint32_t xbt_tc_drop_range(xbt_tcache *tc, uint32_t page, uint32_t off, uint32_t len)
{
    struct page_vec *v = &tc->pages[page_hash(page)];
    uint32_t n = 0;
    for (uint32_t i = v->n; i-- > 0;) {
        if (i >= v->n)
            continue;
        if (ent_covers(&v->v[i], page, off, len)) {
            drop_block(tc, v->v[i].b);
            n++;
        }
    }
    tc->st.invalidations += n;
    return n;
}

uint32_t xbt_tc_invalidate_page(xbt_tcache *tc, uint32_t page)
{
    return xbt_tc_drop_range(tc, page, 0, 4096);
}

xbt_block *xbt_tc_find_relocatable(xbt_tcache *tc, uint32_t page, uint32_t off, uint32_t key,
                                   uint32_t eip)
{
    for (xbt_block *b = tc->phys[phys_hash(page, eip & 0xFFF, key)]; b; b = b->phys_next)
        if (b->page[0] == page && b->mode_key == key && (b->lin & 0xFFF) == off &&
            ((b->eip - eip) & 0xFFF) == 0)
            return b;
    return NULL;
}

uint32_t xbt_tc_flushes(const xbt_tcache *tc)
{
    return (uint32_t)tc->st.flushes;
}

uint64_t xbt_tc_drops(const xbt_tcache *tc)
{
    return tc->st.flushes + tc->st.invalidations;
}

bool xbt_tc_get_tblock(const xbt_block *b, xbt_tblock *out)
{
    if (!b->relocs || b->host_len > out->code_cap || b->n_map > XBT_BLOCK_MAX_MAP ||
        b->n_relocs > XBT_BLOCK_MAX_RELOCS)
        return false;
    memcpy(out->code, b->host, b->host_len);
    out->n_exits = b->n_exits;
    memcpy(out->exits, b->exits, b->n_exits * sizeof *b->exits);
    for (uint32_t i = 0; i < b->n_exits; i++) {
        /* Back to its stub, as translated (chained or not, here); the thunk path too. */
        struct xbt_texit *e = &out->exits[i];
        int32_t d = (int32_t)e->stub_off - (int32_t)(e->rel32_off + 4);
        memcpy(out->code + e->rel32_off, &d, 4);
        if (e->alt != XBT_ALT_NONE) {
            out->code[e->rel32_off + 4] = 0xB8;
            e->alt = XBT_ALT_FREE;
        }
        /* An inline cache as translated: nothing learned (translator.h). */
        if (e->kind == XBT_EXIT_ICACHE_MISS) {
            uint32_t none = 0u - XBT_ICACHE_NONE;
            memcpy(out->code + e->rel32_off - XBT_ICACHE_DISP_BACK, &none, 4);
            out->code[e->rel32_off - XBT_ICACHE_ENTRY_BACK] = 0x66; /* the 2-byte NOP */
            out->code[e->rel32_off - XBT_ICACHE_ENTRY_BACK + 1] = 0x90;
            e->prof = 0;
        } else if (e->kind == XBT_EXIT_ICACHE_HIT) {
            uint32_t none = XBT_ICACHE_NONE;
            memcpy(out->code + e->stub_off + 2, &none, 4); /* mov r14d, imm32 */
            e->target = none;
        }
    }
    out->eip = b->eip;
    out->guest_len = b->guest_len;
    out->n_insns = b->n_insns;
    out->path_used = 1;
    out->end = b->end;
    out->code_len = b->host_len;
    out->body_len = b->body_len;
    out->ool_off = b->ool_off;
    out->thunk = b->thunk;
    out->fpu_skip = b->fpu_skip;
    out->n_map = b->n_map;
    memcpy(out->map, b->map, b->n_map * sizeof *b->map);
    for (uint32_t i = 0; i < b->n_map; i++)
        out->map[i].guest_eip += b->map_delta; /* a copy's map is its source's */
    out->n_sites = b->n_sites;
    out->sites_off = b->sites_off;
    out->reloc_ok = true;
    out->n_relocs = b->n_relocs;
    memcpy(out->relocs, b->relocs, b->n_relocs * sizeof *b->relocs);
    memset(&out->stats, 0, sizeof out->stats);
    out->error[0] = 0;
    return true;
}

bool xbt_tc_page_has_code(xbt_tcache *tc, uint32_t page)
{
    return xbt_tc_page_range_has_code(tc, page, 0, 4096);
}

bool xbt_tc_page_range_has_code(xbt_tcache *tc, uint32_t page, uint32_t off, uint32_t len)
{
    const struct page_vec *v = &tc->pages[page_hash(page)];
    for (uint32_t i = 0; i < v->n; i++)
        if (ent_covers(&v->v[i], page, off, len))
            return true;
    return false;
}

void xbt_tc_flush(xbt_tcache *tc)
{
    free_blocks(tc);
    for (int r = 0; r < 1024; r++)
        tc->reg[r].n = tc->alt[r].n = 0;
    tc->local.n = 0;
    tc->recent_overflow = false;
    memset(tc->hash, 0, sizeof tc->hash);
    memset(tc->jc, 0, sizeof tc->jc);
    memset(tc->gran, 0, ((tc->size >> GRAN_SHIFT) + 1) * sizeof *tc->gran);
    memset(tc->phys, 0, sizeof tc->phys);
    for (uint32_t i = 0; i < 1u << XBT_TC_PAGE_HASH_BITS; i++)
        tc->pages[i].n = 0;
    tc->used = 0;
    tc->n_drop_log = 0;
    tc->st.flushes++;
}

bool xbt_tc_contains(const xbt_tcache *tc, uint64_t pc)
{
    return pc >= (uintptr_t)tc->code && pc < (uintptr_t)tc->code + tc->used;
}

void xbt_tc_code_range(const xbt_tcache *tc, uint64_t *start, uint64_t *size)
{
    *start = (uintptr_t)tc->code;
    *size = tc->size;
}

xbt_block *xbt_tc_block_at(xbt_tcache *tc, uint64_t pc)
{
    if (!xbt_tc_contains(tc, pc))
        return NULL;
    uint32_t i = tc->gran[(pc - (uintptr_t)tc->code) >> GRAN_SHIFT];
    if (i == 0)
        return NULL;
    /* The last block that starts at or before pc: from the granule's on. */
    for (i--; i + 1 < tc->n_order && (uintptr_t)tc->order[i + 1]->host <= pc; i++)
        ;
    xbt_block *b = tc->order[i];
    return pc >= (uintptr_t)b->host && pc < (uintptr_t)b->host + b->host_len ? b : NULL;
}

void xbt_tc_get_stats(const xbt_tcache *tc, xbt_tc_stats *st)
{
    *st = tc->st;
}
