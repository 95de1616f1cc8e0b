/*
 * vmm.h - the hosted VMM of xbt-run: a multiboot and Linux loader and a PC platform
 * (pc.c creates it): 8259 pair, 8254 PIT, local APIC, IOAPIC, HPET, ACPI PM timer and
 * PM1 registers, 16550 UART, CMOS RTC, ATA PIO disks, fw_cfg, CRTC index/data ports,
 * QEMU's isa-debug-exit and pc-testdev, reset ports, and the firmware tables a PC BIOS
 * leaves in memory (BIOS data area, MP table, ACPI tables).
 *
 * Interrupts (intr.c): devices drive ISA IRQ lines 0-15 (irq_set); every line reaches
 * both the 8259 input of the same number and the IOAPIC pin (IRQ0 on pin 2, as the MADT
 * override says); the vCPU takes the local APIC's highest deliverable vector, else the
 * 8259's vector through LINT0 when LINT0 is unmasked ExtINT (virtual wire) or the APIC
 * is globally disabled.
 *
 * Layering: a module calls only modules below it (scripts/check-module-graph.sh finds
 * any circle; ctest tools.module-graph runs it on these objects):
 *
 *   xbt-run.c (boot_xbt.c over loader.c, linux.c, symbols.c, boot.c)   the program
 *   pc.c, ioport.c                                      the board: creation, MMIO, ports
 *   pit, uart, cmos, hpet, acpi_pm, ata, testdev, fwcfg, firmware      the devices
 *   intr.c                                              the interrupt router
 *   ioapic.c over lapic.c; pic.c beside them            the interrupt controllers
 *   events.c, clock.c                                   what every device may use
 *
 * What goes up is a hook, never a call: the interrupt controllers tell the router
 * through struct intr_hooks, which intr_init fills when pc_init creates the board.
 *
 * Threads: each vCPU's thread (--smp N: N of them, vCPU k with local APIC k) handles
 * its port I/O and MMIO exits and asks for its interrupts; a timer thread raises timer
 * interrupts (PIT, local APIC timers, HPET, PM timer) and kicks the vCPUs; an input
 * thread feeds the UART.  All device state is under one mutex (struct vmm.lock), one
 * big lock for every device whichever vCPU touches it: simple and correct first, the
 * accesses are short.  A vCPU thread that waits (HLT, wait-for-SIPI) is woken after the
 * lock is released, and only when there is something for it (events.c).  Every function below that takes a struct vmm * expects the
 * caller to hold it unless it says otherwise; a `cpu` argument is a vCPU index.
 */
#ifndef XBT_TOOLS_VMM_H
#define XBT_TOOLS_VMM_H

#include <pthread.h>
#include <stdatomic.h>
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
    uint8_t elcr;          /* edge/level control: 1 = level-triggered input */
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
    bool irq_level;        /* IRQ8 output (alarm with AIE, latched in register C) */
    int64_t alarm_checked; /* host second last compared against the alarm */
};

/* ---- local APIC (xAPIC, MMIO at APIC_BASE), one per vCPU ------------------------------ */
#define VMM_MAX_CPUS 8
enum { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LVT_N };
struct lapic {
    uint8_t index;         /* its vCPU's index: the APIC ID at power-up */
    uint64_t base_msr;     /* IA32_APIC_BASE as last read from the vCPU */
    uint32_t id, tpr, ldr, dfr, svr;
    uint32_t esr, esr_pending; /* ESR as read; errors since the last ESR write */
    uint32_t icr_lo, icr_hi;
    uint32_t lvt[LVT_N];
    uint32_t irr[8], isr[8], tmr[8];
    uint32_t timer_initial, dcr;
    uint64_t timer_start_ns;  /* host time the current count was loaded; 0 stopped */
    uint64_t timer_next_ns;   /* next expiry to signal; 0 none */
    bool lint0_in;         /* the 8259's INTR output as LINT0 sees it */
    bool extint_req;       /* an IOAPIC ExtINT message: the next INTA goes to the 8259 */
    uint64_t nmis, init_self, ipis_out; /* NMIs taken, INITs to the BSP, IPIs to others */
    /* INIT and start-up (xbt-run.c runs the vCPU accordingly): an INIT arrived and the
       vCPU has not yet stopped for it; the vCPU waits for a start-up IPI (an AP from
       power-on, or after an INIT); the start-up vector latched for it (-1 none). */
    bool init_pending, wait_sipi;
    int sipi_vector;
    /* The read shadow the library serves plain register reads from (lapic.c,
       xbt_vcpu_set_mmio_shadow): the readable registers' values at their offsets, and
       the IA32_APIC_BASE it was last set for. */
    uint64_t shadow_msr;
    uint32_t shadow[1024];
};

/* ---- the interrupt controllers' outputs upward (intr.c connects them) ------------------ */
struct vmm;
struct intr_hooks {
    void (*changed)(struct vmm *m);             /* pic, lapic, ioapic: interrupt state changed */
    void (*pic_int)(struct vmm *m, bool level); /* pic: the master's INT output (LINT0) */
    void (*level_eoi)(struct vmm *m, uint8_t vector); /* lapic: EOI of a TMR vector (IOAPIC) */
};

/* ---- IOAPIC (82093AA-compatible, MMIO at 0xfec00000) ---------------------------------- */
#define IOAPIC_PINS 24
struct ioapic {
    uint32_t id;           /* bits 27:24 of the ID register */
    uint8_t sel;
    uint64_t redir[IOAPIC_PINS];
    uint32_t level;        /* current input level of each pin */
};

/* ---- HPET (MMIO at 0xfed00000) --------------------------------------------------------- */
#define HPET_TIMERS 3
struct hpet_timer {
    uint64_t config, cmp, period;
    uint64_t next_ns;      /* host time of the next comparator match; 0 none */
    bool line;             /* level of its interrupt output (level mode) */
};
struct hpet {
    uint64_t config, isr;
    uint64_t counter_base; /* counter value at base_ns (counting) or frozen value */
    uint64_t base_ns;
    struct hpet_timer t[HPET_TIMERS];
};

/* ---- ACPI PM registers (PIIX4-like at port 0x600) -------------------------------------- */
struct acpi_pm {
    uint16_t sts, en, cnt;
    uint64_t tmr_clear_ns; /* TMR_STS: bit 23 of the PM timer has toggled since */
    bool sci;              /* SCI (IRQ9) level */
    bool suspended;        /* in S3 until a wake event (xbt-run.c, resume_s3) */
};

/* ---- ATA PIO (primary channel 0x1f0-0x1f7, 0x3f6; secondary 0x170-0x177, 0x376) ---- */
#define ATA_DRIVES 4
struct ata_drive {
    int fd;                /* -1: no disk */
    const char *path;
    uint64_t sectors;
    bool read_only;
    uint8_t multiple;      /* sectors per block for READ/WRITE MULTIPLE (0 off) */
};
struct ata_channel {
    uint8_t feature, nsect, lbal, lbam, lbah, select, control;
    uint8_t status[2], error[2]; /* per device */
    bool intrq;            /* interrupt request (the line also needs nIEN clear) */
    uint8_t buf[512 * 16];
    unsigned buf_pos, buf_len;   /* data port transfer within buf */
    unsigned block;        /* sectors in buf */
    bool first_done;       /* a block of the command has been transferred */
    uint32_t xfer_left;    /* sectors still to move for the current command */
    uint64_t lba;          /* next sector of the command */
    uint8_t cmd;           /* command in progress (0 none) */
    int irq;
    uint16_t base, ctl;
};
struct ata {
    struct ata_drive drive[ATA_DRIVES];
    struct ata_channel ch[2];
};

/* ---- QEMU's fw_cfg (selector 0x510, data 0x511) ---------------------------------------- */
struct fwcfg {
    uint16_t sel;
    uint32_t off;
};

/* ---- QEMU's pc-testdev ----------------------------------------------------------------- */
#define TESTDEV_IOMEM 0xff000000ull
#define TESTDEV_IOMEM_LEN 0x10000u
struct testdev {
    uint32_t ioport;       /* 0xe0-0xe3 and, byte-wise, 0xe8-0xeb */
    _Alignas(64) uint8_t iomem[TESTDEV_IOMEM_LEN]; /* aligned: its accesses are atomic */
};

/* Why the run ended, besides the exit status a device asked for. */
enum vmm_end {
    END_NONE, END_DEBUG_EXIT, END_RESET, END_POWEROFF, END_SUSPEND,
};

struct vmm {
    pthread_mutex_t lock;
    /* vCPU k's thread waits (vmm_wait: HLT, wait-for-SIPI, S3) until an interrupt it
       can take, an NMI, an INIT or start-up, or the end of the run: vmm_wake marks it,
       vmm_unlock bumps wake_seq[k] after releasing the lock and wakes its futex. */
    _Atomic uint32_t wake_seq[VMM_MAX_CPUS];
    uint32_t wake_mask;    /* vCPUs to signal at the next vmm_unlock */
    uint32_t halted;       /* vCPUs waiting in HLT (xbt-run.c on_hlt): intr_changed wakes them */
    pthread_cond_t timer_cv; /* signalled when a timer is reprogrammed */
    xbt_vm *vm;
    xbt_vcpu *cpu;         /* vCPU 0, the BSP (cpus[0]) */
    xbt_vcpu *cpus[VMM_MAX_CPUS];
    unsigned ncpus;        /* --smp; pc_init makes 0 one (cpus[0] = cpu) */
    uint64_t ram_size;
    uint64_t start_ns;     /* host time of power-on (PM timer zero) */
    struct pic pic[2];
    struct pit pit;
    struct uart com1;
    struct cmos cmos;
    struct lapic lapic[VMM_MAX_CPUS];
    struct ioapic ioapic;
    struct intr_hooks intr_hooks; /* set by intr_init */
    struct hpet hpet;
    struct acpi_pm pm;
    struct ata ata;
    struct fwcfg fwcfg;
    struct testdev testdev;
    uint8_t crtc_index, crtc[32];
    uint8_t port92, rcr;   /* system control port A; reset control register (0xcf9) */
    uint16_t isa_level;    /* ISA IRQ lines as the devices drive them */
    uint32_t intr_changes; /* intr_changed calls: a handler inside the run compares */
    uint64_t next_timer_ns; /* earliest device deadline (0 none): the vCPU polls then */
    /* Bumped under the lock at every release of it (vmm_unlock, the timer thread's
       wait) and before every kick (vmm_state_changed): device and interrupt state
       change only under the lock, so a vCPU whose last poll found nothing and that
       sees the same number finds nothing again until a deadline passes (xbt-run.c,
       irq_pending). */
    _Atomic uint64_t irq_gen;
    uint64_t tsc0, ns0;     /* the TSC and vmm_now_ns() at start: the TSC's rate (not
                               start_ns, which a restore moves) */
    bool exit_requested;
    bool ending;           /* the VM ends (xbt-run.c): every vCPU stops, end_status stands */
    int end_status;
    /* --gdb, all-stop (xbt-run.c debug_claim): a debug stop parks every vCPU but the one
       gdb steps alone; gdb is told about the first stop since it resumed. */
    atomic_bool dbg_stopping; /* the vCPUs stop and park */
    int dbg_who;           /* the vCPU whose stop gdb is told about (-1: none yet) */
    bool dbg_sigint;       /* that stop was gdb's Ctrl-C */
    xbt_exit dbg_exit;     /* its XBT_EXIT_DEBUG */
    int dbg_step;          /* the vCPU gdb steps alone (-1: none) */
    uint32_t dbg_parked;   /* APs parked for gdb (a bit each) */
    uint64_t dbg_round;    /* gdb's resumes: a parked AP looks again when it changes */
    atomic_bool save_requested; /* SIGUSR1 with --save: the vCPUs stop, the state is saved */
    uint32_t save_parked;  /* vCPUs stopped for the save (a bit each; xbt-run.c on_save) */
    uint64_t save_round;   /* saves done: a parked vCPU runs on when it changes */
    enum vmm_end end;
    int exit_status;
    bool stop_timer;
    uint64_t deadline_ns;  /* --timeout: 0 none */
    bool timed_out, interrupted;
    uint8_t unknown_port_seen[65536 / 8];
    uint64_t io_exits, mmio_exits;
    uint64_t io_sync, mmio_sync; /* answered inside the run (xbt-run.c, on_*_sync) */
    /* Of those MMIO, served without the lock: a count per vCPU, which only that vCPU's
       thread writes (a line each; no locked add on the path it counts). */
    struct {
        uint64_t n;
    } __attribute__((aligned(64))) mmio_sync_free[VMM_MAX_CPUS];
    bool trace_io;
};

/* Exit statuses of xbt-run for ends a device asks for (documented in xbt-run.c). */
enum {
    EXIT_HALTED = 0,       /* HLT with interrupts off, or ACPI power off (S5) */
    EXIT_TRIPLE = 2,
    EXIT_RESET = 4,        /* the guest reset the machine (0x92, 0xcf9, 0x64, INIT to self) */
    EXIT_SUSPEND = 6,      /* ACPI S3: there is no resume */
};

/* clock.c: host monotonic time in ns, the time base of every timed device.  Any thread,
   no lock needed. */
uint64_t vmm_now_ns(void);

/* vstate.c: the one shape of a device's save and restore (xbt-run --save/--restore).
   Each device's X_state(m, s) names every field of its state once with these: saving
   (load false) appends them to buf; restoring reads them back from buf[pos..len) and
   checks them, the first problem kept in err (one line; nothing else is read then).
   Host times go through vs_time.  Devices check what their code relies on (an index,
   a length) with vs_check, which only complains while loading. */
struct vstate {
    bool load;
    uint8_t *buf;
    size_t len, cap, pos;
    int64_t shift_ns;      /* load: added to every host time (vs_time) */
    const char *dev;       /* the device being done, for messages */
    char err[200];
};
void vs_u8(struct vstate *s, uint8_t *v);
void vs_u16(struct vstate *s, uint16_t *v);
void vs_u32(struct vstate *s, uint32_t *v);
void vs_u64(struct vstate *s, uint64_t *v);
void vs_int(struct vstate *s, int *v);
void vs_bool(struct vstate *s, bool *v);
void vs_bytes(struct vstate *s, void *v, size_t n);
void vs_time(struct vstate *s, uint64_t *ns);
void vs_check(struct vstate *s, bool ok, const char *what);

/* events.c: what a device tells the run loop and the timer thread (below every device,
   as clock.c: no device calls back into pc.c or xbt-run.c). */
void vmm_request_exit(struct vmm *m, enum vmm_end why, int status); /* the first stands */
void vmm_timer_changed(struct vmm *m);               /* a device deadline moved */
#define VMM_ALL_CPUS 0xffffffffu
void vmm_wake(struct vmm *m, uint32_t cpus);   /* wake these vCPUs' threads at the unlock */
void vmm_wake_flush(struct vmm *m);            /* ... now (before this thread waits) */
void vmm_unlock(struct vmm *m);                /* unlock vmm.lock, then wake */
/* What a vCPU's interrupt poll found may have changed (vmm.irq_gen; vmm.lock held). */
static inline void vmm_state_changed(struct vmm *m)
{
    /* Only lock holders write it, so a load and a store: no locked add, which was a
       sixth of an IN that xbt-run answers inside the run (2026-12-04). */
    uint64_t g = atomic_load_explicit(&m->irq_gen, memory_order_relaxed);
    atomic_store_explicit(&m->irq_gen, g + 1, memory_order_release);
}
void vmm_wait(struct vmm *m, unsigned cpu);    /* vCPU cpu's thread waits for a wake */

/* intr.c: the interrupt wiring (see the top of this file). */
void intr_init(struct vmm *m);   /* connects the controllers' hooks: before any device */
void irq_set(struct vmm *m, int line, int level); /* ISA lines 0-15; 16-23: IOAPIC only */
void irq_pulse(struct vmm *m, int line);
void gsi_set(struct vmm *m, int gsi, int level);  /* an IOAPIC input alone (HPET routes) */
int intr_ack(struct vmm *m, unsigned cpu);      /* the vector vCPU cpu takes now, or -1 */
bool intr_pending(struct vmm *m, unsigned cpu); /* intr_ack would return a vector */
void intr_changed(struct vmm *m); /* after a device changed interrupt state: wakes HLT */

/* pic.c */
void pic_init(struct vmm *m);
void pic_set_irq(struct vmm *m, int irq, int level); /* edge-triggered: a rising edge latches */
int pic_ack(struct vmm *m);                          /* vector to deliver, or -1 */
bool pic_has_pending(struct vmm *m);
uint32_t pic_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val);
uint32_t elcr_io(struct vmm *m, uint16_t port, bool is_in, uint32_t val); /* 0x4d0/0x4d1 */

/* lapic.c: local APIC `cpu` serves vCPU `cpu`; the 8259's INTR reaches LINT0 of vCPU 0. */
#define LAPIC_DEFAULT_BASE 0xfee00000u
enum { DM_FIXED = 0, DM_LOWEST = 1, DM_SMI = 2, DM_NMI = 4, DM_INIT = 5, DM_STARTUP = 6,
       DM_EXTINT = 7 };
void lapic_init(struct vmm *m);                      /* all m->ncpus of them */
/* A read of the vCPU's own APIC answered on its thread without the device lock (ID,
   version, TPR, LDR, DFR, SVR); false: take the lock and lapic_mmio. */
bool lapic_read_own(struct vmm *m, unsigned cpu, uint64_t gpa, unsigned size, uint64_t *data);
bool lapic_may_claim(struct vmm *m, unsigned cpu, uint64_t gpa);
bool lapic_mmio(struct vmm *m, unsigned cpu, uint64_t gpa, unsigned size, bool is_write,
                uint64_t *data);
void lapic_sync_base(struct vmm *m, unsigned cpu);   /* re-reads IA32_APIC_BASE (its thread) */
void lapic_shadow_attach(struct vmm *m, unsigned cpu); /* (again) its read shadow (its thread) */
bool lapic_hw_enabled(const struct vmm *m, unsigned cpu); /* IA32_APIC_BASE.EN */
void lapic_accept(struct vmm *m, unsigned cpu, uint8_t vector, bool level); /* fixed */
void lapic_nmi(struct vmm *m, unsigned cpu); /* an NMI to the CPU (xbt_vcpu_nmi) */
bool lapic_dest_match(const struct vmm *m, unsigned cpu, uint8_t dest, bool logical);
/* The vCPUs (a bit per index) a message to dest reaches (hardware-enabled APICs). */
uint32_t lapic_dest_mask(const struct vmm *m, uint8_t dest, bool logical);
/* The vCPUs an IPI from vCPU self with these ICR halves reaches (shorthand included). */
uint32_t lapic_icr_targets(const struct vmm *m, unsigned self, uint32_t icr_lo, uint32_t icr_hi);
/* One interrupt message (DM_*) to the vCPUs in targets: lowest priority goes to the
   lowest index of the set; INIT and start-up as the SDM's MP protocol has them. */
void lapic_deliver(struct vmm *m, uint32_t targets, unsigned mode, uint8_t vector, bool level);
int lapic_ack(struct vmm *m, unsigned cpu);          /* highest deliverable vector, or -1 */
bool lapic_has_deliverable(const struct vmm *m, unsigned cpu);
void lapic_extint(struct vmm *m, unsigned cpu);      /* an ExtINT message: INTA to the 8259 */
bool lapic_extint_open(const struct vmm *m, unsigned cpu); /* 8259 INTR reaches the CPU */
void lapic_lint0(struct vmm *m, bool level);         /* the 8259's INTR output changed */
uint64_t lapic_poll(struct vmm *m, uint64_t now);    /* timers; next deadline (0 none) */
/* INIT and start-up, for the vCPU's thread (xbt-run.c): enter wait-for-SIPI (an INIT
   resets the APIC as SDM 10.4.7.3 says), and take a latched start-up vector (-1 none;
   taken, the vCPU leaves wait-for-SIPI). */
void lapic_wait_sipi(struct vmm *m, unsigned cpu);
int lapic_take_sipi(struct vmm *m, unsigned cpu);

/* ioapic.c */
#define IOAPIC_BASE 0xfec00000u
void ioapic_init(struct vmm *m);
void ioapic_set_pin(struct vmm *m, int pin, int level);
void ioapic_eoi(struct vmm *m, uint8_t vector);      /* EOI broadcast from the LAPIC */
bool ioapic_mmio(struct vmm *m, uint64_t gpa, unsigned size, bool is_write, uint64_t *data);

/* hpet.c */
#define HPET_BASE 0xfed00000u
void hpet_init(struct vmm *m);
bool hpet_mmio(struct vmm *m, uint64_t gpa, unsigned size, bool is_write, uint64_t *data);
uint64_t hpet_poll(struct vmm *m, uint64_t now);
bool hpet_legacy(const struct vmm *m);               /* timers 0 and 1 own IRQ0 and IRQ8 */

/* acpi_pm.c: PM1 event and control blocks and the PM timer */
#define PM_BASE 0x600u     /* PM1a_EVT 0x600, PM1a_CNT 0x604, PM_TMR 0x608 */
#define PM_SCI_IRQ 9
void acpi_pm_init(struct vmm *m);
uint32_t acpi_pm_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val);
uint64_t acpi_pm_poll(struct vmm *m, uint64_t now);
void acpi_pm_rtc_event(struct vmm *m);               /* RTC alarm: RTC_STS */

/* firmware.c: what a PC BIOS leaves in memory (BDA, MP table, ACPI tables) */
void firmware_write(struct vmm *m);
/* The FACS's firmware waking vector (the real-mode address S3 resumes at; 0: none). */
uint32_t firmware_waking_vector(struct vmm *m);
/* In S3: true (and the machine marked awake: WAK_STS) once a wake event came, RTC_STS
   with RTC_EN (the only wake source the platform has). */
bool acpi_pm_wake(struct vmm *m);

/* fwcfg.c */
uint32_t fwcfg_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val);

/* ata.c */
int ata_attach(struct vmm *m, int index, const char *path, bool read_only, char *err,
               size_t errlen);
void ata_init(struct vmm *m);                        /* before any ata_attach */
uint32_t ata_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val);
void ata_flush(struct vmm *m);                       /* fsync every disk (exit paths) */
void ata_detach_all(struct vmm *m);

/* testdev.c: QEMU's pc-testdev (ports 0xe0-0xef, 0x2000-0x2017, MMIO 0xff000000) */
uint32_t testdev_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val);
/* The MMIO scratch memory: no lock needed (atomic accesses) */
bool testdev_mmio(struct vmm *m, uint64_t gpa, unsigned size, bool is_write, uint64_t *data);

/* ---- cpu.c: --cpu MODEL[,+FEATURE,-FEATURE...], the CPUID policy ------------------------ */
struct cpu_spec {
    bool set;                        /* anything beyond the library's model */
    uint32_t add[6], remove[6];      /* leaf 1 ECX, EDX; leaf 7.0 EBX, ECX, EDX; 0x80000001 EDX */
};
/* 0, or -1 with a one-line message in err. */
int cpu_parse(const char *arg, struct cpu_spec *s, char *err, size_t n);
/* The policy on vCPU c (nothing without s->set). */
xbt_status cpu_apply(xbt_vcpu *c, const struct cpu_spec *s);

/* pc.c: the board: creates the devices, polls the timers, dispatches MMIO */
struct disk_spec {
    int index;             /* -1: the next free one */
    const char *path;
    bool read_only;
};
/* Creates the devices, attaches the disks, writes the firmware tables.  Returns 0, or
   -1 with a message in err (a disk that cannot be opened). */
int pc_init(struct vmm *m, const struct disk_spec *disks, int ndisks, char *err, size_t errlen);
uint64_t pc_poll(struct vmm *m, uint64_t now);       /* all timers; earliest deadline */
/* An access by vCPU cpu (its own local APIC is the one at the APIC base). */
bool pc_mmio(struct vmm *m, unsigned cpu, uint64_t gpa, unsigned size, bool is_write,
             uint64_t *data);

/* Save and restore (xbt-run --save/--restore): each device's state in vstate.c's shape,
   one function per device file; the board's in pc.c, which frames them as sections
   (u32 tag, u32 length, the fields) and restores them (false: s->err says why, in one
   line).  Call with the vCPU stopped and vmm.lock held. */
void pic_state(struct vmm *m, struct vstate *s);
void pit_state(struct vmm *m, struct vstate *s);
void uart_state(struct vmm *m, struct vstate *s);
void cmos_state(struct vmm *m, struct vstate *s);
void lapic_state(struct vmm *m, struct vstate *s);
void ioapic_state(struct vmm *m, struct vstate *s);
void hpet_state(struct vmm *m, struct vstate *s);
void acpi_pm_state(struct vmm *m, struct vstate *s);
void ata_state(struct vmm *m, struct vstate *s);
void fwcfg_state(struct vmm *m, struct vstate *s);
void testdev_state(struct vmm *m, struct vstate *s);
void intr_state(struct vmm *m, struct vstate *s);
bool pc_save_state(struct vmm *m, struct vstate *s);
bool pc_load_state(struct vmm *m, struct vstate *s);

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
uint64_t cmos_poll(struct vmm *m, uint64_t now);     /* alarm; next check (0 none) */

/* ioport.c: dispatch of one port access (size 1, 2 or 4). */
uint32_t vmm_port_io(struct vmm *m, uint16_t port, unsigned size, bool is_in, uint32_t val);

/* savefile.c: xbt-run's state file (--save, --restore; its format is at the top of the
   file).  vmm_save: the devices, the library's stream and the machine's shape into path
   (through path.tmp, renamed when complete), with the vCPU stopped between runs and
   vmm.lock not held.  vmm_restore_open: the file's header, which says how to make the
   machine (RAM, flags, disks); vmm_restore_finish, once the platform is made from it:
   the library's stream and the devices.  0, or -1 with one line in err. */
struct vmm_saved {
    int fd;
    uint64_t ram_size, saved_ns;
    uint32_t vm_flags;
    unsigned ncpus;        /* vCPUs (version 1 files: one) */
    bool has_cpuid;        /* version 3: each vCPU's CPUID table (cpuid, ncpuid) */
    xbt_cpuid_entry cpuid[VMM_MAX_CPUS][XBT_MAX_CPUID_ENTRIES];
    uint32_t ncpuid[VMM_MAX_CPUS];
    struct disk_spec disks[ATA_DRIVES];
    int ndisks;
    char disk_path[ATA_DRIVES][4096];
};
int vmm_save(struct vmm *m, const char *path, uint32_t vm_flags, char *err, size_t errlen);
int vmm_restore_open(const char *path, struct vmm_saved *sv, char *err, size_t errlen);
int vmm_restore_finish(struct vmm *m, struct vmm_saved *sv, const char *path, char *err,
                       size_t errlen);

/* boot_xbt.c: the kernel (multiboot v1 or a Linux bzImage), its modules or initrd and
   the command line loaded into the VM's RAM by the loaders of boot.h, and the vCPU set
   to the entry state.  0, or -1 with one line of text in err.  *reloc_align (may be
   NULL): a relocatable bzImage's kernel_alignment (KASLR may move it), else 0. */
struct boot_module {
    const char *path;
    const char *string;    /* the module's command line (its path if not given) */
};
int vmm_boot(xbt_vm *vm, xbt_vcpu *cpu, const char *kernel, const char *cmdline,
             const char *initrd, const struct boot_module *mods, int nmods,
             uint32_t *reloc_align, char *err, size_t errlen);

/* A kernel's _text as its symbols give it (xbt_vm_relocated_symbols). */
struct vmm_text {
    bool found;
    uint32_t addr;
};

/* boot_xbt.c: guest code symbols for the perf map (symbols.h) registered with the VM
   (xbt_vm_add_symbol): an ELF file's symbol table or an nm listing (System.map).  With
   elf_only (the kernel), a file that is not ELF or has no symbol table has none (0);
   without, either is an error.  The number registered, or -1 with one line in err.
   *text (text may be NULL) gets the address of a symbol named _text, where there is
   one (the rest of *text is left as it was). */
long vmm_load_symbols(xbt_vm *vm, const char *path, bool elf_only, struct vmm_text *text,
                      char *err, size_t errlen);


/* gdbstub.c: gdb's remote protocol on 127.0.0.1:port (xbt-run --gdb).  It waits for gdb,
   then serves it in all-stop mode, each vCPU a thread (vCPU k is gdb's thread k + 1).
   To continue it calls run(ctx, -1, stop), which runs every vCPU; to step, it sets
   single-step on vCPU k and calls run(ctx, k, stop), which runs vCPU k alone.  run
   returns VMM_DEBUG_STOP once every vCPU has stopped again, *stop saying why: the vCPU
   that met a breakpoint, step or watchpoint (XBT_EXIT_DEBUG: a copy of that exit), or
   gdb's interrupt (Ctrl-C: brk(ctx) was called from another thread, and should stop the
   vCPUs), or the run's exit status when the guest ended.  Returns that status (a host
   error: VMM_GDB_HOST_ERROR). */
#define VMM_DEBUG_STOP (-2)
#define VMM_GDB_HOST_ERROR 70
struct gdb_stop {
    unsigned cpu;          /* the vCPU that stopped */
    bool interrupted;      /* by gdb's Ctrl-C (debug is not meaningful then) */
    xbt_exit debug;        /* its XBT_EXIT_DEBUG */
};
typedef int (*gdb_run_fn)(void *ctx, int step, struct gdb_stop *stop);
typedef void (*gdb_break_fn)(void *ctx);
int gdb_serve(xbt_vcpu *const *cpus, unsigned ncpus, int port, gdb_run_fn run,
              gdb_break_fn brk, void *ctx);

#endif
