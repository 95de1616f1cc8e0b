/*
 * vmm.h - the hosted VMM of xbt-run: a multiboot loader and the PC devices a small
 * guest kernel needs (16550 UART, 8254 PIT, 8259 PIC pair, isa-debug-exit, CMOS RTC,
 * port 0x61, the 0x80 delay port, and "nothing here" answers for i8042 and PCI).
 *
 * Threads: the vCPU thread handles port I/O exits and asks for interrupts; a timer
 * thread raises PIT interrupts and kicks the vCPU; an input thread feeds the UART.
 * All device state is under one mutex (struct vmm.lock); every function below that
 * takes a struct vmm * expects the caller to hold it unless it says otherwise.
 */
#ifndef XBT_TOOLS_VMM_H
#define XBT_TOOLS_VMM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xbt/xbt.h"

/* ---- 8259 programmable interrupt controller (master at 0x20, slave at 0xa0) ------- */
struct pic {
    uint8_t irr, isr, imr;
    uint8_t base;          /* vector of IR0 (ICW2) */
    uint8_t icw_step;      /* 0 ready; 2, 3, 4: expecting that ICW */
    uint8_t icw4_needed, single, auto_eoi;
    uint8_t read_isr;      /* OCW3: next read of the command port returns ISR */
    uint8_t line;          /* current level of the 8 input lines (edge detection) */
    uint8_t special_mask, poll;
};

/* ---- 8254 programmable interval timer ---------------------------------------------- */
struct pit_channel {
    uint32_t reload;       /* 1..65536 */
    uint8_t mode;          /* 0..5 */
    uint8_t rw;            /* 1 lsb, 2 msb, 3 lsb then msb */
    uint8_t bcd;
    uint8_t write_lsb_next, read_lsb_next;
    uint8_t write_latch_lsb; /* lsb written, waiting for msb */
    uint8_t latched;       /* count latched */
    uint16_t latch;
    uint8_t status_latched, status;
    bool gate;
    bool armed;            /* counting (a count was written, gate allows) */
    uint64_t start_ns;     /* host time the current count started */
    uint64_t next_irq_ns;  /* channel 0: next output edge; 0 none */
};

struct pit {
    struct pit_channel ch[3];
    uint8_t port61;        /* bit 0 gate 2, bit 1 speaker data */
};

/* ---- 16550 UART --------------------------------------------------------------------- */
#define UART_RX_CAP 4096
struct uart {
    uint16_t base;
    uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
    bool thre_pending;     /* THR-empty interrupt condition (cleared by IIR read/THR write) */
    uint8_t rx[UART_RX_CAP];
    unsigned rx_head, rx_len;
    int out_fd;
};

/* ---- CMOS / RTC --------------------------------------------------------------------- */
struct cmos {
    uint8_t index;
    uint8_t ram[128];
};

struct vmm {
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* signalled when an interrupt line rises or the run must end */
    pthread_cond_t timer_cv; /* signalled when the PIT is reprogrammed */
    xbt_vm *vm;
    xbt_vcpu *cpu;
    struct pic pic[2];
    struct pit pit;
    struct uart com1;
    struct cmos cmos;
    bool exit_requested;
    int exit_status;
    bool stop_timer;
    uint64_t deadline_ns;  /* --timeout: 0 none */
    bool timed_out, interrupted;
    uint8_t unknown_port_seen[65536 / 8];
    uint64_t io_exits, mmio_exits;
    bool trace_io;
};

uint64_t vmm_now_ns(void);

/* pic.c */
void pic_init(struct vmm *m);
void pic_set_irq(struct vmm *m, int irq, int level); /* edge-triggered: a rising edge latches */
void pic_pulse_irq(struct vmm *m, int irq);
int pic_ack(struct vmm *m);                          /* vector to deliver, or -1 */
bool pic_has_pending(struct vmm *m);
uint32_t pic_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val);

/* pit.c */
void pit_init(struct vmm *m);
uint32_t pit_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val);
uint32_t port61_io(struct vmm *m, bool is_in, uint32_t val);
/* Raises IRQ0 for every expired channel-0 period; returns the next deadline (0 none). */
uint64_t pit_poll(struct vmm *m, uint64_t now);

/* uart.c */
void uart_init(struct vmm *m, uint16_t base, int out_fd);
uint32_t uart_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val);
void uart_receive(struct vmm *m, const uint8_t *buf, unsigned n);
void uart_update_irq(struct vmm *m);

/* cmos.c */
void cmos_init(struct vmm *m);
uint32_t cmos_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val);

/* ioport.c: dispatch of one port access (size 1, 2 or 4). */
uint32_t vmm_port_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val);

/* boot_xbt.c: the kernel (multiboot v1 or a Linux bzImage), its modules or initrd and
   the command line loaded into the VM's RAM by the loaders of boot.h, and the vCPU set
   to the entry state.  0, or -1 with one line of text in err. */
struct boot_module {
    const char *path;
    const char *string;    /* the module's command line (its path if not given) */
};
int vmm_boot(xbt_vm *vm, xbt_vcpu *cpu, const char *kernel, const char *cmdline,
             const char *initrd, const struct boot_module *mods, int nmods, char *err,
             size_t errlen);

#endif
