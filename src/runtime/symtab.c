/*
 * symtab.c - guest symbols (address, size, name) that the perf map names translated
 * code by: kept unsorted while the embedder adds them, sorted once at the first lookup.
 */
#include <stdlib.h>
#include <string.h>

#include "perfmap.h"

bool xbt_symtab_name_ok(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++)
        if ((unsigned char)name[n] < 0x20 || (unsigned char)name[n] > 0x7e ||
            n >= XBT_SYM_NAME_MAX)
            return false;
    return n > 0;
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

bool xbt_symtab_add(struct xbt_symtab *t, uint32_t addr, uint32_t size, const char *name)
{
    size_t len = strlen(name) + 1;
    size_t cap = t->cap;
    if (t->n == UINT32_MAX || t->pool_len + len > UINT32_MAX ||
        !grow((void **)&t->v, &cap, (size_t)t->n + 1, sizeof *t->v) ||
        !grow((void **)&t->pool, &t->pool_cap, t->pool_len + len, 1))
        return false;
    t->cap = (uint32_t)cap;
    memcpy(t->pool + t->pool_len, name, len);
    t->v[t->n] = (struct xbt_gsym){ addr, size, (uint32_t)t->pool_len, t->n };
    t->n++;
    t->pool_len += len;
    t->sorted = false;
    return true;
}

/* By address; at one address the lookup (which walks downwards) must meet sized
   symbols before unsized ones and earlier registrations first, so those sort last. */
static int cmp_sym(const void *pa, const void *pb)
{
    const struct xbt_gsym *a = pa, *b = pb;
    if (a->addr != b->addr)
        return a->addr < b->addr ? -1 : 1;
    if ((a->size != 0) != (b->size != 0))
        return a->size ? 1 : -1;
    return a->seq < b->seq ? 1 : a->seq > b->seq ? -1 : 0;
}

/* How far back from the nearest symbol a lookup looks for one that encloses the
   address (a sized symbol with smaller ones inside it). */
#define ENCLOSING_LOOKBACK 16

void xbt_symtab_settle(struct xbt_symtab *t, uint32_t lin)
{
    if (!t->relocated || lin < t->reloc_text || __atomic_load_n(&t->moved, __ATOMIC_ACQUIRE))
        return;
    uint64_t none = 0, moved = 1ull << 32 | ((lin - t->reloc_text) & ~(t->reloc_align - 1));
    /* The first settle stays, whichever vCPU makes it. */
    __atomic_compare_exchange_n(&t->moved, &none, moved, false, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
}

bool xbt_symtab_moved(const struct xbt_symtab *t, uint32_t *moved)
{
    uint64_t m = t->relocated ? __atomic_load_n(&t->moved, __ATOMIC_ACQUIRE) : 0;
    if (m)
        *moved = (uint32_t)m;
    return m != 0;
}

const char *xbt_symtab_find(struct xbt_symtab *t, uint32_t a, uint32_t *off)
{
    if (!t->n)
        return NULL;
    if (t->relocated && a >= t->reloc_text) {
        /* The kernel's code: at its address minus the move, once known (no name rather
           than a wrong one before, and for what lies between text and its new place). */
        uint32_t moved;
        if (!xbt_symtab_moved(t, &moved) || a - t->reloc_text < moved)
            return NULL;
        a -= moved;
    }
    if (!t->sorted) {
        qsort(t->v, t->n, sizeof *t->v, cmp_sym);
        t->sorted = true;
    }
    uint32_t lo = 0, hi = t->n; /* the first symbol above a */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->v[mid].addr <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    uint32_t near = t->v[lo - 1].addr; /* the next symbol's is above a */
    for (uint32_t j = lo; j-- > 0 && lo - j <= ENCLOSING_LOOKBACK;) {
        const struct xbt_gsym *s = &t->v[j];
        uint32_t d = a - s->addr;
        bool covers;
        if (s->size)
            covers = d < s->size;
        else /* up to the next symbol: only the nearest address can reach a */
            covers = s->addr == near && d < XBT_SYM_UNSIZED_MAX;
        if (covers) {
            *off = d;
            return t->pool + s->name;
        }
    }
    return NULL;
}

void xbt_symtab_free(struct xbt_symtab *t)
{
    free(t->v);
    free(t->pool);
    memset(t, 0, sizeof *t);
}
