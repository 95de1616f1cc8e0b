/*
 * uart.c - a 16550A on COM1 (0x3f8, IRQ 4): transmit to the host terminal, receive
 * from the input thread through a 4 KiB buffer, divisor latch, FIFO control, the
 * modem loopback that drivers probe with, and the interrupt conditions received data
 * and transmitter empty.  Call everything with vmm.lock held.
 */
#include <unistd.h>

#include "vmm.h"

#define IRQ_COM1 4

void uart_init(struct vmm *m, uint16_t base, int out_fd)
{
    m->com1 = (struct uart){ 0 };
    m->com1.base = base;
    m->com1.out_fd = out_fd;
    m->com1.dll = 12; /* 9600 baud, as a BIOS leaves it */
    m->com1.lcr = 0x03;
}

/* The interrupt identification value: 0x01 when nothing is pending. */
static uint8_t iir(const struct uart *u)
{
    uint8_t fifo = (u->fcr & 1) ? 0xc0 : 0;
    if ((u->ier & 0x01) && u->rx_len)
        return fifo | 0x04;
    if ((u->ier & 0x02) && u->thre_pending)
        return fifo | 0x02;
    return fifo | 0x01;
}

void uart_update_irq(struct vmm *m)
{
    irq_set(m, IRQ_COM1, (iir(&m->com1) & 1) == 0);
}

void uart_receive(struct vmm *m, const uint8_t *buf, unsigned n)
{
    struct uart *u = &m->com1;
    for (unsigned i = 0; i < n && u->rx_len < UART_RX_CAP; i++) {
        u->rx[(u->rx_head + u->rx_len) % UART_RX_CAP] = buf[i];
        u->rx_len++;
    }
    uart_update_irq(m);
}

static void transmit(struct uart *u, uint8_t c)
{
    if (u->mcr & 0x10)
        return; /* loopback: nothing leaves the chip */
    ssize_t r = write(u->out_fd, &c, 1);
    (void)r;
}

uint32_t uart_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val)
{
    struct uart *u = &m->com1;
    uint8_t v = (uint8_t)val;
    bool dlab = u->lcr & 0x80;
    uint32_t r = 0;
    switch (port - u->base) {
    case 0:
        if (dlab) {
            if (is_in)
                r = u->dll;
            else
                u->dll = v;
        } else if (is_in) {
            if (u->rx_len) {
                r = u->rx[u->rx_head];
                u->rx_head = (u->rx_head + 1) % UART_RX_CAP;
                u->rx_len--;
            }
        } else {
            transmit(u, v);
            /* The byte leaves at once: the transmitter is empty again. */
            u->thre_pending = true;
        }
        break;
    case 1:
        if (dlab) {
            if (is_in)
                r = u->dlm;
            else
                u->dlm = v;
        } else if (is_in) {
            r = u->ier;
        } else {
            /* Enabling the THRE interrupt while the transmitter is empty raises it. */
            if ((v & 0x02) && !(u->ier & 0x02))
                u->thre_pending = true;
            u->ier = v & 0x0f;
        }
        break;
    case 2:
        if (is_in) {
            r = iir(u);
            if ((r & 0x0f) == 0x02)
                u->thre_pending = false; /* reading IIR clears a reported THRE */
        } else {
            u->fcr = v & 0xc9;
            if (v & 0x02) {
                u->rx_len = 0;
                u->rx_head = 0;
            }
        }
        break;
    case 3:
        if (is_in)
            r = u->lcr;
        else
            u->lcr = v;
        break;
    case 4:
        if (is_in)
            r = u->mcr;
        else
            u->mcr = v & 0x1f;
        break;
    case 5: /* LSR: transmitter always empty; data ready when bytes wait */
        if (is_in)
            r = 0x60u | (u->rx_len ? 1u : 0u);
        break;
    case 6: /* MSR: in loopback the modem outputs come back as inputs */
        if (is_in) {
            if (u->mcr & 0x10)
                r = ((u->mcr & 1) ? 0x20u : 0) | ((u->mcr & 2) ? 0x10u : 0) |
                    ((u->mcr & 4) ? 0x40u : 0) | ((u->mcr & 8) ? 0x80u : 0);
            else
                r = 0xb0; /* DCD, DSR, CTS */
        }
        break;
    case 7:
        if (is_in)
            r = u->scr;
        else
            u->scr = v;
        break;
    }
    uart_update_irq(m);
    return r;
}

/* The registers and the receive buffer (what the terminal typed that the guest has not
   read); the output goes where this xbt-run's goes. */
void uart_state(struct vmm *m, struct vstate *s)
{
    struct uart *u = &m->com1;
    s->dev = "16550";
    uint8_t *f[] = { &u->ier, &u->lcr, &u->mcr, &u->scr, &u->dll, &u->dlm, &u->fcr };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        vs_u8(s, f[i]);
    vs_bool(s, &u->thre_pending);
    uint32_t head = u->rx_head, len = u->rx_len;
    vs_u32(s, &head);
    vs_u32(s, &len);
    vs_check(s, head < UART_RX_CAP && len <= UART_RX_CAP, "the receive buffer is malformed");
    if (s->load && s->err[0])
        return;
    u->rx_head = head, u->rx_len = len;
    vs_bytes(s, u->rx, sizeof u->rx);
}
