/*
 * phys.c - guest physical memory slots (phys.h): the host view, the page table, the
 * dirty logs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shadow-mmu/phys.h"

bool xbt_phys_init(xbt_phys *p, const char **why)
{
    memset(p, 0, sizeof *p);
    for (int k = 0; k < XBT_MAX_MEM_SLOTS; k++)
        p->slot[k].fd = -1;
    p->view = mmap(NULL, XBT_PHYS_LIMIT, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p->view == MAP_FAILED) {
        p->view = NULL;
        *why = "cannot reserve 4 GiB of address space for guest physical memory";
        return false;
    }
    p->page = calloc(XBT_PHYS_PAGES, 1);
    if (!p->page) {
        *why = "cannot allocate the guest physical page table";
        return false;
    }
    return true;
}

static void slot_free(xbt_phys *p, struct xbt_slot *s)
{
    if (!s->used)
        return;
    mmap(p->view + s->gpa, s->size, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    memset(p->page + (s->gpa >> 12), 0, s->size >> 12);
    if (s->fd >= 0)
        close(s->fd);
    free(s->dirty);
    *s = (struct xbt_slot){ .fd = -1 };
}

void xbt_phys_destroy(xbt_phys *p)
{
    for (int k = 0; k < XBT_MAX_MEM_SLOTS; k++)
        if (p->view)
            slot_free(p, &p->slot[k]);
    if (p->view)
        munmap(p->view, XBT_PHYS_LIMIT);
    free(p->page);
    p->view = NULL;
    p->page = NULL;
}

xbt_status xbt_phys_check(const xbt_phys *p, const xbt_mem_region *r)
{
    const uint32_t known = XBT_MEM_READONLY | XBT_MEM_LOG_DIRTY;
    if (!r || r->slot >= XBT_MAX_MEM_SLOTS || (r->flags & ~known) || r->pad ||
        ((r->gpa | r->size | r->fd_offset) & 0xFFF) || r->fd < -1)
        return XBT_E_INVAL;
    if (r->size == 0)
        return XBT_OK; /* a deletion (of a slot that may not exist: nothing happens) */
    if (r->gpa >= XBT_PHYS_LIMIT || r->size > XBT_PHYS_LIMIT - r->gpa ||
        (r->fd >= 0 && r->fd_offset > UINT64_MAX - r->size) ||
        (r->fd < 0 && r->fd_offset))
        return XBT_E_INVAL;
    for (int k = 0; k < XBT_MAX_MEM_SLOTS; k++) {
        const struct xbt_slot *s = &p->slot[k];
        if (s->used && (uint32_t)k != r->slot && r->gpa < s->gpa + s->size &&
            s->gpa < r->gpa + r->size)
            return XBT_E_INVAL; /* overlaps another slot */
    }
    if (r->fd >= 0) {
        /* The whole range must be in the file (a mapping past its end would be a
           SIGBUS in the VMM), and the file writable through this descriptor. */
        struct stat st;
        int fl = fcntl(r->fd, F_GETFL);
        if (fl < 0 || fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
            (fl & O_ACCMODE) != O_RDWR || (uint64_t)st.st_size < r->fd_offset + r->size)
            return XBT_E_INVAL;
    }
    return XBT_OK;
}

/* Slot s takes region r: its file, its view, its pages. */
static xbt_status slot_make(xbt_phys *p, struct xbt_slot *s, const xbt_mem_region *r)
{
    int fd = r->fd >= 0 ? fcntl(r->fd, F_DUPFD_CLOEXEC, 3) : memfd_create("xbt-guest-ram",
                                                                          MFD_CLOEXEC);
    if (fd < 0)
        return XBT_E_HOST;
    if (r->fd < 0 && ftruncate(fd, (off_t)r->size) != 0) {
        close(fd);
        return XBT_E_NOMEM;
    }
    uint64_t *dirty = NULL;
    if (r->flags & XBT_MEM_LOG_DIRTY) {
        dirty = calloc(((r->size >> 12) + 63) / 64, 8);
        if (!dirty) {
            close(fd);
            return XBT_E_NOMEM;
        }
    }
    uint8_t *at = p->view + r->gpa;
    if (mmap(at, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
             (off_t)r->fd_offset) != at) {
        mmap(at, r->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
             -1, 0);
        free(dirty);
        close(fd);
        return XBT_E_HOST;
    }
    *s = (struct xbt_slot){ true, r->flags, r->gpa, r->size, fd, r->fd_offset, dirty };
    return XBT_OK;
}

static void slot_pages(xbt_phys *p, const struct xbt_slot *s)
{
    uint8_t k = (uint8_t)((s - p->slot) + 1);
    if (s->flags & XBT_MEM_READONLY)
        k |= XBT_PP_ROM;
    if (s->flags & XBT_MEM_LOG_DIRTY)
        k |= XBT_PP_LOG;
    memset(p->page + (s->gpa >> 12), k, s->size >> 12);
}

xbt_status xbt_phys_set(xbt_phys *p, const xbt_mem_region *r)
{
    xbt_status st = xbt_phys_check(p, r);
    if (st != XBT_OK)
        return st;
    struct xbt_slot *s = &p->slot[r->slot];
    if (s->used && r->size && s->gpa == r->gpa && s->size == r->size && r->fd < 0) {
        /* The flags change, the bytes stay (KVM's flags-only update); a log started
           now starts clean. */
        if ((r->flags & XBT_MEM_LOG_DIRTY) && !s->dirty) {
            s->dirty = calloc(((s->size >> 12) + 63) / 64, 8);
            if (!s->dirty)
                return XBT_E_NOMEM;
        } else if (!(r->flags & XBT_MEM_LOG_DIRTY)) {
            free(s->dirty);
            s->dirty = NULL;
        }
        s->flags = r->flags;
        slot_pages(p, s);
        return XBT_OK;
    }
    slot_free(p, s);
    if (r->size == 0)
        return XBT_OK;
    st = slot_make(p, s, r);
    if (st == XBT_OK)
        slot_pages(p, s);
    return st;
}

xbt_status xbt_phys_take_dirty(xbt_phys *p, uint32_t slot, uint64_t *bitmap,
                               void (*protect)(void *opaque, uint64_t page), void *opaque)
{
    if (slot >= XBT_MAX_MEM_SLOTS || !bitmap)
        return XBT_E_INVAL;
    struct xbt_slot *s = &p->slot[slot];
    if (!s->used || !s->dirty)
        return XBT_E_INVAL;
    uint64_t n = ((s->size >> 12) + 63) / 64;
    for (uint64_t w = 0; w < n; w++) {
        uint64_t bits = s->dirty[w];
        bitmap[w] = bits;
        s->dirty[w] = 0;
        for (; bits; bits &= bits - 1)
            protect(opaque, (s->gpa >> 12) + w * 64 + (uint64_t)__builtin_ctzll(bits));
    }
    return XBT_OK;
}
