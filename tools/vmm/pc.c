/*
 * pc.c - the board: the one place that creates the devices, the timers' common poll,
 * and the MMIO map.
 *
 *   0xfec00000  IOAPIC            0xfed00000  HPET
 *   0xfee00000  local APIC (wherever IA32_APIC_BASE puts it)
 *   0xff000000  pc-testdev's 64 KiB scratch block
 *
 * Timers: each timed device reports its next deadline from its poll function; the
 * earliest is kept in vmm.next_timer_ns.  The timer thread sleeps until then; the vCPU,
 * when it asks for an interrupt, polls first if that time has passed, so a deadline is
 * seen even if the timer thread has not run yet.  Call with vmm.lock held.
 *
 * Layering: the board, above every device and the interrupt router (whose hooks it has
 * intr_init connect before any device starts), below xbt-run.c only.
 */
#include <stdio.h>

#include "vmm.h"

int pc_init(struct vmm *m, const struct disk_spec *disks, int ndisks, char *err, size_t errlen)
{
    m->ram_size = xbt_vm_ram_size(m->vm);
    m->start_ns = vmm_now_ns();
    intr_init(m); /* first: a device's init may already drive its line (the UART's) */
    pic_init(m);
    pit_init(m);
    uart_init(m, 0x3f8, 1);
    cmos_init(m);
    lapic_init(m);
    ioapic_init(m);
    hpet_init(m);
    acpi_pm_init(m);
    ata_init(m);
    for (int i = 0; i < ndisks; i++) {
        int index = disks[i].index;
        for (int k = 0; index < 0 && k < ATA_DRIVES; k++)
            if (m->ata.drive[k].fd < 0)
                index = k; /* QEMU: a drive without an index takes the first free one */
        if (index < 0) {
            snprintf(err, errlen, "--disk %s: no free index (at most %d disks)",
                     disks[i].path, ATA_DRIVES);
            return -1;
        }
        if (ata_attach(m, index, disks[i].path, disks[i].read_only, err, errlen) != 0)
            return -1;
    }
    firmware_write(m);
    return 0;
}

static uint64_t earliest(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

uint64_t pc_poll(struct vmm *m, uint64_t now)
{
    uint64_t next = pit_poll(m, now);
    next = earliest(next, lapic_poll(m, now));
    next = earliest(next, hpet_poll(m, now));
    next = earliest(next, acpi_pm_poll(m, now));
    next = earliest(next, cmos_poll(m, now));
    m->next_timer_ns = next;
    return next;
}

bool pc_mmio(struct vmm *m, uint64_t gpa, unsigned size, bool is_write, uint64_t *data)
{
    return lapic_mmio(m, gpa, size, is_write, data) || ioapic_mmio(m, gpa, size, is_write, data) ||
           hpet_mmio(m, gpa, size, is_write, data) || testdev_mmio(m, gpa, size, is_write, data);
}
