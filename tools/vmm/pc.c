/*
 * pc.c - the board: the one place that creates the devices, the timers' common poll,
 * and the MMIO map.
 *
 *   0xfec00000  IOAPIC            0xfed00000  HPET
 *   0xfee00000  local APIC (wherever IA32_APIC_BASE puts it; each vCPU sees its own)
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
#include <string.h>

#include "vmm.h"

int pc_init(struct vmm *m, const struct disk_spec *disks, int ndisks, char *err, size_t errlen)
{
    m->ram_size = xbt_vm_ram_size(m->vm);
    if (!m->ncpus) /* an embedder of the devices with one vCPU (the fuzzers) */
        m->ncpus = 1;
    if (!m->cpus[0])
        m->cpus[0] = m->cpu;
    m->start_ns = vmm_now_ns();
    m->ns0 = m->start_ns;
    m->tsc0 = __builtin_ia32_rdtsc();
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

bool pc_mmio(struct vmm *m, unsigned cpu, uint64_t gpa, unsigned size, bool is_write,
             uint64_t *data)
{
    return lapic_mmio(m, cpu, gpa, size, is_write, data) ||
           ioapic_mmio(m, gpa, size, is_write, data) ||
           hpet_mmio(m, gpa, size, is_write, data) || testdev_mmio(m, gpa, size, is_write, data);
}

/* The board's own registers: CRTC, port 0x92, 0xcf9, and its power-on time (the ACPI PM
   timer's zero). */
static void board_state(struct vmm *m, struct vstate *s)
{
    s->dev = "board";
    vs_u8(s, &m->crtc_index);
    vs_bytes(s, m->crtc, sizeof m->crtc);
    vs_u8(s, &m->port92);
    vs_u8(s, &m->rcr);
    vs_time(s, &m->start_ns);
}

#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
static const struct {
    uint32_t tag;
    void (*fn)(struct vmm *m, struct vstate *s);
} devices[] = {
    { TAG('B', 'R', 'D', ' '), board_state },   { TAG('I', 'R', 'Q', 'L'), intr_state },
    { TAG('P', 'I', 'C', ' '), pic_state },     { TAG('P', 'I', 'T', ' '), pit_state },
    { TAG('U', 'A', 'R', 'T'), uart_state },    { TAG('C', 'M', 'O', 'S'), cmos_state },
    { TAG('L', 'A', 'P', 'C'), lapic_state },   { TAG('I', 'O', 'A', 'P'), ioapic_state },
    { TAG('H', 'P', 'E', 'T'), hpet_state },    { TAG('A', 'C', 'P', 'I'), acpi_pm_state },
    { TAG('A', 'T', 'A', ' '), ata_state },     { TAG('F', 'W', 'C', 'F'), fwcfg_state },
    { TAG('T', 'D', 'E', 'V'), testdev_state },
};
#define N_DEVICES (sizeof devices / sizeof devices[0])

bool pc_save_state(struct vmm *m, struct vstate *s)
{
    s->load = false;
    for (size_t i = 0; i < N_DEVICES && !s->err[0]; i++) {
        uint32_t tag = devices[i].tag, len = 0;
        vs_u32(s, &tag);
        size_t at = s->len;
        vs_u32(s, &len);
        devices[i].fn(m, s);
        len = (uint32_t)(s->len - at - 4);
        if (!s->err[0])
            memcpy(s->buf + at, &len, 4);
    }
    return !s->err[0];
}

bool pc_load_state(struct vmm *m, struct vstate *s)
{
    bool seen[N_DEVICES] = { false };
    s->load = true;
    while (s->pos < s->len && !s->err[0]) {
        uint32_t tag, len;
        s->dev = NULL;
        vs_u32(s, &tag);
        vs_u32(s, &len);
        if (s->err[0] || len > s->len - s->pos) {
            vs_check(s, false, "a device section runs past the end");
            break;
        }
        struct vstate d = { .load = true, .buf = s->buf + s->pos, .len = len,
                            .shift_ns = s->shift_ns };
        s->pos += len;
        for (size_t i = 0; i < N_DEVICES; i++) {
            if (devices[i].tag != tag)
                continue; /* a device this xbt-run does not have is skipped */
            vs_check(s, !seen[i], "a device's section twice");
            seen[i] = true;
            devices[i].fn(m, &d);
            vs_check(&d, d.pos == d.len, "its section has bytes left over");
            if (d.err[0])
                snprintf(s->err, sizeof s->err, "%s", d.err);
        }
    }
    for (size_t i = 0; i < N_DEVICES && !s->err[0]; i++)
        vs_check(s, seen[i], "a device's section is missing");
    m->next_timer_ns = 1; /* every timer polled at once */
    return !s->err[0];
}
