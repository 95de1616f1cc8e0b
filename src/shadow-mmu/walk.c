/*
 * walk.c - the guest page walker (see walk.h).  Intel SDM vol. 3, 4.3 (32-bit paging),
 * 4.4 (PAE paging) and 4.6 (access rights); accessed/dirty updates in the order QEMU's
 * TCG uses, so the guest reads back the same bits on both: the directory entry's A bit
 * when the walk passes it to a page table, the last level's A (and D for a write) after
 * the rights check succeeds.
 */
#include "walk.h"

#include "arch.h"

static bool fault(xbt_walk_result *r, const xbt_walk_req *q, bool present)
{
    /* I/D says "fetch" only where the paging mode could refuse a fetch for it: with NX
       (never here) or CR4.SMEP (SDM vol. 3, 4.7), also for a fetch from a page that is
       not present. */
    r->error_code = (present ? XBT_PF_P : 0) | (q->write ? XBT_PF_W : 0) |
                    (q->user ? XBT_PF_U : 0) |
                    (q->fetch && (q->cr4 & XBT_CR4_SMEP) ? XBT_PF_I : 0);
    return false;
}

/* Rights of a translation with combined U/S and R/W `us`, `rw` for this access
   (SDM vol. 3, 4.6.1): SMEP refuses supervisor fetches from a user page, SMAP the
   supervisor data accesses the caller marks (q->smap) to one, writes included
   whatever CR0.WP says. */
static bool allowed(const xbt_walk_req *q, bool us, bool rw)
{
    if (q->user && !us)
        return false;
    if (!q->user && us && q->fetch && (q->cr4 & XBT_CR4_SMEP))
        return false;
    if (!q->user && us && !q->fetch && q->smap && (q->cr4 & XBT_CR4_SMAP))
        return false;
    if (q->write && !rw && (q->user || (q->cr0 & XBT_CR0_WP)))
        return false;
    return true;
}

static bool writable_now(const xbt_walk_req *q, bool us, bool rw)
{
    if (q->user)
        return us && rw;
    return rw || !(q->cr0 & XBT_CR0_WP);
}

static bool rsvd_fault(xbt_walk_result *r, const xbt_walk_req *q)
{
    fault(r, q, true);
    r->error_code |= XBT_PF_RSVD;
    return false;
}

static bool bus(xbt_walk_result *r)
{
    r->bus_error = true;
    return false;
}

static bool read64(xbt_pt_read_fn read, void *opaque, uint64_t gpa, uint64_t *v)
{
    uint32_t lo, hi;
    if (!read(opaque, gpa, &lo) || !read(opaque, gpa + 4, &hi))
        return false;
    *v = (uint64_t)hi << 32 | lo;
    return true;
}

/* The walk passes a directory entry (low half `lo` at `gpa`) on to a page table: its
   accessed bit is set then, as QEMU's TCG does. */
static bool pass_directory(xbt_pt_write_fn write, void *opaque, uint64_t gpa, uint32_t lo,
                           xbt_walk_result *r)
{
    if (!(lo & XBT_PTE_A) && !write(opaque, gpa, lo | XBT_PTE_A))
        return bus(r);
    r->pde = lo | XBT_PTE_A;
    return true;
}

/* The last-level entry of a translation (low half `lo` at `entry_gpa`; combined rights
   `us`, `rw`): the rights checked, then its accessed bit (and dirty bit for a write)
   set, and the result filled for the page of `page_size` bytes at `gpa`. */
static bool leaf(const xbt_walk_req *q, xbt_pt_write_fn write, void *opaque,
                 uint64_t entry_gpa, uint32_t lo, bool us, bool rw, uint64_t gpa,
                 uint32_t page_size, xbt_walk_result *r)
{
    if (!allowed(q, us, rw))
        return fault(r, q, true);
    uint32_t nv = lo | XBT_PTE_A | (q->write ? XBT_PTE_D : 0);
    if (nv != lo && !write(opaque, entry_gpa, nv))
        return bus(r);
    r->gpa = gpa;
    r->page_size = page_size;
    r->user = us;
    r->writable = writable_now(q, us, rw);
    r->global = (lo & XBT_PTE_G) && (q->cr4 & XBT_CR4_PGE);
    r->dirty = nv & XBT_PTE_D;
    r->pte_gpa = entry_gpa;
    r->pte = nv;
    if (page_size > 4096)
        r->pde = nv;
    return true;
}

/*
 * PAE paging (SDM 4.4): a 4-entry page-directory-pointer table at CR3 & ~0x1F, then
 * 512-entry directories and tables of 64-bit entries; 2 MiB pages by PS in a directory
 * entry.  The PDPTEs are read at every walk, as QEMU's TCG does (real CPUs load them at
 * the CR3 write).  MAXPHYADDR is 36 and there is no NX (neither is in the virtual
 * CPUID), so bits 63:36 of every entry are reserved, as are PDPTE bits 1, 2 and 5-8 and
 * bits 20:13 of a 2 MiB entry: set, they fault with RSVD.
 */
#define PAE_ADDR 0x0000000FFFFFF000ull
#define PAE_RSVD_HIGH 0xFFFFFFF000000000ull

static bool walk_pae(const xbt_walk_req *q, xbt_pt_read_fn read, xbt_pt_write_fn write,
                     void *opaque, xbt_walk_result *r)
{
    uint64_t pdpte_gpa = (uint64_t)(q->cr3 & ~0x1Fu) + ((q->lin >> 30) & 3) * 8;
    uint64_t pdpte;
    if (!read64(read, opaque, pdpte_gpa, &pdpte))
        return bus(r);
    if (!(pdpte & XBT_PTE_P))
        return fault(r, q, false);
    if (pdpte & (PAE_RSVD_HIGH | 0x1E6ull))
        return rsvd_fault(r, q);
    uint64_t pde_gpa = (pdpte & PAE_ADDR) + ((q->lin >> 21) & 0x1FF) * 8;
    uint64_t pde;
    if (!read64(read, opaque, pde_gpa, &pde))
        return bus(r);
    if (!(pde & XBT_PTE_P))
        return fault(r, q, false);
    if (pde & PAE_RSVD_HIGH)
        return rsvd_fault(r, q);
    if (pde & XBT_PTE_PS) {
        if (pde & 0x1FE000ull) /* bits 20:13 */
            return rsvd_fault(r, q);
        return leaf(q, write, opaque, pde_gpa, (uint32_t)pde, pde & XBT_PTE_US,
                    pde & XBT_PTE_RW, (pde & 0x0000000FFFE00000ull) + (q->lin & 0x1FFFFFu),
                    2u << 20, r);
    }
    if (!pass_directory(write, opaque, pde_gpa, (uint32_t)pde, r))
        return false;
    uint64_t pte_gpa = (pde & PAE_ADDR) + ((q->lin >> 12) & 0x1FF) * 8;
    uint64_t pte;
    if (!read64(read, opaque, pte_gpa, &pte))
        return bus(r);
    if (!(pte & XBT_PTE_P))
        return fault(r, q, false);
    if (pte & PAE_RSVD_HIGH)
        return rsvd_fault(r, q);
    return leaf(q, write, opaque, pte_gpa, (uint32_t)pte,
                (pde & XBT_PTE_US) && (pte & XBT_PTE_US), (pde & XBT_PTE_RW) && (pte & XBT_PTE_RW),
                (pte & PAE_ADDR) + (q->lin & 0xFFFu), 4096, r);
}

bool xbt_walk(const xbt_walk_req *q, xbt_pt_read_fn read, xbt_pt_write_fn write,
              void *opaque, xbt_walk_result *r)
{
    *r = (xbt_walk_result){ 0 };
    if (!(q->cr0 & XBT_CR0_PG)) {
        r->gpa = q->lin;
        r->page_size = 4096;
        r->writable = r->user = r->dirty = true;
        return true;
    }
    if (q->cr4 & XBT_CR4_PAE)
        return walk_pae(q, read, write, opaque, r);
    uint64_t pde_gpa = (uint64_t)(q->cr3 & ~0xFFFu) + ((q->lin >> 22) << 2);
    uint32_t pde;
    if (!read(opaque, pde_gpa, &pde))
        return bus(r);
    if (!(pde & XBT_PTE_P))
        return fault(r, q, false);

    if ((pde & XBT_PTE_PS) && (q->cr4 & XBT_CR4_PSE)) {
        /* 4 MiB page; bits 20:13 are physical address bits 39:32 (PSE-36), bit 21 is
           reserved. */
        if (pde & (1u << 21))
            return rsvd_fault(r, q);
        return leaf(q, write, opaque, pde_gpa, pde, pde & XBT_PTE_US, pde & XBT_PTE_RW,
                    ((uint64_t)(pde & 0xFFC00000u) | ((uint64_t)((pde >> 13) & 0xFF) << 32)) +
                        (q->lin & 0x3FFFFFu),
                    4u << 20, r);
    }

    if (!pass_directory(write, opaque, pde_gpa, pde, r))
        return false;
    uint64_t pte_gpa = (uint64_t)(pde & ~0xFFFu) + (((q->lin >> 12) & 0x3FFu) << 2);
    uint32_t pte;
    if (!read(opaque, pte_gpa, &pte))
        return bus(r);
    if (!(pte & XBT_PTE_P))
        return fault(r, q, false);
    return leaf(q, write, opaque, pte_gpa, pte, (pde & XBT_PTE_US) && (pte & XBT_PTE_US),
                (pde & XBT_PTE_RW) && (pte & XBT_PTE_RW),
                (uint64_t)(pte & ~0xFFFu) + (q->lin & 0xFFFu), 4096, r);
}
