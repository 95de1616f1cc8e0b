/*
 * xbt-run - the hosted VMM: boots a multiboot v1 kernel or a Linux bzImage under xbt
 * on a PC platform (pc.c: 8259s, PIT, local APIC, IOAPIC, HPET, ACPI PM timer, COM1 on
 * the terminal, RTC, ATA disks, fw_cfg, QEMU's isa-debug-exit and pc-testdev; MP and
 * ACPI tables), so that one guest image runs unchanged here and on qemu-system-i386.
 *
 * --smp N: N vCPUs, each run by its own thread (vCPU 0 on the main thread) with its
 * own local APIC (APIC ID = index); the APs wait for INIT and start-up IPIs, as a BIOS
 * leaves them.  An end on any vCPU (triple fault, reset, power-off, isa-debug-exit,
 * internal error, HLT with interrupts off on vCPU 0) ends the VM: the others are
 * stopped and joined, and the first end's status stands.  --gdb shows them as threads
 * (all-stop: every vCPU stops when one does);
 * --save stops and saves them all (the APs parked, vCPU 0 writes the file).
 *
 *   xbt-run [options] KERNEL.elf
 *
 * Exit status: what the guest wrote to isa-debug-exit as (value << 1) | 1 (as QEMU);
 * 0 when the guest halts for good (HLT with interrupts disabled) or powers off through
 * ACPI (S5); 2 triple fault; 4 the guest reset the machine (port 0x92, 0xcf9, the 8042,
 * an INIT to the CPU); 6 ACPI suspend to RAM with no wake source; 64 usage; 66 the image,
 * a disk or a --symbols file cannot be loaded; 70 internal error (also: the VM cannot
 * be created, e.g. the --perf-map file cannot be opened); 124 --timeout; 130 interrupted.
 *
 * Save and restore: with --save FILE, SIGUSR1 stops the vCPUs at the next instruction
 * boundary, writes the whole machine (savefile.c: the library's vCPU and RAM, every
 * device, the disks' names) to FILE and ends xbt-run with status 0 (the disks synced);
 * with --save-continue the guest runs on after each save instead.
 * --restore FILE makes the same machine (RAM and disks from the file) and continues the
 * guest where it was saved; the options that describe the machine (a kernel, --mem,
 * --append, --initrd, --module, --disk, --symbols, --smp; --cpu too, the file holding
 * the CPUID the guest saw, but for version 2 files) are refused beside it, the ones that
 * say how to run it (--user-mode, --traces, --timeout, --stats, --save, ...) apply.  A
 * file that cannot be restored is one line and status 66.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vmm.h"

enum {
    EXIT_USAGE = 64,
    EXIT_NOIMAGE = 66,
    EXIT_INTERNAL = 70,
    EXIT_TIMEOUT = 124,
    EXIT_SIGINT = 130,
};

/* Option limits: the smallest translation cache that still holds a block with its
   stubs, and a timeout whose deadline in nanoseconds fits 64 bits with room. */
#define TCACHE_MIN 4096.0
#define TIMEOUT_MAX 1e9

static struct vmm the_vmm;
static struct termios saved_tio;
static bool tio_saved;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xbt-run [options] [KERNEL]\n"
            "Without KERNEL: the Linux guest of scripts/linux-guest.sh (build/linux).\n"
            "Boots a multiboot v1 kernel or a Linux bzImage under xbt on a PC platform: COM1 on\n"
            "this terminal, 8259s, PIT, local APIC, IOAPIC, HPET, ACPI PM timer, RTC, ATA disks,\n"
            "fw_cfg, MP and ACPI tables, QEMU's isa-debug-exit (0xf4) and pc-testdev.\n"
            "  -m, --mem MIB          guest RAM in MiB (default 128)\n"
            "  -a, --append STRING    kernel command line (after the kernel's path)\n"
            "      --module 'FILE [STRING]'  a multiboot module (repeatable)\n"
            "      --initrd FILE      initial ramdisk (Linux bzImage kernels)\n"
            "      --disk [index=N,][file=]FILE[,format=raw][,media=disk][,readonly=on]\n"
            "                         a raw disk image (repeatable), as QEMU's -drive: index 0\n"
            "                         primary master, 1 primary slave, 2 and 3 secondary; no\n"
            "                         index: the first free one\n"
            "      --user-mode MODE   adaptive (default), direct or strict\n"
            "      --cpu MODEL[,+FEATURE,-FEATURE...]  the CPUID the guest sees: MODEL\n"
            "                         default (xbt's model) or max (plus SMEP and SMAP);\n"
            "                         FEATURE smep smap sse3 ssse3 sse4.1 sse4.2 pse pae\n"
            "                         sep pge arch-capabilities umip rdpid rdtscp mce mca\n"
            "      --traces           build traces of hot paths (default: chained blocks only)\n"
            "      --no-traces        chained blocks only (the default)\n"
            "      --trace-threshold N  entries of a trace head before its path is recorded\n"
            "                         (default 50)\n"
            "      --trace-profile    --traces, and each trace counts its entries and side\n"
            "                         exits (listed with --stats; costs a little)\n"
            "      --no-chain         every block returns to the dispatcher (debugging)\n"
            "      --tcache MIB       translation cache size (default 64; 4 KiB to 1024 MiB,\n"
            "                         may be fractional)\n"
            "      --smp N            N virtual CPUs, 1 to 8 (default 1): vCPU 0 boots, the\n"
            "                         others wait for INIT and start-up IPIs\n"
            "      --timeout SEC      stop the guest after SEC seconds (exit status 124;\n"
            "                         0 < SEC <= 1e9, may be fractional)\n"
            "      --stats            print exits, callouts and cache figures at the end\n"
            "      --gdb PORT         wait for gdb on 127.0.0.1:PORT (target remote :PORT)\n"
            "                         before the guest runs: registers, memory, break,\n"
            "                         step, continue (user code then runs translated)\n"
            "      --perf-map[=FILE]  name translated code for perf: append START SIZE NAME\n"
            "                         lines (guest EIP and CPL, or guest symbol+offset) to\n"
            "                         FILE (default /tmp/perf-PID.map, where perf report\n"
            "                         looks); an ELF kernel's symbol table names the code\n"
            "      --perf-jitdump     write perf's jitdump, each block's code and name\n"
            "                         (jit-PID.dump in --perf-map FILE's directory, else\n"
            "                         /tmp): `perf record -k mono`, then `perf inject --jit`\n"
            "                         and `perf annotate` show translated code\n"
            "      --symbols FILE     guest symbols for --perf-map: a System.map or other nm\n"
            "                         listing (ADDR [SIZE] TYPE NAME), or an ELF file with a\n"
            "                         symbol table such as a vmlinux (repeatable)\n"
            "      --trace-io         log every port access to stderr\n"
            "      --save FILE        on SIGUSR1: stop the guest, write the whole machine to\n"
            "                         FILE and exit (status 0)\n"
            "      --save-continue    with --save: go on after each save (a later SIGUSR1\n"
            "                         saves again, over FILE)\n"
            "      --restore FILE     continue the machine saved in FILE (no kernel, --mem,\n"
            "                         --append, --initrd, --module, --disk, --symbols,\n"
            "                         --smp or --cpu: the file says how many vCPUs and\n"
            "                         the CPUID the guest saw)\n"
            "      --capabilities     what this host allows (xbt_capabilities): one line\n"
            "                         each, \"name yes\" or \"name no: why\"; then exit\n"
            "  -h, --help, --version\n"
            "Numbers are decimal or 0x-hexadecimal; options with a value (but --module and\n"
            "--symbols) once.\n"
            "Exit status: (value << 1) | 1 for a write of value to port 0xf4; 0 guest halted\n"
            "with interrupts off or powered off (ACPI S5); 2 triple fault; 4 guest reset;\n"
            "6 ACPI suspend (S3); 64 usage; 66 bad image, disk or symbol file; 70 internal\n"
            "error; 124 timeout; 130 interrupted.\n");
}

static void restore_tty(void)
{
    if (tio_saved)
        tcsetattr(0, TCSANOW, &saved_tio);
}

/* The terminal goes to the guest byte by byte, without local echo; ^C still stops. */
static void setup_tty(void)
{
    if (!isatty(0) || tcgetattr(0, &saved_tio) != 0)
        return;
    tio_saved = true;
    struct termios t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_iflag &= ~(tcflag_t)ICRNL;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(0, TCSANOW, &t);
    atexit(restore_tty);
}

/* One vCPU and its thread: vCPU 0 (the BSP) runs on the main thread (under gdb's
   control with --gdb), each AP on a thread of its own (run_guest). */
struct vcpu_ctx {
    struct vmm *m;
    unsigned index;
    xbt_vcpu *cpu;
    double timeout;        /* --timeout's seconds, for its message */
    pthread_t thread;      /* an AP's */
    bool started;          /* an AP's thread was created */
    bool running;          /* an AP restored (--restore) as it ran: no start-up first */
    bool dbg_pending;      /* --gdb: a debug exit met after another vCPU's stop, kept */
    /* irq_pending's last poll that found nothing: vmm.irq_gen after it, and the TSC
       before which no device deadline can pass (UINT64_MAX: none set) */
    uint64_t quiet_gen, quiet_tsc;
    xbt_exit dbg_pend_exit; /* for gdb's next resume (vmm.lock) */
};
static struct vcpu_ctx vcpus[VMM_MAX_CPUS];

/* The vCPU whose thread this is: the handlers inside the run are the VM's (one opaque
   for every vCPU) and are called on the accessing vCPU's thread. */
static _Thread_local unsigned this_cpu;

/* run_loop's status when an INIT stopped an AP: back to wait-for-SIPI. */
#define VCPU_RESTART (-3)

/* Any thread, a signal handler too: every vCPU leaves its run (XBT_EXIT_STOPPED). */
static void stop_all(struct vmm *m)
{
    for (unsigned k = 0; k < m->ncpus; k++)
        xbt_vcpu_stop(m->cpus[k]);
}

/* The VM ends with status, whichever vCPU ends it: the first end stands, every vCPU is
   stopped and every wait ends.  True for the caller whose end it is, who says why (so
   a timeout is told once, not once per vCPU). */
static bool claim_end(struct vmm *m, int status)
{
    pthread_mutex_lock(&m->lock);
    bool first = !m->ending;
    if (first) {
        m->ending = true;
        m->end_status = status;
    }
    vmm_wake(m, VMM_ALL_CPUS);
    vmm_unlock(m);
    stop_all(m);
    return first;
}

/* The TSC at which vmm_now_ns() will be at least `ns`, early rather than late (the rate
   measured since start, less 1% and 20 us for the monotonic clock's slewing and the
   estimate's error); 0 while the rate is not known yet (the first 100 ms). */
static uint64_t tsc_before(const struct vmm *m, uint64_t ns, uint64_t now, uint64_t tsc)
{
    if (now - m->ns0 < 100000000ull || tsc <= m->tsc0)
        return 0;
    double rate = (double)(tsc - m->tsc0) / (double)(now - m->ns0) * 0.99;
    double ahead = ns > now + 20000 ? (double)(ns - now - 20000) * rate : 0;
    return ahead < 1e15 ? tsc + (uint64_t)ahead : tsc;
}

/* The vCPU asks (interrupts enabled), at every dispatch of its run loop: timers whose
   deadline has passed are brought up to the present first, so their interrupt is there
   even if the timer thread has not run yet (on a loaded host it may be late; the guest
   must not see a timer fall behind).  Without the lock when its last poll found nothing,
   no one has released the lock since (vmm.irq_gen: every change of device state is
   made under it) and the TSC says no deadline can have passed: the lock, the clock and
   the acknowledge were a tenth of a demand-paging fault's time in the nano guest. */
static int irq_pending(void *opaque)
{
    struct vcpu_ctx *c = opaque;
    struct vmm *m = c->m;
    if (atomic_load_explicit(&m->irq_gen, memory_order_acquire) == c->quiet_gen &&
        __builtin_ia32_rdtsc() < c->quiet_tsc)
        return -1;
    pthread_mutex_lock(&m->lock);
    uint64_t now = 0;
    if (m->next_timer_ns) {
        now = vmm_now_ns();
        if (now >= m->next_timer_ns)
            pc_poll(m, now);
    }
    int v = intr_ack(m, c->index);
    if (v < 0) {
        /* Quiet until the next release of the lock, ours included (+1), or a deadline. */
        c->quiet_gen = atomic_load_explicit(&m->irq_gen, memory_order_relaxed) + 1;
        c->quiet_tsc = !m->next_timer_ns ? UINT64_MAX
                                         : tsc_before(m, m->next_timer_ns, now,
                                                      __builtin_ia32_rdtsc());
    } else {
        c->quiet_tsc = 0;
    }
    vmm_unlock(m);
    return v;
}

/* Kicks every vCPU but `skip` (-1: none) with an interrupt to take (vmm.lock held);
   whether there was one. */
static bool kick_pending(struct vmm *m, int skip)
{
    bool any = false;
    for (unsigned k = 0; k < m->ncpus; k++) {
        if ((int)k != skip && intr_pending(m, k)) {
            /* Before the kick, not only at the unlock: a vCPU whose gate the kick closes
               may open it again and poll before this thread unlocks; its poll must
               not answer "none" from the old number (irq_pending). */
            vmm_state_changed(m);
            xbt_vcpu_kick(m->cpus[k]);
            any = true;
        }
    }
    return any;
}

/*
 * The timer thread: raises timer interrupts at their deadlines and kicks the vCPUs
 * they are for; while an interrupt stays pending it kicks again every millisecond, so
 * a kick that raced with the vCPU's entry into translated code cannot delay delivery
 * unboundedly.  --timeout's deadline stops every vCPU.
 */
static void *timer_thread(void *arg)
{
    struct vmm *m = arg;
    bool again = false;
    pthread_mutex_lock(&m->lock);
    while (!m->stop_timer) {
        uint64_t now = vmm_now_ns();
        uint64_t next = pc_poll(m, now);
        bool pending = kick_pending(m, -1); /* new, or still not taken */
        if (m->interrupted || atomic_load(&m->save_requested))
            vmm_wake(m, VMM_ALL_CPUS); /* set by a signal handler: end a HLT wait */
        if (m->deadline_ns && now >= m->deadline_ns && !m->timed_out) {
            m->timed_out = true;
            stop_all(m);
            vmm_wake(m, VMM_ALL_CPUS);
        }
        uint64_t until = now + 1000000ull * (pending ? 1 : 50);
        if (next && next < until)
            until = next;
        if (m->deadline_ns && m->deadline_ns < until && !m->timed_out)
            until = m->deadline_ns;
        if (m->wake_mask && !again) {
            /* A timer interrupt for a halted vCPU: woken after the lock (events.c), then
               one more pass, since a deadline moved meanwhile would not reach the wait. */
            vmm_unlock(m);
            pthread_mutex_lock(&m->lock);
            again = true;
            continue;
        }
        again = false;
        /* CLOCK_MONOTONIC deadline for the condition variable (create_platform). */
        struct timespec ts = { (time_t)(until / 1000000000ull), (long)(until % 1000000000ull) };
        vmm_wake_flush(m); /* what the pass after a wake found (rare) */
        vmm_state_changed(m); /* the wait releases the lock */
        pthread_cond_timedwait(&m->timer_cv, &m->lock, &ts);
    }
    vmm_unlock(m);
    return NULL;
}

static void *input_thread(void *arg)
{
    struct vmm *m = arg;
    uint8_t buf[256];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        pthread_mutex_lock(&m->lock);
        uart_receive(m, buf, (unsigned)n);
        kick_pending(m, -1);
        vmm_unlock(m);
    }
}

static void on_sigusr1(int sig)
{
    (void)sig;
    atomic_store(&the_vmm.save_requested, true);
    stop_all(&the_vmm); /* every vCPU parks for the save (on_save) */
}

static void on_sigint(int sig)
{
    (void)sig;
    the_vmm.interrupted = true;
    stop_all(&the_vmm);
}

/* The vCPU's registers (on its thread, between runs); which vCPU when there are more. */
static void dump_state(const struct vcpu_ctx *c)
{
    xbt_regs r;
    xbt_sregs s;
    if (xbt_vcpu_get_regs(c->cpu, &r) != XBT_OK || xbt_vcpu_get_sregs(c->cpu, &s) != XBT_OK)
        return;
    if (c->m->ncpus > 1)
        fprintf(stderr, "  vCPU %u:\n", c->index);
    fprintf(stderr,
            "  eax=%08x ebx=%08x ecx=%08x edx=%08x esi=%08x edi=%08x\n"
            "  ebp=%08x esp=%08x eip=%08x eflags=%08x\n"
            "  cs=%04x ds=%04x es=%04x ss=%04x fs=%04x gs=%04x\n"
            "  cr0=%08x cr2=%08x cr3=%08x cr4=%08x gdt=%08x/%x idt=%08x/%x\n",
            r.eax, r.ebx, r.ecx, r.edx, r.esi, r.edi, r.ebp, r.esp, r.eip, r.eflags,
            s.cs.selector, s.ds.selector, s.es.selector, s.ss.selector, s.fs.selector,
            s.gs.selector, s.cr0, s.cr2, s.cr3, s.cr4, s.gdt.base, s.gdt.limit, s.idt.base,
            s.idt.limit);
}

/* A guest event that ends the VM with status: its message (the first end's only) and
   the vCPU's registers. */
static int guest_end(const struct vcpu_ctx *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int guest_end(const struct vcpu_ctx *c, int status, const char *fmt, ...)
{
    if (!claim_end(c->m, status))
        return status;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    dump_state(c);
    return status;
}

/* Whatever makes every vCPU leave its run: a timeout, a signal, a device's end, the
   VM's end, a save (vmm.lock held, or a glance). */
static bool run_must_end(struct vmm *m)
{
    return m->timed_out || m->interrupted || m->exit_requested || m->ending;
}

static bool run_must_stop(struct vmm *m)
{
    return run_must_end(m) || atomic_load(&m->save_requested);
}

/* --gdb: whether c must stop for gdb (all-stop: every vCPU but the one gdb steps). */
static bool debug_stopping(const struct vcpu_ctx *c)
{
    return atomic_load(&c->m->dbg_stopping) && c->m->dbg_step != (int)c->index;
}

/* A debug exit on c (a breakpoint, step or watchpoint), or gdb's Ctrl-C (ex NULL): the
   first since gdb resumed is the stop gdb is told about, and every other vCPU stops
   (all-stop); one met after another vCPU's is kept for gdb's next resume. */
static void debug_claim(struct vcpu_ctx *c, const xbt_exit *ex)
{
    struct vmm *m = c->m;
    pthread_mutex_lock(&m->lock);
    if (m->dbg_who < 0) {
        m->dbg_who = (int)c->index;
        m->dbg_sigint = !ex;
        if (ex)
            m->dbg_exit = *ex;
    } else if (ex) {
        c->dbg_pending = true;
        c->dbg_pend_exit = *ex;
    }
    atomic_store(&m->dbg_stopping, true);
    vmm_wake(m, VMM_ALL_CPUS); /* HLT waits end */
    vmm_unlock(m);
    for (unsigned k = 0; k < m->ncpus; k++)
        if (k != c->index || !ex)
            xbt_vcpu_stop(m->cpus[k]);
}

/* An AP stopped for gdb parks until gdb resumes every vCPU or steps this one: true to
   run on, false when the VM ended meanwhile. */
static bool debug_park(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    pthread_mutex_lock(&m->lock);
    m->dbg_parked |= 1u << c->index;
    vmm_wake(m, 1u); /* vCPU 0 (gdb) waits for every AP to park */
    uint64_t round = m->dbg_round;
    while (!m->ending && (m->dbg_round == round || debug_stopping(c))) {
        round = m->dbg_round;
        vmm_wait(m, c->index);
    }
    m->dbg_parked &= ~(1u << c->index);
    bool on = !m->ending;
    vmm_unlock(m);
    return on;
}

/*
 * HLT: the vCPU waits (on vmm.wake, no busy loop) for what ends a HLT on it: an
 * interrupt it can take (IF=1), an NMI, an INIT, or the end of the run.  HLT with IF=0
 * on the BSP ends the run (the guest halted for good, as before SMP); on an AP it
 * waits for an NMI or INIT, as a CPU parked with CLI; HLT does (guests park APs so).
 */
static int on_hlt(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    xbt_regs r;
    xbt_vcpu_get_regs(c->cpu, &r);
    bool if_on = r.eflags & 0x200;
    if (!if_on && c->index == 0) {
        if (claim_end(m, EXIT_HALTED))
            fprintf(stderr, "xbt-run: the guest halted with interrupts disabled at "
                            "eip=%08x\n", r.eip);
        return EXIT_HALTED;
    }
    pthread_mutex_lock(&m->lock);
    lapic_sync_base(m, c->index);
    struct lapic *a = &m->lapic[c->index];
    /* An NMI sent before this point is pending in the library; one after it counts. */
    uint64_t nmis = a->nmis;
    xbt_vcpu_events ev;
    bool nmi = xbt_vcpu_get_events(c->cpu, &ev) == XBT_OK && ev.nmi_pending;
    bool s3 = false; /* vCPU 0 and an AP's S3 (suspend_aps) */
    m->halted |= 1u << c->index;
    while (!nmi && !(if_on && intr_pending(m, c->index)) && a->nmis == nmis &&
           !a->init_pending && !run_must_stop(m) && !(s3 = c->index == 0 && m->pm.suspended) &&
           !debug_stopping(c))
        vmm_wait(m, c->index);
    m->halted &= ~(1u << c->index);
    bool stop = run_must_stop(m) || a->init_pending || s3 || debug_stopping(c);
    vmm_unlock(m);
    if (stop)
        xbt_vcpu_stop(c->cpu); /* leave through the STOPPED exit */
    return -1;
}

/* After a device access by vCPU self (vmm.lock held): the vCPUs whose interrupt state
   it changed (an IPI, an IOAPIC message) and that have an interrupt to take are kicked,
   so each takes it after its current instruction.  self only when the access was
   answered inside the run (in_run): after an exit the run looks for itself. */
static void kick_raised(struct vmm *m, unsigned self, uint32_t changes, bool in_run)
{
    if (m->intr_changes != changes)
        kick_pending(m, in_run ? -1 : (int)self);
}

static void on_io(struct vcpu_ctx *c, xbt_exit *ex)
{
    struct vmm *m = c->m;
    pthread_mutex_lock(&m->lock);
    m->io_exits++;
    uint32_t changes = m->intr_changes;
    if (ex->io.count > 1) {
        /* A REP INS/OUTS (XBT_VM_STRING_IO): the port sees each element. */
        for (uint32_t k = 0; k < ex->io.count; k++) {
            uint8_t *e = ex->io.buf + (size_t)k * ex->io.size;
            uint32_t d = 0;
            memcpy(&d, e, ex->io.size);
            d = vmm_port_io(m, ex->io.port, ex->io.size, ex->io.is_in, d);
            if (ex->io.is_in)
                memcpy(e, &d, ex->io.size);
        }
    } else {
        uint32_t v = vmm_port_io(m, ex->io.port, ex->io.size, ex->io.is_in, ex->io.data);
        if (ex->io.is_in)
            ex->io.data = v;
    }
    kick_raised(m, c->index, changes, false);
    vmm_unlock(m);
}

/* A device register access by vCPU cpu (vmm.lock held), its local APIC where its
   IA32_APIC_BASE puts it now: whether a device claimed the address. */
static bool device_mmio(struct vmm *m, unsigned cpu, uint64_t gpa, uint32_t size, bool write,
                        uint64_t *data)
{
    lapic_sync_base(m, cpu);
    return pc_mmio(m, cpu, gpa, size, write, data);
}

static void on_mmio(struct vcpu_ctx *c, xbt_exit *ex)
{
    struct vmm *m = c->m;
    pthread_mutex_lock(&m->lock);
    m->mmio_exits++;
    uint32_t changes = m->intr_changes;
    bool claimed = device_mmio(m, c->index, ex->mmio.gpa, ex->mmio.size, ex->mmio.is_write,
                               &ex->mmio.data);
    kick_raised(m, c->index, changes, false);
    vmm_unlock(m);
    if (!claimed) {
        /* No device: reads see open bus, writes are dropped (logged once). */
        static atomic_bool said;
        if (!atomic_exchange(&said, true)) {
            xbt_regs r = { 0 };
            xbt_sregs sr = { 0 };
            xbt_vcpu_get_regs(c->cpu, &r);
            xbt_vcpu_get_sregs(c->cpu, &sr);
            fprintf(stderr, "xbt-run: MMIO %s at %#llx without a device (cs=%04x eip=%08x): "
                    "open bus\n", ex->mmio.is_write ? "write" : "read",
                    (unsigned long long)ex->mmio.gpa, sr.cs.selector, r.eip);
        }
        if (!ex->mmio.is_write)
            ex->mmio.data = ~0ull;
    }
}

/* The devices' MMIO answered inside the run (xbt_vm_set_mmio_handler): a plain load or
   store of a device register costs no exit (xv6 reads its local APIC's ID millions of
   times a second).  An address no device claims is left to the exit, which says so. */
static int on_mmio_sync(void *opaque, uint64_t gpa, uint32_t size, int is_write,
                        uint64_t *data)
{
    struct vmm *m = opaque;
    if (!is_write && lapic_read_own(m, this_cpu, gpa, size, data))
        return 1; /* its own APIC's ID, TPR ...: no lock (lapic.c) */
    if (gpa >= TESTDEV_IOMEM && !lapic_may_claim(m, this_cpu, gpa) &&
        testdev_mmio(m, gpa, size, is_write, data)) {
        /* pc-testdev's scratch memory, RAM-like: no lock (testdev.c).  Nor the
           IA32_APIC_BASE sync of the locked path: a base the guest changed is taken up
           at the next locked access or HLT, as when it makes no MMIO access at all. */
        uint64_t *n = &m->mmio_sync_free[this_cpu].n;
        __atomic_store_n(n, __atomic_load_n(n, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
        return 1;
    }
    pthread_mutex_lock(&m->lock);
    uint32_t changes = m->intr_changes;
    bool claimed = device_mmio(m, this_cpu, gpa, size, is_write, data);
    if (claimed)
        m->mmio_sync++;
    kick_raised(m, this_cpu, changes, true);
    vmm_unlock(m);
    return claimed;
}

/* Port I/O answered inside the run (xbt_vm_set_pio_handler), but for the ACPI control
   port, whose S3 the run loop must see after the access (it suspends the vCPU). */
static int on_pio_sync(void *opaque, uint16_t port, uint32_t size, int is_in, uint32_t *data)
{
    struct vmm *m = opaque;
    if (port < PM_BASE + 6 && port + size > PM_BASE + 4)
        return 0; /* any access that touches PM1_CNT, a wide one from 0x602 too */
    pthread_mutex_lock(&m->lock);
    m->io_sync++;
    uint32_t changes = m->intr_changes;
    uint32_t v = vmm_port_io(m, port, size, is_in, *data);
    if (is_in)
        *data = v;
    kick_raised(m, this_cpu, changes, true);
    vmm_unlock(m);
    return 1;
}

/* --save: the file, the VM's flags it records, and --save-continue (main sets them). */
static const char *save_path;
static uint32_t save_vm_flags;
static bool save_continue;

/* Whether every AP waits for a start-up IPI or has its bit in `parked` (vmm.lock
   held): what S3 leaves them in (parked 0), or what a save needs (the save's parked
   ones; one that waits for start-up takes none while a save is asked for:
   wait_for_sipi). */
static bool aps_parked(struct vmm *m, uint32_t parked)
{
    for (unsigned k = 1; k < m->ncpus; k++)
        if (!(parked & (1u << k)) && (!m->lapic[k].wait_sipi || m->lapic[k].init_pending))
            return false;
    return true;
}

/* The save's meeting point with several vCPUs: an AP parks until vCPU 0 has saved
   (-1: run on; or the VM's end status); vCPU 0 waits until every AP is parked or waits
   for start-up: -2, save now (or the end status when the VM ends first). */
static int save_barrier(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    pthread_mutex_lock(&m->lock);
    uint64_t round = m->save_round;
    m->save_parked |= 1u << c->index;
    vmm_wake(m, 1u); /* vCPU 0 waits for the APs to park */
    int st = -2;
    if (c->index) {
        while (m->save_round == round && !m->ending)
            vmm_wait(m, c->index);
        m->save_parked &= ~(1u << c->index);
        st = m->ending ? m->end_status : -1;
    } else {
        while (!aps_parked(m, m->save_parked) && !m->ending)
            vmm_wait(m, 0);
        if (m->ending)
            st = m->end_status;
    }
    vmm_unlock(m);
    return st;
}

/* vCPU 0 saved (or failed): the parked APs go on, to the VM's end if it ends. */
static void save_done(struct vmm *m, bool again)
{
    pthread_mutex_lock(&m->lock);
    if (again)
        atomic_store(&m->save_requested, false); /* the next SIGUSR1 saves again */
    m->save_parked &= ~1u;
    m->save_round++;
    vmm_wake(m, VMM_ALL_CPUS);
    vmm_unlock(m);
}

/* SIGUSR1 stopped the vCPUs: the machine into save_path, or -1 to run on (this vCPU is
   in the middle of an exit: the next run completes it, and stops again).  With several
   vCPUs every one parks first (save_barrier); vCPU 0 saves. */
static int on_save(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    xbt_vcpu_events ev;
    if (xbt_vcpu_get_events(c->cpu, &ev) == XBT_OK && ev.exit_pending) {
        xbt_vcpu_stop(c->cpu);
        return -1;
    }
    if (m->ncpus > 1) {
        int st = save_barrier(c);
        if (st != -2)
            return st;
    }
    char err[512];
    if (vmm_save(m, save_path, save_vm_flags, err, sizeof err) != 0) {
        fprintf(stderr, "xbt-run: %s\n", err);
        claim_end(m, EXIT_INTERNAL);
        save_done(m, false);
        return EXIT_INTERNAL;
    }
    fprintf(stderr, "xbt-run: state saved to %s\n", save_path);
    if (!save_continue)
        claim_end(m, 0); /* the APs end with it */
    save_done(m, save_continue);
    return save_continue ? -1 : 0;
}

static int resume_s3(struct vcpu_ctx *c);

/* XBT_EXIT_STOPPED: why, and the status to end with (-1: run on; VCPU_RESTART: an
   INIT for this AP). */
static int on_stopped(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    if (m->exit_requested)
        return m->exit_status;
    if (m->ending)
        return m->end_status; /* another vCPU ended the VM and said why */
    if (save_path && atomic_load(&m->save_requested))
        return on_save(c);
    if (atomic_load(&m->dbg_stopping) && m->dbg_step != (int)c->index)
        return VMM_DEBUG_STOP; /* another vCPU's debug stop, or gdb's Ctrl-C */
    if (m->timed_out) {
        if (claim_end(m, EXIT_TIMEOUT)) {
            fprintf(stderr, "xbt-run: timeout after %g s\n", c->timeout);
            dump_state(c);
        }
        return EXIT_TIMEOUT;
    }
    if (m->interrupted) {
        if (claim_end(m, EXIT_SIGINT))
            fprintf(stderr, "xbt-run: interrupted\n");
        return EXIT_SIGINT;
    }
    if (c->index == 0 && m->pm.suspended)
        return resume_s3(c); /* an AP entered S3 (suspend_aps) */
    pthread_mutex_lock(&m->lock);
    bool init = m->lapic[c->index].init_pending;
    vmm_unlock(m);
    /* Nothing else: the stop of an INIT already taken while the AP waited (stops are
       kept until the next run) */
    return init ? VCPU_RESTART : -1;
}

/* The perf map's names: the kernel's own symbol table when it is an ELF file with one
   (a malformed one costs the names, not the run: it booted), then each --symbols file
   (a malformed one ends the run before it starts).  The number of symbols, or -1 after
   one line. */
static long load_symbols(xbt_vm *vm, const char *kernel, const char *const *files, int nfiles,
                         uint32_t reloc_align)
{
    char err[512];
    long total = 0, n = vmm_load_symbols(vm, kernel, true, NULL, err, sizeof err);
    if (n < 0)
        fprintf(stderr, "xbt-run: note: no guest symbols from the kernel: %s\n", err);
    else
        total += n;
    struct vmm_text text = { false, 0 };
    for (int i = 0; i < nfiles; i++) {
        if ((n = vmm_load_symbols(vm, files[i], false, &text, err, sizeof err)) < 0) {
            fprintf(stderr, "xbt-run: %s\n", err);
            return -1;
        }
        total += n;
    }
    /* A relocatable bzImage (KASLR): the files' addresses are the kernel as linked; the
       library finds where it runs them (xbt_vm_relocated_symbols).  Without _text among
       them nothing says where the kernel's own addresses begin. */
    if (reloc_align && nfiles) {
        if (!text.found)
            fprintf(stderr, "xbt-run: note: %s is relocatable and no --symbols file names "
                    "_text: names are right only with nokaslr\n", kernel);
        else if (xbt_vm_relocated_symbols(vm, text.addr, reloc_align) != XBT_OK) {
            fprintf(stderr, "xbt-run: cannot name a relocatable kernel's code (alignment "
                    "%#x)\n", reloc_align);
            return -1;
        }
    }
    return total;
}

/* A vCPU as it starts in real mode at cs_base:ip (cs = cs_base >> 4), the other
   segments 0, 64 KiB limits, paging off, IF clear, the IVT's IDTR, and with what INIT
   clears cleared: no debug registers, pending events or x87/SSE state, IA32_APIC_BASE
   at its reset value (apic_base).  A BIOS's S3 resume and a start-up IPI both leave a
   CPU so. */
static void real_mode_state(xbt_vcpu *cpu, uint32_t cs_base, uint16_t ip, uint64_t apic_base)
{
    xbt_vcpu_set_events(cpu, &(xbt_vcpu_events){ 0 });
    xbt_fpu f = { .fcw = 0x37f, .mxcsr = 0x1f80, .mxcsr_mask = 0xffff };
    xbt_vcpu_set_fpu(cpu, &f);
    xbt_vcpu_set_msr(cpu, 0x1b, apic_base);
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    memset(s.dr, 0, sizeof s.dr);
    s.dr[6] = 0xffff0ff0, s.dr[7] = 0x400;
    xbt_segment data = { .limit = 0xffff, .type = 3, .s = 1, .present = 1 };
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.cs = data;
    s.cs.type = 0xb;
    s.cs.selector = (uint16_t)(cs_base >> 4);
    s.cs.base = cs_base;
    s.cr0 = 0x10, s.cr2 = 0, s.cr3 = 0, s.cr4 = 0;
    s.idt = (xbt_dtable){ 0, 0x3ff };
    s.gdt = (xbt_dtable){ 0, 0xffff };
    xbt_vcpu_set_sregs(cpu, &s);
    xbt_regs r = { .eip = ip, .eflags = 2 };
    xbt_vcpu_set_regs(cpu, &r);
}

/* S3 with several vCPUs, on the vCPU that wrote SLP_EN: the APs stop as after an INIT
   (a sleeping machine's processors are off; a BIOS resumes the BSP alone, the APs wait
   for start-up), vCPU 0 sleeps and resumes.  An AP that wrote it asks vCPU 0 to (its
   STOPPED exit or HLT sees pm.suspended) and parks itself: VCPU_RESTART.  vCPU 0: -1
   once every AP is parked (or the run ends). */
static int suspend_aps(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    pthread_mutex_lock(&m->lock);
    lapic_deliver(m, ((1u << m->ncpus) - 1) & ~1u, DM_INIT, 0, false);
    if (c->index != 0) {
        vmm_wake(m, 1u); /* vCPU 0 in HLT sees pm.suspended */
        vmm_unlock(m);
        xbt_vcpu_stop(m->cpus[0]);
        return VCPU_RESTART;
    }
    while (!aps_parked(m, 0) && !run_must_stop(m))
        vmm_wait(m, 0); /* wait_for_sipi says when one parks */
    vmm_unlock(m);
    return -1;
}

/* S3 (acpi_pm.c): the vCPU sleeps until the RTC alarm wakes the machine, the interrupt
   controllers and timers come back as after power-on, and the guest resumes at the
   FACS's waking vector (CS:IP = vector >> 4 : vector & 15, the BSP's APIC base) on
   vCPU 0, the APs waiting for start-up (suspend_aps).  Returns -1: run on (a timeout or
   signal while asleep ends the run through the STOPPED exit); VCPU_RESTART on an AP. */
static int resume_s3(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    if (m->ncpus > 1) {
        int st = suspend_aps(c);
        if (st != -1)
            return st;
    }
    pthread_mutex_lock(&m->lock);
    while (!acpi_pm_wake(m) && !m->timed_out && !m->interrupted && !m->exit_requested)
        vmm_wait(m, 0); /* the timer thread polls the RTC */
    bool woke = !m->pm.suspended;
    uint32_t vector = firmware_waking_vector(m);
    if (woke && (vector == 0 || vector >= 0x100000)) {
        /* No real-mode address to resume at: a BIOS boots the machine afresh. */
        fprintf(stderr, "xbt-run: note: S3 resume with waking vector %#x (none, or above "
                        "1 MiB): reset\n", vector);
        vmm_request_exit(m, END_RESET, EXIT_RESET);
        woke = false;
    } else if (woke) {
        real_mode_state(m->cpu, (vector >> 4) << 4, (uint16_t)(vector & 15),
                        LAPIC_DEFAULT_BASE | 0x900); /* enabled, BSP */
        pic_init(m);
        pit_init(m);
        lapic_init(m);
        ioapic_init(m);
    }
    vmm_unlock(m);
    if (!woke)
        xbt_vcpu_stop(m->cpu); /* leave through the STOPPED exit (timeout, signal) */
    return -1;
}

/* Runs the vCPU until the guest or the user ends the run (the exit status), or until an
   INIT stops an AP (VCPU_RESTART) or gdb should see it (VMM_DEBUG_STOP). */
static int run_loop(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    for (;;) {
        xbt_exit *ex;
        if (xbt_vcpu_run(c->cpu, &ex) != XBT_OK)
            return guest_end(c, EXIT_INTERNAL, "xbt-run: xbt_vcpu_run failed\n");
        int status = -1;
        switch (ex->reason) {
        case XBT_EXIT_IO:
            on_io(c, ex);
            if (m->pm.suspended && (status = resume_s3(c)) == VCPU_RESTART)
                return status; /* an AP after S3: it waits for start-up */
            break;
        case XBT_EXIT_MMIO: on_mmio(c, ex); break;
        case XBT_EXIT_HLT: status = on_hlt(c); break;
        case XBT_EXIT_STOPPED:
            if ((status = on_stopped(c)) != -1)
                return status;
            break;
        case XBT_EXIT_DEBUG: /* for gdb (--gdb) */
            debug_claim(c, ex);
            return VMM_DEBUG_STOP;
        case XBT_EXIT_SHUTDOWN:
            return guest_end(c, EXIT_TRIPLE, "xbt-run: guest triple fault (shutdown)\n");
        case XBT_EXIT_INTERNAL_ERROR:
            return guest_end(c, EXIT_INTERNAL, "xbt-run: internal error at eip=%08x: %s\n",
                             ex->internal.eip, ex->internal.message);
        default:
            return guest_end(c, EXIT_INTERNAL, "xbt-run: unexpected exit reason %u\n",
                             ex->reason);
        }
        if (status >= 0)
            return status;
        if (m->exit_requested) /* a device ended the run */
            return m->exit_status;
    }
}

/* An AP waits for INIT and start-up (from power-on, or after an INIT stopped it), then
   starts in real mode at vector << 12 (CS = vector << 8, IP 0).  False: the VM ended
   first. */
static bool wait_for_sipi(struct vcpu_ctx *c)
{
    struct vmm *m = c->m;
    pthread_mutex_lock(&m->lock);
    lapic_wait_sipi(m, c->index);
    vmm_wake(m, 1u); /* parked: vCPU 0 may wait for it (suspend_aps, on_save) */
    int vector = -1;
    /* No start-up taken while a save is asked for: the save counts on it (aps_still). */
    while (!run_must_end(m) &&
           (atomic_load(&m->save_requested) || debug_stopping(c) ||
            (vector = lapic_take_sipi(m, c->index)) < 0))
        vmm_wait(m, c->index);
    vmm_unlock(m);
    if (vector < 0)
        return false;
    real_mode_state(c->cpu, (uint32_t)vector << 12, 0, LAPIC_DEFAULT_BASE | 0x800);
    return true;
}

/* An AP's thread: wait-for-SIPI, run, and again after each INIT, until the VM ends;
   an end it meets first (a triple fault, an internal error) ends the VM. */
static void *ap_thread(void *arg)
{
    struct vcpu_ctx *c = arg;
    this_cpu = c->index;
    int status;
    do {
        if (!c->running && !wait_for_sipi(c))
            return NULL;
        c->running = false; /* a restored AP that was running: once, without start-up */
        while ((status = run_loop(c)) == VMM_DEBUG_STOP)
            if (!debug_park(c))
                return NULL;
    } while (status == VCPU_RESTART);
    claim_end(c->m, status);
    return NULL;
}

/* --disk [index=N,][file=]FILE[,format=raw][,media=disk][,if=ide][,readonly=on|off] */
static bool parse_disk(char *arg, struct disk_spec *d)
{
    *d = (struct disk_spec){ -1, NULL, false };
    for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            d->path = tok;
            continue;
        }
        *eq = 0;
        const char *k = tok, *v = eq + 1;
        char *e;
        if (!strcmp(k, "file")) {
            d->path = v;
        } else if (!strcmp(k, "index")) {
            long n = strtol(v, &e, 0);
            if (*e || n < 0 || n > 3)
                return false;
            d->index = (int)n;
        } else if (!strcmp(k, "readonly")) {
            if (strcmp(v, "on") && strcmp(v, "off"))
                return false;
            d->read_only = !strcmp(v, "on");
        } else if (!(!strcmp(k, "format") && !strcmp(v, "raw")) &&
                   !(!strcmp(k, "media") && !strcmp(v, "disk")) &&
                   !(!strcmp(k, "if") && !strcmp(v, "ide"))) {
            return false;
        }
    }
    return d->path && *d->path;
}

#define MAX_MODULES 16
#define MAX_DISKS 4
#define MAX_SYMBOL_FILES 16
#define PATH_CAP 4096

/* What the command line asks for: parse_options fills it, check_options and
   choose_kernel complete it.  Its strings are argv's or its own (main's is static: an
   early exit leaves nothing allocated behind). */
struct options {
    xbt_vm_config vm;      /* flags, RAM, translation cache, user mode, perf map */
    const char *kernel;
    const char *append;    /* "" when not given */
    const char *initrd;    /* NULL when not given */
    struct boot_module mods[MAX_MODULES];
    int nmods;
    struct disk_spec disks[MAX_DISKS];
    int ndisks;
    const char *symbol_files[MAX_SYMBOL_FILES];
    int nsymbol_files;
    double timeout;        /* seconds; 0 none */
    unsigned ncpus;        /* --smp: vCPUs, 1..VMM_MAX_CPUS */
    struct cpu_spec cpu;   /* --cpu */
    int gdb_port;          /* --gdb: 0 none */
    const char *save_path, *restore_path; /* --save, --restore: NULL none */
    bool save_continue;    /* --save-continue */
    bool stats, trace_io;
    uint32_t seen;         /* the single-valued options given, a bit per S_* */
    bool want_traces, no_traces; /* the trace switches seen */
    char mod_path[MAX_MODULES][PATH_CAP]; /* each module's FILE */
    char def_kernel[PATH_CAP], def_initrd[PATH_CAP]; /* the Linux guest beside the build */
};

/* Each step of main returns GO_ON or the exit status to end with. */
#define GO_ON (-1)

/* ---- options: whatever xbt-run cannot honour is one line and EXIT_USAGE ------------ */

/* --capabilities: the library's XBT_CAP_* answer for this host, for scripts (the
   benchmarks label a user mode the host falls back from). */
static void print_capabilities(void)
{
    static const struct { uint64_t cap; const char *name; } caps[] = {
        { XBT_CAP_USER_STRICT, "user-strict" },   { XBT_CAP_USER_DIRECT, "user-direct" },
        { XBT_CAP_USER_ADAPTIVE, "user-adaptive" }, { XBT_CAP_PAE, "pae" },
        { XBT_CAP_TRACES, "traces" },             { XBT_CAP_TRACE_PROFILE, "trace-profile" },
        { XBT_CAP_STRING_IO, "string-io" },       { XBT_CAP_DEBUG, "debug" },
        { XBT_CAP_POLICY, "policy" },             { XBT_CAP_WATCH, "watch" },
    };
    uint64_t unnamed = xbt_capabilities();
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        unnamed &= ~caps[k].cap;
        const char *why = NULL;
        if (xbt_has(caps[k].cap, &why))
            printf("%s yes\n", caps[k].name);
        else
            printf("%s no: %s\n", caps[k].name, why ? why : "(no reason given)");
    }
    for (int bit = 0; bit < 64; bit++) /* a bit the library has and this list has not */
        if (unnamed & (1ull << bit))
            printf("unnamed-bit-%d yes\n", bit);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* one line, whatever the argument holds */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "xbt-run: %s (xbt-run --help lists the options)\n", msg);
    return EXIT_USAGE;
}

/* An unsigned integer in decimal, or in hexadecimal after 0x: no sign, no space, no
   trailing text, at most max. */
static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            return false;
        if (d > max || v > (max - d) / base) /* d > max: max - d would wrap */
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

/* A finite decimal number (digits, a point, an exponent): no inf, nan, hexadecimal,
   sign or space. */
static bool parse_real(const char *s, double *out)
{
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.') ||
        strspn(s, "0123456789.eE+-") != strlen(s))
        return false;
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (*e || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* Single-valued options given twice make no sense: the second is refused. */
static int once(uint32_t *seen, int bit, const char *name)
{
    if (*seen & (1u << bit))
        return usage_error("%s given twice", name);
    *seen |= 1u << bit;
    return 0;
}

/* --module 'FILE [ARGS]': as GRUB and QEMU do, the module's string is the whole
   argument; the file is the string up to its first space. */
static int add_module(struct options *o, const char *arg)
{
    if (o->nmods == MAX_MODULES)
        return usage_error("at most %d modules", MAX_MODULES);
    if (!*arg || *arg == ' ')
        return usage_error("--module wants 'FILE [ARGS]', not '%s'", arg);
    size_t plen = strcspn(arg, " ");
    if (plen >= sizeof o->mod_path[0])
        return usage_error("--module: the file name is longer than %zu bytes",
                           sizeof o->mod_path[0] - 1);
    memcpy(o->mod_path[o->nmods], arg, plen);
    o->mod_path[o->nmods][plen] = 0;
    o->mods[o->nmods].string = arg;
    o->mods[o->nmods].path = o->mod_path[o->nmods];
    o->nmods++;
    return GO_ON;
}

static int set_user_mode(struct options *o, const char *arg)
{
    if (!strcmp(arg, "direct"))
        o->vm.user_mode = XBT_USER_DIRECT;
    else if (!strcmp(arg, "strict"))
        o->vm.user_mode = XBT_USER_STRICT;
    else if (!strcmp(arg, "adaptive"))
        o->vm.user_mode = XBT_USER_ADAPTIVE;
    else
        return usage_error("--user-mode is direct, strict or adaptive, not '%s'", arg);
    return GO_ON;
}

/* Single-valued options: their bits in options.seen. */
enum { S_MEM, S_APPEND, S_INITRD, S_USER, S_TCACHE, S_TIMEOUT, S_THOT, S_PERFMAP, S_GDB,
       S_SAVE, S_RESTORE, S_SMP, S_CPU, S_JITDUMP };

enum { O_MODULE = 256, O_INITRD, O_DISK, O_USER, O_NOTRACE, O_TRACE, O_NOCHAIN, O_TCACHE,
       O_TIMEOUT, O_STATS, O_TRACEIO, O_VERSION, O_CAPS, O_TPROF, O_THOT, O_PERFMAP, O_SYMBOLS,
       O_GDB, O_SAVE, O_RESTORE, O_SAVECONT, O_SMP, O_CPU, O_JITDUMP };
static const struct option long_options[] = {
    { "mem", required_argument, 0, 'm' },           { "append", required_argument, 0, 'a' },
    { "module", required_argument, 0, O_MODULE },   { "initrd", required_argument, 0, O_INITRD },
    { "disk", required_argument, 0, O_DISK },       { "user-mode", required_argument, 0, O_USER },
    { "no-traces", no_argument, 0, O_NOTRACE },     { "traces", no_argument, 0, O_TRACE },
    { "trace-profile", no_argument, 0, O_TPROF },
    { "trace-threshold", required_argument, 0, O_THOT },
    { "no-chain", no_argument, 0, O_NOCHAIN },      { "tcache", required_argument, 0, O_TCACHE },
    { "timeout", required_argument, 0, O_TIMEOUT }, { "stats", no_argument, 0, O_STATS },
    { "trace-io", no_argument, 0, O_TRACEIO },
    { "perf-map", optional_argument, 0, O_PERFMAP },
    { "perf-jitdump", no_argument, 0, O_JITDUMP },
    { "symbols", required_argument, 0, O_SYMBOLS }, { "gdb", required_argument, 0, O_GDB },
    { "save", required_argument, 0, O_SAVE },     { "restore", required_argument, 0, O_RESTORE },
    { "save-continue", no_argument, 0, O_SAVECONT }, { "smp", required_argument, 0, O_SMP },
    { "cpu", required_argument, 0, O_CPU },
    { "help", no_argument, 0, 'h' },                { "version", no_argument, 0, O_VERSION },
    { "capabilities", no_argument, 0, O_CAPS },
    { 0, 0, 0, 0 },
};

/* One option c (getopt_long's return) with its argument arg. */
static int parse_option(struct options *o, int c, char *arg, char **argv)
{
    uint64_t u;
    double v;
    switch (c) {
    case 'm':
        if (once(&o->seen, S_MEM, "--mem"))
            return EXIT_USAGE;
        if (!parse_uint(arg, 3072, &u) || u < 2)
            return usage_error("--mem wants 2..3072 (MiB), not '%s'", arg);
        o->vm.ram_size = u << 20;
        return GO_ON;
    case O_DISK:
        if (o->ndisks == MAX_DISKS || !parse_disk(arg, &o->disks[o->ndisks]))
            return usage_error("--disk wants [index=0-3,][file=]FILE[,format=raw]"
                               "[,media=disk][,readonly=on] (at most %d disks)", MAX_DISKS);
        o->ndisks++;
        return GO_ON;
    case 'a':
        if (once(&o->seen, S_APPEND, "--append"))
            return EXIT_USAGE;
        o->append = arg;
        return GO_ON;
    case O_INITRD:
        if (once(&o->seen, S_INITRD, "--initrd"))
            return EXIT_USAGE;
        if (!*arg)
            return usage_error("--initrd wants a file name");
        o->initrd = arg;
        return GO_ON;
    case O_MODULE: return add_module(o, arg);
    case O_USER:
        if (once(&o->seen, S_USER, "--user-mode"))
            return EXIT_USAGE;
        return set_user_mode(o, arg);
    case O_NOTRACE: o->no_traces = true; return GO_ON; /* the default: nothing to ask for */
    case O_TRACE:
        o->want_traces = true;
        o->vm.flags |= XBT_VM_TRACES;
        return GO_ON;
    case O_TPROF:
        o->want_traces = true;
        o->vm.flags |= XBT_VM_TRACES | XBT_VM_TRACE_PROFILE;
        return GO_ON;
    case O_THOT:
        if (once(&o->seen, S_THOT, "--trace-threshold"))
            return EXIT_USAGE;
        if (!parse_uint(arg, UINT32_MAX, &u) || u == 0)
            return usage_error("--trace-threshold wants 1..%u entries, not '%s'", UINT32_MAX,
                               arg);
        o->vm.trace_threshold = (uint32_t)u;
        return GO_ON;
    case O_NOCHAIN: o->vm.flags |= XBT_VM_NO_CHAIN; return GO_ON;
    case O_TCACHE:
        if (once(&o->seen, S_TCACHE, "--tcache"))
            return EXIT_USAGE;
        if (!parse_real(arg, &v) || v * 1048576.0 < TCACHE_MIN || v > 1024)
            return usage_error("--tcache wants a size in MiB from %g to 1024 (may be "
                               "fractional), not '%s'", TCACHE_MIN / 1048576.0, arg);
        o->vm.tcache_size = (uint64_t)(v * 1048576.0);
        return GO_ON;
    case O_TIMEOUT:
        if (once(&o->seen, S_TIMEOUT, "--timeout"))
            return EXIT_USAGE;
        if (!parse_real(arg, &o->timeout) || !(o->timeout > 0) || o->timeout > TIMEOUT_MAX)
            return usage_error("--timeout wants seconds, more than 0 and at most %g, "
                               "not '%s'", TIMEOUT_MAX, arg);
        return GO_ON;
    case O_STATS: o->stats = true; return GO_ON;
    case O_SMP:
        if (once(&o->seen, S_SMP, "--smp"))
            return EXIT_USAGE;
        if (!parse_uint(arg, VMM_MAX_CPUS, &u) || u == 0)
            return usage_error("--smp wants 1 to %d vCPUs, not '%s'", VMM_MAX_CPUS, arg);
        o->ncpus = (unsigned)u;
        return GO_ON;
    case O_CPU: {
        char err[256];
        if (once(&o->seen, S_CPU, "--cpu"))
            return EXIT_USAGE;
        if (cpu_parse(arg, &o->cpu, err, sizeof err))
            return usage_error("%s", err);
        return GO_ON;
    }
    case O_GDB:
        if (once(&o->seen, S_GDB, "--gdb"))
            return EXIT_USAGE;
        if (!parse_uint(arg, 65535, &u) || u == 0)
            return usage_error("--gdb wants a TCP port from 1 to 65535, not '%s'", arg);
        o->gdb_port = (int)u;
        return GO_ON;
    case O_PERFMAP:
        if (once(&o->seen, S_PERFMAP, "--perf-map"))
            return EXIT_USAGE;
        if (arg && !*arg)
            return usage_error("--perf-map=FILE wants a file name");
        o->vm.flags |= XBT_VM_PERF_MAP;
        o->vm.perf_map_path = arg; /* NULL: /tmp/perf-PID.map */
        return GO_ON;
    case O_JITDUMP:
        if (once(&o->seen, S_JITDUMP, "--perf-jitdump"))
            return EXIT_USAGE;
        o->vm.flags |= XBT_VM_PERF_JITDUMP;
        return GO_ON;
    case O_SYMBOLS:
        if (o->nsymbol_files == MAX_SYMBOL_FILES)
            return usage_error("at most %d --symbols files", MAX_SYMBOL_FILES);
        if (!*arg)
            return usage_error("--symbols wants a file name");
        o->symbol_files[o->nsymbol_files++] = arg;
        return GO_ON;
    case O_TRACEIO: o->trace_io = true; return GO_ON;
    case O_SAVECONT: o->save_continue = true; return GO_ON;
    case O_SAVE:
    case O_RESTORE:
        if (once(&o->seen, c == O_SAVE ? S_SAVE : S_RESTORE, c == O_SAVE ? "--save" : "--restore"))
            return EXIT_USAGE;
        if (!*arg)
            return usage_error("%s wants a file name", c == O_SAVE ? "--save" : "--restore");
        *(c == O_SAVE ? &o->save_path : &o->restore_path) = arg;
        return GO_ON;
    case O_VERSION:
        printf("xbt-run %u.%u.%u (API %u.%u)\n", xbt_version() >> 16,
               (xbt_version() >> 8) & 0xff, xbt_version() & 0xff, xbt_api_version() >> 16,
               xbt_api_version() & 0xffff);
        return 0;
    case O_CAPS:
        print_capabilities();
        return 0;
    case 'h': usage(stdout); return 0;
    case ':': return usage_error("option '%s' needs an argument", argv[optind - 1]);
    default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
}

static int parse_options(struct options *o, int argc, char **argv)
{
    o->vm = (xbt_vm_config)XBT_VM_CONFIG_INIT;
    o->vm.flags |= XBT_VM_LOCAL_APIC; /* tools/vmm/lapic.c at 0xfee00000 */
    o->vm.flags |= XBT_VM_STRING_IO;  /* on_io handles io.count > 1 */
    o->vm.ram_size = 128u << 20;
    o->append = "";
    o->ncpus = 1;
    opterr = 0; /* usage_error's messages, one line each */
    int c;
    while ((c = getopt_long(argc, argv, ":m:a:h", long_options, NULL)) != -1) {
        int status = parse_option(o, c, optarg, argv);
        if (status != GO_ON)
            return status;
    }
    return GO_ON;
}

/* Options that contradict or need one another. */
static int check_options(const struct options *o)
{
    if (o->no_traces && o->want_traces)
        return usage_error("--no-traces contradicts --traces and --trace-profile");
    if ((o->seen & (1u << S_THOT)) && !o->want_traces)
        return usage_error("--trace-threshold needs --traces (or --trace-profile)");
    if (o->nsymbol_files && !(o->vm.flags & (XBT_VM_PERF_MAP | XBT_VM_PERF_JITDUMP)))
        return usage_error("--symbols needs --perf-map or --perf-jitdump (symbols name code "
                           "for perf)");
    if (o->save_continue && !o->save_path)
        return usage_error("--save-continue needs --save FILE");
    if (o->restore_path) {
        const char *what = (o->seen & (1u << S_MEM)) ? "--mem"
                         : (o->seen & (1u << S_SMP)) ? "--smp"
                         : (o->seen & (1u << S_APPEND)) ? "--append"
                         : (o->seen & (1u << S_INITRD)) ? "--initrd"
                         : o->nmods ? "--module" : o->ndisks ? "--disk"
                         : o->nsymbol_files ? "--symbols" : NULL;
        if (what)
            return usage_error("--restore takes the machine from its file: %s cannot be given "
                               "with it", what);
    }
    return GO_ON;
}

/* No kernel: the Linux guest scripts/linux-guest.sh put beside the build, with a
   command line and RAM it boots with. */
static int choose_linux_guest(struct options *o)
{
    char exe[3900];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    snprintf(o->def_kernel, sizeof o->def_kernel, "%s/../linux/vmlinuz", exe);
    snprintf(o->def_initrd, sizeof o->def_initrd, "%s/../linux/initramfs.cpio.gz", exe);
    if (access(o->def_kernel, R_OK) != 0 || access(o->def_initrd, R_OK) != 0) {
        fprintf(stderr, "xbt-run: no kernel given, and no Linux guest at %s (run "
                        "scripts/linux-guest.sh to fetch one from Debian)\n", o->def_kernel);
        return EXIT_USAGE;
    }
    o->kernel = o->def_kernel;
    if (!o->initrd)
        o->initrd = o->def_initrd;
    /* console=ttyS0: the 16550 is the only console; acpi=off pci=off: no firmware
       tables and no PCI host bridge here; nolapic noapic: the 8259 pair and the
       8254 are the interrupt and timer hardware.  At a terminal, /init ends in a
       shell (XBT_SHELL=1) instead of powering off. */
    if (!*o->append)
        o->append = isatty(0) ? "console=ttyS0 acpi=off pci=off nolapic noapic quiet XBT_SHELL=1"
                              : "console=ttyS0 acpi=off pci=off nolapic noapic quiet";
    if (o->vm.ram_size < (256u << 20))
        o->vm.ram_size = 256u << 20;
    fprintf(stderr, "xbt-run: booting the Linux guest %s\n", o->def_kernel);
    return GO_ON;
}

/* The operands: one kernel, or none for the Linux guest. */
static int choose_kernel(struct options *o, int argc, char **argv)
{
    if (optind == argc)
        return choose_linux_guest(o);
    if (optind < argc - 1)
        return usage_error("one kernel, not %d files ('%s', '%s'%s)", argc - optind,
                           argv[optind], argv[optind + 1], argc - optind > 2 ? ", ..." : "");
    o->kernel = argv[optind];
    if (!*o->kernel)
        return usage_error("an empty kernel file name");
    return GO_ON;
}

/* A VM whose devices or guest could not be set up: the disks closed, the VM gone. */
static int abandon(struct vmm *m)
{
    ata_detach_all(m);
    xbt_vm_destroy(m->vm);
    return EXIT_NOIMAGE;
}

/* The VM, its vCPU and the PC platform with its disks. */
static int create_platform(struct vmm *m, const struct options *o)
{
    /* What every embedder checks first; linked statically here, it cannot fail, but a
       shared libxbt could be older than the header this was built with. */
    if (!XBT_API_COMPATIBLE(xbt_api_version())) {
        fprintf(stderr, "xbt-run: built for xbt API %u.%u, the library has %u.%u\n",
                XBT_API_VERSION_MAJOR, XBT_API_VERSION_MINOR, xbt_api_version() >> 16,
                xbt_api_version() & 0xffff);
        return EXIT_INTERNAL;
    }
    xbt_status st = xbt_vm_create(&o->vm, &m->vm);
    if (st != XBT_OK) {
        fprintf(stderr, "xbt-run: cannot create the VM: %s%s%s\n", xbt_strerror(st),
                st == XBT_E_HOST ? ": " : "", st == XBT_E_HOST ? xbt_last_host_error() : "");
        return EXIT_INTERNAL;
    }
    if ((st = xbt_vcpu_create(m->vm, &m->cpu)) != XBT_OK) {
        fprintf(stderr, "xbt-run: cannot create the vCPU: %s\n", xbt_strerror(st));
        return EXIT_INTERNAL;
    }
    m->cpus[0] = m->cpu;
    m->ncpus = 1;
    for (unsigned k = 1; k < o->ncpus; k++, m->ncpus++) {
        if ((st = xbt_vcpu_create(m->vm, &m->cpus[k])) != XBT_OK) {
            fprintf(stderr, "xbt-run: cannot create vCPU %u of %u (--smp): %s\n", k,
                    o->ncpus, xbt_strerror(st));
            return EXIT_INTERNAL;
        }
    }
    for (unsigned k = 0; k < m->ncpus; k++)
        if ((st = cpu_apply(m->cpus[k], &o->cpu)) != XBT_OK) {
            fprintf(stderr, "xbt-run: --cpu: the library refuses the CPUID: %s\n",
                    xbt_strerror(st));
            return EXIT_INTERNAL;
        }
    m->trace_io = o->trace_io;
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t ca; /* timer_thread's deadlines are CLOCK_MONOTONIC (vmm_now_ns) */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->timer_cv, &ca);
    char err[512];
    if (pc_init(m, o->disks, o->ndisks, err, sizeof err) != 0) {
        fprintf(stderr, "xbt-run: %s\n", err);
        return abandon(m);
    }
    return GO_ON;
}

/* Says so when the user mode asked for is not the one in effect (the host cannot). */
static void note_user_mode(const struct vmm *m, const struct options *o)
{
    const char *why = NULL;
    if (xbt_vm_user_mode(m->vm, &why) != o->vm.user_mode && why)
        fprintf(stderr, "xbt-run: note: guest user code runs translated (strict mode): %s\n",
                why);
}

/* The kernel, initrd or modules in RAM and the vCPU at the entry; the perf map's
   symbols (their number in *nsyms). */
static int load_guest(struct vmm *m, const struct options *o, long *nsyms)
{
    char err[512];
    uint32_t reloc_align = 0;
    if (vmm_boot(m->vm, m->cpu, o->kernel, o->append, o->initrd, o->mods, o->nmods,
                 &reloc_align, err, sizeof err) != 0) {
        fprintf(stderr, "xbt-run: %s\n", err);
        return abandon(m);
    }
    if ((o->vm.flags & (XBT_VM_PERF_MAP | XBT_VM_PERF_JITDUMP)) &&
        (*nsyms = load_symbols(m->vm, o->kernel, o->symbol_files, o->nsymbol_files,
                               reloc_align)) < 0)
        return abandon(m);
    note_user_mode(m, o);
    return GO_ON;
}

/* --restore: the machine's shape from the file's header (RAM, disks); no kernel. */
static int open_restore(struct options *o, struct vmm_saved *sv, int argc, char **argv)
{
    if (optind < argc)
        return usage_error("--restore takes the machine from its file: no kernel ('%s')",
                           argv[optind]);
    char err[512];
    if (vmm_restore_open(o->restore_path, sv, err, sizeof err) != 0) {
        fprintf(stderr, "xbt-run: %s\n", err);
        if (sv->fd >= 0)
            close(sv->fd);
        return EXIT_NOIMAGE;
    }
    if (sv->has_cpuid && (o->seen & (1u << S_CPU))) {
        close(sv->fd);
        return usage_error("--restore takes the machine from its file: --cpu cannot be "
                           "given with it (the file holds the CPUID the guest saw)");
    }
    o->vm.ram_size = sv->ram_size;
    o->ncpus = sv->ncpus;
    memcpy(o->disks, sv->disks, sizeof sv->disks);
    o->ndisks = sv->ndisks;
    return GO_ON;
}

/* --restore, once the platform is made: the vCPU, RAM and the devices as saved. */
static int finish_restore(struct vmm *m, const struct options *o, struct vmm_saved *sv)
{
    char err[512];
    for (unsigned k = 0; sv->has_cpuid && k < m->ncpus; k++) {
        xbt_status st = xbt_vcpu_set_cpuid(m->cpus[k], sv->cpuid[k], sv->ncpuid[k]);
        if (st != XBT_OK) {
            fprintf(stderr, "xbt-run: %s: vCPU %u's saved CPUID is not one this xbt "
                    "implements: %s\n", o->restore_path, k, xbt_strerror(st));
            close(sv->fd);
            return abandon(m);
        }
    }
    if (vmm_restore_finish(m, sv, o->restore_path, err, sizeof err) != 0) {
        fprintf(stderr, "xbt-run: %s\n", err);
        close(sv->fd);
        return abandon(m);
    }
    note_user_mode(m, o);
    return GO_ON;
}

/* The threads beside the vCPU's: timers, and the terminal's input for the UART. */
struct helpers {
    pthread_t timer, input;
    bool have_input;
};

static void start_helpers(struct vmm *m, struct helpers *h)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (save_path) {
        sa.sa_handler = on_sigusr1;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR1, &sa, NULL);
    }
    setup_tty();
    pthread_create(&h->timer, NULL, timer_thread, m);
    h->have_input = pthread_create(&h->input, NULL, input_thread, m) == 0;
}

static void stop_helpers(struct vmm *m, struct helpers *h)
{
    pthread_mutex_lock(&m->lock);
    m->stop_timer = true;
    pthread_cond_broadcast(&m->timer_cv);
    vmm_unlock(m);
    pthread_join(h->timer, NULL);
    if (h->have_input) {
        pthread_cancel(h->input);
        pthread_join(h->input, NULL);
    }
}

/* Runs the guest to its end; the exit status, and the run's wall time in *wall_ns. */
/* gdb's continue (step -1: every vCPU) and step (vCPU `step` alone), gdbstub.c: returns
   once every vCPU has stopped again, the first stop in *stop, or the VM's end status.
   A debug exit kept from before (debug_claim) is reported without running. */
static int gdb_run(void *ctx, int step, struct gdb_stop *stop)
{
    struct vcpu_ctx *c0 = ctx;
    struct vmm *m = c0->m;
    pthread_mutex_lock(&m->lock);
    m->dbg_who = -1;
    for (unsigned k = 0; k < m->ncpus && step < 0 && m->dbg_who < 0; k++)
        if (vcpus[k].dbg_pending) {
            vcpus[k].dbg_pending = false;
            m->dbg_who = (int)k, m->dbg_sigint = false, m->dbg_exit = vcpus[k].dbg_pend_exit;
        }
    bool go = m->dbg_who < 0;
    if (go) {
        m->dbg_step = step;
        atomic_store(&m->dbg_stopping, step >= 0); /* a step: the others stay parked */
        m->dbg_round++;
        vmm_wake(m, VMM_ALL_CPUS);
    }
    vmm_unlock(m);
    int rc = VMM_DEBUG_STOP;
    if (go && step <= 0) {
        rc = run_loop(c0); /* vCPU 0 runs on this thread */
    } else if (go) {
        pthread_mutex_lock(&m->lock); /* vCPU `step` runs on its own; it parks again */
        while (m->dbg_who < 0 && !m->ending)
            vmm_wait(m, 0);
        vmm_unlock(m);
        rc = m->ending ? m->end_status : VMM_DEBUG_STOP;
    }
    if (rc != VMM_DEBUG_STOP)
        return rc;
    pthread_mutex_lock(&m->lock);
    while (!aps_parked(m, m->dbg_parked) && !m->ending)
        vmm_wait(m, 0); /* all-stop: gdb reads any vCPU once all have stopped */
    m->dbg_step = -1;
    *stop = (struct gdb_stop){ .cpu = m->dbg_who < 0 ? 0 : (unsigned)m->dbg_who,
                               .interrupted = m->dbg_sigint, .debug = m->dbg_exit };
    rc = m->ending ? m->end_status : VMM_DEBUG_STOP;
    vmm_unlock(m);
    return rc;
}

/* gdb's Ctrl-C (its watcher thread): every vCPU stops. */
static void gdb_break(void *ctx)
{
    debug_claim(ctx, NULL);
}

/* Runs the guest to its end: vCPU 0 on this thread, each AP on its own (waiting for
   INIT and start-up); the first end on any vCPU stops the others, whose threads are
   joined.  The exit status, and the run's wall time in *wall_ns. */
static int run_guest(struct vmm *m, const struct options *o, uint64_t *wall_ns)
{
    uint64_t t0 = vmm_now_ns();
    if (o->timeout > 0)
        m->deadline_ns = t0 + (uint64_t)(o->timeout * 1e9);
    for (unsigned k = 0; k < m->ncpus; k++) {
        vcpus[k] = (struct vcpu_ctx){ .m = m, .index = k, .cpu = m->cpus[k],
                                      .timeout = o->timeout,
                                      .running = o->restore_path && !m->lapic[k].wait_sipi };
        xbt_vcpu_set_irq_source(m->cpus[k], irq_pending, &vcpus[k]);
    }
    xbt_vm_set_mmio_handler(m->vm, on_mmio_sync, m);
    xbt_vm_set_pio_handler(m->vm, on_pio_sync, m);
    struct helpers h;
    start_helpers(m, &h);
    for (unsigned k = 1; k < m->ncpus; k++) {
        vcpus[k].started = pthread_create(&vcpus[k].thread, NULL, ap_thread, &vcpus[k]) == 0;
        if (!vcpus[k].started && claim_end(m, EXIT_INTERNAL))
            fprintf(stderr, "xbt-run: cannot start the thread of vCPU %u\n", k);
    }
    m->dbg_who = m->dbg_step = -1;
    int status = o->gdb_port ? gdb_serve(m->cpus, m->ncpus, o->gdb_port, gdb_run, gdb_break,
                                         &vcpus[0])
                             : run_loop(&vcpus[0]);
    claim_end(m, status);
    for (unsigned k = 1; k < m->ncpus; k++)
        if (vcpus[k].started)
            pthread_join(vcpus[k].thread, NULL);
    *wall_ns = vmm_now_ns() - t0;
    stop_helpers(m, &h);
    return m->end_status;
}

static void print_trace_profile(xbt_vcpu *cpu)
{
    xbt_trace_profile top[10];
    size_t nt = xbt_vcpu_trace_profile(cpu, top, 10);
    if (nt)
        fprintf(stderr, "trace profile: %zu traces; the most entered:\n", nt);
    for (size_t i = 0; i < nt && i < 10; i++)
        fprintf(stderr, "  %08x  %u blocks  %12llu entries  %5.1f%% side exits\n",
                top[i].eip, top[i].blocks, (unsigned long long)top[i].entries,
                top[i].entries ? 100.0 * (double)top[i].side_exits / (double)top[i].entries
                               : 0.0);
}

/* Adds vCPU cpu's figures to *sum (--stats with several vCPUs: the VM's totals).  Every
   figure counts that vCPU's events but the runner processes' (direct_parks to
   direct_map_requests), which are the VM's: the first vCPU's already hold them. */
static void add_vcpu_stats(xbt_stats *sum, xbt_vcpu *cpu)
{
    xbt_stats one = XBT_STATS_INIT;
    if (xbt_vcpu_get_stats(cpu, &one) != XBT_OK)
        return;
    one.direct_parks = one.direct_escapes = one.direct_sync_waits = 0;
    one.direct_park_ns = one.direct_wait_ns = one.direct_map_requests = 0;
    uint64_t *d = (uint64_t *)((char *)sum + offsetof(xbt_stats, exits));
    const uint64_t *a = (const uint64_t *)((const char *)&one + offsetof(xbt_stats, exits));
    for (size_t i = 0; i < (sizeof one - offsetof(xbt_stats, exits)) / sizeof *a; i++)
        d[i] += a[i];
}

/* One line per vCPU: where its time and exits went. */
static void print_vcpu_lines(struct vmm *m)
{
    fprintf(stderr, "vmm: %u vCPUs; the library's figures above are their sums:\n", m->ncpus);
    for (unsigned k = 0; k < m->ncpus; k++) {
        xbt_stats s = XBT_STATS_INIT;
        if (xbt_vcpu_get_stats(m->cpus[k], &s) != XBT_OK)
            continue;
        uint64_t exits = 0;
        for (int i = 0; i < 16; i++)
            exits += s.exits[i];
        fprintf(stderr, "  vCPU %u: %llu exits (%llu HLT), %llu interrupts, %llu blocks "
                "translated, %llu code pages dropped, %llu page faults, %llu hidden faults\n",
                k, (unsigned long long)exits, (unsigned long long)s.exits[XBT_EXIT_HLT],
                (unsigned long long)s.interrupts, (unsigned long long)s.blocks,
                (unsigned long long)s.code_page_invalidations,
                (unsigned long long)s.page_faults, (unsigned long long)s.hidden_faults);
    }
}

static uint64_t mmio_sync_free(struct vmm *m)
{
    uint64_t n = 0;
    for (unsigned k = 0; k < m->ncpus; k++)
        n += __atomic_load_n(&m->mmio_sync_free[k].n, __ATOMIC_RELAXED);
    return n;
}

/* --stats: the library's figures, the VMM's exits, the code cache and the perf map. */
static void print_stats(struct vmm *m, const struct options *o, long nsyms, uint64_t wall_ns)
{
    xbt_stats s = XBT_STATS_INIT;
    if (xbt_vcpu_get_stats(m->cpu, &s) != XBT_OK)
        return;
    for (unsigned k = 1; k < m->ncpus; k++)
        add_vcpu_stats(&s, m->cpus[k]);
    char buf[8192];
    xbt_stats_format(&s, buf, sizeof buf);
    fprintf(stderr, "--- xbt-run statistics (%.3f s wall) ---\n%s", (double)wall_ns / 1e9, buf);
    fprintf(stderr, "vmm: %llu port I/O exits, %llu MMIO exits handled; %llu port and %llu "
            "MMIO accesses answered inside the run\n", (unsigned long long)m->io_exits,
            (unsigned long long)m->mmio_exits, (unsigned long long)m->io_sync,
            (unsigned long long)(m->mmio_sync + mmio_sync_free(m)));
    if (m->ncpus > 1)
        print_vcpu_lines(m);
    uint64_t code, code_size;
    if (xbt_vm_code_range(m->vm, &code, &code_size) == XBT_OK)
        fprintf(stderr, "code cache: executable view %#llx-%#llx\n", (unsigned long long)code,
                (unsigned long long)(code + code_size));
    if (o->vm.flags & XBT_VM_PERF_MAP) {
        char def[64];
        snprintf(def, sizeof def, "/tmp/perf-%d.map", (int)getpid());
        fprintf(stderr, "perf map: %s, %ld guest code symbols\n",
                o->vm.perf_map_path ? o->vm.perf_map_path : def, nsyms);
    }
    uint32_t moved;
    if (xbt_vm_symbols_moved(m->vm, &moved) == XBT_OK)
        fprintf(stderr, "perf map: the kernel ran its symbols moved by %#x from where they "
                "were linked (KASLR)\n", moved);
    if (o->vm.flags & XBT_VM_PERF_JITDUMP)
        fprintf(stderr, "perf jitdump: jit-%d.dump in %s\n", (int)getpid(),
                o->vm.perf_map_path && strchr(o->vm.perf_map_path, '/') ? "the map's directory"
                : o->vm.perf_map_path ? "the current directory" : "/tmp");
    print_trace_profile(m->cpu);
}

/* After the run: what the guest wrote on the disk files and the perf map, the VM gone,
   the terminal as it was. */
static int shut_down(struct vmm *m, int status)
{
    ata_detach_all(m); /* fsync: what the guest wrote is on the disk files */
    if (xbt_vm_perf_map_flush(m->vm) != XBT_OK)
        fprintf(stderr, "xbt-run: the perf map is incomplete: %s\n", xbt_last_host_error());
    for (unsigned k = 0; k < m->ncpus; k++)
        xbt_vcpu_destroy(m->cpus[k]);
    xbt_vm_destroy(m->vm);
    restore_tty();
    return status & 0xff;
}

int main(int argc, char **argv)
{
    static struct options o; /* static: its buffers are large */
    struct vmm *m = &the_vmm;
    long nsyms = 0;
    int status = parse_options(&o, argc, argv);
    if (status == GO_ON)
        status = check_options(&o);
    static struct vmm_saved sv;
    if (status == GO_ON)
        status = o.restore_path ? open_restore(&o, &sv, argc, argv)
                                : choose_kernel(&o, argc, argv);
    if (status == GO_ON)
        status = create_platform(m, &o);
    if (status == GO_ON)
        status = o.restore_path ? finish_restore(m, &o, &sv) : load_guest(m, &o, &nsyms);
    save_path = o.save_path;
    save_continue = o.save_continue;
    save_vm_flags = o.vm.flags & (XBT_VM_LOCAL_APIC | XBT_VM_STRING_IO);
    if (status != GO_ON)
        return status;
    uint64_t wall_ns;
    status = run_guest(m, &o, &wall_ns);
    if (o.stats)
        print_stats(m, &o, nsyms, wall_ns);
    return shut_down(m, status);
}
