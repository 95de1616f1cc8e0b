/*
 * smp.c - what one vCPU asks of another: code pages and their translations across
 * several vCPUs of a VM.
 *
 * Each vCPU has its own translation cache and shadow MMU (its windows).  They share
 * vm->code_prot: per guest physical page, a bit for each vCPU whose cache holds code
 * from it.  A page with any bit set is written through no window of any vCPU, so that
 * every guest write to translated code faults (or, from the VMM's C code, is seen) and
 * can drop the translations first:
 *
 *  - translating (xbt_code_protect): the vCPU sets its bit before it reads the bytes;
 *    every other vCPU without a bit of its own there is asked to write-protect the page
 *    in its windows (a request in its mailbox) and the translator waits for those
 *    running translated code to leave it or carry the request out.  A vCPU that is not
 *    in translated code carries out its requests before it enters translated code again,
 *    so it cannot write through a stale writable mapping meanwhile.
 *  - writing (xbt_code_written): the writer clears the page's bits, drops its own
 *    blocks and asks each other vCPU whose bit was set to drop theirs, and waits
 *    (guest writes) until none of them can still run a translation of the old bytes:
 *    the SDM's cross-modifying-code rule that a processor which synchronizes with the
 *    writer executes the new bytes holds, because the write is made only after every
 *    other vCPU has left translated code once.  Writes the VMM makes through its own
 *    view look again after the write (xbt_code_recheck).  Between the clearing and
 *    the requests a vCPU may find the page without bits while it still holds
 *    translations of it: before it writes the page itself it drops them (code_own,
 *    own_drop below).
 *  - writing beside code (vm->code_chunks, run.c code_marked): which 16-byte chunks
 *    are some vCPU's code, so that a write next to them keeps the translations.
 *
 * A waiting vCPU is not in translated code (it clears its in_tc while it waits and
 * carries out its own requests meanwhile), so two vCPUs waiting for each other make
 * progress.  With one vCPU nothing here costs anything: no bit but its own is ever set.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/vcpu.h"

/* Posts a request to v's mailbox; returns the sequence number it will be done by. */
uint64_t xbt_mbox_post(struct xbt_vcpu *v, uint8_t kind, uint32_t page)
{
    struct xbt_vcpu_mbox *mb = &v->mbox;
    pthread_mutex_lock(&mb->lock);
    if (kind == XBT_MBOX_WP && mb->n >= XBT_MBOX_WP_MAX) {
        /* A vCPU that does not run (an AP waiting for its start-up) collects these:
           past a bound, one "every code page" request stands for them all. */
        mb->wp_all = true;
        uint64_t s = atomic_fetch_add(&mb->seq, 1) + 1;
        pthread_mutex_unlock(&mb->lock);
        return s;
    }
    if (mb->n == mb->cap) {
        uint32_t cap = mb->cap ? mb->cap * 2 : 64;
        struct xbt_mbox_req *r = realloc(mb->req, cap * sizeof *r);
        if (r)
            mb->req = r, mb->cap = cap;
    }
    if (mb->n < mb->cap)
        mb->req[mb->n++] = (struct xbt_mbox_req){ page, kind };
    else
        mb->overflow = true;
    uint64_t s = atomic_fetch_add(&mb->seq, 1) + 1;
    if (kind == XBT_MBOX_INVAL)
        atomic_store(&mb->inval_seq, s);
    pthread_mutex_unlock(&mb->lock);
    return s;
}

/* v's translations of `page` go (with its code_own bit): a drop request carried out,
   the writer's own, or translations that another vCPU's write doomed.

   Ordering rule (issue 16).  xbt_code_written clears every bit of the page first and
   posts the drop requests after, so for a while a vCPU whose bit was cleared still
   holds translations of the old bytes with nothing in its mailbox to say so.  Had it
   written the page then (its window fault finds no bits and maps the page writable; its
   data-beside-code write finds the chunks cleared too) and called what it wrote, it ran
   its own old translation, which the SDM forbids even without synchronization (a store
   followed by the same processor's fetch of the bytes): smp_random's own-function
   misses.  So a vCPU that finds its own bit clear while code_own says it translated
   from the page drops those translations itself before it writes the page or maps it
   writable (xbt_code_own_drop), and before it sets its bit there again
   (xbt_code_protect), which would hide them. */
static void own_drop(struct xbt_vcpu *v, uint32_t page)
{
    xbt_code_own_clear(v->mmu, page);
    xbt_tc_invalidate_page(v->tc, page); /* (the cache logs the drops: run.c forgets them) */
    v->code_page_invals++;
}

bool xbt_mbox_pending(struct xbt_vcpu *v)
{
    return atomic_load(&v->mbox.seq) != atomic_load_explicit(&v->mbox.done, memory_order_relaxed);
}

void xbt_mbox_run(struct xbt_vcpu *v)
{
    struct xbt_vcpu_mbox *mb = &v->mbox;
    pthread_mutex_lock(&mb->lock);
    uint64_t seq = atomic_load(&mb->seq);
    uint32_t n = mb->n;
    bool overflow = mb->overflow, wp_all = mb->wp_all;
    struct xbt_mbox_req *req = mb->req; /* taken whole; the next post makes another */
    mb->req = NULL;
    mb->n = mb->cap = 0;
    mb->overflow = mb->wp_all = false;
    pthread_mutex_unlock(&mb->lock);
    if (wp_all)
        for (uint64_t p = 0; p < XBT_PHYS_PAGES; p++)
            if (v->vm->code_prot[p])
                xbt_smmu_write_protect(v->mmu, p);
    if (overflow) {
        /* Too many at once: everything this vCPU translated goes, and every window
           mapping (the protections asked for are then made at the next faults). */
        xbt_vcpu_flush_translations(v);
        xbt_paging_changed(v);
        mb->n_inval = XBT_MBOX_INVAL_LOG + 1;
    } else {
        for (uint32_t i = 0; i < n; i++) {
            if (req[i].kind == XBT_MBOX_WP) {
                xbt_smmu_write_protect(v->mmu, req[i].page);
                continue;
            }
            own_drop(v, req[i].page);
            if (mb->n_inval < XBT_MBOX_INVAL_LOG)
                mb->inval_page[mb->n_inval] = req[i].page;
            if (mb->n_inval <= XBT_MBOX_INVAL_LOG)
                mb->n_inval++;
            if (!v->vm->code_prot[req[i].page])
                xbt_identity_protect(v->mmu, req[i].page, true); /* paging off */
        }
    }
    free(req);
    atomic_store(&mb->done, seq);
}

/* Waits until each vCPU in `who` (bits) has carried out its requests up to seq[k] or is
   not running translated code.  The waiting vCPU (self, may be NULL) counts as out of
   translated code meanwhile and carries out its own requests. */
static void mbox_wait(xbt_vm *vm, struct xbt_vcpu *self, uint8_t who, const uint64_t *seq)
{
    bool was_in = self && atomic_exchange(&self->mbox.in_tc, false), ran = false;
    for (uint32_t spins = 0; who; spins++) {
        for (uint32_t k = 0; k < XBT_MAX_VCPUS; k++) {
            struct xbt_vcpu *x = vm->vcpus[k];
            if (!(who & (1u << k)))
                continue;
            if (!x || !atomic_load(&x->mbox.in_tc) || atomic_load(&x->mbox.done) >= seq[k])
                who &= (uint8_t)~(1u << k);
            else if (spins % 1024 == 0)
                xbt_vcpu_kick(x); /* leave translated code at the block's end */
        }
        if (self && xbt_mbox_pending(self)) {
            xbt_mbox_run(self);
            ran = true;
        }
        if (who)
            sched_yield();
    }
    if (!was_in)
        return;
    /* Waiting inside a callout: translated code runs on after it, which must not be
       a translation just dropped here.  The callout leaves to the dispatcher as after
       a kick (callouts.c), and requests that came since are done first. */
    atomic_store(&self->mbox.in_tc, true);
    if (xbt_mbox_pending(self)) {
        xbt_mbox_run(self);
        ran = true;
    }
    if (ran)
        atomic_store(&self->kick, true);
    /* A kick meanwhile sent no signal (in_tc was clear: signals.c): what its handler
       would have done outside translated code, done here. */
    if (atomic_load(&self->kick))
        self->ctx.ibl_table = (uint64_t)(uintptr_t)self->ibl_miss;
}

/* 256 bits per page: bit k of word page * 4 + k / 64 for the chunk at 16 * k. */
void xbt_code_chunks_mark(xbt_vm *vm, uint64_t gpa, uint32_t len)
{
    if (!vm->code_chunks || !len || (gpa >> 12) >= XBT_PHYS_PAGES)
        return;
    uint64_t *w = &vm->code_chunks[(gpa >> 12) * 4];
    for (uint32_t c = (gpa & 0xFFF) >> 4; c <= ((gpa & 0xFFF) + len - 1) >> 4 && c < 256; c++)
        if (!(__atomic_load_n(&w[c >> 6], __ATOMIC_RELAXED) & (1ull << (c & 63))))
            __atomic_fetch_or(&w[c >> 6], 1ull << (c & 63), __ATOMIC_SEQ_CST);
}

bool xbt_code_chunks_any(const xbt_vm *vm, uint32_t page, uint32_t off, uint32_t len)
{
    if ((uint64_t)page >= XBT_PHYS_PAGES || !len)
        return false;
    const uint64_t *w = &vm->code_chunks[(uint64_t)page * 4];
    for (uint32_t c = off >> 4; c <= (off + len - 1) >> 4 && c < 256; c++)
        if (__atomic_load_n(&w[c >> 6], __ATOMIC_SEQ_CST) & (1ull << (c & 63)))
            return true;
    return false;
}

void xbt_code_protect(struct xbt_vcpu *v, uint32_t page)
{
    xbt_vm *vm = v->vm;
    bool had = xbt_code_own(v->mmu, page);
    uint8_t old = xbt_protect_code_page(v->mmu, page, v->bit);
    if ((old & v->bit) || vm->n_vcpus < 2)
        return; /* protected when this vCPU's bit was set */
    if (had)
        own_drop(v, page); /* cleared under it: doomed translations, see own_drop */
    /* Every vCPU without a bit of its own there may still map the page writable: an
       earlier protector's request to it may not be done yet (it is in translated
       code), so this one asks and waits too (those with a bit protected themselves). */
    uint64_t seq[XBT_MAX_VCPUS] = { 0 };
    uint8_t who = 0;
    for (uint32_t k = 0; k < XBT_MAX_VCPUS; k++) {
        struct xbt_vcpu *x = vm->vcpus[k];
        if (x && x != v && !(old & (1u << k))) {
            seq[k] = xbt_mbox_post(x, XBT_MBOX_WP, page);
            who |= (uint8_t)(1u << k);
        }
    }
    mbox_wait(vm, v, who, seq);
}

/* A second writer (issue 16, found by the unit test of own_drop's rule): between a
   writer's clearing of a page's bits and its drop requests, another vCPU's write to the
   page finds no bits, so it neither drops nor waits, and a vCPU that synchronizes with
   that write (a flag, CPUID) could still run its doomed translation of the old bytes.
   So a vCPU that maps a page writable without bits first waits for any writer still
   between the two steps (xmc_posting), then until every vCPU in translated code has
   carried out the drop requests posted so far (inval_seq; WP requests are not waited
   for).  With nothing in flight it costs a load per vCPU. */
static void write_drain(struct xbt_vcpu *v)
{
    xbt_vm *vm = v->vm;
    if (vm->n_vcpus < 2)
        return;
    for (uint32_t spins = 1; atomic_load(&vm->xmc_posting); spins++) {
        if (spins % 64) /* a few stores and mailbox locks away, unless preempted */
            __builtin_ia32_pause();
        else
            sched_yield();
    }
    uint64_t seq[XBT_MAX_VCPUS] = { 0 };
    uint8_t who = 0;
    for (uint32_t k = 0; k < XBT_MAX_VCPUS; k++) {
        struct xbt_vcpu *x = vm->vcpus[k];
        if (!x || x == v)
            continue;
        uint64_t s = atomic_load(&x->mbox.inval_seq);
        if (s > atomic_load(&x->mbox.done)) {
            seq[k] = s;
            who |= (uint8_t)(1u << k);
        }
    }
    if (who)
        mbox_wait(vm, v, who, seq);
}

void xbt_code_own_drop(struct xbt_vcpu *v, uint32_t page)
{
    if (xbt_code_own(v->mmu, page) && !(xbt_code_bits(v->mmu, page) & v->bit))
        own_drop(v, page);
}

void (*xbt_test_after_drain)(struct xbt_vcpu *v);

bool xbt_code_before_writable(struct xbt_vcpu *v, uint32_t page)
{
    xbt_code_own_drop(v, page); /* its own doomed code first */
    write_drain(v);             /* then other writers' drops */
    if (xbt_test_after_drain)
        xbt_test_after_drain(v);
    /* The wait carried out this vCPU's own requests too: a translator that set its bit
       on the page since the caller looked had its write-protection done here, and a
       writable mapping made now would undo it.  Requests that come after this look
       stay in the mailbox until the next entry into translated code, which carries
       them out first (tc_enter). */
    if (xbt_code_page(v->mmu, page))
        return false;
    /* A writer that cleared the page's bits after the drain above (found in review: a
       caller that did not look at the bits before, as a soft store's callout): it
       counted itself in xmc_posting before it cleared them, so a second drain sees it
       still posting, or its drop requests posted, and waits for them. */
    write_drain(v);
    return !xbt_code_page(v->mmu, page);
}

void xbt_code_written(xbt_vm *vm, struct xbt_vcpu *self, uint64_t gpa, uint64_t len, bool wait)
{
    uint64_t seq[XBT_MAX_VCPUS] = { 0 };
    uint8_t who = 0;
    /* From before the bits are cleared until the requests are posted, a writer is
       counted: another writer that finds the page without bits waits for it
       (xbt_code_before_writable). */
    atomic_fetch_add(&vm->xmc_posting, 1);
    for (uint64_t p = gpa >> 12; p <= (gpa + len - 1) >> 12 && p < XBT_PHYS_PAGES; p++) {
        /* The writer's own translations go whether or not its bit is still set: another
           writer may have cleared it and not yet asked for the drop (code_own). */
        if (self && xbt_code_own(self->mmu, p))
            own_drop(self, (uint32_t)p);
        if (!vm->code_prot[p])
            continue;
        /* Chunks first: a translator that marks after this either has its bit in
           `bits` below (its block is dropped) or sets it after (its marks stay). */
        if (vm->code_chunks)
            for (int k = 0; k < 4; k++)
                __atomic_store_n(&vm->code_chunks[p * 4 + k], 0, __ATOMIC_SEQ_CST);
        uint8_t bits = __atomic_exchange_n(&vm->code_prot[p], 0, __ATOMIC_SEQ_CST);
        /* Each other vCPU whose bit was set gets its drop request only now: until it
           carries it out it may find the page without bits while it still holds
           translations of it, and must not write the page through them (code_own,
           xbt_code_own_drop). */
        for (uint32_t k = 0; k < XBT_MAX_VCPUS; k++) {
            struct xbt_vcpu *x = vm->vcpus[k];
            if (!(bits & (1u << k)) || !x || x == self)
                continue;
            seq[k] = xbt_mbox_post(x, XBT_MBOX_INVAL, (uint32_t)p);
            who |= (uint8_t)(1u << k);
        }
        if (self && bits)
            xbt_identity_protect(self->mmu, (uint32_t)p, true); /* paging off: the write */
    }
    atomic_fetch_sub(&vm->xmc_posting, 1);
    if (!who)
        return;
    if (wait) {
        mbox_wait(vm, self, who, seq);
        return;
    }
    for (uint32_t k = 0; k < XBT_MAX_VCPUS; k++)
        if (who & (1u << k))
            xbt_vcpu_kick(vm->vcpus[k]);
}
