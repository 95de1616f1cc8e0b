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

/* An aligned access of 1, 2, 4 or 8 bytes is one atomic access, as it is to RAM; any
   other goes byte by byte (each byte atomic: a split access may tear, as on RAM). */
#define SCRATCH_ACCESS(type)                                                             \
    do {                                                                                  \
        type *q = (type *)(void *)p;                                                     \
        if (is_write)                                                                     \
            __atomic_store_n(q, (type)*data, __ATOMIC_RELAXED);                          \
        else                                                                              \
            *data = __atomic_load_n(q, __ATOMIC_RELAXED);                                \
        return true;                                                                      \
    } while (0)

bool testdev_mmio(struct vmm *m, uint64_t gpa, unsigned size, bool is_write, uint64_t *data)
{
    if (gpa < TESTDEV_IOMEM || gpa + size > TESTDEV_IOMEM + TESTDEV_IOMEM_LEN || size > 8 ||
        size == 0)
        return false;
    uint8_t *p = m->testdev.iomem + (gpa - TESTDEV_IOMEM);
    if (!(gpa & (size - 1))) {
        switch (size) {
        case 1: SCRATCH_ACCESS(uint8_t);
        case 2: SCRATCH_ACCESS(uint16_t);
        case 4: SCRATCH_ACCESS(uint32_t);
        case 8: SCRATCH_ACCESS(uint64_t);
        default: break;
        }
    }
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
