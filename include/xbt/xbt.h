/*
 * xbt.h - public API of xbt, a binary-translating VMM library for 32-bit x86 guests.
 *
 * Conventions: every call returns an xbt_status (XBT_OK == 0) and never exits or
 * aborts on guest input; objects are opaque handles; buffers returned by the library
 * are owned by the object they came with and freed with it.
 *
 * Two ways in:
 *  - translate only (xbt_translate): one block of guest code to host code and a
 *    listing, no VM; the listing tool `xbt-dis` and the rewrite regression suites use it;
 *  - virtual machines and vCPUs (xbt_vm_create, xbt_vcpu_run, ...), shaped after
 *    linux/kvm.h: run until an exit, handle it, run again.  tools/vmm (xbt-run) is the
 *    reference embedder.
 * Before either, an embedder checks XBT_API_COMPATIBLE(xbt_api_version()) and, for what
 * depends on the host, xbt_has() (both below).
 *
 *     xbt_translate_opts o = XBT_TRANSLATE_OPTS_INIT;
 *     xbt_translation *t;
 *     if (xbt_translate(bytes, n, 0x1000, &o, &t) == XBT_OK) {
 *         fputs(t->listing, stdout);
 *         xbt_translation_free(t);
 *     }
 *
 * Process-wide state.  Translating touches nothing global but a per-thread cache of
 * encoder results (about 1.7 MiB per translating thread, freed when the thread ends).
 * Running a VM does more; each effect, and how an embedder lives beside it:
 *  - Signal handlers for six signals, installed by the first xbt_vm_create and kept for
 *    the life of the process: SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGTRAP (guest faults
 *    in translated code arrive as these) and SIGUSR2 (xbt_vcpu_kick sends it to the
 *    vCPU's thread).  They replace whatever handler was there and do not chain to it: a
 *    fault that is not the guest's is reported on stderr with a backtrace and becomes
 *    XBT_EXIT_INTERNAL_ERROR while a vCPU runs on that thread, else the signal's default
 *    action (the process dies); a SIGUSR2 with no vCPU running is ignored.  A thread
 *    that runs a vCPU must not block them.  An embedder that needs one of them too
 *    installs its own handler after the first xbt_vm_create, with SA_SIGINFO |
 *    SA_ONSTACK | SA_NODEFER and an empty sa_mask, keeps the old action sigaction()
 *    returns (xbt's), and calls its sa_sigaction with the same three arguments for every
 *    signal that is not its own.  SA_NODEFER is needed: xbt leaves its handler for a
 *    guest fault by siglongjmp without restoring the signal mask, so a signal blocked
 *    while the handler ran would stay blocked, and the next guest fault kill the process.
 *  - An alternate signal stack (64 KiB) on every thread that runs a vCPU and on the
 *    thread of the first xbt_vm_create, replacing the thread's own (not restored);
 *    switched off and freed when the thread ends.
 *  - The GS base of a thread that runs a vCPU points at a guest memory window during and
 *    after xbt_vcpu_run.  x86-64 Linux user code does not use GS (FS holds the TLS); an
 *    embedder's code that does must not run on such a thread.
 *  - Direct and adaptive user mode start runner processes (one per recently used guest
 *    address space; killed by xbt_vm_destroy, or by the kernel when the thread that
 *    started them ends, after which xbt starts another one unseen by the guest) without
 *    an exit signal: no SIGCHLD, and wait() does not see them (a wait for any child
 *    with __WALL or __WCLONE would reap them: an embedder must not use one).  The first
 *    xbt_capabilities() or xbt_has() starts one and ends it to probe the host.  The
 *    seccomp filters, the LDT entries and the reservation of the low 4 GiB that directly
 *    run guest code needs are in the runner processes, not in the embedder's: its
 *    system calls and LDT stay as they were, and nothing reserves its low 4 GiB.  The
 *    runner's program is a sealed memfd made once per process and kept open
 *    (close-on-exec).
 *  - Per VM: memfds (close-on-exec; each memory slot's file, the library's or a dup of
 *    the embedder's), 68 GiB of reserved, inaccessible address space for the guest
 *    memory windows and the host view of guest physical memory, and the translation cache (two views of it, both above
 *    4 GiB), released by xbt_vm_destroy.
 *
 * Thread safety: translate calls are independent and may run concurrently; the VM and
 * vCPU rules are given with those calls below.
 */
#ifndef XBT_XBT_H
#define XBT_XBT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions ----------------------------------------------------------------------
 *
 * Two numbers.  The library's release (XBT_VERSION, xbt_version()) names the code.  The
 * API version names the interface this header describes: its major number changes with
 * anything that breaks an embedder built against an earlier header (a struct's layout,
 * a value's meaning, a call removed), its minor number with additions.  An embedder
 * built against major M, minor m runs with a library whose xbt_api_version() has major
 * M and a minor of at least m; XBT_API_COMPATIBLE(xbt_api_version()) checks exactly that.
 *
 *   API 1.0, the first numbered one.  Against the unnumbered API before it: xbt_stats
 *   begins with a size the caller sets; enum xbt_window has XBT_WINDOW_D, and for
 *   xbt_translate XBT_WINDOW_U now means the U-window (through GS, as the runtime runs
 *   strict-mode user code) where value 1 used to mean the no-GS form, now XBT_WINDOW_D;
 *   XBT_VM_NO_TRACES is a deprecated no-op and refused together with XBT_VM_TRACES;
 *   unknown XBT_VM_* flags are refused; new: xbt_api_version, xbt_capabilities, xbt_has,
 *   XBT_VM_LOCAL_APIC (CPUID's APIC bit and IA32_APIC_BASE only with it), xbt_vcpu_nmi,
 *   xbt_vcpu_request_irq_window (XBT_EXIT_IRQ_WINDOW is produced now), the stats
 *   direct_refaults_saved; the CPU model's vendor is GenuineIntel (xbt's signature moved
 *   to the hypervisor leaf 0x40000000).
 *   API 1.1: the stats blocks_shared and adapt_promotions; XBT_VM_CONFIG_INIT asks for
 *   XBT_USER_ADAPTIVE (it asked for XBT_USER_DIRECT).
 *   API 1.2: XBT_VM_STRING_IO (REP INS/OUTS: many elements per I/O exit, io.count and
 *   io.buf), XBT_CAP_STRING_IO.
 *   API 1.3: debugging: xbt_vcpu_set_breakpoint, xbt_vcpu_set_single_step,
 *   xbt_vcpu_read_virt, xbt_vcpu_write_virt; XBT_EXIT_DEBUG is produced (exit record member debug);
 *   XBT_CAP_DEBUG.
 *   API 1.4: guest physical memory slots: xbt_vm_set_mem_region, xbt_vm_mem_host,
 *   xbt_vm_get_dirty_log, XBT_MEM_READONLY, XBT_MEM_LOG_DIRTY; cfg.ram_size may be 0.
 *   API 1.4 also: the embedder's policy: xbt_vcpu_get_cpuid / xbt_vcpu_set_cpuid (a CPUID
 *   policy within the model), xbt_vm_set_msr_exits (XBT_EXIT_MSR, exit record member
 *   msr), xbt_vcpu_inject_interrupt, xbt_vcpu_inject_exception; XBT_CAP_POLICY;
 *   watchpoints: xbt_vcpu_set_watchpoint, XBT_DEBUG_WATCH (exit.debug's watch and
 *   watch_access), XBT_CAP_WATCH.
 *   API 1.4 also: save and restore: xbt_fpu with xbt_vcpu_get_fpu/xbt_vcpu_set_fpu,
 *   xbt_vcpu_events with xbt_vcpu_get_events/xbt_vcpu_set_events, xbt_vm_save_state,
 *   xbt_vm_restore_state, xbt_state_error.
 *   API 1.5: real mode, 16-bit code and virtual-8086 mode; XBT_TRANSLATE_CODE16 and
 *   XBT_TRANSLATE_STACK16; xbt_vm_set_mmio_handler and xbt_vm_set_pio_handler (MMIO
 *   and port I/O answered without an exit), xbt_stats.mmio_handled and pio_handled.
 *   API 1.6: several vCPUs per VM (XBT_MAX_VCPUS, xbt_vcpu_index; see "Threads").
 *   API 1.7: xbt_vm_save_state and xbt_vm_restore_state of a VM with several vCPUs.
 *   API 1.8: xbt_vcpu_set_mmio_shadow (reads of an MMIO page's registers served from
 *   the embedder's page of values, as APICv's APIC-register virtualization does).
 *   API 1.9: XBT_WINDOW_UK (user code reaching the U-window through the K-window's GS
 *   base); the runtime runs translated user code so on hosts without FSGSBASE.
 *   API 1.10: xbt_vcpu_events.resume_flag and db_pending (were reserved, 0), so a saved
 *   state keeps EFLAGS.RF and a #DB trap that is due.
 *   API 1.11: xbt_stats.fault_sites_back.
 *   API 2.0: XBT_WINDOW_UK code reaches the U-window as gs:[r9 + linear]: whoever runs
 *   it sets R9 to -XBT_WINDOW_UK_BELOW (the runtime does; before, each access turned
 *   the linear address into that form with two NOTs of its own).  Code translated by
 *   xbt_translate for XBT_WINDOW_UK and run by an embedder of 1.x would address memory
 *   wrongly, hence the major number; nothing else changed.
 *   API 2.1: xbt_stats.uk_wraps.
 *   API 2.2: xbt_stats.adapt_demotions.
 *   API 2.3: xbt_stats.direct_runner_moves, direct_page_scans, direct_scan_hits.
 *   API 2.4: xbt_stats.direct_predicted.
 *   API 2.5: xbt_stats.thunk_chains.
 *   API 2.6: xbt_stats.fpu_chains.
 *   API 2.7: xbt_stats.jmp_cache_learns.
 *   API 2.8: XBT_VM_PERF_JITDUMP.
 *   API 2.9: xbt_stats.refills.
 *   API 2.10: xbt_vm_relocated_symbols and xbt_vm_symbols_moved (a kernel's symbols
 *   named at the address KASLR moved it to); xbt_stats.smc_data_writes and
 *   smc_data_pages.
 */
#define XBT_VERSION_MAJOR 0
#define XBT_VERSION_MINOR 1
#define XBT_VERSION_PATCH 0
#define XBT_VERSION ((XBT_VERSION_MAJOR << 16) | (XBT_VERSION_MINOR << 8) | XBT_VERSION_PATCH)

#define XBT_API_VERSION_MAJOR 2
#define XBT_API_VERSION_MINOR 10
#define XBT_API_VERSION ((XBT_API_VERSION_MAJOR << 16) | XBT_API_VERSION_MINOR)
/* Whether a library of API version v (xbt_api_version()) serves this header: the same
   major number and, within it, at least this minor one. */
#define XBT_API_COMPATIBLE(v) (((v) >> 16) == XBT_API_VERSION_MAJOR && (v) >= XBT_API_VERSION)

typedef enum xbt_status {
    XBT_OK = 0,
    XBT_E_INVAL,     /* a bad argument: misuse of the API */
    XBT_E_NOMEM,     /* host memory exhausted */
    XBT_E_FAULT,     /* guest code could not be fetched at the given address */
    XBT_E_INTERNAL,  /* an internal invariant failed; the message says which */
    XBT_E_NOSYS,     /* not implemented yet */
    XBT_E_HOST,      /* a required host feature is missing */
} xbt_status;

/* A static string describing status s. */
const char *xbt_strerror(xbt_status s);

/* Library release, XBT_VERSION format, of the code actually linked. */
uint32_t xbt_version(void);
/* API version, XBT_API_VERSION format, that the linked library implements. */
uint32_t xbt_api_version(void);

/* ---- capabilities ------------------------------------------------------------------
 *
 * What the linked library and this host provide, found at run time (as KVM's
 * KVM_CHECK_EXTENSION): a bit set means the feature works here.  The first call probes
 * the host (for the direct user modes it starts a runner process and ends it again: a
 * few milliseconds) and the answer is kept for the life of the process.  Any thread.
 */
#define XBT_CAP_USER_STRICT   (1ull << 0) /* XBT_USER_STRICT: always */
#define XBT_CAP_USER_DIRECT   (1ull << 1) /* XBT_USER_DIRECT: a runner process starts here
                                             (memfd execution, pidfds, seccomp filters,
                                             XSAVE, the low 4 GiB free in a new process) */
#define XBT_CAP_USER_ADAPTIVE (1ull << 2) /* XBT_USER_ADAPTIVE: what direct needs */
#define XBT_CAP_PAE           (1ull << 3) /* guest PAE paging (CR4.PAE, 2 MiB pages) */
#define XBT_CAP_TRACES        (1ull << 4) /* XBT_VM_TRACES */
#define XBT_CAP_TRACE_PROFILE (1ull << 5) /* XBT_VM_TRACE_PROFILE, xbt_vcpu_trace_profile */
#define XBT_CAP_STRING_IO     (1ull << 6) /* XBT_VM_STRING_IO */
#define XBT_CAP_DEBUG         (1ull << 7) /* breakpoints, single-step, XBT_EXIT_DEBUG */
#define XBT_CAP_POLICY        (1ull << 8) /* CPUID policy, MSR exits, event injection */
#define XBT_CAP_WATCH         (1ull << 9) /* watchpoints (xbt_vcpu_set_watchpoint) */

/* The XBT_CAP_* bits available. */
uint64_t xbt_capabilities(void);
/* 1 if every capability in caps is available, else 0 and, if why is not NULL, *why
   says (a static string) what is missing; a bit this library does not know is missing
   too (an embedder built against a newer header). */
int xbt_has(uint64_t caps, const char **why);

/* ---- translate-only entry point ---------------------------------------------------- */

/*
 * The windows through which guest memory is reached: host address ranges of 4 GiB in
 * which guest linear address x lives at base + x and only the pages the guest's tables
 * and privilege allow are mapped (docs/ARCHITECTURE.md).  Translated code reaches K and
 * U through the GS base (GS: prefix, 32-bit address size), so code translated for
 * either is the same; D is at base 0, so its code uses guest addresses as host
 * addresses (no GS).  Value 1 meant that no-GS form until the D-window got its name.
 * UK (API 1.9) is user code that runs with GS at the K-window's base and reaches the
 * U-window XBT_WINDOW_UK_BELOW bytes below it, so that a change of privilege moves no
 * segment base: each access computes its 32-bit linear address into R11 first (a LEA)
 * and is then gs:[r9 + r11], so the code expects R9 = -XBT_WINDOW_UK_BELOW at every
 * instruction boundary (API 2.0).  The runtime uses it where GS moves by a system
 * call.
 */
enum xbt_window {
    XBT_WINDOW_K = 0, /* the K-window: guest code at CPL 0 */
    XBT_WINDOW_U = 1, /* the U-window: strict-mode guest user code (user pages only) */
    XBT_WINDOW_D = 2, /* the D-window: the guest's user pages at their own addresses, where
                         direct mode runs user code natively (in a runner process) */
    XBT_WINDOW_UK = 3, /* the U-window reached through the K-window's GS base (API 1.9) */
};
/* Where the U-window lies for XBT_WINDOW_UK code: GS base - this (4 GiB and a guard
   page; an access running past the window's top faults in the guard). */
#define XBT_WINDOW_UK_BELOW ((4ull << 30) + 4096)

#define XBT_TRANSLATE_FPU_NM 0x01 /* as if CR0.TS were set: x87/SSE become #NM callouts */
#define XBT_TRANSLATE_NO_SSE 0x02 /* as if CR4.OSFXSR were clear */
#define XBT_TRANSLATE_CODE16 0x04 /* 16-bit code (real mode, CS.D clear; API 1.5) */
#define XBT_TRANSLATE_STACK16 0x08 /* 16-bit stack (SS.B clear: SP moves; API 1.5) */

typedef struct xbt_translate_opts {
    uint32_t cpl;          /* guest CPL the code runs at: 0 or 3 */
    uint32_t window;       /* enum xbt_window the code will run in */
    uint32_t segbase_mask; /* bit n set: segment n (ES=0 CS SS DS) has a nonzero base */
    uint32_t flags;        /* XBT_TRANSLATE_* */
    uint32_t max_insns;    /* guest instructions per block, 0 for the default (64) */
    uint32_t want_listing; /* nonzero: produce a text listing */
    uint32_t seglimit_mask; /* bit n set: segment n (ES=0 CS SS DS FS GS) has a limit below
                              4 GiB, so accesses through it are checked */
    const uint32_t *trace_path; /* a trace: the basic blocks' start EIPs to lay out one
                                   after the other (the first is the EIP translated), or
                                   NULL for a basic block; at most 8 entries */
    uint32_t trace_path_n;
} xbt_translate_opts;

#define XBT_TRANSLATE_OPTS_INIT { 0, XBT_WINDOW_K, 0, 0, 0, 1, 0, NULL, 0 }

typedef struct xbt_translation {
    const uint8_t *code;   /* host x86-64 code, position independent */
    size_t code_len;
    uint32_t guest_eip;    /* first guest instruction */
    uint32_t guest_len;    /* guest bytes translated */
    uint32_t n_insns;      /* guest instructions translated */
    uint32_t n_exits;      /* chainable exits */
    uint32_t n_callouts;   /* callout sites */
    uint32_t end_reason;   /* 0 branch, 1 callout, 2 limit, 3 end of input */
    const char *listing;   /* NUL-terminated, or NULL if not asked for */
    const char *error;     /* a message when the call failed, else "" */
} xbt_translation;

/*
 * Translates one basic block of guest code: guest[0..guest_len) holds the guest bytes
 * at guest address eip (translation stops where they end).  On XBT_OK or an error
 * with a message, *out is set and must be freed with xbt_translation_free.
 * Returns XBT_OK, XBT_E_INVAL (bad pointer or option), XBT_E_FAULT (no instruction
 * fits in the bytes given), XBT_E_NOMEM, XBT_E_INTERNAL.
 */
xbt_status xbt_translate(const uint8_t *guest, size_t guest_len, uint32_t eip,
                         const xbt_translate_opts *opts, xbt_translation **out);
void xbt_translation_free(xbt_translation *t);


/* ---- virtual machines and vCPUs (shaped after linux/kvm.h) ---------------------------
 *
 *   xbt_vm_config c = XBT_VM_CONFIG_INIT;  c.ram_size = 64 << 20;
 *   xbt_vm *vm;  xbt_vcpu *cpu;  xbt_exit *ex;
 *   xbt_vm_create(&c, &vm);
 *   memcpy(xbt_vm_ram(vm) + 0x100000, kernel, n);   // guest physical RAM
 *   xbt_vcpu_create(vm, &cpu);
 *   xbt_regs r;  xbt_vcpu_get_regs(cpu, &r);  r.eip = entry;  xbt_vcpu_set_regs(cpu, &r);
 *   for (;;) {
 *       xbt_vcpu_run(cpu, &ex);
 *       switch (ex->reason) {
 *       case XBT_EXIT_IO:   if (ex->io.is_in) ex->io.data = port_in(...); else port_out(...);
 *                           break;       // an IN completes when run is called again
 *       case XBT_EXIT_HLT:  wait_for_interrupt(); break;
 *       case XBT_EXIT_SHUTDOWN: case XBT_EXIT_INTERNAL_ERROR: goto done;
 *       }
 *   }
 *
 * Threads: a vCPU is run by one thread at a time.  xbt_vcpu_kick() may be called from
 * any thread (or a signal handler): it makes a running vCPU re-check its interrupt
 * source and the stop request within a bounded time, even in a tight guest loop.
 * Everything else on a VM or vCPU must not race with xbt_vcpu_run on it.
 *
 * Several vCPUs (API 1.6): xbt_vcpu_create may be called up to XBT_MAX_VCPUS times,
 * all before the first xbt_vcpu_run of any of them (later: XBT_E_INVAL, unless every
 * vCPU of the VM has been destroyed: then it makes vCPU 0 again); the k-th
 * call makes vCPU k (xbt_vcpu_index), in the state vCPU 0 starts in (the embedder
 * gives application processors their INIT / start-up state with xbt_vcpu_set_sregs
 * and xbt_vcpu_set_regs).  Different vCPUs run at the same time on different threads;
 * they share guest memory with x86's ordering (translated code keeps every guest
 * access and its LOCK prefix), each has its own shadow MMU (a TLB of its own: an INVLPG
 * or CR3 load on one flushes that one) and translation cache; a guest write to code
 * another vCPU has translated drops that translation before the write is made (the
 * writer waits while the other runs translated code).  The embedder's in-run handlers
 * (xbt_vm_set_mmio_handler, xbt_vm_set_pio_handler) and interrupt sources are called
 * on each vCPU's own thread, concurrently.  xbt_vm_invalidate and xbt_vm_write_phys
 * may be called from any thread while vCPUs run (other vCPUs drop the code before
 * their next translated block).  With more than one vCPU, guest user code runs
 * translated (xbt_vm_user_mode says why).  xbt_vm_save_state / xbt_vm_restore_state
 * (API 1.7) take every vCPU of the VM at once, called on any thread while none runs.
 */
#define XBT_MAX_VCPUS 8

typedef struct xbt_vm xbt_vm;
typedef struct xbt_vcpu xbt_vcpu;

enum {
    XBT_USER_DIRECT = 0,   /* guest CPL 3 code runs natively at its own addresses */
    XBT_USER_STRICT = 1,   /* guest CPL 3 code is translated too (user window) */
    XBT_USER_ADAPTIVE = 2, /* the default: an address space's user code is translated
                              until it runs long between kernel entries (1 ms), then
                              directly, with the spots that trap often translated */
};
/* Environment variables the library reads when a VM is created (tuning and debugging,
   not needed for normal use): XBT_ADAPT_TICKS (adaptive mode's threshold in TSC ticks,
   default 2500000; 0: run every address space directly at once), XBT_NO_SHARE=1 (never
   copy a translation from another address; translate every block), XBT_CHECK_SHARED=1
   (translate every copied block afresh too and stop with XBT_EXIT_INTERNAL_ERROR where
   the two differ), XBT_SPIN (PAUSEs a side of a runner hand-off spins before it
   sleeps), XBT_DEBUG_ESCAPE=1 (print why a runner process ended), XBT_NO_FAST_CALLOUTS=1
   (every callout takes the full handler: for checking the fast ones against it). */

typedef struct xbt_vm_config {
    uint64_t ram_size;     /* bytes of guest physical RAM from address 0 (multiple of 4 KiB,
                              at most 3 GiB): memory slot 0; 0 for none (slots are then
                              added with xbt_vm_set_mem_region) */
    uint64_t tcache_size;  /* bytes of translation cache, 0 for the default (64 MiB) */
    uint32_t user_mode;    /* XBT_USER_*; direct and adaptive fall back to strict where
                              the host cannot (see xbt_vm_user_mode) */
    uint32_t flags;        /* XBT_VM_* */
    uint32_t trace_threshold; /* entries of a trace head before its path is recorded
                                 (with XBT_VM_TRACES), 0 for the default (50) */
    const char *perf_map_path; /* with XBT_VM_PERF_MAP: the file the map is appended to,
                                  NULL for /tmp/perf-<pid>.map (where perf looks); read
                                  only during xbt_vm_create */
} xbt_vm_config;

#define XBT_VM_TRACES    0x04 /* build traces of hot paths (3-12% faster on hot kernel
                                 loops, no gain on a Linux boot: opt-in).  Without it,
                                 chained basic blocks only */
#define XBT_VM_NO_CHAIN  0x02 /* every block exits to the dispatcher (debugging); no
                                 traces either */
#define XBT_VM_TRACE_PROFILE 0x08 /* with XBT_VM_TRACES: each trace counts its entries and
                                     the side exits taken (a memory increment per entry
                                     and per side exit; see xbt_vcpu_trace_profile) */
#define XBT_VM_LOCAL_APIC 0x20 /* the embedder models a local APIC at IA32_APIC_BASE:
                                  CPUID.1:EDX.APIC and the IA32_APIC_BASE MSR exist
                                  (without: the MSR raises #GP) */
/* Deprecated: asks for what is the default (no traces) and does nothing else; kept so
   that code written before API 1.0 builds.  Given with XBT_VM_TRACES, which it used to
   override, xbt_vm_create refuses the contradiction (XBT_E_INVAL). */
#define XBT_VM_NO_TRACES 0x01

#define XBT_VM_PERF_MAP 0x10 /* write a perf map of translated code (see below) */
#define XBT_VM_PERF_JITDUMP 0x80 /* write perf's jitdump of translated code (see below) */
#define XBT_VM_STRING_IO 0x40 /* the embedder handles I/O exits of several elements
                                 (io.count > 1, io.buf): a REP INS or OUTS moves up to a
                                 page of RAM per exit, as KVM's string I/O does (without:
                                 one element per exit) */

#define XBT_VM_CONFIG_INIT { 64u << 20, 0, XBT_USER_ADAPTIVE, 0, 0, NULL }

/* Creates a VM.  XBT_E_INVAL for a bad config (an unknown flag among them), XBT_E_HOST
   if the host refuses what every VM needs (signal handlers, memfds, address space for
   the windows and the translation cache), with the reason in xbt_last_host_error().
   What direct user mode needs besides is found at the first run in that mode
   (xbt_vm_user_mode), or beforehand with xbt_has(XBT_CAP_USER_DIRECT, ...). */
xbt_status xbt_vm_create(const xbt_vm_config *cfg, xbt_vm **out);
void xbt_vm_destroy(xbt_vm *vm);
/* The user-code mode in effect (XBT_USER_*), and why it differs from the one asked
   for (NULL when it does not). */
uint32_t xbt_vm_user_mode(const xbt_vm *vm, const char **why);
/* Host view of memory slot 0 (xbt_vm_mem_host(vm, 0); cfg.ram_size's RAM, NULL without
   a slot 0), valid until the slot changes.  Writes through it to pages holding
   translated code must be followed by xbt_vm_invalidate(), or done with
   xbt_vm_write_phys(). */
uint8_t *xbt_vm_ram(xbt_vm *vm);
uint64_t xbt_vm_ram_size(const xbt_vm *vm); /* slot 0's size */
/* Guest physical memory by address, across slots ([gpa, gpa + len) all in slots, or
   XBT_E_INVAL): write_phys writes ROM too and is not logged in dirty logs (the
   embedder's own write, KVM's rule); invalidate drops the translations made from it. */
xbt_status xbt_vm_write_phys(xbt_vm *vm, uint64_t gpa, const void *src, size_t len);
xbt_status xbt_vm_read_phys(xbt_vm *vm, uint64_t gpa, void *dst, size_t len);
xbt_status xbt_vm_invalidate(xbt_vm *vm, uint64_t gpa, size_t len);

/* ---- guest physical memory slots (API 1.4) -------------------------------------------
 *
 * Shaped after KVM_SET_USER_MEMORY_REGION.  Guest physical memory is up to
 * XBT_MAX_MEM_SLOTS slots, each a page-aligned range below 4 GiB backed by a file;
 * every address outside them is MMIO (XBT_EXIT_MMIO).  Slot 0 is cfg.ram_size's RAM
 * when that is not 0.  A slot's bytes are shared: the embedder's view
 * (xbt_vm_mem_host), the guest's and, for an embedder's file, every other mapping of it.
 *
 *  - fd -1: the library makes zeroed memory (a memfd); else the embedder's file (a
 *    memfd, a shm or another regular file opened read-write), of which the library
 *    keeps a dup(): [fd_offset, fd_offset + size) must be inside the file, and the
 *    embedder must not shrink it while the slot exists.
 *  - XBT_MEM_READONLY (ROM): guest reads see the bytes; a guest write is an
 *    XBT_EXIT_MMIO write exit with its gpa and data (KVM's rule), as are the VMM's
 *    writes on the guest's behalf (a callout's operand); the embedder loads it with
 *    xbt_vm_write_phys or through xbt_vm_mem_host.
 *  - XBT_MEM_LOG_DIRTY: pages the guest writes (and the VMM on its behalf: callouts,
 *    accessed and dirty bits in page tables, string I/O) are logged; the embedder's
 *    own writes are not.  xbt_vm_get_dirty_log reads and clears the log: from then on
 *    the next write to each of those pages is logged again (the windows map a logged
 *    page read-only until it is written).
 *  - size 0 deletes the slot.  Setting a slot that exists with the same gpa and size
 *    and fd -1 changes only its flags (the bytes stay; a log turned on starts clean);
 *    anything else replaces it (the old bytes are gone unless the embedder's file
 *    keeps them; if making the new one fails, XBT_E_NOMEM or XBT_E_HOST, the slot is
 *    left empty).
 * XBT_E_INVAL: slot out of range, unknown flags, pad not 0, gpa/size/fd_offset not
 * page aligned, a range reaching 4 GiB or beyond (PAE's 36-bit addresses are not slots
 * yet: above 4 GiB is MMIO to the guest), an overlap with another slot, fd below -1 or
 * not a read-write regular file holding the range, fd_offset with fd -1.  XBT_E_NOMEM,
 * XBT_E_HOST (xbt_last_host_error).
 *
 * Between runs, any time: a change drops every window mapping and every translation
 * (the vCPU's next run refills them) and restarts the runner processes of direct
 * user mode, so that nothing the guest sees comes from the old layout.  These calls,
 * xbt_vm_get_dirty_log included, are not made while xbt_vcpu_run runs on the VM's vCPU
 * (an embedder that reads the log of a running guest stops it first: xbt_vcpu_stop).
 */
#define XBT_MAX_MEM_SLOTS 32
#define XBT_MEM_READONLY  0x1
#define XBT_MEM_LOG_DIRTY 0x2
typedef struct xbt_mem_region {
    uint32_t slot;       /* 0..XBT_MAX_MEM_SLOTS-1 */
    uint32_t flags;      /* XBT_MEM_* */
    uint64_t gpa;        /* first guest physical address, page aligned */
    uint64_t size;       /* bytes, a multiple of 4 KiB; 0 deletes the slot */
    int32_t fd;          /* -1: library memory; else the embedder's file (dup()ed) */
    uint32_t pad;        /* 0 */
    uint64_t fd_offset;  /* where the slot's bytes start in fd, page aligned */
} xbt_mem_region;
xbt_status xbt_vm_set_mem_region(xbt_vm *vm, const xbt_mem_region *r);
/* Host view of the slot's bytes (size bytes), or NULL for a slot not in use; valid
   until the slot changes. */
uint8_t *xbt_vm_mem_host(xbt_vm *vm, uint32_t slot);
/* The dirty log of a slot with XBT_MEM_LOG_DIRTY: bitmap gets one bit per page of the
   slot (bit k of bitmap[k / 64] is page gpa + k * 4096; (pages + 63) / 64 words), set
   = written by the guest since the last call; the log is cleared and the pages are
   write-protected again.  XBT_E_INVAL for a slot without a log or a NULL bitmap. */
xbt_status xbt_vm_get_dirty_log(xbt_vm *vm, uint32_t slot, uint64_t *bitmap);
/* ---- end of guest physical memory slots ---------------------------------------------- */
/* Why the last XBT_E_HOST happened on this thread (valid until the next call on the
   thread that fails with XBT_E_HOST). */
const char *xbt_last_host_error(void);

/*
 * Profiling translated code with perf (XBT_VM_PERF_MAP).  The VM appends one line
 * "START SIZE NAME" (hexadecimal, no 0x) per translated block or trace to the perf map
 * (perf's convention for JIT code: `perf report` resolves samples in anonymous
 * executable memory of process PID through /tmp/perf-PID.map).  START is the address
 * the CPU executes, in the code cache's executable view (xbt_vm_code_range).  Names:
 *   xbt:schedule+0x1a        CPL 0 code covered by a guest symbol (symbol+offset)
 *   xbt:cpl3:main+0x4        the same at another CPL (strict/adaptive user code)
 *   xbt:cpl0:c10234a0        no symbol covers the guest EIP
 *   xbt:trace:...            a trace (XBT_VM_TRACES) whose head is that EIP
 *   xbt:single-step          the scratch page single instructions run from
 * A cache flush reuses the cache's addresses: the later lines name them again.  perf
 * does not order the lines in time: a later line with the same START replaces an
 * earlier one, a partly overlapping one does not, so a profile of a run that flushed
 * (xbt_stats.flushes) may charge samples to blocks of an earlier generation.
 * Lines are buffered and written when the buffer fills, at cache flushes, when
 * xbt_vcpu_run returns anything but an I/O or MMIO exit, at xbt_vm_perf_map_flush and
 * at xbt_vm_destroy.  Without the flag nothing is written or formatted.
 * Guest code run directly (XBT_USER_DIRECT, adaptive) runs in runner processes, not
 * in the cache: perf shows it under those processes, without names.
 *
 * XBT_VM_PERF_JITDUMP (with or without the map) writes perf's jitdump instead of or
 * beside it: jit-PID.dump in the directory of perf_map_path when that is set, else in
 * /tmp, with a record per block or trace that holds its name (as in the map), address,
 * host code bytes as translated (before any chaining patch) and a CLOCK_MONOTONIC time
 * stamp.  The process maps the file executable once, so that `perf record -k mono`
 * notes it and `perf inject --jit -i perf.data -o jit.data` turns the records into
 * ELF images: `perf report -i jit.data` then charges samples to the block that was at
 * an address at the sample's time (exact across cache flushes, unlike the map) and
 * `perf annotate` shows translated code instruction by instruction.  Buffered and
 * written as the map is; a close record ends it at xbt_vm_destroy.  The scratch page
 * of single steps (named in the map) has no record: its bytes change at every step.
 * A process has one dump (perf inject knows it by that name): VMs of one process that
 * ask for it share it, and must name the same directory.  xbt_vm_create fails
 * (XBT_E_HOST) when the file cannot be created or mapped executable (a noexec /tmp),
 * or when another VM of the process writes it in another directory.
 */

/* A guest symbol: code at guest EIPs [addr, addr + size) belongs to name (size 0:
   unknown, up to the next symbol, at most 64 KiB).  The name is copied; it must be 1 to
   255 printable ASCII characters.  Blocks translated afterwards are named by it.
   XBT_E_INVAL for a bad argument or a range past 4 GiB, XBT_E_NOMEM. */
xbt_status xbt_vm_add_symbol(xbt_vm *vm, uint32_t addr, uint32_t size, const char *name);
/* The symbols are a kernel's as linked, which may run them moved by a multiple of
   `align` (x86 Linux's KASLR: the bzImage's kernel_alignment; `text`: its _text as
   linked).  The first block translated at CPL 0 with paging on at or above text decides
   the move: its linear address minus text, rounded down to a multiple of align (Linux's
   first such code is in startup_32, within align of _text: this relies on that layout).
   Blocks at or above text + the move are named by their address minus it from then
   on; before it, and between text and text + the move, code at or above text gets no
   symbol names; code below text is looked up as it is (user code's symbols).  Before
   the first xbt_vcpu_run; XBT_E_INVAL unless align is a power of two of at least
   4 KiB.  xbt_vm_symbols_moved: the move once decided (XBT_E_INVAL before, or without
   xbt_vm_relocated_symbols).  API 2.10. */
xbt_status xbt_vm_relocated_symbols(xbt_vm *vm, uint32_t text, uint32_t align);
xbt_status xbt_vm_symbols_moved(xbt_vm *vm, uint32_t *moved);
/* Writes the buffered lines of the perf map and records of the jitdump now.  XBT_OK
   (also without either), XBT_E_INVAL, XBT_E_HOST if a write to either has failed (it
   stays incomplete). */
xbt_status xbt_vm_perf_map_flush(xbt_vm *vm);
/* The executable view of the code cache: translated blocks and traces run from
   [*start, *start + *size).  XBT_E_INVAL for NULL arguments. */
xbt_status xbt_vm_code_range(const xbt_vm *vm, uint64_t *start, uint64_t *size);

typedef struct xbt_regs {
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t eip, eflags;
} xbt_regs;

typedef struct xbt_segment {
    uint32_t base, limit;  /* limit in bytes (granularity applied) */
    uint16_t selector;
    uint8_t type, s, dpl, present, db, g, avl, unusable;
} xbt_segment;

typedef struct xbt_dtable {
    uint32_t base;
    uint16_t limit;
} xbt_dtable;

typedef struct xbt_sregs {
    xbt_segment cs, ds, es, fs, gs, ss, tr, ldt;
    xbt_dtable gdt, idt;
    uint32_t cr0, cr2, cr3, cr4;
    uint32_t dr[8];
} xbt_sregs;

xbt_status xbt_vcpu_create(xbt_vm *vm, xbt_vcpu **out);
void xbt_vcpu_destroy(xbt_vcpu *cpu);
/* Its index k: the k-th xbt_vcpu_create of its VM (0 for the first). */
uint32_t xbt_vcpu_index(const xbt_vcpu *cpu);
xbt_status xbt_vcpu_get_regs(xbt_vcpu *cpu, xbt_regs *r);
/* Setting registers also ends a HLT and an interrupt shadow, and drops an IN (or an
   MSR exit, API 1.4) that was not completed: the vCPU continues from exactly the state
   given.  Injected events stay pending. */
xbt_status xbt_vcpu_set_regs(xbt_vcpu *cpu, const xbt_regs *r);
xbt_status xbt_vcpu_get_sregs(xbt_vcpu *cpu, xbt_sregs *s);
/* CR0.PE clear is real mode (PG set with PE clear: XBT_E_INVAL): the CPL is then 0
   whatever CS's DPL, and the segment registers' hidden parts are used as given (a
   real-mode load changes only selector and base; CS's D bit chooses 16- or 32-bit
   code, SS's B bit the stack pointer's width). */
xbt_status xbt_vcpu_set_sregs(xbt_vcpu *cpu, const xbt_sregs *s);
/* Model-specific registers the virtual CPU implements; XBT_E_INVAL for others. */
xbt_status xbt_vcpu_get_msr(xbt_vcpu *cpu, uint32_t index, uint64_t *value);
xbt_status xbt_vcpu_set_msr(xbt_vcpu *cpu, uint32_t index, uint64_t value);

enum xbt_exit_reason {
    XBT_EXIT_NONE = 0,
    XBT_EXIT_IO,             /* port I/O: io */
    XBT_EXIT_MMIO,           /* access to guest physical memory without RAM: mmio */
    XBT_EXIT_HLT,            /* HLT with interrupts enabled and none pending (or IF=0) */
    XBT_EXIT_SHUTDOWN,       /* triple fault */
    XBT_EXIT_DEBUG,          /* a breakpoint, a single step or a watchpoint: debug */
    XBT_EXIT_INTERNAL_ERROR, /* xbt could not go on: internal.message says why */
    XBT_EXIT_STOPPED,        /* the embedder asked (xbt_vcpu_stop) */
    XBT_EXIT_IRQ_WINDOW,     /* the guest can take an interrupt now (if requested) */
    XBT_EXIT_MSR,            /* RDMSR/WRMSR of an MSR the embedder handles: msr */
};

typedef struct xbt_exit {
    uint32_t reason;         /* enum xbt_exit_reason */
    uint32_t pad;
    union {
        struct {
            uint16_t port;
            uint8_t size;    /* 1, 2 or 4 */
            uint8_t is_in;
            uint32_t data;   /* count 1: out: the value written; in: filled by the
                                embedder */
            uint32_t count;  /* elements: 1, or more with XBT_VM_STRING_IO (a REP INS or
                                OUTS); the port sees them one after the other */
            uint32_t pad2;
            uint8_t *buf;    /* count > 1: count elements of `size` bytes, in order; out:
                                the values written; in: the embedder fills them */
        } io;
        struct {
            uint64_t gpa;
            uint32_t size;
            uint8_t is_write;
            uint8_t pad[3];
            uint64_t data;   /* write: the value; read: filled by the embedder */
        } mmio;
        struct {
            uint32_t eip;
            char message[200];
        } internal;
        struct {
            uint32_t eip;    /* where the guest stopped (the next instruction to run) */
            uint32_t linear; /* CS base + eip */
            uint32_t why;    /* XBT_DEBUG_BREAKPOINT, XBT_DEBUG_STEP or XBT_DEBUG_WATCH */
            uint32_t watch;  /* XBT_DEBUG_WATCH (API 1.4): the watchpoint's linear address */
            uint32_t watch_access; /* XBT_DEBUG_WATCH: XBT_WATCH_WRITE or XBT_WATCH_READ,
                                      the access that hit it */
        } debug;
        struct {
            uint32_t index;  /* ECX: the MSR */
            uint8_t is_write;
            uint8_t inject_gp; /* set by the embedder: the instruction raises #GP(0) */
            uint8_t pad[2];
            uint64_t data;   /* write: EDX:EAX; read: filled by the embedder */
        } msr;
        uint8_t raw[256];
    };
} xbt_exit;

/*
 * Runs the vCPU until an exit; *exit points at the vCPU's exit record (valid until
 * the next run).  Returns XBT_OK for every guest event, including a triple fault;
 * an error status only for misuse (XBT_E_INVAL).
 */
xbt_status xbt_vcpu_run(xbt_vcpu *cpu, xbt_exit **exit);

/*
 * Interrupt source: the vCPU calls pending(opaque) whenever it could take an external
 * interrupt (EFLAGS.IF=1, no interrupt shadow); a return of -1 means none, otherwise
 * the vector, which is then acknowledged and delivered.  Called on the vCPU's thread.
 */
typedef int (*xbt_irq_fn)(void *opaque);
xbt_status xbt_vcpu_set_irq_source(xbt_vcpu *cpu, xbt_irq_fn pending, void *opaque);
/*
 * MMIO answered without an exit (API 1.5): for a plain access (a MOV, MOVZX or MOVSX of
 * 1, 2 or 4 bytes within one page, to or from a general register or an immediate) the
 * run calls fn on the vCPU's thread, inside xbt_vcpu_run, instead of returning an
 * XBT_EXIT_MMIO.  fn returns nonzero when it handled the access: a read's value in
 * *data (the low `size` bytes), a write's in *data already; zero, and the access is
 * made as an exit as before (a device fn does not serve, an address it does not know;
 * fn must then have done nothing).  Other accesses (strings, read-modify-write, SSE,
 * accesses crossing a page) are always exits; a write to ROM (XBT_MEM_READONLY) is MMIO
 * and reaches fn too.  Inside fn the embedder may read the vCPU (xbt_vcpu_get_regs,
 * get_sregs, get_msr: EIP is the instruction's own), write guest memory or drop
 * translations (xbt_vm_write_phys, xbt_vm_invalidate: the run then leaves the block),
 * kick, stop or NMI the vCPU; it must not run the vCPU or set its state, and must not
 * block on something only the vCPU's thread could release.  Like KVM's in-kernel
 * devices, this saves the round trip out of the run for the hot registers (a local
 * APIC's).  fn NULL: every access exits.  Set it between runs, on the vCPU's thread (or
 * before any run): fn and opaque are not one atomic pair.
 */
typedef int (*xbt_mmio_fn)(void *opaque, uint64_t gpa, uint32_t size, int is_write,
                           uint64_t *data);
xbt_status xbt_vm_set_mmio_handler(xbt_vm *vm, xbt_mmio_fn fn, void *opaque);
/*
 * The same for port I/O (API 1.5): IN and OUT (not INS/OUTS) call fn with the port, the
 * size (1, 2, 4) and the data (*data: OUT's value; IN's to fill) instead of an
 * XBT_EXIT_IO, after the I/O permission checks; zero makes the exit as before.  A
 * handler that makes an interrupt deliverable (or asks the run to end) calls
 * xbt_vcpu_kick (xbt_vcpu_stop): the run then leaves translated code after the
 * instruction, as it would after an exit.  The same goes for the MMIO handler.
 */
typedef int (*xbt_pio_fn)(void *opaque, uint16_t port, uint32_t size, int is_in,
                          uint32_t *data);
xbt_status xbt_vm_set_pio_handler(xbt_vm *vm, xbt_pio_fn fn, void *opaque);
/*
 * Read shadow of one MMIO page of one vCPU (API 1.8), after Intel APICv's
 * APIC-register virtualization: `page` holds the current value of the page's
 * registers, 1,024 dwords at their offsets, and bit k of readable[k / 32] says that a
 * 4-byte read at offset 4k may be answered from page[k].  An instruction that keeps
 * reaching MMIO (an MMIO site: it is then translated as a call into the runtime) and is
 * a plain MOV of 4 bytes into a general register then reads page[k] itself, inline,
 * when its address is in this page and dword k is readable: no handler call, no exit
 * (xv6 reads its local APIC's ID register at every pushcli).  Everything else is as
 * before: other dwords, other sizes and instructions, every write (the handler of
 * xbt_vm_set_mmio_handler or an exit).  The embedder keeps page current: a dword it
 * marks readable must hold what its handler would return for that read at any time the
 * guest may read it, so only registers that change when the embedder is told (the
 * guest's writes to them, which it handles, or its own changes made on the vCPU's
 * thread) belong in the readable set; a register another thread changes while the
 * vCPU runs (an interrupt request set by an IPI, a timer's current count) does not.
 * Each vCPU has its own (a local APIC is at the same address on every vCPU); gpa is
 * page aligned, below 4 GiB and not RAM or ROM (XBT_E_INVAL).  The address is a guest
 * physical one: the runtime finds the guest's linear mapping of it by a read that walks
 * the page tables and keeps it as a TLB would, until CR3 is loaded, an INVLPG, a change
 * of paging's mode bits or the next xbt_vcpu_run.  With XBT_MMIO_SHADOW_APIC_BASE in
 * flags the shadow serves only while IA32_APIC_BASE holds the value it had when the
 * shadow was set (a local APIC moves or goes with it: the embedder sets the shadow
 * again when it sees the new base).  The library keeps the pointer (page must stay
 * valid while set) and copies readable.  s NULL: none.  Call it between runs on any
 * thread, or on the vCPU's thread from its MMIO handler (xbt_vm_set_mmio_handler).
 */
#define XBT_MMIO_SHADOW_APIC_BASE 0x1
typedef struct xbt_mmio_shadow {
    uint64_t gpa;
    const volatile uint32_t *page;
    uint32_t readable[32];
    uint32_t flags;
} xbt_mmio_shadow;
xbt_status xbt_vcpu_set_mmio_shadow(xbt_vcpu *cpu, const xbt_mmio_shadow *s);
/*
 * For embedders that decide themselves when to inject (KVM's request_interrupt_window):
 * with `on`, the next run returns XBT_EXIT_IRQ_WINDOW as soon as the guest can take an
 * external interrupt (EFLAGS.IF=1 and no STI/MOV SS shadow, checked after the interrupt
 * source, if any, had its turn); the request is used up by that exit.  Called on the
 * vCPU's thread between runs.
 */
xbt_status xbt_vcpu_request_irq_window(xbt_vcpu *cpu, int on);
/* Any thread: re-check the interrupt source within a bounded time. */
void xbt_vcpu_kick(xbt_vcpu *cpu);
/* Any thread: a non-maskable interrupt (the NMI pin, an NMI IPI or LVT entry).  It is
   taken through vector 2 at the next instruction boundary whatever EFLAGS.IF, except
   while NMIs are blocked: from the delivery of one to the next IRET (the SDM's rule;
   one more NMI stays pending meanwhile).  It also ends a HLT. */
void xbt_vcpu_nmi(xbt_vcpu *cpu);
/* Any thread: leave xbt_vcpu_run with XBT_EXIT_STOPPED within a bounded time. */
void xbt_vcpu_stop(xbt_vcpu *cpu);

/*
 * Debugging (what a gdb stub needs; xbt-run --gdb is one).  A breakpoint is a guest
 * linear address (CS base + EIP, as hardware's debug registers see it): the run stops
 * with XBT_EXIT_DEBUG (why XBT_DEBUG_BREAKPOINT) before the instruction there runs; the
 * next run starts with that instruction without stopping again.  With single-step on,
 * each run executes one instruction (an interrupt or exception it raises is delivered:
 * the stop is at the handler's first instruction) and stops with XBT_DEBUG_STEP.  While
 * any breakpoint or single-step is set, guest user code runs translated, never
 * directly (direct execution would not see them), and translations end before every
 * breakpoint; setting or clearing one drops the translation cache.  At most
 * XBT_MAX_BREAKPOINTS; XBT_E_INVAL beyond, or for clearing one that is not set.  On the
 * vCPU's thread between runs.
 */
#define XBT_MAX_BREAKPOINTS 32
enum { XBT_DEBUG_BREAKPOINT = 1, XBT_DEBUG_STEP = 2 };
xbt_status xbt_vcpu_set_breakpoint(xbt_vcpu *cpu, uint32_t linear, int on);
xbt_status xbt_vcpu_set_single_step(xbt_vcpu *cpu, int on);
/* Guest memory by linear address, through the guest's page tables as they are now
   (paging off: physical), as a debugger reads it: no accessed or dirty bit is set, no
   fault is raised.  XBT_E_INVAL if some byte is not mapped or not RAM. */
xbt_status xbt_vcpu_read_virt(xbt_vcpu *cpu, uint32_t linear, void *dst, size_t len);
/* The same for a debugger's write (translations of what it overwrites are dropped, as
   with xbt_vm_write_phys); nothing is written unless every byte is mapped RAM. */
xbt_status xbt_vcpu_write_virt(xbt_vcpu *cpu, uint32_t linear, const void *src, size_t len);

/* ---- the embedder's policy: CPUID, MSR exits, event injection (API 1.4) --------------
 *
 * What a KVM user sets beyond run and exit (KVM_SET_CPUID2, the MSR filter with
 * KVM_EXIT_X86_RDMSR/WRMSR, KVM_INTERRUPT, KVM_SET_VCPU_EVENTS's exception).  All of it
 * on the vCPU's thread between runs (xbt_vm_set_msr_exits: before or between runs).
 */

/*
 * CPUID.  xbt_vcpu_get_cpuid lists the leaves of the CPU model xbt implements by
 * default (cpumodel.c; with XBT_VM_LOCAL_APIC the APIC bit is in leaf 1), or the policy
 * set since.  xbt_vcpu_set_cpuid replaces the model by the entries given: CPUID of a
 * leaf (and, for an XBT_CPUID_INDEXED entry, the subleaf in ECX) that no entry names
 * returns zeros, as the model does for the leaves it does not list.  The policy may hide
 * features and may say what it likes where nothing depends on it, but may not claim a
 * feature xbt cannot provide: an entry with a bit outside its leaf's mask is refused
 * with XBT_E_INVAL, and nothing changes.  The masks (bits an entry may set):
 *   leaf 0            any (the highest leaf, the vendor string)
 *   leaf 1            EAX, EBX any (signature, APIC ID, counts); ECX 0x80180201 (SSE3
 *                     SSSE3 SSE4.1 SSE4.2 hypervisor); EDX 0x0781E9F9 (FPU PSE TSC MSR
 *                     PAE MCE CX8 SEP MCA PGE CMOV PAT MMX FXSR SSE SSE2), and 0x200
 *                     (APIC) with XBT_VM_LOCAL_APIC only
 *   leaf 7            subleaf 0 EBX 0x00100080 (SMEP, SMAP: not in the model, which
 *                     leaves them out for their cost; a policy may add them), ECX
 *                     0x00400004 (UMIP RDPID), EDX 0x20000000 (IA32_ARCH_CAPABILITIES);
 *                     the rest 0
 *   leaf 0x80000001   EAX any; ECX 0x1 (LAHF/SAHF); EDX 0x08000000 (RDTSCP)
 *   leaf 0x80000008   EAX 0x2024 (any subset: at most 36 physical, 32 linear bits)
 *   leaves 2, 4, 0x15, 0x16, 0x40000000-0x400000FF, 0x80000000, 0x80000002-0x80000004
 *                     any (caches, the TSC's rate, hypervisor leaves, the brand string)
 *   every other leaf  zero (XSAVE's leaf 0xD, 0x80000001's SYSCALL/NX/long mode, the
 *                     performance monitor, and the rest)
 * What follows the policy: CPUID wherever it runs (translated, callouts, user code run
 * directly: its CPUID always runs translated); an SSE generation hidden (leaf 1 EDX bits
 * 25 SSE, 26 SSE2; ECX bits 0 SSE3, 9 SSSE3, 19 SSE4.1, 20 SSE4.2): its instructions
 * raise #UD, as the SDM says for a CPU without it (and user code then always runs
 * translated, since the host CPU would run them); MOV to CR4 raises
 * #GP for PSE, PAE, MCE, PGE, OSFXSR, OSXMMEXCPT or UMIP while PSE, PAE, MCE, PGE, FXSR,
 * SSE or UMIP is hidden (a reserved bit then), and for SMEP or SMAP unless leaf 7's EBX
 * has them (with them: SMEP, SMAP, STAC and CLAC as the SDM has them); APIC hidden:
 * IA32_APIC_BASE raises #GP; leaf 7's EDX bit 29 hidden: IA32_ARCH_CAPABILITIES raises
 * #GP; MCA hidden: the machine-check MSRs raise #GP; RDTSCP or RDPID hidden: the
 * instruction raises #UD, and IA32_TSC_AUX raises #GP once both are.  Hiding SEP, TSC, CMOV, CX8, MMX or FXSR
 * changes only what CPUID says (and CR4 as above): the SDM lists no fault for SYSENTER,
 * RDTSC, CMOVcc, CMPXCHG8B or the MMX instructions on a CPUID bit; FXSAVE/FXRSTOR with
 * FXSR hidden still run (the SDM's #UD for them is not modelled).  At most XBT_MAX_CPUID_ENTRIES; entries must be unique
 * (function, and index for indexed ones).  xbt_vcpu_get_cpuid writes at most max
 * entries and sets *n to how many there are (max 0 counts; XBT_E_INVAL if max is
 * smaller than that, with *n set).
 */
#define XBT_MAX_CPUID_ENTRIES 64
#define XBT_CPUID_INDEXED 1u /* the entry is for the subleaf `index` (ECX) only */
typedef struct xbt_cpuid_entry {
    uint32_t function, index, flags; /* flags: XBT_CPUID_INDEXED */
    uint32_t eax, ebx, ecx, edx;
} xbt_cpuid_entry;
xbt_status xbt_vcpu_get_cpuid(xbt_vcpu *cpu, xbt_cpuid_entry *entries, size_t max, size_t *n);
xbt_status xbt_vcpu_set_cpuid(xbt_vcpu *cpu, const xbt_cpuid_entry *entries, size_t n);

/*
 * MSRs the embedder handles itself.  RDMSR or WRMSR (at CPL 0, where they do not raise
 * #GP first) of an MSR in the list leaves the run with XBT_EXIT_MSR: msr.index, is_write
 * and, for a write, data (EDX:EAX).  The next run completes the instruction: a read puts
 * the embedder's msr.data into EDX:EAX; with msr.inject_gp set, the instruction raises
 * #GP(0) instead (its registers unchanged).  The list replaces the previous one (n 0:
 * none), takes precedence over the MSRs xbt implements (the embedder's answers replace
 * them for the guest; xbt_vcpu_get_msr/set_msr still reach xbt's), and holds at most
 * XBT_MAX_MSR_EXITS distinct indices (XBT_E_INVAL beyond, or for a NULL list with n > 0).
 * MSRs neither in the list nor implemented raise #GP as before.
 */
#define XBT_MAX_MSR_EXITS 64
xbt_status xbt_vm_set_msr_exits(xbt_vm *vm, const uint32_t *indices, size_t n);

/*
 * Event injection.  xbt_vcpu_inject_interrupt: an external interrupt through IDT vector
 * `vector` (0-255), delivered at the start of the next run as the interrupt source's
 * are (it ends a HLT; the return address pushed is the next instruction's).  Allowed
 * only when the guest can take one now: EFLAGS.IF=1 and no STI/MOV SS shadow (as
 * after XBT_EXIT_IRQ_WINDOW); XBT_E_INVAL otherwise, and while one injected interrupt
 * is still pending.
 * xbt_vcpu_inject_exception: exception `vector` (0-31 but 2, the NMI: xbt_vcpu_nmi) as
 * a fault at the current EIP, delivered before the next instruction whatever IF says,
 * with the SDM's rules: the error code is pushed for the vectors that have one (8, 10-14,
 * 17), and has_error must be set for exactly those (XBT_E_INVAL otherwise); a
 * contributory fault (or a #PF after a #PF) met while delivering it becomes #DF, a fault
 * while delivering #DF a triple fault (XBT_EXIT_SHUTDOWN).  For a #PF the embedder sets
 * CR2 (xbt_vcpu_set_sregs) first.  One at a time: XBT_E_INVAL while one is pending,
 * and while an XBT_EXIT_MSR waits for its answer (inject_gp is the way to fault it).
 * Either reaches the guest wherever it is, user code run directly included (the run
 * delivers it before user code continues).
 */
xbt_status xbt_vcpu_inject_interrupt(xbt_vcpu *cpu, int vector);
xbt_status xbt_vcpu_inject_exception(xbt_vcpu *cpu, int vector, int has_error,
                                     uint32_t error_code);

/*
 * Watchpoints (data breakpoints, as the debug registers' DR0-DR3 with R/W 01 and 11):
 * `len` bytes (1, 2, 4 or 8, `linear` a multiple of len) at a guest linear address,
 * hit by a write (XBT_WATCH_WRITE), a read (XBT_WATCH_READ: the debug registers cannot
 * tell a read from an access; xbt can) or either (XBT_WATCH_ACCESS), at any CPL, by
 * translated code and by what the VMM does on an instruction's behalf (a PUSH of an
 * interrupt frame, MOVS or an IRET in a callout).  Trap-like: the run stops with
 * XBT_EXIT_DEBUG, why XBT_DEBUG_WATCH, after the instruction that made the access (EIP
 * is the next one's; an interrupt frame's push stops at the handler's first
 * instruction); debug.watch names the watchpoint, debug.watch_access the access.  A
 * REP string instruction is checked over the iterations it has left when it first
 * touches a watched page and stops after its last.  While any is set, user code runs
 * translated (as with breakpoints), the watched pages stay out of the memory windows
 * (an access to anything on such a page runs alone, checked) and the fast callouts are
 * off.  At most XBT_MAX_WATCHPOINTS; XBT_E_INVAL beyond, for a bad len, kind or
 * alignment, or for clearing one that is not set (on: 1 sets, 0 clears; the same
 * linear, len and kind).  On the vCPU's thread between runs.
 */
#define XBT_MAX_WATCHPOINTS 4
enum { XBT_DEBUG_WATCH = 3 };
enum { XBT_WATCH_WRITE = 1, XBT_WATCH_READ = 2, XBT_WATCH_ACCESS = 3 };
xbt_status xbt_vcpu_set_watchpoint(xbt_vcpu *cpu, uint32_t linear, uint32_t len, int kind,
                                   int on);

/*
 * Counters of one vCPU.  Sized: the caller sets `size` to the size of the struct it was
 * built with (XBT_STATS_INIT does), the library fills that many bytes or its own
 * struct's size, whichever is smaller, and sets `size` to the bytes filled.  New
 * counters are only ever appended, so an embedder built against an older header gets
 * the counters it knows, and one built against a newer header finds `size` telling
 * which of its fields the library filled (zero the struct first: the rest is left as
 * it was).
 */
typedef struct xbt_stats {
    uint32_t size;           /* in: the caller's sizeof(xbt_stats); out: bytes filled */
    uint32_t reserved;       /* written as 0 */
    uint64_t exits[16];      /* by enum xbt_exit_reason */
    uint64_t callouts[96];   /* by callout kind */
    uint64_t blocks, block_bytes, guest_insns_translated, translate_ns;
    uint64_t chains, unchains, lookups, lookup_hits, ibl_misses;
    uint64_t flushes, invalidations, dispatches;
    uint64_t exceptions[32], interrupts;
    uint64_t host_faults;
    /* guest paging: window misses mapped without the guest noticing, guest page faults
       raised, whole-window drops (CR3 loads, INVLPG, paging mode changes) */
    uint64_t hidden_faults, page_faults, window_drops;
    /* guest pages whose translations were dropped because they were written (self-
       modifying code, or a code page reused for data); window mappings re-checked
       against the page tables at CR3 loads, and of those dropped because an entry
       changed (what write-traced page tables would have caught) */
    uint64_t code_page_invalidations, wrec_checked, wrec_dropped;
    /* direct execution of user code: entries, exits (host signals), of those the kicks
       and the system calls (int n trapped by seccomp or #GP, SYSENTER by #UD), and
       instructions run once translated because they trapped */
    uint64_t direct_entries, direct_exits, direct_kicks, direct_syscalls, direct_xlate;
    /* traces: built, basic blocks laid out in them, recordings given up, and dispatcher
       entries into a trace (chained entries are not counted); indirect branches in
       traces guarded by their recorded target; with XBT_VM_TRACE_PROFILE, all entries
       of traces (chained ones too) and the side exits taken */
    uint64_t traces, trace_blocks, trace_aborts, trace_entries;
    uint64_t trace_guards, trace_execs, trace_side_exits;
    uint64_t block_execs;    /* with XBT_VM_TRACE_PROFILE: entries of plain blocks */
    /* direct execution's runner processes (one per recent address space): started,
       parked at an address-space switch, killed (code that left guest semantics, e.g.
       a far jump to the host's 64-bit selector, or a runner that did not answer), and
       D-window changes the VMM had to wait for */
    uint64_t direct_runner_starts, direct_parks, direct_escapes, direct_sync_waits;
    uint64_t direct_park_ns, direct_wait_ns, direct_map_requests; /* time in both */
    uint64_t direct_crossings; /* jumps from directly run code into a translated page */
    /* guest page faults from directly run code whose page went into the D-window
       before the next entry (the handler had made it present): one exit saved each */
    uint64_t direct_refaults_saved;
    /* blocks (of `blocks`) copied from a translation of the same physical bytes at
       another address (a library another process maps elsewhere) instead of translated */
    uint64_t blocks_shared;
    /* XBT_USER_ADAPTIVE: address spaces whose user code ran long enough between kernel
       entries to be run directly from then on */
    uint64_t adapt_promotions;
    /* guest pages that became code pages (their first translation) with paging on, and
       of those the ones whose writable mappings the reverse map had lost track of (every
       window emptied instead of the page's own mappings dropped) */
    uint64_t code_page_protects, code_protect_resets;
    /* callouts (of those counted in `callouts`) that the fast handlers completed with the
       guest's x87/SSE state left in the registers */
    uint64_t fast_callouts;
    /* MMIO accesses the embedder's handler answered without an exit (API 1.5;
       xbt_vm_set_mmio_handler) */
    uint64_t mmio_handled;
    /* IN/OUT the embedder's handler answered without an exit (xbt_vm_set_pio_handler) */
    uint64_t pio_handled;
    /* translated instructions whose accesses kept ending in guest page faults or window
       fills through host faults, translated again to check their page first (fault
       sites: their misses are callouts, counted in callouts[] as "pfcheck"; one taken
       back and made a site again counts again) */
    uint64_t fault_sites;
    /* times a vCPU spinning on PAUSE (a spin-wait loop: 64 PAUSEs in a row, each within
       4,096 TSC cycles of the last) gave its host CPU away (sched_yield), as pause-loop
       exiting does in hardware VMMs */
    uint64_t pause_yields;
    /* CR3 loads that gave the current window set to the new address space instead of
       switching sets (where a switch moves the host GS base by a system call: little
       of the current set differed; see docs/ARCHITECTURE.md, "Per-address-space
       windows") */
    uint64_t set_keeps;
    /* accesses of fault sites that reached a guest page whose mapping churns (a process's
       stack page, a page two address spaces map differently) without filling the window:
       each a callout instead of a host mapping change (docs/ARCHITECTURE.md, "Soft
       sites") */
    uint64_t soft_accesses;
    /* fault sites taken back: CPU-time samples found their blocks running while their
       checks made no callout (a loop that faulted only while its data were first
       touched), so their instructions were translated again without them
       (docs/ARCHITECTURE.md, "Fault sites") */
    uint64_t fault_sites_back;
    /* host faults of translated user code (GS fixed at the K-window) whose address sum
       reg + disp, taken without wrapping at 4 GiB, did wrap: each such instruction ran
       alone and is translated with the wrap from then on (docs/ARCHITECTURE.md, "User
       code") */
    uint64_t uk_wraps;
    /* adaptive mode: promoted address spaces sent back to translated user code because
       they took longer per kernel entry of their user code there than translated
       (docs/ARCHITECTURE.md, "Adaptive mode") */
    uint64_t adapt_demotions;
    /* direct execution: times a runner's threads were placed on one host CPU, the vCPU
       thread's (or XBT_RUNNER_CPU's; docs/ARCHITECTURE.md, "Where the two sides run") */
    uint64_t direct_runner_moves;
    /* direct execution: pages mapped executable whose bytes hold a pattern of a
       sensitive instruction, and how many of those the scan's verdict cache answered
       (the VM's, not the vCPU's; docs/ARCHITECTURE.md, "One virtual CPU") */
    uint64_t direct_page_scans, direct_scan_hits;
    /* direct execution: pages of code and read-only data mapped into the D-window
       before any fault asked for them, as pages directly run code faulted in before
       (docs/ARCHITECTURE.md, "A process's working set, predicted") */
    uint64_t direct_predicted;
    /* chains of a direct CALL that go past a PC thunk (`mov r32, [esp]; ret`) straight
       to the return address, counted in `chains` too (docs/ARCHITECTURE.md, "PC
       thunks") */
    uint64_t thunk_chains;
    /* chains from an exit taken only with the guest's x87/SSE state loaded to a block
       that starts by loading it: they go past that call (docs/ARCHITECTURE.md,
       "x87/SSE state"), counted in `chains` too */
    uint64_t fpu_chains;
    /* targets learned by the inline caches of indirect JMPs (docs/ARCHITECTURE.md,
       "Indirect branches"): each site learns at most twice; a third target retires its
       cache (the inline lookup alone from then on) */
    uint64_t jmp_cache_learns;
    /* guest page faults of translated code whose page went into its window before the
       faulting instruction ran again (the guest's handler had made the access possible):
       a host fault saved each, counted in `hidden_faults` too (docs/ARCHITECTURE.md,
       "Refills") */
    uint64_t refills;
    /* writes of translated code to a page holding other translated code, run alone with
       the page writable ("data beside code"), and the times a page was made data again
       instead (its translations dropped) at the 4th such write since the last time, at
       most twice per page (API 2.10) */
    uint64_t smc_data_writes, smc_data_pages;
} xbt_stats;
/* xbt_stats st = XBT_STATS_INIT;  (or: memset to 0, then st.size = sizeof st) */
#define XBT_STATS_INIT { .size = (uint32_t)sizeof(xbt_stats) }
/* Fills *st as described above.  XBT_E_INVAL for a NULL argument or a `size` smaller
   than the header (size and reserved: 8 bytes); nothing is written then. */
xbt_status xbt_vcpu_get_stats(xbt_vcpu *cpu, xbt_stats *st);

/* One trace built with XBT_VM_TRACE_PROFILE (traces dropped since are still listed). */
typedef struct xbt_trace_profile {
    uint32_t eip;          /* the head's guest EIP */
    uint32_t blocks;       /* basic blocks laid out */
    uint64_t entries;      /* times it was entered (chained or from the dispatcher) */
    uint64_t side_exits;   /* times it was left by a side exit (a cold branch direction) */
} xbt_trace_profile;
/* The profiled traces, most entered first: writes at most max, returns how many there
   are (call with max 0 to count). */
size_t xbt_vcpu_trace_profile(xbt_vcpu *cpu, xbt_trace_profile *out, size_t max);
/* Writes a human-readable statistics report (for --stats) of the counters within
   st->size (the others count as 0) into buf (at most size bytes, NUL-terminated when
   size > 0); returns the length of the whole report, as snprintf does. */
size_t xbt_stats_format(const xbt_stats *st, char *buf, size_t size);

/* ---- save and restore (API 1.4) -----------------------------------------------------
 *
 * The guest's x87/SSE state, its pending events, and the whole VM (vCPU and guest RAM)
 * as one versioned stream.  All calls here: on the vCPU's thread, between runs
 * (XBT_E_INVAL while the vCPU runs); with several vCPUs (API 1.7) the VM's save and
 * restore on any thread while none of its vCPUs runs.
 */

/* The guest's x87/SSE state in the layout a 32-bit guest's own FXSAVE stores (the
   legacy 512-byte image, not the 64-bit one: FIP and FDP are 32-bit offsets with
   selectors, eight XMM registers).  The virtual CPU has no XSAVE (cpumodel.c), so this
   is all of it.  fcs and fds read as 0 (the guest's x87 instruction pointers are the
   host's: the values mean nothing to the guest, as on CPUs that deprecate FCS/FDS);
   the reserved bytes read as 0 and are ignored on set, as is mxcsr_mask (the host's:
   bits of mxcsr outside it are reserved). */
typedef struct xbt_fpu {
    uint16_t fcw, fsw;
    uint8_t ftw;             /* abridged tag word: bit i set, physical register i valid */
    uint8_t reserved0;
    uint16_t fop;
    uint32_t fip;
    uint16_t fcs, reserved1;
    uint32_t fdp;
    uint16_t fds, reserved2;
    uint32_t mxcsr, mxcsr_mask;
    uint8_t st[8][16];       /* ST0-ST7 (MM0-MM7): 10 bytes each, then 6 reserved */
    uint8_t xmm[8][16];      /* XMM0-XMM7 */
    uint8_t reserved3[224];
} xbt_fpu;
/* The state the vCPU's next run starts with (also while user code runs directly in a
   runner process: that state comes back with every exit and goes out at every entry).
   set: XBT_E_INVAL for a reserved MXCSR bit set (FXRSTOR's #GP). */
xbt_status xbt_vcpu_get_fpu(xbt_vcpu *cpu, xbt_fpu *fpu);
xbt_status xbt_vcpu_set_fpu(xbt_vcpu *cpu, const xbt_fpu *fpu);

/* What the vCPU holds besides registers: events taken but not yet delivered, and
   conditions that change when the next interrupt may come.  The embedder's own
   requests (xbt_vcpu_request_irq_window, the interrupt source, breakpoints) are not in
   it; xbt_vcpu_set_regs clears interrupt_shadow and halted, so set events after regs. */
typedef struct xbt_vcpu_events {
    uint8_t nmi_pending;      /* an NMI (xbt_vcpu_nmi) waits to be taken */
    uint8_t nmi_blocked;      /* an NMI handler runs: NMIs wait for the next IRET */
    uint8_t interrupt_shadow; /* the instruction at EIP runs before any interrupt (it
                                 follows STI, MOV SS or POP SS) */
    uint8_t halted;           /* in HLT: the next interrupt or NMI resumes it */
    uint8_t debug_trap;       /* a #DB is due before the next instruction (a task switch
                                 into a TSS whose T bit is set) */
    uint8_t exit_pending;     /* get only (0 on set): the last exit is not complete (an
                                 IN's or MMIO read's data awaited, more MMIO stores of
                                 one instruction to send): run again before saving */
    uint8_t resume_flag;      /* EFLAGS.RF: the instruction at EIP takes no instruction
                                 breakpoint (API 1.10; 0 before) */
    uint8_t db_pending;       /* a #DB trap due after the last instruction (API 1.10; 0
                                 before): bits 0-3 the DR6 bits B0-B3 of the data or I/O
                                 breakpoints it hit, bit 4 a single-step trap (DR6.BS) */
} xbt_vcpu_events;
xbt_status xbt_vcpu_get_events(xbt_vcpu *cpu, xbt_vcpu_events *ev);
/* XBT_E_INVAL for a field other than 0 or 1 (db_pending: above 0x1f) or exit_pending
   set. */
xbt_status xbt_vcpu_set_events(xbt_vcpu *cpu, const xbt_vcpu_events *ev);

/*
 * The VM's whole state (its vCPU's registers, segment and control registers, debug
 * registers, MSRs, x87/SSE, events, the guest TSC, and guest RAM) written to fd as one
 * stream, and read back into a VM created with the same memory slots (slot numbers,
 * addresses, sizes, ROM or not: the embedder sets them up first; a restore fills every
 * slot, the embedder's files included) and XBT_VM_LOCAL_APIC flag (the other settings,
 * the user mode among them, may differ) that has its vCPU.
 * docs/ARCHITECTURE.md gives the format: a header ("XBTSTATE", format version 1), then
 * tagged, sized sections (a reader skips a section it does not know unless it is
 * marked required), an END section with a checksum of all before it.  The library
 * reads and writes exactly its own bytes and no further (fd may be a pipe): an
 * embedder's own state (its devices) goes to the same fd after xbt_vm_save_state
 * returns, and is read after xbt_vm_restore_state returns.
 *
 * Not state, so not saved: statistics, translations and every other cache (a restore
 * drops them all, and every window mapping), breakpoints and single-step, the
 * interrupt source and an irq-window request, the perf map's symbols.  Time: the guest
 * TSC is saved; a restore keeps the saved offset to the host TSC unless that would
 * take the guest's TSC below the value saved (another host, or a host rebooted), when
 * it continues from the saved value.  On the same host, guest time thus includes the
 * time between save and restore, as it must: directly run user code reads the host
 * TSC unchanged (RDTSC is not trapped there), which the VMM cannot offset.
 *
 * Several vCPUs (API 1.7): the stream holds each vCPU's state, in a VCPU section per
 * vCPU; a restore needs a VM with as many vCPUs (vCPU k's state goes to vCPU k), and a
 * one-vCPU stream (whose format is unchanged) goes into a one-vCPU VM only.  The
 * embedder's own per-vCPU state (which APs wait for start-up, their local APICs) is
 * its own to save after the library's.
 *
 * Save: XBT_E_INVAL for a VM without a vCPU, a running vCPU, or one in the middle of
 * an exit (xbt_vcpu_events.exit_pending: run it again, e.g. to an XBT_EXIT_STOPPED);
 * XBT_E_HOST when a write fails.  Restore: XBT_E_INVAL for a stream that is not a
 * state of this format version, is truncated or corrupted, or does not fit the VM;
 * XBT_E_HOST when a read fails.  Either way xbt_state_error() says why in one line.
 * A failed restore may have changed guest RAM: destroy the VM (its vCPU's registers
 * change only after the whole stream was read and checked).
 */
xbt_status xbt_vm_save_state(xbt_vm *vm, int fd);
xbt_status xbt_vm_restore_state(xbt_vm *vm, int fd);
/* Why the last xbt_vm_save_state or xbt_vm_restore_state on this thread failed (a
   static or thread-local string: valid until the next such call on the thread). */
const char *xbt_state_error(void);

#ifdef __cplusplus
}
#endif
#endif
