/*
 * testdev.c - QEMU's pc-testdev, which kvm-unit-tests and the guests here use:
 *   0xe0-0xe3  a 32-bit register: an access of n bytes at 0xe0 + k reads or writes its
 *              bytes k .. k+n-1 (bits past the register are dropped)
 *   0xe4       a 4-byte write of a guest physical address "flushes" that page (QEMU
 *              drops KVM's mappings of it; here its translations are dropped)
 *   0xe8-0xeb  the same register, byte by byte (wider accesses split into bytes)
 *   0x2000-0x2017  a write of byte value v at 0x2000 + n sets line n to (v != 0): ISA
 *              IRQ n for n < 16, IOAPIC input n above (wider writes: byte by byte)
 *   0xff000000 64 KiB of MMIO scratch memory that reads back what was written
 * Call with vmm.lock held, but for the scratch memory (testdev_mmio), which keeps no
 * other state: its bytes are read and written with atomic accesses, as RAM is, so that
 * a vCPU's thread serves it without the lock (xbt-run.c on_mmio_sync).
 */
#include <stddef.h>
#include <string.h>

#include "vmm.h"

static uint32_t reg_access(struct testdev *t, unsigned k, unsigned size, bool is_in,
                           uint32_t val)
{
    unsigned sh = 8 * k;
    uint64_t mask = (size >= 4 ? 0xffffffffull : ((1ull << (8 * size)) - 1)) << sh;
    if (is_in)
        return (uint32_t)((t->ioport & mask) >> sh);
    t->ioport = (uint32_t)((t->ioport & ~mask) | (((uint64_t)val << sh) & mask));
    return 0;
}

uint32_t testdev_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val)
{
    struct testdev *t = &m->testdev;
    if (port >= 0xe0 && port <= 0xe3)
        return reg_access(t, port - 0xe0u, size, is_in, val);
    if (port >= 0xe8 && port <= 0xeb) {
        uint32_t v = 0;
        for (unsigned i = 0; i < size && port + i <= 0xeb; i++)
            v |= reg_access(t, port + i - 0xe8u, 1, is_in, val >> (8 * i)) << (8 * i);
        return v;
    }
    if (port == 0xe4 && !is_in && size == 4) {
        uint64_t page = val & ~0xfffu;
        if (page < m->ram_size)
            xbt_vm_invalidate(m->vm, page, 4096);
        return 0;
    }
    /* Wider writes split into bytes, as QEMU's 1-byte-only region does: outl 1 to
       0x200b sets line 11 and clears lines 12-14 (kvm-unit-tests' realmode does that). */
    for (unsigned k = 0; k < size && !is_in; k++)
        if (port + k >= 0x2000 && port + k < 0x2018)
            irq_set(m, port + k - 0x2000, ((val >> (8 * k)) & 0xFF) != 0);
    return 0;
}

/* Accesses are atomic as they are to cached RAM where they fit in one aligned 8-byte
   word of the block (one atomic load, or a compare-exchange of the word for a store);
   an access across two such words is made a byte at a time and may tear between them
   (RAM tears only across a cache line).  The block is 64-byte aligned (vmm.h). */
_Static_assert(offsetof(struct testdev, iomem) % 64 == 0, "the scratch block is aligned");

bool testdev_mmio(struct vmm *m, uint64_t gpa, unsigned size, bool is_write, uint64_t *data)
{
    if (gpa < TESTDEV_IOMEM || gpa + size > TESTDEV_IOMEM + TESTDEV_IOMEM_LEN || size > 8)
        return false;
    uint32_t off = (uint32_t)(gpa - TESTDEV_IOMEM), in = off & 7;
    uint64_t mask = size == 8 ? ~0ull : ((1ull << (8 * size)) - 1);
    if (size == 0) {
        if (!is_write)
            *data = 0;
        return true;
    }
    if (in + size <= 8) {
        uint64_t *w = (uint64_t *)(void *)(m->testdev.iomem + (off - in));
        uint64_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (!is_write) {
            *data = (old >> (8 * in)) & mask;
            return true;
        }
        uint64_t want;
        do
            want = (old & ~(mask << (8 * in))) | ((*data & mask) << (8 * in));
        while (!__atomic_compare_exchange_n(w, &old, want, true, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED));
        return true;
    }
    uint8_t *p = m->testdev.iomem + off;
    uint64_t v = is_write ? *data : 0;
    for (unsigned i = 0; i < size; i++) {
        if (is_write)
            __atomic_store_n(p + i, (uint8_t)(v >> (8 * i)), __ATOMIC_RELAXED);
        else
            v |= (uint64_t)__atomic_load_n(p + i, __ATOMIC_RELAXED) << (8 * i);
    }
    if (!is_write)
        *data = v;
    return true;
}

/* The I/O register and the 64 KiB MMIO window's contents. */
void testdev_state(struct vmm *m, struct vstate *s)
{
    s->dev = "pc-testdev";
    vs_u32(s, &m->testdev.ioport);
    vs_bytes(s, m->testdev.iomem, sizeof m->testdev.iomem);
}
