/*
 * fwcfg.c - QEMU's firmware configuration device, traditional I/O interface: a 16-bit
 * selector at 0x510 picks an item and rewinds it, each read of 0x511 returns its next
 * byte (0 past the end, and for items that do not exist); data writes are ignored, as
 * on QEMU since 2.4.  No DMA interface (the ID item says so).
 *
 * Items: signature "QEMU", ID 1 (traditional interface), UUID (zero), RAM size,
 * NOGRAPHIC 1, boot CPUs and maximum CPUs --smp's N (kvm-unit-tests counts its CPUs by
 * the boot CPUs item), boot menu 0, the file directory (empty),
 * and x86's IRQ0 override flag 1 (ISA IRQ0 is GSI 2).  Call with vmm.lock held.
 */
#include <string.h>

#include "vmm.h"

enum {
    FW_SIGNATURE = 0x00, FW_ID = 0x01, FW_UUID = 0x02, FW_RAM_SIZE = 0x03,
    FW_NOGRAPHIC = 0x04, FW_NB_CPUS = 0x05, FW_BOOT_MENU = 0x0e, FW_MAX_CPUS = 0x0f,
    FW_FILE_DIR = 0x19, FW_IRQ0_OVERRIDE = 0x8002,
};

/* The bytes of item sel (at most 16 here); returns its length. */
static unsigned item(const struct vmm *m, uint16_t sel, uint8_t out[16])
{
    uint64_t v;
    memset(out, 0, 16);
    switch (sel) {
    case FW_SIGNATURE: memcpy(out, "QEMU", 4); return 4;
    case FW_ID: out[0] = 1; return 4;
    case FW_UUID: return 16;
    case FW_RAM_SIZE: v = m->ram_size; memcpy(out, &v, 8); return 8;
    case FW_NOGRAPHIC: out[0] = 1; return 2;
    case FW_NB_CPUS: out[0] = (uint8_t)m->ncpus; return 2;
    case FW_BOOT_MENU: return 2;
    case FW_MAX_CPUS: out[0] = (uint8_t)m->ncpus; return 2;
    case FW_FILE_DIR: return 4; /* big-endian count: 0 files */
    case FW_IRQ0_OVERRIDE: out[0] = 1; return 4;
    default: return 0;
    }
}

uint32_t fwcfg_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val)
{
    struct fwcfg *f = &m->fwcfg;
    if (port == 0x510) {
        if (!is_in) {
            f->sel = (uint16_t)val;
            f->off = 0;
        }
        return 0;
    }
    if (port != 0x511 || !is_in)
        return 0;
    uint8_t data[16];
    unsigned len = item(m, f->sel, data);
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++, f->off++)
        if (f->off < len)
            v |= (uint32_t)data[f->off] << (8 * i);
    return v;
}

/* The selected item and the position in it. */
void fwcfg_state(struct vmm *m, struct vstate *s)
{
    s->dev = "fw_cfg";
    vs_u16(s, &m->fwcfg.sel);
    vs_u32(s, &m->fwcfg.off);
}
