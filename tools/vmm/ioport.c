/*
 * ioport.c - the port map of the hosted VMM.  Ports nothing claims read as open bus
 * (all ones) and are logged once each; none of them is fatal.  Call with vmm.lock held.
 */
#include <stdio.h>

#include "vmm.h"

static bool known_silent(uint16_t port)
{
    return port == 0x80 ||                    /* POST / delay port */
           (port >= 0xcf8 && port <= 0xcff) || /* PCI configuration: no device */
           port == 0x60 || port == 0x64 ||    /* i8042: no controller */
           port == 0x92 ||                    /* fast A20: always on */
           port == 0x4d0 || port == 0x4d1;    /* ELCR: all edge-triggered */
}

uint32_t vmm_port_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val)
{
    uint32_t ones = size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    if (m->trace_io)
        fprintf(stderr, "xbt-run: %s port %#x size %u %s%#x\n", is_in ? "in " : "out", port,
                size, is_in ? "" : "value ", val);
    if (port >= m->com1.base && port <= m->com1.base + 7)
        return uart_io(m, port, is_in, val);
    switch (port) {
    case 0x20: case 0x21: case 0xa0: case 0xa1:
        return pic_io(m, port, is_in, val);
    case 0x40: case 0x41: case 0x42: case 0x43:
        return pit_io(m, port, is_in, val);
    case 0x61:
        return port61_io(m, is_in, val);
    case 0x70: case 0x71:
        return cmos_io(m, port, is_in, val);
    case 0xf4: case 0xf5: case 0xf6: case 0xf7:
        /* QEMU's isa-debug-exit (iobase 0xf4, iosize 4): exit((value << 1) | 1). */
        if (!is_in && port == 0xf4) {
            m->exit_requested = true;
            m->exit_status = (int)((val << 1) | 1);
            pthread_cond_broadcast(&m->wake);
            return 0;
        }
        return is_in ? ones : 0;
    case 0x92:
        return is_in ? 0x02 : 0;
    case 0x4d0: case 0x4d1:
        return 0;
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
