/*
 * xbt.h - public API of xbt, a binary-translating VMM library for 32-bit x86 guests.
 *
 * Conventions: every call returns an xbt_status (XBT_OK == 0) and never exits or
 * aborts on guest input; objects are opaque handles; buffers returned by the library
 * are owned by the object they came with and freed with it.  Nothing here keeps
 * global state.
 *
 * This header currently exposes the translate-only entry point, which rewrite
 * regression suites and the listing tool `xbt-dis` are built on:
 *
 *     xbt_translate_opts o = XBT_TRANSLATE_OPTS_INIT;
 *     xbt_translation *t;
 *     if (xbt_translate(bytes, n, 0x1000, &o, &t) == XBT_OK) {
 *         fputs(t->listing, stdout);
 *         xbt_translation_free(t);
 *     }
 *
 * Thread safety: translate calls are independent and may run concurrently.
 */
#ifndef XBT_XBT_H
#define XBT_XBT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XBT_VERSION_MAJOR 0
#define XBT_VERSION_MINOR 1
#define XBT_VERSION_PATCH 0
#define XBT_VERSION ((XBT_VERSION_MAJOR << 16) | (XBT_VERSION_MINOR << 8) | XBT_VERSION_PATCH)

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

/* Library version, XBT_VERSION format, of the code actually linked. */
uint32_t xbt_version(void);

/* ---- translate-only entry point ---------------------------------------------------- */

enum {
    XBT_WINDOW_K = 0, /* kernel code: memory through the K-window (GS base, 0x67) */
    XBT_WINDOW_U = 1, /* strict-mode user code: memory at its own address (0x67) */
};

#define XBT_TRANSLATE_FPU_NM 0x01 /* as if CR0.TS were set: x87/SSE become #NM callouts */
#define XBT_TRANSLATE_NO_SSE 0x02 /* as if CR4.OSFXSR were clear */

typedef struct xbt_translate_opts {
    uint32_t cpl;          /* guest CPL the code runs at: 0 or 3 */
    uint32_t window;       /* XBT_WINDOW_K or XBT_WINDOW_U */
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
 */

typedef struct xbt_vm xbt_vm;
typedef struct xbt_vcpu xbt_vcpu;

enum {
    XBT_USER_DIRECT = 0,   /* guest CPL 3 code runs natively at its own addresses */
    XBT_USER_STRICT = 1,   /* guest CPL 3 code is translated too (user window) */
    XBT_USER_ADAPTIVE = 2, /* direct, but trapping hot spots are translated */
};

typedef struct xbt_vm_config {
    uint64_t ram_size;     /* bytes of guest physical RAM from address 0 (multiple of 4 KiB,
                              at most 3 GiB) */
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

#define XBT_VM_NO_TRACES 0x01 /* chained basic blocks only, no traces (the default) */
#define XBT_VM_TRACES    0x04 /* build traces of hot paths (3-12% faster on hot kernel
                                 loops, no gain on a Linux boot: opt-in) */
#define XBT_VM_NO_CHAIN  0x02 /* every block exits to the dispatcher (debugging) */
#define XBT_VM_TRACE_PROFILE 0x08 /* with XBT_VM_TRACES: each trace counts its entries and
                                     the side exits taken (a memory increment per entry
                                     and per side exit; see xbt_vcpu_trace_profile) */

#define XBT_VM_PERF_MAP 0x10 /* write a perf map of translated code (see below) */

#define XBT_VM_CONFIG_INIT { 64u << 20, 0, XBT_USER_DIRECT, 0, 0, NULL }

/* Creates a VM.  XBT_E_INVAL for a bad config, XBT_E_HOST if a needed host feature
   (low 4 GiB reservation, memfd, compatibility mode, GS base) is missing, with the
   reason in xbt_last_host_error(). */
xbt_status xbt_vm_create(const xbt_vm_config *cfg, xbt_vm **out);
void xbt_vm_destroy(xbt_vm *vm);
/* The user-code mode in effect (XBT_USER_*), and why it differs from the one asked
   for (NULL when it does not). */
uint32_t xbt_vm_user_mode(const xbt_vm *vm, const char **why);
/* Host view of guest physical RAM (ram_size bytes), valid until destroy.  Writes
   through it to pages holding translated code must be followed by
   xbt_vm_invalidate(), or done with xbt_vm_write_phys(). */
uint8_t *xbt_vm_ram(xbt_vm *vm);
uint64_t xbt_vm_ram_size(const xbt_vm *vm);
xbt_status xbt_vm_write_phys(xbt_vm *vm, uint64_t gpa, const void *src, size_t len);
xbt_status xbt_vm_read_phys(xbt_vm *vm, uint64_t gpa, void *dst, size_t len);
xbt_status xbt_vm_invalidate(xbt_vm *vm, uint64_t gpa, size_t len);
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
 */

/* A guest symbol: code at guest EIPs [addr, addr + size) belongs to name (size 0:
   unknown, up to the next symbol, at most 64 KiB).  The name is copied; it must be 1 to
   255 printable ASCII characters.  Blocks translated afterwards are named by it.
   XBT_E_INVAL for a bad argument or a range past 4 GiB, XBT_E_NOMEM. */
xbt_status xbt_vm_add_symbol(xbt_vm *vm, uint32_t addr, uint32_t size, const char *name);
/* Writes the buffered lines of the perf map now.  XBT_OK (also without a map),
   XBT_E_INVAL, XBT_E_HOST if a write to the map has failed (it stays incomplete). */
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
xbt_status xbt_vcpu_get_regs(xbt_vcpu *cpu, xbt_regs *r);
/* Setting registers also ends a HLT and an interrupt shadow, and drops an IN that was
   not completed: the vCPU continues from exactly the state given. */
xbt_status xbt_vcpu_set_regs(xbt_vcpu *cpu, const xbt_regs *r);
xbt_status xbt_vcpu_get_sregs(xbt_vcpu *cpu, xbt_sregs *s);
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
    XBT_EXIT_DEBUG,          /* a debug event (reserved) */
    XBT_EXIT_INTERNAL_ERROR, /* xbt could not go on: internal.message says why */
    XBT_EXIT_STOPPED,        /* the embedder asked (xbt_vcpu_stop) */
    XBT_EXIT_IRQ_WINDOW,     /* the guest can take an interrupt now (if requested) */
};

typedef struct xbt_exit {
    uint32_t reason;         /* enum xbt_exit_reason */
    uint32_t pad;
    union {
        struct {
            uint16_t port;
            uint8_t size;    /* 1, 2 or 4 */
            uint8_t is_in;
            uint32_t data;   /* out: the value written; in: filled by the embedder */
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
/* Any thread: re-check the interrupt source within a bounded time. */
void xbt_vcpu_kick(xbt_vcpu *cpu);
/* Any thread: leave xbt_vcpu_run with XBT_EXIT_STOPPED within a bounded time. */
void xbt_vcpu_stop(xbt_vcpu *cpu);

typedef struct xbt_stats {
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
} xbt_stats;
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
/* Writes a human-readable statistics report (for --stats). */
size_t xbt_stats_format(const xbt_stats *st, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
