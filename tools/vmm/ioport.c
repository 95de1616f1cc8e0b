/*
 * ioport.c - the port map of the hosted VMM, and the small port devices: QEMU's
 * isa-debug-exit (0xf4), the reset controls (port 0x92 bit 0, 0xcf9 with RST_CPU, the
 * 8042's pulse-reset command 0xfe at 0x64: each ends the run with EXIT_RESET) and the
 * CRTC index/data pair at 0x3d4/0x3d5 (25 registers that read back, the cursor
 * position among them; no display).  Ports nothing claims read as open bus (all ones)
 * and are logged once each; none of them is fatal.  Call with vmm.lock held.
 */
#include <stdio.h>

#include "vmm.h"

static bool known_silent(uint16_t port)
{
    return port == 0x80 ||                    /* POST / delay port */
           (port >= 0xcf8 && port <= 0xcff) || /* PCI configuration: no device */
           port == 0x60 || port == 0x64;      /* i8042: no controller */
}

static void reset(struct vmm *m, const char *how)
{
    fprintf(stderr, "xbt-run: guest reset (%s)\n", how);
    vmm_request_exit(m, END_RESET, EXIT_RESET);
}

/* The small devices by port; false if the port is none of theirs. */
static bool misc_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t *val)
{
    switch (port) {
    case 0xf4:
        /* QEMU's isa-debug-exit (iobase 0xf4, iosize 4): exit((value << 1) | 1). */
        if (!is_in)
            vmm_request_exit(m, END_DEBUG_EXIT, (int)((*val << 1) | 1));
        *val = is_in ? 0xffffffffu : 0;
        return true;
    case 0xf5: case 0xf6: case 0xf7:
        *val = is_in ? 0xffffffffu : 0;
        return true;
    case 0x92: /* system control port A: bit 1 A20 (always on), bit 0 fast reset */
        if (is_in) {
            *val = m->port92 | 0x02u;
        } else {
            if ((*val & 1) && !(m->port92 & 1))
                reset(m, "port 0x92");
            m->port92 = (uint8_t)(*val & ~0x02u);
        }
        return true;
    case 0xcf9: /* reset control register (a byte; 0xcf8 as a dword is PCI's) */
        if (size != 1)
            return false;
        if (is_in) {
            *val = m->rcr;
        } else {
            m->rcr = (uint8_t)(*val & 0x0a);
            if (*val & 0x04)
                reset(m, "port 0xcf9");
        }
        return true;
    case 0x64:
        if (is_in || (*val & 0xff) != 0xfe)
            return false;
        reset(m, "8042 command 0xfe");
        return true;
    case 0x3d4:
        if (is_in)
            *val = m->crtc_index;
        else
            m->crtc_index = (uint8_t)*val;
        if (size == 2 && !is_in) /* index and data in one word */
            m->crtc[m->crtc_index & 0x1f] = (uint8_t)(*val >> 8);
        return true;
    case 0x3d5:
        if (is_in)
            *val = m->crtc_index < 25 ? m->crtc[m->crtc_index] : 0xff;
        else if (m->crtc_index < 25)
            m->crtc[m->crtc_index] = (uint8_t)*val;
        return true;
    default:
        return false;
    }
}

uint32_t vmm_port_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val)
{
    uint32_t ones = size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    if (m->trace_io)
        fprintf(stderr, "xbt-run: %s port %#x size %u %s%#x\n", is_in ? "in " : "out", port,
                size, is_in ? "" : "value ", val);
    if (port >= m->com1.base && port <= m->com1.base + 7)
        return uart_io(m, port, is_in, val);
    if ((port >= 0x1f0 && port <= 0x1f7) || port == 0x3f6 || (port >= 0x170 && port <= 0x177) ||
        port == 0x376)
        return ata_io(m, port, size, is_in, val) & ones;
    if (port >= PM_BASE && port < PM_BASE + 12)
        return acpi_pm_io(m, port, size, is_in, val);
    if ((port >= 0xe0 && port <= 0xe4) || (port >= 0xe8 && port <= 0xeb) ||
        (port >= 0x2000 && port < 0x2018))
        return testdev_io(m, port, size, is_in, val) & ones;
    uint32_t v = val;
    if (misc_io(m, port, size, is_in, &v))
        return is_in ? v & ones : 0;
    switch (port) {
    case 0x20: case 0x21: case 0xa0: case 0xa1:
        return pic_io(m, port, is_in, val);
    case 0x40: case 0x41: case 0x42: case 0x43:
        return pit_io(m, port, is_in, val);
    case 0x61:
        return port61_io(m, is_in, val);
    case 0x70: case 0x71:
        return cmos_io(m, port, is_in, val);
    case 0x510: case 0x511:
        return fwcfg_io(m, port, size, is_in, val) & ones;
    case 0x4d0: case 0x4d1:
        return elcr_io(m, port, is_in, val);
    default:
        break;
    }
    if (!known_silent(port) && !(m->unknown_port_seen[port >> 3] & (1u << (port & 7)))) {
        m->unknown_port_seen[port >> 3] |= (uint8_t)(1u << (port & 7));
        fprintf(stderr, "xbt-run: unhandled port %#x (%s, size %u): open bus\n", port,
                is_in ? "in" : "out", size);
    }
    return is_in ? ones : 0;
}
